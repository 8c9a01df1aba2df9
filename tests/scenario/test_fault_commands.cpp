// tests/scenario/test_fault_commands.cpp — the scenario's `fail` command (scenario/fault_commands.h):
// syntax and its errors, the values, the transcript's FAULT_INJECTION lines and failure
// reasons; and every shipped example run with failslab / fail_page_alloc failing every Nth
// call after each boot: whatever fails, the machine survives and its invariants hold.
#include "scenario/fault_commands.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

#include "scenario/scenario.h"
#include "script_run.h"

namespace kmm::scenario {
namespace {

using test::ScriptRun;
using test::run;

TEST(FailCommand, EveryNthKmallocFailsAndIsReported) {
  ScriptRun r =
      run("boot ram=16M\n"
          "insmod m\n"
          "fail slab every=2\n"
          "kmalloc m 64 as a\n"
          "kmalloc m 64 as b\n"
          "expect last.failed == 1\n"
          "expect fail.slab.calls == 2 && fail.slab.failures == 1 && fail.injected == 1\n"
          "expect failed.allocs == 1\n"
          "fail off slab\n"
          "kmalloc m 64 as c\n"
          "expect last.failed == 0\n"
          "expect fail.slab.enabled == 0\n"
          "kfree a\n"
          "kfree c\n"
          "check\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("FAULT_INJECTION: forcing a failure. name failslab, interval 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("kmalloc(64) failed: injected failure (fault injection: failslab)"), std::string::npos) << r.out;
  // "asked" is the caller's 64 bytes, the slab page beside it (it read "asked 4 kB").
  EXPECT_NE(r.out.find("asked 64 bytes (needs 4 kB of pages)\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("failslab off: 2 calls, 1 failures injected"), std::string::npos) << r.out;
}

TEST(FailCommand, ViewsAndQuietMode) {
  ScriptRun r =
      run("boot ram=16M\n"
          "fail page probability=100% times=1 seed=9 verbose=0\n"
          "alloc_pages kernel 0 as p\n"
          "expect last.failed == 1\n"
          "alloc_pages kernel 0 as q\n"
          "expect last.failed == 0\n"
          "cat /sys/kernel/debug/fail_page_alloc\n"
          "cat /sys/kernel/debug/fail_page_alloc.json\n"
          "fail\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("FAULT_INJECTION"), std::string::npos) << r.out;  // verbose=0
  EXPECT_NE(r.out.find("name fail_page_alloc\nenabled 1\ninterval 1\nprobability 100.0000%\ntimes 0\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\"name\":\"fail_page_alloc\",\"enabled\":true"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("name failslab\n"), std::string::npos) << r.out;
}

TEST(FailCommand, FailWorksBeforeBootAndBootIsNotFailed) {
  ScriptRun r =
      run("fail slab every=1\n"
          "fail page every=1\n"
          "boot ram=16M\n"
          "kmalloc kernel 8 as a\n"
          "expect last.failed == 1\n"
          "reboot\n"
          "kmalloc kernel 8 as a\n"
          "expect last.failed == 1\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

TEST(FailCommand, BadLinesNameWhatIsWrong) {
  struct Case {
    const char* line;
    const char* want;
  } cases[] = {
      {"fail slab", "fail slab needs every=N or probability=P%"},
      {"fail slabs every=2", "no injection point 'slabs'"},
      {"fail slab every=0", "bad failure rate '0'"},
      {"fail slab every=5%", "bad every='5%'"},
      {"fail slab probability=5", "bad probability='5'"},
      {"fail slab probability=101%", "bad failure rate '101%'"},
      {"fail slab every=2 probability=5%", "give one of every= and probability="},
      {"fail slab every=2 times=-2", "bad times='-2'"},
      {"fail slab every=2 space=lots", "bad space='lots'"},
      {"fail slab every=2 seed=x", "bad seed='x'"},
      {"fail slab every=2 verbose=3", "bad verbose='3'"},
      {"fail slab every=2 color=red", "unknown fail option 'color'"},
      {"fail slab every", "bad fail option 'every'"},
      {"fail off pages", "no injection point 'pages'"},
  };
  for (const Case& c : cases) {
    ScriptRun r = run(std::string(c.line) + "\n");
    EXPECT_EQ(r.code, 2) << c.line;
    EXPECT_NE(r.err.find(std::string("t.kms:1: error: ") + c.want), std::string::npos) << c.line << " -> " << r.err;
  }
  ScriptRun v = run("boot ram=16M\nexpect fail.slab.bogus == 0\n");
  EXPECT_EQ(v.code, 2);
  EXPECT_NE(v.err.find("fail.slab has calls, failures and enabled"), std::string::npos) << v.err;
}

TEST(FailCommand, ScenarioEndSwitchesInjectionOff) {
  run("fail slab every=3\n");
  EXPECT_FALSE(fault_enabled(FaultPoint::kSlab));
}

// Every shipped example, with one point failing every Nth call from each boot on. Expects
// may fail and a script may stop where a label it needs was never allocated; what must hold
// is that the machine survives (a crash or a corruption report ends this process) and that
// its invariants hold afterwards.
TEST(FailSweep, EveryExampleSurvivesEveryNthFailure) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("kmm-fail-sweep-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::path old = fs::current_path();
  fs::current_path(dir);  // persistent-reboot.kms makes heap files in the working directory
  unsigned runs = 0, injected = 0, stopped = 0;
  std::string line;
  for (const auto& e : fs::directory_iterator(KMM_EXAMPLES_DIR)) {
    if (e.path().extension() != ".kms") continue;
    std::ifstream f(e.path());
    std::stringstream ss;
    ss << f.rdbuf();
    std::string text = ss.str();
    for (const char* point : {"slab", "page"}) {
      for (int n = 1; n <= 6; ++n) {
        // After each boot/reboot line, switch the point on (boot itself is never failed).
        std::string script;
        std::istringstream in(text);
        while (std::getline(in, line)) {
          script += line + "\n";
          std::string t = line.substr(0, line.find('#'));
          if (t.rfind("boot ", 0) == 0 || t.rfind("reboot", 0) == 0)
            script += std::string("fail ") + point + " every=" + std::to_string(n) + " verbose=0\n";
        }
        std::ostringstream out, err;
        Scenario s(out, err);
        // Line by line, going on past script errors (a label whose allocation failed).
        std::istringstream sin(script);
        int lineno = 0;
        bool any_error = false;
        while (std::getline(sin, line))
          any_error |= s.run_line(line, e.path().filename().string() + ":" + std::to_string(++lineno)) ==
                       LineStatus::kScriptError;
        stopped += any_error ? 1 : 0;
        FaultPoint fp;
        fault_point_from_name(point, std::char_traits<char>::length(point), &fp);
        injected += static_cast<unsigned>(fault_failures(fp));  // this run's point only
        ++runs;
        if (s.kernel() != nullptr) {
          EXPECT_EQ(s.run_line("fail off", "sweep"), LineStatus::kOk);
          EXPECT_EQ(s.run_line("check", "sweep"), LineStatus::kOk)
              << e.path().filename() << " " << point << " every=" << n << "\n"
              << out.str().substr(out.str().size() > 3000 ? out.str().size() - 3000 : 0);
        }
      }
    }
  }
  fs::current_path(old);
  fs::remove_all(dir);
  std::printf("sweep: %u runs, %u failures injected, %u with a line refused (a label never allocated)\n", runs,
              injected, stopped);
  EXPECT_GT(injected, 0u);
}

// Leaks under injection: process models (MMU demand paging and page tables in both
// formats, vmalloc and its lazy sync, NOMMU regions) run with a point failing every Nth call;
// once injection is off and everything is unmapped, freed and exited, MemFree is back to its
// value before the first allocation.
TEST(FailSweep, ProcessModelsGiveEverythingBack) {
  const char* bodies[] = {
      // MMU, ARMv7 and AArch64: demand paging, brk malloc, munmap, exit.
      "spawn p\nmmap p 2M as big\ntouch p addr.big write len=2M\nmalloc p 100 as a\nmalloc p 64K as b\n"
      "malloc p 300 as c\nfree b\nmalloc p 1000 as d\nvmalloc kernel 40K as v\nkmalloc kernel 9000 as k\n"
      "spawn q\nmmap q 1M as qm\ntouch q addr.qm write len=1M\n",
      // NOMMU: each malloc strategy, mmap of regions.
      "spawn s malloc=simple\nspawn m malloc=smalloc\nspawn h malloc=heap heap=64K\nmalloc s 100 as a\n"
      "malloc s 40K as b\nmalloc m 200 as c\nmalloc m 3000 as d\nmalloc h 500 as e\nfree a\nmalloc s 70 as f\n"
      "malloc m 20 as g\nfree c\nmalloc h 5000 as i\n",
  };
  const char* tails[] = {
      "fail off\nfree a\nfree c\nfree d\nmunmap big\nvfree v\nkfree k\nexit p\nexit q\n",
      "fail off\nfree b\nfree d\nfree e\nfree f\nfree g\nfree i\nexit s\nexit m\nexit h\n",
  };
  const char* boots[] = {"boot ram=16M", "boot ram=16M pt=aarch64",
                         "boot ram=4M mmu=off kmalloc=kmalloc2 page_alloc=range", "boot ram=4M mmu=off"};
  unsigned runs = 0;
  std::uint64_t injected = 0;
  for (unsigned b = 0; b < 4; ++b) {
    unsigned body = b < 2 ? 0 : 1;
    for (const char* point : {"slab", "page"}) {
      for (int n = 1; n <= 8; ++n) {
        std::string script = std::string(boots[b]) + "\nlet before = meminfo.MemFree\nfail " + point +
                             " every=" + std::to_string(n) + " verbose=0\n" + bodies[body] +
                             "let injected = fail.injected\n" + tails[body] +
                             "expect meminfo.MemFree == $before\ncheck\n";
        std::ostringstream out, err;
        Scenario s(out, err);
        std::istringstream in(script);
        std::string line;
        int lineno = 0;
        LineStatus last = LineStatus::kOk;
        while (std::getline(in, line)) last = s.run_line(line, "t.kms:" + std::to_string(++lineno));
        injected += static_cast<std::uint64_t>(*s.value(std::string("fail.") + point + ".failures", &line));
        EXPECT_EQ(last, LineStatus::kOk) << boots[b] << ", " << point << " every " << n << "\n"
                                         << out.str() << err.str();
        EXPECT_EQ(err.str().find("expect failed"), std::string::npos)
            << boots[b] << ", " << point << " every " << n << "\n"
            << out.str() << err.str();
        ++runs;
      }
    }
  }
  std::printf("process models: %u runs, %llu failures injected\n", runs, static_cast<unsigned long long>(injected));
  EXPECT_GT(injected, 0u);
}

}  // namespace
}  // namespace kmm::scenario

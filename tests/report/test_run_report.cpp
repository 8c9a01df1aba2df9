// tests/report/test_run_report.cpp — RunRecorder (report/run_report.h): what `kmm run --report`
// samples after each line (machines, module bytes, collector passes, failures with the
// memory map) and the page it writes (one chart each per machine, a map per failure, the
// check script). The browser side is tests/examples/report_chromium.sh.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "report/run_report.h"
#include "scenario/scenario.h"

namespace kmm::scenario {
namespace {

std::size_t count(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

int run(Scenario& sc, const std::string& script) {
  std::istringstream in(script);
  return sc.run_script(in, "t.kms");
}

TEST(RunReport, SamplesEveryLineOfEveryMachine) {
  std::ostringstream out, err;
  RunRecorder rec;
  {
    Scenario sc(out, err);
    sc.set_observer(&rec);
    ASSERT_EQ(run(sc,
                  "boot ram=64M protector=reclaim gc_delay=1s\n"
                  "insmod m_test\n"
                  "kmalloc m_test 4096 as a\n"
                  "kmalloc m_test 64K as b\n"
                  "kmalloc m_test 128 as c\n"
                  "rmmod m_test\n"
                  "idle 2s\n"
                  "boot ram=32M\n"
                  "insmod x\n"),
              0)
        << err.str();
  }
  ASSERT_EQ(rec.machines().size(), 2u);
  const auto& m1 = rec.machines()[0];
  ASSERT_EQ(m1.samples.size(), 7u);
  EXPECT_EQ(m1.boot_where, "t.kms:1");
  // After the three kmallocs m_test holds 4096 + 65536 + 128 bytes (slot sizes).
  const auto& after = m1.samples[4];
  ASSERT_EQ(after.module_bytes.size(), 1u);
  EXPECT_EQ(after.module_bytes[0].first, "m_test");
  EXPECT_EQ(after.module_bytes[0].second, 4096u + 65536u + 128u);
  EXPECT_LT(after.memfree_kb, m1.samples[1].memfree_kb);
  // idle 2s: the machine clock moved, a pass ran and gave everything back.
  const auto& last = m1.samples.back();
  EXPECT_EQ(last.t_ns, 2'000'000'000u);
  EXPECT_GT(last.passes, after.passes);
  EXPECT_EQ(last.module_bytes.empty() ? 0u : last.module_bytes[0].second, 0u);
  EXPECT_EQ(last.memfree_kb, m1.samples[1].memfree_kb);
  EXPECT_TRUE(m1.failures.empty());
  EXPECT_EQ(rec.machines()[1].samples.size(), 2u);
  std::ostringstream html;
  rec.write_html(html, "t.kms");
  std::string page = html.str();
  // Per machine: MemFree, Slab and modules, the free-list heat map.
  EXPECT_EQ(count(page, "<svg class=\"chart"), 6u);
  EXPECT_EQ(count(page, "collector pass after t.kms:7"), 2u);  // a mark on each line chart
  EXPECT_NE(page.find("data-charts"), std::string::npos);
  EXPECT_EQ(page.find("http://www.w3.org/1999"), std::string::npos);  // nothing fetched
  EXPECT_EQ(count(page, "src="), 0u);
}

TEST(RunReport, AFailedBootIsNoMachineAndAReloadedModulesLeakStaysOnTheChart) {
  // `boot ram=zzz` (a script error: machine 1 runs on) made a "Machine 2" holding machine
  // 1's samples; a reboot is a machine of its own; and the chart of module m showed only the
  // reloaded instance's 8 kB, the gone one's 64 kB leak dropped.
  std::ostringstream out, err;
  RunRecorder rec;
  {
    Scenario sc(out, err);
    sc.set_observer(&rec);
    run(sc, "boot ram=16M\ninsmod m\nkmalloc m 64K\nrmmod m\ninsmod m\nkmalloc m 8K\nreboot\nboot ram=zzz\n");
  }
  ASSERT_EQ(rec.machines().size(), 2u) << "the failed boot started a machine";
  EXPECT_EQ(rec.machines()[1].boot_line, "reboot");
  std::ostringstream html;
  rec.write_html(html, "t.kms");
  const std::string page = html.str();
  EXPECT_NE(page.find("module m = 72 kB"), std::string::npos) << "the gone instance's 64 kB were left out";
  EXPECT_EQ(page.find("module m = 8 kB"), std::string::npos);
}

TEST(RunReport, FailureKeepsTheMemoryMapOfItsMoment) {
  std::ostringstream out, err;
  RunRecorder rec;
  std::string script = "boot ram=16M\ninsmod hog\n";
  for (int i = 0; i < 15; ++i) script += "kmalloc hog 1M as b" + std::to_string(i) + "\n";
  for (int i = 0; i < 15; i += 2) script += "kfree b" + std::to_string(i) + "\n";
  script += "alloc_pages hog 9 as big\nexpect last.failed == 1\n";
  {
    Scenario sc(out, err);
    sc.set_observer(&rec);
    ASSERT_EQ(run(sc, script), 0) << err.str();
  }
  ASSERT_EQ(rec.machines().size(), 1u);
  const auto& m = rec.machines()[0];
  ASSERT_EQ(m.failures.size(), 1u);
  const auto& f = m.failures[0];
  EXPECT_EQ(f.where, "t.kms:26");
  EXPECT_EQ(f.largest_free_pages, 256u);  // 1 MiB holes only
  EXPECT_NE(f.map.find('X'), std::string::npos);
  EXPECT_NE(f.map.find('-'), std::string::npos);
  EXPECT_EQ(f.map.find_first_not_of("X-"), std::string::npos);
  // Alternating 1 MiB used and free: the map changes at least 14 times.
  std::size_t changes = 0;
  for (std::size_t i = 1; i < f.map.size(); ++i) changes += f.map[i] != f.map[i - 1];
  EXPECT_GE(changes, 14u);
  std::ostringstream html;
  rec.write_html(html, "t.kms");
  EXPECT_EQ(count(html.str(), "<svg class=\"chart map\""), 1u);
}

}  // namespace
}  // namespace kmm::scenario

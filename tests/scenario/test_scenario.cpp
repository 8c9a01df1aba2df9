// tests/scenario/test_scenario.cpp — the scenario interpreter on scripts given as strings:
// exit codes 0/1/2, FILE:LINE in errors, last.failed after machine failures, bad frees
// reported in the transcript while the machine goes on, every value kind, `map`, bad boots.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <regex>
#include <sstream>
#include <string>

#include "scenario/scenario.h"
#include "script_run.h"

namespace kmm::scenario {
namespace {

using Result = test::ScriptRun;
using test::run;
using test::has;

TEST(Scenario, ExitZeroWhenExpectsHold) {
  Result r = run(
      "# a comment\n\nboot ram=16M\nexpect meminfo.MemTotal > 0   # trailing comment\nlet x = 2 + 2\nexpect $x == 4\n");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_TRUE(has(r.out, "root@kmm:~# boot ram=16M\nMemory: ")) << r.out;
  EXPECT_TRUE(has(r.out, "$x = 4\n"));
  EXPECT_TRUE(has(r.out, "ok\n"));
  EXPECT_FALSE(has(r.out, "a comment"));
}

TEST(Scenario, ExitOneWhenAnExpectFails) {
  Result r = run("boot ram=16M\nexpect 1 + 1 == 3\nexpect 1 == 1\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(has(r.out, "FAILED (2 == 3)")) << r.out;
  EXPECT_TRUE(has(r.err, "t.kms:2: expect failed")) << r.err;
  EXPECT_TRUE(has(r.out, "root@kmm:~# expect 1 == 1\nok\n")) << "the run goes on after a failed expect";
}

TEST(Scenario, ExitTwoWithFileLineAndStops) {
  Result r = run("boot ram=16M\n\nkmallok kernel 64\nexpect 1 == 1\n");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "t.kms:3: error: unknown command 'kmallok'\n");
  EXPECT_FALSE(has(r.out, "expect 1 == 1")) << "a script error stops the run";
}

TEST(Scenario, ScriptErrors) {
  struct Case {
    const char* script;
    const char* err;
  } cases[] = {
      {"insmod m\n", "t.kms:1: error: no machine: the script must `boot` first"},
      {"expect meminfo.MemFree > 0\n", "t.kms:1: error: no machine to read"},
      {"boot ram=16M\nexpect $undefined == 1\n", "t.kms:2: error: no value named $undefined"},
      {"boot ram=16M\nexpect 1 / 0\n", "t.kms:2: error: division by zero"},
      {"boot ram=16M\nexpect meminfo.NoSuch == 1\n", "t.kms:2: error: no field 'NoSuch' in /proc/meminfo"},
      {"boot ram=16M\nkfree nolabel\n", "t.kms:2: error: no block labelled 'nolabel'"},
      {"boot ram=16M\nkmalloc kernel lots\n", "t.kms:2: error: bad size 'lots'"},
      {"boot ram=16M\ncat /proc/nothing\n", "t.kms:2: error: no such file: /proc/nothing"},
      {"boot ram=16M\nidle forever\n", "t.kms:2: error: usage: idle DURATION"},
      {"boot ram=16M\nlet 9x! = 1\n", "t.kms:2: error: bad name '9x!' for let"},
      {"boot ram=16M\nexpect slabinfo.kmalloc-32.bogus == 1\n", "t.kms:2: error: slabinfo field 'bogus' unknown"},
      {"boot ram=16M\nexpect buddyinfo.order11 == 1\n", "t.kms:2: error: buddyinfo has order0 .. order10"},
      // A module name no insmod loaded would read 0: `== 0` would hold on a typo.
      {"boot ram=16M\ninsmod m_test\nexpect module.m_tset.bytes == 0\n",
       "t.kms:3: error: no module 'm_tset': no insmod loaded it (loaded so far: m_test; the kernel is module.kernel)"},
      {"boot ram=16M\nexpect module.ghost.objects == 0\n",
       "t.kms:2: error: no module 'ghost': no insmod loaded it (loaded so far: none"},
      {"boot ram=16M\ninsmod m\ninsmod m\nrmmod ghost\nexpect module.ghost.bytes == 0\n",
       "t.kms:5: error: no module 'ghost'"},
  };
  for (const Case& c : cases) {
    Result r = run(c.script);
    EXPECT_EQ(r.code, 2) << c.script;
    EXPECT_EQ(r.err.rfind(c.err, 0), 0u) << c.script << " -> " << r.err;
  }
}

// Bug (issue 18): on pt=aarch64 any explicit page_offset= was refused, "bad page_offset
// '0xffff000000000000'", even arm64's PAGE_OFFSET the docs name: the boot line read it as
// an expression's signed number, which stops at INT64_MAX. page_offset is a 64-bit address.
TEST(Scenario, FarDeadlinesAndClocksStopAtTheTopInsteadOfWrapping) {
  // gc_delay near 2^64 ns: the deadline after the first pass would wrap into the past and run
  // a pass on every idle; two idles of 1.8e19 ns would set the clock back (review).
  Result r =
      run("boot ram=16M protector=report gc_delay=10000000000s\n"
          "insmod m\nkmalloc m 100 as a\nrmmod m\n"
          "idle 9000000000s\nidle 1000000001s\n"
          "expect gc.passes == 1\n"
          "idle 1s\nidle 1s\nidle 1s\n"
          "expect gc.passes == 1\n"
          "let t = time.ms\n"
          "idle 18000000000s\nidle 18000000000s\n"
          "expect time.ms >= $t\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

TEST(Scenario, KmemleakSaysStillReferencedOnlyWhereTheScanSparedTheBlock) {
  // A reclaim-unreachable pass with no memory for its bitmap only reports: it scanned
  // nothing, and its leak is unreferenced; a block the scan spared is "still referenced".
  Result r =
      run("boot ram=16M protector=reclaim-unreachable gc_delay=1s\n"
          "insmod m\nkmalloc m 128 as a\nrmmod m\n"
          "fail page every=1\ngc\nfail off\n"
          "cat /sys/kernel/debug/kmemleak\n"
          "insmod n\nkmalloc n 64 as b\nkmalloc kernel 64 as holder\nlink holder b\nrmmod n\n"
          "gc\n"
          "cat /sys/kernel/debug/kmemleak\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "this pass only reports")) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nunreferenced object 0x[0-9a-f]+ \\(size 128\\)"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("orphaned object \\(still referenced\\) 0x[0-9a-f]+ \\(size 64\\)")))
      << r.out;
  EXPECT_FALSE(std::regex_search(r.out, std::regex("still referenced\\) 0x[0-9a-f]+ \\(size 128\\)"))) << r.out;
}

TEST(Scenario, ModulesJsonNamesADormantModuleDormant) {
  // A persistent heap's module loaded before the reboot and not loaded again yet is
  // "dormant" (its memory kept through the grace period), not "gone".
  const std::string heap = testing::TempDir() + "kmm-dormant-" + std::to_string(::getpid()) + ".heap";
  Result r = run("boot ram=16M backing=" + heap +
                 " format=yes protector=reclaim boot_grace=60s\n"
                 "insmod m\nkmalloc m 100 as a\nreboot\n"
                 "expect persist.dormant == 1\n"
                 "cat /proc/modules.json\n");
  std::remove(heap.c_str());
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "{\"owner\":\"m\",\"state\":\"dormant\"")) << r.out;
}

TEST(Scenario, KreallocOfAReclaimedBlockSaysSoNotOutOfMemory) {
  Result r =
      run("boot ram=16M protector=reclaim gc_delay=1s\n"
          "insmod m\nkmalloc m 100 as a\nrmmod m\nidle 2s\n"
          "krealloc a 200\nexpect last.failed == 1\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "krealloc failed: 'a' is no longer a live block")) << r.out;
  EXPECT_FALSE(has(r.out, "out of memory")) << r.out;
}

// unlink (and link) of a block the collector took: it is gone, not "offset 0 is outside b
// (0 usable bytes)".
TEST(Scenario, UnlinkOfAReclaimedBlockSaysItIsGone) {
  Result r =
      run("boot ram=16M protector=reclaim gc_delay=1s\n"
          "insmod m\nkmalloc m 100 as b\nrmmod m\nidle 2s\n"
          "unlink b\nexpect last.failed == 1\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "unlink: 'b' is no longer a live block (reclaimed by the collector, or freed)")) << r.out;
  EXPECT_FALSE(has(r.out, "usable bytes")) << r.out;
}

TEST(Scenario, KreallocGrowsMovesAndToZeroFrees) {
  // krealloc to 0 frees the block and returns ZERO_SIZE_PTR: printed as such (it printed the
  // "direct-map address" of pointer 16), and the label then frees nothing.
  Result r =
      run("boot ram=8M\n"
          "kmalloc kernel 100 as a\n"
          "krealloc a 3000\nexpect ksize.a == 4096\n"
          "krealloc a 0\n"
          "kfree a\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "a = ZERO_SIZE_PTR (krealloc to 0 bytes freed the block)")) << r.out;
}

TEST(Scenario, Aarch64TakesAnExplicitPageOffset) {
  struct Case {
    const char* page_offset;
    const char* signed_value;  // the expression language's view of it: two's complement
  } cases[] = {
      {"0xffff000000000000", "0 - 0x1000000000000"},  // arm64's PAGE_OFFSET, the default
      {"0xffff800000000000", "0 - 0x800000000000"},   // the upper half of the TTBR1 range
      {"0xFFFF000040000000", "0 - 0xFFFFC0000000"},   // 1G in, 2M aligned
  };
  for (const Case& c : cases) {
    std::string po = c.page_offset;
    Result r = run("boot ram=64M pt=aarch64 page_offset=" + po + "\n" +   //
                   "expect vm.page_offset == " + c.signed_value + "\n" +  //
                   "expect virt_to_phys." + po + " == 0\n");
    EXPECT_EQ(r.code, 0) << po << "\n" << r.out << r.err;
    EXPECT_EQ(r.err, "") << po;
  }
  // What is still refused: an address over 64 bits, junk, and what the MMU cannot map.
  struct Bad {
    const char* line;
    const char* err;
  } bad[] = {
      {"boot ram=64M pt=aarch64 page_offset=0x1ffff000000000000", "bad page_offset '0x1ffff000000000000'"},
      {"boot ram=64M pt=aarch64 page_offset=high", "bad page_offset 'high'"},
      {"boot ram=64M pt=aarch64 page_offset=-1", "bad page_offset '-1'"},
      {"boot ram=64M pt=aarch64 page_offset=0xffff000000100000", "TTBR1 half, 2M aligned"},
      {"boot ram=64M pt=armv7 page_offset=0xffff000000000000", "above 4G"},
  };
  for (const Bad& b : bad) {
    Result r = run(std::string(b.line) + "\n");
    EXPECT_EQ(r.code, 2) << b.line;
    EXPECT_TRUE(has(r.err, b.err)) << b.line << " -> " << r.err;
  }
}

TEST(Scenario, BadBootOptionsExitTwo) {
  struct Case {
    const char* line;
    const char* err;
  } cases[] = {
      {"boot ram=lots", "bad ram size 'lots'"},
      {"boot ram=16M protector=maybe", "protector= takes off, report, reclaim or reclaim-unreachable, not 'maybe'"},
      {"boot ram=16M kmalloc=slob", "kmalloc= takes pow2 or kmalloc2, not 'slob'"},
      {"boot ram=16M frobnicate=1", "unknown boot option 'frobnicate'"},
      {"boot ram16M", "bad boot option 'ram16M' (want key=value)"},
      {"boot ram=64K", "boot failed: RAM too small"},
      {"boot ram=16M phys_offset=0x801", "phys_offset"},
      {"boot ram=2G page_offset=0xC0000000", "boot failed: RAM does not fit"},
      {"boot ram=16M gc_delay=soon", "bad gc_delay 'soon'"},
      {"boot ram=16M redzone=maybe", "redzone= takes on or off, not 'maybe'"},
      {"boot ram=16M quarantine=lots", "quarantine= takes a size up to 1G (0, 64K, 1M), not 'lots'"},
  };
  for (const Case& c : cases) {
    Result r = run(std::string(c.line) + "\n");
    EXPECT_EQ(r.code, 2) << c.line;
    EXPECT_EQ(r.err.rfind("t.kms:1: error: ", 0), 0u) << c.line << " -> " << r.err;
    EXPECT_TRUE(has(r.err, c.err)) << c.line << " -> " << r.err;
  }
}

TEST(Scenario, HardeningOptionsAtBoot) {
  // slab/hardening.h's options are boot keys; ksize is then the size asked for.
  Result r =
      run("boot ram=16M freelist_hardened=on redzone=on poison=on quarantine=64K guard_pages=on\n"
          "kmalloc kernel 20 as a\nkmalloc kernel 20000 as big\n"
          "expect ksize.a == 20 && ksize.big == 20000\nkfree a\nkfree big\n");
  EXPECT_EQ(r.code, 0) << r.err << r.out;
}

// `kmm shell`: `help` is a pointer to kmm help, not a script error (it printed "no machine"
// before a boot, "unknown command 'help'" after); exit ends it; the status is the expects'.
// In a script `help` stays unknown (kmm run is unchanged).
TEST(Scenario, ShellHelpAndExit) {
  std::ostringstream out, err;
  int code;
  {
    Scenario s(out, err);
    std::istringstream in("help\nboot ram=16M\nhelp\nexpect 1 == 2\nexit\nexpect 1 == 1\n");
    code = s.run_shell(in, false);
  }
  EXPECT_EQ(code, 1) << "an expect failed";
  EXPECT_FALSE(has(err.str(), "help")) << err.str();
  EXPECT_NE(out.str().find("kmm help scenario"), out.str().rfind("kmm help scenario")) << "once a help line";
  EXPECT_FALSE(has(out.str(), "expect 1 == 1")) << "exit ends the shell";
  Result r = run("boot ram=16M\nhelp\n");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.err, "unknown command 'help'")) << r.err;
}

// More than a quarter of RAM waiting in the quarantine is cut (SlabAllocator::init): the boot
// says so in the transcript, as the preload warns, and the run goes on (it was silent).
TEST(Scenario, QuarantineCutAtBootIsSaid) {
  Result r = run("boot ram=16M quarantine=8M\nboot ram=16M quarantine=4M\n");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.out,
                  "warning: quarantine=8388608 is more than a quarter of RAM; the quarantine holds at most "
                  "4194304 bytes\n"))
      << r.out;
  EXPECT_EQ(r.out.find("warning: quarantine=4194304"), std::string::npos) << "a quarter exactly is not cut";
}

TEST(Scenario, LastFailedAfterFailingKmalloc) {
  Result r =
      run("boot ram=16M kmalloc=pow2\n"
          "expect last.failed == 0\n"
          "kmalloc kernel 2M as big\n"
          "expect last.failed == 1\n"
          "expect last.failed == 1\n"  // expect and let keep it
          "kmalloc kernel 1M as ok\n"
          "expect last.failed == 0 && ksize.ok == 1M\n"
          "kmalloc ghost 64\n"
          "expect last.failed == 1\n"
          "kmalloc kernel 64 as small\n"
          "expect last.failed == 0\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "kmalloc(2097152) failed: larger than kmalloc's limit of 1024 kB")) << r.out;
  EXPECT_TRUE(has(r.out, "kmalloc: no module ghost is loaded")) << r.out;
}

TEST(Scenario, Kmalloc2ServesWhatPow2Refuses) {
  Result r =
      run("boot ram=16M kmalloc=kmalloc2\nkmalloc kernel 2M as big\nexpect last.failed == 0 && ksize.big == 2M\n"
          "kmalloc kernel 130K as prog\nexpect footprint.prog == 132K\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

TEST(Scenario, DoubleKfreeReportedMachineGoesOn) {
  Result r =
      run("boot ram=16M\n"
          "kmalloc kernel 64 as a\n"
          "kfree a\n"
          "expect last.failed == 0\n"
          "kfree a\n"
          "expect last.failed == 1\n"
          "kmalloc kernel 64 as b\n"
          "expect last.failed == 0 && ksize.b == 64\n"
          "check\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "double free in kfree")) << r.out;
  // The pointer as the transcript shows addresses elsewhere (the kernel's, 0xc0...), not the
  // host process's (0x00007f...).
  EXPECT_TRUE(has(r.out, "double free in kfree: pointer 0xc0")) << r.out;
  EXPECT_TRUE(has(r.out, "kfree a: refused\n")) << r.out;
  EXPECT_TRUE(has(r.out, "invariants hold\n")) << r.out;
}

TEST(Scenario, AFreedLabelWhoseMemoryWasHandedOutAgainIsNotFreedTwice) {
  // a freed, b given a's slot: `kfree a` freed b's block (b was then freed under its user's
  // feet); the same for an alloc_pages block and a vmalloc area.
  Result r =
      run("boot ram=16M\n"
          "kmalloc kernel 64 as a\nkfree a\nkmalloc kernel 64 as b\n"
          "kfree a\nexpect last.failed == 1\nkfree b\nexpect last.failed == 0\n"
          "alloc_pages kernel 0 as p\nfree_pages p\nalloc_pages kernel 0 as q\n"
          "free_pages p\nexpect last.failed == 1\nfree_pages q\nexpect last.failed == 0\n"
          "vmalloc kernel 8K as v\nvfree v\nvmalloc kernel 8K as w\n"
          "vfree v\nexpect last.failed == 1\nvfree w\nexpect last.failed == 0\n"
          "check\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "kfree a: a was freed, and its memory is b's now")) << r.out;
  EXPECT_TRUE(has(r.out, "free_pages p: p was freed, and its memory is q's now")) << r.out;
  EXPECT_TRUE(has(r.out, "vfree v: v was freed, and its memory is w's now")) << r.out;
  EXPECT_FALSE(has(r.out, "double free")) << r.out;
}

TEST(Scenario, ALabelWhoseBlockTheCollectorTookOrAnotherKindReusedActsOnNothingElse) {
  // A label whose block the collector reclaimed (never freed through it), or whose memory
  // came back as another kind of block, or used by krealloc, transfer or link after its free:
  // each acted on the block that now sat there (b freed under its label, p's pages freed, b
  // moved by krealloc). ksize.LABEL of such a label read the other block's.
  Result r =
      run("boot ram=16M protector=reclaim gc_delay=1s\n"
          "insmod m\nkmalloc m 100 as a\nrmmod m\nidle 3s\nkmalloc kernel 100 as b\n"
          "kfree a\nexpect last.failed == 1\nexpect ksize.b == 128 && ksize.a == 0\nkfree b\nexpect last.failed == 0\n"
          "kmalloc kernel 64K as big\nkfree big\nalloc_pages kernel 4 as p\n"
          "kfree big\nexpect last.failed == 1\nexpect ksize.p == 64K\nfree_pages p\nexpect last.failed == 0\n"
          "kmalloc kernel 100 as c\nkfree c\nkmalloc kernel 100 as d\n"
          "krealloc c 300\nexpect last.failed == 1\ntransfer c kernel\nexpect last.failed == 1\n"
          "link c d\nexpect last.failed == 1\nexpect ksize.d == 128\nkfree d\nexpect last.failed == 0\n"
          "check\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "kfree a: a was reclaimed, and its memory is b's now")) << r.out;
  EXPECT_TRUE(has(r.out, "kfree big: big was freed, and its memory is p's now")) << r.out;
  EXPECT_TRUE(has(r.out, "krealloc c: c was freed, and its memory is d's now")) << r.out;
  EXPECT_FALSE(has(r.out, "double free")) << r.out;
}

TEST(Scenario, AFailedVmallocSaysWhyAVmallocFails) {
  // vmalloc needs pages, not contiguous ones, and a range of its 240M space: "missing memory:
  // 520032 kB free, largest free block 4096 kB" named neither.
  Result r =
      run("boot ram=512M\nvmalloc kernel 300M\nexpect last.failed == 1\nvmalloc kernel 200M as a\n"
          "vmalloc kernel 100M\nexpect last.failed == 1\nvfree a\n"
          "boot ram=16M\nvmalloc kernel 17M\nexpect last.failed == 1\ncheck\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "vmalloc(314572800) failed: vmalloc space exhausted: its largest free range is 245760 kB"))
      << r.out;
  EXPECT_TRUE(has(r.out, "vmalloc(104857600) failed: vmalloc space exhausted")) << r.out;
  EXPECT_TRUE(has(r.out, "vmalloc(17825792) failed: out of memory: ")) << r.out;
  EXPECT_FALSE(has(r.out, "missing memory")) << r.out;
}

TEST(Scenario, AVmallocAreasFootprintIsWhatTheAllocatorsTook) {
  // Its pages, the vmap_area slot (48 bytes and an owner byte) and the page array's kmalloc
  // slot (20 bytes in kmalloc-32, 40 in kmalloc-64, each with an owner byte): 20548 and 41048
  // before, the structs' sizes instead of their slots.
  Result r =
      run("boot ram=16M\nvmalloc kernel 20K as a\nvmalloc kernel 40K as b\n"
          "expect ksize.a == 20K && footprint.a == 20K + 49 + 33\nexpect footprint.b == 40K + 49 + 65\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

TEST(Scenario, KreallocThroughALabelKeepsItsOwner) {
  // A module's zero-size block grown by krealloc became the kernel's (the command asked as the
  // kernel): the module's leak escaped the protector.
  Result r =
      run("boot ram=16M\ninsmod m\nkmalloc m 0 as z\nkrealloc z 100\nexpect module.m.objects == 1\n"
          "kmalloc m 100 as a\nkrealloc a 0\nkrealloc a 0\nkrealloc a 100\nexpect module.m.objects == 2\ncheck\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "a = ZERO_SIZE_PTR (krealloc to 0 bytes freed the block)\na = ZERO_SIZE_PTR\n") ||
              has(r.out, "(krealloc to 0 bytes freed the block)\nroot@kmm:~# krealloc a 0\na = ZERO_SIZE_PTR\n"))
      << r.out;
}

TEST(Scenario, ModuleValuesOfLoadedModulesOnlyLoadedOnceAreKnownAfterUnloadAndReboot) {
  // Known: a module loaded (live, or unloaded since), on this machine or an earlier one of
  // the script, and the kernel. Only an insmod that succeeded makes a name known.
  Result r =
      run("boot ram=16M protector=off\n"
          "insmod m\n"
          "kmalloc m 100 as a\n"
          "expect module.m.objects == 1 && module.m.bytes == 128\n"
          "rmmod m\n"
          "expect module.m.objects == 1\n"  // gone, its block still held (protector off)
          "expect module.kernel.objects >= 0\n"
          "boot ram=16M\n"
          "expect module.m.objects == 0 && module.m.bytes == 0\n");  // loaded before this boot
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.err, "");
}

TEST(Scenario, RmmodNotLoaded) {
  Result r =
      run("boot ram=16M\nrmmod ghost\nexpect last.failed == 1\ninsmod m\ninsmod m\nexpect last.failed == 1\n"
          "rmmod m\nexpect last.failed == 0\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "rmmod: ERROR: could not remove module ghost: module is not loaded\n")) << r.out;
  EXPECT_TRUE(has(r.out, "insmod: ERROR: could not insert module m: module is already loaded\n")) << r.out;
}

TEST(Scenario, EveryValueKind) {
  Result r =
      run("boot ram=16M protector=reclaim gc_delay=1s min_free_kbytes=0\n"
          "let free0 = meminfo.MemFree\n"
          "expect meminfo.MemFree * 1024 == free.total\n"
          "expect meminfo.Active(anon) == 0\n"
          "expect buddyinfo.order10 >= 1 && buddyinfo.order0 >= 0\n"
          "expect free.largest == 4M && free.largest <= free.total\n"
          "let objs = slabinfo.kmalloc-128.active_objs\n"
          "insmod m\n"
          "kmalloc m 100 as a\n"
          "kmalloc m 20000 as big\n"
          "vmalloc m 5000 as v\n"
          "expect slabinfo.kmalloc-128.active_objs == $objs + 1\n"
          "expect slabinfo.kmalloc-128.num_objs >= slabinfo.kmalloc-128.active_objs\n"
          "expect module.m.objects == 3\n"
          "expect module.m.bytes == 128 + 32K + 8K\n"
          "expect ksize.a == 128 && footprint.a >= 128\n"
          "expect ksize.big == 32K && footprint.big == 32K\n"
          "expect ksize.v == 8K\n"
          "expect meminfo.VmallocUsed == 8\n"
          "expect leaks.count == 0 && leaks.bytes == 0 && reclaimed.bytes == 0\n"
          "rmmod m\n"
          "idle 1s\n"
          "expect reclaimed.bytes == 128 + 32K + 8K && reclaimed.count == 3\n"
          "expect leaks.count == 0 && leaks.bytes == 0\n"
          "expect module.m.bytes == 0 && ksize.a == 0\n"
          "expect meminfo.MemFree == $free0\n"
          "expect gc.passes == 1 && time.ms == 1000\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.err, "");
}

TEST(Scenario, ReportModeLeakValues) {
  Result r =
      run("boot ram=16M protector=report gc_delay=1s\n"
          "insmod m\n"
          "kmalloc m 100 as a\n"
          "kmalloc m 5000 as b\n"
          "rmmod m\n"
          "idle 1s\n"
          "expect leaks.count == 2 && leaks.bytes == 128 + 8K\n"
          "expect reclaimed.bytes == 0 && ksize.a == 128\n"
          "cat /sys/kernel/debug/kmemleak\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "GCONLINUX activated")) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(unreferenced object 0x[0-9a-f]{8} \(size 128\):)"))) << r.out;
}

TEST(Scenario, MapPrintsRulerAndPicture) {
  Result r = run("boot ram=1000K\nmap scale=20K\nkmalloc kernel 256K as big\nmap scale=20K\n");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  std::istringstream in(r.out);
  std::vector<std::string> pictures;
  std::string l;
  bool header = false, ruler = false, labels = false;
  while (std::getline(in, l)) {
    if (l == "physical memory, one character per 20 kB (X used, - free), ruler in kB:") header = true;
    if (l.rfind("    0    100   200   300   400   500   600   700   800   900   1000", 0) == 0) labels = true;
    if (l == "   -+-----+-----+-----+-----+-----+-----+-----+-----+-----+-----+--") ruler = true;
    if (std::regex_match(l, std::regex(R"(    (\|[X-]{5}){10}\|)"))) pictures.push_back(l);
  }
  EXPECT_TRUE(header) << r.out;
  EXPECT_TRUE(labels) << r.out;
  EXPECT_TRUE(ruler) << r.out;
  ASSERT_EQ(pictures.size(), 2u) << r.out;
  EXPECT_EQ(pictures[0].substr(4, 2), "|X") << "mem_map and the kernel come first";
  auto used = [](const std::string& p) { return std::count(p.begin(), p.end(), 'X'); };
  EXPECT_GE(used(pictures[1]), used(pictures[0]) + 12) << "256K is at least 12 more cells of 20K";
  EXPECT_TRUE(has(r.out, "free ")) << r.out;
  Result bad = run("boot ram=1000K\nmap scale=1000\n");
  EXPECT_EQ(bad.code, 2);
  EXPECT_TRUE(has(bad.err, "t.kms:2: error: usage: map [scale=SIZE]")) << bad.err;
}

TEST(Scenario, TransferAndLinkInScripts) {
  Result r =
      run("boot ram=16M protector=reclaim-unreachable gc_delay=1s\n"
          "kmalloc kernel 64 as holder\n"
          "insmod m\n"
          "kmalloc m 64 as given\n"
          "kmalloc m 64 as pointed\n"
          "kmalloc m 64 as lost\n"
          "transfer given kernel\n"
          "link holder pointed offset=8\n"
          "rmmod m\n"
          "idle 1s\n"
          "expect reclaimed.count == 1 && leaks.count == 1 && leaks.referenced == 1\n"
          "expect ksize.given == 64 && ksize.pointed == 64 && ksize.lost == 0\n"
          "unlink holder offset=8\n"
          "idle 1s\n"
          "expect reclaimed.count == 2 && leaks.count == 0\n"
          "link holder given offset=60\n"
          "expect last.failed == 1\n"
          "check\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "link: offset 60 is outside holder (64 usable bytes)")) << r.out;
}

TEST(Scenario, RebootStartsFresh) {
  Result r =
      run("boot ram=16M\nlet f = meminfo.MemFree\nkmalloc kernel 1M as x\nreboot\nexpect meminfo.MemFree == $f\n"
          "kfree x\n");
  EXPECT_EQ(r.code, 2) << "labels are gone after a reboot";
  EXPECT_TRUE(has(r.out, "machine rebooted")) << r.out;
  EXPECT_TRUE(has(r.out, "ok\n"));
  EXPECT_TRUE(has(r.err, "t.kms:6: error: no block labelled 'x'")) << r.err;
}

}  // namespace
}  // namespace kmm::scenario

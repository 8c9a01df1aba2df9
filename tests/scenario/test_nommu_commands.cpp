// tests/scenario/test_nommu_commands.cpp — the NOMMU scenario commands: spawn/malloc/free/realloc/
// exit, process values and labels (ksize/footprint fall through to the process model),
// repeat, frag, the seed's map picture, refusals and script errors.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "scenario/scenario.h"
#include "script_run.h"

namespace kmm::scenario {
namespace {

using Result = test::ScriptRun;
using test::run;

TEST(NommuCommands, SimpleOverheadAndLabels) {
  Result r =
      run("boot ram=4M mmu=off\n"
          "spawn a\n"
          "repeat 1000 malloc a 10\n"
          "expect proc.a.bytes == 66000\n"
          "malloc a 10 as x\n"
          "expect ksize.x == 16 && footprint.x == 66\n"
          "expect nommu.ok == 1\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("repeated 1000 times, 0 failed"), std::string::npos);
}

TEST(NommuCommands, FragOfABlockPastTheLargestOrderSaysSo) {
  // frag 8M printed order 10's indices, as if a 4 MiB block were what was asked for.
  Result r = run("boot mmu=off ram=16M\nfrag 8M\nfrag 4M\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("8192 kB: larger than the largest buddy block (order 10, 4096 kB): no index"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("order 10 (4096 kB): unusable index"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("order 10 (4096 kB)"), r.out.rfind("order 10 (4096 kB)")) << "one order 10 line, for 4M";
}

TEST(NommuCommands, UnknownLabelIsAScriptError) {
  Result r = run("boot ram=4M mmu=off\nexpect ksize.nope == 1\n");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no block labelled 'nope'"), std::string::npos) << r.err;
  Result f = run("boot ram=4M mmu=off\nfree nope\n");
  EXPECT_EQ(f.code, 2);
}

TEST(NommuCommands, RefusalsGoOn) {
  Result r =
      run("boot ram=2M mmu=off\n"
          "spawn a\nspawn b\n"
          "spawn c malloc=brk\nexpect last.failed == 1\n"
          "spawn d heap=4M\nexpect last.failed == 1\n"
          "malloc b 64 as x\n"
          "free x by a\nexpect last.failed == 1\n"
          "free x\nexpect last.failed == 0\n"
          "malloc a 3M\nexpect last.failed == 1\n"
          "check\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("needs an MMU"), std::string::npos);
  EXPECT_NE(r.out.find("larger than the machine's RAM"), std::string::npos);
  EXPECT_NE(r.out.find("belongs to another process"), std::string::npos);
}

TEST(NommuCommands, RepeatRefusesABootAndANestedRepeat) {
  // A boot inside repeat destroyed the state repeat held (a use after free under ASan); a
  // nested repeat multiplied the counts past any cap (10^14 lines).
  for (const char* body : {"boot mmu=off ram=8M", "reboot"}) {
    Result r = run(std::string("boot mmu=off ram=8M\nrepeat 2 ") + body + "\n");
    EXPECT_EQ(r.code, 2) << body;
    EXPECT_NE(r.err.find("repeat cannot run boot or reboot"), std::string::npos) << body << ": " << r.err;
  }
  // Past the cap the error says what the cap is (it printed only the usage).
  Result big = run("boot mmu=off ram=8M\nrepeat 10000001 ps\n");
  EXPECT_EQ(big.code, 2);
  EXPECT_NE(big.err.find("repeat 10000001: N is at most 10^7"), std::string::npos) << big.err;
  Result n = run("boot mmu=off ram=8M\nrepeat 10000000 repeat 10000000 ps\n");
  EXPECT_EQ(n.code, 2);
  EXPECT_NE(n.err.find("repeat cannot repeat a repeat"), std::string::npos) << n.err;
}

TEST(NommuCommands, ChurnOptionsOutOfRangeAreScriptErrors) {
  // Each of these divided by zero (buf_life=0), overflowed (the lifetimes times 3 or 4, bufs
  // times 2) or asked for a vector of 10^11 programs (std::bad_alloc).
  for (const char* opt : {"buf_life=0", "prog_life=9223372036854775807", "bufs=9223372036854775807",
                          "programs=100000000000", "steps=100000000000", "every=0", "keep=1001", "buf_min=0"}) {
    Result r = run(std::string("boot mmu=off ram=8M\nchurn steps=10 ") + opt + "\n");
    EXPECT_EQ(r.code, 2) << opt << ": " << r.out;
    EXPECT_NE(r.err.find("bad churn"), std::string::npos) << opt << ": " << r.err;
  }
  Result ok = run("boot mmu=off ram=8M\nchurn steps=50 buf_life=1 prog_life=1 every=50\n");
  EXPECT_EQ(ok.code, 0) << ok.err;
}

TEST(NommuCommands, AFixedHeapFullForAHugeRequestNamesItsSize) {
  // Past 4 GiB the message read "asked 18446744073709551608 bytes" (block_need's marker).
  Result r =
      run("boot ram=16M mmu=off\nspawn h malloc=heap heap=64K\nmalloc h 5G\nexpect last.failed == 1\n"
          "malloc h 9223372036854775807\nexpect last.failed == 1\nmalloc h 100\nexpect last.failed == 0\n"
          "check\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  std::string all = r.out + r.err;
  EXPECT_NE(all.find("asked 5368709124 bytes"), std::string::npos) << all;
  EXPECT_NE(all.find("asked 9223372036854775811 bytes"), std::string::npos) << all;
  EXPECT_EQ(all.find("18446744073709551608"), std::string::npos) << all;
}

TEST(NommuCommands, ChurnCountsProgramsThatCannotEvenStart) {
  // A slot whose spawn failed was skipped silently: programs=200 ran 63 and said "failed
  // program loads 0"; a user's process named prog0 kept churn's prog0 from ever running.
  Result full =
      run("boot mmu=off ram=32M\nchurn steps=1 programs=200 prog_min=100 prog_max=100\n"
          "expect churn.failed_programs == 137\ncheck\n");
  EXPECT_EQ(full.code, 0) << full.out << full.err;
  Result clash =
      run("boot mmu=off ram=8M\nspawn prog0\n"
          "churn steps=1 programs=1 prog_min=100 prog_max=100\n"
          "expect churn.failed_programs == 0\nexpect proc.prog0.regions == 0\ncheck\n");
  EXPECT_EQ(clash.code, 0) << clash.out << clash.err;
  // The table's row for step 1: step, free (kB), largest (kB), buffers, programs running.
  std::istringstream rows(clash.out.substr(clash.out.find("failed(prog/buf)")));
  std::string header, step, free_kb, kb1, largest, kb2, buffers, running;
  std::getline(rows, header);
  rows >> step >> free_kb >> kb1 >> largest >> kb2 >> buffers >> running;
  EXPECT_EQ(step, "1") << clash.out;
  EXPECT_EQ(running, "1") << clash.out;
}

TEST(NommuCommands, ChurnLeavesTheUsersProcessesAndLabelsAlone) {
  // A process of the user's named netd was taken over and exited by churn; its pid, used
  // again, made `free x` free another process's block.
  Result r =
      run("boot ram=2M mmu=off kmalloc=kmalloc2 page_alloc=range\n"
          "spawn netd\nmalloc netd 100 as x\n"
          "churn steps=1 programs=0 bufs=1\n"
          "expect proc.netd.regions == 1\n"
          "spawn q\nmalloc q 100 as y\n"
          "free x\nexpect last.failed == 0\nexpect proc.q.regions == 1\n"
          "free y\nexpect last.failed == 0\n"
          "check\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

TEST(NommuCommands, ADoubleFreeThroughALabelIsRefusedAndTheRunGoesOn) {
  // The label went with the first free: the second stopped the script ("no process block
  // labelled"), where NOMMU.md promises a refusal, as kfree gives.
  Result r =
      run("boot ram=2M mmu=off\nspawn a\nmalloc a 10 as x\n"
          "free x\nexpect last.failed == 0\n"
          "free x\nexpect last.failed == 1\n"
          "realloc x 20\nexpect last.failed == 1\n"
          "malloc a 10 as y\nrealloc y 0\nexpect last.failed == 0\n"
          "free y\nexpect last.failed == 1\n"
          "malloc a 10 as z\nexit a\n"
          "check\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("free x: refused: double free"), std::string::npos) << r.out;
}

TEST(NommuCommands, MapOfTheSeed) {
  std::string s = "boot ram=1000K mmu=off page_alloc=range kmalloc=kmalloc2 reserved=200K min_free_kbytes=0\n";
  const int sizes[] = {60, 40, 40, 20, 60, 20, 60, 40, 80, 20, 80, 40, 60, 20, 60, 96};
  for (int i = 0; i < 16; ++i)
    s += "spawn p" + std::to_string(i) + "\nmalloc p" + std::to_string(i) + " " + std::to_string(sizes[i]) + "K\n";
  for (int i = 0; i < 16; i += 2) s += "exit p" + std::to_string(i) + "\n";
  s += "map\nspawn big\nmalloc big 100K\n";
  Result r = run(s);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("    0    100   200   300   400   500   600   700   800   900   1000\n"
                       "   -+-----+-----+-----+-----+-----+-----+-----+-----+-----+-----+--\n"
                       "    |XXXXX|XXXXX|---XX|--X--|-X---|XX---|-X---|-XX--|-X---|XXXXX|\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("missing memory: 500 kB free, largest free block 80 kB, asked 100 kB"), std::string::npos);
}

TEST(NommuCommands, MmapCopyOnlyOnNommu) {
  Result r = run("boot ram=4M mmu=off\nspawn a\nmalloc a 12000\ncat /proc/meminfo\nexpect meminfo.MmapCopy == 16\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  std::size_t mlocked = r.out.find("Mlocked:"), copy = r.out.find("MmapCopy:"), swap = r.out.find("SwapTotal:");
  EXPECT_LT(mlocked, copy);
  EXPECT_LT(copy, swap);
  Result m = run("boot ram=4M\ncat /proc/meminfo\n");
  EXPECT_EQ(m.out.find("MmapCopy"), std::string::npos);
}

TEST(NommuCommands, ReallocAndExit) {
  Result r =
      run("boot ram=4M mmu=off\n"
          "spawn a malloc=heap heap=32K\n"
          "malloc a 100 as x\n"
          "realloc x 3000\n"
          "expect ksize.x == 3004\n"
          "expect heap.a.used == 3008\n"
          "exit a\n"
          "expect nommu.regions == 0\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

TEST(NommuCommands, ChurnPrintsLargestFreeBlock) {
  Result r =
      run("boot ram=2M mmu=off kmalloc=kmalloc2 page_alloc=range\n"
          "churn steps=300 every=100\n"
          "expect churn.min_largest > 0 && churn.min_largest <= churn.avg_largest\n"
          "expect nommu.regions == 0\n"
          "check\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("largest free block: min"), std::string::npos);
}

}  // namespace
}  // namespace kmm::scenario

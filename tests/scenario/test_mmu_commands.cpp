// tests/scenario/test_mmu_commands.cpp — the MMU scenario commands on scripts given as strings:
// translate (walk text, TLB hit, page line, faults), chain and the conversion values, spawn/
// mmap/touch/malloc/free/exit with exact memory accounting, /proc/PID/maps format,
// kernel_page_tables, the TLB commands, vmalloc sync, both formats, and bad input (script
// errors with FILE:LINE, machine failures with last.failed).
#include <gtest/gtest.h>

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

TEST(MmuCommands, TranslateKernelSeedAddresses) {
  Result r =
      run("boot ram=64M\n"
          "translate kernel 0xC0403012\n"
          "expect last.pa == 0x403012 && last.pfn == 0x403 && last.failed == 0\n"
          "translate kernel 0xC0403FFF\n"
          "expect tlb.hits == 1 && tlb.misses == 1 && tlb.walks == 1\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "index 0xc04")) << r.out;
  EXPECT_TRUE(has(r.out, "section PA 0x00400000")) << r.out;
  EXPECT_TRUE(has(r.out, "=> PA 0x00403012  PFN 0x403 offset 0x012")) << r.out;
  EXPECT_TRUE(has(r.out, "TLB miss (ASID 0): walked, entry filled")) << r.out;
  EXPECT_TRUE(has(r.out, "TLB hit: page 0xc0400000")) << r.out;
  EXPECT_TRUE(has(r.out, "page: mem_map[0x403] at 0xc0008060")) << r.out;
}

TEST(MmuCommands, ChainAndConversionValues) {
  Result r =
      run("boot ram=64M page_offset=0x80000000\n"
          "chain 0x80082012\n"
          "expect last.pa == 0x82012\n"
          "expect virt_to_phys.0x80003012 == 0x3012 && virt_to_pfn.0x80003012 == 3\n"
          "expect phys_to_virt.0x3012 == 0x80003012 && pfn_to_virt.3 == 0x80003000\n"
          "expect virt_to_page.0x80003012 == pfn_to_page.3 && page_to_pfn.pfn_to_page.3 == 3\n");
  // page_to_pfn.pfn_to_page.3 is not a path the language nests: it is a script error.
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  r =
      run("boot ram=64M page_offset=0x80000000\n"
          "chain 0x80082012\n"
          "expect last.pa == 0x82012\n"
          "expect virt_to_phys.0x80003012 == 0x3012 && virt_to_pfn.0x80003012 == 3\n"
          "expect phys_to_virt.0x3012 == 0x80003012 && pfn_to_virt.3 == 0x80003000\n"
          "expect virt_to_page.0x80003012 == pfn_to_page.3 && pfn_to_page.3 == 0x80000000 + 3 * 32\n"
          "expect page_to_pfn.0x80000060 == 3 && page_to_virt.0x80000060 == 0x80003000\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "phys_to_pfn(0x82012) = 0x82012 >> 12 = 0x82")) << r.out;
  EXPECT_TRUE(has(r.out, "page_to_virt")) << r.out;
  r = run("boot ram=64M\nexpect virt_to_phys.0x1000 == 0\n");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.err, "t.kms:2: error: virt_to_phys.0x1000: not in the direct map")) << r.err;
  r = run("boot ram=64M\nexpect page_to_pfn.0xC0000061 == 0\n");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.err, "not the address of a page descriptor")) << r.err;
}

TEST(MmuCommands, ProcessLifecycleReturnsEveryByte) {
  for (const char* pt : {"armv7", "aarch64"}) {
    Result r = run(std::string("boot ram=64M pt=") + pt +
                   "\n"
                   "let before = meminfo.MemFree\n"
                   "spawn p\n"
                   "expect proc.p.rss == 0 && proc.p.pagetables > 0\n"
                   "mmap p 1M as m\n"
                   "touch p addr.m write len=1M\n"
                   "expect proc.p.faults == 256 && proc.p.rss == 1M\n"
                   "expect meminfo.MemFree * 1024 + proc.p.bytes == $before * 1024\n"
                   "expect meminfo.PageTables * 1024 == proc.p.pagetables + vm.pagetables\n"
                   "malloc p 10 as a\n"
                   "malloc p 5000 as b\n"
                   "free a\n"
                   "free b\n"
                   "expect proc.p.brk == 0x00110000\n"
                   "exit p\n"
                   "expect meminfo.MemFree == $before && meminfo.AnonPages == 0\n"
                   "check\n");
    EXPECT_EQ(r.code, 0) << pt << "\n" << r.out << r.err;
    EXPECT_TRUE(has(r.out, "p exited: freed")) << r.out;
  }
}

TEST(MmuCommands, MapsFormat) {
  Result r = run("boot ram=64M\nspawn cat\nmmap cat 8K prot=r at=0x00400000\nmalloc cat 10\ncat /proc/cat/maps\n");
  EXPECT_EQ(r.code, 0) << r.err;
  std::regex line(
      "00010000-00020000 r-xp 00000000 00:00 0 +/bin/cat\n00110000-00111000 rw-p 00000000 00:00 0 +\\[heap\\]\n"
      "00400000-00402000 r--p 00000000 00:00 0\nbefe0000-bf000000 rw-p 00000000 00:00 0 +\\[stack\\]\n");
  EXPECT_TRUE(std::regex_search(r.out, line)) << r.out;
  // Linux pads the name to column 74.
  EXPECT_TRUE(has(r.out, "00010000-00020000 r-xp 00000000 00:00 0" + std::string(34, ' ') + "/bin/cat\n")) << r.out;
}

TEST(MmuCommands, FaultsSetLastFailedAndGoOn) {
  Result r =
      run("boot ram=64M\n"
          "spawn p\n"
          "mmap p 4K prot=r at=0x00400000\n"
          "touch p 0x00400000 write\nexpect last.failed == 1\n"
          "touch p 0x00020000 read\nexpect last.failed == 1\n"
          "touch p 0xC0000000 read\nexpect last.failed == 1\n"
          "translate p 0xC0000000\nexpect last.failed == 1\n"
          "translate kernel 0x00001000\nexpect last.failed == 1\n"
          "translate kernel 0xFFFFF000\nexpect last.failed == 1\n"
          "mmap p 4K at=0x1001\nexpect last.failed == 1\n"
          "mmap p 4K at=0x00400000\nexpect last.failed == 1\n"
          "mmap p 4K at=0xC0000000\nexpect last.failed == 1\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "SIGSEGV at 0x00400000 (user write): write to a read-only mapping")) << r.out;
  EXPECT_TRUE(has(r.out, "no VMA covers the address")) << r.out;
  EXPECT_TRUE(has(r.out, "user access to kernel space")) << r.out;
  EXPECT_TRUE(has(r.out, "not page aligned")) << r.out;
  EXPECT_TRUE(has(r.out, "overlaps an existing mapping")) << r.out;
}

TEST(MmuCommands, ScriptErrors) {
  struct Case {
    const char* script;
    const char* err;
  } cases[] = {
      {"boot ram=64M\ntranslate nobody 0x1000\n", "t.kms:2: error: no process nobody"},
      {"boot ram=64M\ntranslate kernel junk!\n", "t.kms:2: error: bad address"},
      {"boot ram=64M\nspawn p\nspawn p\n", "t.kms:3: error: process p exists already"},
      {"boot ram=64M\nspawn p malloc=smalloc\n", "smalloc is a NOMMU library"},
      // heap= without malloc=heap was silently ignored (on mmu=off it implies malloc=heap).
      {"boot ram=64M\nspawn p heap=64K\n",
       "t.kms:2: error: spawn p: heap= is the size of the fixed heap of malloc=heap"},
      {"boot ram=64M\nspawn p malloc=simple heap=64K\n", "with malloc=simple it means nothing"},
      {"boot ram=64M\nfree nothing\n", "t.kms:2: error: no user block labelled 'nothing'"},
      {"boot ram=64M\ncat /proc/ghost/maps\n", "no process ghost"},
      // The list of views names the MMU ones too, and that they have no .json.
      {"boot ram=64M\ncat /proc/nothing\n",
       "also /proc/tlb, /proc/PROC/maps, /sys/kernel/debug/kernel_page_tables (no .json)"},
      {"boot ram=64M page_offset=0xC0100000\n", "16M boundary"},
      {"boot ram=64M pt=aarch64 page_offset=0xC0000000\n", "TTBR1 half"},
      {"boot ram=64M page_offset=0x100000000\n", "above 4G"},
      {"boot ram=64M\nexpect last.pa == 0\n", "no translation yet"},
  };
  for (const Case& c : cases) {
    Result r = run(c.script);
    EXPECT_EQ(r.code, 2) << c.script << r.out;
    EXPECT_TRUE(has(r.err, c.err)) << c.script << "\n" << r.err;
  }
}

TEST(MmuCommands, KernelPageTablesAndVmallocSync) {
  Result r =
      run("boot ram=64M\n"
          "vmalloc kernel 12K as v\n"
          "cat /sys/kernel/debug/kernel_page_tables\n"
          "let pt = vm.pagetables\n"
          "vfree v\n"
          "cat /sys/kernel/debug/kernel_page_tables\n"
          "expect vm.pagetables < $pt\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "0xc0000000-0xc4000000        64M SECTION       RW NX SHD")) << r.out;
  EXPECT_TRUE(has(r.out, "0xc4800000-0xc4803000        12K PTE")) << r.out;
  EXPECT_TRUE(has(r.out, "---[ vmalloc() Area ]---\n---[ vmalloc() End ]---\n")) << r.out;
}

TEST(MmuCommands, AVmallocAreaRemadeAtTheSameAddressMapsItsOwnFrames) {
  // vfree, then a new area at the same address and size whose first frame is the same but
  // whose second is not: the second page must map the new area's frame, not the old one
  // (given meanwhile to alloc_pages). The sync's skip test once hashed only the first frame.
  for (const char* fmt : {"armv7", "aarch64"}) {
    const std::string va = std::string(fmt) == "armv7" ? "0xc1803000" : "0xffff000001803000";
    Result r = run(std::string("boot mmu=on pt=") + fmt +
                   " ram=16M\n"
                   "vmalloc kernel 4K as keep\n"
                   "vmalloc kernel 8K as a\n"
                   "translate kernel " +
                   va +
                   "\n"
                   "vfree a\n"
                   "alloc_pages kernel 0 as h1\n"
                   "vmalloc kernel 8K as b\n"
                   "translate kernel " +
                   va +
                   "\n"
                   "tlb flush all\n"
                   "translate kernel " +
                   va + "\n");
    EXPECT_EQ(r.code, 0) << fmt << r.out << r.err;
    std::size_t vmalloc_pages = 0;
    for (std::size_t at = r.out.find("flags vmalloc refcount"); at != std::string::npos;
         at = r.out.find("flags vmalloc refcount", at + 1))
      ++vmalloc_pages;
    EXPECT_EQ(vmalloc_pages, 3u) << fmt << ": every translate lands on a vmalloc frame\n" << r.out;
    EXPECT_FALSE(has(r.out, "flags head|large|pages")) << fmt << ": h1's frame reached through b\n" << r.out;
  }
}

TEST(MmuCommands, TheKernelNeverExecutesUserPages) {
  // PXN: AArch64 pages carry it; ARMv7 small pages have no bit, so their table does.
  for (const char* fmt : {"armv7", "aarch64"}) {
    Result r = run(std::string("boot mmu=on pt=") + fmt +
                   " ram=64M\n"
                   "spawn p\n"
                   "touch p 0x10000 exec\n"
                   "expect last.failed == 0\n"
                   "touch p 0x10000 exec kernel\n"
                   "expect last.failed == 1\n");
    EXPECT_EQ(r.code, 0) << fmt << r.out << r.err;
    EXPECT_TRUE(has(r.out, "(kernel exec): the page is mapped but the hardware refuses this access")) << fmt << r.out;
  }
}

TEST(MmuCommands, PageOffsetsThatLeaveNoRoomAreRefusedAtBoot) {
  // ARMv7: page_offset 16M left TASK_SIZE 0 (every spawn failed "size 0 or not page
  // aligned"). AArch64: a direct map and vmalloc space past 2^64 booted with no kernel page
  // tables. Both are boot errors now, naming the option.
  Result r = run("boot mmu=on pt=armv7 ram=8M page_offset=0x1000000\n");
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "0x10000000 or above")) << r.err;
  r = run("boot mmu=on pt=aarch64 ram=8M page_offset=0xFFFFFFFFFF000000\n");
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "pass the top of the address space")) << r.err;
  r = run("boot mmu=on pt=armv7 ram=8M page_offset=0x10000000\nspawn p\nexpect last.failed == 0\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

TEST(MmuCommands, TlbFlushByAsid) {
  Result r =
      run("boot ram=64M tlb=4\n"
          "spawn a\nspawn b\n"
          "mmap a 4K at=0x00400000\nmmap b 4K at=0x00400000\n"
          "touch a 0x00400000 write\ntouch b 0x00400000 write\n"
          "expect tlb.entries == 2\n"
          "tlb flush b\nexpect tlb.entries == 1\n"
          "tlb flush all\nexpect tlb.entries == 0\n"
          "cat /proc/tlb\ntlb\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "TLB: 4 entries, fully associative, LRU")) << r.out;
  EXPECT_TRUE(has(r.out, "TLB flush ASID 2 (b): 1 entries invalidated")) << r.out;
}

TEST(MmuCommands, MallocStrategies) {
  Result r =
      run("boot ram=64M\n"
          "spawn s malloc=simple\n"
          "malloc s 10 as x\nexpect proc.s.vmas == 3\nfree x\nexpect proc.s.vmas == 2\n"
          "spawn h malloc=heap heap=8K\n"
          "malloc h 4000 as y\nmalloc h 4000\nexpect last.failed == 0\nmalloc h 4000\nexpect last.failed == 1\n"
          "free y\nmalloc h 4000\nexpect last.failed == 0\n"
          "exit s\nexit h\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

TEST(MmuCommands, AddressesAndFramesBeyondWhatTheModelNumbersAreRefused) {
  // phys_offset=2^44 booted with frame numbers cut to 32 bits (chain showed PHYS_OFFSET 0x0);
  // pfn_to_page.0x100000001 was frame 1; a direct map that wraps booted; touch's range wrapped
  // past 2^64 and read "0 pages" as a success.
  Result big = run("boot pt=aarch64 phys_offset=0x100000000000 ram=8M\n");
  EXPECT_EQ(big.code, 2);
  EXPECT_NE(big.err.find("frame numbers are 32 bits"), std::string::npos) << big.err;
  // RAM ending a frame below 2^44 booted, and the buddy's "block fits" sum pfn + 2^k wrapped:
  // its init wrote outside mem_map (SIGSEGV), the range allocator's buddyinfo never ended.
  for (const char* alloc : {"buddy", "range"}) {
    for (const char* ram : {"ram=1004K phys_offset=0xffffff04000", "ram=1000K phys_offset=0xffffff05000",
                            "ram=4M phys_offset=0xfffffc00000"}) {
      Result top = run(std::string("boot mmu=off page_alloc=") + alloc + " " + ram + "\ncat /proc/buddyinfo\n");
      EXPECT_EQ(top.code, 2) << alloc << " " << ram << top.out;
      EXPECT_NE(top.err.find("frame numbers are 32 bits"), std::string::npos) << top.err;
    }
    // The highest RAM that boots: it ends one largest block (4 MiB) below 2^44, and all of it
    // can be allocated in blocks.
    Result highest = run(std::string("boot mmu=off page_alloc=") + alloc +
                         " ram=4M phys_offset=0xfffff800000\ncat /proc/buddyinfo\n"
                         "alloc_pages kernel 9 as a\nexpect last.failed == 0\nfree_pages a\ncheck\n");
    EXPECT_EQ(highest.code, 0) << alloc << highest.out << highest.err;
  }
  Result wrap = run("boot pt=aarch64 page_offset=0xffffffffffe00000 ram=8M\n");
  EXPECT_EQ(wrap.code, 2);
  EXPECT_NE(wrap.err.find("wraps past the top"), std::string::npos) << wrap.err;
  Result r =
      run("boot pt=aarch64 ram=16M\n"
          "let q = pfn_to_page.0x100000001\n");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.err.find("no such frame in RAM"), std::string::npos) << r.err;
  Result t =
      run("boot pt=aarch64 ram=16M\nspawn p\n"
          "touch p 0xfffffffffffff000 len=0x2000\nexpect last.failed == 1\n");
  EXPECT_EQ(t.code, 0) << t.out << t.err;
  EXPECT_NE(t.out.find("is not a range of 64-bit addresses"), std::string::npos) << t.out;
  Result v7 =
      run("boot pt=armv7 ram=16M\nspawn p\n"
          "touch p 0xfffff000 len=0x2000\nexpect last.failed == 1\n"
          "touch p 0x100000000\nexpect last.failed == 1\n");
  EXPECT_EQ(v7.code, 0) << v7.out << v7.err;
  EXPECT_NE(v7.out.find("is not a range of 32-bit (ARMv7) addresses"), std::string::npos) << v7.out;
}

}  // namespace
}  // namespace kmm::scenario

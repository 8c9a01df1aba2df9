// tests/shim/test_proc_maps.cpp — the root scan's view of the process's mappings
// (src/shim/proc_maps.h): which mappings of a maps text are read as roots and which are not,
// the lookup by address, the snapshot copy's two checks (every scanned mapping still there,
// none wiped on fork) and the seccomp line, on fixed texts and on this process's own /proc.
#include "shim/proc_maps.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace kmm::shim {
namespace {

std::vector<MapRange> parse(const std::string& text, unsigned cap = 64) {
  std::vector<MapRange> out(cap);
  unsigned n = 0;
  EXPECT_TRUE(parse_maps(text.data(), text.size(), out.data(), cap, &n));
  out.resize(n);
  return out;
}

// One line of each kind the scan meets, in address order (addresses a 32-bit process has too:
// the ARM build runs this test).
const char kMaps[] =
    "00400000-00401000 r--p 00000000 fe:00 1234  /usr/bin/prog\n"            // 0 text
    "00402000-00403000 rw-p 00002000 fe:00 1234  /usr/bin/prog\n"            // 1 data
    "00403000-00424000 rw-p 00000000 00:00 0     [heap]\n"                   // 2 heap
    "40000000-40001000 ---p 00000000 00:00 0 \n"                             // 3 guard
    "40001000-40801000 rw-p 00000000 00:00 0 \n"                             // 4 a thread's stack
    "40900000-40901000 rw-s 00000000 00:01 77    /dev/shm/ring\n"            // 5 POSIX shm
    "40901000-40902000 rw-s 00000000 00:01 78    /memfd:pool (deleted)\n"    // 6 memfd
    "40902000-40903000 rw-s 00000000 00:01 79    /dev/zero (deleted)\n"      // 7 shared anon
    "40903000-40904000 rw-s 00000000 00:01 80    /SYSV00000000 (deleted)\n"  // 8 SysV
    "40904000-40905000 rw-s 00000000 fe:00 81    /home/u/data.bin\n"         // 9 shared file
    "40905000-40906000 rw-p 00000000 fe:00 82    /home/u/private.bin\n"      // 10 private file
    "40906000-40907000 rw-s 00000000 00:05 83    /dev/mem\n"                 // 11 device
    "40907000-40908000 rw-p 00000000 00:05 84    /dev/fb0\n"                 // 12 device
    "bf000000-bf021000 rw-p 00000000 00:00 0     [stack]\n"                  // 13 main stack
    "bf100000-bf104000 r--p 00000000 00:00 0     [vvar]\n"                   // 14
    "bf104000-bf106000 r-xp 00000000 00:00 0     [vdso]\n"                   // 15
    "ffff0000-ffff1000 --xp 00000000 00:00 0 [vsyscall]\n";                  // 16

TEST(ProcMaps, EveryMappingIsClassifiedAsTheScanNeeds) {
  std::vector<MapRange> m = parse(kMaps);
  ASSERT_EQ(m.size(), 17u);
  EXPECT_EQ(m[0].lo, 0x00400000u);
  EXPECT_EQ(m[0].hi, 0x00401000u);
  EXPECT_EQ(m[16].lo, 0xffff0000u);
  auto scanned = [&](unsigned i) { return (m[i].flags & kMapScan) != 0; };
  for (unsigned i : {1u, 2u, 4u, 5u, 6u, 7u, 8u, 10u, 13u}) EXPECT_TRUE(scanned(i)) << "line " << i;
  for (unsigned i : {0u, 3u, 9u, 11u, 12u, 14u, 15u, 16u}) EXPECT_FALSE(scanned(i)) << "line " << i;
  EXPECT_EQ(m[3].flags & kMapNoAccess, kMapNoAccess) << "a guard";
  EXPECT_EQ(m[4].flags & kMapNoAccess, 0u);
  EXPECT_EQ(m[13].flags & kMapStackVma, kMapStackVma);
  EXPECT_EQ(m[4].flags & kMapStackVma, 0u) << "a thread's stack is known by its guard, not its name";
  for (unsigned i : {5u, 6u, 7u, 8u, 9u, 11u}) EXPECT_EQ(m[i].flags & kMapShared, kMapShared) << "line " << i;
  for (unsigned i : {1u, 2u, 4u, 10u, 13u}) EXPECT_EQ(m[i].flags & kMapShared, 0u) << "line " << i;
}

// Pointers the program keeps in memory it made read-only (or executable) are roots when that
// memory is anonymous or shared anonymous; a file's own read-only contents are not read. Stop
// 48: a block whose only pointer lay in a page sealed with mprotect(PROT_READ) was freed.
TEST(ProcMaps, AnonymousMemoryIsReadWhateverItsPermissions) {
  std::vector<MapRange> m = parse(
      "10000000-10001000 r--p 00000000 00:00 0 \n"                              // 0 sealed page
      "10001000-10002000 r-xp 00000000 00:00 0 \n"                              // 1 a JIT's code
      "10002000-10003000 r--p 00000000 00:00 0     [anon:config]\n"             // 2 named anonymous
      "10003000-10004000 r--s 00000000 00:01 90    /memfd:sealed (deleted)\n"   // 3 sealed memfd
      "10004000-10005000 rw-s 00000000 00:0f 91    /anon_hugepage (deleted)\n"  // 4 hugetlb anonymous
      "10005000-10006000 r--p 00001000 fe:00 92    /usr/lib/libx.so\n"          // 5 rodata, RELRO
      "10006000-10007000 r-xp 00002000 fe:00 92    /usr/lib/libx.so\n"          // 6 text
      "10007000-10008000 r--s 00000000 fe:00 93    /home/u/data.bin\n"          // 7 shared file
      "10008000-10009000 ---p 00000000 00:00 0 \n");                            // 8 no access
  ASSERT_EQ(m.size(), 9u);
  auto scanned = [&](unsigned i) { return (m[i].flags & kMapScan) != 0; };
  for (unsigned i : {0u, 1u, 2u, 3u, 4u}) EXPECT_TRUE(scanned(i)) << "line " << i;
  for (unsigned i : {5u, 6u, 7u, 8u}) EXPECT_FALSE(scanned(i)) << "line " << i;
}

TEST(ProcMaps, MoreMappingsThanRoomIsAFailureNotAPart) {
  std::vector<MapRange> out(4);
  unsigned n = 99;
  EXPECT_FALSE(parse_maps(kMaps, std::strlen(kMaps), out.data(), 4, &n));
  EXPECT_EQ(n, 99u) << "the count is left alone";
  EXPECT_TRUE(parse_maps(kMaps, 0, out.data(), 4, &n));
  EXPECT_EQ(n, 0u);
}

TEST(ProcMaps, AMalformedOrCutTextStaysInsideItsBytes) {
  // Cut anywhere (a read that stopped short), a line is parsed from what is there; the parser
  // reads no byte beyond len (ASan would say so: the copy has no terminator).
  std::string text = kMaps;
  for (std::size_t len = 0; len <= text.size(); len += 7) {
    std::vector<char> bytes(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(len));
    std::vector<MapRange> out(32);
    unsigned n = 0;
    ASSERT_TRUE(parse_maps(bytes.data(), bytes.size(), out.data(), 32, &n)) << len;
    EXPECT_LE(n, 17u);
  }
  std::vector<MapRange> junk = parse("not a maps line\n\n-\nzz-yy rw\n");
  EXPECT_EQ(junk.size(), 4u);
}

TEST(ProcMaps, TheRangeHoldingAnAddressIsFoundAtItsEdges) {
  std::vector<MapRange> m = parse(kMaps);
  auto n = static_cast<unsigned>(m.size());
  EXPECT_EQ(map_containing(m.data(), n, 0x00403000u), &m[2]) << "lo is inside";
  EXPECT_EQ(map_containing(m.data(), n, 0x00423fffu), &m[2]);
  EXPECT_EQ(map_containing(m.data(), n, 0x00401000u), nullptr) << "hi is outside; a hole";
  EXPECT_EQ(map_containing(m.data(), n, 0x1000u), nullptr);
  EXPECT_EQ(map_containing(m.data(), n, 0xffff0800u), &m[16]);
  EXPECT_EQ(map_containing(m.data(), 0, 0x00403000u), nullptr);
}

TEST(ProcMaps, ACopyCoversTheProcessOnlyWithEveryScannedMapping) {
  std::vector<MapRange> before = parse(kMaps);
  auto nb = static_cast<unsigned>(before.size());
  EXPECT_TRUE(maps_cover(before.data(), nb, before.data(), nb));
  // The heap split in two (its permissions changed in part) still covers it.
  const std::string heap = "00403000-00424000 rw-p 00000000 00:00 0     [heap]\n";
  std::string text = kMaps;
  ASSERT_NE(text.find(heap), std::string::npos);
  text.replace(text.find(heap), heap.size(),
               "00403000-00410000 rw-p 00000000 00:00 0     [heap]\n"
               "00410000-00424000 rw-p 00000000 00:00 0     [heap]\n");
  std::vector<MapRange> split = parse(text);
  ASSERT_EQ(split.size(), before.size() + 1);
  EXPECT_TRUE(maps_cover(before.data(), nb, split.data(), static_cast<unsigned>(split.size())));
  // A mapping left out of the fork (MADV_DONTFORK): not covered.
  std::vector<MapRange> missing = before;
  missing.erase(missing.begin() + 6);
  EXPECT_FALSE(maps_cover(before.data(), nb, missing.data(), static_cast<unsigned>(missing.size())));
  // A mapping the copy cannot scan: not covered. One the scan never read may go.
  std::vector<MapRange> unscanned = before;
  unscanned[4].flags &= ~kMapScan;
  EXPECT_FALSE(maps_cover(before.data(), nb, unscanned.data(), nb));
  std::vector<MapRange> no_device = before;
  no_device.erase(no_device.begin() + 11);
  EXPECT_TRUE(maps_cover(before.data(), nb, no_device.data(), static_cast<unsigned>(no_device.size())));
}

TEST(ProcMaps, AWritableMappingWipedOnForkIsFound) {
  const std::string ro =
      "40000000-40001000 r--p 00000000 00:00 0\n"
      "Size:                  4 kB\n"
      "VmFlags: rd mr mw me wf \n";
  const std::string rw =
      "40001000-40002000 rw-p 00000000 00:00 0\n"
      "Rss:                   4 kB\n"
      "VmFlags: rd wr mr mw me ac wf\n";
  const std::string rw_plain =
      "40002000-40003000 rw-p 00000000 00:00 0\n"
      "VmFlags: rd wr mr mw me ac wfx awf\n";
  EXPECT_FALSE(smaps_wipes_writable(ro.data(), ro.size())) << "read-only: never scanned";
  EXPECT_TRUE(smaps_wipes_writable(rw.data(), rw.size()));
  EXPECT_FALSE(smaps_wipes_writable(rw_plain.data(), rw_plain.size())) << "wf only as a whole word";
  std::string both = ro + rw_plain;
  EXPECT_FALSE(smaps_wipes_writable(both.data(), both.size()));
  both += rw;
  EXPECT_TRUE(smaps_wipes_writable(both.data(), both.size()));
}

TEST(ProcMaps, TheSeccompLineSaysWhetherAFilterRuns) {
  const std::string none = "Name:\tprog\nSeccomp:\t0\nSeccomp_filters:\t0\n";
  const std::string filtered = "Name:\tprog\nSeccomp:\t2\nSeccomp_filters:\t1\n";
  const std::string strict = "Seccomp: 1\n";
  const std::string absent = "Name:\tprog\nState:\tR (running)\n";
  EXPECT_FALSE(status_seccomp_filtered(none.data(), none.size()));
  EXPECT_TRUE(status_seccomp_filtered(filtered.data(), filtered.size()));
  EXPECT_TRUE(status_seccomp_filtered(strict.data(), strict.size()));
  EXPECT_FALSE(status_seccomp_filtered(absent.data(), absent.size())) << "a kernel without seccomp";
}

TEST(ProcMaps, ThisProcessesOwnMapsHoldItsStackAndItsData) {
  static int in_bss;
  int on_stack = 0;
  std::vector<char> small(64);
  EXPECT_EQ(read_proc_text("/proc/self/maps", small.data(), small.size()), -1) << "a part is not the whole";
  EXPECT_EQ(read_proc_text("/proc/self/no-such-file", small.data(), small.size()), -1);
  std::vector<char> text(8u << 20);
  long len = read_proc_text("/proc/self/maps", text.data(), text.size());
  ASSERT_GT(len, 0);
  std::vector<MapRange> m(32768);
  unsigned n = 0;
  ASSERT_TRUE(parse_maps(text.data(), static_cast<std::size_t>(len), m.data(), 32768, &n));
  const MapRange* s = map_containing(m.data(), n, reinterpret_cast<std::uintptr_t>(&on_stack));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->flags & kMapScan, kMapScan);
  const MapRange* d = map_containing(m.data(), n, reinterpret_cast<std::uintptr_t>(&in_bss));
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->flags & kMapScan, kMapScan);
  for (unsigned i = 1; i < n; ++i) ASSERT_LE(m[i - 1].hi, m[i].lo) << "sorted and disjoint";
  long st = read_proc_text("/proc/thread-self/status", text.data(), text.size());
  ASSERT_GT(st, 0);
  EXPECT_FALSE(status_seccomp_filtered(text.data(), static_cast<std::size_t>(st))) << "the tests run unfiltered";
}

}  // namespace
}  // namespace kmm::shim

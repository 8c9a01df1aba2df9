// Tests of vm/kernel_space.h and vm/ptdump.h: swapper_pg_dir's direct map in both formats at
// the seed's splits, phys_offset, the conversions, bad configurations, the lazy vmalloc sync
// (map, unmap, TLB flush, table reclaim, generation), and the ptdump view.
#include "vm/kernel_space.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "buffer_frames.h"
#include "vm/ptdump.h"

namespace kmm::vm {
namespace {

using test::BufferFrames;

KernelSpaceConfig armv7(std::uint64_t page_offset, std::uint64_t ram = 192u << 20, phys_addr_t phys = 0) {
  KernelSpaceConfig c;
  c.format = Format::kArmv7Short;
  c.page_offset = page_offset;
  c.phys_offset = phys;
  c.ram_bytes = ram;
  c.vmalloc_start = page_offset + ram + (8u << 20);
  c.vmalloc_end = c.vmalloc_start + (240u << 20);
  return c;
}

KernelSpaceConfig aarch64(std::uint64_t ram = 192u << 20, phys_addr_t phys = 0x40000000) {
  KernelSpaceConfig c;
  c.format = Format::kAarch64Gran4k;
  c.page_offset = kAarch64PageOffset;
  c.phys_offset = phys;
  c.ram_bytes = ram;
  c.vmalloc_start = c.page_offset + ram + (8u << 20);
  c.vmalloc_end = c.vmalloc_start + (240u << 20);
  return c;
}

// Vmalloc areas as a map va -> pa.
struct FakeAreas final : VmallocPages {
  std::map<std::uint64_t, phys_addr_t> pages;
  bool frame_at(std::uint64_t va, phys_addr_t* pa) const override {
    auto it = pages.find(va);
    if (it == pages.end()) return false;
    *pa = it->second;
    return true;
  }
  void for_each_page(PageFn fn, void* arg) const override {
    for (auto& [va, pa] : pages) fn(arg, va, pa);
  }
  std::uint64_t generation() const override {
    std::uint64_t h = 7;
    for (auto& [va, pa] : pages) h = h * 31 + va * 17 + pa;
    return h;
  }
};

TEST(KernelSpace, SeedAddressesAtEverySplitArmv7) {
  for (std::uint64_t po : {0xC0000000ull, 0x80000000ull, 0x40000000ull}) {
    BufferFrames frames(0x10000000, 64);
    KernelSpace ks;
    ASSERT_EQ(ks.init(&frames, armv7(po)), VmError::kOk);
    for (std::uint64_t pa : {0x3012ull, 0x403012ull, 0x82012ull}) {
      Walk w = ks.pgd().translate(po + pa, AccessType::kRead, Privilege::kKernel);
      ASSERT_TRUE(w.ok()) << std::hex << po + pa;
      EXPECT_EQ(w.pa, pa);
      EXPECT_EQ(w.nsteps, 1) << "one section lookup, as the seed says";
      EXPECT_EQ(w.size_shift, 20);
      Walk u = ks.pgd().translate(po + pa, AccessType::kRead, Privilege::kUser);
      EXPECT_EQ(u.fault, FaultKind::kPermission);
      phys_addr_t back = 0;
      EXPECT_TRUE(ks.virt_to_phys(po + pa, &back));
      EXPECT_EQ(back, pa);
      std::uint64_t va = 0;
      EXPECT_TRUE(ks.phys_to_virt(pa, &va));
      EXPECT_EQ(va, po + pa);
    }
    EXPECT_FALSE(ks.in_direct_map(po - 1));
    EXPECT_FALSE(ks.in_direct_map(po + (192u << 20)));
    EXPECT_EQ(ks.table_frames(), 4u) << "sections only: just the 16 KB first-level table";
    EXPECT_TRUE(ks.check_invariants(nullptr));
    ks.destroy();
    EXPECT_EQ(frames.in_use(), 0u);
  }
}

TEST(KernelSpace, PhysOffsetHonouredAndUnalignedRamUsesPages) {
  BufferFrames frames(0x10000000, 64);
  KernelSpace ks;
  // RAM at 0x80004000: not section aligned, so the first and last MB are 4 KB pages.
  ASSERT_EQ(ks.init(&frames, armv7(0xC0000000, 16u << 20, 0x80004000)), VmError::kOk);
  Walk w = ks.pgd().translate(0xC0000012, AccessType::kRead, Privilege::kKernel);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.pa, 0x80004012u);
  EXPECT_EQ(w.size_shift, 12);
  EXPECT_TRUE(ks.check_invariants(nullptr));
}

TEST(KernelSpace, Aarch64LinearMapInTtbr1) {
  BufferFrames frames(0x10000000, 64);
  KernelSpace ks;
  ASSERT_EQ(ks.init(&frames, aarch64()), VmError::kOk);
  Walk w = ks.pgd().translate(kAarch64PageOffset + 0x403012, AccessType::kRead, Privilege::kKernel);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.pa, 0x40403012u);
  EXPECT_EQ(w.ttbr, 1);
  EXPECT_EQ(w.size_shift, 21) << "2 MB blocks";
  EXPECT_EQ(ks.pgd().translate(kAarch64PageOffset, AccessType::kRead, Privilege::kUser).fault, FaultKind::kPermission);
  EXPECT_TRUE(ks.check_invariants(nullptr));
}

TEST(KernelSpace, BadConfigurations) {
  BufferFrames frames(0x10000000, 64);
  KernelSpace ks;
  EXPECT_EQ(ks.init(&frames, armv7(0xC0100000)), VmError::kUnaligned) << "not on 16 MB";
  EXPECT_EQ(ks.init(&frames, armv7(0xC0000800)), VmError::kUnaligned);
  EXPECT_EQ(ks.init(&frames, armv7(0xC0000000, 2048u << 20)), VmError::kOutOfRange) << "RAM past 4G";
  EXPECT_EQ(ks.init(&frames, armv7(0x100000000ull)), VmError::kOutOfRange);
  KernelSpaceConfig low = aarch64();
  low.page_offset = 0xC0000000;
  EXPECT_EQ(ks.init(&frames, low), VmError::kOutOfRange) << "arm64 kernel must be in TTBR1";
  EXPECT_FALSE(ks.initialised());
  EXPECT_EQ(frames.in_use(), 0u);
  frames.set_limit(2);
  EXPECT_EQ(ks.init(&frames, armv7(0xC0000000)), VmError::kNoMemory);
  EXPECT_EQ(frames.in_use(), 0u);
}

TEST(KernelSpace, VmallocSyncMapsUnmapsFlushes) {
  for (bool a64 : {false, true}) {
    BufferFrames frames(0x10000000, 64);
    KernelSpace ks;
    KernelSpaceConfig c = a64 ? aarch64() : armv7(0xC0000000);
    ASSERT_EQ(ks.init(&frames, c), VmError::kOk);
    const std::uint64_t base_tables = ks.table_frames();
    FakeAreas areas;
    for (unsigned i = 0; i < 3; ++i) areas.pages[c.vmalloc_start + i * 4096] = 0x00500000 + (7 - i) * 4096;
    Tlb tlb;
    SyncStats st;
    const std::uint64_t gen = ks.generation();
    ASSERT_EQ(ks.sync_vmalloc(areas, &tlb, &st), VmError::kOk);
    EXPECT_EQ(st.mapped, 3u);
    EXPECT_GT(ks.generation(), gen);
    EXPECT_GT(ks.table_frames(), base_tables);
    Walk w = translate_cached(ks.pgd(), tlb, c.vmalloc_start + 0x1012, AccessType::kWrite, Privilege::kKernel, 0);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(w.pa, 0x00506012u);
    EXPECT_EQ(tlb.valid_entries(), 1u);
    // Nothing changed: skipped.
    SyncStats st2;
    ASSERT_EQ(ks.sync_vmalloc(areas, &tlb, &st2), VmError::kOk);
    EXPECT_EQ(st2.mapped + st2.unmapped, 0u);
    EXPECT_TRUE(ks.check_vmalloc(areas, nullptr));
    // check_vmalloc finds the tables and the areas apart, each way: a page mapped to another
    // frame than its area's, a page of an area not mapped, a mapped page of no area.
    for (int change = 0; change < 3; ++change) {
      FakeAreas moved = areas;
      if (change == 0) moved.pages[c.vmalloc_start + 4096] = 0x00600000;
      if (change == 1) moved.pages[c.vmalloc_start + 3 * 4096] = 0x00600000;
      if (change == 2) moved.pages.erase(c.vmalloc_start + 2 * 4096);
      StackText<160> why;
      EXPECT_FALSE(ks.check_vmalloc(moved, &why)) << change;
      EXPECT_NE(std::string(why.data()).find("vmalloc page 0x"), std::string::npos) << why.data();
    }
    // vfree: every page goes, the TLB entry too, and the tables are reclaimed.
    areas.pages.clear();
    SyncStats st3;
    ASSERT_EQ(ks.sync_vmalloc(areas, &tlb, &st3), VmError::kOk);
    EXPECT_EQ(st3.unmapped, 3u);
    EXPECT_EQ(tlb.valid_entries(), 0u);
    EXPECT_EQ(ks.table_frames(), base_tables);
    EXPECT_FALSE(ks.pgd().translate(c.vmalloc_start, AccessType::kRead, Privilege::kKernel).ok());
    EXPECT_TRUE(ks.check_invariants(nullptr));
    ks.destroy();
    EXPECT_EQ(frames.in_use(), 0u);
  }
}

TEST(KernelSpace, NextSpan) {
  EXPECT_EQ(next_span(Format::kArmv7Short, 0xC0012345, 1), 0xC0100000u);
  EXPECT_EQ(next_span(Format::kArmv7Short, 0xC0012345, 2), 0xC0013000u);
  EXPECT_EQ(next_span(Format::kAarch64Gran4k, 0x12345, 2), 0x200000u);
  EXPECT_EQ(next_span(Format::kAarch64Gran4k, 0x12345, 0), std::uint64_t{1} << 39);
  EXPECT_EQ(next_span(Format::kAarch64Gran4k, ~std::uint64_t{0} - 5, 3), ~std::uint64_t{0});
}

std::string dump(const KernelSpace& ks, const PtdumpMarker* m, unsigned n) {
  char buf[4096];
  TextSink out(buf, sizeof buf);
  ptdump(ks.pgd(), ks.kernel_base(), 0, m, n, out);
  return buf;
}

TEST(Ptdump, MergesRangesAndPrintsMarkers) {
  BufferFrames frames(0x10000000, 64);
  KernelSpace ks;
  KernelSpaceConfig c = armv7(0xC0000000);
  ASSERT_EQ(ks.init(&frames, c), VmError::kOk);
  FakeAreas areas;
  areas.pages[c.vmalloc_start] = 0x00500000;
  areas.pages[c.vmalloc_start + 4096] = 0x00900000;
  ASSERT_EQ(ks.sync_vmalloc(areas, nullptr), VmError::kOk);
  const PtdumpMarker marks[] = {
      {c.page_offset, "Kernel Mapping"}, {c.vmalloc_start, "vmalloc() Area"}, {c.vmalloc_end, "vmalloc() End"}};
  std::string s = dump(ks, marks, 3);
  EXPECT_EQ(s,
            "---[ Kernel Mapping ]---\n"
            "0xc0000000-0xcc000000       192M SECTION       RW NX SHD    normal WB-WA\n"
            "---[ vmalloc() Area ]---\n"
            "0xcc800000-0xcc802000         8K PTE           RW NX SHD    normal WB-WA\n"
            "---[ vmalloc() End ]---\n")
      << s;
}

TEST(Ptdump, Aarch64Levels) {
  BufferFrames frames(0x10000000, 64);
  KernelSpace ks;
  ASSERT_EQ(ks.init(&frames, aarch64(3u << 20)), VmError::kOk);
  std::string s = dump(ks, nullptr, 0);
  EXPECT_NE(s.find("0xffff000000000000-0xffff000000200000         2M PMD"), std::string::npos) << s;
  EXPECT_NE(s.find("0xffff000000200000-0xffff000000300000         1M PTE"), std::string::npos) << s;
}

}  // namespace
}  // namespace kmm::vm

// tests/phys/test_phys_mem.cpp — PhysMem over a committed buffer, with phys_offset 0 and a
// nonzero phys_offset: the seed's PFN examples, every conversion and its round trip, mem_map
// inside RAM with its frames PG_reserved, init's refusals, and memblock_alloc.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "pal/pal.h"
#include "phys/phys_mem.h"

namespace kmm {
namespace {

class Ram {
 public:
  explicit Ram(std::size_t size) : size_(size) {
    p_ = static_cast<char*>(mmap_platform().reserve(size, kPageSize));
    if (p_ != nullptr && !mmap_platform().commit(p_, size)) p_ = nullptr;
  }
  ~Ram() {
    if (p_ != nullptr) mmap_platform().release(p_, size_);
  }
  char* get() const { return p_; }
  std::size_t size() const { return size_; }

 private:
  char* p_;
  std::size_t size_;
};

TEST(PhysMem, SeedExamples) {
  // 001: PFN = physical address >> 12.
  EXPECT_EQ(PhysMem::phys_to_pfn(0x82012), 0x82u);
  EXPECT_EQ(PhysMem::phys_page_offset(0x82012), 0x12u);
  EXPECT_EQ(PhysMem::phys_to_pfn(0x3012), 3u);
  EXPECT_EQ(PhysMem::phys_page_offset(0x3012), 0x12u);
  EXPECT_EQ(PhysMem::phys_to_pfn(0x403012), 0x403u);
  EXPECT_EQ(PhysMem::phys_page_offset(0x403012), 0x12u);
  EXPECT_EQ(PhysMem::pfn_to_phys(0x403), 0x403000u);
  EXPECT_EQ(PhysMem::pfn_to_phys(0x403) + PhysMem::phys_page_offset(0x403012), 0x403012u);
  // Physical addresses are 64-bit: a frame above 4 GiB.
  EXPECT_EQ(PhysMem::phys_to_pfn(0x1'2345'6789ull), 0x123456u);
  EXPECT_EQ(PhysMem::pfn_to_phys(0x123456), 0x1'2345'6000ull);
}

void check_round_trips(const PhysMem& pm, const Ram& ram, phys_addr_t pa) {
  SCOPED_TRACE(pa);
  ASSERT_TRUE(pm.phys_valid(pa));
  pfn_t pfn = PhysMem::phys_to_pfn(pa);
  ASSERT_TRUE(pm.pfn_valid(pfn));
  char* v = static_cast<char*>(pm.phys_to_virt(pa));
  EXPECT_EQ(v, ram.get() + (pa - pm.phys_offset()));
  EXPECT_TRUE(pm.owns(v));
  EXPECT_EQ(pm.virt_to_phys(v), pa);
  EXPECT_EQ(pm.virt_to_pfn(v), pfn);
  Page* page = pm.pfn_to_page(pfn);
  EXPECT_EQ(page, pm.mem_map() + (pfn - pm.base_pfn()));
  EXPECT_EQ(pm.page_to_pfn(page), pfn);
  EXPECT_EQ(pm.virt_to_page(v), page);
  EXPECT_EQ(pm.page_address(page), v - PhysMem::phys_page_offset(pa));
  EXPECT_EQ(pm.pfn_to_virt(pfn), pm.page_address(page));
  EXPECT_EQ(pm.virt_to_phys(pm.page_address(page)), PhysMem::pfn_to_phys(pfn));
  // The memory is really there: write through the direct map, read back by frame.
  *v = 0x5C;
  EXPECT_EQ(static_cast<char*>(pm.page_address(page))[PhysMem::phys_page_offset(pa)], 0x5C);
}

TEST(PhysMem, ZeroOffsetConversions) {
  Ram ram(std::size_t{8} << 20);
  ASSERT_NE(ram.get(), nullptr);
  PhysMem pm;
  ASSERT_TRUE(pm.init(ram.get(), ram.size(), 0));
  EXPECT_EQ(pm.base_pfn(), 0u);
  EXPECT_EQ(pm.nr_pages(), 2048u);
  EXPECT_EQ(pm.end_pfn(), 2048u);
  EXPECT_EQ(pm.size(), std::size_t{8} << 20);
  EXPECT_EQ(pm.phys_offset(), 0u);
  EXPECT_EQ(pm.base(), ram.get());
  for (phys_addr_t pa :
       {phys_addr_t{0x82012}, phys_addr_t{0x3012}, phys_addr_t{0x403012}, phys_addr_t{0}, phys_addr_t{0x7FFFFF}}) {
    check_round_trips(pm, ram, pa);
  }
  // The seed's frames, by address: frame 0x403 starts 0x403000 bytes into RAM.
  EXPECT_EQ(pm.pfn_to_virt(0x403), ram.get() + 0x403000);
  EXPECT_EQ(pm.pfn_to_virt(3), ram.get() + 0x3000);
  EXPECT_EQ(pm.virt_to_pfn(ram.get() + 0x82012), 0x82u);
}

TEST(PhysMem, NonzeroOffsetConversions) {
  Ram ram(std::size_t{8} << 20);
  ASSERT_NE(ram.get(), nullptr);
  PhysMem pm;
  constexpr phys_addr_t kOffset = 0x80000000;  // Raspberry Pi style RAM base
  ASSERT_TRUE(pm.init(ram.get(), ram.size(), kOffset));
  EXPECT_EQ(pm.base_pfn(), 0x80000u);
  EXPECT_EQ(pm.end_pfn(), 0x80000u + 2048);
  EXPECT_EQ(pm.phys_offset(), kOffset);
  EXPECT_FALSE(pm.phys_valid(0x403012)) << "below RAM";
  EXPECT_FALSE(pm.pfn_valid(0x403));
  EXPECT_FALSE(pm.pfn_valid(0x80000u - 1));
  EXPECT_TRUE(pm.pfn_valid(0x80000u));
  EXPECT_TRUE(pm.pfn_valid(0x80000u + 2047));
  EXPECT_FALSE(pm.pfn_valid(0x80000u + 2048));
  EXPECT_FALSE(pm.phys_valid(kOffset + (8u << 20)));
  for (phys_addr_t pa : {kOffset + 0x82012, kOffset + 0x3012, kOffset + 0x403012, kOffset, kOffset + 0x7FFFFF}) {
    check_round_trips(pm, ram, pa);
  }
  EXPECT_EQ(PhysMem::phys_to_pfn(kOffset + 0x403012), 0x80403u);
  EXPECT_EQ(pm.phys_to_virt(kOffset + 0x403012), ram.get() + 0x403012);
  EXPECT_EQ(pm.virt_to_phys(ram.get() + 0x3012), kOffset + 0x3012);
}

TEST(PhysMem, OffsetAboveFourGiB) {
  Ram ram(std::size_t{1} << 20);
  ASSERT_NE(ram.get(), nullptr);
  PhysMem pm;
  constexpr phys_addr_t kOffset = 0x8'0000'0000ull;  // 32 GiB
  ASSERT_TRUE(pm.init(ram.get(), ram.size(), kOffset));
  EXPECT_EQ(pm.base_pfn(), 0x800000u);
  check_round_trips(pm, ram, kOffset + 0x12345);
}

TEST(PhysMem, MemMapLivesInRamAndIsReserved) {
  Ram ram(std::size_t{16} << 20);
  ASSERT_NE(ram.get(), nullptr);
  std::memset(ram.get(), 0xEE, ram.size());  // init must not rely on zeroed memory
  PhysMem pm;
  ASSERT_TRUE(pm.init(ram.get(), ram.size(), 0x100000));
  EXPECT_EQ(static_cast<void*>(pm.mem_map()), static_cast<void*>(ram.get()));
  EXPECT_EQ(pm.mem_map_bytes(), 4096u * sizeof(Page));
  // 4096 descriptors of 32 bytes = 128 KiB = 32 frames.
  EXPECT_EQ(pm.reserved_pages(), 32u);
  EXPECT_EQ(pm.first_free_pfn(), pm.base_pfn() + 32);
  EXPECT_TRUE(pm.owns(pm.mem_map() + pm.nr_pages() - 1));
  for (pfn_t pfn = pm.base_pfn(); pfn < pm.end_pfn(); ++pfn) {
    const Page* p = pm.pfn_to_page(pfn);
    if (pfn < pm.first_free_pfn()) {
      ASSERT_EQ(p->flags, std::uint32_t{PG_reserved}) << pfn;
      ASSERT_EQ(p->refcount, 1u) << pfn;
    } else {
      ASSERT_EQ(p->flags, 0u) << pfn;
      ASSERT_EQ(p->refcount, 0u) << pfn;
      ASSERT_EQ(p->owner, kOwnerFree) << pfn;
    }
  }
  // The descriptor of mem_map's own first frame is inside mem_map.
  EXPECT_EQ(pm.virt_to_page(pm.mem_map()), pm.mem_map());
  EXPECT_EQ(pm.compound_head(pm.mem_map() + 40), pm.mem_map() + 40);
}

// A fresh anonymous mapping (the preload's RAM): nothing is written at init, so mem_map's own
// 1/128 is not faulted in; its frames are still boot frames, and memblock's are marked.
TEST(PhysMem, FreshZeroRamLeavesMemMapUntouched) {
  Ram ram(std::size_t{16} << 20);
  ASSERT_NE(ram.get(), nullptr);
  PhysMem pm;
  ASSERT_TRUE(pm.init(ram.get(), ram.size(), 0, /*online=*/std::size_t{1} << 20, /*fresh_zero=*/true));
  EXPECT_EQ(pm.reserved_pages(), 32u);
  for (pfn_t pfn = pm.base_pfn(); pfn < pm.first_free_pfn(); ++pfn) {
    ASSERT_EQ(pm.pfn_to_page(pfn)->flags, 0u) << "left unwritten: " << pfn;
    ASSERT_TRUE(pm.is_boot_frame(pfn)) << pfn;
  }
  EXPECT_FALSE(pm.is_boot_frame(pm.first_free_pfn()));
  EXPECT_FALSE(pm.is_boot_frame(pm.base_pfn() - 1));
  void* boot = pm.memblock_alloc(2 * kPageSize);
  ASSERT_NE(boot, nullptr);
  pfn_t first = pm.virt_to_pfn(boot);
  EXPECT_EQ(pm.pfn_to_page(first)->flags, std::uint32_t{PG_reserved});
  EXPECT_EQ(pm.pfn_to_page(first + 1)->flags, std::uint32_t{PG_reserved});
  EXPECT_TRUE(pm.is_boot_frame(first + 1));
  EXPECT_FALSE(pm.is_boot_frame(first + 2));
  pfn_t got = 0;
  EXPECT_NE(pm.online_more(64, &got), kNoPfn);
  EXPECT_EQ(got, 64u);
}

TEST(PhysMem, CompoundHeadFollowsTail) {
  Ram ram(std::size_t{1} << 20);
  ASSERT_NE(ram.get(), nullptr);
  PhysMem pm;
  ASSERT_TRUE(pm.init(ram.get(), ram.size(), 0x4000));
  pfn_t head = pm.first_free_pfn();
  Page* t = pm.pfn_to_page(head + 1);
  t->flags = PG_tail;
  t->tail.head = head;
  EXPECT_EQ(pm.compound_head(t), pm.pfn_to_page(head));
}

TEST(PhysMem, InitRefusesBadRegions) {
  Ram ram(std::size_t{1} << 20);
  ASSERT_NE(ram.get(), nullptr);
  PhysMem pm;
  EXPECT_FALSE(pm.init(ram.get() + 8, ram.size() - kPageSize, 0)) << "base not page aligned";
  EXPECT_FALSE(pm.init(ram.get(), ram.size(), 0x1001)) << "phys_offset not page aligned";
  EXPECT_FALSE(pm.init(ram.get(), kPageSize, 0)) << "one frame cannot hold mem_map and anything else";
  EXPECT_FALSE(pm.init(ram.get(), kPageSize - 1, 0));
  EXPECT_EQ(pm.nr_pages(), 0u);
  EXPECT_FALSE(pm.owns(ram.get()));
  // Two frames: one for mem_map, one free. A size that is not a whole number of frames
  // is cut down.
  ASSERT_TRUE(pm.init(ram.get(), 2 * kPageSize + 100, 0));
  EXPECT_EQ(pm.nr_pages(), 2u);
  EXPECT_EQ(pm.reserved_pages(), 1u);
  EXPECT_FALSE(pm.owns(ram.get() + 2 * kPageSize));
}

TEST(PhysMem, MemblockAlloc) {
  Ram ram(std::size_t{1} << 20);  // 256 frames, mem_map 8 KiB = 2 frames
  ASSERT_NE(ram.get(), nullptr);
  std::memset(ram.get(), 0xAB, ram.size());
  PhysMem pm;
  ASSERT_TRUE(pm.init(ram.get(), ram.size(), 0x40000000));
  ASSERT_EQ(pm.reserved_pages(), 2u);
  pfn_t first = pm.first_free_pfn();
  auto* a = static_cast<unsigned char*>(pm.memblock_alloc(100));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a, pm.pfn_to_virt(first));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % kPageSize, 0u);
  for (std::size_t i = 0; i < kPageSize; ++i) ASSERT_EQ(a[i], 0) << "memblock memory is zeroed";
  EXPECT_EQ(pm.first_free_pfn(), first + 1);
  EXPECT_EQ(pm.pfn_to_page(first)->flags, std::uint32_t{PG_reserved});
  auto* b = static_cast<unsigned char*>(pm.memblock_alloc(3 * kPageSize + 1));
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b, a + kPageSize);
  EXPECT_EQ(pm.first_free_pfn(), first + 5);
  for (pfn_t f = first + 1; f < first + 5; ++f) EXPECT_EQ(pm.pfn_to_page(f)->flags, std::uint32_t{PG_reserved});
  EXPECT_EQ(pm.pfn_to_page(first + 5)->flags, 0u);
  EXPECT_EQ(b[4 * kPageSize], 0xAB) << "the frame after the allocation is untouched";
  EXPECT_EQ(pm.memblock_alloc(0), nullptr);
  // Exhaustion: 256 - 7 frames remain; one more than that fails and takes nothing.
  std::size_t left = std::size_t{pm.end_pfn() - pm.first_free_pfn()} << kPageShift;
  EXPECT_EQ(left, (256u - 7u) * kPageSize);
  EXPECT_EQ(pm.memblock_alloc(left + 1), nullptr);
  EXPECT_EQ(pm.first_free_pfn(), first + 5);
  EXPECT_NE(pm.memblock_alloc(left), nullptr);
  EXPECT_EQ(pm.first_free_pfn(), pm.end_pfn());
  EXPECT_EQ(pm.memblock_alloc(1), nullptr);
}

}  // namespace
}  // namespace kmm

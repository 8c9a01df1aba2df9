// Growable RAM (memory hotplug): a machine that reserves much and brings frames online as the
// page allocator runs dry — the shape of kmm as a process's malloc. Covers growth through
// slab and large allocations, the ceiling, invariants, and buddy blocks aligned in host
// addresses (so big alignments come straight from the buddy allocator), and the preload's
// lazily marked boot frames.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "../common/report_capture.h"
#include "base/text.h"
#include "kernel/kernel.h"

namespace kmm {
namespace {

using test::ReportCapture;

BootConfig growable(std::uint64_t ram, std::uint64_t online, std::uint64_t step) {
  BootConfig cfg;
  cfg.ram_bytes = ram;
  cfg.online_bytes = online;
  cfg.grow_bytes = step;
  cfg.min_free_kbytes = ~std::uint64_t{0};
  cfg.page_offset = 0x40000000;  // a 1G/3G split: a 1 GB machine fits below the vmalloc area
  return cfg;
}

TEST(Grow, StartsSmallAndGrowsOnDemand) {
  Kernel* k = Kernel::boot(growable(std::uint64_t{1} << 30, 8 << 20, 4 << 20), nullptr);
  ASSERT_NE(k, nullptr);
  std::uint64_t managed0 = k->zone().managed_pages();
  EXPECT_LT(managed0 * kPageSize, std::uint64_t{8} << 20);
  std::vector<void*> blocks;
  for (int i = 0; i < 64 * 256; ++i) {  // 64 MB of 4 KiB objects
    void* p = k->kmalloc(4096);
    ASSERT_NE(p, nullptr) << "allocation " << i;
    blocks.push_back(p);
  }
  EXPECT_GT(k->zone().managed_pages(), managed0);
  EXPECT_GE(k->zone().managed_pages() * kPageSize, std::uint64_t{64} << 20);
  EXPECT_LT(k->zone().managed_pages() * kPageSize, std::uint64_t{80} << 20) << "grew far more than needed";
  StackText<256> why;
  EXPECT_TRUE(k->check_invariants(&why)) << why.data();
  for (void* p : blocks) EXPECT_TRUE(k->kfree(p));
  EXPECT_TRUE(k->check_invariants(&why)) << why.data();
  EXPECT_EQ(k->zone().free_pages(), k->zone().managed_pages());
  k->shutdown();
}

// The preload's boot (lazy_boot_frames): mem_map's own descriptors stay unwritten, and a free
// of a pointer into mem_map is still an invalid free ("not a kmalloc block"), not a double free.
TEST(Grow, LazyBootFramesAreStillNoKmallocBlock) {
  BootConfig cfg = growable(std::uint64_t{1} << 30, 8 << 20, 4 << 20);
  cfg.lazy_boot_frames = true;
  Kernel* k = Kernel::boot(cfg, nullptr);
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->phys().mem_map()->flags, 0u) << "mem_map's first descriptor was not written";
  ReportCapture cap;
  EXPECT_EQ(k->kmalloc_layer().kfree(k->phys().mem_map() + 8, "kfree"), kOwnerFree);
  EXPECT_EQ(cap.last().kind, ErrorKind::kInvalidFree);
  EXPECT_EQ(cap.last().detail, "not a kmalloc block");
  void* p = k->kmalloc(100);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(k->kfree(p));
  StackText<256> why;
  EXPECT_TRUE(k->check_invariants(&why)) << why.data();
  k->shutdown();
}

// A growth writes the heads of its new free blocks and nothing else of mem_map: the frames'
// descriptors come online zero, and in the preload's fresh mapping a page of mem_map that
// nothing writes stays out of the process's resident set (mincore says which are in).
TEST(Grow, AGrowthTouchesOnlyItsBlocksHeadsInMemMap) {
  BootConfig cfg = growable(std::uint64_t{1} << 30, 8 << 20, 32 << 20);
  cfg.lazy_boot_frames = true;
  Kernel* k = Kernel::boot(cfg, nullptr);
  ASSERT_NE(k, nullptr);
  pfn_t end0 = k->zone().end_pfn();
  void* p = k->alloc_pages(kMaxOrder);  // more than the boot frames hold: a growth of 32 MiB
  ASSERT_NE(p, nullptr);
  pfn_t end1 = k->zone().end_pfn();
  ASSERT_GE(end1 - end0, pfn_t{8192});
  const long page = sysconf(_SC_PAGESIZE);
  auto first = reinterpret_cast<std::uintptr_t>(k->phys().pfn_to_page(end0));
  auto last = reinterpret_cast<std::uintptr_t>(k->phys().pfn_to_page(end1));
  first = (first + static_cast<std::uintptr_t>(page) - 1) & ~static_cast<std::uintptr_t>(page - 1);
  last &= ~static_cast<std::uintptr_t>(page - 1);
  ASSERT_GT(last, first);
  std::vector<unsigned char> in((last - first) / static_cast<std::uintptr_t>(page));
  ASSERT_EQ(mincore(reinterpret_cast<void*>(first), last - first, in.data()), 0);
  std::size_t resident = 0;
  for (unsigned char v : in) resident += v & 1;
  // Written: the head of each new free block (about one in 8 pages: an order-10 block's 1024
  // descriptors fill 8), and the 8 pages of the block allocated: 17 of 63 here. Before, a
  // growth stored zeros into every descriptor: all 63.
  EXPECT_LE(resident, in.size() / 2) << resident << " of " << in.size() << " pages of mem_map resident";
  StackText<256> why;
  EXPECT_TRUE(k->check_invariants(&why)) << why.data();
  EXPECT_TRUE(k->free_pages(p));
  k->shutdown();
}

// The empty slabs a cache keeps (slab_empty_keep_bytes) are memory the machine holds: an
// allocation that finds the zone dry takes them back before the heap grows (Kernel::grow).
TEST(Grow, KeptEmptySlabsAreGivenBackBeforeTheHeapGrows) {
  BootConfig cfg = growable(std::uint64_t{1} << 30, 8 << 20, 4 << 20);
  cfg.slab_empty_keep_bytes = std::uint64_t{64} << 20;
  Kernel* k = Kernel::boot(cfg, nullptr);
  ASSERT_NE(k, nullptr);
  std::vector<void*> objs;
  for (int i = 0; i < 4096; ++i) {  // 16 MiB of 4 KiB objects
    void* p = k->kmalloc(4096);
    ASSERT_NE(p, nullptr);
    objs.push_back(p);
  }
  for (void* p : objs) EXPECT_TRUE(k->kfree(p));
  KmemCache* c = k->kmalloc_layer().cache_for(4096);
  ASSERT_GT(c->nr_empty, 16u) << "the cache keeps its emptied slabs";
  const std::uint64_t managed = k->zone().managed_pages();
  const std::uint64_t kept = std::uint64_t{c->nr_empty} << c->order;
  ASSERT_LT(k->zone().free_pages(), kept) << "the zone itself must run dry for the test to mean anything";
  // Page blocks of half what the slabs hold (the rest of a block may straddle memory the
  // machine reserved at boot): they come from the slabs given back.
  std::vector<void*> blocks;
  for (std::uint64_t got = 0; got + 256 <= kept / 2; got += 256) {
    void* b = k->alloc_pages(8);
    ASSERT_NE(b, nullptr);
    blocks.push_back(b);
  }
  EXPECT_EQ(k->zone().managed_pages(), managed) << "the heap grew while the cache held empty slabs";
  EXPECT_LE(c->nr_empty, cfg.min_partial);
  for (void* b : blocks) EXPECT_TRUE(k->free_pages(b));
  StackText<256> why;
  EXPECT_TRUE(k->check_invariants(&why)) << why.data();
  k->shutdown();
}

TEST(Grow, LargeBlocksGrowToo) {
  Kernel* k = Kernel::boot(growable(std::uint64_t{256} << 20, 4 << 20, 1 << 20), nullptr);
  ASSERT_NE(k, nullptr);
  void* p = k->kmalloc(std::size_t{1} << 20);  // pow2: order 8
  ASSERT_NE(p, nullptr);
  void* q = k->alloc_pages(kMaxOrder);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(q) % (kPageSize << kMaxOrder), 0u) << "order-10 block not 4 MiB aligned";
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % (std::size_t{1} << 20), 0u) << "order-8 block not 1 MiB aligned";
  EXPECT_TRUE(k->kfree(p));
  EXPECT_TRUE(k->free_pages(q));
  StackText<256> why;
  EXPECT_TRUE(k->check_invariants(&why)) << why.data();
  k->shutdown();
}

TEST(Grow, StopsAtTheReservation) {
  Kernel* k = Kernel::boot(growable(std::uint64_t{16} << 20, 2 << 20, 2 << 20), nullptr);
  ASSERT_NE(k, nullptr);
  std::vector<void*> blocks;
  for (;;) {
    void* p = k->kmalloc(64 * 1024);
    if (p == nullptr) break;
    blocks.push_back(p);
    ASSERT_LT(blocks.size(), 1000u);
  }
  EXPECT_EQ(k->phys().online_end_pfn(), k->phys().end_pfn());
  EXPECT_GE(blocks.size(), 200u);  // 16 MB less mem_map and boot memory, in 64 KB blocks
  for (void* p : blocks) k->kfree(p);
  StackText<256> why;
  EXPECT_TRUE(k->check_invariants(&why)) << why.data();
  k->shutdown();
}

}  // namespace
}  // namespace kmm

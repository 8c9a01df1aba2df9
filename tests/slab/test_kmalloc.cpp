// tests/slab/test_kmalloc.cpp — kmalloc over the slab caches and the buddy allocator: Linux's
// size classes, ksize/footprint, kzalloc, kcalloc overflow, krealloc, ZERO_SIZE_PTR, the pow2
// and kmalloc2 policies for large blocks (the seed's 12,000 B / 33 KB / 130 KB numbers), out
// of memory, owner bytes; bad kfree calls as death tests and under OnError::kReport.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "../common/machine_fixture.h"
#include "../common/report_capture.h"

namespace kmm {
namespace {

using test::Machine;
using test::MachineOptions;
using test::ReportCapture;

MachineOptions with_policy(KmallocPolicy policy, std::size_t ram = std::size_t{16} << 20) {
  MachineOptions o;
  o.ram = ram;
  o.kmalloc_cfg.policy = policy;
  return o;
}

class Kmalloc_ : public ::testing::Test {
 protected:
  void SetUp() override {
    test::default_report_policy();
    ASSERT_TRUE(m.ok());
  }
  Machine m{with_policy(KmallocPolicy::kPow2)};
};
using KmallocTest = Kmalloc_;
using KmallocDeathTest = Kmalloc_;

std::string class_name_for(std::size_t size) {
  static const std::size_t sizes[] = {8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192};
  static const char* names[] = {"kmalloc-8",   "kmalloc-16",  "kmalloc-32",  "kmalloc-64",  "kmalloc-96",
                                "kmalloc-128", "kmalloc-192", "kmalloc-256", "kmalloc-512", "kmalloc-1k",
                                "kmalloc-2k",  "kmalloc-4k",  "kmalloc-8k"};
  for (unsigned i = 0; i < 13; ++i)
    if (size <= sizes[i]) return names[i];
  return "";
}

TEST_F(KmallocTest, SizeClassesAreLinuxs) {
  EXPECT_EQ(std::string(m.km.cache_for(1)->name), "kmalloc-8");
  EXPECT_EQ(std::string(m.km.cache_for(8)->name), "kmalloc-8");
  EXPECT_EQ(std::string(m.km.cache_for(9)->name), "kmalloc-16");
  EXPECT_EQ(std::string(m.km.cache_for(64)->name), "kmalloc-64");
  EXPECT_EQ(std::string(m.km.cache_for(65)->name), "kmalloc-96");
  EXPECT_EQ(std::string(m.km.cache_for(96)->name), "kmalloc-96");
  EXPECT_EQ(std::string(m.km.cache_for(97)->name), "kmalloc-128");
  EXPECT_EQ(std::string(m.km.cache_for(129)->name), "kmalloc-192");
  EXPECT_EQ(std::string(m.km.cache_for(192)->name), "kmalloc-192");
  EXPECT_EQ(std::string(m.km.cache_for(193)->name), "kmalloc-256");
  EXPECT_EQ(std::string(m.km.cache_for(4097)->name), "kmalloc-8k");
  EXPECT_EQ(std::string(m.km.cache_for(8192)->name), "kmalloc-8k");
  EXPECT_EQ(m.km.cache_for(8193), nullptr) << "above 8 KiB: straight from the page allocator";
  for (std::size_t size = 1; size <= 8192; ++size) {
    KmemCache* c = m.km.cache_for(size);
    ASSERT_NE(c, nullptr) << size;
    ASSERT_EQ(std::string(c->name), class_name_for(size)) << size;
    ASSERT_GE(c->object_size, size);
  }
  for (unsigned i = 0; i < kNrKmallocClasses; ++i) {
    EXPECT_EQ(m.km.class_cache(i)->object_size, Kmalloc::class_size(i));
    EXPECT_TRUE(m.km.class_cache(i)->flags & SLAB_KMALLOC);
  }
}

TEST_F(KmallocTest, AllocationsLandInTheirClass) {
  for (std::size_t size : {1u, 8u, 13u, 64u, 65u, 96u, 100u, 129u, 192u, 193u, 1000u, 4096u, 5000u, 8192u}) {
    SCOPED_TRACE(size);
    void* p = m.km.kmalloc(size, GFP_KERNEL, kOwnerKernel);
    ASSERT_NE(p, nullptr);
    SlabAllocator::ObjectInfo info{};
    ASSERT_TRUE(m.slab.lookup(p, &info));
    EXPECT_EQ(std::string(info.cache->name), class_name_for(size));
    EXPECT_EQ(m.km.ksize(p), info.cache->size);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 8, 0u);
    std::memset(p, 0x77, m.km.ksize(p));  // usable over ksize, not just size
    EXPECT_EQ(m.km.kfree(p), kOwnerKernel);
    EXPECT_TRUE(m.check());
  }
}

TEST_F(KmallocTest, ZeroSizePointer) {
  ReportCapture cap;
  void* z = m.km.kmalloc(0, GFP_KERNEL, kOwnerKernel);
  EXPECT_EQ(z, ZERO_SIZE_PTR);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(z), 16u);
  EXPECT_EQ(m.km.kmalloc(0, GFP_KERNEL, kOwnerKernel), ZERO_SIZE_PTR);
  EXPECT_EQ(m.km.ksize(z), 0u);
  EXPECT_EQ(m.km.kfree(z), kOwnerFree);
  EXPECT_EQ(m.km.kfree(nullptr), kOwnerFree);
  EXPECT_EQ(m.km.kzalloc(0, GFP_KERNEL, kOwnerKernel), ZERO_SIZE_PTR);
  EXPECT_EQ(m.km.kcalloc(0, 100, GFP_KERNEL, kOwnerKernel), ZERO_SIZE_PTR);
  EXPECT_EQ(cap.count(), 0u) << "kfree(ZERO_SIZE_PTR) and kfree(NULL) are not errors";
  EXPECT_EQ(m.zone.free_pages(), m.boot_free_pages());
}

TEST_F(KmallocTest, KzallocZeroes) {
  for (std::size_t size : {24u, 100u, 3000u, 20000u}) {
    SCOPED_TRACE(size);
    void* keep = m.km.kmalloc(size, GFP_KERNEL, kOwnerKernel);  // keeps slabs alive
    auto* p = static_cast<unsigned char*>(m.km.kmalloc(size, GFP_KERNEL, kOwnerKernel));
    std::memset(p, 0xEE, m.km.ksize(p));
    m.km.kfree(p);
    auto* q = static_cast<unsigned char*>(m.km.kzalloc(size, GFP_KERNEL, kOwnerKernel));
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q, p) << "the block just freed comes back";
    for (std::size_t i = 0; i < size; ++i) ASSERT_EQ(q[i], 0) << i;
    m.km.kfree(q);
    m.km.kfree(keep);
  }
  EXPECT_TRUE(m.check());
}

TEST_F(KmallocTest, KcallocMultipliesAndChecksOverflow) {
  auto* p = static_cast<unsigned char*>(m.km.kcalloc(10, 24, GFP_KERNEL, kOwnerKernel));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(m.km.ksize(p), 256u) << "240 bytes: kmalloc-256";
  for (int i = 0; i < 240; ++i) ASSERT_EQ(p[i], 0);
  m.km.kfree(p);
  ReportCapture cap;
  const std::size_t big = std::numeric_limits<std::size_t>::max() / 2 + 1;
  EXPECT_EQ(m.km.kcalloc(big, 2, GFP_KERNEL, kOwnerKernel), nullptr);
  ASSERT_EQ(cap.count(), 1u);
  EXPECT_EQ(cap.last().kind, ErrorKind::kSizeOverflow);
  EXPECT_EQ(cap.last().action, "kcalloc");
  EXPECT_NE(cap.text().find("allocation size overflow in kcalloc"), std::string::npos) << cap.text();
  EXPECT_NE(cap.text().find(" * 2 overflows size_t"), std::string::npos) << cap.text();
  // A product that fits but no allocator serves: null.
  EXPECT_EQ(m.km.kcalloc(std::size_t{1} << 20, 1024, GFP_KERNEL, kOwnerKernel), nullptr);
  EXPECT_TRUE(m.check());
  EXPECT_EQ(m.zone.free_pages(), m.boot_free_pages());
}

TEST_F(KmallocTest, KreallocKeepsContents) {
  auto* p = static_cast<unsigned char*>(m.km.kmalloc(24, GFP_KERNEL, 9));
  for (int i = 0; i < 24; ++i) p[i] = static_cast<unsigned char>(i + 1);
  // Within ksize: the same block.
  EXPECT_EQ(m.km.krealloc(p, 32, GFP_KERNEL, 9), p);
  // Grow through the classes into a large block: contents follow, owner kept. A slab object
  // moves; a page run may grow where it is (KreallocGrowsAPageRunInPlace).
  std::size_t sizes[] = {100, 5000, 20000, 300000};
  for (std::size_t size : sizes) {
    SCOPED_TRACE(size);
    bool was_slab_object = m.km.ksize(p) <= kKmallocMaxCacheSize;
    auto* q = static_cast<unsigned char*>(m.km.krealloc(p, size, GFP_KERNEL, kOwnerKernel));
    ASSERT_NE(q, nullptr);
    if (was_slab_object) {
      EXPECT_NE(q, p);
    }
    EXPECT_GE(m.km.ksize(q), size);
    for (int i = 0; i < 24; ++i) ASSERT_EQ(q[i], i + 1);
    EXPECT_EQ(m.km.owner_of(q), 9) << "krealloc keeps the block's owner";
    p = q;
    EXPECT_TRUE(m.check());
  }
  // Shrink: the same block, contents kept.
  EXPECT_EQ(m.km.krealloc(p, 10, GFP_KERNEL, 9), p);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(p[i], i + 1);
  // Growing with __GFP_ZERO zeroes the new part.
  auto* z = static_cast<unsigned char*>(m.km.kmalloc(16, GFP_KERNEL, kOwnerKernel));
  std::memset(z, 0xAA, 16);
  auto* z2 = static_cast<unsigned char*>(m.km.krealloc(z, 200, __GFP_ZERO, kOwnerKernel));
  EXPECT_EQ(z2[15], 0xAA);
  for (std::size_t i = 16; i < 200; ++i) ASSERT_EQ(z2[i], 0) << i;
  // krealloc(NULL) is kmalloc; krealloc(p, 0) frees and gives ZERO_SIZE_PTR.
  void* n = m.km.krealloc(nullptr, 50, GFP_KERNEL, kOwnerKernel);
  EXPECT_EQ(m.km.ksize(n), 64u);
  EXPECT_EQ(m.km.krealloc(n, 0, GFP_KERNEL, kOwnerKernel), ZERO_SIZE_PTR);
  m.km.kfree(p);
  m.km.kfree(z2);
  EXPECT_TRUE(m.check());
  EXPECT_EQ(m.zone.free_pages(), m.boot_free_pages());
}

struct LargeCase {
  std::size_t request;
  std::size_t pow2;      // block under the stock power-of-two policy (0: fails)
  std::size_t kmalloc2;  // block under uClinux's kmalloc2
};

// The seed's numbers (002): 12,000 B takes 16 KB; 33 KB takes 64 KB; a 130 KB program needs
// 256 KB under pow2 and 132 KB under kmalloc2; pow2 serves at most 1 MB.
const LargeCase kLarge[] = {
    {8193, 16384, 12288},
    {12000, 16384, 12288},
    {33 * 1024, 64 * 1024, 36 * 1024},
    {130 * 1024, 256 * 1024, 132 * 1024},
    {std::size_t{1} << 20, std::size_t{1} << 20, std::size_t{1} << 20},
    {(std::size_t{1} << 20) + 1, 0, (std::size_t{1} << 20) + 4096},
    {std::size_t{3} << 20, 0, std::size_t{3} << 20},
};

void check_large(Machine& m, KmallocPolicy policy) {
  for (const LargeCase& lc : kLarge) {
    SCOPED_TRACE(lc.request);
    std::size_t want = policy == KmallocPolicy::kPow2 ? lc.pow2 : lc.kmalloc2;
    std::uint64_t before = m.zone.free_pages();
    EXPECT_EQ(m.km.large_footprint(lc.request), want);
    void* p = m.km.kmalloc(lc.request, GFP_KERNEL, 4);
    if (want == 0) {
      EXPECT_EQ(p, nullptr);
      EXPECT_EQ(m.zone.free_pages(), before);
      continue;
    }
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % kPageSize, 0u);
    EXPECT_EQ(m.km.ksize(p), want);
    EXPECT_EQ(m.km.footprint(p), want);
    EXPECT_EQ(m.zone.free_pages(), before - want / kPageSize) << "exactly the block's pages leave the pool";
    EXPECT_EQ(m.km.large_pages(), want / kPageSize);
    const Page* head = m.phys.virt_to_page(p);
    EXPECT_TRUE(head->is(PG_large) && head->is(PG_head));
    EXPECT_EQ(head->owner, 4);
    EXPECT_EQ(m.km.owner_of(p), 4);
    std::memset(p, 0x3C, lc.request);
    EXPECT_TRUE(m.check());
    EXPECT_EQ(m.km.kfree(p), 4);
    EXPECT_EQ(m.zone.free_pages(), before);
    EXPECT_EQ(m.km.large_pages(), 0u);
    EXPECT_TRUE(m.check());
  }
}

TEST_F(KmallocTest, LargeBlocksPow2) {
  EXPECT_EQ(m.km.max_size(), std::uint64_t{1} << 20);
  check_large(m, KmallocPolicy::kPow2);
}

TEST(KmallocPolicies, LargeBlocksKmalloc2) {
  Machine m(with_policy(KmallocPolicy::kKmalloc2));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m.km.max_size(), std::uint64_t{4} << 20);
  check_large(m, KmallocPolicy::kKmalloc2);
  EXPECT_EQ(m.km.kmalloc((std::size_t{4} << 20) + 1, GFP_KERNEL, kOwnerKernel), nullptr);
}

// krealloc grows a page run where it is when the frames after it are free: same pointer,
// contents and owner kept, the new frames its tails, the pool's count down by exactly them; a
// block whose next frame is taken moves instead. Freed, every frame goes back (a grown kPow2
// block is no power of two any more). Both policies.
TEST(KmallocPolicies, KreallocGrowsAPageRunInPlace) {
  for (KmallocPolicy policy : {KmallocPolicy::kPow2, KmallocPolicy::kKmalloc2}) {
    SCOPED_TRACE(policy == KmallocPolicy::kPow2 ? "pow2" : "kmalloc2");
    Machine m(with_policy(policy));
    ASSERT_TRUE(m.ok());
    const std::uint64_t boot = m.zone.free_pages();
    auto* p = static_cast<unsigned char*>(m.km.kmalloc(5 * kPageSize, GFP_KERNEL, kOwnerKernel));
    ASSERT_NE(p, nullptr);
    for (std::size_t i = 0; i < 5 * kPageSize; ++i) p[i] = static_cast<unsigned char>(i * 7);
    const std::uint64_t pages = m.km.ksize(p) / kPageSize;
    const std::uint64_t free_before = m.zone.free_pages();
    auto* q = static_cast<unsigned char*>(m.km.krealloc(p, 40 * kPageSize + 100, GFP_KERNEL, kOwnerKernel));
    ASSERT_EQ(q, p) << "the frames after the run were free";
    EXPECT_EQ(m.km.ksize(q), 41 * kPageSize);
    EXPECT_EQ(m.zone.free_pages(), free_before - (41 - pages)) << "exactly the new frames leave the pool";
    EXPECT_EQ(m.km.large_pages(), 41u);
    EXPECT_EQ(m.km.owner_of(q), kOwnerKernel);
    for (std::size_t i = 0; i < 5 * kPageSize; ++i) ASSERT_EQ(q[i], static_cast<unsigned char>(i * 7)) << i;
    const Page* head = m.phys.virt_to_page(q);
    for (unsigned i = 1; i < 41; ++i) {
      ASSERT_TRUE(head[i].is(PG_large) && head[i].is(PG_tail)) << i;
      ASSERT_EQ(head[i].tail_head(), m.phys.page_to_pfn(head)) << i;
    }
    std::memset(q + 5 * kPageSize, 0x5A, 36 * kPageSize);  // the new frames are the block's
    EXPECT_TRUE(m.check());
    // The frame after the run taken (by the same call the growth uses): the run moves.
    const pfn_t next = m.phys.page_to_pfn(head) + 41;
    ASSERT_TRUE(m.zone.take_free_range(next, 1, GFP_KERNEL));
    EXPECT_FALSE(m.zone.take_free_range(next, 1, GFP_KERNEL)) << "taken twice";
    auto* r = static_cast<unsigned char*>(m.km.krealloc(q, 60 * kPageSize, GFP_KERNEL, kOwnerKernel));
    ASSERT_NE(r, nullptr);
    EXPECT_NE(r, q) << "its next frame is allocated";
    for (std::size_t i = 0; i < 5 * kPageSize; ++i) ASSERT_EQ(r[i], static_cast<unsigned char>(i * 7)) << i;
    EXPECT_EQ(m.km.kfree(r), kOwnerKernel);
    m.zone.free_pages_exact(m.phys.pfn_to_page(next), 1);
    EXPECT_EQ(m.km.large_pages(), 0u);
    EXPECT_EQ(m.zone.free_pages(), boot) << "every frame back, the grown run's too";
    EXPECT_TRUE(m.check());
  }
}

// grow_large_in_place with room (the preload's realloc): the run takes the free frames after
// it up to room's, at least what new_size needs; with fewer free than room it stops at the
// first allocated frame; with fewer than new_size needs it does not grow at all.
TEST(Kmalloc, GrowInPlaceTakesRoomUpToTheNextAllocatedFrame) {
  Machine m(with_policy(KmallocPolicy::kKmalloc2));
  ASSERT_TRUE(m.ok());
  const std::uint64_t boot = m.zone.free_pages();
  auto* p = static_cast<unsigned char*>(m.km.kmalloc(4 * kPageSize, GFP_KERNEL, kOwnerKernel));
  ASSERT_NE(p, nullptr);
  const pfn_t head_pfn = m.phys.page_to_pfn(m.phys.virt_to_page(p));
  // A wall 12 frames after the run's start: at most 8 frames of room.
  ASSERT_TRUE(m.zone.take_free_range(head_pfn + 12, 1, GFP_KERNEL));
  // 5 pages needed, 7 of room asked: 7 taken.
  ASSERT_TRUE(m.km.grow_large_in_place(p, 5 * kPageSize, GFP_KERNEL, 7 * kPageSize));
  EXPECT_EQ(m.km.ksize(p), 7 * kPageSize);
  EXPECT_EQ(m.km.large_pages(), 7u);
  // 8 needed, 20 of room asked: up to the wall, 12 frames.
  ASSERT_TRUE(m.km.grow_large_in_place(p, 8 * kPageSize, GFP_KERNEL, 20 * kPageSize));
  EXPECT_EQ(m.km.ksize(p), 12 * kPageSize);
  const Page* head = m.phys.virt_to_page(p);
  for (unsigned i = 1; i < 12; ++i) ASSERT_TRUE(head[i].is(PG_large) && head[i].is(PG_tail)) << i;
  EXPECT_TRUE(m.check());
  // 13 needed: the wall is in the way, nothing changes.
  EXPECT_FALSE(m.km.grow_large_in_place(p, 13 * kPageSize, GFP_KERNEL, 20 * kPageSize));
  EXPECT_EQ(m.km.ksize(p), 12 * kPageSize);
  EXPECT_EQ(m.km.kfree(p), kOwnerKernel);
  m.zone.free_pages_exact(m.phys.pfn_to_page(head_pfn + 12), 1);
  EXPECT_EQ(m.km.large_pages(), 0u);
  EXPECT_EQ(m.zone.free_pages(), boot);
  EXPECT_TRUE(m.check());
}

// A module's page run grows in place only inside the fence's window (ModuleWindow), while no
// pass has flagged its owner gone: a thread's window with thread caches and the barrier call,
// else the count of unfenced windows, which the fence waits out as well. Once a pass has
// flagged the owner (it may sweep the run), krealloc moves it, and only the move's kfree
// claims it against the pass (tests/protect, GrowInPlaceRacingTheReclaimOfAGoneModule).
TEST(Kmalloc, AModulesPageRunGrowsInPlaceOnlyWhileNoPassMaySweepIt) {
  for (bool thread_caches : {true, false}) {
    SCOPED_TRACE(thread_caches ? "thread caches" : "none");
    MachineOptions o = with_policy(KmallocPolicy::kKmalloc2);
    o.slab_cfg.thread_caches = thread_caches;
    Machine m(o);
    ASSERT_TRUE(m.ok());
    m.km.kfree(m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel));  // this thread's cache: its page first
    m.slab.drain_thread_caches();
    const std::uint64_t boot = m.zone.free_pages();
    constexpr owner_t kModule = kOwnerFirstModule + 4;
    auto* p = static_cast<unsigned char*>(m.km.kmalloc(5 * kPageSize, GFP_KERNEL, kModule));
    ASSERT_NE(p, nullptr);
    for (std::size_t i = 0; i < 5 * kPageSize; ++i) p[i] = static_cast<unsigned char>(i * 3);
    const pfn_t next = m.phys.page_to_pfn(m.phys.virt_to_page(p)) + 5;
    ASSERT_TRUE(m.zone.frame_is_free(next)) << "room to grow in place";
    EXPECT_TRUE(m.km.grow_large_in_place(p, 6 * kPageSize, GFP_KERNEL));
    EXPECT_EQ(m.km.ksize(p), 6 * kPageSize);
    // A pass flags the owner gone: no growth in place from now on.
    bool dead[kMaxOwners] = {};
    dead[kModule] = true;
    m.slab.mark_owners_gone(dead);
    const std::size_t before = m.km.ksize(p);
    EXPECT_FALSE(m.km.grow_large_in_place(p, 8 * kPageSize, GFP_KERNEL, 16 * kPageSize));
    EXPECT_EQ(m.km.ksize(p), before) << "refused: nothing changed";
    auto* q = static_cast<unsigned char*>(m.km.krealloc(p, 8 * kPageSize, GFP_KERNEL, kOwnerKernel));
    ASSERT_NE(q, nullptr);
    EXPECT_NE(q, p) << "moved";
    EXPECT_EQ(m.km.owner_of(q), kOwnerKernel) << "moved once its owner is gone: the caller's";
    for (std::size_t i = 0; i < 5 * kPageSize; ++i) ASSERT_EQ(q[i], static_cast<unsigned char>(i * 3)) << i;
    EXPECT_EQ(m.km.kfree(q), kOwnerKernel);
    m.slab.drain_thread_caches();
    m.slab.shrink_empty(nullptr, false);
    EXPECT_EQ(m.km.large_pages(), 0u);
    EXPECT_EQ(m.zone.free_pages(), boot);
    EXPECT_TRUE(m.check());
  }
}

TEST(KmallocPolicies, Kmalloc2SavesWhatPow2Wastes) {
  // The seed's 130 KB program: 124 KB saved.
  Machine a(with_policy(KmallocPolicy::kPow2));
  Machine b(with_policy(KmallocPolicy::kKmalloc2));
  ASSERT_TRUE(a.ok() && b.ok());
  void* pa = a.km.kmalloc(130 * 1024, GFP_KERNEL, kOwnerKernel);
  void* pb = b.km.kmalloc(130 * 1024, GFP_KERNEL, kOwnerKernel);
  EXPECT_EQ((a.boot_free_pages() - a.zone.free_pages()) - (b.boot_free_pages() - b.zone.free_pages()), 124u / 4);
  a.km.kfree(pa);
  b.km.kfree(pb);
}

TEST(KmallocPolicies, OutOfMemoryReturnsNullAndStaysUsable) {
  Machine m(with_policy(KmallocPolicy::kPow2, std::size_t{2} << 20));
  ASSERT_TRUE(m.ok());
  std::vector<void*> blocks;
  while (void* p = m.km.kmalloc(64 * 1024, GFP_KERNEL, kOwnerKernel)) blocks.push_back(p);
  EXPECT_GT(blocks.size(), 20u);
  while (void* p = m.km.kmalloc(200, GFP_KERNEL, kOwnerKernel)) blocks.push_back(p);
  EXPECT_EQ(m.zone.free_pages(), 0u);
  EXPECT_EQ(m.km.kmalloc(8, GFP_KERNEL, kOwnerKernel), nullptr);
  EXPECT_EQ(m.km.kmalloc(100000, GFP_KERNEL, kOwnerKernel), nullptr);
  EXPECT_EQ(m.km.kzalloc(5000, GFP_KERNEL, kOwnerKernel), nullptr);
  void* old = blocks.front();
  EXPECT_EQ(m.km.krealloc(old, 128 * 1024, GFP_KERNEL, kOwnerKernel), nullptr);
  EXPECT_EQ(m.km.ksize(old), 64u * 1024) << "a failed krealloc leaves the old block valid";
  EXPECT_TRUE(m.check());
  for (void* p : blocks) m.km.kfree(p);
  EXPECT_TRUE(m.check());
  EXPECT_EQ(m.zone.free_pages(), m.boot_free_pages());
  void* again = m.km.kmalloc(1u << 20, GFP_KERNEL, kOwnerKernel);
  EXPECT_NE(again, nullptr);
  m.km.kfree(again);
  EXPECT_NE(m.km.kmalloc(8, GFP_KERNEL, kOwnerKernel), nullptr);
}

TEST_F(KmallocTest, OwnerBytes) {
  void* s = m.km.kmalloc(40, GFP_KERNEL, 12);
  void* keep = m.km.kmalloc(40, GFP_KERNEL, kOwnerKernel);
  void* l = m.km.kmalloc(50000, GFP_KERNEL, 13);
  void* k = m.km.kmalloc(40, GFP_KERNEL, kOwnerFree);
  EXPECT_EQ(m.km.owner_of(s), 12);
  EXPECT_EQ(m.km.owner_of(l), 13);
  EXPECT_EQ(m.km.owner_of(k), kOwnerKernel) << "no owner given: the kernel's";
  EXPECT_EQ(m.km.owner_of(static_cast<char*>(s) + 1), kOwnerFree);
  EXPECT_EQ(m.km.owner_of(static_cast<char*>(l) + kPageSize), kOwnerFree);
  EXPECT_TRUE(m.km.set_owner(s, 20));
  EXPECT_TRUE(m.km.set_owner(l, 21));
  EXPECT_FALSE(m.km.set_owner(static_cast<char*>(l) + 16, 22));
  EXPECT_FALSE(m.km.set_owner(ZERO_SIZE_PTR, 22));
  EXPECT_EQ(m.km.owner_of(s), 20);
  EXPECT_EQ(m.km.kfree(s), 20);
  EXPECT_EQ(m.km.kfree(l), 21);
  EXPECT_EQ(m.km.owner_of(s), kOwnerFree) << "owner byte cleared on free";
  EXPECT_EQ(m.km.ksize(s), 0u);
  EXPECT_EQ(m.km.footprint(s), 0u);
  EXPECT_EQ(m.km.owner_of(l), kOwnerFree);
  EXPECT_EQ(m.km.footprint(keep), 65u) << "a kmalloc-64 slot plus its owner byte";
  m.km.kfree(keep);
  m.km.kfree(k);
}

TEST_F(KmallocTest, BadFreesRefusedUnderReportPolicy) {
  auto* s = static_cast<char*>(m.km.kmalloc(64, GFP_KERNEL, 6));
  void* keep = m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel);
  auto* l = static_cast<char*>(m.km.kmalloc(20000, GFP_KERNEL, 7));
  ReportCapture cap;
  std::uint64_t free_before = m.zone.free_pages();
  // Interior pointers: slab object, large block first page, large block later page.
  for (const char* bad : {s + 8, l + 8, l + kPageSize}) {
    EXPECT_EQ(m.km.kfree(bad), kOwnerFree);
    EXPECT_EQ(cap.last().kind, ErrorKind::kInvalidFree);
    EXPECT_EQ(cap.last().action, "kfree");
    EXPECT_EQ(cap.last().pointer, bad);
  }
  EXPECT_EQ(m.km.owner_of(s), 6);
  EXPECT_EQ(m.km.owner_of(l), 7);
  // Foreign pointers.
  static int global_thing = 0;
  int on_stack = 0;
  void* from_malloc = std::malloc(64);
  for (const void* f : {static_cast<const void*>(&on_stack), static_cast<const void*>(&global_thing),
                        static_cast<const void*>(from_malloc)}) {
    EXPECT_EQ(m.km.kfree(f), kOwnerFree);
    EXPECT_EQ(cap.last().kind, ErrorKind::kForeignPointer);
  }
  std::free(from_malloc);
  // Reserved memory (mem_map) is inside the machine but not a kmalloc block.
  EXPECT_EQ(m.km.kfree(m.phys.mem_map()), kOwnerFree);
  EXPECT_EQ(cap.last().kind, ErrorKind::kInvalidFree);
  EXPECT_EQ(cap.last().detail, "not a kmalloc block");
  EXPECT_EQ(m.zone.free_pages(), free_before) << "refused frees give nothing back";
  EXPECT_TRUE(m.check());
  // Double frees: slab object and large block.
  EXPECT_EQ(m.km.kfree(s), 6);
  EXPECT_EQ(m.km.kfree(s), kOwnerFree);
  EXPECT_EQ(cap.last().kind, ErrorKind::kDoubleFree);
  EXPECT_EQ(cap.last().cache, "kmalloc-64");
  EXPECT_EQ(m.km.kfree(l), 7);
  std::uint64_t after_large = m.zone.free_pages();
  EXPECT_EQ(m.km.kfree(l), kOwnerFree);
  EXPECT_EQ(cap.last().kind, ErrorKind::kDoubleFree);
  EXPECT_EQ(m.zone.free_pages(), after_large) << "a refused double free gives nothing back twice";
  EXPECT_EQ(cap.count(), 9u);
  EXPECT_TRUE(m.check());
  // Nothing is corrupted: allocations still distinct, everything returns.
  void* a = m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel);
  void* b = m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel);
  EXPECT_NE(a, b);
  for (void* x : {a, b, keep}) m.km.kfree(x);
  EXPECT_TRUE(m.check());
  EXPECT_EQ(m.zone.free_pages(), m.boot_free_pages());
  EXPECT_EQ(cap.count(), 9u);
}

// kfree on slabs that threads own, found by masking (the preload's machine): each case of
// its fast path and of the tails it ends in — the owner's own free, a module's object, a free
// from another thread (kfree_remote: the remote list, or the general path for a module's
// object), and the bad frees, refused with the owner kOwnerFree.
TEST(KmallocOwnedSlabs, KfreeReturnsTheOwnerOnEveryPath) {
  test::default_report_policy();
  MachineOptions o = with_policy(KmallocPolicy::kPow2);
  o.ram_align = kPageSize << kMaxOrder;
  o.slab_cfg.thread_caches = true;
  Machine m(o);
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m.slab.owned_by_mask());
  void* own = m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel);
  void* mod = m.km.kmalloc(64, GFP_KERNEL, 9);
  ASSERT_NE(own, nullptr);
  ASSERT_NE(mod, nullptr);
  EXPECT_EQ(m.km.kfree(own), kOwnerKernel);
  EXPECT_EQ(m.km.kfree(mod), 9);

  std::vector<void*> objs;
  for (int i = 0; i < 100; ++i) objs.push_back(m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel));
  void* remote_mod = m.km.kmalloc(64, GFP_KERNEL, 9);
  KmemCache* c = m.km.cache_for(64);
  std::uint64_t slabs = c->nr_slabs.load();
  std::vector<owner_t> got;
  owner_t got_mod = kOwnerFree;
  std::thread other([&] {
    for (void* p : objs) got.push_back(m.km.kfree(p));
    got_mod = m.km.kfree(remote_mod);
  });
  other.join();
  for (owner_t g : got) EXPECT_EQ(g, kOwnerKernel);
  EXPECT_EQ(got_mod, 9);
  // The remote frees came back to this thread's slab: all of its objects fit in it again.
  ASSERT_EQ(slabs, 1u);
  std::vector<void*> again;
  for (unsigned i = 0; i < c->objects; ++i) again.push_back(m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel));
  EXPECT_EQ(c->nr_slabs.load(), slabs);

  // Bad frees: refused, reported, nothing changed.
  ReportCapture cap;
  EXPECT_EQ(m.km.kfree(static_cast<char*>(again[0]) + 8), kOwnerFree);
  EXPECT_EQ(cap.last().kind, ErrorKind::kInvalidFree);
  EXPECT_EQ(m.km.kfree(again[0]), kOwnerKernel);
  EXPECT_EQ(m.km.kfree(again[0]), kOwnerFree);
  EXPECT_EQ(cap.last().kind, ErrorKind::kDoubleFree);
  EXPECT_EQ(cap.count(), 2u);
  for (std::size_t i = 1; i < again.size(); ++i) EXPECT_EQ(m.km.kfree(again[i]), kOwnerKernel);
  m.slab.drain_current_thread();
  EXPECT_TRUE(m.check());
}

TEST_F(KmallocDeathTest, DoubleFreeSlabObject) {
  void* p = m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel);
  void* keep = m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel);
  (void)keep;
  m.km.kfree(p);
  EXPECT_DEATH(m.km.kfree(p), "kmm: ERROR: double free in kfree: pointer 0x[0-9a-f]+ \\(cache kmalloc-64, size 64\\)");
}

TEST_F(KmallocDeathTest, DoubleFreeOfFreedSlab) {
  void* p = m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel);
  m.km.kfree(p);  // the slab was empty and went back to the buddy allocator
  EXPECT_DEATH(m.km.kfree(p), "kmm: ERROR: double free in kfree: pointer 0x[0-9a-f]+: the page is already free");
}

TEST_F(KmallocDeathTest, DoubleFreeLargeBlock) {
  void* p = m.km.kmalloc(20000, GFP_KERNEL, kOwnerKernel);
  m.km.kfree(p);
  EXPECT_DEATH(m.km.kfree(p), "kmm: ERROR: double free in kfree: pointer 0x[0-9a-f]+: the page is already free");
}

TEST_F(KmallocDeathTest, InteriorPointers) {
  auto* s = static_cast<char*>(m.km.kmalloc(100, GFP_KERNEL, kOwnerKernel));
  auto* l = static_cast<char*>(m.km.kmalloc(20000, GFP_KERNEL, kOwnerKernel));
  EXPECT_DEATH(m.km.kfree(s + 1),
               "kmm: ERROR: invalid free \\(not the start of a live object\\) in kfree: pointer 0x[0-9a-f]+ "
               "\\(cache kmalloc-128, size 128\\): pointer is not the start of an object");
  EXPECT_DEATH(m.km.kfree(l + 2 * kPageSize),
               "kmm: ERROR: invalid free \\(not the start of a live object\\) in kfree: pointer 0x[0-9a-f]+ "
               "\\(size 32768\\): pointer is inside a large block, not its start");
}

TEST_F(KmallocDeathTest, ForeignPointers) {
  static int global_thing = 0;
  int on_stack = 0;
  void* from_malloc = std::malloc(64);
  const char* want =
      "kmm: ERROR: free of a pointer kmm does not own in kfree: pointer 0x[0-9a-f]+: not inside "
      "this machine's memory";
  EXPECT_DEATH(m.km.kfree(&on_stack), want);
  EXPECT_DEATH(m.km.kfree(&global_thing), want);
  EXPECT_DEATH(m.km.kfree(from_malloc), want);
  std::free(from_malloc);
}

TEST_F(KmallocDeathTest, WrongCacheThroughKmemCacheFree) {
  void* p = m.km.kmalloc(32, GFP_KERNEL, kOwnerKernel);
  EXPECT_DEATH(m.slab.free(m.km.cache_for(64), p, "kmem_cache_free"),
               "free into the wrong cache in kmem_cache_free: pointer 0x[0-9a-f]+ \\(cache kmalloc-64, size 64\\): "
               "object belongs to kmalloc-32");
}

}  // namespace
}  // namespace kmm

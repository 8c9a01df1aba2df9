// tests/kernel/test_kernel.cpp — Kernel::boot (errors, static buffer, the paper's 191676 kB),
// ownership through OwnerScope and explicit owners, cross_free allow/report/refuse, bad frees
// (reported, and death tests under the default abort policy), usage(), vmalloc, alloc_pages,
// kva round trips, and check_invariants after a seeded random operation sequence.
#include <sys/mman.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../common/report_capture.h"
#include "kernel_fixture.h"
#include "pal/pal.h"

namespace kmm {
namespace {

using test::boot_kernel;
using test::invariants;
using test::KernelPtr;
using test::kSecond;
using test::LogCapture;
using test::ReportCapture;

std::string boot_error(const BootConfig& cfg) {
  BootError err;
  Kernel* k = Kernel::boot(cfg, &err);
  if (k != nullptr) {
    k->shutdown();
    return "(booted)";
  }
  return err.what != nullptr ? err.what : "(no reason)";
}

TEST(KernelBoot, RamTooSmall) {
  BootConfig cfg;
  cfg.ram_bytes = 128 * 1024;
  EXPECT_NE(boot_error(cfg).find("RAM too small"), std::string::npos) << boot_error(cfg);
  cfg.ram_bytes = 0;
  EXPECT_NE(boot_error(cfg).find("RAM too small"), std::string::npos);
}

TEST(KernelBoot, KmallocMaxBelowTheSlabCachesIsRefused) {
  // kmalloc_max=1 booted: kmalloc(100) came from a cache, kmalloc(64K) was refused as "larger
  // than kmalloc's limit of 1 bytes".
  BootConfig cfg = test::small_config();
  BootError err;
  for (std::uint64_t bad : {std::uint64_t{1}, std::uint64_t{4096}, std::uint64_t{8191}}) {
    cfg.kmalloc_max = bad;
    EXPECT_EQ(Kernel::boot(cfg, &err), nullptr) << bad;
    EXPECT_NE(std::string(err.what).find("kmalloc_max below 8K"), std::string::npos) << err.what;
  }
  cfg.kmalloc_max = 8192;
  Kernel* k = Kernel::boot(cfg, &err);
  ASSERT_NE(k, nullptr) << err.what;
  EXPECT_NE(k->kmalloc(8192), nullptr);
  EXPECT_EQ(k->kmalloc(8193), nullptr);
  k->shutdown();
}

TEST(KernelBoot, PhysOffsetMustBePageAligned) {
  BootConfig cfg = test::small_config();
  cfg.phys_offset = 0x80000800;
  EXPECT_NE(boot_error(cfg).find("phys_offset"), std::string::npos) << boot_error(cfg);
  cfg.phys_offset = 0x80000000;
  EXPECT_EQ(boot_error(cfg), "(booted)");
}

TEST(KernelBoot, RamMustFitAbovePageOffset) {
  BootConfig cfg;
  cfg.ram_bytes = std::uint64_t{2} << 30;
  cfg.page_offset = 0xC0000000;
  EXPECT_NE(boot_error(cfg).find("does not fit"), std::string::npos) << boot_error(cfg);
  // Raspbian's split leaves room for 1 GiB... but not for 2 GiB plus the vmalloc area.
  cfg.page_offset = 0x80000000;
  EXPECT_NE(boot_error(cfg).find("does not fit"), std::string::npos);
  // A 64-bit page_offset has room.
  BootConfig ok = test::small_config();
  ok.page_offset = 0xffff000000000000ull;
  EXPECT_EQ(boot_error(ok), "(booted)");
}

// A heap file is booted by the layer above (persist_boot, src/persist); Kernel::boot refuses
// backing= rather than boot volatile RAM the caller thinks persistent.
TEST(KernelBoot, BackingIsBootedByPersistBoot) {
  BootConfig cfg = test::small_config();
  cfg.backing = "/nonexistent-kmm-dir/heap";
  EXPECT_NE(boot_error(cfg).find("persist_boot"), std::string::npos) << boot_error(cfg);
}

TEST(KernelBoot, NullErrorPointerIsAllowed) {
  BootConfig cfg;
  cfg.ram_bytes = 4096;
  EXPECT_EQ(Kernel::boot(cfg, nullptr), nullptr);
}

TEST(KernelBoot, OverStaticPlatformBuffer) {
  constexpr std::size_t kBuf = std::size_t{8} << 20;
  void* buf = std::aligned_alloc(kPageSize, kBuf);
  ASSERT_NE(buf, nullptr);
  {
    StaticPlatform plat(buf, kBuf);
    BootConfig cfg = test::small_config(kBuf);
    cfg.platform = &plat;
    KernelPtr k = boot_kernel(cfg);
    ASSERT_TRUE(k);
    EXPECT_EQ(k->release_zero_pages(), 0u) << "a static buffer cannot give pages back";
    // The Kernel object itself lives inside the machine's RAM.
    auto* lo = static_cast<char*>(buf);
    auto* kp = reinterpret_cast<char*>(k.get());
    EXPECT_GE(kp, lo);
    EXPECT_LT(kp, lo + kBuf);
    void* p = k->kmalloc(1000);
    ASSERT_NE(p, nullptr);
    EXPECT_GE(static_cast<char*>(p), lo);
    EXPECT_LT(static_cast<char*>(p), lo + kBuf);
    EXPECT_EQ(k->zone().managed_pages() * kPageSize + k->phys().reserved_pages() * kPageSize, kBuf);
    EXPECT_TRUE(k->kfree(p));
    EXPECT_TRUE(invariants(*k));
    k.reset();
    EXPECT_EQ(plat.used(), 0u) << "shutdown gives the whole buffer back";
    // A machine larger than the buffer cannot boot.
    BootConfig big = test::small_config(kBuf * 2);
    big.platform = &plat;
    EXPECT_NE(boot_error(big).find("could not reserve"), std::string::npos) << boot_error(big);
  }
  std::free(buf);
}

// release_zero_pages (the preload calls it once booted): the object's pages that hold only
// zeros go back to the host and read as zero after; the machine works on, writing into them
// again (the module table, the caches' slots).
TEST(KernelBoot, ZeroPagesOfTheKernelObjectGoBackAndReadAsZero) {
  KernelPtr k = boot_kernel(test::small_config(std::uint64_t{16} << 20));  // the mmap platform
  ASSERT_TRUE(k);
  auto first = static_cast<std::uintptr_t>(round_up(reinterpret_cast<std::uintptr_t>(k.get()), kPageSize));
  auto end = (reinterpret_cast<std::uintptr_t>(k.get()) + sizeof(Kernel)) & ~std::uintptr_t{kPageSize - 1};
  std::size_t pages = (end - first) / kPageSize;
  std::vector<unsigned char> vec(pages);
  auto resident = [&] {
    EXPECT_EQ(mincore(reinterpret_cast<void*>(first), end - first, vec.data()), 0);
    std::size_t n = 0;
    for (unsigned char v : vec) n += v & 1;
    return n;
  };
  std::size_t before = resident();
  std::size_t released = k->release_zero_pages();
  EXPECT_GE(released, pages / 4) << "of " << pages << " pages, most of them tables still empty";
  EXPECT_LE(resident() + released, before);
  // The machine works on: many modules and caches written where pages went back.
  for (int i = 0; i < 200; ++i) {
    std::string name = "zmod" + std::to_string(i);
    ASSERT_EQ(k->insmod(name.c_str()), ModuleError::kOk) << name;
  }
  std::vector<KmemCache*> caches;
  for (int i = 0; i < 40; ++i) {
    std::string name = "zcache" + std::to_string(i);
    KmemCache* c = k->kmem_cache_create(name.c_str(), 64 + 16 * static_cast<std::size_t>(i), 16, 0);
    ASSERT_NE(c, nullptr);
    void* p = k->kmem_cache_alloc(c);
    ASSERT_NE(p, nullptr);
    k->kmem_cache_free(c, p);
    caches.push_back(c);
  }
  void* p = k->kmalloc(100000);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(k->kfree(p));
  EXPECT_TRUE(invariants(*k));
  for (KmemCache* c : caches) k->kmem_cache_destroy(c);
  EXPECT_TRUE(invariants(*k));
  // On a static buffer nothing can go back: KernelBoot.OverStaticPlatformBuffer.
}

TEST(KernelBoot, PaperMachineMemTotal) {
  BootConfig cfg;
  cfg.ram_bytes = std::uint64_t{192} << 20;
  cfg.reserved_bytes = 4932 * 1024;
  KernelPtr k = boot_kernel(cfg);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->zone().managed_pages() * 4, 191676u) << "MemTotal of the paper's machine";
  EXPECT_TRUE(invariants(*k));
}

class KernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::default_report_policy();
    k = boot_kernel(test::small_config());
    ASSERT_TRUE(k);
    ASSERT_EQ(k->insmod("alpha", 16384, &a), ModuleError::kOk);
    ASSERT_EQ(k->insmod("beta", 16384, &b), ModuleError::kOk);
  }
  void TearDown() override {
    if (k) {
      EXPECT_TRUE(invariants(*k));
    }
  }
  KernelPtr k;
  owner_t a = 0, b = 0;
};
using KernelDeathTest = KernelTest;

TEST_F(KernelTest, OwnerScopeSetsCurrentOwner) {
  EXPECT_EQ(current_owner(), kOwnerKernel);
  void* kp = k->kmalloc(40);
  void *ap, *bp, *after_inner, *explicit_b;
  {
    OwnerScope sa(a);
    EXPECT_EQ(current_owner(), a);
    ap = k->kmalloc(40);
    {
      OwnerScope sb(b);
      bp = k->kzalloc(3000);
    }
    after_inner = k->kcalloc(4, 10);
    explicit_b = k->kmalloc(40, GFP_KERNEL, b);  // an explicit owner wins over the scope
  }
  EXPECT_EQ(current_owner(), kOwnerKernel);
  EXPECT_EQ(k->owner_of(kp), kOwnerKernel);
  EXPECT_EQ(k->owner_of(ap), a);
  EXPECT_EQ(k->owner_of(bp), b);
  EXPECT_EQ(k->owner_of(after_inner), a);
  EXPECT_EQ(k->owner_of(explicit_b), b);
  {
    OwnerScope none(kOwnerFree);  // "free" means the kernel
    EXPECT_EQ(current_owner(), kOwnerKernel);
  }
  for (void* p : {kp, ap, bp, after_inner, explicit_b}) EXPECT_TRUE(k->kfree(p));
}

// The current owner is per thread (slab.h: ThreadHotWords, beside the thread's cache slot): a
// thread started inside another thread's scope starts as the kernel, its own scope does not
// leak into the starting thread, and its allocations are owned as its own scope says.
TEST_F(KernelTest, ANewThreadStartsAsTheKernelWhateverItsStartersScope) {
  OwnerScope sa(a);
  owner_t seen_at_start = kOwnerFree, seen_in_scope = kOwnerFree;
  void *plain = nullptr, *scoped = nullptr;
  std::thread t([&] {
    seen_at_start = current_owner();
    plain = k->kmalloc(40);
    OwnerScope sb(b);
    seen_in_scope = current_owner();
    scoped = k->kmalloc(40);
  });
  t.join();
  EXPECT_EQ(seen_at_start, kOwnerKernel);
  EXPECT_EQ(seen_in_scope, b);
  EXPECT_EQ(current_owner(), a);
  EXPECT_EQ(k->owner_of(plain), kOwnerKernel);
  EXPECT_EQ(k->owner_of(scoped), b);
  EXPECT_TRUE(k->kfree(plain));
  EXPECT_TRUE(k->kfree(scoped));
}

TEST_F(KernelTest, KmemCacheAndPagesAreOwned) {
  KmemCache* c = k->kmem_cache_create("kt_cache", 72);
  ASSERT_NE(c, nullptr);
  void* o1 = k->kmem_cache_alloc(c, GFP_KERNEL, a);
  void* p = nullptr;
  {
    OwnerScope s(b);
    p = k->alloc_pages(1);
  }
  ASSERT_NE(o1, nullptr);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(k->owner_of(o1), a);
  EXPECT_EQ(k->owner_of(p), b);
  EXPECT_EQ(k->ksize(o1), 72u);
  EXPECT_TRUE(k->kmem_cache_free(c, o1, a));
  EXPECT_TRUE(k->free_pages(p, b));
  EXPECT_TRUE(k->kmem_cache_destroy(c));
}

TEST_F(KernelTest, UsagePerOwner) {
  std::vector<OwnerTally> before(kMaxOwners), t(kMaxOwners);
  k->usage(before.data());
  void* x = k->kmalloc(100, GFP_KERNEL, a);     // kmalloc-128
  void* y = k->kmalloc(20000, GFP_KERNEL, a);   // 32K of pages under pow2
  void* z = k->kmalloc(8, GFP_KERNEL, b);       // kmalloc-8
  void* pg = k->alloc_pages(0, GFP_KERNEL, b);  // one page
  std::uint64_t va = k->vmalloc(9000, b);       // 3 pages
  ASSERT_TRUE(x && y && z && pg && va);
  k->usage(t.data());
  EXPECT_EQ(t[a].objects, 2u);
  EXPECT_EQ(t[a].bytes, 128u + 32768u);
  EXPECT_EQ(t[b].objects, 3u);
  EXPECT_EQ(t[b].bytes, 8u + 4096u + 3 * 4096u);
  EXPECT_GE(t[kOwnerKernel].objects, before[kOwnerKernel].objects + 1) << "vmalloc's frame array is the kernel's";
  EXPECT_EQ(t[kOwnerFree].objects, 0u);
  std::vector<OwnerTally> c(kMaxOwners);
  k->cache_usage(k->kmalloc_layer().cache_for(100), c.data());
  EXPECT_EQ(c[a].objects, 1u);
  EXPECT_EQ(c[a].bytes, 128u);
  k->cache_usage(nullptr, c.data());  // large blocks
  EXPECT_EQ(c[a].objects, 1u);
  EXPECT_EQ(c[a].bytes, 32768u);
  EXPECT_EQ(c[b].objects, 1u);
  EXPECT_TRUE(k->kfree(x));
  EXPECT_TRUE(k->kfree(y));
  EXPECT_TRUE(k->kfree(z));
  EXPECT_TRUE(k->free_pages(pg));
  EXPECT_TRUE(k->vfree(va));
  k->usage(t.data());
  EXPECT_EQ(t[a].objects, 0u);
  EXPECT_EQ(t[b].objects, 0u);
  EXPECT_EQ(t[kOwnerKernel].objects, before[kOwnerKernel].objects);
}

TEST_F(KernelTest, CrossFreeAllowIsSilent) {
  LogCapture log(*k);
  ReportCapture rc;
  void* p = k->kmalloc(64, GFP_KERNEL, b);
  EXPECT_TRUE(k->kfree(p, a));
  EXPECT_EQ(rc.count(), 0u);
  EXPECT_EQ(log.text(), "");
  EXPECT_EQ(k->owner_of(p), kOwnerFree);
}

TEST_F(KernelTest, CrossFreeReportLogsAndFrees) {
  k->set_cross_free(CrossFree::kReport);
  LogCapture log(*k);
  ReportCapture rc;
  void* p = k->kmalloc(64, GFP_KERNEL, b);
  EXPECT_TRUE(k->kfree(p, a));
  EXPECT_EQ(k->owner_of(p), kOwnerFree);
  EXPECT_EQ(rc.count(), 0u) << "a warning in the log, not an error report";
  EXPECT_NE(log.text().find("kfree: alpha frees a block owned by beta"), std::string::npos) << log.text();
  // A vmalloc area too (vfree said nothing).
  std::uint64_t va = k->vmalloc(8192, b);
  ASSERT_NE(va, 0u);
  EXPECT_TRUE(k->vfree(va, a));
  EXPECT_EQ(rc.count(), 0u);
  EXPECT_NE(log.text().find("vfree: alpha frees a vmalloc area owned by beta"), std::string::npos) << log.text();
  // The kernel may free anything; a module its own blocks: no warning.
  void* q = k->kmalloc(64, GFP_KERNEL, b);
  void* r = k->kmalloc(64, GFP_KERNEL, a);
  std::size_t len = log.text().size();
  EXPECT_TRUE(k->kfree(q, kOwnerKernel));
  EXPECT_TRUE(k->kfree(r, a));
  EXPECT_EQ(log.text().size(), len);
}

TEST_F(KernelTest, CrossFreeRefuseReportsAndKeepsBlock) {
  k->set_cross_free(CrossFree::kRefuse);
  ReportCapture rc(OnError::kReport);
  void* p = k->kmalloc(64, GFP_KERNEL, b);
  std::memset(p, 0x11, 64);
  EXPECT_FALSE(k->kfree(p, a));
  ASSERT_EQ(rc.count(), 1u);
  EXPECT_EQ(rc.last().kind, ErrorKind::kOwnerMismatch);
  EXPECT_EQ(rc.last().action, "kfree");
  EXPECT_EQ(rc.last().pointer, p);
  EXPECT_NE(rc.last().detail.find("alpha frees a block owned by beta"), std::string::npos) << rc.last().detail;
  EXPECT_EQ(k->owner_of(p), b) << "the block is still live";
  EXPECT_EQ(static_cast<unsigned char*>(p)[63], 0x11);
  // Same for the other free paths.
  KmemCache* c = k->kmem_cache_create("kt_refuse", 48);
  void* o = k->kmem_cache_alloc(c, GFP_KERNEL, b);
  EXPECT_FALSE(k->kmem_cache_free(c, o, a));
  void* pg = k->alloc_pages(0, GFP_KERNEL, b);
  EXPECT_FALSE(k->free_pages(pg, a));
  std::uint64_t va = k->vmalloc(100, b);
  EXPECT_FALSE(k->vfree(va, a));
  EXPECT_EQ(k->krealloc(p, 200, GFP_KERNEL, a), nullptr);
  EXPECT_EQ(rc.count(), 5u);
  EXPECT_EQ(k->owner_of(p), b);
  EXPECT_EQ(k->owner_of(o), b);
  EXPECT_EQ(k->owner_of(pg), b);
  EXPECT_NE(k->vmalloc_space().find(va), nullptr);
  // The owner itself and the kernel may free.
  EXPECT_TRUE(k->kfree(p, b));
  EXPECT_TRUE(k->kmem_cache_free(c, o, kOwnerKernel));
  EXPECT_TRUE(k->free_pages(pg, b));
  EXPECT_TRUE(k->vfree(va, b));
  EXPECT_EQ(rc.count(), 5u);
  EXPECT_TRUE(k->kmem_cache_destroy(c));
}

TEST_F(KernelTest, BadFreesReportedUnderReportPolicy) {
  ReportCapture rc(OnError::kReport);
  void* p = k->kmalloc(64);
  ASSERT_TRUE(k->kfree(p));
  EXPECT_FALSE(k->kfree(p));
  ASSERT_EQ(rc.count(), 1u);
  EXPECT_EQ(rc.last().kind, ErrorKind::kDoubleFree);
  int local = 0;
  EXPECT_FALSE(k->kfree(&local));
  ASSERT_EQ(rc.count(), 2u);
  EXPECT_EQ(rc.last().kind, ErrorKind::kForeignPointer);
  void* q = k->kmalloc(64);
  EXPECT_FALSE(k->kfree(static_cast<char*>(q) + 8));
  ASSERT_EQ(rc.count(), 3u);
  EXPECT_EQ(rc.last().kind, ErrorKind::kInvalidFree);
  EXPECT_EQ(k->owner_of(q), kOwnerKernel);
  EXPECT_TRUE(k->kfree(q));
  EXPECT_TRUE(k->kfree(nullptr));
  EXPECT_TRUE(k->kfree(ZERO_SIZE_PTR));
  EXPECT_EQ(rc.count(), 3u);
}

TEST_F(KernelDeathTest, DoubleFreeAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  void* p = k->kmalloc(64);
  ASSERT_TRUE(k->kfree(p));
  EXPECT_DEATH(k->kfree(p), "double free in kfree");
}

TEST_F(KernelDeathTest, ForeignPointerAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  static int outside = 0;
  EXPECT_DEATH(k->kfree(&outside), "kfree");
}

TEST_F(KernelTest, VmallocAndVfree) {
  ReportCapture rc(OnError::kReport);
  std::uint64_t used = k->vmalloc_space().used_bytes();
  std::uint64_t free_before = k->zone().free_pages();
  std::uint64_t va = k->vmalloc(10000, a);
  ASSERT_NE(va, 0u);
  EXPECT_GE(va, k->vmalloc_space().start());
  EXPECT_LT(va, k->vmalloc_space().end());
  EXPECT_GT(va, k->config().page_offset + k->phys().size()) << "above the direct map";
  EXPECT_EQ(k->vmalloc_space().used_bytes(), used + 3 * 4096);
  const VmArea* area = k->vmalloc_space().find(va + 5000);
  ASSERT_NE(area, nullptr);
  EXPECT_EQ(area->addr, va);
  EXPECT_EQ(area->nr_pages, 3u);
  EXPECT_EQ(area->owner, a);
  EXPECT_EQ(area->requested, 10000u);
  EXPECT_EQ(area->size, 4u * 4096) << "one guard page";
  std::uint64_t va2 = k->vmalloc(1);
  ASSERT_NE(va2, 0u);
  EXPECT_GE(va2, va + area->size) << "areas do not overlap, guard page included";
  EXPECT_EQ(k->vmalloc(0), 0u);
  // vfree of an address that is not the start of an area: reported, refused.
  EXPECT_FALSE(k->vfree(va + 4096));
  ASSERT_EQ(rc.count(), 1u);
  EXPECT_EQ(rc.last().kind, ErrorKind::kInvalidFree);
  EXPECT_EQ(rc.last().action, "vfree");
  EXPECT_FALSE(k->vfree(0x1234));
  EXPECT_EQ(rc.count(), 2u);
  EXPECT_TRUE(k->vfree(va));
  EXPECT_FALSE(k->vfree(va)) << "second vfree";
  EXPECT_EQ(rc.count(), 3u);
  EXPECT_TRUE(k->vfree(va2));
  EXPECT_EQ(k->vmalloc_space().used_bytes(), used);
  EXPECT_EQ(k->zone().free_pages(), free_before);
}

TEST_F(KernelTest, AllocPagesAndFreePages) {
  ReportCapture rc(OnError::kReport);
  std::uint64_t free_before = k->zone().free_pages();
  void* p = k->alloc_pages(3, GFP_KERNEL, a);
  ASSERT_NE(p, nullptr);
  pfn_t pfn = k->phys().page_to_pfn(k->phys().virt_to_page(p));
  EXPECT_EQ(pfn % 8, 0u) << "buddy blocks are aligned to their order in absolute pfns, as in Linux";
  EXPECT_EQ(k->zone().free_pages(), free_before - 8);
  EXPECT_EQ(k->owner_of(p), a);
  EXPECT_EQ(k->footprint(p), 8 * kPageSize);
  EXPECT_EQ(k->alloc_pages(kMaxOrder + 1), nullptr);
  EXPECT_EQ(rc.count(), 1u);
  EXPECT_EQ(rc.last().kind, ErrorKind::kBadArgument);
  EXPECT_FALSE(k->free_pages(static_cast<char*>(p) + kPageSize)) << "a tail page";
  EXPECT_EQ(rc.last().kind, ErrorKind::kInvalidFree);
  void* km = k->kmalloc(64);
  EXPECT_FALSE(k->free_pages(km)) << "not an alloc_pages block";
  EXPECT_TRUE(k->kfree(km));
  EXPECT_TRUE(k->free_pages(p));
  EXPECT_FALSE(k->free_pages(p));
  EXPECT_EQ(rc.last().kind, ErrorKind::kDoubleFree);
  // Two buddies freed, each freed again: the second one's frame no longer heads a free block
  // once the two merged, and was reported as an invalid free.
  void* x = k->alloc_pages(0);
  void* y = k->alloc_pages(0);
  ASSERT_TRUE(x != nullptr && y != nullptr);
  EXPECT_TRUE(k->free_pages(x));
  EXPECT_TRUE(k->free_pages(y));
  EXPECT_FALSE(k->free_pages(x));
  EXPECT_EQ(rc.last().kind, ErrorKind::kDoubleFree);
  EXPECT_FALSE(k->free_pages(y));
  EXPECT_EQ(rc.last().kind, ErrorKind::kDoubleFree);
  int local = 0;
  EXPECT_FALSE(k->free_pages(&local));
  EXPECT_EQ(rc.last().kind, ErrorKind::kForeignPointer);
  EXPECT_EQ(k->zone().free_pages(), free_before);
}

TEST_F(KernelTest, KvaRoundTrip) {
  void* p = k->kmalloc(64);
  std::uint64_t va = k->kva(p);
  EXPECT_GE(va, 0xC0000000ull);
  EXPECT_LT(va, 0xC0000000ull + k->phys().size());
  EXPECT_EQ(k->kva_to_host(va), p);
  EXPECT_EQ(k->kva(k->phys().base()), 0xC0000000ull) << "RAM's first byte is PAGE_OFFSET";
  EXPECT_EQ(k->kva_to_host(0xC0000000ull), k->phys().base());
  EXPECT_EQ(k->kva_to_host(0xBFFFFFFFull), nullptr);
  EXPECT_EQ(k->kva_to_host(0xC0000000ull + k->phys().size()), nullptr);
  EXPECT_TRUE(k->kfree(p));
}

TEST(KernelKva, PhysOffsetDoesNotMoveTheDirectMap) {
  BootConfig cfg = test::small_config();
  cfg.phys_offset = 0x60000000;
  cfg.page_offset = 0x80000000;
  KernelPtr k = boot_kernel(cfg);
  ASSERT_TRUE(k);
  void* p = k->kmalloc(5000);
  std::uint64_t va = k->kva(p);
  EXPECT_EQ(va - 0x80000000ull, k->phys().virt_to_phys(p) - 0x60000000ull);
  EXPECT_EQ(k->kva_to_host(va), p);
  EXPECT_EQ(k->kva_to_host(va + 100), static_cast<char*>(p) + 100);
  EXPECT_TRUE(k->kfree(p));
}

TEST_F(KernelTest, KreallocKeepsOwnerAndData) {
  void* p = k->kmalloc(30, GFP_KERNEL, a);
  std::memcpy(p, "hello kmm", 10);
  void* q = k->krealloc(p, 5000, GFP_KERNEL, a);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(std::memcmp(q, "hello kmm", 10), 0);
  EXPECT_EQ(k->owner_of(q), a);
  EXPECT_GE(k->ksize(q), 5000u);
  EXPECT_TRUE(k->kfree(q));
}

TEST_F(KernelTest, FailedAllocationsCounted) {
  std::uint64_t before = k->failed_allocations();
  EXPECT_EQ(k->kmalloc(std::size_t{64} << 20, GFP_KERNEL | __GFP_NOWARN), nullptr);
  EXPECT_EQ(k->failed_allocations(), before + 1);
}

TEST_F(KernelTest, InsmodRmmodThroughKernel) {
  owner_t o = 0;
  EXPECT_EQ(k->insmod("alpha", 16384, &o), ModuleError::kAlreadyLoaded);
  EXPECT_EQ(k->rmmod("gamma"), ModuleError::kNotLoaded);
  EXPECT_EQ(k->module_owner("alpha"), a);
  EXPECT_EQ(k->module_owner("gamma"), kOwnerFree);
  k->idle(3 * kSecond);
  ASSERT_EQ(k->insmod("gamma", 4096, &o), ModuleError::kOk);
  EXPECT_EQ(k->modules().module(o)->load_ns, 3 * kSecond) << "the machine's clock";
  EXPECT_EQ(k->now_ns(), 3 * kSecond);
}

// Hardening (slab/hardening.h) through the kernel: the protector reclaims a gone module's
// objects in debug caches and large guarded blocks through the same checks a kfree passes
// (poison, red zones, guard frames). (Persistent RAM's refusal of the options that would change
// its layout between boots is tests/persist/test_heap_file.cpp.)
TEST(KernelHardening, CollectorReclaimsThroughTheDebugChecks) {
  BootConfig cfg = test::small_config();
  cfg.protector = ProtectorMode::kReclaim;
  cfg.gc_delay_ns = kSecond;
  cfg.hardening.freelist_hardened = cfg.hardening.redzone = cfg.hardening.poison = true;
  cfg.hardening.guard_pages = true;
  cfg.hardening.quarantine_bytes = 16 << 10;
  KernelPtr k = boot_kernel(cfg);
  ASSERT_NE(k, nullptr);
  std::uint64_t free0 = k->zone().free_pages();
  owner_t m = 0;
  ASSERT_EQ(k->insmod("leaky", 4096, &m), ModuleError::kOk);
  void* keep = k->kmalloc(40, GFP_KERNEL, kOwnerKernel);  // keeps kmalloc-64's slab
  std::vector<void*> leaked;
  for (int i = 0; i < 50; ++i) leaked.push_back(k->kmalloc(static_cast<std::size_t>(20 + i), GFP_KERNEL, m));
  leaked.push_back(k->kmalloc(20000, GFP_KERNEL, m));  // a guarded large block
  for (void* p : leaked) ASSERT_NE(p, nullptr);
  ASSERT_EQ(k->rmmod("leaky"), ModuleError::kOk);
  k->idle(2 * kSecond);
  EXPECT_EQ(k->collector().stats().reclaimed_objects, 51u);
  EXPECT_TRUE(invariants(*k)) << "reclaimed slots carry their poison and inactive red zones";
  k->kfree(keep);
  k->slab().quarantine_flush();
  k->idle(2 * kSecond);
  EXPECT_TRUE(invariants(*k));
  EXPECT_LE(free0 - k->zone().free_pages(), 16u) << "at most the module record and empty slabs kept";
}

TEST(KernelHardening, PagesAndVmallocFindTheQuarantinesMemoryWhenRamRunsOut) {
  // Every small object freed, most of them quarantined, their slabs held: alloc_pages and
  // vmalloc need those frames as kmalloc does (Quarantine.AnAllocationThatFindsNoMemory...).
  for (bool use_vmalloc : {false, true}) {
    BootConfig cfg = test::small_config();
    cfg.hardening.quarantine_bytes = std::uint64_t{4} << 20;
    KernelPtr k = boot_kernel(cfg);
    ASSERT_NE(k, nullptr);
    const std::uint64_t free0 = k->zone().free_pages();
    std::vector<void*> small;
    while (void* p = k->kmalloc(1000, GFP_KERNEL, kOwnerKernel)) small.push_back(p);
    for (void* p : small) k->kfree(p, kOwnerKernel);
    ASSERT_GT(k->slab().quarantine_objects(), 0u);
    std::uint64_t pages = 0;
    if (use_vmalloc) {
      std::vector<std::uint64_t> areas;
      while (std::uint64_t a = k->vmalloc(std::size_t{64} << 10, kOwnerKernel)) areas.push_back(a);
      pages = areas.size() * 16;
      for (std::uint64_t a : areas) k->vfree(a, kOwnerKernel);
    } else {
      std::vector<void*> blocks;
      while (void* p = k->alloc_pages(4, GFP_KERNEL, kOwnerKernel)) blocks.push_back(p);
      pages = blocks.size() * 16;
      for (void* p : blocks) k->free_pages(p, kOwnerKernel);
    }
    EXPECT_GE(pages, free0 * 95 / 100) << (use_vmalloc ? "vmalloc" : "alloc_pages") << ": 95 % of the free frames ("
                                       << free0 << ")";
    EXPECT_TRUE(invariants(*k));
  }
}

TEST_F(KernelTest, DmesgKeepsLog) {
  k->log("first line\n", 11);
  k->log("second\n", 7);
  StackText<256> out;
  k->dmesg(out);
  EXPECT_STREQ(out.data(), "first line\nsecond\n");
}

// A seeded random walk over the whole API; invariants are checked as it goes and the
// machine must balance when everything is freed.
TEST(KernelRandom, InvariantsHoldThroughRandomOperations) {
  BootConfig cfg = test::small_config(std::uint64_t{32} << 20);
  cfg.protector = ProtectorMode::kReclaimUnreachable;
  KernelPtr k = boot_kernel(cfg);
  ASSERT_TRUE(k);
  KmemCache* cache = k->kmem_cache_create("random_obj", 136);
  ASSERT_NE(cache, nullptr);
  std::uint64_t start_free = k->zone().free_pages();
  struct Blk {
    int kind;  // 0 kmalloc, 1 cache, 2 pages, 3 vmalloc
    void* p;
    std::uint64_t va;
  };
  std::vector<Blk> live;
  std::mt19937 rng(20040101);
  owner_t mod = kOwnerKernel;
  bool loaded = false;
  for (int step = 0; step < 4000; ++step) {
    auto op = static_cast<unsigned>(rng() % 10);
    if (op < 4 || live.empty()) {
      Blk b{static_cast<int>(rng() % 4), nullptr, 0};
      owner_t o = loaded && rng() % 3 == 0 ? mod : kOwnerKernel;
      if (o != kOwnerKernel) b.kind = 0;  // the module's blocks go when it is unloaded
      switch (b.kind) {
        case 0:
          b.p = k->kmalloc(1 + rng() % (rng() % 8 == 0 ? 70000 : 3000), GFP_KERNEL, o);
          break;
        case 1:
          b.p = k->kmem_cache_alloc(cache, GFP_KERNEL, o);
          break;
        case 2:
          b.p = k->alloc_pages(rng() % 4, GFP_KERNEL, o);
          break;
        default:
          b.va = k->vmalloc(1 + rng() % 20000, o);
          break;
      }
      if ((b.p != nullptr || b.va != 0) && o == kOwnerKernel) live.push_back(b);
    } else if (op < 8) {
      std::size_t at = rng() % live.size();
      Blk b = live[at];
      live[at] = live.back();
      live.pop_back();
      bool ok = b.kind == 0   ? k->kfree(b.p)
                : b.kind == 1 ? k->kmem_cache_free(cache, b.p)
                : b.kind == 2 ? k->free_pages(b.p)
                              : k->vfree(b.va);
      ASSERT_TRUE(ok) << "step " << step;
    } else if (op == 8) {
      if (loaded) {
        ASSERT_EQ(k->rmmod("randmod"), ModuleError::kOk);
      } else {
        ASSERT_EQ(k->insmod("randmod", 16384, &mod), ModuleError::kOk);
      }
      loaded = !loaded;
    } else {
      k->idle(kSecond / 4);
    }
    if (step % 100 == 0) {
      ASSERT_TRUE(invariants(*k)) << "step " << step;
    }
  }
  for (const Blk& b : live) {
    bool ok = b.kind == 0   ? k->kfree(b.p)
              : b.kind == 1 ? k->kmem_cache_free(cache, b.p)
              : b.kind == 2 ? k->free_pages(b.p)
                            : k->vfree(b.va);
    ASSERT_TRUE(ok);
  }
  if (loaded) {
    ASSERT_EQ(k->rmmod("randmod"), ModuleError::kOk);
  }
  k->idle(2 * kSecond);
  EXPECT_TRUE(invariants(*k));
  EXPECT_EQ(k->modules().nr_gone(), 0u);
  EXPECT_EQ(k->zone().free_pages(), start_free) << "everything came back";
}

}  // namespace
}  // namespace kmm

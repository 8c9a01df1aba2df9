// tests/protect/test_collector.cpp — the idle-time collector through a booted Kernel: each
// protector mode (off, report, reclaim, reclaim-unreachable with roots and transitive
// references), the gc_delay rate limit, sliced passes, transfer(), slot release, invariants.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <vector>

#include "../kernel/kernel_fixture.h"

namespace kmm {
namespace {

using test::boot_kernel;
using test::invariants;
using test::KernelPtr;
using test::kSecond;
using test::LogCapture;

KernelPtr boot_mode(ProtectorMode mode, std::uint64_t gc_delay_ns = kSecond) {
  BootConfig cfg = test::small_config();
  cfg.protector = mode;
  cfg.gc_delay_ns = gc_delay_ns;
  return boot_kernel(cfg);
}

OwnerTally usage_of(Kernel& k, owner_t o) {
  std::vector<OwnerTally> t(kMaxOwners);
  k.usage(t.data());
  return t[o];
}

// Every kind of block a module can hold, all owned by `o`.
struct ModuleBlocks {
  void* small = nullptr;  // kmalloc-32
  void* mid = nullptr;    // kmalloc-4k
  void* large = nullptr;  // 64K from the page allocator
  void* obj = nullptr;    // a kmem_cache object
  void* pages = nullptr;  // alloc_pages(2)
  std::uint64_t va = 0;   // vmalloc(10000): 3 pages
};

ModuleBlocks allocate_all(Kernel& k, KmemCache* c, owner_t o) {
  ModuleBlocks b;
  b.small = k.kmalloc(32, GFP_KERNEL, o);
  b.mid = k.kmalloc(3000, GFP_KERNEL, o);
  b.large = k.kmalloc(64 * 1024, GFP_KERNEL, o);
  b.obj = k.kmem_cache_alloc(c, GFP_KERNEL, o);
  b.pages = k.alloc_pages(2, GFP_KERNEL, o);
  b.va = k.vmalloc(10000, o);
  EXPECT_NE(b.small, nullptr);
  EXPECT_NE(b.mid, nullptr);
  EXPECT_NE(b.large, nullptr);
  EXPECT_NE(b.obj, nullptr);
  EXPECT_NE(b.pages, nullptr);
  EXPECT_NE(b.va, 0u);
  return b;
}

constexpr std::uint64_t kAllBlocksBytes =
    32 + 4096 + 65536 + 200 + 16384 + 3 * 4096;  // a 200-byte cache has 200-byte slots

TEST(CollectorOff, NothingFreedNoPass) {
  KernelPtr k = boot_mode(ProtectorMode::kOff);
  ASSERT_TRUE(k);
  KmemCache* c = k->kmem_cache_create("test_obj", 200);
  ASSERT_NE(c, nullptr);
  owner_t m;
  ASSERT_EQ(k->insmod("leaky", 16384, &m), ModuleError::kOk);
  allocate_all(*k, c, m);
  std::uint64_t after_alloc = k->zone().free_pages();
  ASSERT_EQ(k->rmmod("leaky"), ModuleError::kOk);
  k->idle(30 * kSecond);
  k->collector().kick();
  k->idle(kSecond);
  EXPECT_EQ(k->collector().stats().passes, 0u);
  EXPECT_EQ(k->collector().stats().slices, 0u);
  EXPECT_FALSE(k->collector().due(k->now_ns()));
  EXPECT_EQ(k->zone().free_pages(), after_alloc);
  OwnerTally u = usage_of(*k, m);
  EXPECT_EQ(u.objects, 6u);
  EXPECT_EQ(u.bytes, kAllBlocksBytes);
  EXPECT_EQ(k->modules().nr_gone(), 1u) << "the slot stays Gone: its blocks still carry the id";
  EXPECT_TRUE(invariants(*k));
}

TEST(CollectorReport, CountsLeaksFreesNothingLogsOnce) {
  KernelPtr k = boot_mode(ProtectorMode::kReport);
  ASSERT_TRUE(k);
  LogCapture log(*k);
  KmemCache* c = k->kmem_cache_create("test_obj", 200);
  owner_t m;
  ASSERT_EQ(k->insmod("leaky", 16384, &m), ModuleError::kOk);
  ModuleBlocks b = allocate_all(*k, c, m);
  std::uint64_t after_alloc = k->zone().free_pages();
  ASSERT_EQ(k->rmmod("leaky"), ModuleError::kOk);
  k->idle(kSecond);
  const CollectorStats& s = k->collector().stats();
  EXPECT_EQ(s.passes, 1u);
  EXPECT_EQ(s.leak_objects, 6u);
  EXPECT_EQ(s.leak_bytes, kAllBlocksBytes);
  EXPECT_EQ(s.reclaimed_objects, 0u);
  EXPECT_EQ(s.reclaimed_bytes, 0u);
  EXPECT_EQ(k->zone().free_pages(), after_alloc);
  EXPECT_EQ(k->owner_of(b.small), m);
  EXPECT_EQ(k->owner_of(b.large), m);
  EXPECT_EQ(k->owner_of(b.obj), m);
  EXPECT_NE(k->vmalloc_space().find(b.va), nullptr);
  EXPECT_EQ(log.count("GCONLINUX activated"), 1u) << log.text();
  EXPECT_EQ(log.count("leaky leaked 6/"), 1u) << log.text();
  EXPECT_TRUE(k->modules().module(m)->leaks_reported);
  EXPECT_TRUE(invariants(*k));
  // Later passes find the same leaks again, but say nothing new.
  k->idle(5 * kSecond);
  EXPECT_GE(k->collector().stats().passes, 2u);
  EXPECT_EQ(k->collector().stats().leak_objects, 6u);
  EXPECT_EQ(log.count("GCONLINUX activated"), 1u) << log.text();
  EXPECT_EQ(k->modules().nr_gone(), 1u) << "a module that still owns memory keeps its slot";
  EXPECT_TRUE(invariants(*k));
}

class CollectorReclaim : public ::testing::TestWithParam<ProtectorMode> {};

TEST_P(CollectorReclaim, FreesEveryBlockOfGoneModuleOnly) {
  KernelPtr k = boot_mode(GetParam());
  ASSERT_TRUE(k);
  LogCapture log(*k);
  KmemCache* c = k->kmem_cache_create("test_obj", 200);
  ASSERT_NE(c, nullptr);
  owner_t keep, m;
  ASSERT_EQ(k->insmod("keeper", 16384, &keep), ModuleError::kOk);
  // Blocks of the kernel and of a live module, some in the same slabs as the leak.
  ModuleBlocks kb = allocate_all(*k, c, kOwnerKernel);
  ModuleBlocks live = allocate_all(*k, c, keep);
  std::memset(live.small, 0x5a, 32);
  std::uint64_t before = k->zone().free_pages();
  OwnerTally kernel_before = usage_of(*k, kOwnerKernel);

  ASSERT_EQ(k->insmod("leaky", 16384, &m), ModuleError::kOk);
  ModuleBlocks b = allocate_all(*k, c, m);
  OwnerTally leaked = usage_of(*k, m);
  EXPECT_EQ(leaked.objects, 6u);
  EXPECT_EQ(leaked.bytes, kAllBlocksBytes);
  EXPECT_LT(k->zone().free_pages(), before);
  ASSERT_EQ(k->rmmod("leaky"), ModuleError::kOk);
  k->idle(kSecond);

  const CollectorStats& s = k->collector().stats();
  EXPECT_EQ(s.passes, 1u);
  EXPECT_EQ(s.reclaimed_objects, 6u);
  EXPECT_EQ(s.reclaimed_bytes, leaked.bytes);
  EXPECT_EQ(s.leak_objects, 0u);
  EXPECT_EQ(k->zone().free_pages(), before) << "MemFree returns exactly";
  EXPECT_EQ(usage_of(*k, m).objects, 0u);
  EXPECT_EQ(k->owner_of(b.small), kOwnerFree);
  EXPECT_EQ(k->owner_of(b.obj), kOwnerFree);
  EXPECT_EQ(k->vmalloc_space().find(b.va), nullptr);
  // The kernel's and the live module's blocks are untouched.
  EXPECT_EQ(k->owner_of(kb.small), kOwnerKernel);
  EXPECT_EQ(k->owner_of(kb.large), kOwnerKernel);
  EXPECT_EQ(k->owner_of(kb.pages), kOwnerKernel);
  EXPECT_EQ(k->owner_of(live.small), keep);
  EXPECT_EQ(k->owner_of(live.obj), keep);
  EXPECT_EQ(k->owner_of(live.mid), keep);
  EXPECT_NE(k->vmalloc_space().find(live.va), nullptr);
  EXPECT_EQ(static_cast<unsigned char*>(live.small)[31], 0x5a);
  OwnerTally kernel_after = usage_of(*k, kOwnerKernel);
  EXPECT_EQ(kernel_after.objects, kernel_before.objects);
  EXPECT_EQ(kernel_after.bytes, kernel_before.bytes);
  EXPECT_EQ(usage_of(*k, keep).objects, 6u);
  EXPECT_EQ(log.count("GCONLINUX activated"), 1u) << log.text();
  EXPECT_EQ(log.count("leaky freed 6/"), 1u) << log.text();
  EXPECT_TRUE(invariants(*k));

  // The slot is Free again and reusable; a new module gets the same id, owning nothing.
  EXPECT_EQ(k->modules().nr_gone(), 0u);
  EXPECT_EQ(k->modules().module(m), nullptr);
  owner_t again;
  ASSERT_EQ(k->insmod("newcomer", 16384, &again), ModuleError::kOk);
  EXPECT_EQ(again, m);
  EXPECT_EQ(usage_of(*k, again).objects, 0u);

  // No more passes: nothing is gone.
  k->idle(10 * kSecond);
  EXPECT_EQ(k->collector().stats().passes, 1u);
  // Free the survivors: the machine balances.
  ASSERT_TRUE(k->kfree(live.small, keep));
  ASSERT_TRUE(k->kmem_cache_free(c, live.obj, keep));
  EXPECT_TRUE(invariants(*k));
}

INSTANTIATE_TEST_SUITE_P(Modes, CollectorReclaim,
                         ::testing::Values(ProtectorMode::kReclaim, ProtectorMode::kReclaimUnreachable),
                         [](const ::testing::TestParamInfo<ProtectorMode>& p) {
                           return std::string(p.param == ProtectorMode::kReclaim ? "reclaim" : "unreachable");
                         });

TEST(CollectorUnreachable, ReferencedBlocksSparedUntilReferenceCleared) {
  KernelPtr k = boot_mode(ProtectorMode::kReclaimUnreachable);
  ASSERT_TRUE(k);
  owner_t keep, m;
  ASSERT_EQ(k->insmod("keeper", 16384, &keep), ModuleError::kOk);
  auto* kernel_block = static_cast<void**>(k->kzalloc(64, GFP_KERNEL, kOwnerKernel));
  auto* live_block = static_cast<void**>(k->kzalloc(128, GFP_KERNEL, keep));
  ASSERT_NE(kernel_block, nullptr);
  ASSERT_NE(live_block, nullptr);
  std::array<void*, 4> root{};  // host memory outside kmm, registered as a root
  ASSERT_TRUE(k->collector().add_root(root.data(), sizeof root));

  ASSERT_EQ(k->insmod("leaky", 16384, &m), ModuleError::kOk);
  auto* a = static_cast<void**>(k->kzalloc(96, GFP_KERNEL, m));    // kernel -> a
  auto* b = static_cast<void**>(k->kzalloc(2048, GFP_KERNEL, m));  // a -> b (transitive)
  void* c = k->kzalloc(64 * 1024, GFP_KERNEL, m);                  // b -> c (large, transitive)
  void* d = k->kzalloc(48, GFP_KERNEL, m);                         // root -> d
  void* e = k->kzalloc(32, GFP_KERNEL, m);                         // live module -> e (interior pointer)
  void* f = k->kzalloc(500, GFP_KERNEL, m);                        // nothing: freed
  std::uint64_t v = k->vmalloc(5000, m);                           // kernel -> v (modelled VA)
  std::uint64_t w = k->vmalloc(100, m);                            // nothing: freed
  ASSERT_TRUE(a && b && c && d && e && f && v && w);
  kernel_block[0] = a;
  kernel_block[1] = reinterpret_cast<void*>(static_cast<std::uintptr_t>(v));
  a[3] = b;
  b[100] = c;
  root[2] = d;
  live_block[5] = static_cast<char*>(e) + 8;
  ASSERT_EQ(k->rmmod("leaky"), ModuleError::kOk);

  k->idle(kSecond);
  const CollectorStats& s = k->collector().stats();
  EXPECT_EQ(s.passes, 1u);
  EXPECT_EQ(s.reclaimed_objects, 2u) << "f and w";
  EXPECT_EQ(s.referenced_objects, 6u) << "a, b, c, d, e, v";
  EXPECT_EQ(s.leak_objects, 6u);
  EXPECT_EQ(k->owner_of(f), kOwnerFree);
  EXPECT_EQ(k->vmalloc_space().find(w), nullptr);
  for (void* p : {static_cast<void*>(a), static_cast<void*>(b), c, d, e}) EXPECT_EQ(k->owner_of(p), m) << p;
  EXPECT_NE(k->vmalloc_space().find(v), nullptr);
  EXPECT_EQ(k->modules().nr_gone(), 1u);
  EXPECT_TRUE(invariants(*k));

  // The kernel drops its pointer to a: a, b and c go at the next pass (after gc_delay).
  kernel_block[0] = nullptr;
  k->idle(kSecond / 2);
  EXPECT_EQ(k->collector().stats().passes, 1u) << "rate limited";
  k->idle(kSecond);
  EXPECT_EQ(k->collector().stats().passes, 2u);
  EXPECT_EQ(s.reclaimed_objects, 5u);
  EXPECT_EQ(s.referenced_objects, 3u) << "d, e, v";
  EXPECT_EQ(k->owner_of(a), kOwnerFree);
  EXPECT_EQ(k->owner_of(b), kOwnerFree);
  EXPECT_EQ(k->owner_of(c), kOwnerFree);
  EXPECT_EQ(k->owner_of(d), m);
  EXPECT_TRUE(invariants(*k));

  // Drop the rest: root, live module's pointer, the kernel's VA.
  root[2] = nullptr;
  live_block[5] = nullptr;
  kernel_block[1] = nullptr;
  k->idle(kSecond);
  EXPECT_EQ(k->collector().stats().passes, 3u);
  EXPECT_EQ(s.reclaimed_objects, 8u);
  EXPECT_EQ(s.referenced_objects, 0u);
  EXPECT_EQ(s.leak_objects, 0u);
  EXPECT_EQ(k->vmalloc_space().find(v), nullptr);
  EXPECT_EQ(k->modules().nr_gone(), 0u) << "slot released once empty";
  k->collector().remove_root(root.data());
  EXPECT_TRUE(invariants(*k));
}

// A gone module's block that the kernel still holds, moved by krealloc while a pass runs:
// after the pass has marked what the kernel's table pointed to, a new block of the dead
// owner would be swept at once, the table left pointing at freed memory. A block moved once
// its owner is gone is the caller's (ModuleWindow::gone, slab.h): spared, and no longer
// the module's to count. (Before, the table's block came out of the pass free.)
TEST(CollectorUnreachable, ABlockMovedDuringAPassIsTheCallers) {
  BootConfig cfg = test::small_config();
  cfg.protector = ProtectorMode::kReclaimUnreachable;
  cfg.gc_delay_ns = kSecond;
  cfg.gc_slice_pages = 8;  // many slices: the move lands after the table's frame is marked
  KernelPtr k = boot_kernel(cfg);
  ASSERT_TRUE(k);
  owner_t m;
  auto* table = static_cast<void**>(k->kzalloc(64, GFP_KERNEL, kOwnerKernel));
  ASSERT_NE(table, nullptr);
  ASSERT_EQ(k->insmod("leaky", 16384, &m), ModuleError::kOk);
  auto* b = static_cast<unsigned char*>(k->kmalloc(24, GFP_KERNEL, m));
  ASSERT_NE(b, nullptr);
  std::memset(b, 7, 24);
  table[0] = b;
  void* moved_before = k->krealloc(k->kmalloc(40, GFP_KERNEL, m), 2000, GFP_KERNEL, kOwnerKernel);
  EXPECT_EQ(k->owner_of(moved_before), m) << "a live module's block keeps its owner when it moves";
  table[1] = moved_before;
  ASSERT_EQ(k->rmmod("leaky"), ModuleError::kOk);
  k->collector().kick();
  int slices = 0;
  while (!k->collector().slice(k->now_ns())) {
    if (++slices != 20) continue;
    auto* q = static_cast<unsigned char*>(k->krealloc(table[0], 3000, GFP_KERNEL, kOwnerKernel));
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(k->owner_of(q), kOwnerKernel) << "moved after its owner went: the caller's";
    table[0] = q;
  }
  ASSERT_GT(slices, 20);
  EXPECT_EQ(k->owner_of(table[0]), kOwnerKernel) << "the block the kernel holds was reclaimed";
  for (int i = 0; i < 24; ++i) EXPECT_EQ(static_cast<unsigned char*>(table[0])[i], 7) << i;
  EXPECT_EQ(k->owner_of(table[1]), m) << "moved before the module went: its, and referenced";
  EXPECT_TRUE(invariants(*k));
  k->kfree(table[0]);
  k->kfree(table);
}

TEST(CollectorUnreachable, DeadToDeadCycleIsFreed) {
  KernelPtr k = boot_mode(ProtectorMode::kReclaimUnreachable);
  ASSERT_TRUE(k);
  std::uint64_t before = k->zone().free_pages();
  owner_t m;
  ASSERT_EQ(k->insmod("cyclic", 16384, &m), ModuleError::kOk);
  auto* a = static_cast<void**>(k->kzalloc(64, GFP_KERNEL, m));
  auto* b = static_cast<void**>(k->kzalloc(64, GFP_KERNEL, m));
  a[0] = b;
  b[0] = a;  // only dead blocks point at each other: not reachable from anything live
  ASSERT_EQ(k->rmmod("cyclic"), ModuleError::kOk);
  k->idle(kSecond);
  EXPECT_EQ(k->collector().stats().reclaimed_objects, 2u);
  EXPECT_EQ(k->collector().stats().referenced_objects, 0u);
  EXPECT_EQ(k->zone().free_pages(), before);
  EXPECT_TRUE(invariants(*k));
}

TEST(CollectorRateLimit, NoPassBeforeGcDelay) {
  KernelPtr k = boot_mode(ProtectorMode::kReclaim, 5 * kSecond);
  ASSERT_TRUE(k);
  owner_t m;
  ASSERT_EQ(k->insmod("m_test", 16384, &m), ModuleError::kOk);
  void* p = k->kmalloc(4096, GFP_KERNEL, m);
  ASSERT_EQ(k->rmmod("m_test"), ModuleError::kOk);
  k->idle(2 * kSecond);
  EXPECT_EQ(k->collector().stats().passes, 0u);
  EXPECT_EQ(k->owner_of(p), m);
  k->idle(2 * kSecond);  // t = 4s
  EXPECT_EQ(k->collector().stats().passes, 0u);
  EXPECT_EQ(k->collector().next_due_ns(), 5 * kSecond);
  k->idle(kSecond);  // t = 5s: due
  EXPECT_EQ(k->collector().stats().passes, 1u);
  EXPECT_EQ(k->owner_of(p), kOwnerFree);

  // A second leak right after the pass waits for the next 5 s.
  ASSERT_EQ(k->insmod("m_test", 16384, &m), ModuleError::kOk);
  void* q = k->kmalloc(100, GFP_KERNEL, m);
  ASSERT_EQ(k->rmmod("m_test"), ModuleError::kOk);
  k->idle(4 * kSecond);  // t = 9s
  EXPECT_EQ(k->collector().stats().passes, 1u);
  EXPECT_EQ(k->owner_of(q), m);
  k->idle(kSecond);  // t = 10s
  EXPECT_EQ(k->collector().stats().passes, 2u);
  EXPECT_EQ(k->owner_of(q), kOwnerFree);
  // kick() forgets the rate limit.
  ASSERT_EQ(k->insmod("m_test", 16384, &m), ModuleError::kOk);
  q = k->kmalloc(100, GFP_KERNEL, m);
  ASSERT_EQ(k->rmmod("m_test"), ModuleError::kOk);
  k->collector().kick();
  k->idle(0);
  EXPECT_EQ(k->collector().stats().passes, 3u);
  EXPECT_EQ(k->owner_of(q), kOwnerFree);
  EXPECT_TRUE(invariants(*k));
}

TEST(CollectorRateLimit, NoPassWithoutGoneModules) {
  KernelPtr k = boot_mode(ProtectorMode::kReclaim);
  ASSERT_TRUE(k);
  owner_t m;
  ASSERT_EQ(k->insmod("alive", 16384, &m), ModuleError::kOk);
  ASSERT_NE(k->kmalloc(100, GFP_KERNEL, m), nullptr);
  k->idle(10 * kSecond);
  EXPECT_EQ(k->collector().stats().passes, 0u);
}

TEST(CollectorSlices, SmallSlicesStillCompleteInIdle) {
  BootConfig cfg = test::small_config();
  cfg.protector = ProtectorMode::kReclaimUnreachable;
  cfg.gc_slice_pages = 4;
  KernelPtr k = boot_kernel(cfg);
  ASSERT_TRUE(k);
  std::uint64_t before = k->zone().free_pages();
  owner_t m;
  ASSERT_EQ(k->insmod("big_leak", 16384, &m), ModuleError::kOk);
  for (int i = 0; i < 3000; ++i)
    ASSERT_NE(k->kmalloc(64 + static_cast<std::size_t>(i % 5) * 200, GFP_KERNEL, m), nullptr);
  for (int i = 0; i < 8; ++i) ASSERT_NE(k->kmalloc(std::size_t{32} << 10, GFP_KERNEL, m), nullptr);
  ASSERT_EQ(k->rmmod("big_leak"), ModuleError::kOk);

  // One slice by hand: the pass starts and is not over.
  k->collector().kick();
  EXPECT_FALSE(k->collector().slice(k->now_ns()));
  EXPECT_TRUE(k->collector().in_pass());
  std::uint64_t slices_before = k->collector().stats().slices;
  k->idle(0);
  EXPECT_FALSE(k->collector().in_pass());
  EXPECT_EQ(k->collector().stats().passes, 1u);
  EXPECT_GT(k->collector().stats().slices - slices_before, 50u);
  EXPECT_EQ(k->collector().stats().reclaimed_objects, 3008u);
  EXPECT_EQ(k->zone().free_pages(), before);
  // A slice does at most its budget, plus the rest of one block that straddles its end
  // (a free buddy block of order 10 is stepped over whole).
  std::uint64_t largest_block = std::uint64_t{1} << kMaxOrder;
  EXPECT_LE(k->collector().longest_slice_pages(), 4u + largest_block);
  EXPECT_GE(k->collector().longest_slice_pages(), 4u);
  EXPECT_TRUE(invariants(*k));
}

TEST(CollectorTransfer, TransferredBlocksSurviveUnload) {
  KernelPtr k = boot_mode(ProtectorMode::kReclaim);
  ASSERT_TRUE(k);
  owner_t m, other;
  ASSERT_EQ(k->insmod("giver", 16384, &m), ModuleError::kOk);
  ASSERT_EQ(k->insmod("taker", 16384, &other), ModuleError::kOk);
  void* to_kernel = k->kmalloc(64, GFP_KERNEL, m);
  void* to_module = k->kmalloc(8192 * 4, GFP_KERNEL, m);
  void* dropped = k->kmalloc(64, GFP_KERNEL, m);
  std::uint64_t va = k->vmalloc(4096, m);
  ASSERT_TRUE(k->transfer(to_kernel, kOwnerKernel));
  ASSERT_TRUE(k->transfer(to_module, other));
  ASSERT_TRUE(k->transfer_vmalloc(va, kOwnerFree));  // kOwnerFree means the kernel
  EXPECT_EQ(k->owner_of(to_kernel), kOwnerKernel);
  EXPECT_EQ(k->owner_of(to_module), other);
  EXPECT_EQ(k->vmalloc_space().find(va)->owner, kOwnerKernel);
  int outside = 0;
  EXPECT_FALSE(k->transfer(&outside, kOwnerKernel)) << "not kmm's memory";
  ASSERT_EQ(k->rmmod("giver"), ModuleError::kOk);
  k->idle(kSecond);
  EXPECT_EQ(k->collector().stats().reclaimed_objects, 1u);
  EXPECT_EQ(k->owner_of(dropped), kOwnerFree);
  EXPECT_EQ(k->owner_of(to_kernel), kOwnerKernel);
  EXPECT_EQ(k->owner_of(to_module), other);
  EXPECT_NE(k->vmalloc_space().find(va), nullptr);
  EXPECT_TRUE(invariants(*k));
  EXPECT_TRUE(k->kfree(to_kernel));
  EXPECT_TRUE(k->kfree(to_module));
  EXPECT_TRUE(k->vfree(va));
  EXPECT_FALSE(k->transfer(to_kernel, kOwnerKernel)) << "not a live block any more";
}

// A thread still working for an unloaded module (the preload's kmm_module_scope_enter holds
// it) uses what the module allocated: no pass takes the module's blocks until the hold goes,
// in either reclaiming mode; then they are reclaimed as any leak.
class CollectorHeld : public ::testing::TestWithParam<ProtectorMode> {};

TEST_P(CollectorHeld, AHeldModulesBlocksWaitForItsLastHold) {
  KernelPtr k = boot_mode(GetParam());
  ASSERT_TRUE(k);
  owner_t m;
  ASSERT_EQ(k->insmod("worker", 16384, &m), ModuleError::kOk);
  ASSERT_TRUE(k->modules().hold(m));
  void* before = k->kmalloc(100, GFP_KERNEL, m);
  ASSERT_EQ(k->rmmod("worker"), ModuleError::kOk);
  void* after = k->kmalloc(3000, GFP_KERNEL, m);  // the thread still allocates as the module
  ASSERT_NE(before, nullptr);
  ASSERT_NE(after, nullptr);
  k->idle(5 * kSecond);
  EXPECT_EQ(k->collector().stats().reclaimed_objects, 0u);
  EXPECT_EQ(k->owner_of(before), m);
  EXPECT_EQ(k->owner_of(after), m);
  EXPECT_EQ(usage_of(*k, m).objects, 2u);
  k->modules().unhold(m);
  k->idle(2 * kSecond);
  EXPECT_EQ(k->collector().stats().reclaimed_objects, 2u);
  EXPECT_EQ(k->owner_of(before), kOwnerFree);
  EXPECT_EQ(k->owner_of(after), kOwnerFree);
  EXPECT_TRUE(invariants(*k));
}

INSTANTIATE_TEST_SUITE_P(Modes, CollectorHeld,
                         ::testing::Values(ProtectorMode::kReclaim, ProtectorMode::kReclaimUnreachable));

TEST(CollectorModes, ChangeModeAtRunTime) {
  KernelPtr k = boot_mode(ProtectorMode::kOff);
  ASSERT_TRUE(k);
  std::uint64_t before = k->zone().free_pages();
  owner_t m;
  ASSERT_EQ(k->insmod("m", 16384, &m), ModuleError::kOk);
  void* p = k->kmalloc(8192, GFP_KERNEL, m);
  ASSERT_EQ(k->rmmod("m"), ModuleError::kOk);
  k->idle(5 * kSecond);
  EXPECT_EQ(k->owner_of(p), m);
  k->set_protector(ProtectorMode::kReport);
  k->idle(kSecond);
  EXPECT_EQ(k->collector().stats().leak_objects, 1u);
  EXPECT_EQ(k->owner_of(p), m);
  k->set_protector(ProtectorMode::kReclaim);
  k->idle(kSecond);
  EXPECT_EQ(k->owner_of(p), kOwnerFree);
  EXPECT_EQ(k->collector().stats().leak_objects, 0u);
  EXPECT_EQ(k->collector().stats().reclaimed_bytes, 8192u);
  EXPECT_EQ(k->zone().free_pages(), before);
  EXPECT_TRUE(invariants(*k));
}

TEST(CollectorModes, NamesParse) {
  for (ProtectorMode m :
       {ProtectorMode::kOff, ProtectorMode::kReport, ProtectorMode::kReclaim, ProtectorMode::kReclaimUnreachable}) {
    ProtectorMode back = ProtectorMode::kOff;
    ASSERT_TRUE(parse_protector_mode(protector_mode_name(m), &back));
    EXPECT_EQ(back, m);
  }
  EXPECT_STREQ(protector_mode_name(ProtectorMode::kReclaimUnreachable), "reclaim-unreachable");
  ProtectorMode x;
  EXPECT_FALSE(parse_protector_mode("reclaim_unreachable", &x));
  EXPECT_FALSE(parse_protector_mode("", &x));
}

// The names are listed once (protect/protector_mode.h): the syntax help and the parsers
// print is built from that list, and a word is read with its length as well as NUL-ended.
TEST(CollectorModes, OneListOfNames) {
  EXPECT_STREQ(kProtectorModeSyntax, "off|report|reclaim|reclaim-unreachable");
  EXPECT_STREQ(protector_mode_text("protector ").text, "protector off|report|reclaim|reclaim-unreachable");
  for (std::size_t i = 0; i < kNrProtectorModes; ++i)
    EXPECT_STREQ(protector_mode_name(static_cast<ProtectorMode>(i)), kProtectorModeNames[i]);
  ProtectorMode x = ProtectorMode::kOff;
  EXPECT_TRUE(parse_protector_mode("reclaimXYZ", 7, &x));
  EXPECT_EQ(x, ProtectorMode::kReclaim);
  EXPECT_FALSE(parse_protector_mode("reclaim", 6, &x));  // "reclai"
  EXPECT_FALSE(parse_protector_mode("reclaim-unreachable!", 20, &x));
  EXPECT_EQ(x, ProtectorMode::kReclaim) << "a refused word must not change the result";
  EXPECT_EQ(kDefaultGcDelayNs, 5'000'000'000u);
  EXPECT_STREQ(kDefaultGcDelayText, "5s");
}

}  // namespace
}  // namespace kmm

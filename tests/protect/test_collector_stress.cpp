// tests/protect/test_collector_stress.cpp — the collector racing the allocator (label stress,
// also run under TSan): worker threads kmalloc/kfree for a live module with per-thread caches
// on, while another thread loads, leaks and unloads other modules and runs idle() passes.
// The *UnderFaultInjection variants run the same with failslab and fail_page_alloc failing a
// random share of calls (base/fault_inject.h): the counters and the kernel log are hit from
// every thread at once, failed allocations are simply not kept, the collector's bitmaps may
// not be had (a pass then only reports), and nothing may be corrupted or lost.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../kernel/kernel_fixture.h"
#include "base/fault_inject.h"

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

// The workers' two moves: a new block filled with a random tag, and one of the live blocks
// taken out at random (to be checked and freed).
Live fill_tagged(unsigned char* p, std::size_t size, std::mt19937& rng) {
  auto tag = static_cast<unsigned char>(rng());
  std::memset(p, tag, size);
  return Live{p, size, tag};
}
Live take_any(std::vector<Live>& live, std::mt19937& rng) {
  std::size_t at = rng() % live.size();
  Live l = live[at];
  live[at] = live.back();
  live.pop_back();
  return l;
}

void stress(ProtectorMode mode, bool inject = false, unsigned verbose = 0) {
  BootConfig cfg = test::small_config(std::uint64_t{64} << 20);
  cfg.protector = mode;
  cfg.thread_caches = true;
  cfg.gc_delay_ns = 0;
  cfg.gc_slice_pages = 64;
  KernelPtr k = boot_kernel(cfg);
  ASSERT_TRUE(k);
  owner_t worker;
  ASSERT_EQ(k->insmod("worker", 16384, &worker), ModuleError::kOk);
  if (inject) {
    FaultConfig f;
    f.probability_ppm = 30'000;  // 3 % of slab allocations
    f.seed = 11;
    f.verbose = verbose;
    fault_configure(FaultPoint::kSlab, f);
    f.probability_ppm = 50'000;  // 5 % of page allocations (slabs, large blocks, bitmaps)
    fault_configure(FaultPoint::kPage, f);
  }

  constexpr int kThreads = 3;
  constexpr int kOps = 20000;
  std::atomic<bool> stop{false};
  std::atomic<int> corrupted{0}, failed{0}, wrong_owner{0}, alloc_failed{0};
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
            (inject ? alloc_failed : failed)++;
            continue;
          }
          live.push_back(fill_tagged(p, size, rng));
        } else {
          Live l = take_any(live, rng);
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
  std::uint64_t injected = fault_failures(FaultPoint::kSlab) + fault_failures(FaultPoint::kPage);
  fault_disable_all();  // the last pass must get its bitmaps
  if (inject) {
    EXPECT_GT(injected, 0u);
    EXPECT_GT(alloc_failed.load(), 0);
  }
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

// A module unloading while other threads still free its memory: every one of its objects is
// freed exactly once, by the thread's kfree or by the collector's pass, whichever claims the
// owner byte first (SlabAllocator::free_page_object's exchange against claim_slot; large
// blocks' claim_owner). A kfree that loses finds the object already reclaimed: a double free
// (or a free of a page given back), reported and refused under on_error=report. Before the exchange, a slab object
// could be freed by both (docs/RELIABILITY.md, "Concurrency"). A lost race is reported as a double free, or — when the
// pass also gave the slab's pages back — as a free of a page that is free or no longer a slab.
std::atomic<std::uint64_t> g_lost_races{0};
void count_double_frees(const ErrorReport& r, void*) {
  if (r.kind == ErrorKind::kDoubleFree || r.kind == ErrorKind::kInvalidFree)
    g_lost_races.fetch_add(1, std::memory_order_relaxed);
}
void silent(const char*, std::size_t) {}

// One thread a list: each waits for `go`, frees its list's blocks with free_one (true: freed,
// counted in `freed`), then calls after().
template <typename FreeOne, typename After>
std::vector<std::thread> start_freeing(std::vector<std::vector<void*>>& lists, const std::atomic<int>& go,
                                       std::atomic<std::uint64_t>& freed, FreeOne free_one, After after) {
  std::vector<std::thread> threads;
  for (auto& list : lists) {
    threads.emplace_back([&list, &go, &freed, free_one, after] {
      while (go.load() == 0) {
      }
      for (void* p : list)
        if (free_one(p)) freed.fetch_add(1, std::memory_order_relaxed);
      after();
    });
  }
  return threads;
}

// For a test's length: reports counted as lost races (count_double_frees), not printed, and
// survived; the defaults again after.
struct LostRacesCounted {
  LostRacesCounted() {
    set_on_error(OnError::kReport);
    set_report_writer(&silent);
    set_report_hook(&count_double_frees, nullptr);
  }
  ~LostRacesCounted() {
    set_report_hook(nullptr, nullptr);
    set_report_writer(nullptr);
    set_on_error(OnError::kAbort);
  }
};

// The races below: protect=reclaim, thread caches, passes due at once and in short slices.
BootConfig race_config() {
  BootConfig cfg = test::small_config(std::uint64_t{64} << 20);
  cfg.protector = ProtectorMode::kReclaim;
  cfg.thread_caches = true;
  cfg.gc_delay_ns = 0;
  cfg.gc_slice_pages = 16;
  return cfg;
}

// Module "departing" loaded on k, and `lists.size()` lists of `per_list` of its blocks, the
// i-th of size_of(i, rng).
using SizeOf = std::size_t (*)(int i, std::mt19937& rng);
::testing::AssertionResult departing_blocks(Kernel& k, int round, int per_list, SizeOf size_of, owner_t* m,
                                            std::vector<std::vector<void*>>& lists) {
  if (k.insmod("departing", 16384, m) != ModuleError::kOk) return ::testing::AssertionFailure() << "insmod";
  std::mt19937 rng(static_cast<unsigned>(round));
  for (auto& v : lists) {
    for (int i = 0; i < per_list; ++i) {
      void* p = k.kmalloc(size_of(i, rng), GFP_KERNEL, *m);
      if (p == nullptr) return ::testing::AssertionFailure() << "kmalloc " << i;
      v.push_back(p);
    }
  }
  return ::testing::AssertionSuccess();
}

// `passes` passes, each kicked (gc_delay is 0, but a pass starts only when one is due), then
// the threads racing them are joined and a last pass finishes what they left.
void passes_then_join(Kernel& k, std::vector<std::thread>& threads, int passes = 100) {
  for (int pass = 0; pass < passes; ++pass) {
    k.collector().kick();
    k.idle(1'000'000);
  }
  for (auto& th : threads) th.join();
  k.collector().kick();
  k.idle(1'000'000);
}

TEST(CollectorStress, FreesRacingTheReclaimOfAGoneModule) {
  BootConfig cfg = race_config();
  // Empty slabs are kept: a kfree that loses the race then only meets the owner byte, not a
  // slab being given back under it (that would be a use after free by the caller, which no
  // allocator can make race-free).
  cfg.min_partial = 100000;
  std::uint64_t total_reclaimed = 0, total_freed = 0, total_lost = 0;
  LostRacesCounted counted;
  // Six rounds, and more (up to 40) while one side has not won an object yet: on a loaded
  // machine the freeing threads can finish before the first pass in several rounds running.
  for (int round = 0; round < 6 || (round < 40 && (total_reclaimed == 0 || total_freed == 0)); ++round) {
    KernelPtr k = boot_kernel(cfg);
    ASSERT_TRUE(k);
    owner_t m;
    constexpr int kThreads = 3, kPerThread = 6000;
    std::vector<std::vector<void*>> objs(kThreads);
    ASSERT_TRUE(departing_blocks(
        *k, round, kPerThread,
        [](int i, std::mt19937& rng) -> std::size_t { return 16 + rng() % (i % 100 == 0 ? 12000 : 700); }, &m, objs));
    g_lost_races = 0;
    std::uint64_t reclaimed0 = k->collector().stats().reclaimed_objects;
    std::atomic<int> go{0};
    std::atomic<std::uint64_t> freed{0};
    std::vector<std::thread> threads = start_freeing(
        objs, go, freed, [&k](void* p) { return k->kfree(p); },
        [&k] { k->slab().drain_current_thread(); });
    go = 1;
    // Unload once the threads are under way: frees before, during and after the passes.
    while (freed.load() < std::uint64_t{kThreads} * kPerThread / 8) {
    }
    ASSERT_EQ(k->rmmod("departing"), ModuleError::kOk);
    passes_then_join(*k, threads, 200);
    std::uint64_t reclaimed = k->collector().stats().reclaimed_objects - reclaimed0;
    EXPECT_EQ(freed.load() + reclaimed, std::uint64_t{kThreads} * kPerThread) << "round " << round;
    EXPECT_EQ(g_lost_races.load(), std::uint64_t{kThreads} * kPerThread - freed.load()) << "round " << round;
    k->slab().drain_thread_caches();
    EXPECT_TRUE(invariants(*k)) << "round " << round;
    std::vector<OwnerTally> tally(kMaxOwners);
    k->usage(tally.data());
    EXPECT_EQ(tally[m].objects, 0u);
    total_reclaimed += reclaimed;
    total_freed += freed.load();
    total_lost += g_lost_races.load();
  }
  // Both sides must have won some objects, or the race was not exercised.
  EXPECT_GT(total_freed, 0u);
  EXPECT_GT(total_reclaimed, 0u);
  std::printf("frees %llu, reclaimed %llu, kfrees that lost the race %llu\n",
              static_cast<unsigned long long>(total_freed), static_cast<unsigned long long>(total_reclaimed),
              static_cast<unsigned long long>(total_lost));
}

// The same for alloc_pages blocks freed with free_pages: it claims the block's owner as kfree
// does (Kernel::free_pages). It had not: a pass's claim could win between its checks and its
// plain store of the owner, and both gave the run to the buddy allocator — counted twice,
// its free lists broken, the same frames handed out twice (about one round in eight here).
TEST(CollectorStress, FreePagesRacingTheReclaimOfAGoneModule) {
  BootConfig cfg = race_config();
  std::uint64_t total_reclaimed = 0, total_freed = 0;
  LostRacesCounted counted;
  for (int round = 0; round < 40 || (round < 80 && (total_reclaimed == 0 || total_freed == 0)); ++round) {
    KernelPtr k = boot_kernel(cfg);
    ASSERT_TRUE(k);
    const std::uint64_t free_at_boot = k->buddy().free_pages();
    owner_t m;
    ASSERT_EQ(k->insmod("departing", 16384, &m), ModuleError::kOk);
    constexpr int kThreads = 2, kPerThread = 1500;
    std::vector<std::vector<void*>> blocks(kThreads);
    for (auto& v : blocks)
      for (int i = 0; i < kPerThread; ++i) {
        void* p = k->alloc_pages(0, GFP_KERNEL, m);
        ASSERT_NE(p, nullptr);
        v.push_back(p);
      }
    g_lost_races = 0;
    const std::uint64_t reclaimed0 = k->collector().stats().reclaimed_objects;
    ASSERT_EQ(k->rmmod("departing"), ModuleError::kOk);
    std::atomic<int> go{0};
    std::atomic<std::uint64_t> freed{0};
    std::vector<std::thread> threads = start_freeing(
        blocks, go, freed, [&k](void* p) { return k->free_pages(p, kOwnerKernel); }, [] {});
    go = 1;
    constexpr std::uint64_t kTotal = std::uint64_t{kThreads} * kPerThread;
    // The passes start once the frees are under way: on a loaded machine the first pass took
    // every block before either thread ran, 80 rounds running (a CI-load run, stop 50).
    while (freed.load() < kTotal / 16) {
    }
    passes_then_join(*k, threads, 50);
    const std::uint64_t reclaimed = k->collector().stats().reclaimed_objects - reclaimed0;
    EXPECT_EQ(freed.load() + reclaimed, kTotal) << "round " << round;
    EXPECT_EQ(g_lost_races.load(), kTotal - freed.load()) << "round " << round;
    EXPECT_TRUE(invariants(*k)) << "round " << round;
    EXPECT_EQ(k->buddy().free_pages(), free_at_boot) << "round " << round;
    total_reclaimed += reclaimed;
    total_freed += freed.load();
  }
  EXPECT_GT(total_freed, 0u);  // both sides won blocks, or the race was not run
  EXPECT_GT(total_reclaimed, 0u);
}

// A gone module's page runs grown in place (krealloc, the shim's realloc) while a pass
// reclaims them. Growing reads the run's length, takes the free frames after it and stores
// the new length; a pass that claimed and freed the run in between would leave the new tails
// pointing at a freed head, lose the frames and write the length into a free block's
// descriptor. So a module's run grows only inside the fence's window, before any pass has
// flagged its owner gone (Kmalloc::grow_large_in_place, ModuleWindow): a pass that begins
// meanwhile waits for the grow, and after one has begun the run is not grown. Every frame
// comes back, and the zone's invariants hold, whichever side each block loses.
TEST(CollectorStress, GrowInPlaceRacingTheReclaimOfAGoneModule) {
  BootConfig cfg = race_config();
  cfg.kmalloc = KmallocPolicy::kKmalloc2;  // exact page runs: the frame after each is free
  set_on_error(OnError::kReport);
  set_report_writer(&silent);
  // 20 rounds: with growth in place unguarded, 2 of 3 runs of 6 rounds lost frames.
  for (int round = 0; round < 20; ++round) {
    KernelPtr k = boot_kernel(cfg);
    ASSERT_TRUE(k);
    const std::uint64_t free0 = k->buddy().free_pages();
    owner_t m;
    constexpr int kThreads = 2, kPerThread = 400;
    std::vector<std::vector<void*>> objs(kThreads);
    ASSERT_TRUE(departing_blocks(
        *k, round, kPerThread, [](int, std::mt19937&) -> std::size_t { return 3 * kPageSize; }, &m, objs));
    std::atomic<int> go{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        while (go.load() == 0) {
        }
        for (void* p : objs[t]) k->kmalloc_layer().grow_large_in_place(p, 4 * kPageSize, GFP_KERNEL);
      });
    }
    ASSERT_EQ(k->rmmod("departing"), ModuleError::kOk);
    go = 1;
    passes_then_join(*k, threads);
    k->slab().drain_thread_caches();
    EXPECT_TRUE(invariants(*k)) << "round " << round;
    std::vector<OwnerTally> tally(kMaxOwners);
    k->usage(tally.data());
    EXPECT_EQ(tally[m].objects, 0u) << "round " << round;
    k->slab().shrink_empty(nullptr, false);
    EXPECT_EQ(k->buddy().free_pages(), free0) << "round " << round << ": frames lost";
  }
  set_report_writer(nullptr);
  set_on_error(OnError::kAbort);
}

// A host rescuing a gone module's blocks (kmm_transfer to itself) while a pass reclaims
// them: each block is either transferred or reclaimed, never both. The transfer replaces the
// owner with a compare-and-swap from the owner it read, against the pass's claim; a plain
// store after the pass had claimed and freed the block made a free slot (or a free run's
// head) the kernel's, and the host's later kfree freed it a second time.
TEST(CollectorStress, TransferRacingTheReclaimOfAGoneModule) {
  BootConfig cfg = race_config();
  cfg.kmalloc = KmallocPolicy::kKmalloc2;
  cfg.min_partial = 100000;  // no slab goes back under a transfer that lost (see above)
  set_on_error(OnError::kReport);
  set_report_writer(&silent);
  g_lost_races = 0;
  set_report_hook(&count_double_frees, nullptr);
  std::uint64_t total_moved = 0, total_reclaimed = 0;
  for (int round = 0; round < 12 || (round < 40 && (total_moved == 0 || total_reclaimed == 0)); ++round) {
    KernelPtr k = boot_kernel(cfg);
    ASSERT_TRUE(k);
    owner_t m;
    constexpr int kThreads = 2, kPerThread = 3000;
    std::vector<std::vector<void*>> objs(kThreads);
    ASSERT_TRUE(departing_blocks(
        *k, round, kPerThread,
        [](int i, std::mt19937& rng) -> std::size_t {
          return i % 50 == 0 ? (2 + rng() % 4) * kPageSize : 16 + rng() % 700;
        },
        &m, objs));
    std::uint64_t reclaimed0 = k->collector().stats().reclaimed_objects;
    std::atomic<int> go{0};
    std::atomic<std::uint64_t> tried{0};
    std::vector<std::vector<void*>> moved(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        while (go.load() == 0) {
        }
        for (void* p : objs[t]) {
          tried.fetch_add(1, std::memory_order_relaxed);
          if (k->transfer(p, kOwnerFree)) moved[t].push_back(p);
        }
      });
    }
    ASSERT_EQ(k->rmmod("departing"), ModuleError::kOk);
    go = 1;
    // The passes start once the transfers are under way: on a loaded machine a pass begun
    // first took every block before either thread ran, 40 rounds running (1 in 15 runs).
    while (tried.load() < std::uint64_t{kThreads} * kPerThread / 16) {
    }
    passes_then_join(*k, threads);
    std::uint64_t reclaimed = k->collector().stats().reclaimed_objects - reclaimed0;
    std::uint64_t n_moved = 0;
    for (auto& v : moved) n_moved += v.size();
    EXPECT_EQ(n_moved + reclaimed, std::uint64_t{kThreads} * kPerThread) << "round " << round;
    std::uint64_t lost0 = g_lost_races.load();
    for (auto& v : moved) {
      for (void* p : v) {
        EXPECT_EQ(k->owner_of(p), kOwnerKernel) << "round " << round;
        k->kfree(p);
      }
    }
    EXPECT_EQ(g_lost_races.load(), lost0) << "round " << round << ": a transferred block was already free";
    k->slab().drain_thread_caches();
    EXPECT_TRUE(invariants(*k)) << "round " << round;
    std::vector<OwnerTally> tally(kMaxOwners);
    k->usage(tally.data());
    EXPECT_EQ(tally[m].objects, 0u) << "round " << round;
    EXPECT_EQ(tally[kOwnerKernel].objects, 0u) << "round " << round;
    total_moved += n_moved;
    total_reclaimed += reclaimed;
  }
  set_report_hook(nullptr, nullptr);
  set_report_writer(nullptr);
  set_on_error(OnError::kAbort);
  EXPECT_GT(total_moved, 0u);
  EXPECT_GT(total_reclaimed, 0u);
}

// Workers inside a module's scopes (ModuleRegistry::hold, the preload's
// kmm_module_scope_enter) keep allocating, writing and freeing as the module while another
// thread unloads it and runs passes: no block of the module is reclaimed while any worker
// holds it, so none changes or loses its owner under its worker; each worker then leaves its
// blocks behind and drops its hold, and the passes after the last one take every block.
TEST(CollectorStress, HeldModuleIsNotReclaimedUnderItsWorkers) {
  for (ProtectorMode mode : {ProtectorMode::kReclaim, ProtectorMode::kReclaimUnreachable}) {
    BootConfig cfg = race_config();
    cfg.protector = mode;
    KernelPtr k = boot_kernel(cfg);
    ASSERT_TRUE(k);
    owner_t m;
    ASSERT_EQ(k->insmod("worker", 16384, &m), ModuleError::kOk);
    constexpr int kThreads = 3, kKept = 400;
    std::atomic<int> held{0}, stop{0}, bad{0};
    std::atomic<std::uint64_t> left{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        if (!k->modules().hold(m)) {
          bad++;
          return;
        }
        held++;
        std::mt19937 rng(static_cast<unsigned>(t + 7));
        std::vector<Live> live;
        while (stop.load() == 0 || live.size() < kKept) {
          if (live.size() < kKept || rng() % 2 == 0) {
            std::size_t n = rng() % 100 == 0 ? 3 * kPageSize : 16 + rng() % 700;
            auto* p = static_cast<unsigned char*>(k->kmalloc(n, GFP_KERNEL, m));
            if (p == nullptr) continue;
            live.push_back(fill_tagged(p, n, rng));
          } else {
            Live b = take_any(live, rng);
            if (k->owner_of(b.p) != m || b.p[0] != b.tag || b.p[b.size - 1] != b.tag) bad++;
            if (!k->kfree(b.p)) bad++;
          }
        }
        for (const Live& b : live)
          if (k->owner_of(b.p) != m || b.p[0] != b.tag || b.p[b.size - 1] != b.tag) bad++;
        left += live.size();  // left behind: the module's leak
        k->modules().unhold(m);
      });
    }
    while (held.load() < kThreads) {
    }
    ASSERT_EQ(k->rmmod("worker"), ModuleError::kOk);
    for (int pass = 0; pass < 50; ++pass) {
      k->collector().kick();
      k->idle(1'000'000);
    }
    EXPECT_EQ(k->collector().stats().reclaimed_objects, 0u) << "a pass ran while the module was held";
    stop = 1;
    for (auto& th : threads) th.join();
    k->collector().kick();
    k->idle(1'000'000);
    EXPECT_EQ(bad.load(), 0) << "a block changed or lost its owner under its worker";
    EXPECT_EQ(k->collector().stats().reclaimed_objects, left.load());
    k->slab().drain_thread_caches();
    EXPECT_TRUE(invariants(*k));
    std::vector<OwnerTally> tally(kMaxOwners);
    k->usage(tally.data());
    EXPECT_EQ(tally[m].objects, 0u);
  }
}

TEST(CollectorStress, ReclaimWhileModuleAllocates) {
  stress(ProtectorMode::kReclaim);
}
TEST(CollectorStress, ReclaimUnreachableWhileModuleAllocates) {
  stress(ProtectorMode::kReclaimUnreachable);
}
TEST(CollectorStress, ReclaimUnderFaultInjection) {
  stress(ProtectorMode::kReclaim, true, 1);
}
TEST(CollectorStress, ReclaimUnreachableUnderFaultInjection) {
  stress(ProtectorMode::kReclaimUnreachable, true, 0);
}

}  // namespace
}  // namespace kmm

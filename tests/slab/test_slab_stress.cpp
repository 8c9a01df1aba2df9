// tests/slab/test_slab_stress.cpp — kmalloc/kfree from 6 threads with per-thread caches on,
// a third of the objects freed on another thread than the one that allocated them (through
// a locked hand-off queue); then drain, check invariants, and see every page come back to
// the zone. Labelled `stress`: CI runs it under ThreadSanitizer. A second run does it under
// fault injection; a third runs page-level blocks through guard_pages' guarded-run cache; a
// fourth has short-lived threads exit while others free their objects.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "../common/machine_fixture.h"
#include "../common/report_capture.h"
#include "base/fault_inject.h"

namespace kmm {
namespace {

using test::Machine;
using test::MachineOptions;

struct Block {
  unsigned char* p;
  std::size_t size;
  unsigned char tag;
};

class HandOff {
 public:
  void push(const Block& b) {
    std::lock_guard<std::mutex> g(mu_);
    q_.push_back(b);
  }
  bool pop(Block* out) {
    std::lock_guard<std::mutex> g(mu_);
    if (q_.empty()) return false;
    *out = q_.front();
    q_.pop_front();
    return true;
  }

 private:
  std::mutex mu_;
  std::deque<Block> q_;
};

bool intact(const Block& b) {
  return b.p[0] == b.tag && b.p[b.size / 2] == b.tag && b.p[b.size - 1] == b.tag;
}

struct Counts {
  std::atomic<std::uint64_t> corrupt{0}, nulls{0}, allocs{0}, cross_frees{0};
};

// The workload of both tests: each thread allocates half the time (mostly small, sometimes a
// page-sized class, rarely a large block; thread t's blocks owned by module 2 + t), hands a
// third of what it allocates to the others through the queue, and frees its own or a handed
// block the rest of the time; tags are checked on every free. Afterwards the caller's thread
// frees what is left in the queue.
void run_cross_thread(Machine& m, int threads, int iters, unsigned seed, Counts* n) {
  HandOff queue;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 gen(seed + static_cast<unsigned>(t));
      auto rng = [&gen] { return static_cast<unsigned>(gen()); };
      std::vector<Block> mine;
      for (int i = 0; i < iters; ++i) {
        unsigned r = rng() % 100;
        if (r < 50 || mine.empty()) {
          unsigned pick = rng() % 1000;
          std::size_t size = pick < 900 ? 1 + rng() % 256 : pick < 995 ? 257 + rng() % 8000 : 8193 + rng() % 40000;
          n->allocs.fetch_add(1);
          auto* p = static_cast<unsigned char*>(m.km.kmalloc(size, GFP_KERNEL, static_cast<owner_t>(2 + t)));
          if (p == nullptr) {
            n->nulls.fetch_add(1);
            continue;
          }
          auto tag = static_cast<unsigned char>(rng() | 1);
          std::memset(p, tag, size);
          Block b{p, size, tag};
          if (rng() % 3 == 0) {
            queue.push(b);  // someone else frees it
          } else {
            mine.push_back(b);
          }
        } else if (r < 80) {
          std::size_t k = rng() % mine.size();
          Block b = mine[k];
          mine[k] = mine.back();
          mine.pop_back();
          if (!intact(b)) n->corrupt.fetch_add(1);
          m.km.kfree(b.p);
        } else {
          Block b;
          if (queue.pop(&b)) {
            if (!intact(b)) n->corrupt.fetch_add(1);
            m.km.kfree(b.p);
            n->cross_frees.fetch_add(1);
          }
        }
      }
      for (const Block& b : mine) {
        if (!intact(b)) n->corrupt.fetch_add(1);
        m.km.kfree(b.p);
      }
    });
  }
  for (auto& th : workers) th.join();
  // What is left in the queue is freed here, on yet another thread.
  Block b;
  while (queue.pop(&b)) {
    if (!intact(b)) n->corrupt.fetch_add(1);
    m.km.kfree(b.p);
    n->cross_frees.fetch_add(1);
  }
}

// After a run: no object in any cache, no large block, every page back in the zone.
void expect_all_returned(Machine& m, std::uint64_t start_free) {
  m.slab.drain_thread_caches();
  EXPECT_TRUE(m.check());
  for (unsigned i = 0; i < kNrKmallocClasses; ++i) {
    KmemCache* c = m.km.class_cache(i);
    EXPECT_EQ(c->active_objects(), 0u) << c->name;
    EXPECT_EQ(c->nr_slabs.load(), 0u) << c->name;
  }
  EXPECT_EQ(m.km.large_pages(), 0u);
  // Exited threads gave their ThreadCache pages back; this thread's goes at shutdown.
  m.shutdown_slab();
  EXPECT_TRUE(m.check_zone());
  EXPECT_EQ(m.zone.free_pages(), start_free) << "MemFree back to its value before the run";
}

MachineOptions stress_machine() {
  MachineOptions o;
  o.ram = std::size_t{64} << 20;
  o.slab_cfg = SlabConfig{.thread_caches = true, .min_partial = 0, .hardening = {}, .random_seed = 0};
  return o;
}

TEST(SlabStress, CrossThreadKmallocKfree) {
  test::default_report_policy();
  Machine m(stress_machine());
  ASSERT_TRUE(m.ok());
  const std::uint64_t start_free = m.zone.free_pages();
  ASSERT_EQ(start_free, m.boot_free_pages()) << "kmalloc's caches take no pages until used";
  constexpr int kThreads = 6, kIters = 20000;
  Counts n;
  run_cross_thread(m, kThreads, kIters, 1000, &n);
  EXPECT_EQ(n.corrupt.load(), 0u) << "an object was overwritten while live";
  EXPECT_EQ(n.nulls.load(), 0u) << "64 MiB is far more than this workload holds";
  EXPECT_GT(n.cross_frees.load(), std::uint64_t{kThreads} * kIters / 20);
  EXPECT_EQ(report_count(), 0u);
  expect_all_returned(m, start_free);
}

// Thread-owned slabs (slab/owned_slab.cpp): waves of short-lived threads allocate and exit at
// once, while two long-lived threads free their objects — remote frees racing the owners'
// exits, which give the slabs back to the caches with the remote lists merged (under TSan in
// CI). Every object is freed exactly once and every page comes back.
TEST(SlabStress, OwnersExitWhileOtherThreadsFreeTheirObjects) {
  test::default_report_policy();
  Machine m(stress_machine());
  ASSERT_TRUE(m.ok());
  const std::uint64_t start_free = m.zone.free_pages();
  HandOff q;
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> corrupt{0}, freed{0}, made{0};
  auto freer = [&] {
    Block b{};
    for (;;) {
      if (q.pop(&b)) {
        if (!intact(b)) corrupt.fetch_add(1);
        m.km.kfree(b.p);
        freed.fetch_add(1);
      } else if (done.load()) {
        return;
      } else {
        std::this_thread::yield();
      }
    }
  };
  std::thread f1(freer), f2(freer);
  for (int wave = 0; wave < 12; ++wave) {
    std::vector<std::thread> owners;
    for (int t = 0; t < 3; ++t) {
      owners.emplace_back([&, wave, t] {
        std::mt19937 rng(static_cast<unsigned>(wave * 31 + t));
        for (int i = 0; i < 1500; ++i) {
          std::size_t size = 8u << (rng() % 8);  // 8 .. 1024 bytes
          auto* p = static_cast<unsigned char*>(m.km.kmalloc(size, GFP_KERNEL, kOwnerKernel));
          if (p == nullptr) continue;
          auto tag = static_cast<unsigned char>(i);
          std::memset(p, tag, size);
          made.fetch_add(1);
          if (i % 4 == 0) {
            m.km.kfree(p);  // some on the owner's own slab
            made.fetch_sub(1);
          } else {
            q.push(Block{p, size, tag});
          }
        }
      });  // exits at once: its slabs go back while the freers still free their objects
    }
    for (auto& o : owners) o.join();
  }
  done = true;
  f1.join();
  f2.join();
  EXPECT_EQ(corrupt.load(), 0u) << "an object was overwritten while live";
  EXPECT_EQ(freed.load(), made.load());
  EXPECT_EQ(report_count(), 0u);
  expect_all_returned(m, start_free);
}

// The same under fault injection (base/fault_inject.h): failslab fails a random 2 % of
// allocations and fail_page_alloc every 37th slab or large-block page allocation, from every
// thread at once (while failslab is on, the magazines' fast path is bypassed so every call is
// seen). Failed allocations are not kept; nothing live is damaged, the counters are exact,
// and every page comes back.
TEST(SlabStress, CrossThreadUnderFaultInjection) {
  test::default_report_policy();
  Machine m(stress_machine());
  ASSERT_TRUE(m.ok());
  const std::uint64_t start_free = m.zone.free_pages();
  FaultConfig f;
  f.probability_ppm = 20'000;
  f.seed = 3;
  f.verbose = 0;
  fault_configure(FaultPoint::kSlab, f);
  f.probability_ppm = 1'000'000;
  f.interval = 37;
  fault_configure(FaultPoint::kPage, f);
  Counts n;
  run_cross_thread(m, 4, 15000, 77, &n);
  std::uint64_t slab_calls = fault_calls(FaultPoint::kSlab);
  std::uint64_t injected = fault_failures(FaultPoint::kSlab) + fault_failures(FaultPoint::kPage);
  fault_disable_all();
  EXPECT_EQ(n.corrupt.load(), 0u);
  EXPECT_GT(injected, 0u);
  EXPECT_GT(n.nulls.load(), n.allocs.load() / 100);
  EXPECT_LE(n.nulls.load(), injected) << "a null nobody injected: 64 MiB is far more than this workload holds";
  // Every slab-class kmalloc was a failslab call (large ones go to the page allocator).
  EXPECT_GT(slab_calls, n.allocs.load() * 9 / 10);
  EXPECT_EQ(report_count(), 0u);
  expect_all_returned(m, start_free);
}

// guard_pages with the guarded-run cache (slab/kmalloc.h): 4 threads allocate page-level
// blocks of a few page counts (so runs are parked and taken again), grow some in place or
// past their frames with krealloc and hand a third to the others, while a fifth thread gives
// parked runs back as Kernel::idle does (aged, and now and then all of them). No block is
// damaged, no report is made, and every frame comes back once the cache is drained.
TEST(SlabStress, GuardedRunsParkedAndTakenFromManyThreads) {
  test::default_report_policy();
  MachineOptions o = stress_machine();
  o.slab_cfg.hardening.guard_pages = true;
  o.kmalloc_cfg.guard_platform = &mmap_platform();
  Machine m(o);
  ASSERT_TRUE(m.ok());
  const std::uint64_t start_free = m.zone.free_pages();
  HandOff queue;
  Counts n;
  std::atomic<bool> done{false};
  std::thread drainer([&] {
    for (unsigned i = 0; !done.load(std::memory_order_relaxed); ++i) {
      m.km.drain_guard_cache(/*aged_only=*/i % 8 != 0);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 gen(91 + static_cast<unsigned>(t));
      auto rng = [&gen] { return static_cast<unsigned>(gen()); };
      static constexpr std::size_t kSizes[] = {9000, 13000, 20000, 40000};
      std::vector<Block> mine;
      for (int i = 0; i < 4000; ++i) {
        unsigned r = rng() % 100;
        if (r < 45 || mine.empty()) {
          std::size_t size = kSizes[rng() % 4] - rng() % 64;
          auto* p = static_cast<unsigned char*>(m.km.kmalloc(size, GFP_KERNEL, static_cast<owner_t>(2 + t)));
          n.allocs.fetch_add(1);
          if (p == nullptr) {
            n.nulls.fetch_add(1);
            continue;
          }
          auto tag = static_cast<unsigned char>(rng() | 1);
          std::memset(p, tag, size);
          Block b{p, size, tag};
          if (rng() % 3 == 0) {
            queue.push(b);
          } else {
            mine.push_back(b);
          }
        } else if (r < 60) {
          // Grow (within the frames or past them) or shrink; the tag must survive.
          Block& b = mine[rng() % mine.size()];
          std::size_t size = kSizes[rng() % 4] + rng() % 3000;
          if (!intact(b)) n.corrupt.fetch_add(1);
          auto* q = static_cast<unsigned char*>(m.km.krealloc(b.p, size, GFP_KERNEL, static_cast<owner_t>(2 + t)));
          if (q == nullptr) {
            n.nulls.fetch_add(1);
            continue;
          }
          if (q[0] != b.tag || q[std::min(size, b.size) - 1] != b.tag) n.corrupt.fetch_add(1);
          std::memset(q, b.tag, size);
          b = Block{q, size, b.tag};
        } else if (r < 85) {
          std::size_t k = rng() % mine.size();
          Block b = mine[k];
          mine[k] = mine.back();
          mine.pop_back();
          if (!intact(b)) n.corrupt.fetch_add(1);
          m.km.kfree(b.p);
        } else {
          Block b;
          if (queue.pop(&b)) {
            if (!intact(b)) n.corrupt.fetch_add(1);
            m.km.kfree(b.p);
            n.cross_frees.fetch_add(1);
          }
        }
      }
      for (const Block& b : mine) {
        if (!intact(b)) n.corrupt.fetch_add(1);
        m.km.kfree(b.p);
      }
    });
  }
  for (auto& th : workers) th.join();
  done.store(true);
  drainer.join();
  Block b;
  while (queue.pop(&b)) {
    if (!intact(b)) n.corrupt.fetch_add(1);
    m.km.kfree(b.p);
  }
  EXPECT_EQ(n.corrupt.load(), 0u);
  EXPECT_EQ(n.nulls.load(), 0u) << "64 MiB is far more than this workload holds";
  EXPECT_GT(m.km.guard_cache_hits(), 1000u) << "runs were taken from the cache";
  EXPECT_EQ(report_count(), 0u);
  m.km.drain_guard_cache();
  EXPECT_EQ(m.km.guard_cache_pages(), 0u);
  expect_all_returned(m, start_free);
}

}  // namespace
}  // namespace kmm

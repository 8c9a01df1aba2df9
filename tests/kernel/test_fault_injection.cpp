// tests/kernel/test_fault_injection.cpp — every caller copes with injected failures.
//
// A mixed workload over the Kernel API (modules loading and unloading, kmalloc/kzalloc/
// kcalloc/krealloc of every size class and large blocks, custom caches, alloc_pages,
// vmalloc, transfers, idle with the collector in reclaim-unreachable, whose bitmaps are page
// allocations too) runs with failslab, fail_page_alloc and fail_platform failing every Nth
// call for N = 1..k, and with random shares under several seeds. Each allocation that
// returns null is simply not kept. Invariants are checked as it goes; at the end everything
// is freed and the machine must have every page back (no leak), with failed_allocations()
// counting what surfaced.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "base/fault_inject.h"
#include "kernel_fixture.h"

namespace kmm {
namespace {

using test::boot_kernel;
using test::invariants;
using test::KernelPtr;
using test::kSecond;

struct Held {
  enum Kind { kKmalloc, kCache, kPages, kVmalloc } kind;
  void* p;
  std::uint64_t va;
  KmemCache* cache;
};

struct Outcome {
  std::uint64_t ops = 0, null_results = 0;
};

// The workload: `steps` random operations, then everything freed. Returns what it saw.
Outcome run_workload(Kernel& k, std::uint32_t seed, int steps) {
  std::mt19937 rng(seed);
  auto pick = [&](std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); };
  std::vector<Held> held;
  std::vector<std::string> live_modules;
  KmemCache* caches[3] = {};
  Outcome out;
  static const std::size_t kSizes[] = {1,   8,    24,   64,   96,   100,  192,   256,
                                       700, 1024, 2000, 4096, 8192, 9000, 40000, 200000};
  for (int step = 0; step < steps; ++step) {
    ++out.ops;
    owner_t owner = kOwnerKernel;
    if (!live_modules.empty() && pick(2) == 0)
      owner = k.module_owner(live_modules[pick(static_cast<std::uint32_t>(live_modules.size()))].c_str());
    if (owner == kOwnerFree) owner = kOwnerKernel;
    switch (pick(14)) {
      case 0:
      case 1:
      case 2: {
        void* p = k.kmalloc(kSizes[pick(16)], GFP_KERNEL, owner);
        if (p == nullptr)
          ++out.null_results;
        else
          held.push_back({Held::kKmalloc, p, 0, nullptr});
        break;
      }
      case 3: {
        void* p =
            pick(2) ? k.kzalloc(kSizes[pick(12)], GFP_KERNEL, owner) : k.kcalloc(pick(40) + 1, 24, GFP_KERNEL, owner);
        if (p == nullptr)
          ++out.null_results;
        else
          held.push_back({Held::kKmalloc, p, 0, nullptr});
        break;
      }
      case 4: {  // krealloc: on failure the old block stays valid (and is still ours)
        if (held.empty()) break;
        Held& h = held[pick(static_cast<std::uint32_t>(held.size()))];
        if (h.kind != Held::kKmalloc) break;
        void* q = k.krealloc(h.p, kSizes[pick(16)], GFP_KERNEL, kOwnerKernel);
        if (q == nullptr)
          ++out.null_results;
        else
          h.p = q;
        break;
      }
      case 5: {
        unsigned i = pick(3);
        if (caches[i] == nullptr) {
          std::string name = "fi_cache" + std::to_string(i);
          caches[i] = k.kmem_cache_create(name.c_str(), 40 + 200 * i, 0, i == 2 ? std::uint32_t{SLAB_NOLEAKTRACE} : 0u);
          EXPECT_NE(caches[i], nullptr);  // creation allocates no memory
          if (caches[i] == nullptr) return out;
        }
        void* p = k.kmem_cache_alloc(caches[i], GFP_KERNEL, owner);
        if (p == nullptr)
          ++out.null_results;
        else
          held.push_back({Held::kCache, p, 0, caches[i]});
        break;
      }
      case 6: {
        void* p = k.alloc_pages(pick(4), GFP_KERNEL, owner);
        if (p == nullptr)
          ++out.null_results;
        else
          held.push_back({Held::kPages, p, 0, nullptr});
        break;
      }
      case 7: {
        std::uint64_t va = k.vmalloc(kSizes[pick(16)] + 1, owner);
        if (va == 0)
          ++out.null_results;
        else
          held.push_back({Held::kVmalloc, nullptr, va, nullptr});
        break;
      }
      case 8:
      case 9: {  // free one
        if (held.empty()) break;
        std::size_t i = pick(static_cast<std::uint32_t>(held.size()));
        Held h = held[i];
        held[i] = held.back();
        held.pop_back();
        bool ok = h.kind == Held::kKmalloc ? k.kfree(h.p)
                  : h.kind == Held::kCache ? k.kmem_cache_free(h.cache, h.p)
                  : h.kind == Held::kPages ? k.free_pages(h.p)
                                           : k.vfree(h.va);
        // A block of a module that was unloaded may have been reclaimed by the collector.
        (void)ok;
        break;
      }
      case 10: {  // load a module
        std::string name = "fi_mod" + std::to_string(pick(6));
        if (k.insmod(name.c_str(), 8192) == ModuleError::kOk) live_modules.push_back(name);
        break;
      }
      case 11: {  // unload one: what it owns is leaked to the collector
        if (live_modules.empty()) break;
        std::size_t i = pick(static_cast<std::uint32_t>(live_modules.size()));
        std::string name = live_modules[i];
        owner_t gone = k.module_owner(name.c_str());
        EXPECT_EQ(k.rmmod(name.c_str()), ModuleError::kOk);
        live_modules.erase(live_modules.begin() + static_cast<std::ptrdiff_t>(i));
        // Forget its blocks: the collector owns the problem now.
        std::vector<Held> keep;
        for (const Held& h : held) {
          owner_t o;
          if (h.kind == Held::kVmalloc) {
            const VmArea* a = k.vmalloc_space().find(h.va);
            o = a != nullptr ? a->owner : kOwnerKernel;
          } else {
            o = k.owner_of(h.p);
          }
          if (o != gone) keep.push_back(h);
        }
        held.swap(keep);
        break;
      }
      case 12: {  // hand a block to the kernel (so an rmmod does not take it)
        if (held.empty()) break;
        Held& h = held[pick(static_cast<std::uint32_t>(held.size()))];
        if (h.kind == Held::kKmalloc) k.transfer(h.p, kOwnerKernel);
        break;
      }
      case 13:
        k.idle(2 * kSecond);
        break;
    }
    if (step % 50 == 0) {
      EXPECT_TRUE(invariants(k)) << "step " << step;
      if (::testing::Test::HasFailure()) return out;
    }
  }
  // Give everything back.
  for (const Held& h : held) {
    if (h.kind == Held::kKmalloc)
      EXPECT_TRUE(k.kfree(h.p));
    else if (h.kind == Held::kCache)
      EXPECT_TRUE(k.kmem_cache_free(h.cache, h.p));
    else if (h.kind == Held::kPages)
      EXPECT_TRUE(k.free_pages(h.p));
    else
      EXPECT_TRUE(k.vfree(h.va));
  }
  for (const std::string& m : live_modules) EXPECT_EQ(k.rmmod(m.c_str()), ModuleError::kOk);
  return out;
}

// After the workload: collect what unloaded modules leaked, destroy the caches, and every
// page must be free again.
void settle_and_check(Kernel& k, std::uint64_t free_at_boot, const char* what) {
  fault_disable_all();
  k.collector().kick();
  for (int i = 0; i < 20; ++i) k.idle(2 * kSecond);
  for (unsigned id = 0; id < k.slab().nr_cache_ids(); ++id) {
    KmemCache* c = k.slab().cache(id);
    if (c != nullptr && std::string(c->name).rfind("fi_cache", 0) == 0) {
      EXPECT_TRUE(k.kmem_cache_destroy(c)) << what << " " << c->name;
    }
  }
  k.slab().drain_thread_caches();
  k.slab().quarantine_flush();  // hardening: what waits in the quarantine is free
  EXPECT_TRUE(invariants(k)) << what;
  OwnerTally t[kMaxOwners];
  k.usage(t);
  std::uint64_t live = 0;
  for (unsigned o = 1; o < kMaxOwners; ++o) live += t[o].objects;
  EXPECT_EQ(live, 0u) << what << ": blocks still live after everything was freed and collected";
  EXPECT_EQ(k.vmalloc_space().areas(), nullptr) << what;
  EXPECT_EQ(k.zone().free_pages(), free_at_boot) << what << ": pages leaked";
}

// Free pages once this thread's magazines exist (they are per-thread, not a leak).
std::uint64_t free_after_warmup(Kernel& k) {
  k.kfree(k.kmalloc(64));
  k.slab().drain_thread_caches();
  k.slab().quarantine_flush();
  return k.zone().free_pages();
}

BootConfig config(PageAllocKind pa, bool thread_caches) {
  BootConfig cfg = test::small_config(8ull << 20);
  cfg.protector = ProtectorMode::kReclaimUnreachable;
  cfg.page_alloc = pa;
  cfg.thread_caches = thread_caches;
  return cfg;
}

struct FaultInjection : ::testing::TestWithParam<std::tuple<PageAllocKind, bool>> {
  void TearDown() override { fault_disable_all(); }
};

FaultConfig every(std::uint64_t n) {
  FaultConfig c;
  c.interval = n;
  c.probability_ppm = 1'000'000;
  c.verbose = 0;
  return c;
}

// fail every Nth call of one point, N = 1..12, each point in turn.
TEST_P(FaultInjection, EveryNthCallOfEachPoint) {
  auto [pa, tc] = GetParam();
  std::uint64_t injected = 0, nulls = 0, ops = 0;
  for (FaultPoint point : {FaultPoint::kSlab, FaultPoint::kPage}) {
    for (std::uint64_t n = 1; n <= 12; ++n) {
      KernelPtr k = boot_kernel(config(pa, tc));
      ASSERT_NE(k, nullptr);
      std::uint64_t free0 = free_after_warmup(*k);
      fault_configure(point, every(n));
      Outcome o = run_workload(*k, static_cast<std::uint32_t>(n * 31 + 7), 600);
      std::string what = std::string(fault_point_name(point)) + " every " + std::to_string(n);
      std::uint64_t f = fault_failures(point);
      EXPECT_GT(f, 0u) << what;
      EXPECT_GE(k->failed_allocations(), o.null_results) << what;
      EXPECT_GT(o.null_results, 0u) << what;
      injected += f;
      nulls += o.null_results;
      ops += o.ops;
      settle_and_check(*k, free0, what.c_str());
      if (HasFailure()) return;
    }
  }
  RecordProperty("ops", std::to_string(ops));
  RecordProperty("injected", std::to_string(injected));
  RecordProperty("null_results", std::to_string(nulls));
  std::printf("every-Nth: %llu ops, %llu failures injected, %llu null results handled\n",
              static_cast<unsigned long long>(ops), static_cast<unsigned long long>(injected),
              static_cast<unsigned long long>(nulls));
}

// Both points at once, random shares, several seeds; the same seed repeats exactly.
TEST_P(FaultInjection, RandomShareRepeatsPerSeed) {
  auto [pa, tc] = GetParam();
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    std::uint64_t failures[2] = {};
    for (int run = 0; run < 2; ++run) {
      KernelPtr k = boot_kernel(config(pa, tc));
      ASSERT_NE(k, nullptr);
      std::uint64_t free0 = free_after_warmup(*k);
      FaultConfig c;
      c.probability_ppm = 50'000;  // 5 %
      c.seed = seed;
      c.verbose = 0;
      fault_configure(FaultPoint::kSlab, c);
      c.probability_ppm = 100'000;  // 10 %
      fault_configure(FaultPoint::kPage, c);
      run_workload(*k, static_cast<std::uint32_t>(seed), 800);
      failures[run] = fault_failures(FaultPoint::kSlab) * 1000003 + fault_failures(FaultPoint::kPage);
      std::string what = "seed " + std::to_string(seed);
      settle_and_check(*k, free0, what.c_str());
      if (HasFailure()) return;
    }
    if (!tc) {
      EXPECT_EQ(failures[0], failures[1]) << "seed " << seed << " did not repeat";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Allocators, FaultInjection,
                         ::testing::Combine(::testing::Values(PageAllocKind::kBuddy, PageAllocKind::kRange),
                                            ::testing::Bool()),
                         [](const auto& param_info) {
                           return std::string(std::get<0>(param_info.param) == PageAllocKind::kBuddy ? "buddy"
                                                                                                     : "range") +
                                  (std::get<1>(param_info.param) ? "_magazines" : "_nomagazines");
                         });

// The same workload with every hardening option on (slab/hardening.h: debug caches with red
// zones, poison and a quarantine, guard frames after large blocks, encoded free lists): the
// debug paths, the quarantine's ring and the guard frames meet failures too.
TEST(FaultInjectionHardened, EveryNthCallWithEveryHardeningOption) {
  for (FaultPoint point : {FaultPoint::kSlab, FaultPoint::kPage}) {
    for (std::uint64_t n = 1; n <= 8; ++n) {
      BootConfig cfg = config(PageAllocKind::kBuddy, false);
      cfg.hardening.freelist_hardened = true;
      cfg.hardening.redzone = true;
      cfg.hardening.poison = true;
      cfg.hardening.guard_pages = true;
      cfg.hardening.quarantine_bytes = 64 * 1024;
      KernelPtr k = boot_kernel(cfg);
      ASSERT_NE(k, nullptr);
      std::uint64_t free0 = free_after_warmup(*k);
      fault_configure(point, every(n));
      run_workload(*k, static_cast<std::uint32_t>(n * 17 + 3), 600);
      std::string what = std::string("hardened, ") + fault_point_name(point) + " every " + std::to_string(n);
      EXPECT_GT(fault_failures(point), 0u) << what;
      settle_and_check(*k, free0, what.c_str());
      if (HasFailure()) return;
    }
  }
}

// A growable machine: memory hotplug's commit is the platform point. An injected failure is
// an allocation that finds no frames; nothing is left half-grown.
TEST(FaultInjectionGrow, PlatformCommitFailureIsAnAllocationFailure) {
  BootConfig cfg;
  cfg.ram_bytes = 64ull << 20;
  cfg.online_bytes = 2ull << 20;
  cfg.grow_bytes = 1ull << 20;
  cfg.min_free_kbytes = ~std::uint64_t{0};
  KernelPtr k = boot_kernel(cfg);
  ASSERT_NE(k, nullptr);
  std::uint64_t managed0 = k->zone().managed_pages();
  FaultConfig c = every(2);  // every other commit fails
  fault_configure(FaultPoint::kPlatform, c);
  std::vector<void*> blocks;
  std::uint64_t nulls = 0;
  for (int i = 0; i < 4000; ++i) {
    void* p = k->kmalloc(4096);
    if (p == nullptr)
      ++nulls;
    else
      blocks.push_back(p);
  }
  EXPECT_GT(fault_failures(FaultPoint::kPlatform), 0u);
  EXPECT_GT(nulls, 0u);
  EXPECT_GT(k->zone().managed_pages(), managed0);  // the other commits grew it
  EXPECT_TRUE(invariants(*k));
  fault_disable_all();
  for (void* p : blocks) EXPECT_TRUE(k->kfree(p));
  EXPECT_TRUE(invariants(*k));
  EXPECT_EQ(k->zone().free_pages(), k->zone().managed_pages());
}

// __GFP_NOFAIL callers are never failed; the log gets one FAULT_INJECTION line per failure.
TEST(FaultInjectionKernel, NofailAndTheLog) {
  KernelPtr k = boot_kernel(test::small_config());
  ASSERT_NE(k, nullptr);
  test::LogCapture log(*k);
  FaultConfig c = every(1);
  c.verbose = 1;
  fault_configure(FaultPoint::kSlab, c);
  fault_configure(FaultPoint::kPage, c);
  EXPECT_EQ(k->kmalloc(64), nullptr);
  EXPECT_EQ(k->alloc_pages(0), nullptr);
  void* p = k->kmalloc(64, __GFP_NOFAIL);
  void* q = k->alloc_pages(0, __GFP_NOFAIL);
  EXPECT_NE(p, nullptr);
  EXPECT_NE(q, nullptr);
  EXPECT_EQ(k->failed_allocations(), 2u);
  EXPECT_EQ(log.count("FAULT_INJECTION: forcing a failure. name failslab"), 1u) << log.text();
  EXPECT_EQ(log.count("FAULT_INJECTION: forcing a failure. name fail_page_alloc"), 1u) << log.text();
  fault_disable_all();
  EXPECT_TRUE(k->kfree(p));
  EXPECT_TRUE(k->free_pages(q));
  EXPECT_TRUE(invariants(*k));
}

// While failslab is on, every allocation leaves the thread's fast path (alloc_tc_slot is
// 0xFF for kmem_cache_alloc; kmalloc's pop, which tests no cache, finds no thread cache:
// fast_gen_ is kNoHeapGen), so every call is seen; switched off, the fast path is back.
TEST(FaultInjectionKernel, SlabRoutingWithMagazines) {
  BootConfig cfg = test::small_config();
  cfg.thread_caches = true;
  KernelPtr k = boot_kernel(cfg);
  ASSERT_NE(k, nullptr);
  KmemCache* c = k->kmalloc_layer().cache_for(64);
  EXPECT_EQ(c->alloc_tc_slot, c->tc_slot);
  EXPECT_NE(c->tc_slot, 0xFF);
  void* warm = k->kmalloc(64);  // fills the magazine
  ASSERT_NE(warm, nullptr);
  EXPECT_TRUE(k->kfree(warm));
  fault_configure(FaultPoint::kSlab, every(5));
  EXPECT_EQ(c->alloc_tc_slot, 0xFF);
  KmemCache* later = k->kmem_cache_create("fi_later", 48);  // made while it is on
  ASSERT_NE(later, nullptr);
  EXPECT_EQ(later->alloc_tc_slot, 0xFF);
  std::vector<void*> got;
  int nulls = 0;
  for (int i = 0; i < 100; ++i) {
    void* p = k->kmalloc(64);
    if (p == nullptr)
      ++nulls;
    else
      got.push_back(p);
  }
  EXPECT_EQ(fault_calls(FaultPoint::kSlab), 100u);  // the magazine did not hide any call
  EXPECT_EQ(nulls, 20);
  fault_disable(FaultPoint::kSlab);
  EXPECT_EQ(c->alloc_tc_slot, c->tc_slot);
  EXPECT_EQ(later->alloc_tc_slot, later->tc_slot);
  for (void* p : got) EXPECT_TRUE(k->kfree(p));
  EXPECT_TRUE(k->kmem_cache_destroy(later));
  EXPECT_TRUE(invariants(*k));
}

// The route observer (the shim's malloc, whose fast path tests no alloc_tc_slot, routes
// itself with it): called at once with failslab's state when set, then with every switch,
// and no more once cleared.
std::vector<bool> g_routes;
void record_route(bool slow) {
  g_routes.push_back(slow);
}

TEST(FaultInjectionKernel, RouteObserverFollowsFailslab) {
  BootConfig cfg = test::small_config();
  cfg.thread_caches = true;
  KernelPtr k = boot_kernel(cfg);
  ASSERT_NE(k, nullptr);
  g_routes.clear();
  k->slab().set_route_observer(record_route);
  EXPECT_EQ(g_routes, std::vector<bool>{false});
  fault_configure(FaultPoint::kSlab, every(3));
  EXPECT_EQ(g_routes, (std::vector<bool>{false, true}));
  fault_disable(FaultPoint::kSlab);
  EXPECT_EQ(g_routes, (std::vector<bool>{false, true, false}));
  fault_configure(FaultPoint::kSlab, every(3));
  k->slab().set_route_observer(nullptr);
  fault_disable(FaultPoint::kSlab);
  EXPECT_EQ(g_routes, (std::vector<bool>{false, true, false, true}));
  // Set while failslab is on: told so at once.
  fault_configure(FaultPoint::kSlab, every(3));
  g_routes.clear();
  k->slab().set_route_observer(record_route);
  EXPECT_EQ(g_routes, std::vector<bool>{true});
  fault_disable(FaultPoint::kSlab);
  k->slab().set_route_observer(nullptr);
  EXPECT_EQ(g_routes, (std::vector<bool>{true, false}));
  EXPECT_TRUE(invariants(*k));
}

}  // namespace
}  // namespace kmm

// tests/nommu/test_process.cpp — Nommu: spawn/exit, malloc-simple's per-allocation cost
// (the seed's 56 bytes), linear vs indexed lookup (steps), smalloc chunks, fixed heaps with
// brk inside, realloc, bad frees, failure classification (missing memory vs out of memory,
// too large for pow2), MmapCopy, and a random sequence. Both the kernel's and the process
// model's check_invariants() run after every step.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "../kernel/kernel_fixture.h"
#include "base/fault_inject.h"
#include "nommu/mmap_copy.h"
#include "nommu/nommu.h"

namespace kmm {
namespace {

using test::boot_kernel;
using test::KernelPtr;

struct Proc {
  explicit Proc(BootConfig cfg, NommuConfig nc = NommuConfig{}) : k(boot_kernel(cfg)) {
    if (k) ok = n.init(k.get(), nc);
  }
  ~Proc() {
    if (ok) n.shutdown();
  }
  ::testing::AssertionResult check() {
    StackText<512> why;
    if (!n.check_invariants(&why)) return ::testing::AssertionFailure() << why.data();
    if (!k->check_invariants(&why)) return ::testing::AssertionFailure() << why.data();
    return ::testing::AssertionSuccess();
  }
  KernelPtr k;
  Nommu n;
  bool ok = false;
};

BootConfig nommu_cfg(std::uint64_t ram = 4u << 20, KmallocPolicy pol = KmallocPolicy::kPow2, bool range = false) {
  BootConfig c = test::small_config(ram);
  c.mmu = false;
  c.kmalloc = pol;
  if (range) c.page_alloc = PageAllocKind::kRange;
  return c;
}

TEST(Nommu, SpawnExitAndNames) {
  Proc t(nommu_cfg());
  ASSERT_TRUE(t.ok);
  NommuError e;
  int a = t.n.spawn("a", MallocKind::kSimple, 0, &e);
  EXPECT_EQ(a, 1);
  EXPECT_EQ(t.n.spawn("a", MallocKind::kSimple, 0, &e), 0);
  EXPECT_EQ(e, NommuError::kExists);
  EXPECT_EQ(t.n.spawn("b", MallocKind::kBrk, 0, &e), 0);
  EXPECT_EQ(e, NommuError::kNeedsMmu);
  EXPECT_EQ(t.n.spawn("", MallocKind::kSimple, 0, &e), 0);
  EXPECT_EQ(t.n.find("a"), a);
  EXPECT_TRUE(t.check());
  EXPECT_EQ(t.n.exit(a), NommuError::kOk);
  EXPECT_EQ(t.n.exit(a), NommuError::kNoProcess);
  EXPECT_EQ(t.n.find("a"), 0);
  EXPECT_TRUE(t.check());
}

TEST(Nommu, SimpleCostsFiftySixBytesPerMalloc) {
  Proc t(nommu_cfg());
  ASSERT_TRUE(t.ok);
  EXPECT_EQ(t.n.record_bytes(), 48u);
  NommuError e;
  int pid = t.n.spawn("zebra", MallocKind::kSimple, 0, &e);
  std::uint64_t free_before = t.k->zone().free_pages();
  for (int i = 0; i < 1000; ++i) {
    ASSERT_NE(t.n.malloc(pid, 10, &e), nullptr);
    if (i % 100 == 0) {
      ASSERT_TRUE(t.check());
    }
  }
  EXPECT_EQ(t.n.process_bytes(pid), 66000u);
  EXPECT_EQ(t.n.process(pid)->nr_regions, 1000u);
  // Whole slab pages: 5 of kmalloc-16 (240 a page) and 13 of vm_region (83 a page).
  EXPECT_EQ(free_before - t.k->zone().free_pages(), 18u);
  EXPECT_EQ(t.n.mmap_copy_bytes(), 16000u);
  EXPECT_EQ(mmap_copy_bytes(t.k.get()), 16000u);
  EXPECT_TRUE(t.check());
  t.n.exit(pid);
  EXPECT_EQ(t.n.mmap_copy_bytes(), 0u);
  EXPECT_TRUE(t.check());
}

TEST(Nommu, RecordSizeIsABootOption) {
  BootConfig c = nommu_cfg();
  NommuConfig nc;
  nc.region_record_bytes = 64;
  Proc t(c, nc);
  ASSERT_TRUE(t.ok);
  EXPECT_EQ(t.n.record_bytes(), 64u);
  NommuError e;
  int pid = t.n.spawn("p", MallocKind::kSimple, 0, &e);
  void* p = t.n.malloc(pid, 10, &e);
  EXPECT_EQ(t.n.footprint(pid, p), 17u + 65u);
  nc.region_record_bytes = 8;  // smaller than the model's own record: raised to it
  Proc u(c, nc);
  EXPECT_GE(u.n.record_bytes(), sizeof(VmRegion));
}

TEST(Nommu, LinearLookupWalksIndexedDoesNot) {
  for (bool indexed : {false, true}) {
    NommuConfig nc;
    nc.indexed = indexed;
    Proc t(nommu_cfg(8u << 20), nc);
    ASSERT_TRUE(t.ok);
    NommuError e;
    int pid = t.n.spawn("p", MallocKind::kSimple, 0, &e);
    std::vector<void*> v;
    for (int i = 0; i < 2000; ++i) v.push_back(t.n.malloc(pid, 32, &e));
    ASSERT_TRUE(t.check());
    // The oldest block is at the tail of the list (allocation pushes at the head).
    EXPECT_EQ(t.n.free(pid, v[0]), NommuError::kOk);
    if (indexed) {
      EXPECT_LE(t.n.last_lookup_steps(), 8u);
    } else {
      EXPECT_EQ(t.n.last_lookup_steps(), 2000u);
    }
    EXPECT_EQ(t.n.free(pid, v[1999]), NommuError::kOk);
    EXPECT_LE(t.n.last_lookup_steps(), indexed ? 8u : 1u);
    EXPECT_TRUE(t.check());
    t.n.set_indexed(!indexed);  // switching rebuilds or drops the index
    EXPECT_TRUE(t.check());
    EXPECT_EQ(t.n.free(pid, v[1000]), NommuError::kOk);
    EXPECT_TRUE(t.check());
  }
}

TEST(Nommu, BadFreesAreRefused) {
  for (bool indexed : {false, true}) {
    NommuConfig nc;
    nc.indexed = indexed;
    Proc t(nommu_cfg(), nc);
    NommuError e;
    int a = t.n.spawn("a", MallocKind::kSimple, 0, &e);
    int b = t.n.spawn("b", MallocKind::kSmalloc, 0, &e);
    void* pa = t.n.malloc(a, 100, &e);
    void* pb = t.n.malloc(b, 100, &e);
    EXPECT_EQ(t.n.free(b, pa), NommuError::kNotYours);
    EXPECT_EQ(t.n.free(a, pb), NommuError::kNotYours);
    EXPECT_EQ(t.n.free(a, static_cast<char*>(pa) + 8), NommuError::kBadPointer);
    EXPECT_EQ(t.n.free(b, static_cast<char*>(pb) + 8), NommuError::kBadPointer);
    EXPECT_EQ(t.n.free(a, pa), NommuError::kOk);
    EXPECT_EQ(t.n.free(a, pa), NommuError::kBadPointer);  // double free
    EXPECT_EQ(t.n.free(b, pb), NommuError::kOk);
    EXPECT_EQ(t.n.free(b, pb), NommuError::kBadPointer);
    EXPECT_EQ(t.n.free(9, pb), NommuError::kNoProcess);
    EXPECT_EQ(t.n.free(a, nullptr), NommuError::kOk);
    EXPECT_TRUE(t.check());
  }
}

TEST(Nommu, SmallocSuballocatesChunks) {
  Proc t(nommu_cfg());
  NommuError e;
  int pid = t.n.spawn("ripd", MallocKind::kSmalloc, 0, &e);
  std::vector<void*> v;
  for (int i = 0; i < 1000; ++i) {
    v.push_back(t.n.malloc(pid, 10, &e));
    ASSERT_NE(v.back(), nullptr);
    ASSERT_EQ(reinterpret_cast<std::uintptr_t>(v.back()) % 8, 0u);
  }
  EXPECT_EQ(t.n.process(pid)->nr_regions, 4u);  // 255 16-byte blocks a 4 KB chunk
  EXPECT_EQ(t.n.process_bytes(pid), 4u * (4096 + 49));
  EXPECT_EQ(t.n.usable(pid, v[0]), 12u);
  EXPECT_EQ(t.n.footprint(pid, v[0]), 16u);
  EXPECT_TRUE(t.check());
  // A big request gets its own mmap.
  void* big = t.n.malloc(pid, 3000, &e);
  EXPECT_EQ(t.n.process(pid)->nr_regions, 5u);
  EXPECT_EQ(t.n.free(pid, big), NommuError::kOk);
  // Freeing every block of a chunk gives the chunk back.
  for (int i = 0; i < 255; ++i) ASSERT_EQ(t.n.free(pid, v[static_cast<std::size_t>(i)]), NommuError::kOk);
  EXPECT_TRUE(t.check());
  EXPECT_EQ(t.n.process(pid)->nr_regions, 3u);
  // Freed space is reused, first fit.
  void* again = t.n.malloc(pid, 10, &e);
  EXPECT_NE(again, nullptr);
  EXPECT_EQ(t.n.process(pid)->nr_regions, 3u);
  EXPECT_TRUE(t.check());
}

TEST(Nommu, SizesNearTheTopOfSize_tAreRefusedNotWrapped) {
  // block_need(SIZE_MAX - 7) wrapped to 0: smalloc and the fixed heap handed out a block of
  // no size, whose header broke the arena, and the next malloc looped forever.
  Proc t(nommu_cfg());
  ASSERT_TRUE(t.ok);
  NommuError e;
  int s = t.n.spawn("s", MallocKind::kSmalloc, 0, &e);
  int h = t.n.spawn("h", MallocKind::kHeap, 16 * 1024, &e);
  int p = t.n.spawn("p", MallocKind::kSimple, 0, &e);
  ASSERT_TRUE(s != 0 && h != 0 && p != 0);
  for (int pid : {s, h, p}) {
    for (std::size_t size : {SIZE_MAX, SIZE_MAX - 7, std::size_t{1} << 40}) {
      e = NommuError::kOk;
      EXPECT_EQ(t.n.malloc(pid, size, &e), nullptr) << pid << " " << size;
      EXPECT_NE(e, NommuError::kOk) << pid << " " << size;
    }
    void* q = t.n.malloc(pid, 10, &e);
    EXPECT_NE(q, nullptr) << pid;
    EXPECT_EQ(t.n.free(pid, q), NommuError::kOk);
  }
  EXPECT_TRUE(t.check());
}

TEST(Nommu, AnEmptiedIndexGivesItsMemoryBack) {
  // lookup=indexed grew its table to 64 K buckets for 100 K regions and kept it after they
  // were gone: 504 kB of the kernel's memory held by no process.
  Proc t(nommu_cfg(64u << 20, KmallocPolicy::kKmalloc2, true));
  ASSERT_TRUE(t.ok);
  t.n.set_indexed(true);
  const std::uint64_t free0 = t.k->zone().free_pages();
  NommuError e;
  int z = t.n.spawn("z", MallocKind::kSimple, 0, &e);
  for (int i = 0; i < 100000; ++i) ASSERT_NE(t.n.malloc(z, 10, &e), nullptr) << i;
  EXPECT_EQ(t.n.exit(z), NommuError::kOk);
  EXPECT_EQ(t.k->zone().free_pages(), free0);
  EXPECT_TRUE(t.check());
}

TEST(Nommu, FixedHeapWithBrkInside) {
  Proc t(nommu_cfg());
  NommuError e;
  int pid = t.n.spawn("h", MallocKind::kHeap, 16 * 1024, &e);
  ASSERT_NE(pid, 0);
  EXPECT_EQ(t.n.process(pid)->nr_regions, 1u);
  std::uint64_t bytes = t.n.process_bytes(pid);
  EXPECT_EQ(bytes, 16384u + 49);  // the heap is taken at spawn, used or not
  void* a = t.n.malloc(pid, 1000, &e);
  void* b = t.n.malloc(pid, 1000, &e);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(t.n.process_bytes(pid), bytes);
  ArenaStats st = t.n.heap_stats(pid);
  EXPECT_EQ(st.used, 2u * 1008);
  EXPECT_TRUE(t.check());
  EXPECT_EQ(t.n.malloc(pid, 16 * 1024, &e), nullptr);
  EXPECT_EQ(e, NommuError::kHeapFull);
  EXPECT_EQ(t.n.last_failure().error, NommuError::kHeapFull);
  // Freeing the last block lowers brk; the first is reused.
  EXPECT_EQ(t.n.free(pid, b), NommuError::kOk);
  EXPECT_EQ(t.n.free(pid, a), NommuError::kOk);
  EXPECT_EQ(t.n.heap_stats(pid).used, 0u);
  EXPECT_EQ(t.n.heap_stats(pid).largest, 16384u - 8);
  EXPECT_TRUE(t.check());
  int blocks = 0;
  while (t.n.malloc(pid, 100, &e) != nullptr) ++blocks;
  EXPECT_EQ(blocks, (16384 - 8) / 104);
  EXPECT_TRUE(t.check());
  // A heap larger than the allocator serves.
  EXPECT_EQ(t.n.spawn("huge", MallocKind::kHeap, 8u << 20, &e), 0);
  EXPECT_EQ(e, NommuError::kTooLarge);
  EXPECT_EQ(t.n.find("huge"), 0);
  EXPECT_TRUE(t.check());
}

TEST(Nommu, ReallocInPlaceAndMoving) {
  Proc t(nommu_cfg());
  NommuError e;
  for (MallocKind kind : {MallocKind::kSimple, MallocKind::kSmalloc, MallocKind::kHeap}) {
    int pid = t.n.spawn("r", kind, 0, &e);
    auto* p = static_cast<char*>(t.n.malloc(pid, 20, &e));
    std::memcpy(p, "uClinux malloc", 15);
    EXPECT_EQ(t.n.realloc(pid, p, 19, &e), p);  // fits its slot / block
    auto* q = static_cast<char*>(t.n.realloc(pid, p, 5000, &e));
    ASSERT_NE(q, nullptr);
    EXPECT_NE(q, p);
    EXPECT_STREQ(q, "uClinux malloc");
    EXPECT_EQ(t.n.process(pid)->mallocs, 1u);
    EXPECT_EQ(t.n.realloc(pid, q, 0, &e), nullptr);
    EXPECT_EQ(e, NommuError::kOk);
    EXPECT_TRUE(t.check());
    t.n.exit(pid);
  }
}

TEST(Nommu, FailuresSayWhy) {
  // pow2 refuses above 1 MB.
  {
    Proc t(nommu_cfg());
    NommuError e;
    int pid = t.n.spawn("p", MallocKind::kSimple, 0, &e);
    EXPECT_EQ(t.n.malloc(pid, (1u << 20) + 1, &e), nullptr);
    EXPECT_EQ(e, NommuError::kTooLarge);
  }
  // Missing memory: the seed's picture in small.
  {
    BootConfig c = nommu_cfg(1000u << 10, KmallocPolicy::kKmalloc2, true);
    c.reserved_bytes = 200u << 10;
    Proc t(c);
    NommuError e;
    int pid = t.n.spawn("p", MallocKind::kSimple, 0, &e);
    std::vector<void*> v;
    // 80 KB used, 80 KB free, alternating.
    while (void* p = t.n.malloc(pid, 76 * 1024, &e)) v.push_back(p);
    for (std::size_t i = 0; i < v.size(); i += 2) ASSERT_EQ(t.n.free(pid, v[i]), NommuError::kOk);
    EXPECT_TRUE(t.check());
    EXPECT_EQ(t.n.malloc(pid, 100 * 1024, &e), nullptr);
    EXPECT_EQ(e, NommuError::kMissingMemory);
    const NommuFailure& f = t.n.last_failure();
    EXPECT_EQ(f.asked, 100u * 1024);
    EXPECT_GE(f.free, 100u * 1024);
    EXPECT_LT(f.largest, 100u * 1024);
    EXPECT_TRUE(t.check());
    // And plain out of memory.
    EXPECT_EQ(t.n.malloc(pid, 900 * 1024, &e), nullptr);
    EXPECT_EQ(e, NommuError::kNoMemory);
  }
}

TEST(Nommu, RandomSequence) {
  for (int indexed = 0; indexed < 2; ++indexed) {
    NommuConfig nc;
    nc.indexed = indexed != 0;
    Proc t(nommu_cfg(4u << 20, KmallocPolicy::kKmalloc2, true), nc);
    std::mt19937 rng(7);
    NommuError e;
    int pids[3] = {t.n.spawn("s", MallocKind::kSimple, 0, &e), t.n.spawn("m", MallocKind::kSmalloc, 0, &e),
                   t.n.spawn("h", MallocKind::kHeap, 64 * 1024, &e)};
    std::vector<std::pair<int, void*>> live;
    for (int step = 0; step < 4000; ++step) {
      int pid = pids[rng() % 3];
      auto op = rng() % 10;
      if (op < 5 || live.empty()) {
        std::size_t size = rng() % 8 == 0 ? 1 + rng() % 40000 : 1 + rng() % 300;
        if (void* p = t.n.malloc(pid, size, &e)) live.emplace_back(pid, p);
      } else if (op < 8) {
        std::size_t i = rng() % live.size();
        ASSERT_EQ(t.n.free(live[i].first, live[i].second), NommuError::kOk);
        live[i] = live.back();
        live.pop_back();
      } else {
        std::size_t i = rng() % live.size();
        if (void* q = t.n.realloc(live[i].first, live[i].second, 1 + rng() % 2000, &e)) live[i].second = q;
      }
      ASSERT_TRUE(t.check()) << "step " << step;
    }
    for (int pid : pids) t.n.exit(pid);
    EXPECT_EQ(t.n.nr_regions(), 0u);
    EXPECT_TRUE(t.check());
  }
}

// Fault injection (base/fault_inject.h): the same random sequence with failslab or
// fail_page_alloc failing every Nth call. Each failed malloc/realloc/spawn is simply not
// kept (a failed realloc leaves the block); invariants hold at every step, and after every
// process exits and the model shuts down every page is free again.
TEST(Nommu, RandomSequenceUnderFaultInjection) {
  std::uint64_t injected = 0, failed_calls = 0;
  for (FaultPoint point : {FaultPoint::kSlab, FaultPoint::kPage}) {
    for (std::uint64_t n = 1; n <= 7; ++n) {
      NommuConfig nc;
      nc.indexed = n % 2 == 0;
      BootConfig cfg = nommu_cfg(4u << 20, n % 3 == 0 ? KmallocPolicy::kPow2 : KmallocPolicy::kKmalloc2, n % 3 != 0);
      std::uint64_t free0;
      {
        Proc t(cfg, nc);
        ASSERT_TRUE(t.ok);
        free0 = t.k->zone().free_pages();
        FaultConfig fc;
        fc.interval = n;
        fc.probability_ppm = 1'000'000;
        fc.verbose = 0;
        fault_configure(point, fc);
        std::mt19937 rng(static_cast<std::uint32_t>(n));
        NommuError e;
        std::vector<int> pids;
        for (auto [name, kind, heap] :
             {std::tuple{"s", MallocKind::kSimple, 0}, std::tuple{"m", MallocKind::kSmalloc, 0},
              std::tuple{"h", MallocKind::kHeap, 64 * 1024}}) {
          int pid = t.n.spawn(name, kind, static_cast<std::size_t>(heap), &e);
          if (pid != 0)
            pids.push_back(pid);
          else
            ++failed_calls;
        }
        std::vector<std::pair<int, void*>> live;
        for (int step = 0; step < 1500 && !pids.empty(); ++step) {
          int pid = pids[rng() % pids.size()];
          auto op = rng() % 10;
          if (op < 5 || live.empty()) {
            std::size_t size = rng() % 8 == 0 ? 1 + rng() % 40000 : 1 + rng() % 300;
            if (void* p = t.n.malloc(pid, size, &e))
              live.emplace_back(pid, p);
            else
              ++failed_calls;
          } else if (op < 8) {
            std::size_t i = rng() % live.size();
            ASSERT_EQ(t.n.free(live[i].first, live[i].second), NommuError::kOk);
            live[i] = live.back();
            live.pop_back();
          } else {
            std::size_t i = rng() % live.size();
            if (void* q = t.n.realloc(live[i].first, live[i].second, 1 + rng() % 2000, &e))
              live[i].second = q;
            else
              ++failed_calls;
          }
          ASSERT_TRUE(t.check()) << fault_point_name(point) << " every " << n << ", step " << step;
        }
        injected += fault_failures(point);
        fault_disable_all();
        for (int pid : pids) EXPECT_EQ(t.n.exit(pid), NommuError::kOk);
        EXPECT_EQ(t.n.nr_regions(), 0u);
        EXPECT_TRUE(t.check());
        t.n.shutdown();
        t.ok = false;
        t.k->slab().drain_thread_caches();
        EXPECT_EQ(t.k->zone().free_pages(), free0) << fault_point_name(point) << " every " << n << ": pages leaked";
      }
    }
  }
  EXPECT_GT(injected, 0u);
  EXPECT_GT(failed_calls, 0u);
  std::printf("nommu under injection: 14 runs x 1500 steps, %llu failures injected, %llu failed calls handled\n",
              static_cast<unsigned long long>(injected), static_cast<unsigned long long>(failed_calls));
}

}  // namespace
}  // namespace kmm

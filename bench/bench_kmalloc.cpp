// kmm/bench/bench_kmalloc.cpp — kmalloc/kfree beside glibc malloc and mimalloc (issue 2).
//
// One process, one run, three allocators doing the same work:
//   kmm       Kmalloc::kmalloc / kfree on a machine of 1 GiB (buddy watermarks off, slab
//             thread-owned slabs on, empty slabs kept as the preload keeps them:
//             kPreloadMinPartial, kPreloadEmptyKeepBytes), set up once before any benchmark;
//   glibc     glibc's own malloc / free, looked up in libc.so.6 itself with dlsym at start.
//             Linking libmimalloc.so makes mimalloc the process's `malloc`: it exports
//             malloc, free and even __libc_malloc / __libc_free, so neither a plain call nor
//             the __libc_ names would reach glibc here. A call through the looked-up pointer
//             costs what a call through the PLT costs (one indirect jump);
//   mimalloc  mi_malloc / mi_free, called explicitly.
// main() checks at start that each side really is the allocator it claims to be.
//
// Workloads (names are WORKLOAD/ALLOCATOR/SIZE/threads:N; compare.py parses them):
//   hot/A/S     one allocation of S bytes, write its first byte, free it: one pair an
//               iteration (the pair stays in the per-thread cache of every allocator);
//   batch/A/S   1000 allocations of S bytes kept live (first byte written), then freed in a
//               fixed random order (one permutation, seed 20240601): 1000 pairs an iteration;
//   pages/order:N   BuddyZone::alloc_pages(N) + first byte written + free_pages, the buddy
//               allocator alone (its zone lock on every call).
// Sizes 8..4096 by powers of two; 1 thread and 2 threads. With threads:2 every thread does
// the same work on its own objects at the same time (contention on shared locks shows).
//
// Counters: minflt = minor page faults of the benchmark threads per iteration
// (getrusage(RUSAGE_THREAD), summed over threads, divided by iterations), pairs = pairs an
// iteration. Report cpu_time: per-thread CPU time per iteration (Google Benchmark divides the
// threads' summed CPU time by their summed iterations).
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <mimalloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "page/buddy.h"
#include "pal/pal.h"
#include "phys/phys_mem.h"
#include "slab/kmalloc.h"
#include "slab/slab.h"

namespace {

using MallocFn = void* (*)(std::size_t);
using FreeFn = void (*)(void*);
MallocFn g_glibc_malloc = nullptr;
FreeFn g_glibc_free = nullptr;

// glibc's malloc and free, from libc.so.6's own symbol table (a handle's lookup scope is that
// object and its dependencies, so an interposer such as libmimalloc.so is not searched).
bool find_glibc() {
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  if (libc == nullptr) return false;
  void* m = dlsym(libc, "malloc");
  void* f = dlsym(libc, "free");
  if (m == nullptr || f == nullptr) return false;
  g_glibc_malloc = reinterpret_cast<MallocFn>(m);
  g_glibc_free = reinterpret_cast<FreeFn>(f);
  return true;
}

// ---- the kmm machine ------------------------------------------------------------------

constexpr std::size_t kArenaBytes = std::size_t{1} << 30;  // 1 GiB of "RAM"

struct Machine {
  kmm::PhysMem phys;
  kmm::BuddyZone zone;
  kmm::SlabAllocator slab;
  kmm::Kmalloc km;
};

Machine g_machine;  // static storage: no heap; brought up once in main()

bool boot_machine() {
  kmm::Platform& pal = kmm::mmap_platform();
  void* base = pal.reserve(kArenaBytes, std::size_t{1} << 22);
  if (base == nullptr || !pal.commit(base, kArenaBytes)) return false;
  if (!g_machine.phys.init(base, kArenaBytes, 0)) return false;
  g_machine.zone.init(&g_machine.phys, g_machine.phys.first_free_pfn(), g_machine.phys.end_pfn(),
                      ~std::uint64_t{0});  // watermarks off
  g_machine.slab.init(&g_machine.zone, kmm::SlabConfig{.thread_caches = true,
                                                       .min_partial = kmm::kPreloadMinPartial,
                                                       .hardening = {},
                                                       .random_seed = 0,
                                                       .empty_keep_bytes = kmm::kPreloadEmptyKeepBytes});
  return g_machine.km.init(&g_machine.slab, kmm::KmallocConfig{});
}

// ---- the three allocators, one interface ----------------------------------------------

struct Kmm {
  // In the loop, as kmalloc is in any caller's code (it is always_inline): this wrapper is
  // the bench's, not kmm's, and must not add a call GCC chose by its size.
  __attribute__((always_inline)) static void* alloc(std::size_t n) {
    return g_machine.km.kmalloc(n, kmm::GFP_KERNEL, kmm::kOwnerKernel);
  }
  static void release(void* p) { g_machine.km.kfree(p); }
};
struct Glibc {
  static void* alloc(std::size_t n) { return g_glibc_malloc(n); }
  static void release(void* p) { g_glibc_free(p); }
};
struct Mimalloc {
  static void* alloc(std::size_t n) { return mi_malloc(n); }
  static void release(void* p) { mi_free(p); }
};

// A real program writes what it allocates (bench_util.h).
using kmm::bench::thread_minflt;
using kmm::bench::touch;

void set_counters(benchmark::State& state, long faults, double pairs_per_iter) {
  state.counters["minflt"] = benchmark::Counter(static_cast<double>(faults), benchmark::Counter::kAvgIterations);
  state.counters["pairs"] = benchmark::Counter(pairs_per_iter, benchmark::Counter::kAvgThreads);
}

constexpr std::size_t kBatch = 1000;
std::vector<std::uint32_t> g_perm;  // free order for the batch workload, fixed seed

// ---- workloads -------------------------------------------------------------------------

template <typename A>
void bm_hot(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  long f0 = thread_minflt();
  for (auto _ : state) {
    void* p = A::alloc(size);
    touch(p);
    A::release(p);
  }
  benchmark::ClobberMemory();
  set_counters(state, thread_minflt() - f0, 1.0);
}

template <typename A>
void bm_batch(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<void*> live(kBatch);  // outside the timed loop
  const std::uint32_t* perm = g_perm.data();
  long f0 = thread_minflt();
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i) {
      void* p = A::alloc(size);
      touch(p);
      live[i] = p;
    }
    benchmark::ClobberMemory();
    for (std::size_t i = 0; i < kBatch; ++i) A::release(live[perm[i]]);
  }
  benchmark::ClobberMemory();
  set_counters(state, thread_minflt() - f0, static_cast<double>(kBatch));
}

void bm_pages(benchmark::State& state) {
  const auto order = static_cast<unsigned>(state.range(0));
  kmm::BuddyZone& zone = g_machine.zone;
  long f0 = thread_minflt();
  for (auto _ : state) {
    kmm::Page* pg = zone.alloc_pages(order);
    if (pg == nullptr) {
      state.SkipWithError("alloc_pages failed");
      break;
    }
    touch(g_machine.phys.page_address(pg));
    zone.free_pages(pg, order);
  }
  benchmark::ClobberMemory();
  set_counters(state, thread_minflt() - f0, 1.0);
}

// ---- start-up checks ---------------------------------------------------------------------

// Each side must be the allocator it says: mimalloc's blocks are in mimalloc's heap, glibc's
// are not, kmm's are inside the machine.
bool check_allocators() {
  void* g = Glibc::alloc(64);
  void* m = Mimalloc::alloc(64);
  void* k = Kmm::alloc(64);
  bool ok = g != nullptr && m != nullptr && k != nullptr && !mi_is_in_heap_region(g) && mi_is_in_heap_region(m) &&
            g_machine.phys.owns(k) && !g_machine.phys.owns(g) && !g_machine.phys.owns(m);
  Glibc::release(g);
  Mimalloc::release(m);
  Kmm::release(k);
  return ok;
}

void register_all() {
  const int threads[] = {1, 2};
  for (int t : threads) {
    for (std::int64_t size = 8; size <= 4096; size *= 2) {
      // The three allocators side by side for each (size, threads), so drift in the
      // machine's load hits them alike.
      benchmark::RegisterBenchmark("hot/kmm", bm_hot<Kmm>)->Arg(size)->Threads(t);
      benchmark::RegisterBenchmark("hot/glibc", bm_hot<Glibc>)->Arg(size)->Threads(t);
      benchmark::RegisterBenchmark("hot/mimalloc", bm_hot<Mimalloc>)->Arg(size)->Threads(t);
    }
  }
  for (int t : threads) {
    for (std::int64_t size = 8; size <= 4096; size *= 2) {
      benchmark::RegisterBenchmark("batch/kmm", bm_batch<Kmm>)->Arg(size)->Threads(t);
      benchmark::RegisterBenchmark("batch/glibc", bm_batch<Glibc>)->Arg(size)->Threads(t);
      benchmark::RegisterBenchmark("batch/mimalloc", bm_batch<Mimalloc>)->Arg(size)->Threads(t);
    }
  }
  benchmark::RegisterBenchmark("pages", bm_pages)->ArgName("order")->Arg(0)->Arg(3)->Threads(1)->Threads(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (!boot_machine()) {
    std::fprintf(stderr, "kmm-bench-kmalloc: cannot bring up a 1 GiB kmm machine\n");
    return 1;
  }
  if (!find_glibc() || !check_allocators()) {
    std::fprintf(stderr, "kmm-bench-kmalloc: an allocator is not the one it claims to be\n");
    return 1;
  }
  g_perm.resize(kBatch);
  for (std::size_t i = 0; i < kBatch; ++i) g_perm[i] = static_cast<std::uint32_t>(i);
  std::mt19937 rng(20240601u);
  std::shuffle(g_perm.begin(), g_perm.end(), rng);

  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("kmm_machine", "1 GiB, buddy watermarks off, thread_caches on, min_partial 4");
  benchmark::AddCustomContext("glibc", "malloc/free from libc.so.6 (dlsym)");
  benchmark::AddCustomContext("mimalloc", "mi_malloc/mi_free " + std::to_string(mi_version()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

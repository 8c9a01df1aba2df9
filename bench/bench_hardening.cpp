// kmm/bench/bench_hardening.cpp — what each hardening option costs (issue 10; slab/hardening.h).
//
// One process, one run: a kmm machine per configuration — off, freelist_hardened, redzone,
// poison, quarantine (1 MiB), guard_pages, and all of them at once — each of 256 MiB with
// the per-thread magazines on (as the preload shim runs), and glibc's malloc beside them
// for scale. The same two workloads as bench_kmalloc.cpp:
//   hot/CONFIG/S    one kmalloc of S bytes, first byte written, kfree: one pair an iteration;
//   batch/CONFIG/S  1000 allocations of S bytes kept live, then freed in a fixed random order.
// Sizes 64 and 512 (slab caches) and 16384 (a page-level block: the guard page's case).
// Counter minflt: minor page faults per iteration (a guard frame's mprotect and first touch
// show there). bench/compare.py prints the ratio of each configuration to `off`.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
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

constexpr std::size_t kRamBytes = std::size_t{256} << 20;
constexpr std::size_t kBatch = 1000;

struct Machine {
  kmm::PhysMem phys;
  kmm::BuddyZone zone;
  kmm::SlabAllocator slab;
  kmm::Kmalloc km;
};

enum Config { kOff, kFreelist, kRedzone, kPoison, kQuarantine, kGuard, kAll, kNrConfigs };
const char* const kConfigNames[kNrConfigs] = {"off",        "freelist_hardened", "redzone", "poison",
                                              "quarantine", "guard_pages",       "all"};
Machine g_machines[kNrConfigs];  // static storage: no heap

kmm::HardeningConfig hardening_of(Config c) {
  kmm::HardeningConfig h;
  h.freelist_hardened = c == kFreelist || c == kAll;
  h.redzone = c == kRedzone || c == kAll;
  h.poison = c == kPoison || c == kAll;
  h.quarantine_bytes = c == kQuarantine || c == kAll ? std::uint64_t{1} << 20 : 0;
  h.guard_pages = c == kGuard || c == kAll;
  return h;
}

bool boot(Config c) {
  Machine& m = g_machines[c];
  kmm::Platform& pal = kmm::mmap_platform();
  void* base = pal.reserve(kRamBytes, std::size_t{1} << 22);
  if (base == nullptr || !pal.commit(base, kRamBytes) || !m.phys.init(base, kRamBytes, 0)) return false;
  m.zone.init(&m.phys, m.phys.first_free_pfn(), m.phys.end_pfn(), ~std::uint64_t{0});
  kmm::SlabConfig sc;
  sc.thread_caches = true;
  sc.min_partial = 4;
  sc.hardening = hardening_of(c);
  sc.random_seed = 0x5eed;
  m.slab.init(&m.zone, sc);
  kmm::KmallocConfig kc;
  kc.policy = kmm::KmallocPolicy::kKmalloc2;  // the shim's policy
  kc.guard_platform = sc.hardening.guard_pages ? &pal : nullptr;
  return m.km.init(&m.slab, kc);
}

using MallocFn = void* (*)(std::size_t);
using FreeFn = void (*)(void*);
MallocFn g_glibc_malloc = nullptr;
FreeFn g_glibc_free = nullptr;

// A real program writes what it allocates (bench_util.h).
using kmm::bench::thread_minflt;
using kmm::bench::touch;

std::vector<std::uint32_t> g_perm;

template <typename Alloc, typename Free>
void run_hot(benchmark::State& state, Alloc alloc, Free release) {
  const auto size = static_cast<std::size_t>(state.range(0));
  long f0 = thread_minflt();
  for (auto _ : state) {
    void* p = alloc(size);
    touch(p);
    release(p);
  }
  state.counters["minflt"] =
      benchmark::Counter(static_cast<double>(thread_minflt() - f0), benchmark::Counter::kAvgIterations);
}

template <typename Alloc, typename Free>
void run_batch(benchmark::State& state, Alloc alloc, Free release) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<void*> live(kBatch);
  long f0 = thread_minflt();
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i) {
      live[i] = alloc(size);
      touch(live[i]);
    }
    benchmark::ClobberMemory();
    for (std::size_t i = 0; i < kBatch; ++i) release(live[g_perm[i]]);
  }
  state.counters["minflt"] =
      benchmark::Counter(static_cast<double>(thread_minflt() - f0), benchmark::Counter::kAvgIterations);
  state.counters["pairs"] = static_cast<double>(kBatch);
}

void register_all() {
  for (std::int64_t size : {64, 512, 16384}) {
    benchmark::RegisterBenchmark("hot/glibc", [](benchmark::State& s) {
      run_hot(s, g_glibc_malloc, g_glibc_free);
    })->Arg(size);
    for (int c = 0; c < kNrConfigs; ++c) {
      Machine* m = &g_machines[c];
      benchmark::RegisterBenchmark((std::string("hot/") + kConfigNames[c]).c_str(), [m](benchmark::State& s) {
        run_hot(
            s, [m](std::size_t n) { return m->km.kmalloc(n, kmm::GFP_KERNEL, kmm::kOwnerKernel); },
            [m](void* p) { m->km.kfree(p); });
      })->Arg(size);
    }
  }
  for (std::int64_t size : {64, 512, 16384}) {
    benchmark::RegisterBenchmark("batch/glibc", [](benchmark::State& s) {
      run_batch(s, g_glibc_malloc, g_glibc_free);
    })->Arg(size);
    for (int c = 0; c < kNrConfigs; ++c) {
      Machine* m = &g_machines[c];
      benchmark::RegisterBenchmark((std::string("batch/") + kConfigNames[c]).c_str(), [m](benchmark::State& s) {
        run_batch(
            s, [m](std::size_t n) { return m->km.kmalloc(n, kmm::GFP_KERNEL, kmm::kOwnerKernel); },
            [m](void* p) { m->km.kfree(p); });
      })->Arg(size);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int c = 0; c < kNrConfigs; ++c) {
    if (!boot(static_cast<Config>(c))) {
      std::fprintf(stderr, "kmm-bench-hardening: cannot bring up the %s machine\n", kConfigNames[c]);
      return 1;
    }
  }
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  g_glibc_malloc = libc ? reinterpret_cast<MallocFn>(dlsym(libc, "malloc")) : nullptr;
  g_glibc_free = libc ? reinterpret_cast<FreeFn>(dlsym(libc, "free")) : nullptr;
  if (g_glibc_malloc == nullptr || g_glibc_free == nullptr) {
    std::fprintf(stderr, "kmm-bench-hardening: glibc's malloc not found\n");
    return 1;
  }
  g_perm.resize(kBatch);
  for (std::size_t i = 0; i < kBatch; ++i) g_perm[i] = static_cast<std::uint32_t>(i);
  std::mt19937 rng(20240601u);
  std::shuffle(g_perm.begin(), g_perm.end(), rng);
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("kmm_machines",
                              "256 MiB each, thread_caches on, min_partial 4, kmalloc2 (the shim's setup)");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// kmm/bench/bench_nommu.cpp — the cost of long region lists under malloc-simple (issue 6,
// item 5; document 002: "free and realloc slow down as the list grows").
//
// One NOMMU machine (256 MiB RAM, kmalloc2 over the range allocator, watermarks off), one
// malloc-simple process holding N live blocks of 32 bytes (N = 16 .. 65,536). Each timed
// iteration is what a long-running daemon does in steady state: free (or realloc) a block
// chosen at random among the live ones, then malloc a new one (which uClinux pushes at the
// head of the list). Two lookups:
//   linear   free/realloc walk the process's vm_region list from the newest (uClinux);
//   indexed  a hash of region addresses (NommuConfig::indexed): constant time.
// Counters: steps = region records visited per lookup (mean), so the growth is visible
// without a clock too.
//   free/linear/N  free/indexed/N  realloc/linear/N  realloc/indexed/N
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "nommu/nommu.h"

namespace {

using namespace kmm;

struct Machine {
  explicit Machine(bool indexed) {
    BootConfig cfg;
    cfg.ram_bytes = 256ull << 20;
    cfg.mmu = false;
    cfg.kmalloc = KmallocPolicy::kKmalloc2;
    cfg.page_alloc = PageAllocKind::kRange;
    cfg.min_free_kbytes = ~std::uint64_t{0};
    BootError err;
    k = Kernel::boot(cfg, &err);
    NommuConfig nc;
    nc.indexed = indexed;
    if (k != nullptr && n.init(k, nc)) {
      NommuError e;
      pid = n.spawn("daemon", MallocKind::kSimple, 0, &e);
    }
  }
  ~Machine() {
    n.shutdown();
    if (k != nullptr) k->shutdown();
  }
  Kernel* k = nullptr;
  Nommu n;
  int pid = 0;
};

void run(benchmark::State& state, bool indexed, bool realloc) {
  Machine m(indexed);
  if (m.pid == 0) {
    state.SkipWithError("machine did not boot");
    return;
  }
  const auto live = static_cast<std::size_t>(state.range(0));
  std::vector<void*> blocks(live);
  NommuError e;
  for (auto& b : blocks) b = m.n.malloc(m.pid, 32, &e);
  std::mt19937_64 rng(1);
  std::uint64_t steps = 0, ops = 0;
  for (auto _ : state) {
    std::size_t i = static_cast<std::size_t>(rng() % live);
    if (realloc) {
      // Grow past the 32-byte slot: the NOMMU realloc finds, allocates, copies, frees.
      void* q = m.n.realloc(m.pid, blocks[i], 40, &e);
      steps += m.n.last_lookup_steps();
      m.n.free(m.pid, q);
      blocks[i] = m.n.malloc(m.pid, 32, &e);
    } else {
      m.n.free(m.pid, blocks[i]);
      steps += m.n.last_lookup_steps();
      blocks[i] = m.n.malloc(m.pid, 32, &e);
    }
    ++ops;
    benchmark::DoNotOptimize(blocks[i]);
  }
  state.counters["steps"] = ops != 0 ? static_cast<double>(steps) / static_cast<double>(ops) : 0.0;
  state.counters["live"] = static_cast<double>(live);
}

void BM_free_linear(benchmark::State& s) {
  run(s, false, false);
}
void BM_free_indexed(benchmark::State& s) {
  run(s, true, false);
}
void BM_realloc_linear(benchmark::State& s) {
  run(s, false, true);
}
void BM_realloc_indexed(benchmark::State& s) {
  run(s, true, true);
}

#define KMM_NOMMU_SIZES ->Arg(16)->Arg(256)->Arg(1024)->Arg(4096)->Arg(16384)->Arg(65536)
BENCHMARK(BM_free_linear)->Name("free/linear") KMM_NOMMU_SIZES;
BENCHMARK(BM_free_indexed)->Name("free/indexed") KMM_NOMMU_SIZES;
BENCHMARK(BM_realloc_linear)->Name("realloc/linear") KMM_NOMMU_SIZES;
BENCHMARK(BM_realloc_indexed)->Name("realloc/indexed") KMM_NOMMU_SIZES;

}  // namespace

BENCHMARK_MAIN();

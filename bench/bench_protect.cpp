// kmm/bench/bench_protect.cpp — the protector's costs (issue 3, "Speed and size").
//
// All on one machine configuration (2 GiB RAM, thread caches off so each operation is the
// full kmalloc/kfree path, watermarks off), in one process and one run:
//   fastpath/OWNER/S      kmalloc(S)+kfree pair owned by the kernel (protector off) vs by a
//                         loaded module under protector=reclaim, and under the paper's
//                         table (tracker=paper-table: record on kmalloc, linear erase on kfree);
//   kfree_live/T/N        cost of one kmalloc+kfree pair while N other tracked blocks are live
//                         (N = 1,000 / 10,000 / 100,000), T = owner-byte tracker or paper table
//                         (which holds at most 10,000 records: beyond that blocks go untracked);
//   reclaim/N             the collector reclaiming N leaked objects of an unloaded module
//                         (N = 1 M, 64-byte objects): objects/s, MB/s, and the longest single
//                         idle slice in microseconds (gc_slice frames of work per slice); collector figures are in
//                         thread CPU time;
//   scan/MB               reclaim-unreachable's reachability scan over MB of live memory of
//                         live owners: MB scanned per second;
// and, printed once at start, the tracking metadata per live object for a mixed workload.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <ctime>
#include <random>
#include <vector>

#include "kernel/kernel.h"

namespace {

// Thread CPU time, not wall time: the collector's slices are short and this machine is
// shared, so a wall clock would count other processes' time slices as ours.
double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

kmm::BootConfig bench_config(bool paper_table, kmm::ProtectorMode mode) {
  kmm::BootConfig cfg;
  cfg.thread_caches = true;  // the real allocator's configuration
  cfg.min_partial = 4;
  cfg.ram_bytes = std::uint64_t{2} << 30;
  cfg.page_offset = 0xffff000000000000ull;
  cfg.min_free_kbytes = ~std::uint64_t{0};
  cfg.paper_table = paper_table;
  cfg.protector = mode;
  cfg.gc_delay_ns = 0;
  cfg.gc_slice_pages = 256;
  return cfg;
}

kmm::Kernel* boot(bool paper_table, kmm::ProtectorMode mode) {
  kmm::BootError err;
  kmm::Kernel* k = kmm::Kernel::boot(bench_config(paper_table, mode), &err);
  if (k == nullptr) {
    std::fprintf(stderr, "boot failed: %s\n", err.what);
    std::abort();
  }
  return k;
}

// --- fast path -------------------------------------------------------------------------------

void fastpath(benchmark::State& state, bool module_owner, bool paper_table) {
  kmm::Kernel* k = boot(paper_table, module_owner ? kmm::ProtectorMode::kReclaim : kmm::ProtectorMode::kOff);
  kmm::owner_t owner = kmm::kOwnerKernel;
  if (module_owner) k->insmod("bench_mod", 4096, &owner);
  auto size = static_cast<std::size_t>(state.range(0));
  kmm::OwnerScope scope(owner);
  for (auto _ : state) {
    void* p = k->kmalloc(size);
    benchmark::DoNotOptimize(p);
    *static_cast<volatile char*>(p) = 1;
    k->kfree(p);
  }
  k->shutdown();
}

void BM_fastpath_kernel(benchmark::State& s) {
  fastpath(s, false, false);
}
void BM_fastpath_module(benchmark::State& s) {
  fastpath(s, true, false);
}
void BM_fastpath_paper_table(benchmark::State& s) {
  fastpath(s, true, true);
}
BENCHMARK(BM_fastpath_kernel)->Name("fastpath/kernel-off")->Arg(32)->Arg(256)->Arg(2048);
BENCHMARK(BM_fastpath_module)->Name("fastpath/module-reclaim")->Arg(32)->Arg(256)->Arg(2048);
BENCHMARK(BM_fastpath_paper_table)->Name("fastpath/module-paper-table")->Arg(32)->Arg(256)->Arg(2048);

// --- kfree cost against live tracked blocks ---------------------------------------------------

void kfree_live(benchmark::State& state, bool paper_table) {
  kmm::Kernel* k = boot(paper_table, kmm::ProtectorMode::kReclaim);
  kmm::owner_t owner;
  k->insmod("bench_mod", 4096, &owner);
  kmm::OwnerScope scope(owner);
  auto live = static_cast<std::size_t>(state.range(0));
  std::vector<void*> blocks(live);
  for (auto& b : blocks) b = k->kmalloc(64);
  // The block freed each iteration was allocated last: the worst case for a linear search
  // from the front of the paper's table, and no different for owner bytes.
  for (auto _ : state) {
    void* p = k->kmalloc(64);
    benchmark::DoNotOptimize(p);
    k->kfree(p);
  }
  if (paper_table) {
    state.counters["untracked"] = static_cast<double>(k->paper_table()->untracked());
    state.counters["records"] = static_cast<double>(k->paper_table()->in_use());
  }
  for (void* b : blocks) k->kfree(b);
  k->shutdown();
}

void BM_kfree_live_owner(benchmark::State& s) {
  kfree_live(s, false);
}
void BM_kfree_live_paper(benchmark::State& s) {
  kfree_live(s, true);
}
BENCHMARK(BM_kfree_live_owner)->Name("kfree_live/owner-bytes")->Arg(1000)->Arg(10000)->Arg(100000);
BENCHMARK(BM_kfree_live_paper)->Name("kfree_live/paper-table")->Arg(1000)->Arg(10000)->Arg(100000);

// --- the collector ------------------------------------------------------------------------------

void BM_reclaim(benchmark::State& state) {
  auto n = static_cast<std::size_t>(state.range(0));
  double objects = 0, bytes = 0, seconds = 0, longest_us = 0;
  for (auto _ : state) {
    state.PauseTiming();
    kmm::Kernel* k = boot(false, kmm::ProtectorMode::kReclaim);
    kmm::owner_t owner;
    k->insmod("leaker", 4096, &owner);
    {
      kmm::OwnerScope scope(owner);
      for (std::size_t i = 0; i < n; ++i) k->kmalloc(64);
    }
    k->rmmod("leaker");
    kmm::Collector& gc = k->collector();
    gc.kick();
    state.ResumeTiming();
    double t0 = cpu_seconds();
    bool done = false;
    while (!done) {
      double s0 = cpu_seconds();
      done = gc.slice(k->now_ns());
      double us = (cpu_seconds() - s0) * 1e6;
      if (us > longest_us) longest_us = us;
    }
    seconds += cpu_seconds() - t0;
    state.PauseTiming();
    objects += static_cast<double>(gc.stats().reclaimed_objects);
    bytes += static_cast<double>(gc.stats().reclaimed_bytes);
    k->shutdown();
    state.ResumeTiming();
  }
  state.counters["Mobj_per_s"] = objects / seconds / 1e6;
  state.counters["MB_per_s"] = bytes / seconds / 1e6;
  state.counters["longest_slice_us"] = longest_us;
}
BENCHMARK(BM_reclaim)->Name("reclaim/objects")->Arg(1000000)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_scan(benchmark::State& state) {
  auto mb = static_cast<std::size_t>(state.range(0));
  kmm::Kernel* k = boot(false, kmm::ProtectorMode::kReclaimUnreachable);
  // Live memory of a live owner, full of words that are not pointers into kmm (the common
  // case: data), in 4 KiB blocks.
  std::vector<void*> live;
  for (std::size_t i = 0; i < mb * 256; ++i) {
    auto* p = static_cast<std::uint64_t*>(k->kmalloc(4096));
    for (int w = 0; w < 512; ++w) p[w] = 0x1234567800000000ull + static_cast<std::uint64_t>(w);
    live.push_back(p);
  }
  kmm::owner_t owner;
  k->insmod("leaker", 4096, &owner);
  {
    kmm::OwnerScope scope(owner);
    for (int i = 0; i < 1000; ++i) k->kmalloc(64);
  }
  k->rmmod("leaker");
  double seconds = 0, scanned = 0;
  for (auto _ : state) {
    std::uint64_t before = k->collector().stats().scanned_bytes;
    k->collector().kick();
    double t0 = cpu_seconds();
    k->collector().run_pass(k->now_ns());
    seconds += cpu_seconds() - t0;
    scanned += static_cast<double>(k->collector().stats().scanned_bytes - before);
    state.PauseTiming();
    // Leak again for the next pass.
    k->insmod("leaker", 4096, &owner);
    {
      kmm::OwnerScope scope(owner);
      for (int i = 0; i < 1000; ++i) k->kmalloc(64);
    }
    k->rmmod("leaker");
    state.ResumeTiming();
  }
  state.counters["MB_scanned_per_s"] = scanned / seconds / 1e6;
  for (void* p : live) k->kfree(p);
  k->shutdown();
}
BENCHMARK(BM_scan)->Name("scan/live_MB")->Arg(256)->Unit(benchmark::kMillisecond)->Iterations(3);

// --- metadata per live object -------------------------------------------------------------------

void print_metadata_per_object() {
  kmm::Kernel* k = boot(false, kmm::ProtectorMode::kReclaim);
  kmm::owner_t owner;
  k->insmod("mixed", 4096, &owner);
  kmm::OwnerScope scope(owner);
  std::mt19937 rng(7);
  std::vector<void*> live;
  // A mixed workload: sizes spread over the kmalloc classes, then a random third freed.
  for (int i = 0; i < 200000; ++i) live.push_back(k->kmalloc(8u << (rng() % 10)));
  for (std::size_t i = 0; i < live.size(); i += 3) {
    k->kfree(live[i]);
    live[i] = nullptr;
  }
  std::uint64_t slots = 0, objects = 0;
  for (unsigned id = 0; id < k->slab().nr_cache_ids(); ++id) {
    const kmm::KmemCache* c = k->slab().cache(id);
    if (c == nullptr) continue;
    slots += c->total_objects();  // one owner byte per slot
    objects += c->active_objects();
  }
  std::printf(
      "tracking metadata: %llu owner bytes for %llu live slab objects = %.3f bytes per live object "
      "(paper: 24; Linux memcg obj_cgroup vector: 8)\n",
      static_cast<unsigned long long>(slots), static_cast<unsigned long long>(objects),
      static_cast<double>(slots) / static_cast<double>(objects));
  for (void* p : live)
    if (p != nullptr) k->kfree(p);
  k->shutdown();
}

}  // namespace

int main(int argc, char** argv) {
  print_metadata_per_object();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

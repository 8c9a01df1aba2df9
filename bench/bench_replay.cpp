// kmm/bench/bench_replay.cpp — replay throughput (issue 7, "Speed"): events per second of
// `kmm replay`'s engine for every policy on a 1 M-event trace. Target: >= 5 M events/s for
// the slab policy.
//
// The trace is synthetic and seeded (the same every run): a working set that grows to about
// 20 000 live blocks and then churns, sizes drawn like the shipped real traces (70 % 8..256
// bytes, 25 % 257..4096, 5 % 4 K..64 K), 10 % of the operations reallocs. It is generated in
// memory and replayed on a 256 MiB machine, with the timeline (1000 samples) on, as
// `kmm replay` runs. Each policy is replayed `--repeat` times (default 3) and the best run is
// reported (policies slower than 2 s a run are run once). Optional: `kmm-bench-replay FILE` replays a trace file
// instead. Prints a Markdown table (docs/BENCHMARKS.md keeps one).
//
// Depends on: replay/ (trace, replay), the C++ standard library.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "replay/replay.h"
#include "replay/trace.h"

using namespace kmm::scenario;

namespace {

Trace synthetic(std::size_t n_ops) {
  Trace t;
  t.name = "synthetic-1M";
  t.modules.push_back("?");
  std::mt19937_64 rng(20040607);
  std::vector<std::uint32_t> live, free_ids;
  std::vector<std::uint64_t> size_of;
  std::uint32_t next = 0;
  auto draw = [&] {
    std::uint64_t r = rng() % 100;
    if (r < 70) return 8 + rng() % 249;
    if (r < 95) return 257 + rng() % 3840;
    return 4096 + rng() % 61440;
  };
  std::uint64_t live_bytes = 0;
  t.ops.reserve(n_ops);
  while (t.ops.size() < n_ops) {
    std::uint64_t r = rng() % 100;
    bool grow = live.size() < 20000;
    TraceOp op{};
    if (!live.empty() && r < 10) {
      std::size_t i = rng() % live.size();
      op.kind = OpKind::kRealloc;
      op.id = live[i];
      op.size = draw();
      live_bytes = live_bytes - size_of[op.id] + op.size;
      size_of[op.id] = op.size;
      ++t.reallocs;
    } else if (!live.empty() && (r < (grow ? 45u : 55u))) {
      std::size_t i = rng() % live.size();
      op.kind = OpKind::kFree;
      op.id = live[i];
      live[i] = live.back();
      live.pop_back();
      live_bytes -= size_of[op.id];
      free_ids.push_back(op.id);
      ++t.frees;
    } else {
      op.kind = OpKind::kAlloc;
      if (!free_ids.empty()) {
        op.id = free_ids.back();
        free_ids.pop_back();
      } else {
        op.id = next++;
        size_of.push_back(0);
      }
      op.size = draw();
      size_of[op.id] = op.size;
      live.push_back(op.id);
      live_bytes += op.size;
      ++t.allocs;
    }
    t.peak_live_bytes = std::max(t.peak_live_bytes, live_bytes);
    t.ops.push_back(op);
  }
  t.num_ids = next;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  int repeat = 3;
  std::string file;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
      repeat = std::max(1, std::atoi(argv[++i]));
    else
      file = argv[i];
  }
  Trace t;
  if (file.empty()) {
    t = synthetic(1'000'000);
  } else {
    std::string err;
    auto r = read_trace_file(file, {}, &err);
    if (!r) {
      std::fprintf(stderr, "%s\n", err.c_str());
      return 2;
    }
    t = std::move(*r);
  }
  ReplayConfig cfg;
  cfg.ram_bytes = 256ull << 20;
  std::printf("trace %s: %zu events (%llu a, %llu f, %llu r), peak live %.1f MiB; 256 MiB machine, best of %d\n\n",
              t.name.c_str(), t.ops.size(), static_cast<unsigned long long>(t.allocs),
              static_cast<unsigned long long>(t.frees), static_cast<unsigned long long>(t.reallocs),
              static_cast<double>(t.peak_live_bytes) / (1 << 20), repeat);
  std::printf(
      "| policy | M events/s | peak footprint | utilization | failures | first failure (op) "
      "|\n|---|---:|---:|---:|---:|---:|\n");
  bool slab_ok = true;
  for (const std::string& p : replay_policies()) {
    ReplayResult best;
    for (int i = 0; i < repeat; ++i) {
      if (i > 0 && best.seconds > 2.0) break;  // the slow textbook/NOMMU policies: one run
      ReplayResult r = replay(t, p, cfg);
      if (i == 0 || r.events_per_s > best.events_per_s) best = std::move(r);
    }
    if (!best.error.empty()) {
      std::printf("| %s | n/a: %s | | | | |\n", p.c_str(), best.error.c_str());
      continue;
    }
    std::printf("| %s | %.2f | %.1f MiB | %.1f %% | %llu | %s |\n", p.c_str(), best.events_per_s / 1e6,
                static_cast<double>(best.peak_footprint) / (1 << 20), 100 * best.utilization,
                static_cast<unsigned long long>(best.failures),
                best.failed ? std::to_string(best.fail_op).c_str() : "-");
    std::fflush(stdout);
    if (p == "slab" && best.events_per_s < 5e6) slab_ok = false;
  }
  std::printf("\nslab >= 5 M events/s: %s\n", slab_ok ? "yes" : "NO");
  return slab_ok ? 0 : 1;
}

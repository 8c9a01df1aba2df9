// kmm/replay/replay.h — replays an allocation trace through allocator policies on a modelled
// machine and measures each (`kmm replay`, docs/TRACE_FORMAT.md, docs/TRACES.md).
//
// Policies (names are the CLI's):
//   buddy            each block is 2^order whole pages from the buddy allocator
//   slab             kmalloc with Linux's size classes (8..8k with 96 and 192), larger blocks
//                    power-of-two pages up to 4 MiB (the largest buddy block)
//   pow2             the stock uClinux kernel of document 002: power-of-two blocks only (no
//                    96/192 classes), at most 1 MiB
//   kmalloc2         kmalloc=kmalloc2 over page_alloc=range, direction seed (<= 2 KB from the
//                    top of memory down, larger from the bottom up: document 002)
//   kmalloc2-source  the same with uClinux's page_alloc2 rule (<= 2 pages bottom up)
//   simple, smalloc, heap   uClinux process memory (src/nommu): malloc-simple, libsmalloc,
//                    a fixed heap; one process on a mmu=off machine with kmalloc2 over
//                    page_alloc=range (document 002's uClinux); free/realloc use the
//                    region index (the list walk's cost is not what a replay measures)
//   first-fit, best-fit     textbook boundary-tag allocators over one arena (replay/arena.h)
//
// Measures (per policy):
//   footprint      bytes the policy takes from the machine's free pool (pages out of the
//                  page allocator for kernel policies, minus what the freshly booted machine
//                  already used; brk for the arena); peak_footprint is its maximum;
//   utilization    peak live payload / peak footprint (malloc lab's);
//   overhead       mean over successful allocations of (block cost - bytes asked);
//   internal frag  at the peak footprint: bytes inside live blocks not asked for / footprint;
//   external frag  at the peak footprint: bytes the policy holds outside any live block (free
//                  slab slots, holes in the arena) / footprint;
//   end state      free bytes in all and the largest free block after the last operation;
//   first failure  the first allocation that failed: operation number (0-based, the file's
//                  own numbering even when lenient mode skipped lines), size asked, free bytes
//                  and the largest free block at that moment, and its kind: above the
//                  policy's limit (no machine of this policy gives a block that large),
//                  missing memory (enough bytes were free, not together), out of memory;
//                  `failures` counts the failed allocations and reallocs. Later operations on
//                  a failed id (its reallocs, its free) are skipped: the program had a block
//                  there, the policy did not, so a realloc is not replayed as a fresh
//                  allocation (it would hold memory the replay never gave) and is not counted
//                  again;
//   throughput     operations replayed per second (the replay loop alone);
//   injected       with fault injection on (--fail-slab/--fail-page/--fail-platform, base/
//                  fault_inject.h), armed afresh for each policy after its machine boots:
//                  the operations that failed because a failure was injected during them
//                  (`injected_ops`, not counted in `failures`, which stays genuine out of
//                  memory, nor in the first failure), and each point's calls and failures.
//
// Depends on: kernel/, nommu/ (when built), replay/trace.h, replay/arena.h, the C++ standard library.
// Invariants: results depend only on the trace, the policy and ReplayConfig (timings aside).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "base/fault_inject.h"
#include "replay/trace.h"

namespace kmm::scenario {

struct ReplayConfig {
  std::uint64_t ram_bytes = 192ull << 20;
  bool mmu = false;
  std::size_t timeline_points = 1000;  // samples kept per policy (0: none)
  std::size_t map_cells = 100;         // characters in the final physical map
  bool check = false;                  // check the allocator's invariants at every sample
  // heap: the fixed heap's size; 0: 5/4 of the trace's peak live payload + 64K, page-rounded
  // (at most what the kernel's kmalloc can give in one block, 4 MiB, and what fits in RAM).
  std::uint64_t heap_bytes = 0;
  // Fault injection: the points to arm (fault_on) and how (the same for every policy).
  FaultConfig fault[kNrFaultPoints];
  bool fault_on[kNrFaultPoints] = {};
  bool injecting() const { return fault_on[0] || fault_on[1] || fault_on[2]; }
  // Called every 64K operations and at the end (a progress bar on a terminal); may be null.
  void (*progress)(void* arg, const char* policy, std::size_t done, std::size_t total) = nullptr;
  void* progress_arg = nullptr;
};

struct ReplaySample {
  std::uint64_t op = 0;
  std::uint64_t footprint = 0, live = 0, largest_free = 0;
};

// Why the first failure failed (print_replay_*: failure_kind_name's words).
enum class FailKind : std::uint8_t { kNone, kAboveLimit, kMissingMemory, kOutOfMemory };
const char* failure_kind_name(FailKind k);  // "above the policy's limit", "missing memory", ...

struct ReplayResult {
  std::string policy;
  std::string error;  // non-empty: the policy could not run (and why)
  std::uint64_t ops = 0, allocs = 0, failures = 0;
  std::uint64_t capacity = 0;  // bytes the policy could use on this machine
  std::uint64_t peak_footprint = 0, peak_live = 0;
  std::uint64_t internal_at_peak = 0, external_at_peak = 0;
  double utilization = 0, overhead_per_alloc = 0, internal_frag = 0, external_frag = 0;
  std::uint64_t end_footprint = 0, end_free = 0, end_largest = 0;
  bool failed = false;
  std::uint64_t fail_op = 0, fail_size = 0, fail_free = 0, fail_largest = 0;
  FailKind fail_kind = FailKind::kNone;
  double seconds = 0, events_per_s = 0;
  std::vector<ReplaySample> timeline;
  std::string map;  // X used, - free, one character per map_scale bytes
  std::uint64_t map_scale = 0;
  // Fault injection (ReplayConfig::fault_on): operations failed by an injected failure, and
  // each point's calls seen and failures injected during this policy's run.
  bool injecting = false;
  std::uint64_t injected_ops = 0;
  std::uint64_t fault_calls[kNrFaultPoints] = {}, fault_failures[kNrFaultPoints] = {};
};

// The policy names, in the order `--policy all` runs them.
const std::vector<std::string>& replay_policies();
bool replay_policy_known(const std::string& name);

ReplayResult replay(const Trace& t, const std::string& policy, const ReplayConfig& cfg);

// Output: a text table, CSV (one row per policy), JSON (an array).
void print_replay_table(std::ostream& out, const Trace& t, const ReplayConfig& cfg, const std::vector<ReplayResult>& r);
void print_replay_csv(std::ostream& out, const std::vector<ReplayResult>& r);
void print_replay_json(std::ostream& out, const Trace& t, const ReplayConfig& cfg, const std::vector<ReplayResult>& r);
// --timeline: policy,op,footprint,live,largest_free rows.
void write_timeline_csv(std::ostream& out, const std::vector<ReplayResult>& r);
// --svg: one chart per measure (footprint, live bytes, largest free block) with a line per
// policy, and the final maps; plain SVG 1.1, no dependencies.
void write_timeline_svg(std::ostream& out, const Trace& t, const std::vector<ReplayResult>& r);
// Text for SVG and HTML (the SVG here, the --report page): < > & " ' as entities, and control
// characters and bytes that are not UTF-8 (a file name is bytes) as U+FFFD, which XML has no
// other way to hold; the JSON output replaces bad bytes the same way.
std::string markup_text(std::string_view s);

}  // namespace kmm::scenario

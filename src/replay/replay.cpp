// kmm/replay/replay.cpp — the replay engine, the policies as adapters, and the output formats.
//
// The engine keeps, per trace id, the policy's handle (0: not live, or its allocation
// failed), the bytes asked and the block's cost; running sums of live payload and block
// costs give internal fragmentation without asking the policy again. Each policy is an
// adapter behind a small virtual interface; the per-operation cost is one virtual call plus
// the allocator's own work.
//
// Depends on: kernel/, base/, replay/ (trace, arena, policies), fmt, nlohmann_json.
// Invariants: every policy replays the same operations on a machine of its own; a failed
// allocation leaves its id not live, and the ops on it (realloc, free) are skipped, not
// errors, not replayed as fresh allocations; the per-op
// loop touches nothing but the policy and the running sums.
#include "replay/replay.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>

#include "base/bits.h"
#include "base/text.h"
#include "kernel/kernel.h"
#include "replay/arena.h"
#include "replay/replay_policy.h"

namespace kmm::scenario {
namespace {

class BuddyPolicy final : public KernelPolicy {
 public:
  Handle alloc(std::uint64_t size, unsigned align_log2, std::uint64_t* cost) override {
    std::uint64_t s = align_log2 > kPageShift ? std::max(size, std::uint64_t{1} << align_log2) : size;
    unsigned order = get_order(s == 0 ? 1 : s);
    if (order > kMaxOrder) return 0;
    Page* p = k_->zone().alloc_pages(order, GFP_KERNEL);
    if (p == nullptr) return 0;
    *cost = kPageSize << order;
    return reinterpret_cast<Handle>(p);
  }
  void free(Handle h, std::uint64_t, std::uint64_t cost) override {
    k_->zone().free_pages(reinterpret_cast<Page*>(h), ilog2(cost >> kPageShift));
  }
  std::uint64_t max_request() const override { return kPageSize << kMaxOrder; }
  Handle realloc(Handle h, std::uint64_t, std::uint64_t old_cost, std::uint64_t size, unsigned align_log2,
                 std::uint64_t* cost) override {
    if (size <= old_cost && get_order(size == 0 ? 1 : size) == ilog2(old_cost >> kPageShift)) {
      *cost = old_cost;
      return h;
    }
    Handle n = alloc(size, align_log2, cost);
    if (n != 0) free(h, 0, old_cost);
    return n;
  }
};

class KmallocPolicy final : public KernelPolicy {
 public:
  explicit KmallocPolicy(bool round_pow2) : round_pow2_(round_pow2) {}
  Handle alloc(std::uint64_t size, unsigned align_log2, std::uint64_t* cost) override {
    void* p = k_->kmalloc_layer().kmalloc(ask(size, align_log2), GFP_KERNEL, kOwnerKernel);
    if (p == nullptr) return 0;
    *cost = k_->kmalloc_layer().footprint(p);
    return reinterpret_cast<Handle>(p);
  }
  void free(Handle h, std::uint64_t, std::uint64_t) override { k_->kmalloc_layer().kfree(reinterpret_cast<void*>(h)); }
  // krealloc's rule without its copy (a replay has no payload to keep): a block that already
  // holds the new size stays; otherwise a new block is allocated before the old one is freed.
  Handle realloc(Handle h, std::uint64_t, std::uint64_t, std::uint64_t size, unsigned align_log2,
                 std::uint64_t* cost) override {
    std::uint64_t s = ask(size, align_log2);
    if (s == 0) s = 1;  // realloc(p, 0) in a trace is a resize, not a free
    Kmalloc& km = k_->kmalloc_layer();
    void* old = reinterpret_cast<void*>(h);
    if (s <= km.ksize(old)) {
      *cost = km.footprint(old);
      return h;
    }
    void* p = km.kmalloc(s, GFP_KERNEL, kOwnerKernel);
    if (p == nullptr) return 0;
    km.kfree(old);
    *cost = km.footprint(p);
    return reinterpret_cast<Handle>(p);
  }

 private:
  std::uint64_t ask(std::uint64_t size, unsigned align_log2) const {
    std::uint64_t s = padded(size, align_log2);
    if (round_pow2_ && s > 8 && (s & (s - 1)) != 0) s = std::uint64_t{1} << (ilog2(s - 1) + 1);
    return s;
  }
  bool round_pow2_;
};

// ---- the textbook arena ----
class ArenaPolicy final : public Policy {
 public:
  ArenaPolicy(std::uint64_t capacity, Arena::Fit fit) : a_(capacity, fit) {}
  Handle alloc(std::uint64_t size, unsigned align_log2, std::uint64_t* cost) override {
    return a_.alloc(padded(size, align_log2), cost);
  }
  void free(Handle h, std::uint64_t, std::uint64_t) override { a_.free(h); }
  Handle realloc(Handle h, std::uint64_t, std::uint64_t, std::uint64_t size, unsigned align_log2,
                 std::uint64_t* cost) override {
    return a_.realloc(h, padded(size, align_log2), cost);
  }
  std::uint64_t footprint() const override { return a_.brk() - Arena::kPrologue; }
  std::uint64_t free_total() const override { return a_.free_total(); }
  std::uint64_t largest_free() const override { return a_.largest_free(); }
  std::uint64_t capacity() const override { return a_.capacity() - Arena::kPrologue; }
  void used_cells(std::uint64_t cell, std::vector<bool>* out) const override { a_.used_cells(cell, out); }
  bool check(std::string* why) override { return a_.check(why); }

 private:
  Arena a_;
};

struct PolicyInfo {
  const char* name;
  const char* what;
};
const PolicyInfo kPolicies[] = {
    {"buddy", "2^order whole pages per block (buddy allocator)"},
    {"slab", "kmalloc, Linux size classes; larger: 2^order pages up to 4 MiB"},
    {"pow2", "stock uClinux kmalloc: power-of-two blocks only, at most 1 MiB"},
    {"kmalloc2", "kmalloc2 over page_alloc=range, small (<= 2K) from the top down"},
    {"kmalloc2-source", "kmalloc2 over page_alloc=range, page_alloc2's rule (<= 2 pages bottom up)"},
    {"simple", "uClinux malloc-simple: a kmalloc and a region record per malloc"},
    {"smalloc", "uClinux libsmalloc: suballocates bigger blocks from the kernel"},
    {"heap", "a fixed heap per process"},
    {"first-fit", "textbook first fit, boundary tags, one arena"},
    {"best-fit", "textbook best fit, boundary tags, one arena"},
};

std::unique_ptr<Policy> make_policy(const std::string& name, const ReplayConfig& cfg, const Trace& t,
                                    std::string* err) {
  BootConfig bc;
  bc.ram_bytes = cfg.ram_bytes;
  bc.mmu = cfg.mmu;
  if (name == "buddy") {
    auto p = std::make_unique<BuddyPolicy>();
    if (!p->boot(bc, err)) return nullptr;
    return p;
  }
  if (name == "slab" || name == "pow2") {
    bc.kmalloc = kmm::KmallocPolicy::kPow2;
    bc.kmalloc_max = name == "slab" ? (kPageSize << kMaxOrder) : 0;
    auto p = std::make_unique<KmallocPolicy>(name == "pow2");
    if (!p->boot(bc, err)) return nullptr;
    return p;
  }
  if (name == "kmalloc2" || name == "kmalloc2-source") {
    bc.kmalloc = kmm::KmallocPolicy::kKmalloc2;
    bc.page_alloc = PageAllocKind::kRange;
    bc.range_direction = name == "kmalloc2" ? RangeDirection::kSeed : RangeDirection::kSource;
    auto p = std::make_unique<KmallocPolicy>(false);
    if (!p->boot(bc, err)) return nullptr;
    if (std::string(p->zone_name()) != "range") {
      *err = "this build's kernel does not boot page_alloc=range yet";
      return nullptr;
    }
    return p;
  }
  if (name == "first-fit" || name == "best-fit") {
    // The same memory the kernel policies get: what a booted machine leaves free.
    BuddyPolicy probe;
    if (!probe.boot(bc, err)) return nullptr;
    return std::make_unique<ArenaPolicy>(probe.capacity(),
                                         name == "first-fit" ? Arena::Fit::kFirst : Arena::Fit::kBest);
  }
  if (name == "simple" || name == "smalloc" || name == "heap") {
#if KMM_HAVE_NOMMU
    return make_nommu_policy(name, cfg, t, err);
#else
    (void)t;
    *err = "the NOMMU process model (src/nommu) is not in this build";
    return nullptr;
#endif
  }
  *err = "unknown policy '" + name + "'";
  return nullptr;
}

std::string render_map(const std::vector<bool>& cells) {
  std::string s;
  for (std::size_t c = 0; c < cells.size(); ++c) {
    if (c % 5 == 0) s += '|';
    s += cells[c] ? 'X' : '-';
  }
  s += '|';
  return s;
}

}  // namespace

const std::vector<std::string>& replay_policies() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const PolicyInfo& p : kPolicies) v.emplace_back(p.name);
    return v;
  }();
  return names;
}

bool replay_policy_known(const std::string& name) {
  for (const PolicyInfo& p : kPolicies)
    if (name == p.name) return true;
  return false;
}

namespace {

// Failures the fault points injected so far, all points together.
std::uint64_t injected_total() {
  std::uint64_t n = 0;
  for (unsigned k = 0; k < kNrFaultPoints; ++k) n += fault_failures(static_cast<FaultPoint>(k));
  return n;
}

// Each fault point's calls and failures into r; then every point is disarmed.
void collect_faults(ReplayResult* r) {
  for (unsigned k = 0; k < kNrFaultPoints; ++k) {
    r->fault_calls[k] = fault_calls(static_cast<FaultPoint>(k));
    r->fault_failures[k] = fault_failures(static_cast<FaultPoint>(k));
  }
  fault_disable_all();
}

// A live block of the replay: the policy's handle, the bytes asked, what it cost.
struct Slot {
  Handle h;
  std::uint64_t size, cost;
};

// The replay's live blocks, one slot per id the ops use, not per id the header claims: a
// header may announce 2^31 ids for a file of a few lines (the trace fuzzer's lesson). Ids
// used densely (the recorder's: the lowest free one) index the slots directly; sparse ones
// (any id below 2^31 is valid: `a 2147483647 8` made a 2^31-slot table, std::bad_alloc) are
// numbered in order of first appearance, one slot each, looked up by operation.
class SlotTable {
 public:
  explicit SlotTable(const Trace& t) {
    std::uint32_t max_id = 0;
    for (const TraceOp& op : t.ops) max_id = std::max(max_id, op.id);
    std::size_t n = t.ops.size();
    if (n == 0) return;
    if (std::size_t{max_id} < 2 * n + 1024) {
      slots_.assign(std::size_t{max_id} + 1, Slot{0, 0, 0});
      return;
    }
    std::vector<std::uint32_t> ids(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = t.ops[i].id;
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    index_.resize(n);
    for (std::size_t i = 0; i < n; ++i)
      index_[i] = static_cast<std::uint32_t>(std::lower_bound(ids.begin(), ids.end(), t.ops[i].id) - ids.begin());
    slots_.assign(ids.size(), Slot{0, 0, 0});
  }
  // The slot of operation i, whose id is id.
  Slot& at(std::size_t i, std::uint32_t id) { return index_.empty() ? slots_[id] : slots_[index_[i]]; }

 private:
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> index_;  // by operation; empty: slots_ by id
};

// The figures of a finished replay from its counters: the ratios, the end state, the memory
// map (cfg.map_cells) and the final invariant check.
void summarize(ReplayResult& r, Policy* p, const ReplayConfig& cfg, std::uint64_t overhead_sum) {
  auto ratio = [](std::uint64_t a, std::uint64_t b) {
    return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b);
  };
  r.utilization = ratio(r.peak_live, r.peak_footprint);
  std::uint64_t ok_allocs = r.allocs - r.failures - r.injected_ops;
  r.overhead_per_alloc = ratio(overhead_sum, ok_allocs);
  r.internal_frag = ratio(r.internal_at_peak, r.peak_footprint);
  r.external_frag = ratio(r.external_at_peak, r.peak_footprint);
  r.end_footprint = p->footprint();
  r.end_free = p->free_total();
  r.end_largest = p->largest_free();
  if (cfg.map_cells != 0) {
    std::vector<bool> probe;
    p->used_cells(kPageSize, &probe);
    std::uint64_t total = probe.size() * kPageSize;
    std::uint64_t cell = (total / cfg.map_cells + kPageSize - 1) / kPageSize * kPageSize;
    if (cell == 0) cell = kPageSize;
    std::vector<bool> cells;
    p->used_cells(cell, &cells);
    r.map = render_map(cells);
    r.map_scale = cell;
  }
  std::string why;
  if (r.error.empty() && !p->check(&why)) r.error = "invariant broken at the end: " + why;
}

}  // namespace

ReplayResult replay(const Trace& t, const std::string& policy, const ReplayConfig& cfg) {
  ReplayResult r;
  r.policy = policy;
  std::unique_ptr<Policy> p = make_policy(policy, cfg, t, &r.error);
  if (p == nullptr) return r;
  r.capacity = p->capacity();
  // Fault injection: armed now that the machine is up, afresh (counters, times, the seed's
  // sequence) for each policy, so every policy sees the same schedule of calls.
  r.injecting = cfg.injecting();
  for (unsigned k = 0; k < kNrFaultPoints; ++k)
    if (cfg.fault_on[k]) fault_configure(static_cast<FaultPoint>(k), cfg.fault[k]);
  std::uint64_t injected_mark = 0;
  SlotTable slots(t);
  std::uint64_t live = 0, blocks = 0, overhead_sum = 0, live_at_peak = 0;
  std::size_t n = t.ops.size();
  std::size_t step = cfg.timeline_points == 0 ? 0 : std::max<std::size_t>(1, n / cfg.timeline_points);
  if (step != 0) r.timeline.reserve(n / step + 2);
  auto fail = [&](std::size_t i, std::uint64_t size) {
    if (r.injecting && injected_total() != injected_mark) {
      ++r.injected_ops;  // not the machine's failure: kept apart from out of memory
      return;
    }
    ++r.failures;
    if (!r.failed) {
      r.failed = true;
      r.fail_op = file_op_number(t, i);  // the file's numbering, also after lenient skips
      r.fail_size = size;
      r.fail_free = p->free_total();
      r.fail_largest = p->largest_free();
      r.fail_kind = size > p->max_request() ? FailKind::kAboveLimit
                    : r.fail_free >= size   ? FailKind::kMissingMemory
                                            : FailKind::kOutOfMemory;
    }
  };
  auto sample = [&](std::size_t i) {
    r.timeline.push_back({i, p->footprint(), live, p->largest_free()});
    if (cfg.check) {
      std::string why;
      if (!p->check(&why)) r.error = fmt::format("invariant broken after operation {}: {}", i, why);
    }
  };

  auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    const TraceOp& op = t.ops[i];
    Slot& s = slots.at(i, op.id);
    if (cfg.progress != nullptr && (i & 0xFFFF) == 0) cfg.progress(cfg.progress_arg, r.policy.c_str(), i, n);
    if (r.injecting) injected_mark = injected_total();
    switch (op.kind) {
      case OpKind::kAlloc: {
        std::uint64_t cost = 0;
        Handle h = p->alloc(op.size, op.align_log2, &cost);
        ++r.allocs;
        if (h == 0) {
          fail(i, op.size);
          break;
        }
        s = Slot{h, op.size, cost};
        live += op.size;
        blocks += cost;
        overhead_sum += cost - std::min(cost, op.size);
        break;
      }
      case OpKind::kFree:
        if (s.h == 0) break;  // its allocation failed
        p->free(s.h, s.size, s.cost);
        live -= s.size;
        blocks -= s.cost;
        s.h = 0;
        break;
      case OpKind::kRealloc: {
        if (s.h == 0) break;  // its allocation failed: skipped (replay.h)
        std::uint64_t cost = 0;
        ++r.allocs;
        Handle h = p->realloc(s.h, s.size, s.cost, op.size, op.align_log2, &cost);
        if (h == 0) {
          fail(i, op.size);
          break;
        }
        live -= s.size;
        blocks -= s.cost;
        s = Slot{h, op.size, cost};
        live += op.size;
        blocks += cost;
        overhead_sum += cost - std::min(cost, op.size);
        break;
      }
    }
    std::uint64_t fp = p->footprint();
    // At the peak footprint; among equal peaks, the moment with the most live payload (a
    // fixed heap's footprint is flat: its fragmentation is read when it is fullest).
    if (fp > r.peak_footprint || (fp == r.peak_footprint && live > live_at_peak)) {
      live_at_peak = live;
      r.peak_footprint = fp;
      r.internal_at_peak = blocks - std::min(blocks, live);
      r.external_at_peak = fp - std::min(fp, blocks);
    }
    if (live > r.peak_live) r.peak_live = live;
    if (step != 0 && i % step == 0) sample(i);
  }
  if (cfg.progress != nullptr) cfg.progress(cfg.progress_arg, r.policy.c_str(), n, n);
  auto t1 = std::chrono::steady_clock::now();
  if (step != 0 && n != 0 && (n - 1) % step != 0) sample(n - 1);
  if (r.injecting) collect_faults(&r);  // and disarm: the end state, the map and the checks see a quiet machine

  r.ops = n;
  r.seconds = std::chrono::duration<double>(t1 - t0).count();
  r.events_per_s = r.seconds > 0 ? static_cast<double>(n) / r.seconds : 0;
  summarize(r, p.get(), cfg, overhead_sum);
  return r;
}

// ---- output ----
namespace {

std::string bytes(std::uint64_t b) {
  if (b >= (10ull << 20)) return fmt::format("{:.1f}M", static_cast<double>(b) / (1 << 20));
  if (b >= (10ull << 10)) return fmt::format("{:.1f}K", static_cast<double>(b) / (1 << 10));
  return fmt::format("{}", b);
}

// The size asked in exact bytes: rounded, 1048577 read "1024.0K", as if under pow2's 1 MiB.
std::string failure_text(const ReplayResult& r) {
  if (!r.failed) return "none";
  return fmt::format("op {}: {} B asked, {} free, largest {}: {} ({} failed)", r.fail_op, r.fail_size,
                     bytes(r.fail_free), bytes(r.fail_largest), failure_kind_name(r.fail_kind), r.failures);
}

}  // namespace

const char* failure_kind_name(FailKind k) {
  switch (k) {
    case FailKind::kNone:
      return "";
    case FailKind::kAboveLimit:
      return "above the policy's limit";
    case FailKind::kMissingMemory:
      return "missing memory";
    case FailKind::kOutOfMemory:
      return "out of memory";
  }
  return "";
}

void print_replay_table(std::ostream& out, const Trace& t, const ReplayConfig& cfg,
                        const std::vector<ReplayResult>& rs) {
  out << fmt::format("trace {}: {} ops ({} a, {} f, {} r), {} ids, peak live payload {}{}\n", t.name, t.ops.size(),
                     t.allocs, t.frees, t.reallocs, t.num_ids, bytes(t.peak_live_bytes),
                     t.skipped != 0 ? fmt::format(", {} bad lines skipped", t.skipped) : "");
  out << fmt::format("machine: ram={} mmu={}\n\n", bytes(cfg.ram_bytes), cfg.mmu ? "on" : "off");
  out << fmt::format("{:<16} {:>9} {:>6} {:>9} {:>6} {:>6} {:>9} {:>9}  {:>9}  {}\n", "policy", "peak", "util",
                     "ovh/alloc", "int%", "ext%", "end free", "largest", "Mops/s", "first failure");
  for (const ReplayResult& r : rs) {
    if (!r.error.empty() && r.ops == 0) {
      out << fmt::format("{:<16} n/a: {}\n", r.policy, r.error);
      continue;
    }
    out << fmt::format("{:<16} {:>9} {:>5.1f}% {:>9.1f} {:>5.1f}% {:>5.1f}% {:>9} {:>9}  {:>9.2f}  {}\n", r.policy,
                       bytes(r.peak_footprint), 100 * r.utilization, r.overhead_per_alloc, 100 * r.internal_frag,
                       100 * r.external_frag, bytes(r.end_free), bytes(r.end_largest), r.events_per_s / 1e6,
                       failure_text(r));
    if (!r.error.empty()) out << fmt::format("{:<16} ERROR: {}\n", "", r.error);
  }
  bool any = false;
  for (const ReplayResult& r : rs) any = any || r.injecting;
  if (!any) return;
  out << fmt::format(
      "\nfault injection (failures injected / calls seen; ops failed by injection are not in \"first failure\"):\n");
  out << fmt::format("{:<16} {:>12} {:>21} {:>21} {:>21}\n", "policy", "ops failed", "failslab", "fail_page_alloc",
                     "fail_platform");
  for (const ReplayResult& r : rs) {
    if (!r.injecting) continue;
    auto cell = [&](unsigned k) { return fmt::format("{} / {}", r.fault_failures[k], r.fault_calls[k]); };
    out << fmt::format("{:<16} {:>12} {:>21} {:>21} {:>21}\n", r.policy, r.injected_ops, cell(0), cell(1), cell(2));
  }
}

void print_replay_csv(std::ostream& out, const std::vector<ReplayResult>& rs) {
  out << "policy,error,ops,allocs,failures,capacity,peak_footprint,peak_live,utilization,overhead_per_alloc,"
         "internal_frag,external_frag,end_footprint,end_free,end_largest,first_fail_op,first_fail_size,"
         "first_fail_free,first_fail_largest,events_per_s,injected_ops,failslab_calls,failslab_failures,"
         "fail_page_alloc_calls,fail_page_alloc_failures,fail_platform_calls,fail_platform_failures,first_fail_kind\n";
  for (const ReplayResult& r : rs) {
    std::string err = r.error;
    std::replace(err.begin(), err.end(), ',', ';');
    std::replace(err.begin(), err.end(), '"', '\'');
    out << fmt::format(
        "{},{},{},{},{},{},{},{},{:.4f},{:.2f},{:.4f},{:.4f},{},{},{},{},{},{},{},{:.0f},{},{},{},{},{},{},{},{}\n",
        r.policy, err, r.ops, r.allocs, r.failures, r.capacity, r.peak_footprint, r.peak_live, r.utilization,
        r.overhead_per_alloc, r.internal_frag, r.external_frag, r.end_footprint, r.end_free, r.end_largest,
        r.failed ? std::to_string(r.fail_op) : "", r.failed ? std::to_string(r.fail_size) : "",
        r.failed ? std::to_string(r.fail_free) : "", r.failed ? std::to_string(r.fail_largest) : "", r.events_per_s,
        r.injected_ops, r.fault_calls[0], r.fault_failures[0], r.fault_calls[1], r.fault_failures[1], r.fault_calls[2],
        r.fault_failures[2], failure_kind_name(r.fail_kind));
  }
}

void print_replay_json(std::ostream& out, const Trace& t, const ReplayConfig& cfg,
                       const std::vector<ReplayResult>& rs) {
  nlohmann::json j;
  j["trace"] = {{"name", t.name},
                {"ops", t.ops.size()},
                {"allocs", t.allocs},
                {"frees", t.frees},
                {"reallocs", t.reallocs},
                {"ids", t.num_ids},
                {"peak_live", t.peak_live_bytes},
                {"skipped", t.skipped},
                {"problems", t.problems}};
  j["machine"] = {{"ram", cfg.ram_bytes}, {"mmu", cfg.mmu}};
  nlohmann::json arr = nlohmann::json::array();
  for (const ReplayResult& r : rs) {
    nlohmann::json o = {{"policy", r.policy},
                        {"ops", r.ops},
                        {"allocs", r.allocs},
                        {"failures", r.failures},
                        {"capacity", r.capacity},
                        {"peak_footprint", r.peak_footprint},
                        {"peak_live", r.peak_live},
                        {"utilization", r.utilization},
                        {"overhead_per_alloc", r.overhead_per_alloc},
                        {"internal_frag", r.internal_frag},
                        {"external_frag", r.external_frag},
                        {"end_footprint", r.end_footprint},
                        {"end_free", r.end_free},
                        {"end_largest", r.end_largest},
                        {"events_per_s", r.events_per_s},
                        {"map", r.map},
                        {"map_scale", r.map_scale}};
    if (!r.error.empty()) o["error"] = r.error;
    if (r.injecting) {
      nlohmann::json f = {{"injected_ops", r.injected_ops}};
      for (unsigned k = 0; k < kNrFaultPoints; ++k)
        f[fault_point_name(static_cast<FaultPoint>(k))] = {{"calls", r.fault_calls[k]},
                                                           {"failures", r.fault_failures[k]}};
      o["fault_injection"] = f;
    }
    if (r.failed)
      o["first_failure"] = {{"op", r.fail_op},
                            {"size", r.fail_size},
                            {"free", r.fail_free},
                            {"largest", r.fail_largest},
                            {"kind", failure_kind_name(r.fail_kind)}};
    else
      o["first_failure"] = nullptr;
    arr.push_back(o);
  }
  j["policies"] = arr;
  // Names come from the trace and its file name, which need not be UTF-8: replaced, not thrown.
  out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

void write_timeline_csv(std::ostream& out, const std::vector<ReplayResult>& rs) {
  out << "policy,op,footprint,live,largest_free\n";
  for (const ReplayResult& r : rs)
    for (const ReplaySample& s : r.timeline)
      out << fmt::format("{},{},{},{},{}\n", r.policy, s.op, s.footprint, s.live, s.largest_free);
}

}  // namespace kmm::scenario

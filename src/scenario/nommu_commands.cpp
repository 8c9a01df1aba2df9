// kmm/scenario/nommu_commands.cpp — scenario commands of mmu=off machines: uClinux process
// memory (nommu/nommu.h) and its malloc strategies, fragmentation figures, and the
// network-buffer churn workload of document 002.
//
//   spawn PROC [malloc=simple|smalloc|heap|brk] [heap=SIZE]   exit PROC        ps
//   malloc PROC SIZE [as LABEL]   free LABEL [by PROC]   realloc LABEL SIZE
//   nommu [lookup=linear|indexed] [chunk=SIZE]     how free/realloc find a region; smalloc's chunk
//   frag [SIZE]                   free memory, largest free block, Linux's unusable and
//                                 fragmentation indices for a request of SIZE
//   repeat N COMMAND...           runs COMMAND N times, quietly ({i} in it becomes 0..N-1);
//                                 prints how many failed
//   churn [steps=N] [seed=N] [every=N] [buf_min=SIZE] [buf_max=SIZE] [bufs=N] [buf_life=N]
//         [keep=PERMILLE] [programs=N] [prog_min=SIZE] [prog_max=SIZE] [prog_life=N]
//                                 network buffers (short-lived, <= 2 KB, a few kept long)
//                                 mixed with long-lived programs; prints the largest free
//                                 block over time
// Values: proc.PROC.bytes|regions|mallocs|frees, ksize.LABEL, footprint.LABEL (process
// blocks), nommu.mmap_copy, nommu.regions, nommu.lookup_steps, nommu.record, nommu.ok (1 when
// the process model's invariants hold), heap.PROC.free|largest|used,
// frag.unusable.orderN, frag.index.orderN (thousandths, Linux's), churn.min_largest,
// churn.avg_largest, churn.final_largest, churn.failed_programs, churn.failed_buffers.
// The state is made on first use after each boot (reset_models() clears it).
// Family nommu of the command table: one handler per command (nommu_spawn ... nommu_churn),
// each called once nommu_enter has started the model (the interpreter's dispatch calls it for
// the family), and the table at the end of the file.
//
// Depends on: nommu/, kernel/, base/, scenario/ (interpreter, expressions, argument helpers), fmt.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <ostream>
#include <random>
#include <sstream>

#include "base/bits.h"
#include "base/text.h"
#include "nommu/nommu.h"
#include "scenario/command_table.h"
#include "scenario/expr.h"
#include "scenario/lexer.h"
#include "scenario/scenario.h"
#include "scenario/script_args.h"

namespace kmm::scenario {

struct NommuLabel {
  int pid = 0;
  void* ptr = nullptr;
  std::size_t size = 0;
  // Freed through this label (free, realloc to 0): a second free or a realloc of it is
  // refused as such, never passed on to whatever block has the address now.
  bool freed = false;
};

struct ChurnResult {
  bool ran = false;
  std::uint64_t min_largest = 0, avg_largest = 0, final_largest = 0;
  std::uint64_t failed_programs = 0, failed_buffers = 0;
};

struct NommuState {
  explicit NommuState(Kernel* k) {
    NommuConfig cfg;
    cfg.region_record_bytes = k->config().region_record_bytes;
    ok = nommu.init(k, cfg);
  }
  ~NommuState() { nommu.shutdown(); }
  NommuState(const NommuState&) = delete;
  NommuState& operator=(const NommuState&) = delete;

  Nommu nommu;
  bool ok = false;
  bool quiet = false;
  std::map<std::string, NommuLabel> labels;
  ChurnResult churn;
};
void ModelDeleter::operator()(NommuState* s) const {
  delete s;
}

namespace {

std::string pool_reason(const NommuFailure& f, const Kernel& k) {
  if (f.error == NommuError::kTooLarge)
    return fmt::format("larger than kmalloc's limit of {} (kmalloc={})", kb(k.kmalloc_layer().max_size()),
                       k.config().kmalloc == KmallocPolicy::kPow2 ? "pow2" : "kmalloc2");
  if (f.error == NommuError::kHeapFull)
    return fmt::format("the fixed heap is full: {} free in the heap, largest free block {}, asked {}", kb(f.free),
                       kb(f.largest), kb(f.asked));
  const char* why = f.largest >= f.asked ? "out of memory (below the min watermark)"
                    : f.free >= f.asked  ? "missing memory"
                                         : "out of memory";
  return fmt::format("{}: {} free, largest free block {}, asked {}", why, kb(f.free), kb(f.largest), kb(f.asked));
}

int order_for(std::uint64_t bytes) {
  return static_cast<int>(get_order(bytes == 0 ? 1 : bytes));
}

}  // namespace

constexpr const char* kNoNommuModel = "the NOMMU process model could not start (no room for its vm_region cache)";

static NommuState* nommu_state(std::unique_ptr<NommuState, ModelDeleter>& s, Kernel* k) {
  if (!s) s.reset(new NommuState(k));
  return s->ok ? s.get() : nullptr;
}

// What dispatch does before every NOMMU command (command_table.h's family_needs): the process
// model is started on first use after a boot; a machine with no room for it stops the line.
// nullopt: go on.
std::optional<LineStatus> Scenario::nommu_enter(const CommandCall& c) {
  if (nommu_state(nommu_, kernel_) == nullptr) return script_error(c.where, kNoNommuModel);
  return std::nullopt;
}

namespace {

// What a NOMMU handler works with: the line's words and "FILE:LINE", the machine, the model's
// state and the model itself (started: nommu_enter ran first).
struct NommuCall {
  const std::vector<std::string>& a;
  const std::string& where;
  Kernel& k;
  NommuState& st;
  Nommu& n;
};

NommuCall nommu_call(const CommandCall& c, Kernel& k, NommuState& st) {
  return NommuCall{c.a, c.where, k, st, st.nommu};
}

}  // namespace

// The transcript of a NOMMU command: quiet inside `repeat`.
void Scenario::nommu_say(const NommuState& st, const std::string& s) {
  if (!st.quiet) out_ << s << "\n";
}

// A failed NOMMU operation: last.failed, and (unless quiet) why.
void Scenario::nommu_fail(const NommuState& st, const std::string& s) {
  if (!st.quiet) failed(s);  // failed() also names an injected failure (fault injection)
  last_failed_ = true;
}

LineStatus Scenario::nommu_spawn(const CommandCall& c) {
  auto [a, where, k, st, n] = nommu_call(c, *kernel_, *nommu_);
  if (a.size() < 2 || !label_ok(a[1]) || a[1].size() >= kProcNameLen)
    return script_error(where, command_usage("spawn", CommandFamily::kNommu));
  std::map<std::string, std::string> o;
  std::string bad;
  if (!parse_options(a, 2, &o, &bad)) return script_error(where, "bad spawn option '" + bad + "'");
  MallocKind kind = MallocKind::kSimple;
  std::int64_t heap = 0;
  bool kind_given = false;
  for (auto& [key, v] : o) {
    if (key == "malloc") {
      kind_given = true;
      if (v == "simple")
        kind = MallocKind::kSimple;
      else if (v == "smalloc")
        kind = MallocKind::kSmalloc;
      else if (v == "heap")
        kind = MallocKind::kHeap;
      else if (v == "brk")
        kind = MallocKind::kBrk;
      else
        return script_error(where, "malloc= takes simple, smalloc, heap or brk, not '" + v + "'");
    } else if (key == "heap") {
      if (!parse_number(v, &heap) || heap <= 0) return script_error(where, "bad heap size '" + v + "'");
    } else {
      return script_error(where, "unknown spawn option '" + key + "'");
    }
  }
  if (heap != 0 && !kind_given) kind = MallocKind::kHeap;
  if (heap != 0 && kind != MallocKind::kHeap) return script_error(where, "heap= goes with malloc=heap");
  if (heap > 0 && static_cast<std::uint64_t>(heap) > k.phys().size()) {
    nommu_fail(st, fmt::format("spawn {}: a fixed heap of {} is larger than the machine's RAM ({})", a[1],
                               kb(static_cast<std::uint64_t>(heap)), kb(k.phys().size())));
    return LineStatus::kOk;
  }
  NommuError e;
  int pid = n.spawn(a[1].c_str(), kind, static_cast<std::size_t>(heap), &e);
  if (pid == 0) {
    std::string why = e == NommuError::kNoMemory || e == NommuError::kMissingMemory || e == NommuError::kTooLarge
                          ? "no room for its fixed heap: " + pool_reason(n.last_failure(), k)
                          : nommu_error_text(e);
    nommu_fail(st, fmt::format("spawn {}: {}", a[1], why));
    return LineStatus::kOk;
  }
  const NommuProcess* p = n.process(pid);
  if (kind == MallocKind::kHeap)
    nommu_say(st, fmt::format("{}: pid {}, malloc=heap, fixed heap of {} at 0x{:08x}", a[1], pid, kb(p->heap->size),
                              k.kva(p->heap->data)));
  else
    nommu_say(st, fmt::format("{}: pid {}, malloc={}", a[1], pid, malloc_kind_name(kind)));
  return LineStatus::kOk;
}

LineStatus Scenario::nommu_exit(const CommandCall& c) {
  auto [a, where, k, st, n] = nommu_call(c, *kernel_, *nommu_);
  if (a.size() != 2) return script_error(where, command_usage("exit", CommandFamily::kNommu));
  int pid = n.find(a[1].c_str());
  if (pid == 0) {
    nommu_fail(st, fmt::format("exit: no process {}", a[1]));
    return LineStatus::kOk;
  }
  std::uint64_t bytes = n.process_bytes(pid);
  n.exit(pid);
  for (auto it = st.labels.begin(); it != st.labels.end();)
    it = it->second.pid == pid ? st.labels.erase(it) : std::next(it);
  nommu_say(st, fmt::format("{} exited: {} back to the pool", a[1], kb(bytes)));
  return LineStatus::kOk;
}

LineStatus Scenario::nommu_malloc(const CommandCall& c) {
  auto [a, where, k, st, n] = nommu_call(c, *kernel_, *nommu_);
  std::string usage = command_usage("malloc", CommandFamily::kNommu);
  if (a.size() != 3 && a.size() != 5) return script_error(where, usage);
  if (a.size() == 5 && (a[3] != "as" || !label_ok(a[4]))) return script_error(where, usage);
  std::int64_t size;
  if (!parse_number(a[2], &size) || size < 0) return script_error(where, "bad size '" + a[2] + "'");
  int pid = n.find(a[1].c_str());
  if (pid == 0) {
    nommu_fail(st, fmt::format("malloc: no process {}", a[1]));
    return LineStatus::kOk;
  }
  NommuError e;
  void* p = n.malloc(pid, static_cast<std::size_t>(size), &e);
  if (p == nullptr) {
    nommu_fail(st, fmt::format("{}: malloc({}) failed: {}", a[1], size, pool_reason(n.last_failure(), k)));
    return LineStatus::kOk;
  }
  if (a.size() == 5) st.labels[a[4]] = NommuLabel{pid, p, static_cast<std::size_t>(size)};
  nommu_say(st, fmt::format("{}: malloc({}) = 0x{:08x} ({} usable, {} from the pool)", a[1], size, k.kva(p),
                            n.usable(pid, p), n.footprint(pid, p)));
  return LineStatus::kOk;
}

LineStatus Scenario::nommu_free(const CommandCall& c) {
  auto [a, where, k, st, n] = nommu_call(c, *kernel_, *nommu_);
  if (a.size() != 2 && !(a.size() == 4 && a[2] == "by"))
    return script_error(where, command_usage("free", CommandFamily::kNommu));
  auto it = st.labels.find(a[1]);
  if (it == st.labels.end()) return script_error(where, "no process block labelled '" + a[1] + "'");
  if (it->second.freed) {
    nommu_fail(st, fmt::format("free {}: refused: double free (the block was freed before)", a[1]));
    return LineStatus::kOk;
  }
  int by = it->second.pid;
  if (a.size() == 4) {
    by = n.find(a[3].c_str());
    if (by == 0) {
      nommu_fail(st, fmt::format("free: no process {}", a[3]));
      return LineStatus::kOk;
    }
  }
  NommuError e = n.free(by, it->second.ptr);
  if (e != NommuError::kOk) {
    const NommuProcess* owner = n.process(it->second.pid);
    const NommuProcess* who = n.process(by);
    nommu_fail(st,
               fmt::format("free {}: refused: 0x{:08x} {} (process {} freed it{})", a[1], k.kva(it->second.ptr),
                           nommu_error_text(e), who ? who->name : "?",
                           e == NommuError::kNotYours && owner ? std::string(", it is ") + owner->name + "'s" : ""));
    return LineStatus::kOk;
  }
  it->second.freed = true;
  return LineStatus::kOk;
}

LineStatus Scenario::nommu_realloc(const CommandCall& c) {
  auto [a, where, k, st, n] = nommu_call(c, *kernel_, *nommu_);
  if (a.size() != 3) return script_error(where, command_usage("realloc"));
  auto it = st.labels.find(a[1]);
  if (it == st.labels.end()) return script_error(where, "no process block labelled '" + a[1] + "'");
  std::int64_t size;
  if (!parse_number(a[2], &size) || size < 0) return script_error(where, "bad size '" + a[2] + "'");
  if (it->second.freed) {
    nommu_fail(st, fmt::format("realloc {}: refused: the block was freed (use after free)", a[1]));
    return LineStatus::kOk;
  }
  NommuError e = NommuError::kOk;
  void* q = n.realloc(it->second.pid, it->second.ptr, static_cast<std::size_t>(size), &e);
  if (size == 0 && e != NommuError::kOk) {  // realloc(p, 0) frees p: refused as free is
    nommu_fail(st, fmt::format("realloc {} 0: refused: {}", a[1], nommu_error_text(e)));
    return LineStatus::kOk;
  }
  if (q == nullptr && size != 0) {
    nommu_fail(
        st, fmt::format("realloc {}: failed: {} (the old block stays)", a[1],
                        e == NommuError::kBadPointer || e == NommuError::kNotYours ? nommu_error_text(e)
                                                                                   : pool_reason(n.last_failure(), k)));
    return LineStatus::kOk;
  }
  if (size == 0) {
    it->second.freed = true;
    return LineStatus::kOk;
  }
  bool moved = q != it->second.ptr;
  it->second.ptr = q;
  it->second.size = static_cast<std::size_t>(size);
  nommu_say(st, fmt::format("{} = 0x{:08x} ({} usable{})", a[1], k.kva(q), n.usable(it->second.pid, q),
                            moved ? ", moved: allocate, copy, free" : ", in place"));
  return LineStatus::kOk;
}

LineStatus Scenario::nommu_ps(const CommandCall& c) {
  auto [a, where, k, st, n] = nommu_call(c, *kernel_, *nommu_);
  out_ << "  PID NAME         MALLOC   REGIONS      BYTES  MALLOCS    FREES\n";
  for (int pid = 1; pid <= static_cast<int>(kMaxProcesses); ++pid) {
    const NommuProcess* p = n.process(pid);
    if (p == nullptr) continue;
    out_ << fmt::format("{:>5} {:<12} {:<8} {:>7} {:>10} {:>8} {:>8}\n", pid, p->name, malloc_kind_name(p->kind),
                        p->nr_regions, p->bytes, p->mallocs, p->frees);
  }
  return LineStatus::kOk;
}

LineStatus Scenario::nommu_lookup(const CommandCall& c) {
  auto [a, where, k, st, n] = nommu_call(c, *kernel_, *nommu_);
  std::map<std::string, std::string> o;
  std::string bad;
  if (a.size() < 2 || !parse_options(a, 1, &o, &bad)) return script_error(where, command_usage("nommu"));
  for (auto& [key, v] : o) {
    if (key == "lookup") {
      if (v != "linear" && v != "indexed") return script_error(where, "lookup= takes linear or indexed");
      n.set_indexed(v == "indexed");
    } else if (key == "chunk") {
      return script_error(where, "chunk= is a NommuConfig setting: not switchable on a running machine");
    } else {
      return script_error(where, "unknown nommu option '" + key + "'");
    }
  }
  nommu_say(st, fmt::format("region lookup: {}", n.config().indexed ? "indexed (hash of region addresses)"
                                                                    : "linear (walk the process's list)"));
  return LineStatus::kOk;
}

LineStatus Scenario::nommu_frag(const CommandCall& c) {
  auto [a, where, k, st, n] = nommu_call(c, *kernel_, *nommu_);
  std::int64_t size = 0;
  if (a.size() > 2 || (a.size() == 2 && (!parse_number(a[1], &size) || size <= 0)))
    return script_error(where, command_usage("frag"));
  std::uint64_t nr[kNrOrders];
  k.zone().free_blocks(nr);
  std::uint64_t free_b = k.zone().free_pages() * kPageSize, largest = k.zone().largest_free_block() * kPageSize;
  out_ << fmt::format("free {} in all, largest free block {} ({})\n", kb(free_b), kb(largest), k.zone().name());
  auto line_for = [&](unsigned order) {
    int ui = unusable_index(nr, order), fi = fragmentation_index(nr, order);
    out_ << fmt::format("  order {:>2} ({:>7}): unusable index {}.{:03d}, fragmentation index {}{}.{:03d}\n", order,
                        kb(kPageSize << order), ui / 1000, ui % 1000, fi < 0 ? "-" : "", std::abs(fi) / 1000,
                        std::abs(fi) % 1000);
  };
  if (size > 0) {
    const int order = order_for(static_cast<std::uint64_t>(size));
    if (order > static_cast<int>(kMaxOrder)) {
      // Linux's indices are per buddy order; a larger block was reported as order 10's line.
      out_ << fmt::format(
          "  {}: larger than the largest buddy block (order {}, {}): no index; it needs a run of {} "
          "contiguous free pages\n",
          kb(static_cast<std::uint64_t>(size)), kMaxOrder, kb(kPageSize << kMaxOrder),
          pages_for(static_cast<std::uint64_t>(size)));
      return LineStatus::kOk;
    }
    line_for(static_cast<unsigned>(order));
  } else {
    for (unsigned o = 0; o < kNrOrders; ++o) line_for(o);
  }
  return LineStatus::kOk;
}

LineStatus Scenario::nommu_repeat(const CommandCall& c) {
  auto [a, where, k, st, n] = nommu_call(c, *kernel_, *nommu_);
  std::int64_t times;
  if (a.size() < 3 || !parse_number(a[1], &times) || times < 0) return script_error(where, command_usage("repeat"));
  if (times > 10'000'000) return script_error(where, fmt::format("repeat {}: N is at most 10^7 (10000000)", a[1]));
  std::string body = c.line.substr(c.line.find(a[1], c.line.find("repeat") + 6) + a[1].size());
  // Nested, the counts multiply past any cap (10^7 * 10^7 lines).
  if (a[2] == "repeat") return script_error(where, "repeat cannot repeat a repeat");
  const std::uint64_t gen = models_gen_;
  bool was_quiet = st.quiet;
  st.quiet = true;
  std::int64_t failures = 0;
  for (std::int64_t i = 0; i < times; ++i) {
    std::string text = body;
    for (std::size_t at; (at = text.find("{i}")) != std::string::npos;) text.replace(at, 3, std::to_string(i));
    Args args = split_words(text);
    last_failed_ = false;
    LineStatus s = dispatch(args, text, where);
    // A boot or reboot destroyed st with the machine it described: nothing of it is touched.
    if (models_gen_ != gen)
      return script_error(where, "repeat: '" + a[2] + "' booted a new machine; repeat cannot run boot or reboot");
    if (s == LineStatus::kScriptError) {
      st.quiet = was_quiet;
      return s;
    }
    if (last_failed_) ++failures;
  }
  st.quiet = was_quiet;
  last_failed_ = failures != 0;
  nommu_say(st, fmt::format("repeated {} times, {} failed", times, failures));
  return LineStatus::kOk;
}

namespace {
// churn's options over their defaults; the error, or "" when every one is in its range.
std::string churn_options(const std::map<std::string, std::string>& o, std::map<std::string, std::int64_t>* p) {
  *p = {{"steps", 2000},  {"seed", 1},  {"every", 200},  {"buf_min", 64},     {"buf_max", 2048},    {"bufs", 3},
        {"buf_life", 20}, {"keep", 20}, {"programs", 6}, {"prog_min", 40960}, {"prog_max", 307200}, {"prog_life", 400}};
  // Each option's range: what the loop below computes with them (lifetimes times 4, counts
  // that size vectors) stays far from overflow, and a run stays bounded in time and memory.
  const std::map<std::string, std::pair<std::int64_t, std::int64_t>> range = {
      {"steps", {0, 10'000'000}},       {"seed", {0, INT64_MAX}},     {"every", {1, 10'000'000}},
      {"buf_min", {1, 1LL << 32}},      {"buf_max", {1, 1LL << 32}},  {"bufs", {0, 100'000}},
      {"buf_life", {1, 1'000'000'000}}, {"keep", {0, 1000}},          {"programs", {0, 10'000}},
      {"prog_min", {1, 1LL << 32}},     {"prog_max", {1, 1LL << 32}}, {"prog_life", {1, 1'000'000'000}}};
  for (auto& [key, v] : o) {
    if (p->count(key) == 0) return "unknown churn option '" + key + "'";
    auto [lo, hi] = range.at(key);
    if (!parse_number(v, &(*p)[key]) || (*p)[key] < lo || (*p)[key] > hi)
      return fmt::format("bad churn {} '{}' (want {}..{})", key, v, lo, hi);
  }
  if ((*p)["buf_min"] > (*p)["buf_max"] || (*p)["prog_min"] > (*p)["prog_max"])
    return "churn: want buf_min <= buf_max, prog_min <= prog_max";
  return "";
}
}  // namespace

LineStatus Scenario::nommu_churn(const CommandCall& c) {
  auto [a, where, k, st, n] = nommu_call(c, *kernel_, *nommu_);
  std::map<std::string, std::string> o;
  std::string bad;
  if (!parse_options(a, 1, &o, &bad)) return script_error(where, "bad churn option '" + bad + "'");
  std::map<std::string, std::int64_t> p;
  if (std::string why = churn_options(o, &p); !why.empty()) return script_error(where, why);
  std::mt19937_64 rng(static_cast<std::uint64_t>(p["seed"]));
  auto uniform = [&](std::int64_t lo, std::int64_t hi) {
    return lo + static_cast<std::int64_t>(rng() % (static_cast<std::uint64_t>(hi - lo) + 1));  // lo <= hi
  };
  NommuError e;
  // Its own daemon: a process of the user's named netd is left alone (churn exits what it
  // spawned, and exiting the user's would leave labels naming blocks of a pid used again).
  std::string net_name = "netd";
  for (int i = 1; n.find(net_name.c_str()) != 0; ++i) net_name = fmt::format("netd.{}", i);
  int net = n.spawn(net_name.c_str(), MallocKind::kSimple, 0, &e);
  if (net == 0) return script_error(where, "churn: cannot spawn " + net_name);
  struct Buf {
    void* p;
    std::int64_t dies;
  };
  struct Prog {
    int pid = 0;
    std::int64_t dies = 0;
  };
  std::vector<Buf> bufs;
  std::vector<Prog> progs(static_cast<std::size_t>(p["programs"]));
  ChurnResult r;
  r.ran = true;
  r.min_largest = ~std::uint64_t{0};
  std::uint64_t sum_largest = 0;
  out_ << fmt::format("churn on {} RAM, kmalloc={}, page allocator {}{}: {} steps\n", kb(k.phys().size()),
                      k.config().kmalloc == KmallocPolicy::kPow2 ? "pow2" : "kmalloc2", k.zone().name(),
                      k.config().page_alloc == PageAllocKind::kRange
                          ? (k.config().range_direction == RangeDirection::kSeed     ? " (direction=seed)"
                             : k.config().range_direction == RangeDirection::kSource ? " (direction=source)"
                                                                                     : " (bottom-up)")
                          : "",
                      p["steps"]);
  out_ << "   step       free    largest  buffers  programs  failed(prog/buf)\n";
  for (std::int64_t t = 1; t <= p["steps"]; ++t) {
    // Buffers that die now go back.
    for (std::size_t i = 0; i < bufs.size();) {
      if (bufs[i].dies <= t) {
        n.free(net, bufs[i].p);
        bufs[i] = bufs.back();
        bufs.pop_back();
      } else {
        ++i;
      }
    }
    // Programs that end exit; empty slots load a new program (one mmap of its image).
    for (std::size_t i = 0; i < progs.size(); ++i) {
      Prog& g = progs[i];
      if (g.pid != 0 && g.dies <= t) {
        n.exit(g.pid);
        g.pid = 0;
      }
      if (g.pid == 0 && (t == 1 || uniform(0, 9) == 0)) {
        // A name of its own, as netd's (a user's process named progN would refuse the spawn).
        std::string name = fmt::format("prog{}", i);
        for (int j = 1; n.find(name.c_str()) != 0; ++j) name = fmt::format("prog{}.{}", i, j);
        int pid = n.spawn(name.c_str(), MallocKind::kSimple, 0, &e);
        if (pid == 0) {  // the process table is full (64, netd and the user's included)
          r.failed_programs++;
          continue;
        }
        if (n.malloc(pid, static_cast<std::size_t>(uniform(p["prog_min"], p["prog_max"])), &e) == nullptr) {
          n.exit(pid);
          r.failed_programs++;
          continue;
        }
        g.pid = pid;
        g.dies = t + uniform(p["prog_life"] / 2, p["prog_life"] * 3 / 2);
      }
    }
    // New network buffers: most short-lived, a few (keep per mille) held long.
    std::int64_t nb = uniform(1, std::max<std::int64_t>(1, p["bufs"] * 2 - 1));
    for (std::int64_t j = 0; j < nb; ++j) {
      void* b = n.malloc(net, static_cast<std::size_t>(uniform(p["buf_min"], p["buf_max"])), &e);
      if (b == nullptr) {
        r.failed_buffers++;
        continue;
      }
      std::int64_t life =
          uniform(0, 999) < p["keep"] ? uniform(p["prog_life"], p["prog_life"] * 4) : uniform(1, p["buf_life"]);
      bufs.push_back(Buf{b, t + life});
    }
    std::uint64_t largest = k.zone().largest_free_block() * kPageSize;
    r.min_largest = std::min(r.min_largest, largest);
    sum_largest += largest;
    if (t % p["every"] == 0 || t == p["steps"]) {
      std::size_t running = 0;
      for (auto& g : progs) running += g.pid != 0 ? 1 : 0;
      out_ << fmt::format("{:>7} {:>10} {:>10} {:>8} {:>9} {:>9}/{}\n", t, kb(k.zone().free_pages() * kPageSize),
                          kb(largest), bufs.size(), running, r.failed_programs, r.failed_buffers);
    }
  }
  r.final_largest = k.zone().largest_free_block() * kPageSize;
  r.avg_largest = p["steps"] > 0 ? sum_largest / static_cast<std::uint64_t>(p["steps"]) : 0;
  if (p["steps"] == 0) r.min_largest = r.final_largest;
  out_ << fmt::format(
      "largest free block: min {}, average {}, at the end {}; failed program loads {}, failed buffers {}\n",
      kb(r.min_largest / 1024 * 1024), kb(r.avg_largest / 1024 * 1024), kb(r.final_largest), r.failed_programs,
      r.failed_buffers);
  // Leave the machine as it was: every churn process exits.
  for (auto& g : progs)
    if (g.pid != 0) n.exit(g.pid);
  n.exit(net);
  st.churn = r;
  return LineStatus::kOk;
}

std::span<const CommandRow> CommandTables::nommu() {
  using F = CommandFamily;
  static constexpr CommandRow kRows[] = {
      {"spawn", "spawn PROC [malloc=simple|smalloc|heap|brk] [heap=SIZE]",
       "start a uClinux process with one of its malloc strategies", F::kNommu, &Scenario::nommu_spawn},
      {"exit", "exit PROC", "end a process; its regions go back", F::kNommu, &Scenario::nommu_exit},
      {"malloc", "malloc PROC SIZE [as LABEL]", "allocate from the process's malloc", F::kNommu,
       &Scenario::nommu_malloc},
      {"free", "free LABEL [by PROC]", "free a malloc block", F::kNommu, &Scenario::nommu_free},
      {"realloc", "realloc LABEL SIZE", "resize a malloc block", F::kNommu, &Scenario::nommu_realloc},
      {"ps", "ps", "the processes and their memory", F::kNommu, &Scenario::nommu_ps},
      {"nommu", "nommu lookup=linear|indexed",
       "how free and realloc find a process's region (the malloc-simple chunk size is fixed)", F::kNommu,
       &Scenario::nommu_lookup},
      {"frag", "frag [SIZE]", "free memory, the largest free block, Linux's fragmentation indices", F::kNommu,
       &Scenario::nommu_frag},
      {"repeat", "repeat N COMMAND... ({i} in COMMAND counts 0..N-1)",
       "run COMMAND N times, quietly; print how many failed", F::kNommu, &Scenario::nommu_repeat},
      {"churn",
       "churn [steps=N] [seed=N] [every=N] [buf_min=SIZE] [buf_max=SIZE] [bufs=N] [buf_life=N] [keep=PERMILLE]"
       " [programs=N] [prog_min=SIZE] [prog_max=SIZE] [prog_life=N]",
       "network buffers mixed with long-lived programs; prints the largest free block over time", F::kNommu,
       &Scenario::nommu_churn},
  };
  return kRows;
}

std::optional<std::int64_t> Scenario::value_nommu(const std::string& path, std::string* error) {
  auto dot = path.find('.');
  std::string head = path.substr(0, dot);
  std::string rest = dot == std::string::npos ? "" : path.substr(dot + 1);
  static const char* const kHeads[] = {"proc", "ksize", "footprint", "nommu", "heap", "frag", "churn"};
  if (std::find(std::begin(kHeads), std::end(kHeads), head) == std::end(kHeads)) return std::nullopt;
  Kernel& k = *kernel_;
  if (head == "frag") {
    // frag.unusable.orderN, frag.index.orderN
    auto d = rest.find('.');
    std::string which = rest.substr(0, d), ord = d == std::string::npos ? "" : rest.substr(d + 1);
    std::int64_t o = -1;
    if ((which != "unusable" && which != "index") || ord.rfind("order", 0) != 0 || !parse_number(ord.substr(5), &o) ||
        o < 0 || o > static_cast<std::int64_t>(kMaxOrder)) {
      *error = "frag values are frag.unusable.orderN and frag.index.orderN (N = 0..10)";
      return std::nullopt;
    }
    std::uint64_t nr[kNrOrders];
    k.zone().free_blocks(nr);
    return which == "unusable" ? unusable_index(nr, static_cast<unsigned>(o))
                               : fragmentation_index(nr, static_cast<unsigned>(o));
  }
  NommuState* st = nommu_state(nommu_, kernel_);
  if (st == nullptr) {
    *error = "the NOMMU process model is not running";
    return std::nullopt;
  }
  Nommu& n = st->nommu;
  auto as_int = [](std::uint64_t v) { return static_cast<std::int64_t>(v); };
  if (head == "ksize" || head == "footprint") {
    auto it = st->labels.find(rest);
    if (it == st->labels.end() || it->second.freed) return std::nullopt;  // Scenario::value names the label
    return as_int(head == "ksize" ? n.usable(it->second.pid, it->second.ptr)
                                  : n.footprint(it->second.pid, it->second.ptr));
  }
  if (head == "nommu") {
    if (rest == "mmap_copy") return as_int(n.mmap_copy_bytes());
    if (rest == "regions") return as_int(n.nr_regions());
    if (rest == "lookup_steps") return as_int(n.last_lookup_steps());
    if (rest == "record") return as_int(n.record_bytes());
    if (rest == "ok") {
      StackText<256> why;
      if (n.check_invariants(&why)) return 1;
      out_ << "NOMMU INVARIANT BROKEN: " << why.data() << "\n";
      return 0;
    }
    *error = "nommu values are nommu.mmap_copy, nommu.regions, nommu.lookup_steps, nommu.record and nommu.ok";
    return std::nullopt;
  }
  if (head == "churn") {
    const ChurnResult& r = st->churn;
    if (!r.ran) {
      *error = "no churn has run on this machine";
      return std::nullopt;
    }
    if (rest == "min_largest") return as_int(r.min_largest);
    if (rest == "avg_largest") return as_int(r.avg_largest);
    if (rest == "final_largest") return as_int(r.final_largest);
    if (rest == "failed_programs") return as_int(r.failed_programs);
    if (rest == "failed_buffers") return as_int(r.failed_buffers);
    *error =
        "churn values are churn.min_largest, churn.avg_largest, churn.final_largest, churn.failed_programs, "
        "churn.failed_buffers";
    return std::nullopt;
  }
  // proc.PROC.FIELD, heap.PROC.FIELD
  auto d = rest.rfind('.');
  std::string name = rest.substr(0, d), field = d == std::string::npos ? "" : rest.substr(d + 1);
  int pid = n.find(name.c_str());
  if (pid == 0) {
    *error = "no process '" + name + "' (" + head + " values are " + head + ".PROC.FIELD)";
    return std::nullopt;
  }
  const NommuProcess* p = n.process(pid);
  if (head == "proc") {
    if (field == "bytes") return as_int(p->bytes);
    if (field == "regions") return as_int(p->nr_regions);
    if (field == "mallocs") return as_int(p->mallocs);
    if (field == "frees") return as_int(p->frees);
    *error = "proc values are proc.PROC.bytes, .regions, .mallocs and .frees";
    return std::nullopt;
  }
  ArenaStats h = n.heap_stats(pid);
  if (field == "free") return as_int(h.free);
  if (field == "largest") return as_int(h.largest);
  if (field == "used") return as_int(h.used);
  *error = "heap values are heap.PROC.free, heap.PROC.largest and heap.PROC.used";
  return std::nullopt;
}

}  // namespace kmm::scenario

// kmm/scenario/scenario.cpp — the interpreter's core: reading lines (comments, words),
// dispatch through the command table (scenario/command_table.h), transcript and error
// reporting, the family script's commands (echo, let, expect) and the values expressions read.
// Depends on: kernel/, proc/, base/, scenario/ (expressions, command table, families), fmt.
// Invariants: a line is looked up in the table and nowhere else; last.failed is reset before
// every command but let/expect/echo; only rows marked kAnyTime run before the first boot.
#include "scenario/scenario.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <istream>
#include <ostream>
#include <sstream>

#include "base/report.h"
#include "base/text.h"
#include "base/units.h"
#include "proc/proc.h"
#include "protect/protector_mode.h"
#include "scenario/command_table.h"
#include "scenario/expr.h"
#include "scenario/fault_commands.h"
#include "scenario/lexer.h"
#include "scenario/persist_commands.h"
#include "scenario/script_args.h"

namespace kmm::scenario {
namespace {

std::ostream* g_report_out = nullptr;

void report_to_transcript(const char* text, std::size_t len) {
  if (g_report_out != nullptr) g_report_out->write(text, static_cast<std::streamsize>(len));
}

// slabinfo.CACHE.FIELD: a cache's /proc/slabinfo columns.
std::optional<std::int64_t> slabinfo_value(Kernel& k, const std::string& rest, std::string* error) {
  auto as_int = [](std::uint64_t v) { return static_cast<std::int64_t>(v); };
  auto d = rest.rfind('.');
  std::string cache = rest.substr(0, d), field = d == std::string::npos ? "" : rest.substr(d + 1);
  for (unsigned id = 0; id < k.slab().nr_cache_ids(); ++id) {
    KmemCache* c = k.slab().cache(id);
    if (c == nullptr || cache != c->name) continue;
    if (field == "active_objs") return as_int(c->active_objects());
    if (field == "num_objs") return as_int(c->total_objects());
    if (field == "objsize") return as_int(c->size);
    if (field == "objperslab") return as_int(c->objects);
    if (field == "pagesperslab") return as_int(1u << c->order);
    if (field == "num_slabs") return as_int(c->nr_slabs.load());
    *error =
        "slabinfo field '" + field + "' unknown (active_objs, num_objs, objsize, objperslab, pagesperslab, num_slabs)";
    return std::nullopt;
  }
  *error = "no slab cache '" + cache + "'";
  return std::nullopt;
}

}  // namespace

std::string kb(std::uint64_t bytes) {
  if (bytes % 1024 == 0) return fmt::format("{} kB", bytes / 1024);
  return fmt::format("{} bytes", bytes);
}

// A report's pointer into the machine's RAM is shown as the kernel address the transcript
// uses everywhere else (0: not the machine's; shown as it is).
std::uint64_t Scenario::report_address(const void* p, void* arg) {
  Kernel* k = static_cast<Scenario*>(arg)->kernel_;
  return k != nullptr && k->phys().owns(p) ? k->kva(p) : 0;
}

Scenario::Scenario(std::ostream& out, std::ostream& err) : out_(out), err_(err) {
  g_report_out = &out_;
  set_report_writer(report_to_transcript);
  set_report_address(&Scenario::report_address, this);
  set_on_error(OnError::kReport);
}

Scenario::~Scenario() {
  drop_models();
  if (kernel_ != nullptr) kernel_->shutdown();
  fault_disable_all();  // a script's `fail` lines end with it
  set_report_writer(nullptr);
  set_report_address(nullptr, nullptr);
  g_report_out = nullptr;
  set_on_error(OnError::kAbort);
}

LineStatus Scenario::script_error(const std::string& where, const std::string& msg) {
  out_.flush();
  err_ << where << ": error: " << msg << "\n";
  return LineStatus::kScriptError;
}

void Scenario::failed(const std::string& msg) {
  out_ << msg;
  // Every failure of a line during which a fault point injected one says so (the process
  // models' own messages cannot know): an injected failure is not the machine's.
  if (msg.find("injected failure") == std::string::npos) {
    std::string points;
    for (unsigned i = 0; i < kNrFaultPoints; ++i)
      if (fault_failures(static_cast<FaultPoint>(i)) > injected_mark_[i])
        points += std::string(points.empty() ? "" : ", ") + fault_point_name(static_cast<FaultPoint>(i));
    if (!points.empty()) out_ << " [injected failure: " << points << "]";
  }
  out_ << "\n";
  last_failed_ = true;
}

bool Scenario::need_machine(const std::string& where, LineStatus* st) {
  if (kernel_ != nullptr) return true;
  *st = script_error(where, "no machine: the script must `boot` first");
  return false;
}

bool Scenario::owner_arg(const std::string& name, owner_t* o) {
  if (name == "kernel") {
    *o = kOwnerKernel;
    return true;
  }
  *o = kernel_->module_owner(name.c_str());
  return *o != kOwnerFree;
}

// The fault points that failed an allocation during this line ("" when none did).
std::string Scenario::injected_points() const {
  std::string points;
  for (unsigned i = 0; i < kNrFaultPoints; ++i)
    if (fault_failures(static_cast<FaultPoint>(i)) > injected_mark_[i])
      points += std::string(points.empty() ? "" : ", ") + fault_point_name(static_cast<FaultPoint>(i));
  return points;
}

std::string Scenario::alloc_failure_reason(std::uint64_t need, std::uint64_t asked) const {
  std::uint64_t free_b = kernel_->zone().free_pages() * kPageSize;
  std::uint64_t largest = kernel_->zone().largest_free_block() * kPageSize;
  // The verdict is the pool's (a kmalloc(64) that fails needed a whole slab page); "asked" is
  // the caller's size, with the pool's need beside it where they differ (it read "asked 4 kB"
  // for a kmalloc(64)).
  const char* why = largest >= need  ? "out of memory (below the min watermark)"
                    : free_b >= need ? "missing memory"
                                     : "out of memory";
  std::string asked_text =
      asked == 0 || asked == need ? kb(need) : fmt::format("{} (needs {} of pages)", kb(asked), kb(need));
  // An injected failure is not the machine's: say so, and which point forced it.
  std::string points = injected_points();
  if (!points.empty()) {
    return fmt::format("injected failure (fault injection: {}); {} free, largest free block {}, asked {}", points,
                       kb(free_b), kb(largest), asked_text);
  }
  return fmt::format("{}: {} free, largest free block {}, asked {}", why, kb(free_b), kb(largest), asked_text);
}

// A vmalloc needs its pages, not contiguous ones, and a free range of the vmalloc space for
// them and a guard page: "missing memory" (no contiguous block) is never its reason.
std::string Scenario::vmalloc_failure_reason(std::uint64_t asked) const {
  const std::uint64_t need = (asked + kPageSize - 1) / kPageSize * kPageSize;
  if (!injected_points().empty()) return alloc_failure_reason(need);
  const std::uint64_t range = kernel_->vmalloc_space().largest_chunk();
  if (range < need + kPageSize)
    return fmt::format("vmalloc space exhausted: its largest free range is {}, asked {} and a guard page", kb(range),
                       kb(need));
  const std::uint64_t free_b = kernel_->zone().free_pages() * kPageSize;
  return fmt::format("out of memory{}: {} free, asked {}", free_b >= need ? " (below the min watermark)" : "",
                     kb(free_b), kb(need));
}

void Scenario::print_view(const std::string& path) {
  std::vector<char> buf(1 << 16);
  for (;;) {
    TextSink sink(buf.data(), buf.size());
    if (!proc_read(*kernel_, path.c_str(), sink)) return;
    if (!sink.truncated()) {
      out_ << sink.data();
      return;
    }
    buf.resize(sink.wanted() + 1);
  }
}

int Scenario::run_script(std::istream& in, const std::string& file) {
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    LineStatus st = run_line(line, fmt::format("{}:{}", file, lineno));
    if (st == LineStatus::kScriptError) return 2;
  }
  if (in.bad()) {
    err_ << file << ": error: read failed\n";
    return 2;
  }
  return expects_failed_ != 0 ? 1 : 0;
}

int Scenario::run_shell(std::istream& in, bool interactive) {
  std::string line;
  int lineno = 0;
  bool saved = echo_;
  echo_ = !interactive;
  for (;;) {
    if (interactive) out_ << "kmm> " << std::flush;
    if (!std::getline(in, line)) break;
    ++lineno;
    if (strip_comment(line) == "exit" || strip_comment(line) == "quit") break;
    // `help` is what a user types first at a prompt: a pointer, not "unknown command" (a
    // script has no `help`: kmm run keeps it an error, and a `help` line here is no command).
    if (strip_comment(line) == "help") {
      out_ << "scenario commands: kmm help scenario (boot's options: kmm help boot); exit or quit (or end of input)"
              " ends the shell: status 1 when an expect failed, else 0\n";
      continue;
    }
    run_line(line, fmt::format("<stdin>:{}", lineno));
    out_.flush();
  }
  echo_ = saved;
  return expects_failed_ != 0 ? 1 : 0;
}

LineStatus Scenario::run_line(const std::string& raw, const std::string& where) {
  std::string line = strip_comment(raw);
  if (line.empty()) return LineStatus::kOk;
  if (echo_) out_ << "root@kmm:~# " << line << "\n";
  Args a = split_words(line);
  // let/expect/echo read last.failed and keep it: reset it only for other commands (it was
  // reset before dispatch, so `expect last.failed == 1` always read 0).
  if (a[0] != "let" && a[0] != "expect" && a[0] != "echo") last_failed_ = false;
  for (unsigned i = 0; i < kNrFaultPoints; ++i) injected_mark_[i] = fault_failures(static_cast<FaultPoint>(i));
  LineStatus st = dispatch(a, line, where);
  if (st == LineStatus::kExpectFailed) ++expects_failed_;
  if (observer_ != nullptr) observer_->after_line(kernel_, where, line, st);
  return st;
}

// The table decides: a command that runs before any boot (script, fault, boot) is called as
// it is; any other needs a machine, and one of its kind that runs the name, and then what its
// family needs (the MMU or the NOMMU process model).
LineStatus Scenario::dispatch(const Args& a, const std::string& line, const std::string& where) {
  const CommandCall c{a, line, where};
  if (const CommandRow* r = find_anytime_command(a[0])) return (this->*r->handler)(c);
  LineStatus st = LineStatus::kOk;
  if (!need_machine(where, &st)) return st;
  const bool mmu = kernel_->config().mmu;
  const CommandRow* r = find_command(a[0], mmu);
  if (r == nullptr) return script_error(where, unknown_command_error(a[0], mmu));
  if (auto stop = enter_family(r->family, c)) return *stop;
  return (this->*r->handler)(c);
}

// What the family's commands need before their handler runs (command_table.h's family_needs):
// nullopt when it is there, else the line's status (the error is the model's).
std::optional<LineStatus> Scenario::enter_family(CommandFamily f, const CommandCall& c) {
  switch (family_needs(f)) {
    case FamilyNeeds::kMmuModel:
      return mmu_enter(c);
    case FamilyNeeds::kNommuState:
      return nommu_enter(c);
    case FamilyNeeds::kNothing:
      break;
  }
  return std::nullopt;
}

// ---- family script: values and checks, no machine needed ----

LineStatus Scenario::cmd_echo(const CommandCall& c) {
  const std::string& line = c.line;
  out_ << line.substr(line.find("echo") + 4 + (line.size() > 4 ? 1 : 0)) << "\n";
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_let(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& where = c.where;
  if (a.size() < 4 || a[2] != "=") return script_error(where, command_usage("let"));
  for (char ch : a[1])
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_')
      return script_error(where, "bad name '" + a[1] + "' for let");
  std::string text = c.line.substr(c.line.find('=') + 1);
  ExprResult r = evaluate(text, vars_, [this](const std::string& p, std::string* e) { return value(p, e); });
  if (!r.ok) return script_error(where, r.error);
  vars_[a[1]] = r.value;
  out_ << "$" << a[1] << " = " << r.value << "\n";
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_expect(const CommandCall& c) {
  const std::string& where = c.where;
  if (c.a.size() < 2) return script_error(where, command_usage("expect"));
  std::string text = c.line.substr(c.line.find("expect") + 6);
  ExprResult r = evaluate(text, vars_, [this](const std::string& p, std::string* e) { return value(p, e); });
  if (!r.ok) return script_error(where, r.error);
  if (r.value != 0) {
    out_ << "ok\n";
    return LineStatus::kOk;
  }
  out_ << "FAILED" << (r.trace.empty() ? "" : " (" + r.trace + ")") << "\n";
  err_ << where << ": expect failed:" << text << (r.trace.empty() ? "" : "  [" + r.trace + "]") << "\n";
  return LineStatus::kExpectFailed;
}

std::span<const CommandRow> CommandTables::script() {
  using F = CommandFamily;
  static constexpr CommandRow kRows[] = {
      {"echo", "echo TEXT", "print TEXT", F::kScript, &Scenario::cmd_echo, CommandWhen::kAnyTime},
      {"let", "let NAME = EXPR", "remember the value of an expression as $NAME", F::kScript, &Scenario::cmd_let,
       CommandWhen::kAnyTime},
      {"expect", "expect EXPR", "check a condition; a false one prints both sides and the run exits 1", F::kScript,
       &Scenario::cmd_expect, CommandWhen::kAnyTime},
  };
  return kRows;
}

// module.NAME.bytes and module.NAME.objects: what a module (or the kernel) owns.
std::optional<std::int64_t> Scenario::module_value(const std::string& rest, std::string* error) {
  Kernel& k = *kernel_;
  auto as_int = [](std::uint64_t v) { return static_cast<std::int64_t>(v); };
  auto d = rest.rfind('.');
  std::string name = rest.substr(0, d), field = d == std::string::npos ? "" : rest.substr(d + 1);
  if (field != "bytes" && field != "objects") {
    *error = "module values are module.NAME.bytes and module.NAME.objects";
    return std::nullopt;
  }
  std::vector<OwnerTally> t(kMaxOwners);
  k.usage(t.data());
  std::uint64_t sum = 0;
  bool known = name == "kernel" || loaded_modules_.count(name) != 0;
  for (unsigned o = kOwnerFirstModule; o < kOwnerUntracked; ++o) {
    const Module* m = k.modules().module(static_cast<owner_t>(o));
    if (m == nullptr || m->state == ModuleState::kFree || name != m->name) continue;
    known = true;  // live or gone; a persistent heap's modules come with it
    sum += field == "bytes" ? t[o].bytes : t[o].objects;
  }
  // A name no insmod loaded would read 0, and `expect module.m_tset.bytes == 0` would hold
  // on a typo: it is a script error, as an unknown label is.
  if (!known) {
    std::string names;
    for (const std::string& n : loaded_modules_) names += (names.empty() ? "" : ", ") + n;
    *error = "no module '" + name +
             "': no insmod loaded it (loaded so far: " + (names.empty() ? std::string("none") : names) +
             "; the kernel is module.kernel)";
    return std::nullopt;
  }
  if (name == "kernel") sum = field == "bytes" ? t[kOwnerKernel].bytes : t[kOwnerKernel].objects;
  return as_int(sum);
}

std::optional<std::int64_t> Scenario::value(const std::string& path, std::string* error) {
  auto dot = path.find('.');
  std::string head = path.substr(0, dot);
  std::string rest = dot == std::string::npos ? "" : path.substr(dot + 1);
  if (head == "last" && rest == "failed") return last_failed_ ? 1 : 0;
  if (head == "fail") return fault_value(rest, error);
  if (kernel_ == nullptr) {
    *error = "no machine to read '" + path + "' from: the script must `boot` first";
    return std::nullopt;
  }
  Kernel& k = *kernel_;
  auto as_int = [](std::uint64_t v) { return static_cast<std::int64_t>(v); };
  if (head == "persist" || head == "root") return persist_value(k, head, rest, error);
  if (head == "meminfo") {
    std::uint64_t v;
    if (meminfo_value(k, rest.c_str(), &v)) return as_int(v);
    *error = "no field '" + rest + "' in /proc/meminfo";
    return std::nullopt;
  }
  if (head == "buddyinfo" && rest.rfind("order", 0) == 0) {
    std::int64_t o;
    if (parse_number(rest.substr(5), &o) && o >= 0 && o <= static_cast<std::int64_t>(kMaxOrder)) {
      std::uint64_t nr[kNrOrders];
      k.zone().free_blocks(nr);
      return as_int(nr[o]);
    }
    *error = "buddyinfo has order0 .. order10, not '" + rest + "'";
    return std::nullopt;
  }
  if (head == "slabinfo") return slabinfo_value(k, rest, error);
  if (head == "module") return module_value(rest, error);
  // Labels of kernel blocks here; other labels (process blocks) fall through to the models.
  if ((head == "ksize" || head == "footprint") && blocks_.count(rest) != 0) {
    auto it = blocks_.find(rest);
    const Block& b = it->second;
    if (!stale_label(rest, b).empty()) return 0;  // its block is gone: the memory is another's
    if (b.kind == Block::Kind::kVmalloc) {
      const VmArea* v = k.vmalloc_space().find(b.va);
      if (v == nullptr || v->addr != b.va) return 0;
      std::uint64_t bytes = std::uint64_t{v->nr_pages} * kPageSize;
      // Its pages, its record's slot (vmap_area) and its page array's kmalloc slot, each with
      // its owner byte: what the allocators took, not the structs' sizes.
      return as_int(head == "ksize" ? bytes : bytes + k.footprint(v) + k.footprint(v->pages));
    }
    return as_int(head == "ksize" ? k.ksize(b.host) : k.footprint(b.host));
  }
  if (head == "free") {
    if (rest == "total") return as_int(k.zone().free_pages() * kPageSize);
    if (rest == "largest") return as_int(k.zone().largest_free_block() * kPageSize);
    *error = "free values are free.total and free.largest";
    return std::nullopt;
  }
  if (head == "leaks") {
    if (rest == "count") return as_int(k.collector().stats().leak_objects);
    if (rest == "bytes") return as_int(k.collector().stats().leak_bytes);
    if (rest == "referenced") return as_int(k.collector().stats().referenced_objects);
    *error = "leaks values are leaks.count, leaks.bytes and leaks.referenced";
    return std::nullopt;
  }
  if (head == "reclaimed") {
    if (rest == "bytes") return as_int(k.collector().stats().reclaimed_bytes);
    if (rest == "count") return as_int(k.collector().stats().reclaimed_objects);
    *error = "reclaimed values are reclaimed.bytes and reclaimed.count";
    return std::nullopt;
  }
  if (head == "gc" && rest == "passes") return as_int(k.collector().stats().passes);
  if (head == "failed" && rest == "allocs") return as_int(k.failed_allocations());
  if (head == "vmalloc" && rest == "used") return as_int(k.vmalloc_space().used_bytes());
  if (head == "time" && rest == "ms") return as_int(k.now_ns() / 1000000);
  if (auto r = k.config().mmu ? value_mmu(path, error) : value_nommu(path, error)) return r;
  if (!error->empty()) return std::nullopt;
  if (head == "ksize" || head == "footprint") {
    *error = "no block labelled '" + rest + "'";
    return std::nullopt;
  }
  *error = "unknown value '" + path + "'";
  return std::nullopt;
}

}  // namespace kmm::scenario

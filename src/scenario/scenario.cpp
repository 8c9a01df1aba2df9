// kmm/scenario/scenario.cpp — parsing and running scenario commands on a modelled machine.
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
#include "scenario/persist_commands.h"
#include "scenario/script_args.h"

namespace kmm::sim {
namespace {

std::ostream* g_report_out = nullptr;

void report_to_transcript(const char* text, std::size_t len) {
  if (g_report_out != nullptr) g_report_out->write(text, static_cast<std::streamsize>(len));
}

void log_to_transcript(void* arg, const char* line, std::size_t len) {
  static_cast<std::ostream*>(arg)->write(line, static_cast<std::streamsize>(len));
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

std::string strip_comment(const std::string& line) {
  std::size_t h = line.find('#');
  std::string s = h == std::string::npos ? line : line.substr(0, h);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  return s.substr(b);
}

// "off, report, reclaim or reclaim-unreachable": the mode names (protect/protector_mode.h).
std::string protector_mode_words() {
  std::string out;
  for (std::size_t i = 0; i < kNrProtectorModes; ++i)
    out += (i == 0 ? "" : i + 1 == kNrProtectorModes ? " or " : ", ") + std::string(kProtectorModeNames[i]);
  return out;
}

}  // namespace

std::string kb(std::uint64_t bytes) {
  if (bytes % 1024 == 0) return fmt::format("{} kB", bytes / 1024);
  return fmt::format("{} bytes", bytes);
}

Scenario::Scenario(std::ostream& out, std::ostream& err) : out_(out), err_(err) {
  g_report_out = &out_;
  set_report_writer(report_to_transcript);
  set_on_error(OnError::kReport);
}

Scenario::~Scenario() {
  drop_models();
  if (kernel_ != nullptr) kernel_->shutdown();
  fault_disable_all();  // a script's `fail` lines end with it
  set_report_writer(nullptr);
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

std::string Scenario::alloc_failure_reason(std::uint64_t asked) const {
  std::uint64_t free_b = kernel_->zone().free_pages() * kPageSize;
  std::uint64_t largest = kernel_->zone().largest_free_block() * kPageSize;
  const char* why = largest >= asked  ? "out of memory (below the min watermark)"
                    : free_b >= asked ? "missing memory"
                                      : "out of memory";
  // An injected failure is not the machine's: say so, and which point forced it.
  std::string points;
  for (unsigned i = 0; i < kNrFaultPoints; ++i)
    if (fault_failures(static_cast<FaultPoint>(i)) > injected_mark_[i])
      points += std::string(points.empty() ? "" : ", ") + fault_point_name(static_cast<FaultPoint>(i));
  if (!points.empty()) {
    return fmt::format("injected failure (fault injection: {}); {} free, largest free block {}, asked {}", points,
                       kb(free_b), kb(largest), kb(asked));
  }
  return fmt::format("{}: {} free, largest free block {}, asked {}", why, kb(free_b), kb(largest), kb(asked));
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
  Args a = split(line);
  // let/expect/echo read last.failed and keep it: reset it only for other commands (it was
  // reset before dispatch, so `expect last.failed == 1` always read 0).
  if (a[0] != "let" && a[0] != "expect" && a[0] != "echo") last_failed_ = false;
  for (unsigned i = 0; i < kNrFaultPoints; ++i) injected_mark_[i] = fault_failures(static_cast<FaultPoint>(i));
  LineStatus st = dispatch(a, line, where);
  if (st == LineStatus::kExpectFailed) ++expects_failed_;
  if (observer_ != nullptr) observer_->after_line(kernel_, where, line, st);
  return st;
}

LineStatus Scenario::dispatch(const Args& a, const std::string& line, const std::string& where) {
  const std::string& cmd = a[0];
  LineStatus st = LineStatus::kOk;
  if (cmd == "boot") return cmd_boot(a, where);
  if (cmd == "echo") {
    out_ << line.substr(line.find("echo") + 4 + (line.size() > 4 ? 1 : 0)) << "\n";
    return st;
  }
  if (cmd == "let") {
    if (a.size() < 4 || a[2] != "=") return script_error(where, command_usage("let"));
    for (char c : a[1])
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
        return script_error(where, "bad name '" + a[1] + "' for let");
    std::string text = line.substr(line.find('=') + 1);
    ExprResult r = evaluate(text, vars_, [this](const std::string& p, std::string* e) { return value(p, e); });
    if (!r.ok) return script_error(where, r.error);
    vars_[a[1]] = r.value;
    out_ << "$" << a[1] << " = " << r.value << "\n";
    return st;
  }
  if (cmd == "expect") {
    if (a.size() < 2) return script_error(where, command_usage("expect"));
    std::string text = line.substr(line.find("expect") + 6);
    ExprResult r = evaluate(text, vars_, [this](const std::string& p, std::string* e) { return value(p, e); });
    if (!r.ok) return script_error(where, r.error);
    if (r.value != 0) {
      out_ << "ok\n";
      return st;
    }
    out_ << "FAILED" << (r.trace.empty() ? "" : " (" + r.trace + ")") << "\n";
    err_ << where << ": expect failed:" << text << (r.trace.empty() ? "" : "  [" + r.trace + "]") << "\n";
    return LineStatus::kExpectFailed;
  }
  {
    // Fault injection (scenario/fault_commands.h): process-wide, so it needs no machine.
    std::string ferr;
    if (auto r = fault_command(a, out_, &ferr)) return *r ? st : script_error(where, ferr);
  }
  if (!need_machine(where, &st)) return st;
  Kernel& k = *kernel_;
  if (cmd == "insmod" || cmd == "rmmod") {
    if (a.size() < 2) return script_error(where, command_usage(cmd));
    std::map<std::string, std::string> opt;
    std::string bad;
    if (!parse_options(a, 2, &opt, &bad)) return script_error(where, "bad option '" + bad + "'");
    ModuleError e;
    if (cmd == "insmod") {
      std::int64_t size = 16384;
      for (auto& [key, v] : opt) {
        if (key != "size") return script_error(where, "unknown insmod option '" + key + "'");
        if (!parse_number(v, &size)) return script_error(where, "bad size '" + v + "'");
      }
      e = k.insmod(a[1].c_str(), static_cast<std::uint64_t>(size));
      if (e == ModuleError::kOk) loaded_modules_.insert(a[1]);
    } else {
      if (!opt.empty()) return script_error(where, "rmmod takes no options");
      e = k.rmmod(a[1].c_str());
    }
    if (e != ModuleError::kOk)
      failed(fmt::format("{}: ERROR: could not {} module {}: {}", cmd, cmd == "insmod" ? "insert" : "remove", a[1],
                         module_error_text(e)));
    return st;
  }
  if (cmd == "lsmod") {
    out_ << "Module                  Size  Used by\n";
    for (unsigned o = kOwnerFirstModule; o < kOwnerUntracked; ++o) {
      const Module* m = k.modules().module(static_cast<owner_t>(o));
      if (m != nullptr && m->state == ModuleState::kLive)
        out_ << fmt::format("{:<19} {:>8}  0\n", m->name, m->core_size);
    }
    return st;
  }
  if (cmd == "kmalloc" || cmd == "kzalloc" || cmd == "vmalloc" || cmd == "alloc_pages") return cmd_alloc(a, where);
  if (cmd == "kfree" || cmd == "vfree" || cmd == "free_pages") return cmd_free(a, where);
  if (cmd == "krealloc") {
    if (a.size() != 3) return script_error(where, command_usage("krealloc"));
    auto it = blocks_.find(a[1]);
    if (it == blocks_.end() || it->second.kind != Block::Kind::kKmalloc)
      return script_error(where, "no kmalloc block labelled '" + a[1] + "'");
    std::int64_t size;
    if (!parse_number(a[2], &size)) return script_error(where, "bad size '" + a[2] + "'");
    void* q = k.krealloc(it->second.host, static_cast<std::size_t>(size), GFP_KERNEL, kOwnerKernel);
    if (q == nullptr) {
      failed("krealloc failed: " + alloc_failure_reason(static_cast<std::uint64_t>(size)) + " (the old block stays)");
      return st;
    }
    it->second.host = q;
    it->second.va = k.kva(q);
    it->second.size = static_cast<std::size_t>(size);
    out_ << fmt::format("{} = 0x{:08x} ({} bytes usable)\n", a[1], it->second.va, k.ksize(q));
    return st;
  }
  if (cmd == "idle") {
    std::uint64_t ns;
    if (a.size() != 2 || !parse_duration_ns(a[1], &ns))
      return script_error(where, command_usage("idle") + " (e.g. 5s, 250ms)");
    k.idle(ns);
    return st;
  }
  if (cmd == "gc") {
    k.collector().kick();
    k.idle(0);
    return st;
  }
  if (cmd == "protector") {
    ProtectorMode m;
    if (a.size() != 2 || !parse_protector_mode(a[1].c_str(), &m))
      return script_error(where, command_usage("protector"));
    k.set_protector(m);
    return st;
  }
  if (cmd == "cat") {
    if (a.size() != 2) return script_error(where, command_usage("cat"));
    std::vector<char> probe(16);
    TextSink sink(probe.data(), probe.size());
    if (!proc_read(k, a[1].c_str(), sink)) {
      // Views of the process models (/proc/PID/maps, kernel_page_tables...).
      if (auto r = k.config().mmu ? dispatch_mmu(a, line, where) : dispatch_nommu(a, line, where)) return *r;
      std::string known;
      for (const char* const* p = proc_paths(); *p; ++p) known += std::string(" ") + *p;
      return script_error(where, "no such file: " + a[1] + " (kmm provides:" + known + ", and each + .json)");
    }
    print_view(a[1]);
    return st;
  }
  if (cmd == "dmesg") {
    print_view("/proc/dmesg");
    return st;
  }
  if (cmd == "link") return cmd_link(a, where, true);
  if (cmd == "unlink") return cmd_link(a, where, false);
  if (cmd == "transfer" || cmd == "not_leak") {
    if ((cmd == "transfer" && a.size() != 3) || (cmd == "not_leak" && a.size() != 2))
      return script_error(where, command_usage(cmd));
    auto it = blocks_.find(a[1]);
    if (it == blocks_.end()) return script_error(where, "no block labelled '" + a[1] + "'");
    owner_t to = kOwnerKernel;
    if (cmd == "transfer" && !owner_arg(a[2], &to)) {
      failed(fmt::format("transfer: no module {} is loaded", a[2]));
      return st;
    }
    bool ok = it->second.kind == Block::Kind::kVmalloc ? k.transfer_vmalloc(it->second.va, to)
                                                       : k.transfer(it->second.host, to);
    if (!ok) failed(fmt::format("{}: {} is not a live block", cmd, a[1]));
    return st;
  }
  if (cmd == "check") {
    StackText<512> why;
    if (k.check_invariants(&why)) {
      out_ << "invariants hold\n";
      return st;
    }
    out_ << "INVARIANT BROKEN: " << why.data() << "\n";
    err_ << where << ": invariant broken: " << why.data() << "\n";
    return LineStatus::kExpectFailed;
  }
  if (cmd == "map") return cmd_map(a, where);
  {
    std::string perr;
    bool pfailed = false;
    if (auto r = persist_command(k, a, blocks_, out_, &perr, &pfailed)) {
      if (!*r) return script_error(where, perr);
      if (pfailed) last_failed_ = true;
      return st;
    }
  }
  if (cmd == "reboot") {
    BootConfig cfg = boot_cfg_;
    bool persistent = k.persistent();
    drop_models();
    k.shutdown();
    kernel_ = nullptr;
    if (!persistent) blocks_.clear();  // persistent RAM: blocks stay where they were
    BootError e;
    FaultPause pause;  // a `fail` line means the machine's work, not its boot
    kernel_ = Kernel::boot(cfg, &e);
    if (kernel_ == nullptr) return script_error(where, std::string("reboot failed: ") + e.what);
    kernel_->set_log_listener(log_to_transcript, &out_);
    reset_models();
    out_ << (persistent ? "machine rebooted (RAM is persistent: every block is where it was)\n"
                        : "machine rebooted (RAM is volatile: everything is gone)\n");
    persist_boot_banner(*kernel_, out_);
    return st;
  }
  if (auto r = k.config().mmu ? dispatch_mmu(a, line, where) : dispatch_nommu(a, line, where)) return *r;
  return script_error(where, unknown_command_error(cmd, k.config().mmu));
}

LineStatus Scenario::cmd_boot(const Args& a, const std::string& where) {
  std::map<std::string, std::string> opt;
  std::string bad;
  if (!parse_options(a, 1, &opt, &bad)) return script_error(where, "bad boot option '" + bad + "' (want key=value)");
  BootConfig cfg;
  for (auto& kv : opt) {
    // Not a structured binding: clang 14 cannot capture one in the lambda below.
    const std::string& key = kv.first;
    const std::string& v = kv.second;
    std::int64_t n = 0;
    auto number = [&](const char* what) {
      if (!parse_number(v, &n) || n < 0) {
        bad = fmt::format("bad {} '{}'", what, v);
        return false;
      }
      return true;
    };
    if (key == "ram") {
      if (!number("ram size")) return script_error(where, bad);
      cfg.ram_bytes = static_cast<std::uint64_t>(n);
    } else if (key == "phys_offset") {
      if (!number("phys_offset")) return script_error(where, bad);
      cfg.phys_offset = static_cast<std::uint64_t>(n);
    } else if (key == "page_offset") {
      // A virtual address: all 64 bits (pt=aarch64's lie above INT64_MAX, which an
      // expression's signed numbers cannot hold); mmu_boot_config checks it per format.
      if (!kmm::parse_size(v.data(), v.size(), &cfg.page_offset))
        return script_error(where, fmt::format("bad page_offset '{}'", v));
    } else if (key == "reserved") {
      if (!number("reserved size")) return script_error(where, bad);
      cfg.reserved_bytes = static_cast<std::uint64_t>(n);
    } else if (key == "kmalloc_max") {
      if (!number("kmalloc_max")) return script_error(where, bad);
      cfg.kmalloc_max = static_cast<std::uint64_t>(n);
    } else if (key == "min_free_kbytes") {
      if (!number("min_free_kbytes")) return script_error(where, bad);
      cfg.min_free_kbytes = n == 0 ? ~std::uint64_t{0} : static_cast<std::uint64_t>(n);
    } else if (key == "gc_slice") {
      if (!number("gc_slice (frames)") || n == 0 || n > 1 << 30) return script_error(where, "bad gc_slice '" + v + "'");
      cfg.gc_slice_pages = static_cast<std::uint32_t>(n);
    } else if (key == "gc_delay") {
      if (!parse_duration_ns(v, &cfg.gc_delay_ns))
        return script_error(where, "bad gc_delay '" + v + "' (e.g. 5s, 500ms)");
    } else if (key == "kmalloc") {
      if (v == "pow2")
        cfg.kmalloc = KmallocPolicy::kPow2;
      else if (v == "kmalloc2")
        cfg.kmalloc = KmallocPolicy::kKmalloc2;
      else
        return script_error(where, "kmalloc= takes pow2 or kmalloc2, not '" + v + "'");
    } else if (key == "protector") {
      if (!parse_protector_mode(v.c_str(), &cfg.protector))
        return script_error(where, "protector= takes " + protector_mode_words() + ", not '" + v + "'");
    } else if (key == "tracker") {
      if (v == "paper-table")
        cfg.paper_table = true;
      else if (v == "owner")
        cfg.paper_table = false;
      else
        return script_error(where, "tracker= takes owner or paper-table, not '" + v + "'");
    } else if (key == "cross_free") {
      if (v == "allow")
        cfg.cross_free = CrossFree::kAllow;
      else if (v == "report")
        cfg.cross_free = CrossFree::kReport;
      else if (v == "refuse")
        cfg.cross_free = CrossFree::kRefuse;
      else
        return script_error(where, "cross_free= takes allow, report or refuse, not '" + v + "'");
    } else if (key == "mmu") {
      if (v == "on")
        cfg.mmu = true;
      else if (v == "off")
        cfg.mmu = false;
      else
        return script_error(where, "mmu= takes on or off, not '" + v + "'");
    } else if (key == "pt") {
      if (v == "armv7")
        cfg.pt = PtFormat::kArmv7;
      else if (v == "aarch64")
        cfg.pt = PtFormat::kAarch64;
      else
        return script_error(where, "pt= takes armv7 or aarch64, not '" + v + "'");
    } else if (key == "tlb") {
      if (!number("tlb size (entries)") || n == 0 || n > 512)
        return script_error(where, "tlb= takes 1..512 entries, not '" + v + "'");
      cfg.tlb_entries = static_cast<unsigned>(n);
    } else if (key == "tlb_ways") {
      if (!number("tlb_ways") || n > 512) return script_error(where, "bad tlb_ways '" + v + "' (0: fully associative)");
      cfg.tlb_ways = static_cast<unsigned>(n);
    } else if (key == "page_alloc") {
      if (v == "buddy")
        cfg.page_alloc = PageAllocKind::kBuddy;
      else if (v == "range")
        cfg.page_alloc = PageAllocKind::kRange;
      else
        return script_error(where, "page_alloc= takes buddy or range, not '" + v + "'");
    } else if (key == "direction") {
      if (v == "seed")
        cfg.range_direction = RangeDirection::kSeed;
      else if (v == "source")
        cfg.range_direction = RangeDirection::kSource;
      else if (v == "bottom-up")
        cfg.range_direction = RangeDirection::kBottomUp;
      else
        return script_error(where, "direction= takes seed, source or bottom-up, not '" + v + "'");
    } else if (key == "region_record") {
      if (!number("region_record size") || n > 4096) return script_error(where, "bad region_record '" + v + "'");
      cfg.region_record_bytes = static_cast<std::uint32_t>(n);
    } else if (key == "backing") {
      cfg.backing = persist_intern_path(v);  // persistent RAM: scenario/persist_commands.cpp
    } else if (key == "format") {
      if (v != "yes" && v != "no") return script_error(where, "format= takes yes or no, not '" + v + "'");
    } else if (key == "boot_grace") {
      if (!parse_duration_ns(v, &cfg.boot_grace_ns))
        return script_error(where, "bad boot_grace '" + v + "' (e.g. 10s)");
    } else if (bool bad_value = false;
               set_hardening_option(&cfg.hardening, key.data(), key.size(), v.data(), v.size(), &bad_value) ||
               bad_value) {
      // slab/hardening.h: freelist_hardened, redzone, poison, guard_pages take on/off;
      // quarantine a size.
      if (bad_value) {
        return script_error(where, key == "quarantine" ? "quarantine= takes a size (0, 64K, 1M), not '" + v + "'"
                                                       : key + "= takes on or off, not '" + v + "'");
      }
    } else {
      return script_error(where, "unknown boot option '" + key + "'");
    }
  }
  if (cfg.mmu) {
    std::string mmu_error = mmu_boot_config(&cfg, opt.count("page_offset") != 0);
    if (!mmu_error.empty()) return script_error(where, mmu_error);
  }
  if (max_ram_ != 0 && cfg.ram_bytes > max_ram_)
    return script_error(where, fmt::format("ram={} is above this run's limit of {}", cfg.ram_bytes, kb(max_ram_)));
  if (kernel_ != nullptr) {
    drop_models();
    kernel_->shutdown();
    kernel_ = nullptr;
    blocks_.clear();
  }
  if (cfg.backing != nullptr && opt.count("format") != 0 && opt["format"] == "yes") {
    std::string perr;
    if (!persist_discard(cfg.backing, &perr)) return script_error(where, perr);
  }
  BootError e;
  FaultPause pause;  // a `fail` line means the machine's work, not its boot
  kernel_ = Kernel::boot(cfg, &e);
  if (kernel_ == nullptr) return script_error(where, std::string("boot failed: ") + e.what);
  boot_cfg_ = cfg;
  kernel_->set_log_listener(log_to_transcript, &out_);
  reset_models();
  persist_boot_banner(*kernel_, out_);
  std::uint64_t total_kb = kernel_->zone().managed_pages() * (kPageSize / 1024);
  out_ << fmt::format("Memory: {}K/{}K available ({}K reserved), kmalloc={}, protector={}, gc_delay={}ms\n", total_kb,
                      cfg.ram_bytes / 1024, cfg.ram_bytes / 1024 - total_kb,
                      cfg.kmalloc == KmallocPolicy::kPow2 ? "pow2" : "kmalloc2", protector_mode_name(cfg.protector),
                      cfg.gc_delay_ns / 1000000);
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_alloc(const Args& a, const std::string& where) {
  const std::string& cmd = a[0];
  std::string usage = command_usage(cmd);
  if (a.size() != 3 && a.size() != 5) return script_error(where, usage);
  std::string label;
  if (a.size() == 5) {
    if (a[3] != "as" || !label_ok(a[4])) return script_error(where, usage);
    label = a[4];
  }
  std::int64_t size;
  if (!parse_number(a[2], &size)) return script_error(where, "bad size '" + a[2] + "'");
  Kernel& k = *kernel_;
  owner_t o;
  if (!owner_arg(a[1], &o)) {
    failed(fmt::format("{}: no module {} is loaded (an owner is a loaded module or kernel)", cmd, a[1]));
    return LineStatus::kOk;
  }
  Block b{};
  b.size = static_cast<std::size_t>(size);
  if (cmd == "vmalloc") {
    b.kind = Block::Kind::kVmalloc;
    b.va = k.vmalloc(static_cast<std::size_t>(size), o);
    if (b.va == 0) {
      failed(fmt::format("vmalloc({}) failed: {}", size,
                         size == 0 ? "size 0" : alloc_failure_reason(static_cast<std::uint64_t>(size))));
      return LineStatus::kOk;
    }
    out_ << fmt::format("{}: vmalloc({}) = 0x{:08x}\n", a[1], size, b.va);
  } else if (cmd == "alloc_pages") {
    b.kind = Block::Kind::kPages;
    if (size > static_cast<std::int64_t>(kMaxOrder))
      return script_error(where, fmt::format("order {} above MAX_ORDER {}", size, kMaxOrder));
    b.host = k.alloc_pages(static_cast<unsigned>(size), GFP_KERNEL, o);
    b.size = kPageSize << size;
    if (b.host == nullptr) {
      failed(fmt::format("alloc_pages(order {}) failed: {}", size, alloc_failure_reason(b.size)));
      return LineStatus::kOk;
    }
    b.va = k.kva(b.host);
    out_ << fmt::format("{}: alloc_pages(order {}) = 0x{:08x}\n", a[1], size, b.va);
  } else {
    b.kind = Block::Kind::kKmalloc;
    b.host = cmd == "kzalloc" ? k.kzalloc(static_cast<std::size_t>(size), GFP_KERNEL, o)
                              : k.kmalloc(static_cast<std::size_t>(size), GFP_KERNEL, o);
    if (b.host == nullptr) {
      std::string why =
          static_cast<std::uint64_t>(size) > k.kmalloc_layer().max_size()
              ? fmt::format("larger than kmalloc's limit of {}", kb(k.kmalloc_layer().max_size()))
              : alloc_failure_reason(static_cast<std::uint64_t>(size) <= kKmallocMaxCacheSize
                                         ? kPageSize
                                         : k.kmalloc_layer().large_footprint(static_cast<std::size_t>(size)));
      failed(fmt::format("{}({}) failed: {}", cmd, size, why));
      return LineStatus::kOk;
    }
    if (b.host == ZERO_SIZE_PTR) {
      b.va = 16;
      out_ << fmt::format("{}: {}(0) = ZERO_SIZE_PTR\n", a[1], cmd);
    } else {
      b.va = k.kva(b.host);
      SlabAllocator::ObjectInfo info;
      std::string where_from =
          k.slab().lookup(b.host, &info) ? info.cache->name : fmt::format("{} pages", k.ksize(b.host) / kPageSize);
      out_ << fmt::format("{}: {}({}) = 0x{:08x} [{}]\n", a[1], cmd, size, b.va, where_from);
    }
  }
  if (!label.empty()) blocks_[label] = b;
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_free(const Args& a, const std::string& where) {
  const std::string& cmd = a[0];
  if (a.size() != 2 && !(a.size() == 4 && a[2] == "by")) return script_error(where, command_usage(cmd));
  auto it = blocks_.find(a[1]);
  if (it == blocks_.end()) return script_error(where, "no block labelled '" + a[1] + "'");
  Kernel& k = *kernel_;
  owner_t by = kOwnerKernel;
  if (a.size() == 4 && !owner_arg(a[3], &by)) {
    failed(fmt::format("{}: no module {} is loaded", cmd, a[3]));
    return LineStatus::kOk;
  }
  Block& b = it->second;
  bool ok;
  if (cmd == "vfree") {
    if (b.kind != Block::Kind::kVmalloc) return script_error(where, a[1] + " is not a vmalloc block");
    ok = k.vfree(b.va, by);
  } else if (cmd == "free_pages") {
    if (b.kind != Block::Kind::kPages) return script_error(where, a[1] + " is not an alloc_pages block");
    ok = k.free_pages(b.host, by);
  } else {
    if (b.kind != Block::Kind::kKmalloc) return script_error(where, a[1] + " is not a kmalloc block");
    ok = k.kfree(b.host, by);
  }
  if (!ok) {
    last_failed_ = true;
    out_ << cmd << " " << a[1] << ": refused\n";
  }
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_link(const Args& a, const std::string& where, bool set) {
  std::string usage = command_usage(set ? "link" : "unlink");
  std::size_t nargs = set ? 3 : 2;
  if (a.size() != nargs && a.size() != nargs + 1) return script_error(where, usage);
  std::int64_t offset = 0;
  if (a.size() == nargs + 1) {
    if (a.back().rfind("offset=", 0) != 0 || !parse_number(a.back().substr(7), &offset))
      return script_error(where, usage);
  }
  auto from = blocks_.find(a[1]);
  if (from == blocks_.end()) return script_error(where, "no block labelled '" + a[1] + "'");
  if (from->second.kind == Block::Kind::kVmalloc)
    return script_error(where, "link FROM must be a kmalloc or page block");
  std::uintptr_t value = 0;
  if (set) {
    auto to = blocks_.find(a[2]);
    if (to == blocks_.end()) return script_error(where, "no block labelled '" + a[2] + "'");
    value = to->second.kind == Block::Kind::kVmalloc ? static_cast<std::uintptr_t>(to->second.va)
                                                     : reinterpret_cast<std::uintptr_t>(to->second.host);
  }
  std::size_t usable = kernel_->ksize(from->second.host);
  if (offset < 0 || static_cast<std::size_t>(offset) + sizeof(void*) > usable) {
    failed(fmt::format("{}: offset {} is outside {} ({} usable bytes)", a[0], offset, a[1], usable));
    return LineStatus::kOk;
  }
  std::memcpy(static_cast<char*>(from->second.host) + offset, &value, sizeof value);
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_map(const Args& a, const std::string& where) {
  Kernel& k = *kernel_;
  std::uint64_t ram = k.phys().size();
  std::int64_t scale = 20 * 1024;
  bool given = false;
  for (std::size_t i = 1; i < a.size(); ++i) {
    if (a[i].rfind("scale=", 0) != 0 || !parse_number(a[i].substr(6), &scale) ||
        scale < static_cast<std::int64_t>(kPageSize) || scale % static_cast<std::int64_t>(kPageSize) != 0)
      return script_error(where, command_usage("map") + " (a multiple of 4K)");
    given = true;
  }
  if (!given && ram / static_cast<std::uint64_t>(scale) > 100) {
    // Keep a big machine's picture on one screen: about 100 characters.
    std::uint64_t s = (ram / 100 + kPageSize - 1) / kPageSize * kPageSize;
    scale = static_cast<std::int64_t>(s);
  }
  std::uint64_t cell = static_cast<std::uint64_t>(scale);
  std::uint64_t cells = (ram + cell - 1) / cell;
  std::uint64_t per_tick = 5;  // a ruler mark every 5 characters (100 KB at 20K)
  std::string picture, ruler = "   -", labels = "    ";
  for (std::uint64_t c = 0; c < cells; ++c) {
    if (c % per_tick == 0) {
      picture += '|';
      ruler += '+';
    }
    bool used = false;
    pfn_t first = k.phys().base_pfn() + static_cast<pfn_t>(c * cell / kPageSize);
    pfn_t last = k.phys().base_pfn() + static_cast<pfn_t>(std::min(ram, (c + 1) * cell) / kPageSize);
    for (pfn_t pfn = first; pfn < last && !used; ++pfn) used = !k.zone().frame_is_free(pfn);
    picture += used ? 'X' : '-';
    ruler += '-';
  }
  picture += '|';
  ruler += "+--";
  std::uint64_t unit = cell * per_tick;
  for (std::uint64_t t = 0; t * per_tick <= cells; ++t) {
    std::uint64_t at = 4 + t * (per_tick + 1);
    std::uint64_t v = t * unit;
    std::string lab = v % (1024 * 1024) == 0 && v != 0 && unit >= 1024 * 1024 ? fmt::format("{}M", v >> 20)
                                                                              : fmt::format("{}", v / 1024);
    std::uint64_t start = at - (lab.size() - 1) / 2;
    if (labels.size() < start) labels.append(start - labels.size(), ' ');
    if (labels.size() > start) continue;
    labels += lab;
  }
  out_ << fmt::format("physical memory, one character per {} (X used, - free), ruler in {}:\n", kb(cell),
                      unit >= 1024 * 1024 ? "kB or M" : "kB");
  out_ << labels << "\n" << ruler << "\n    " << picture << "\n";
  out_ << fmt::format("free {} in all, largest free block {}\n", kb(k.zone().free_pages() * kPageSize),
                      kb(k.zone().largest_free_block() * kPageSize));
  return LineStatus::kOk;
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
  if (head == "slabinfo") {
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
      *error = "slabinfo field '" + field +
               "' unknown (active_objs, num_objs, objsize, objperslab, pagesperslab, num_slabs)";
      return std::nullopt;
    }
    *error = "no slab cache '" + cache + "'";
    return std::nullopt;
  }
  if (head == "module") {
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
  // Labels of kernel blocks here; other labels (process blocks) fall through to the models.
  if ((head == "ksize" || head == "footprint") && blocks_.count(rest) != 0) {
    auto it = blocks_.find(rest);
    const Block& b = it->second;
    if (b.kind == Block::Kind::kVmalloc) {
      const VmArea* v = k.vmalloc_space().find(b.va);
      if (v == nullptr || v->addr != b.va) return 0;
      std::uint64_t bytes = std::uint64_t{v->nr_pages} * kPageSize;
      return as_int(head == "ksize" ? bytes : bytes + sizeof(VmArea) + v->nr_pages * sizeof(pfn_t));
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

}  // namespace kmm::sim

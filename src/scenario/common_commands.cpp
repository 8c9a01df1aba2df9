// kmm/scenario/common_commands.cpp — the scenario commands of any booted machine (family
// common): boot and reboot, modules, the kernel allocators and their frees, links between
// blocks, the clock and the collector, the protector's mode, /proc views, the memory map and
// the invariant check; and the family's table.
//
// Depends on: kernel/, persist/heap_file.h (boot, reboot), proc/, protect/protector_mode.h,
// scenario/ (the interpreter, its argument helpers, boot_options.h for boot's keys,
// persist_commands.h for backed boots), fmt.
// Invariants: a handler runs only on a booted machine (boot aside: CommandWhen::kAnyTime);
// a failure of the machine sets last.failed through failed() and the run goes on; a wrong
// line is a script_error.
#include <fmt/format.h>

#include <cstring>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "base/text.h"
#include "base/units.h"
#include "persist/heap_file.h"
#include "proc/proc.h"
#include "protect/protector_mode.h"
#include "scenario/boot_options.h"
#include "scenario/command_table.h"
#include "scenario/expr.h"
#include "scenario/fault_commands.h"
#include "scenario/persist_commands.h"
#include "scenario/scenario.h"
#include "scenario/script_args.h"

namespace kmm::scenario {
namespace {

// The kernel log into the transcript, as a console would print it.
void log_to_transcript(void* arg, const char* line, std::size_t len) {
  static_cast<std::ostream*>(arg)->write(line, static_cast<std::streamsize>(len));
}

// "protector off|report|reclaim|reclaim-unreachable", from the one list of mode names.
constexpr ProtectorModeText kProtectorUsage = protector_mode_text("protector ");

}  // namespace

LineStatus Scenario::cmd_boot(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& where = c.where;
  std::map<std::string, std::string> opt;
  std::string bad;
  if (!parse_options(a, 1, &opt, &bad)) return script_error(where, "bad boot option '" + bad + "' (want key=value)");
  BootConfig cfg;
  for (auto& [key, v] : opt) {  // the keys in std::map's order: the first bad one is reported
    const BootOptionRow* row = find_boot_option(key);
    if (row == nullptr) return script_error(where, "unknown boot option '" + key + "'");
    std::string error = apply_boot_option(*row, v, &cfg);
    if (!error.empty()) return script_error(where, error);
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
  FaultPause pause;                 // a `fail` line means the machine's work, not its boot
  kernel_ = persist_boot(cfg, &e);  // persistent RAM (persist/heap_file.h) or not
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
  // SlabAllocator::init holds at most a quarter of RAM in the quarantine, and none when its
  // ring finds no memory: said here, as the preload says it (shim/alloc.cpp), not silently.
  if (const std::uint64_t asked = cfg.hardening.quarantine_bytes,
      held = kernel_->slab().config().hardening.quarantine_bytes;
      held != asked) {
    out_ << (held != 0 ? fmt::format("warning: quarantine={} is more than a quarter of RAM; the quarantine holds at "
                                     "most {} bytes\n",
                                     asked, held)
                       : fmt::format("warning: quarantine={}: no memory for its ring; the machine runs without a "
                                     "quarantine\n",
                                     asked));
  }
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_alloc(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& where = c.where;
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
  b.owner = o;
  if (cmd == "vmalloc") {
    b.kind = Block::Kind::kVmalloc;
    b.va = k.vmalloc(static_cast<std::size_t>(size), o);
    if (b.va == 0) {
      failed(fmt::format("vmalloc({}) failed: {}", size,
                         size == 0 ? "size 0" : vmalloc_failure_reason(static_cast<std::uint64_t>(size))));
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
                                         : k.kmalloc_layer().large_footprint(static_cast<std::size_t>(size)),
                                     static_cast<std::uint64_t>(size));
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

// Whose the memory a label names is now (kOwnerFree: nobody's, free); for a vmalloc label,
// the owner of the area that starts at its address.
owner_t Scenario::owner_now(const Block& b) {
  Kernel& k = *kernel_;
  if (b.kind == Block::Kind::kVmalloc) {
    const VmArea* v = k.vmalloc_space().find(b.va);
    return v != nullptr && v->addr == b.va ? v->owner : kOwnerFree;
  }
  return zero_or_null(b.host) ? kOwnerFree : k.owner_of(b.host);
}

// A label whose block is gone — freed through it, or reclaimed by the collector (its memory's
// owner is not the label's) — while its memory is someone's again: a command through the label
// would act on that other block (a script's use after free; Linux would do it). Why, or ""
// when the label may be used: its own block, or memory that is free (the allocator then
// reports the double free, which is what scripts that free twice show).
std::string Scenario::stale_label(const std::string& label, const Block& b) {
  if (b.kind == Block::Kind::kKmalloc && zero_or_null(b.host)) return "";
  const owner_t now = owner_now(b);
  if ((!b.freed && now == b.owner) || now == kOwnerFree) return "";
  for (const auto& [name, other] : blocks_) {
    const bool same_memory = b.kind == Block::Kind::kVmalloc
                                 ? other.kind == Block::Kind::kVmalloc && other.va == b.va
                                 : other.kind != Block::Kind::kVmalloc && other.host == b.host;
    if (name != label && same_memory && !other.freed && owner_now(other) == other.owner)
      return fmt::format("{} was {}, and its memory is {}'s now", label, b.freed ? "freed" : "reclaimed", name);
  }
  return fmt::format("{} was {}, and its memory was handed out again", label, b.freed ? "freed" : "reclaimed");
}

LineStatus Scenario::cmd_free(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& where = c.where;
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
  if (std::string why = stale_label(a[1], b); !why.empty()) {
    failed(fmt::format("{} {}: {}: a free through it would free that block (use after free); refused", cmd, a[1], why));
    return LineStatus::kOk;
  }
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
  b.freed = b.freed || ok;
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_link(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& where = c.where;
  const bool set = a[0] == "link";
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
  if (std::string why = stale_label(a[1], from->second); !why.empty()) {
    failed(fmt::format("{} {}: {}: it would write into that block; refused", a[0], a[1], why));
    return LineStatus::kOk;
  }
  std::uintptr_t value = 0;
  if (set) {
    auto to = blocks_.find(a[2]);
    if (to == blocks_.end()) return script_error(where, "no block labelled '" + a[2] + "'");
    value = to->second.kind == Block::Kind::kVmalloc ? static_cast<std::uintptr_t>(to->second.va)
                                                     : reinterpret_cast<std::uintptr_t>(to->second.host);
  }
  std::size_t usable = kernel_->ksize(from->second.host);
  // A block that is gone (kfree'd, or reclaimed by the collector) has 0 usable bytes: say it
  // is gone, not that the offset is outside it.
  if (usable == 0 && !zero_or_null(from->second.host)) {
    failed(fmt::format("{}: '{}' is no longer a live block ({})", a[0], a[1],
                       from->second.freed ? "freed" : "reclaimed by the collector, or freed"));
    return LineStatus::kOk;
  }
  if (offset < 0 || static_cast<std::size_t>(offset) + sizeof(void*) > usable) {
    failed(fmt::format("{}: offset {} is outside {} ({} usable bytes)", a[0], offset, a[1], usable));
    return LineStatus::kOk;
  }
  std::memcpy(static_cast<char*>(from->second.host) + offset, &value, sizeof value);
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_map(const CommandCall& call) {
  const Args& a = call.a;
  const std::string& where = call.where;
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

LineStatus Scenario::cmd_reboot(const CommandCall& c) {
  Kernel& k = *kernel_;
  BootConfig cfg = boot_cfg_;
  bool persistent = k.persistent();
  drop_models();
  k.shutdown();
  kernel_ = nullptr;
  if (!persistent) blocks_.clear();  // persistent RAM: blocks stay where they were
  BootError e;
  FaultPause pause;                 // a `fail` line means the machine's work, not its boot
  kernel_ = persist_boot(cfg, &e);  // persistent RAM (persist/heap_file.h) or not
  if (kernel_ == nullptr) return script_error(c.where, std::string("reboot failed: ") + e.what);
  kernel_->set_log_listener(log_to_transcript, &out_);
  reset_models();
  out_ << (persistent ? "machine rebooted (RAM is persistent: every block is where it was)\n"
                      : "machine rebooted (RAM is volatile: everything is gone)\n");
  persist_boot_banner(*kernel_, out_);
  return LineStatus::kOk;
}

// insmod NAME [size=N] and rmmod NAME.
LineStatus Scenario::cmd_module(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& cmd = a[0];
  const std::string& where = c.where;
  Kernel& k = *kernel_;
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
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_lsmod(const CommandCall&) {
  Kernel& k = *kernel_;
  out_ << "Module                  Size  Used by\n";
  for (unsigned o = kOwnerFirstModule; o < kOwnerUntracked; ++o) {
    const Module* m = k.modules().module(static_cast<owner_t>(o));
    if (m != nullptr && m->state == ModuleState::kLive) out_ << fmt::format("{:<19} {:>8}  0\n", m->name, m->core_size);
  }
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_krealloc(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& where = c.where;
  Kernel& k = *kernel_;
  if (a.size() != 3) return script_error(where, command_usage("krealloc"));
  auto it = blocks_.find(a[1]);
  if (it == blocks_.end() || it->second.kind != Block::Kind::kKmalloc)
    return script_error(where, "no kmalloc block labelled '" + a[1] + "'");
  std::int64_t size;
  if (!parse_number(a[2], &size)) return script_error(where, "bad size '" + a[2] + "'");
  if (std::string why = stale_label(a[1], it->second); !why.empty()) {
    failed(fmt::format("krealloc {}: {}: it would move that block (use after free); refused", a[1], why));
    return LineStatus::kOk;
  }
  // A block freed meanwhile (by a kfree, or reclaimed by the collector): krealloc reports it
  // and fails, and that is the reason to print, not memory. A zero-size block has no owner
  // of its own: it grows into a block of the label's owner while that module is live (asked
  // as the kernel it became the kernel's, and the module's leak escaped the protector). A
  // block keeps its owner otherwise; a gone module's moved block becomes the caller's, the
  // kernel's (Kmalloc::krealloc).
  const bool live = zero_or_null(it->second.host) || k.ksize(it->second.host) != 0;
  const bool was_zero = it->second.host == ZERO_SIZE_PTR;
  const Module* m = k.modules().module(it->second.owner);
  const owner_t asker = was_zero && m != nullptr && m->state == ModuleState::kLive ? it->second.owner : kOwnerKernel;
  void* q = k.krealloc(it->second.host, static_cast<std::size_t>(size), GFP_KERNEL, asker);
  if (q == nullptr) {
    failed(live
               ? "krealloc failed: " + alloc_failure_reason(static_cast<std::uint64_t>(size)) + " (the old block stays)"
               : "krealloc failed: '" + a[1] + "' is no longer a live block (freed or reclaimed: reported above)");
    return LineStatus::kOk;
  }
  it->second.host = q;
  it->second.size = static_cast<std::size_t>(size);
  if (q == ZERO_SIZE_PTR) {  // krealloc(p, 0) freed p (as kmalloc(0) names it: cmd_alloc)
    it->second.va = 16;
    out_ << fmt::format("{} = ZERO_SIZE_PTR{}\n", a[1], was_zero ? "" : " (krealloc to 0 bytes freed the block)");
    return LineStatus::kOk;
  }
  it->second.owner = k.owner_of(q);  // a gone module's block moved becomes the caller's
  it->second.va = k.kva(q);
  out_ << fmt::format("{} = 0x{:08x} ({} bytes usable)\n", a[1], it->second.va, k.ksize(q));
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_idle(const CommandCall& c) {
  std::uint64_t ns;
  if (c.a.size() != 2 || !parse_duration_ns(c.a[1], &ns))
    return script_error(c.where, command_usage("idle") + " (e.g. 5s, 250ms)");
  kernel_->idle(ns);
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_gc(const CommandCall&) {
  kernel_->collector().kick();
  kernel_->idle(0);
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_protector(const CommandCall& c) {
  ProtectorMode m;
  if (c.a.size() != 2 || !parse_protector_mode(c.a[1].c_str(), &m))
    return script_error(c.where, command_usage("protector"));
  kernel_->set_protector(m);
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_cat(const CommandCall& c) {
  const Args& a = c.a;
  if (a.size() != 2) return script_error(c.where, command_usage("cat"));
  std::vector<char> probe(16);
  TextSink sink(probe.data(), probe.size());
  if (!proc_read(*kernel_, a[1].c_str(), sink)) {
    // Views of the process models (/proc/PID/maps, kernel_page_tables...).
    if (kernel_->config().mmu)
      if (auto r = mmu_view(c)) return *r;
    std::string known;
    for (const char* const* p = proc_paths(); *p; ++p) known += std::string(" ") + *p;
    // The MMU model's views are text only (mmu_view): listed after the .json ones.
    std::string mmu_views = kernel_->config().mmu ? "; on this MMU machine also /proc/tlb, /proc/PROC/maps, "
                                                    "/sys/kernel/debug/kernel_page_tables (no .json)"
                                                  : "";
    return script_error(c.where,
                        "no such file: " + a[1] + " (kmm provides:" + known + ", and each + .json" + mmu_views + ")");
  }
  print_view(a[1]);
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_dmesg(const CommandCall&) {
  print_view("/proc/dmesg");
  return LineStatus::kOk;
}

// transfer LABEL OWNER and not_leak LABEL.
LineStatus Scenario::cmd_transfer(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& cmd = a[0];
  Kernel& k = *kernel_;
  if ((cmd == "transfer" && a.size() != 3) || (cmd == "not_leak" && a.size() != 2))
    return script_error(c.where, command_usage(cmd));
  auto it = blocks_.find(a[1]);
  if (it == blocks_.end()) return script_error(c.where, "no block labelled '" + a[1] + "'");
  owner_t to = kOwnerKernel;
  if (cmd == "transfer" && !owner_arg(a[2], &to)) {
    failed(fmt::format("transfer: no module {} is loaded", a[2]));
    return LineStatus::kOk;
  }
  if (std::string why = stale_label(a[1], it->second); !why.empty()) {
    failed(fmt::format("{} {}: {}: it would hand that block on; refused", cmd, a[1], why));
    return LineStatus::kOk;
  }
  bool ok = it->second.kind == Block::Kind::kVmalloc ? k.transfer_vmalloc(it->second.va, to)
                                                     : k.transfer(it->second.host, to);
  if (!ok) failed(fmt::format("{}: {} is not a live block", cmd, a[1]));
  if (ok) it->second.owner = owner_now(it->second);
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_check(const CommandCall& c) {
  StackText<512> why;
  if (kernel_->check_invariants(&why)) {
    const std::string mmu = mmu_invariants();
    if (mmu.empty()) {
      out_ << "invariants hold\n";
      return LineStatus::kOk;
    }
    why.clear();
    why.str(mmu.c_str());
  }
  out_ << "INVARIANT BROKEN: " << why.data() << "\n";
  err_ << c.where << ": invariant broken: " << why.data() << "\n";
  return LineStatus::kExpectFailed;
}

std::span<const CommandRow> CommandTables::common() {
  using F = CommandFamily;
  static constexpr CommandRow kRows[] = {
      {"boot", "boot [KEY=VALUE...]",
       "boot a machine (ram=, mmu=on|off, pt=, page_alloc=, kmalloc=, protector=, gc_delay=, backing= ...)", F::kCommon,
       &Scenario::cmd_boot, CommandWhen::kAnyTime},
      {"reboot", "reboot", "restart the machine with the same options; persistent RAM keeps its blocks", F::kCommon,
       &Scenario::cmd_reboot},
      {"insmod", "insmod NAME [size=N]", "load a module", F::kCommon, &Scenario::cmd_module},
      {"rmmod", "rmmod NAME", "unload a module; what it still owns is a leak for the protector", F::kCommon,
       &Scenario::cmd_module},
      {"lsmod", "lsmod", "list the loaded modules", F::kCommon, &Scenario::cmd_lsmod},
      {"kmalloc", "kmalloc OWNER SIZE [as LABEL]", "allocate from kmalloc; OWNER is a loaded module or kernel",
       F::kCommon, &Scenario::cmd_alloc},
      {"kzalloc", "kzalloc OWNER SIZE [as LABEL]", "kmalloc, zeroed", F::kCommon, &Scenario::cmd_alloc},
      {"vmalloc", "vmalloc OWNER SIZE [as LABEL]", "allocate a virtually contiguous area", F::kCommon,
       &Scenario::cmd_alloc},
      {"alloc_pages", "alloc_pages OWNER ORDER [as LABEL]", "allocate 2^ORDER pages with an owner", F::kCommon,
       &Scenario::cmd_alloc},
      {"kfree", "kfree LABEL [by OWNER]", "free a kmalloc block (by: who frees, checked under cross_free=)", F::kCommon,
       &Scenario::cmd_free},
      {"vfree", "vfree LABEL [by OWNER]", "free a vmalloc area", F::kCommon, &Scenario::cmd_free},
      {"free_pages", "free_pages LABEL [by OWNER]", "free an alloc_pages block", F::kCommon, &Scenario::cmd_free},
      {"krealloc", "krealloc LABEL SIZE", "resize a kmalloc block, keeping its contents and owner", F::kCommon,
       &Scenario::cmd_krealloc},
      {"idle", "idle DURATION", "advance the clock; the idle loop runs the collector when it is due", F::kCommon,
       &Scenario::cmd_idle},
      {"gc", "gc", "run a collector pass now (the rate limit aside)", F::kCommon, &Scenario::cmd_gc},
      {"protector", kProtectorUsage.text, "change the protector's mode", F::kCommon, &Scenario::cmd_protector},
      {"cat", "cat PATH",
       "a view: /proc/meminfo, buddyinfo, slabinfo, modules, allocinfo, vmallocinfo, /proc/dmesg, "
       "/sys/kernel/debug/kmemleak ...; PATH.json for JSON (not the MMU views /proc/tlb, /proc/PROC/maps, "
       "kernel_page_tables)",
       F::kCommon, &Scenario::cmd_cat},
      {"dmesg", "dmesg", "the kernel log", F::kCommon, &Scenario::cmd_dmesg},
      {"link", "link FROM TO [offset=N]", "write block TO's address into block FROM: FROM now references TO",
       F::kCommon, &Scenario::cmd_link},
      {"unlink", "unlink FROM [offset=N]", "clear what link wrote", F::kCommon, &Scenario::cmd_link},
      {"transfer", "transfer LABEL OWNER", "hand a block to another owner (a module, or kernel)", F::kCommon,
       &Scenario::cmd_transfer},
      {"not_leak", "not_leak LABEL", "kmemleak_not_leak: the block becomes the kernel's", F::kCommon,
       &Scenario::cmd_transfer},
      {"map", "map [scale=SIZE]", "physical memory, one character per scale: X used, - free", F::kCommon,
       &Scenario::cmd_map},
      {"check", "check", "run every invariant check; a broken one counts as a failed expect", F::kCommon,
       &Scenario::cmd_check},
  };
  return kRows;
}

}  // namespace kmm::scenario

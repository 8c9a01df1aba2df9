// kmm/scenario/boot_options.cpp — the rows of the scenario `boot` options (boot_options.h),
// their lookup, and the one reader of a value per kind.
#include "scenario/boot_options.h"

#include <fmt/format.h>

#include <cstring>
#include <limits>

#include "base/units.h"
#include "kernel/boot_settings.h"
#include "protect/protector_mode.h"
#include "scenario/expr.h"
#include "scenario/persist_commands.h"
#include "slab/hardening.h"

namespace kmm::scenario {
namespace {

using T = BootOptionKind;
constexpr std::int64_t kAny = std::numeric_limits<std::int64_t>::max();

// A hardening key: set by set_hardening_option, by name (no setter of its own).
constexpr BootOptionRow hardening_row(const BootSetting& s, BootOptionKind kind, const char* bad_value = nullptr) {
  return {s.boot_key, kind, s.syntax, s.machine_default, s.machine_help, bad_value, 0, 0, nullptr};
}

const BootOptionRow kRows[] = {
    // Numbers (scenario/expr.h's parse_number), addresses and durations.
    {kBootSettingRam.boot_key, T::kNumber, kBootSettingRam.syntax, kBootSettingRam.machine_default,
     kBootSettingRam.machine_help, "bad ram size '{}'", 0, kAny,
     [](BootConfig* c, std::uint64_t n, const std::string&) { c->ram_bytes = n; }},
    {"phys_offset", T::kNumber, "ADDRESS", "0", "physical address of the first byte of RAM", "bad phys_offset '{}'", 0,
     kAny, [](BootConfig* c, std::uint64_t n, const std::string&) { c->phys_offset = n; }},
    // A virtual address: all 64 bits (pt=aarch64's lie above INT64_MAX, which an expression's
    // signed numbers cannot hold); mmu_boot_config checks it per format.
    {"page_offset", T::kAddress, "ADDRESS", "0xC0000000",
     "virtual address of the direct map (pt=aarch64: 0xffff000000000000, or 2M-aligned in the TTBR1 half)",
     "bad page_offset '{}'", 0, 0, [](BootConfig* c, std::uint64_t n, const std::string&) { c->page_offset = n; }},
    {"reserved", T::kNumber, "SIZE", "0",
     "boot memory reserved in all (kernel image, mem_map, the kernel's structures); MemTotal is RAM minus this",
     "bad reserved size '{}'", 0, kAny,
     [](BootConfig* c, std::uint64_t n, const std::string&) { c->reserved_bytes = n; }},
    {"kmalloc_max", T::kNumber, "SIZE", "0", "largest kmalloc size (0: the policy's default)", "bad kmalloc_max '{}'",
     0, kAny, [](BootConfig* c, std::uint64_t n, const std::string&) { c->kmalloc_max = n; }},
    // BootConfig's 0 is Linux's formula, which no typed value gives: a typed 0 turns the
    // watermarks off.
    {"min_free_kbytes", T::kNumber, "N", nullptr,
     "the free-memory reserve in KiB (0: watermarks off; unset: Linux's formula)", "bad min_free_kbytes '{}'", 0, kAny,
     [](BootConfig* c, std::uint64_t n, const std::string&) { c->min_free_kbytes = n == 0 ? ~std::uint64_t{0} : n; }},
    {"gc_slice", T::kNumber, "FRAMES", "256", "the collector's work per idle slice, in frames", "bad gc_slice '{}'", 1,
     std::int64_t{1} << 30,
     [](BootConfig* c, std::uint64_t n, const std::string&) { c->gc_slice_pages = static_cast<std::uint32_t>(n); }},
    {kBootSettingGcDelay.boot_key, T::kDuration, kBootSettingGcDelay.syntax, kBootSettingGcDelay.machine_default,
     kBootSettingGcDelay.machine_help, "bad gc_delay '{}' (e.g. 5s, 500ms)", 0, 0,
     [](BootConfig* c, std::uint64_t n, const std::string&) { c->gc_delay_ns = n; }},
    {"tlb", T::kNumber, "N", "64", "entries of the TLB", "tlb= takes 1..512 entries, not '{}'", 1, 512,
     [](BootConfig* c, std::uint64_t n, const std::string&) { c->tlb_entries = static_cast<unsigned>(n); }},
    {"tlb_ways", T::kNumber, "N", "0", "ways of the TLB (0: fully associative)",
     "bad tlb_ways '{}' (0: fully associative)", 0, 512,
     [](BootConfig* c, std::uint64_t n, const std::string&) { c->tlb_ways = static_cast<unsigned>(n); }},
    {"region_record", T::kNumber, "BYTES", "0", "NOMMU per-mmap record size (0: the model's default)",
     "bad region_record '{}'", 0, 4096,
     [](BootConfig* c, std::uint64_t n, const std::string&) {
       c->region_record_bytes = static_cast<std::uint32_t>(n);
     }},
    {"boot_grace", T::kDuration, "DURATION", "0",
     "after an attach, how long dormant modules wait before what they own is collected (0: until boot_complete)",
     "bad boot_grace '{}' (e.g. 10s)", 0, 0,
     [](BootConfig* c, std::uint64_t n, const std::string&) { c->boot_grace_ns = n; }},
    // Choices: the words once, in syntax; the setter takes the word's index.
    {"kmalloc", T::kChoice, "pow2|kmalloc2", "pow2", "kmalloc's size classes", nullptr, 0, 0,
     [](BootConfig* c, std::uint64_t i, const std::string&) {
       c->kmalloc = i == 0 ? KmallocPolicy::kPow2 : KmallocPolicy::kKmalloc2;
     }},
    {kBootSettingProtector.boot_key, T::kChoice, kBootSettingProtector.syntax, kBootSettingProtector.machine_default,
     kBootSettingProtector.machine_help, nullptr, 0, 0,
     [](BootConfig* c, std::uint64_t, const std::string& v) { parse_protector_mode(v.c_str(), &c->protector); }},
    {"tracker", T::kChoice, "owner|paper-table", "owner",
     "the collector's record of owners: owner bytes, or the paper's 10,000-record table (no "
     "reachability scan: only protector=reclaim frees)",
     nullptr, 0, 0, [](BootConfig* c, std::uint64_t i, const std::string&) { c->paper_table = i == 1; }},
    {"cross_free", T::kChoice, "allow|report|refuse", "allow", "a free by a module that does not own the block",
     nullptr, 0, 0,
     [](BootConfig* c, std::uint64_t i, const std::string&) {
       c->cross_free = i == 0 ? CrossFree::kAllow : i == 1 ? CrossFree::kReport : CrossFree::kRefuse;
     }},
    {"mmu", T::kChoice, "on|off", "on", "a machine with an MMU, or a NOMMU (uClinux) one", nullptr, 0, 0,
     [](BootConfig* c, std::uint64_t i, const std::string&) { c->mmu = i == 0; }},
    {"pt", T::kChoice, "armv7|aarch64", "armv7", "the page-table format", nullptr, 0, 0,
     [](BootConfig* c, std::uint64_t i, const std::string&) {
       c->pt = i == 0 ? PtFormat::kArmv7 : PtFormat::kAarch64;
     }},
    {"page_alloc", T::kChoice, "buddy|range", "buddy", "the page allocator", nullptr, 0, 0,
     [](BootConfig* c, std::uint64_t i, const std::string&) {
       c->page_alloc = i == 0 ? PageAllocKind::kBuddy : PageAllocKind::kRange;
     }},
    {"direction", T::kChoice, "seed|source|bottom-up", "seed", "the range allocator's placement", nullptr, 0, 0,
     [](BootConfig* c, std::uint64_t i, const std::string&) {
       c->range_direction = i == 0   ? RangeDirection::kSeed
                            : i == 1 ? RangeDirection::kSource
                                     : RangeDirection::kBottomUp;
     }},
    // Persistent RAM (docs/PERSISTENCE.md); cmd_boot reads format= itself.
    {"backing", T::kPath, "FILE", nullptr, "persistent RAM: the heap file (unset: volatile RAM)", nullptr, 0, 0,
     [](BootConfig* c, std::uint64_t, const std::string& v) { c->backing = persist_intern_path(v); }},
    {"format", T::kChoice, "yes|no", "no",
     "with backing=: start afresh, removing the heap file first if it is empty or a kmm heap", nullptr, 0, 0,
     [](BootConfig*, std::uint64_t, const std::string&) {}},
    // Hardening (slab/hardening.h, docs/RELIABILITY.md): set_hardening_option reads them.
    hardening_row(kBootSettingFreelistHardened, T::kOnOff),
    hardening_row(kBootSettingRedzone, T::kOnOff),
    hardening_row(kBootSettingPoison, T::kOnOff),
    hardening_row(kBootSettingGuardPages, T::kOnOff),
    hardening_row(kBootSettingQuarantine, T::kSize, "quarantine= takes a size up to 1G (0, 64K, 1M), not '{}'"),
};

constexpr std::size_t kNrRows = sizeof kRows / sizeof kRows[0];

// The index of v among syntax's '|'-separated words, or -1.
long choice_index(const char* syntax, const std::string& v) {
  long i = 0;
  for (const char* p = syntax;; ++i) {
    const char* end = std::strchr(p, '|');
    std::size_t len = end != nullptr ? static_cast<std::size_t>(end - p) : std::strlen(p);
    if (v.size() == len && v.compare(0, len, p, len) == 0) return i;
    if (end == nullptr) return -1;
    p = end + 1;
  }
}

// "a, b or c" from "a|b|c".
std::string choice_words(const char* syntax) {
  std::string out;
  for (const char* p = syntax;;) {
    const char* end = std::strchr(p, '|');
    std::size_t len = end != nullptr ? static_cast<std::size_t>(end - p) : std::strlen(p);
    out.append(p, len);
    if (end == nullptr) return out;
    p = end + 1;
    out += std::strchr(p, '|') != nullptr ? ", " : " or ";
  }
}

std::string bad(const BootOptionRow& row, const std::string& v) {
  if (row.bad_value != nullptr) return fmt::format(fmt::runtime(row.bad_value), v);
  return std::string(row.name) + "= takes " + choice_words(row.syntax) + ", not '" + v + "'";
}

}  // namespace

const BootOptionRow* boot_option_rows() {
  return kRows;
}

std::size_t boot_option_row_count() {
  return kNrRows;
}

const BootOptionRow* find_boot_option(const std::string& key) {
  for (const BootOptionRow& r : kRows)
    if (key == r.name) return &r;
  return nullptr;
}

std::string apply_boot_option(const BootOptionRow& row, const std::string& v, BootConfig* cfg) {
  std::uint64_t n = 0;
  switch (row.kind) {
    case T::kNumber: {
      std::int64_t number = 0;
      if (!parse_number(v, &number) || number < row.min || number > row.max) return bad(row, v);
      n = static_cast<std::uint64_t>(number);
      break;
    }
    case T::kAddress:
      if (!kmm::parse_size(v.data(), v.size(), &n)) return bad(row, v);
      break;
    case T::kDuration:
      if (!parse_duration_ns(v, &n)) return bad(row, v);
      break;
    case T::kChoice: {
      long i = choice_index(row.syntax, v);
      if (i < 0) return bad(row, v);
      n = static_cast<std::uint64_t>(i);
      break;
    }
    case T::kOnOff:
    case T::kSize: {
      bool bad_value = false;
      if (!set_hardening_option(&cfg->hardening, row.name, std::strlen(row.name), v.data(), v.size(), &bad_value))
        return bad(row, v);
      return std::string();
    }
    case T::kPath:
      // An empty path named no file: persist_boot said only ": No such file or directory".
      if (v.empty()) return std::string(row.name) + "= takes a file's path, not nothing";
      break;
  }
  row.set(cfg, n, v);
  return std::string();
}

const char* boot_option_kind_name(BootOptionKind k) {
  switch (k) {
    case T::kNumber:
      return "number";
    case T::kAddress:
      return "address";
    case T::kDuration:
      return "duration";
    case T::kChoice:
      return "choice";
    case T::kOnOff:
      return "on/off";
    case T::kSize:
      return "size";
    case T::kPath:
      return "path";
  }
  return "?";
}

}  // namespace kmm::scenario

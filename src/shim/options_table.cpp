// kmm/shim/options_table.cpp — the rows of KMM_OPTIONS (options_table.h) and their lookup.
// Constant data only: no constructor runs, nothing allocates (it is read inside malloc).
// Depends on: shim/options_table.h, kernel/boot_settings.h (the rows shared with the scenario
// `boot` line).
#include "shim/options_table.h"

#include "kernel/boot_settings.h"

namespace kmm::shim {
namespace {

using K = OptionKey;
using T = OptionKind;

// A key the scenario `boot` line takes too: its name, syntax, default (a process's) and help
// come from its row in kernel/boot_settings.h.
constexpr OptionRow shared(const BootSetting& s, OptionKey key, OptionKind kind) {
  return {s.options_key, key, kind, s.syntax, s.process_default, s.process_help, false};
}

constexpr OptionRow kRows[] = {
    shared(kBootSettingProtector, K::kProtect, T::kChoice),  // shim/options.h: Options::protect
    shared(kBootSettingGcDelay, K::kGcDelay, T::kDuration),
    {"gc_snapshot", K::kGcSnapshot, T::kBool, "on|off", "on",
     "reclaim-unreachable marks in a copy-on-write copy of the process, so threads stop only while it is made "
     "(off: for the whole mark)",
     false},
    {"purge_delay", K::kPurgeDelay, T::kDuration, "DURATION|off", "1s",
     "free memory older than this goes back to the OS (off: never on a timer)", false},
    {"stats", K::kStats, T::kBoolOrPath, "1|0|PATH", "0",
     "print the exit stats on stderr, or append them to PATH (created 0600)", false},
    {"on_error", K::kOnError, T::kChoice, "abort|report", "abort",
     "a bad free or heap corruption stops the process, or is reported and refused", false},
    {"thread_cache", K::kThreadCache, T::kBool, "1|0", "1", "thread-owned slabs (lock-free malloc and free)", false},
    {"live", K::kLive, T::kBool, "1|0", "0", "serve `kmm stat PID` on a socket (kmm exec sets 1)", false},
    shared(kBootSettingRam, K::kRam, T::kSize),
    shared(kBootSettingFreelistHardened, K::kFreelistHardened, T::kBool),
    shared(kBootSettingRedzone, K::kRedzone, T::kBool),
    shared(kBootSettingPoison, K::kPoison, T::kBool),
    shared(kBootSettingQuarantine, K::kQuarantine, T::kSize),
    shared(kBootSettingGuardPages, K::kGuardPages, T::kBool),
    {"fail_slab", K::kFailSlab, T::kFaultRate, "N|P%|off", "off",
     "fault injection (failslab): every Nth slab allocation fails, or a random P percent", false},
    {"fail_page", K::kFailPage, T::kFaultRate, "N|P%|off", "off",
     "the same for page allocations (8 KiB .. 4 MiB blocks, new slabs, growth)", false},
    {"fail_platform", K::kFailPlatform, T::kFaultRate, "N|P%|off", "off",
     "the same for platform calls after boot (RAM growth, mappings over 4 MiB)", false},
    {"fail_seed", K::kFailSeed, T::kInt, "N", "0", "seed of the P% draws of every fail_* point", false},
    {"fail_times", K::kFailTimes, T::kInt, "N", "-1", "at most N injected failures a point (-1: no limit)", false},
    {"fail_space", K::kFailSpace, T::kSize, "SIZE", "0", "bytes each fail_* point lets through first", false},
    {"fail_verbose", K::kFailVerbose, T::kInt, "0|1", "1",
     "1: a `FAULT_INJECTION: forcing a failure.` line per failure in the kernel log", false},
    // Linux's names of the points after fail_ (fault_point_from_name takes both): accepted
    // since the fault keys exist, not listed.
    {"fail_failslab", K::kFailSlab, T::kFaultRate, "N|P%|off", "off", "alias of fail_slab", true},
    {"fail_fail_page_alloc", K::kFailPage, T::kFaultRate, "N|P%|off", "off", "alias of fail_page", true},
    {"fail_fail_platform", K::kFailPlatform, T::kFaultRate, "N|P%|off", "off", "alias of fail_platform", true},
};

constexpr std::size_t kNrRows = sizeof kRows / sizeof kRows[0];

bool name_is(const char* name, const char* key, std::size_t len) {
  std::size_t i = 0;
  for (; i < len; ++i)
    if (name[i] != key[i] || name[i] == '\0') return false;
  return name[i] == '\0';
}

}  // namespace

const OptionRow* option_rows() {
  return kRows;
}

std::size_t option_row_count() {
  return kNrRows;
}

const OptionRow* find_option_row(const char* key, std::size_t len) {
  for (const OptionRow& r : kRows)
    if (name_is(r.name, key, len)) return &r;
  return nullptr;
}

const char* option_kind_name(OptionKind k) {
  switch (k) {
    case OptionKind::kChoice:
      return "choice";
    case OptionKind::kBool:
      return "bool";
    case OptionKind::kBoolOrPath:
      return "bool or path";
    case OptionKind::kDuration:
      return "duration";
    case OptionKind::kSize:
      return "size";
    case OptionKind::kFaultRate:
      return "rate";
    case OptionKind::kInt:
      return "integer";
  }
  return "?";
}

}  // namespace kmm::shim

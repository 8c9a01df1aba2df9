// kmm/shim/options.h — the shim's settings (Options) and how one KMM_OPTIONS item sets them.
//
// Options is what the preload shim boots with: the protector, the collector's and purge's
// delays, stats, hardening (slab/hardening.h) and fault injection (base/fault_inject.h).
// apply_option finds the item's key in the one table (shim/options_table.h) and parses the
// value for that row; visit_option is the parse_options visitor (base/options.h) the shim's
// boot uses: it warns about a bad value, and parse_options warns about an unknown key.
//
// Depends on: base/ (options, units, fault injection, reports), slab/hardening.h,
// protect/protector_mode.h (the modes, the gc_delay default), shim/options_table.h. Sizes and
// durations are read by base/units.h, the parser the scenario language uses too. No malloc,
// no exceptions, no static constructors: it runs inside malloc's first call, before anything
// is set up.
// Invariants: a key is known exactly when options_table.h has a row for it; a bad value
// leaves the setting it names as it was (a fault point's rate: the point stays off).
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/fault_inject.h"
#include "base/options.h"
#include "protect/protector_mode.h"
#include "slab/hardening.h"

namespace kmm::shim {

// The smallest reservation the preload boots a heap over (boot_with halves a reservation the
// host refuses down to it); ram= below it is a bad value.
inline constexpr std::uint64_t kMinPreloadRam = std::uint64_t{64} << 20;

struct Options {
  ProtectorMode protect = ProtectorMode::kReport;
  std::uint64_t gc_delay_ns = kDefaultGcDelayNs;    // protect/protector_mode.h
  std::uint64_t purge_delay_ns = 1'000'000'000ull;  // purge.cpp; 0: never purge on a timer
  bool stats = false;
  char stats_path[4096] = {};  // stats=PATH: write the exit stats there instead of stderr (PATH_MAX)
  bool on_error_report = false;
  bool thread_cache = true;
  bool gc_snapshot = true;    // reclaim-unreachable: mark in a forked copy (roots.cpp)
  bool live = false;          // serve `kmm stat PID` (stat.cpp)
  std::uint64_t ram = 0;      // 0: the default reservation
  HardeningConfig hardening;  // freelist_hardened, redzone, poison, guard_pages, quarantine
  // Fault injection (base/fault_inject.h): fail_slab=, fail_page=, fail_platform= (N: every
  // Nth call; P%: a random share), and fail_seed/fail_times/fail_space/fail_verbose for all
  // three; armed after boot (docs/PRELOAD.md).
  FaultConfig fault[kNrFaultPoints];
  bool fault_on[kNrFaultPoints] = {};
};

enum class OptionApply : std::uint8_t { kApplied, kBadValue, kUnknownKey };

// Sets what the item o names in *opts.
OptionApply apply_option(Options* opts, const OptionView& o);

// parse_options's visitor (arg: an Options*): applies o; a bad value is warned about on
// stderr ("kmm: warning: bad value for option KEY: VALUE (want SYNTAX; kmm help options)"); false for an unknown key.
bool visit_option(const OptionView& o, void* arg);

}  // namespace kmm::shim

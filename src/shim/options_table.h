// kmm/shim/options_table.h — the one table of KMM_OPTIONS keys: what the shim accepts.
//
// One row per key: its name, which field it sets (OptionKey, what the parser switches on),
// the kind of value it takes, the value's syntax as a reader types it, the default (a value
// the parser accepts and that leaves Options as it was constructed), and a one-line meaning.
// The shim's parser (shim/options.h, apply_option) finds a key only through find_option_row,
// and `kmm help options` and the man page print the same rows: help and parser cannot differ.
//
// The keys the scenario `boot` line takes too (protect, gc_delay, ram, the hardening keys)
// take their name, syntax, default and help from kernel/boot_settings.h, the one row both
// tables read (tests/scenario/test_boot_options.cpp checks the two tables agree).
//
// Depends on: <cstddef>/<cstdint>; the rows on kernel/boot_settings.h (the shared rows; the
// protector's mode names and the gc_delay default through protect/protector_mode.h). The
// rows are constant data (no constructor runs): the table is read inside malloc before
// anything is set up.
// Invariants: names are unique; every row's default parses (tests/shim/test_options_table);
// hidden rows are aliases kept for compatibility, not listed by help.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kmm::shim {

// The value a key takes (help prints it; tests check each kind's parser against it).
enum class OptionKind : std::uint8_t {
  kChoice,      // one word of `syntax`'s list
  kBool,        // on/off, 1/0, yes/no, true/false
  kBoolOrPath,  // a bool, or a file path
  kDuration,    // N[ns|us|ms|s|m|min], a bare N is seconds (base/units.h)
  kSize,        // N[K|M|G] or 0xHEX (base/units.h)
  kFaultRate,   // N (every Nth call) or P% (a random share), or off
  kInt,         // a decimal integer
};

// The setting a row changes; several rows may share one (an alias).
enum class OptionKey : std::uint8_t {
  kProtect,
  kGcDelay,
  kPurgeDelay,
  kStats,
  kOnError,
  kThreadCache,
  kGcSnapshot,
  kLive,
  kRam,
  kFreelistHardened,
  kRedzone,
  kPoison,
  kQuarantine,
  kGuardPages,
  kFailSlab,
  kFailPage,
  kFailPlatform,
  kFailSeed,
  kFailTimes,
  kFailSpace,
  kFailVerbose,
};

struct OptionRow {
  const char* name;
  OptionKey key;
  OptionKind kind;
  const char* syntax;         // e.g. "off|report|reclaim|reclaim-unreachable", "DURATION"
  const char* default_value;  // as typed: parses to the field's default
  const char* meaning;        // one line
  bool hidden;                // an alias: accepted, not listed
};

// Every row, in the order help lists them.
const OptionRow* option_rows();
std::size_t option_row_count();

// The row named key[0, len), or null: a key the shim does not know.
const OptionRow* find_option_row(const char* key, std::size_t len);

// "choice", "bool", ... (help's column).
const char* option_kind_name(OptionKind k);

}  // namespace kmm::shim

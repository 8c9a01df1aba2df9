// kmm/scenario/boot_options.h — the one table of the scenario `boot KEY=VALUE...` options.
//
// One row per key: its name, the kind of value it takes, the value's syntax as a reader types
// it, the default, one help line, the error for a bad value, and how the value reaches
// BootConfig. cmd_boot (common_commands.cpp) finds a key only through find_boot_option and
// sets it with apply_boot_option; `kmm help boot` prints the same rows, and
// tests/scenario/test_boot_options.cpp checks docs/SCENARIOS.md's boot options against them.
//
// The keys KMM_OPTIONS takes too (ram, protector, gc_delay, the hardening keys) are not
// written here: their name, syntax, default and help line come from kernel/boot_settings.h,
// the one row both tables read; only the kind and the error message are this table's.
//
// Depends on: kernel/kernel.h (BootConfig); the .cpp on kernel/boot_settings.h (the shared
// rows), scenario/expr.h (numbers read as the scenario's expressions read them, durations
// through base/units.h), base/units.h (addresses), protect/protector_mode.h (the protector's
// mode names), slab/hardening.h (the hardening keys, parsed by the parser KMM_OPTIONS uses),
// scenario/persist_commands.h (backing=), fmt.
// Invariants: names are unique; a choice row's words are its syntax split at '|', listed
// nowhere else, and its error "KEY= takes a, b or c, not 'v'" is built from them; every
// non-null default applies cleanly and leaves BootConfig as constructed (a null default: no
// typed value gives it); the error messages are part of the scenario language (byte for byte).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernel/kernel.h"

namespace kmm::scenario {

enum class BootOptionKind : std::uint8_t {
  kNumber,    // a scenario number (123, 64K, 0x1000; scenario/expr.h's parse_number) in [min, max]
  kAddress,   // all 64 bits of an address (base/units.h's parse_size)
  kDuration,  // 5s, 500ms, 2min; a bare number is seconds (base/units.h)
  kChoice,    // one word of syntax's list
  kOnOff,     // on/off (1/0, yes/no, true/false): a hardening key (slab/hardening.h)
  kSize,      // a size, 0 for none: a hardening key (slab/hardening.h)
  kPath,      // a file
};

struct BootOptionRow {
  const char* name;
  BootOptionKind kind;
  const char* syntax;         // "SIZE", "DURATION", "pow2|kmalloc2" (a choice's words)
  const char* default_value;  // as typed; null: no typed value gives BootConfig's default
  const char* help;           // one line
  // The error for a bad value, "{}" standing for the value as typed; null: generated from
  // syntax's words ("KEY= takes a or b, not 'v'").
  const char* bad_value;
  std::int64_t min, max;  // kNumber: the values taken
  // Puts the value into cfg: n is the number (kNumber, kAddress), the nanoseconds (kDuration)
  // or the word's index in syntax (kChoice); v the value as typed. Null for the hardening rows
  // (kOnOff, kSize), which slab/hardening.h's set_hardening_option sets by name.
  void (*set)(BootConfig* cfg, std::uint64_t n, const std::string& v);
};

// Every row, in the order help lists them.
const BootOptionRow* boot_option_rows();
std::size_t boot_option_row_count();

// The row named key, or null ("unknown boot option 'KEY'").
const BootOptionRow* find_boot_option(const std::string& key);

// Reads v as row's value and sets it in cfg. "": set; else the error line (cfg may be partly
// written: the caller drops it).
std::string apply_boot_option(const BootOptionRow& row, const std::string& v, BootConfig* cfg);

// "number", "duration", "choice", ... (help's column).
const char* boot_option_kind_name(BootOptionKind k);

}  // namespace kmm::scenario

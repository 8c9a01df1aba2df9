// kmm/base/options.h — the one options string: "key=value:key=value" (KMM_OPTIONS).
//
// Parsed without allocating, in place over a caller's string, so it can run before main
// when kmm is the process's malloc. Each key is offered to a visitor; a key no visitor claims
// is warned about on stderr, never silently ignored.
//
// Depends on: config.h, text.h, report.h, units.h (sizes and durations: the one parser).
#pragma once

#include "base/config.h"
#include "base/units.h"

namespace kmm {

struct OptionView {
  const char* key;
  std::size_t key_len;
  const char* value;
  std::size_t value_len;
  bool key_is(const char* k) const;
  bool value_is(const char* v) const;
  // Parses value as a size (units.h: K/M/G suffix or 0x hex); false when malformed.
  bool value_size(std::uint64_t* out) const;
  // Parses value as a duration in ns (units.h: ns/us/ms/s/m/min, bare N is seconds).
  bool value_duration_ns(std::uint64_t* out) const;
};

// Calls visit(opt, arg) for each key=value item; visit returns false for an unknown key,
// which is then warned about. Returns the number of unknown or malformed items.
using OptionVisitor = bool (*)(const OptionView& opt, void* arg);
unsigned parse_options(const char* text, OptionVisitor visit, void* arg);

}  // namespace kmm

// kmm/base/options.h — the one options string: "key=value:key=value" (KMM_OPTIONS).
//
// Parsed without allocating, in place over a caller's string, so it can run before main
// when kmm is the process's malloc. Each key is offered to a visitor; a key no visitor claims
// is warned about on stderr, never silently ignored.
//
// Depends on: config.h, text.h, report.h.
#pragma once

#include "base/config.h"

namespace kmm {

struct OptionView {
  const char* key;
  std::size_t key_len;
  const char* value;
  std::size_t value_len;
  bool key_is(const char* k) const;
  bool value_is(const char* v) const;
  // Parses value as a size with optional K/M/G suffix; false when malformed.
  bool value_size(std::uint64_t* out) const;
};

// Calls visit(opt, arg) for each key=value item; visit returns false for an unknown key,
// which is then warned about. Returns the number of unknown or malformed items.
using OptionVisitor = bool (*)(const OptionView& opt, void* arg);
unsigned parse_options(const char* text, OptionVisitor visit, void* arg);

// Parses "123", "64K", "192M", "1G" (powers of 1024). False when malformed or overflowing.
bool parse_size(const char* s, std::size_t n, std::uint64_t* out);

}  // namespace kmm

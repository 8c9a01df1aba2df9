// kmm/base/units.h — the one parser of sizes, of durations and of on/off switches, for every
// reader of them.
//
// The scenario language (scenario/expr.h: numbers and `idle`/`gc_delay=` durations), KMM_OPTIONS
// (shim/options.h, through OptionView::value_size and parse_duration_ns) and `kmm exec`'s
// flags all call these two functions, so a value means the same wherever it is typed:
//   size      "123", "64K", "192M", "1G" (powers of 1024, either case, an optional B after
//             the suffix: "4KB", "2mb"), or hexadecimal "0x1000" (no suffix);
//   duration  "5s", "250ms", "100us", "10ns", "2m" or "2min" (minutes); a bare number is
//             seconds;
//   switch    "1", "on", "yes", "true" / "0", "off", "no", "false" (KMM_OPTIONS flags, the
//             hardening keys of KMM_OPTIONS and of scenario boot lines).
// Both refuse an empty text, a sign, a space, a fraction, an unknown suffix and any value
// that does not fit in 64 bits (digits or after the suffix's multiplication), and leave *out
// untouched when they refuse.
//
// Depends on: <cstddef>/<cstdint> only. No allocation, no std::string, no exceptions: they
// run inside malloc's first call (KMM_OPTIONS) and in the freestanding core.
// Invariant: a text is read as exactly s[0, n): no terminator is needed or looked for.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kmm {

// A size in bytes (or an address): see above. False when malformed or over 2^64 - 1.
bool parse_size(const char* s, std::size_t n, std::uint64_t* out);

// A duration in nanoseconds: see above. False when malformed or over 2^64 - 1 ns.
bool parse_duration_ns(const char* s, std::size_t n, std::uint64_t* out);

// An on/off switch: see above. False (and *out untouched) for any other text.
bool parse_switch(const char* s, std::size_t n, bool* out);

}  // namespace kmm

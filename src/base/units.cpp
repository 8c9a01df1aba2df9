// kmm/base/units.cpp — sizes, durations and switches (units.h): digits, then a suffix, overflow checked.
// Depends on: units.h only (no libc call: it runs before malloc is set up). Invariant: every
// multiplication is checked against 2^64 - 1 before it is done, and *out is written last.
#include "base/units.h"

#include <initializer_list>  // for (x : {a, b}); not pulled in by freestanding headers

namespace kmm {
namespace {

constexpr std::uint64_t kMax = ~std::uint64_t{0};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Reads the decimal digits at s[*i..n) into *v; false when there are none or they overflow.
bool read_decimal(const char* s, std::size_t n, std::size_t* i, std::uint64_t* v) {
  std::size_t start = *i;
  std::uint64_t x = 0;
  for (; *i < n && is_digit(s[*i]); ++*i) {
    auto d = static_cast<std::uint64_t>(s[*i] - '0');
    if (x > (kMax - d) / 10) return false;
    x = x * 10 + d;
  }
  *v = x;
  return *i != start;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool equals(const char* s, std::size_t n, const char* word) {
  std::size_t i = 0;
  for (; i < n; ++i)
    if (word[i] == '\0' || word[i] != s[i]) return false;
  return word[i] == '\0';
}

}  // namespace

bool parse_size(const char* s, std::size_t n, std::uint64_t* out) {
  if (n == 0) return false;
  std::uint64_t v = 0;
  if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    for (std::size_t i = 2; i < n; ++i) {
      int d = hex_digit(s[i]);
      if (d < 0 || v > (kMax >> 4)) return false;
      v = v * 16 + static_cast<std::uint64_t>(d);
    }
    *out = v;
    return true;
  }
  std::size_t i = 0;
  if (!read_decimal(s, n, &i, &v)) return false;
  unsigned shift = 0;
  if (i < n) {
    switch (s[i]) {
      case 'k':
      case 'K':
        shift = 10;
        break;
      case 'm':
      case 'M':
        shift = 20;
        break;
      case 'g':
      case 'G':
        shift = 30;
        break;
      default:
        return false;
    }
    ++i;
    if (i < n && (s[i] == 'B' || s[i] == 'b')) ++i;
  }
  if (i != n) return false;
  if (shift != 0 && v > (kMax >> shift)) return false;
  *out = v << shift;
  return true;
}

bool parse_switch(const char* s, std::size_t n, bool* out) {
  for (const char* on : {"1", "on", "yes", "true"}) {
    if (equals(s, n, on)) {
      *out = true;
      return true;
    }
  }
  for (const char* off : {"0", "off", "no", "false"}) {
    if (equals(s, n, off)) {
      *out = false;
      return true;
    }
  }
  return false;
}

bool parse_duration_ns(const char* s, std::size_t n, std::uint64_t* out) {
  std::uint64_t v = 0;
  std::size_t i = 0;
  if (!read_decimal(s, n, &i, &v)) return false;
  const char* unit = s + i;
  std::size_t len = n - i;
  std::uint64_t mul;
  if (len == 0 || equals(unit, len, "s"))
    mul = 1'000'000'000ull;
  else if (equals(unit, len, "ms"))
    mul = 1'000'000ull;
  else if (equals(unit, len, "us"))
    mul = 1'000ull;
  else if (equals(unit, len, "ns"))
    mul = 1;
  else if (equals(unit, len, "m") || equals(unit, len, "min"))
    mul = 60'000'000'000ull;
  else
    return false;
  if (v > kMax / mul) return false;
  *out = v * mul;
  return true;
}

}  // namespace kmm

// kmm/base/text.cpp — TextSink number formatting. Depends on: text.h only.
#include "base/text.h"

namespace kmm {

TextSink& TextSink::str(const char* s) {
  if (s == nullptr) s = "(null)";
  while (*s) put(*s++);
  terminate();
  return *this;
}

TextSink& TextSink::str(const char* s, std::size_t n) {
  for (std::size_t k = 0; k < n; ++k) put(s[k]);
  terminate();
  return *this;
}

TextSink& TextSink::ch(char c) {
  put(c);
  terminate();
  return *this;
}

TextSink& TextSink::repeat(char c, std::size_t n) {
  for (std::size_t k = 0; k < n; ++k) put(c);
  terminate();
  return *this;
}

TextSink& TextSink::u(std::uint64_t v, unsigned width) {
  char tmp[24];
  unsigned n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (unsigned k = n; k < width; ++k) put(' ');
  while (n > 0) put(tmp[--n]);
  terminate();
  return *this;
}

TextSink& TextSink::i(std::int64_t v, unsigned width) {
  std::uint64_t mag = v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
  char tmp[24];
  unsigned n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + mag % 10);
    mag /= 10;
  } while (mag != 0);
  if (v < 0) tmp[n++] = '-';
  for (unsigned k = n; k < width; ++k) put(' ');
  while (n > 0) put(tmp[--n]);
  terminate();
  return *this;
}

TextSink& TextSink::left(const char* s, unsigned width) {
  std::size_t n = str_len(s);
  str(s);
  for (std::size_t k = n; k < width; ++k) put(' ');
  terminate();
  return *this;
}

TextSink& TextSink::hex(std::uint64_t v, unsigned digits) {
  static const char kDigits[] = "0123456789abcdef";
  char tmp[16];
  unsigned n = 0;
  do {
    tmp[n++] = kDigits[v & 0xF];
    v >>= 4;
  } while (v != 0);
  for (unsigned k = n; k < digits; ++k) put('0');
  while (n > 0) put(tmp[--n]);
  terminate();
  return *this;
}

TextSink& TextSink::ptr(const void* p) {
  str("0x");
  return hex(reinterpret_cast<std::uintptr_t>(p), sizeof(void*) * 2);
}

TextSink& TextSink::fixed(std::int64_t v, unsigned decimals) {
  std::uint64_t scale = 1;
  for (unsigned k = 0; k < decimals; ++k) scale *= 10;
  if (v < 0) put('-');
  // Negate in unsigned arithmetic: -INT64_MIN does not fit in int64_t.
  std::uint64_t mag = v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
  u(mag / scale);
  if (decimals > 0) {
    put('.');
    std::uint64_t frac = mag % scale;
    char tmp[20];
    for (unsigned k = 0; k < decimals; ++k) {
      tmp[decimals - 1 - k] = static_cast<char>('0' + frac % 10);
      frac /= 10;
    }
    str(tmp, decimals);
  }
  terminate();
  return *this;
}

std::size_t str_len(const char* s) {
  std::size_t n = 0;
  while (s[n]) ++n;
  return n;
}

bool str_eq(const char* a, const char* b) {
  while (*a && *a == *b) {
    ++a;
    ++b;
  }
  return *a == *b;
}

bool str_copy(char* dst, std::size_t cap, const char* src) {
  if (cap == 0) return false;
  std::size_t k = 0;
  for (; src[k] && k + 1 < cap; ++k) dst[k] = src[k];
  dst[k] = '\0';
  return src[k] == '\0';
}

}  // namespace kmm

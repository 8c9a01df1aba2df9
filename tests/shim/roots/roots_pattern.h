// tests/shim/roots/roots_pattern.h — the bytes a kept block must still hold (shim.roots).
#pragma once
#include <cstddef>
#include <cstring>

constexpr std::size_t kBlockBytes = 4000;
constexpr std::size_t kHugeBytes = 6u << 20;  // over 4 MiB: a huge block (its own mapping)

inline unsigned char pattern_byte(int tag, std::size_t i) {
  return static_cast<unsigned char>((tag * 31 + static_cast<int>(i % 251) + 1) & 0xff);
}

inline void fill_pattern(void* p, std::size_t n, int tag, void* next) {
  std::memcpy(p, &next, sizeof next);
  auto* b = static_cast<unsigned char*>(p);
  for (std::size_t i = sizeof next; i < n; ++i) b[i] = pattern_byte(tag, i);
}

// True when p still holds tag's pattern (and `next`, when want_next is not null).
inline bool check_pattern(const void* p, std::size_t n, int tag) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = sizeof(void*); i < n; ++i)
    if (b[i] != pattern_byte(tag, i)) return false;
  return true;
}

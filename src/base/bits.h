// kmm/base/bits.h — bit tricks: powers of two, rounding, log2, page orders.
// Depends on: config.h. All functions are constexpr and total (defined for every input).
#pragma once

#include <bit>

#include "base/config.h"

namespace kmm {

constexpr bool is_pow2(std::uint64_t x) {
  return x != 0 && (x & (x - 1)) == 0;
}

// Smallest power of two >= x; 1 for x == 0.
constexpr std::uint64_t round_up_pow2(std::uint64_t x) {
  return x <= 1 ? 1 : std::bit_ceil(x);
}

constexpr std::uint64_t round_up(std::uint64_t x, std::uint64_t align) {
  return (x + align - 1) / align * align;
}

constexpr unsigned ilog2(std::uint64_t x) {
  return x == 0 ? 0 : static_cast<unsigned>(63 - std::countl_zero(x));
}

// Linux's get_order(): the buddy order whose block holds `size` bytes (size 0 -> 0).
constexpr unsigned get_order(std::uint64_t size) {
  if (size <= kPageSize) return 0;
  return ilog2((size - 1) >> kPageShift) + 1;
}

constexpr std::uint64_t pages_for(std::uint64_t bytes) {
  return (bytes + kPageSize - 1) >> kPageShift;
}

// a + b, or UINT64_MAX where it would wrap: clocks and deadlines (a far deadline is "never",
// not one that comes round again in the past).
constexpr std::uint64_t add_saturating(std::uint64_t a, std::uint64_t b) {
  std::uint64_t sum = 0;
  return __builtin_add_overflow(a, b, &sum) ? ~std::uint64_t{0} : sum;
}

// Checked multiplication for kcalloc and friends: false when a*b overflows size_t.
constexpr bool mul_overflows(std::size_t a, std::size_t b, std::size_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

}  // namespace kmm

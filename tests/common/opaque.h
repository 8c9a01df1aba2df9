// tests/common/opaque.h — values the optimiser cannot see through, for tests of malloc itself.
// A malloc whose result is unused, a malloc/free pair, or a size known at compile time may be
// folded away or checked by the compiler (-Walloc-size-larger-than); passing them through
// keep() and opaque() makes the call happen as written. Depends on nothing.
#pragma once

#include <cstddef>

namespace kmm::test {

template <typename T>
T* keep(T* p) {
  asm volatile("" : "+r"(p) : : "memory");
  return p;
}

inline std::size_t opaque(std::size_t n) {
  asm volatile("" : "+r"(n));
  return n;
}

}  // namespace kmm::test

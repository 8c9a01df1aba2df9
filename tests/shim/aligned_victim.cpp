// tests/shim/aligned_victim.cpp — shim.aligned_under_address_limit: posix_memalign of every
// power of two from 16 B to 4 MiB, each checked against its alignment. Prints "aligned: OK"
// or the first block that is not, and exits 1. Depends on: libc.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

int main() {
  for (std::size_t align = 16; align <= (std::size_t{4} << 20); align <<= 1) {
    void* p = nullptr;
    if (posix_memalign(&p, align, align / 2 + 1) != 0) continue;  // out of address space: no answer
    if (reinterpret_cast<std::uintptr_t>(p) % align != 0)
      return std::printf("MISALIGNED: posix_memalign(%zu) = %p\n", align, p), 1;
    std::free(p);
  }
  std::printf("aligned: OK\n");
  return 0;
}

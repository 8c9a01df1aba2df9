// tests/shim/roots/stale_words.h — writes words into a thread's own dead stack, below a frame
// (shim.roots.kmm_stacks: stale_plugin.cpp plants the leaks' addresses, stale_host.cpp plants
// them too and clears what was planted). Header-only: the plug-in and the host share it.
#pragma once
#include <cstddef>
#include <cstdint>

// From skip to end bytes below top (the address of a local of the caller's frame): the
// complement of hidden[i % n] (so that the plant is the addresses the complements hide), or 0
// when hidden is null. Out of line, so that the caller's frame, and this one, lie above.
__attribute__((noinline)) inline void fill_stack_below(volatile std::uintptr_t* top, std::size_t skip, std::size_t end,
                                                       const std::uintptr_t* hidden, int n) {
  volatile std::uintptr_t* at = top - skip / sizeof(std::uintptr_t);
  for (std::size_t i = 0; i < (end - skip) / sizeof(std::uintptr_t); ++i)
    at[-static_cast<std::ptrdiff_t>(i)] = hidden != nullptr ? ~hidden[i % static_cast<std::size_t>(n)] : 0;
}

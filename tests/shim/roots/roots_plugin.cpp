// tests/shim/roots/roots_plugin.cpp — the plug-in of shim.roots: it leaks 2,000 small blocks
// and one huge block (kept only in its own statics, which dlclose unmaps), and hands blocks
// to its host without kmm_transfer: after the unload they are still the plug-in's, and only
// the root scan of reclaim-unreachable can tell that the host still uses them.
// Depends on: libc only (a plain plug-in: no kmm API).
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "roots_pattern.h"

namespace {
void* g_leaks[2000];
void* g_huge_leak;
}  // namespace

extern "C" int plugin_leak(int n) {
  if (n > 2000) n = 2000;
  for (int i = 0; i < n; ++i) {
    g_leaks[i] = std::malloc(32 + static_cast<std::size_t>(i % 16) * 32);
    if (g_leaks[i] == nullptr) return -1;
    std::memset(g_leaks[i], 0x5a, 32);
  }
  g_huge_leak = std::malloc(kHugeBytes);
  if (g_huge_leak == nullptr) return -1;
  std::memset(g_huge_leak, 0x5a, 4096);
  return n + 1;
}

// A block of kBlockBytes: word 0 is `next`, the rest the pattern of `tag`.
extern "C" void* plugin_give(int tag, void* next) {
  void* p = std::malloc(kBlockBytes);
  if (p != nullptr) fill_pattern(p, kBlockBytes, tag, next);
  return p;
}

// A chain of n blocks, each pointing at the next; tags tag, tag+1, ...
extern "C" void* plugin_give_chain(int tag, int n) {
  void* next = nullptr;
  for (int i = n - 1; i >= 0; --i) next = plugin_give(tag + i, next);
  return next;
}

extern "C" void* plugin_give_huge(int tag) {
  void* p = std::malloc(kHugeBytes);
  if (p != nullptr) fill_pattern(p, kHugeBytes, tag, nullptr);
  return p;
}

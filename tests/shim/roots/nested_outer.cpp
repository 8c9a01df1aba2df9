// tests/shim/roots/nested_outer.cpp — a plug-in that opens another (shim.nested_dlclose) and
// closes it from its own destructor, which the host's dlclose runs: the inner dlclose only
// drops a reference, and the host's call unmaps both objects.
#include <dlfcn.h>

namespace {
void* g_inner;
}

extern "C" int outer_open_inner(const char* path, int leaks) {
  g_inner = dlopen(path, RTLD_NOW);
  if (g_inner == nullptr) return -1;
  auto leak = reinterpret_cast<int (*)(int)>(dlsym(g_inner, "nested_leak"));
  return leak != nullptr ? leak(leaks) : -1;
}

__attribute__((destructor)) static void outer_closes_inner() {
  if (g_inner != nullptr) dlclose(g_inner);
}

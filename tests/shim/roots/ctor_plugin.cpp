// tests/shim/roots/ctor_plugin.cpp — a plug-in whose constructors allocate (shim.ctor_owner):
// a constructor function and a C++ static initializer, both run by dlopen before it returns.
// Their blocks must be the plug-in's (and reclaimed after its unload), not the host's.
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {
void* g_blocks[100];
std::vector<int>* g_table = new std::vector<int>(1000, 7);  // a static initializer's allocation
}  // namespace

__attribute__((constructor)) static void ctor_allocates() {
  for (auto& b : g_blocks) {
    b = std::malloc(100);
    if (b != nullptr) std::memset(b, 1, 100);
  }
}

extern "C" int ctor_plugin_table_size() {
  return static_cast<int>(g_table->size());
}

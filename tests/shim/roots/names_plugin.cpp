// tests/shim/roots/names_plugin.cpp — the plug-in of shim.plugin_names: plugin_start leaks 50
// blocks of 1000 bytes. Built four times (names_host.cpp): twice as libnames.so in two
// directories, and twice under names that agree in their first 55 characters.
// Depends on: libc only (a plain plug-in: no kmm API).
#include <cstdlib>

namespace {
void* g_blocks[50];
}

extern "C" __attribute__((visibility("default"))) void plugin_start() {
  for (void*& b : g_blocks) b = std::malloc(1000);
}

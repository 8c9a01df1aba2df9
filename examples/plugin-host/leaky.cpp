// examples/plugin-host/leaky.cpp — a plug-in that leaks: it allocates a table and a cache
// when the host starts it and forgets to free them at unload. Under kmm its blocks belong to
// the module "libkmm-leaky.so" (the return address of each malloc lies in its text), and the
// protector takes them back after dlclose (protect=reclaim).
#include <cstdlib>
#include <cstring>

namespace {
void* g_table[100];
void* g_cache;
}  // namespace

extern "C" int plugin_start() {
  for (auto& slot : g_table) {
    slot = std::malloc(1000);
    if (slot == nullptr) return -1;
    std::memset(slot, 0x5a, 1000);
  }
  g_cache = std::malloc(64 * 1024);
  if (g_cache == nullptr) return -1;
  std::memset(g_cache, 0, 64 * 1024);
  return 101;  // blocks allocated (and, at unload, leaked)
}

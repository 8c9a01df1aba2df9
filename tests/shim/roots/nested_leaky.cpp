// tests/shim/roots/nested_leaky.cpp — a plug-in that leaks (shim.nested_dlclose): opened and
// closed by another plug-in (nested_outer.cpp), never by the host.
#include <cstdlib>
#include <cstring>

extern "C" int nested_leak(int n) {
  int made = 0;
  for (int i = 0; i < n; ++i) {
    void* p = std::malloc(100);
    if (p == nullptr) continue;
    std::memset(p, 0x5a, 100);  // and forgotten
    ++made;
  }
  return made;
}

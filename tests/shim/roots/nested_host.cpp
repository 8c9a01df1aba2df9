// tests/shim/roots/nested_host.cpp — shim.nested_dlclose: a plug-in that another plug-in
// opened and closes from its destructor is unloaded when the host's dlclose unmaps it, and its
// leak is reclaimed. Run under `kmm exec --protect=reclaim --gc-delay=200ms -- nested-host
// libnested-outer.so libnested-leaky.so`. Before stop 48 kmm looked only at the handle each
// dlclose was given: the inner call (the object still mapped then) was not an unload, the outer
// one's handle was the outer object's, and the inner plug-in stayed loaded in kmm's table for
// ever, its 100 leaked blocks never reclaimed (and its range, unmapped, still charged to it).
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "kmm/kmm.h"

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  if (argc != 3) return 2;
  auto usage = reinterpret_cast<int (*)(const char*, kmm_usage*)>(dlsym(RTLD_DEFAULT, "kmm_module_usage"));
  auto leaks = reinterpret_cast<int (*)(kmm_leak_stats*)>(dlsym(RTLD_DEFAULT, "kmm_leaks"));
  if (usage == nullptr || leaks == nullptr) return 2;
  const char* inner = std::strrchr(argv[2], '/') != nullptr ? std::strrchr(argv[2], '/') + 1 : argv[2];
  void* outer = dlopen(argv[1], RTLD_NOW);
  if (outer == nullptr) return 2;
  auto open_inner = reinterpret_cast<int (*)(const char*, int)>(dlsym(outer, "outer_open_inner"));
  if (open_inner == nullptr || open_inner(argv[2], 100) != 100) return 2;
  kmm_usage u{};
  usage(inner, &u);
  std::printf("loaded: %s owns %llu blocks\n", inner, static_cast<unsigned long long>(u.objects));
  bool ok = u.objects >= 100;
  dlclose(outer);
  kmm_leak_stats ls{};
  for (int i = 0; i < 400; ++i) {
    usleep(50 * 1000);
    leaks(&ls);
    usage(inner, &u);
    if (ls.passes != 0 && u.objects == 0) break;
  }
  std::printf("after the host's dlclose and %llu passes: reclaimed %llu blocks; %s owns %llu\n",
              static_cast<unsigned long long>(ls.passes), static_cast<unsigned long long>(ls.reclaimed_objects), inner,
              static_cast<unsigned long long>(u.objects));
  ok = ok && ls.reclaimed_objects >= 100 && u.objects == 0;
  std::printf("%s\n", ok ? "nested dlclose: OK" : "nested dlclose: FAILED");
  return ok ? 0 : 1;
}

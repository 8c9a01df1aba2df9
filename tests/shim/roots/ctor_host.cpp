// tests/shim/roots/ctor_host.cpp — shim.ctor_owner: what a plug-in's constructors allocate
// (while dlopen runs them, before the object's range is known from dlopen's answer) belongs to
// the plug-in, and is reclaimed with the rest of its leak after dlclose (issue 20). Run under
// `kmm exec --protect=reclaim --gc-delay=200ms -- ctor-host libctor-plugin.so`. Before issue
// 20 these blocks were the host's: the plug-in owned 0 blocks after dlopen.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "kmm/kmm.h"

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  if (argc != 2) return 2;
  auto usage = reinterpret_cast<int (*)(const char*, kmm_usage*)>(dlsym(RTLD_DEFAULT, "kmm_module_usage"));
  auto leaks = reinterpret_cast<int (*)(kmm_leak_stats*)>(dlsym(RTLD_DEFAULT, "kmm_leaks"));
  if (usage == nullptr || leaks == nullptr) return 2;
  const char* name = std::strrchr(argv[1], '/') != nullptr ? std::strrchr(argv[1], '/') + 1 : argv[1];
  void* h = dlopen(argv[1], RTLD_NOW);
  if (h == nullptr) return 2;
  auto size = reinterpret_cast<int (*)()>(dlsym(h, "ctor_plugin_table_size"));
  kmm_usage u{};
  usage(name, &u);
  std::printf("after dlopen: %s owns %llu blocks; its table holds %d\n", name,
              static_cast<unsigned long long>(u.objects), size != nullptr ? size() : -1);
  // 100 from the constructor, the vector object and its 1000 ints from the static initializer.
  bool ok = u.objects >= 102;
  dlclose(h);
  kmm_leak_stats ls{};
  for (int i = 0; i < 400 && ls.passes == 0; ++i) {
    usleep(50 * 1000);
    leaks(&ls);
  }
  usage(name, &u);
  std::printf("after dlclose and %llu passes: reclaimed %llu blocks; %s owns %llu\n",
              static_cast<unsigned long long>(ls.passes), static_cast<unsigned long long>(ls.reclaimed_objects), name,
              static_cast<unsigned long long>(u.objects));
  ok = ok && ls.reclaimed_objects >= 102 && u.objects == 0;
  std::printf("%s\n", ok ? "ctor owner: OK" : "ctor owner: FAILED");
  return ok ? 0 : 1;
}

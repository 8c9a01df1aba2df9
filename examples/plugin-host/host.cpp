// examples/plugin-host/host.cpp — a plug-in host on kmm (run it under `kmm exec
// --protect=reclaim --gc-delay=200ms`): loads a plug-in that leaks and one that hands memory
// to the host, unloads both, idles past gc_delay, and shows with kmm's stats API that the
// first's leak was reclaimed by the collector thread and the second's memory is safe.
// Exit status 0 when both hold.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kmm/kmm.h"

namespace {
const char* base(const char* path) {
  const char* s = std::strrchr(path, '/');
  return s != nullptr ? s + 1 : path;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s LEAKY.so GIVER.so\n", argv[0]);
    return 2;
  }
  if (!kmm_active()) {
    std::fprintf(stderr, "plugin-host: kmm is not this process's allocator\n");
    return 1;
  }
  const char* leaky_name = base(argv[1]);
  const char* giver_name = base(argv[2]);

  void* leaky = dlopen(argv[1], RTLD_NOW);
  void* giver = dlopen(argv[2], RTLD_NOW);
  if (leaky == nullptr || giver == nullptr) {
    std::fprintf(stderr, "plugin-host: dlopen: %s\n", dlerror());
    return 1;
  }
  auto start = reinterpret_cast<int (*)()>(dlsym(leaky, "plugin_start"));
  auto report = reinterpret_cast<char* (*)()>(dlsym(giver, "plugin_report"));
  int n = start();
  char* text = report();
  kmm_usage lu{}, gu{};
  kmm_module_usage(leaky_name, &lu);
  kmm_module_usage(giver_name, &gu);
  std::printf("loaded: %s owns %llu objects (%llu bytes); %s owns %llu objects\n", leaky_name,
              static_cast<unsigned long long>(lu.objects), static_cast<unsigned long long>(lu.bytes), giver_name,
              static_cast<unsigned long long>(gu.objects));
  bool ok = n == 101 && lu.objects == 101 && gu.objects == 0 && text != nullptr;

  dlclose(leaky);
  dlclose(giver);
  std::printf("unloaded both; idling past gc_delay...\n");
  kmm_leak_stats ls{};
  for (int i = 0; i < 200; ++i) {  // up to 20 s: the collector runs at idle priority
    usleep(100 * 1000);
    kmm_leaks(&ls);
    if (ls.reclaimed_objects >= 101) break;
  }
  kmm_module_usage(leaky_name, &lu);
  std::printf("collector: %llu passes, reclaimed %llu objects (%llu bytes); %s owns %llu objects now\n",
              static_cast<unsigned long long>(ls.passes), static_cast<unsigned long long>(ls.reclaimed_objects),
              static_cast<unsigned long long>(ls.reclaimed_bytes), leaky_name,
              static_cast<unsigned long long>(lu.objects));
  ok = ok && ls.reclaimed_objects == 101 && lu.objects == 0;
  // The giver's report survived its unload and is still the host's.
  std::printf("giver's report after unload: \"%s\"\n", text);
  ok = ok && std::strcmp(text, "report from giver: 42 items") == 0;
  delete[] new char[10];
  std::free(text);
  std::printf("%s\n", ok ? "containment: OK" : "containment: FAILED");
  return ok ? 0 : 1;
}

// tests/shim/roots/names_host.cpp — shim.plugin_names: plug-ins are modules however they are
// named. Run under `kmm exec --protect=reclaim -- names-host A B C D`, where A and B are two
// files of the same base name (another directory) and C and D have names that agree in their
// first 55 characters (a module name holds 55). Each plug-in leaks 50 blocks.
//   - Each is its own module: A is "libnames.so", B "libnames.so#2" (before, B's insmod failed
//     and its 50 blocks were charged to the host, never reclaimed); C and D likewise.
//   - kmm_module_unload refuses a dlopened plug-in's name (before, the module went while its
//     code stayed mapped, and its id passed to the next kmm_module_load, which was then
//     charged with the plug-in's allocations).
//   - Once all are closed, all 200 blocks are reclaimed.
// Prints "plugin names: OK" and exits 0, or says what failed and exits 1.
// The host does not link kmm: it finds the kmm_* API with dlsym.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kmm/kmm.h"

namespace {

int g_failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::printf("FAILED: %s\n", what);
    ++g_failures;
  }
}

template <typename Fn>
Fn api(const char* name) {
  auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
  if (fn == nullptr) {
    std::printf("FAILED: %s not found (not run under kmm?)\n", name);
    std::_Exit(1);
  }
  return fn;
}

const char* base_of(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash != nullptr ? slash + 1 : path;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::printf("usage: names-host SAME_A SAME_B LONG_C LONG_D\n");
    return 2;
  }
  auto usage = api<int (*)(const char*, kmm_usage*)>("kmm_module_usage");
  auto unload = api<int (*)(const char*)>("kmm_module_unload");
  auto leaks = api<int (*)(kmm_leak_stats*)>("kmm_leaks");
  auto collect = api<void (*)()>("kmm_collect");
  void* handles[4];
  for (int i = 0; i < 4; ++i) {
    handles[i] = dlopen(argv[i + 1], RTLD_NOW | RTLD_LOCAL);
    if (handles[i] == nullptr) {
      std::printf("FAILED: dlopen %s: %s\n", argv[i + 1], dlerror());
      return 1;
    }
    reinterpret_cast<void (*)()>(dlsym(handles[i], "plugin_start"))();
  }
  check(std::strcmp(base_of(argv[1]), base_of(argv[2])) == 0, "A and B have one base name");
  check(std::strncmp(base_of(argv[3]), base_of(argv[4]), 55) == 0, "C and D agree in 55 characters");
  // Each plug-in's 50 blocks under its own module.
  // A: its base name; B: "#2" after it; C: its name cut to 55; D: cut to 53, then "#2".
  char second[64], cut[64], cut_second[64];
  std::snprintf(second, sizeof second, "%s#2", base_of(argv[1]));
  std::snprintf(cut, sizeof cut, "%.55s", base_of(argv[3]));
  std::snprintf(cut_second, sizeof cut_second, "%.53s#2", base_of(argv[4]));
  const char* names[] = {base_of(argv[1]), second, cut, cut_second};
  for (const char* name : names) {
    kmm_usage u{};
    const bool found = usage(name, &u) == 0;
    std::printf("%s owns %llu objects\n", name, static_cast<unsigned long long>(found ? u.objects : 0));
    check(found && u.objects == 50, name);
  }
  check(unload(base_of(argv[1])) == -1, "kmm_module_unload refuses a dlopened plug-in's name");
  kmm_usage u{};
  check(usage(base_of(argv[1]), &u) == 0 && u.objects == 50, "the refused unload left the plug-in loaded");
  for (void* h : handles) dlclose(h);
  kmm_leak_stats s{};
  for (int i = 0; i < 50 && s.reclaimed_objects < 200; ++i) {
    collect();
    leaks(&s);
    usleep(20000);
  }
  std::printf("reclaimed %llu objects\n", static_cast<unsigned long long>(s.reclaimed_objects));
  check(s.reclaimed_objects == 200, "every plug-in's 50 blocks reclaimed");
  if (g_failures != 0) return 1;
  std::printf("plugin names: OK\n");
  return 0;
}

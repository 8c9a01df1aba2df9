// tests/shim/roots/roots_stress.cpp — shim.roots.stress: reclaim-unreachable passes, each with
// the world stopped, while the host's threads move the only pointer to a kept block between
// a global and their registers, create and join threads, fork, sleep in system calls and
// hammer the allocator (issue 20). Every pass must keep the block and the chain that hangs
// off it; the plug-in's leak must be reclaimed; nothing may hang or crash.
//
// Run under `kmm exec --protect=reclaim-unreachable --gc-delay=0 -- roots-stress PLUGIN.so`;
// main calls kmm_collect() in a loop (a pass each time: the plug-in stays unloaded with
// referenced blocks) while the collector thread runs its own passes too.
#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kmm/kmm.h"
#include "roots_pattern.h"

namespace {

constexpr int kTag = 7;
constexpr int kChainTag = 40;
constexpr int kChainLength = 10;
constexpr int kPasses = 10;

void* g_kept;  // the only pointer to the kept block, when no thread holds it
std::atomic<bool> g_stop{false};
std::atomic<int> g_lost{0};
std::atomic<long> g_moves{0}, g_spawned{0}, g_forks{0}, g_sleeps{0};

// Takes the block out of the global (it lives in this thread's registers or stack only),
// checks it, works a little, and puts it back.
void* mover(void*) {
  unsigned seed = 1;
  void* mine[16] = {};
  while (!g_stop.load(std::memory_order_relaxed)) {
    void* p = __atomic_exchange_n(&g_kept, nullptr, __ATOMIC_SEQ_CST);
    if (p != nullptr) {
      // Most of the time the pointer is in this register only: a pass that did not stop
      // this thread (or missed its registers) would free the block.
      for (int spin = 0; spin < 200000; ++spin) asm volatile("" : "+r"(p));
      if (!check_pattern(p, kBlockBytes, kTag)) g_lost.fetch_add(1);
      for (int i = 0; i < 16; ++i) {  // allocator work while holding it (cache locks, huge blocks)
        seed = seed * 1103515245u + 12345u;
        std::size_t n = (seed >> 8) % 7 == 0 ? (5u << 20) : 16 + (seed >> 12) % 20000;
        std::free(mine[i]);
        mine[i] = std::malloc(n);
        if (mine[i] != nullptr) std::memset(mine[i], 1, n < 256 ? n : 256);
      }
      __atomic_store_n(&g_kept, p, __ATOMIC_SEQ_CST);
      g_moves.fetch_add(1, std::memory_order_relaxed);
    }
  }
  for (void* q : mine) std::free(q);
  return nullptr;
}

void* short_lived(void*) {
  void* p = std::malloc(100);
  std::free(p);
  return nullptr;
}

void* spawner(void*) {
  while (!g_stop.load(std::memory_order_relaxed)) {
    pthread_t t;
    if (pthread_create(&t, nullptr, short_lived, nullptr) == 0) pthread_join(t, nullptr);
    g_spawned.fetch_add(1, std::memory_order_relaxed);
  }
  return nullptr;
}

void* forker(void*) {
  while (!g_stop.load(std::memory_order_relaxed)) {
    pid_t pid = fork();
    if (pid == 0) {
      void* p = std::malloc(1000);
      std::free(p);
      _exit(0);
    }
    if (pid > 0) {
      int st = 0;
      while (waitpid(pid, &st, 0) < 0) {
      }
      g_forks.fetch_add(1, std::memory_order_relaxed);
    }
    usleep(2000);
  }
  return nullptr;
}

void* sleeper(void*) {
  while (!g_stop.load(std::memory_order_relaxed)) {
    struct timespec ts {
      0, 500'000
    };
    while (nanosleep(&ts, &ts) != 0) {  // EINTR: a world stop interrupted it
    }
    poll(nullptr, 0, 1);
    g_sleeps.fetch_add(1, std::memory_order_relaxed);
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  if (argc != 2) return 2;
  auto leaks = reinterpret_cast<int (*)(kmm_leak_stats*)>(dlsym(RTLD_DEFAULT, "kmm_leaks"));
  auto collect = reinterpret_cast<void (*)()>(dlsym(RTLD_DEFAULT, "kmm_collect"));
  if (leaks == nullptr || collect == nullptr) {
    std::fprintf(stderr, "roots-stress: not running on kmm (run it under kmm exec)\n");
    return 2;
  }
  void* plugin = dlopen(argv[1], RTLD_NOW);
  if (plugin == nullptr) return 2;
  auto give = reinterpret_cast<void* (*)(int, void*)>(dlsym(plugin, "plugin_give"));
  auto give_chain = reinterpret_cast<void* (*)(int, int)>(dlsym(plugin, "plugin_give_chain"));
  auto leak = reinterpret_cast<int (*)(int)>(dlsym(plugin, "plugin_leak"));
  if (give == nullptr || give_chain == nullptr || leak == nullptr || leak(2000) != 2001) return 2;
  g_kept = give(kTag, give_chain(kChainTag, kChainLength));
  give = nullptr;
  give_chain = nullptr;
  dlclose(plugin);

  pthread_t threads[7];
  int n = 0;
  for (int i = 0; i < 4; ++i) pthread_create(&threads[n++], nullptr, mover, nullptr);
  pthread_create(&threads[n++], nullptr, spawner, nullptr);
  pthread_create(&threads[n++], nullptr, forker, nullptr);
  pthread_create(&threads[n++], nullptr, sleeper, nullptr);
  kmm_leak_stats ls{};
  for (int i = 0; i < kPasses; ++i) {
    collect();
    usleep(5000);
  }
  g_stop.store(true);
  for (int i = 0; i < n; ++i) pthread_join(threads[i], nullptr);
  leaks(&ls);

  bool ok = g_lost.load() == 0 && g_kept != nullptr && check_pattern(g_kept, kBlockBytes, kTag);
  if (ok) {
    void* link;
    std::memcpy(&link, g_kept, sizeof link);
    for (int i = 0; i < kChainLength && ok; ++i) {
      ok = link != nullptr && check_pattern(link, kBlockBytes, kChainTag + i);
      if (ok) std::memcpy(&link, link, sizeof link);
    }
  }
  std::printf("%llu passes, reclaimed %llu, spared %llu; %ld moves, %ld threads, %ld forks, %ld sleeps; lost %d\n",
              static_cast<unsigned long long>(ls.passes), static_cast<unsigned long long>(ls.reclaimed_objects),
              static_cast<unsigned long long>(ls.referenced_objects), g_moves.load(), g_spawned.load(), g_forks.load(),
              g_sleeps.load(), g_lost.load());
  if (ls.passes < static_cast<std::uint64_t>(kPasses) || ls.reclaimed_objects < 1800 ||
      ls.referenced_objects < kChainLength + 1)
    ok = false;
  std::printf("%s\n", ok ? "roots stress: OK" : "roots stress: FAILED");
  return ok ? 0 : 1;
}

// bench/bench_roots.cpp — the world-stop pause of reclaim-unreachable in a real process
// (issue 20): how long every thread is parked while the collector scans the process's roots
// and marks, for a process with a given kmm heap, other writable memory and threads.
//
// Run it under the preload (it finds the kmm_* API with dlsym):
//   kmm exec --protect=reclaim-unreachable --gc-delay=1h -- build/bin/kmm-bench-roots PLUGIN.so [HEAP_MB=256]
//   [OTHER_MB=64] [THREADS=16] [PASSES=5] [SPINNING=THREADS/2]
// PLUGIN.so is any plug-in (build/lib/libkmm-leaky.so): it is loaded, made to leak if it
// can, and unloaded, so that passes have a gone module to work for; then kmm_collect() runs
// PASSES passes. The heap is the host's: blocks of 64 B .. 64 KiB, each word a small integer
// except one pointer in 64 (to another heap block), so the mark follows pointers but finds
// no unloaded plug-in's block. The other memory is an anonymous mapping written the same way.
// SPINNING of the threads spin (they park from running code; default half), the rest block in
// a condition variable.
// Prints, per pass, the pause (from kmm's stats: the stop and, with gc_snapshot=off, the root
// scan and the mark; with gc_snapshot on, the default, the fork of the copy that marks), the
// copy's CPU time (its root scan and mark, the world running), and the wall time of kmm_collect
// (the pause, the copy's mark, the sliced sweep), then the median and the worst.
#include <dlfcn.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

std::atomic<bool> g_stop{false};
void* volatile g_kept;  // a block of the plug-in the host keeps
pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

void* blocked(void*) {
  pthread_mutex_lock(&g_mu);
  while (!g_stop.load()) pthread_cond_wait(&g_cv, &g_mu);
  pthread_mutex_unlock(&g_mu);
  return nullptr;
}

void* spinning(void*) {
  std::uint64_t n = 0;
  while (!g_stop.load(std::memory_order_relaxed)) asm volatile("" : "+r"(n));
  return nullptr;
}

// The last pause kmm measured, from its stats text ("last N us (cpu M us)"); *cpu: M; *copy_cpu:
// the snapshot copy's CPU ("its cpu K us"), -1 when the mark ran in place.
long last_pause_us(void (*print)(int), long* cpu, long* copy_cpu) {
  char path[] = "/tmp/kmm-bench-roots-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  unlink(path);
  print(fd);
  static char text[1 << 20];
  ssize_t n = pread(fd, text, sizeof text - 1, 0);
  close(fd);
  if (n <= 0) return -1;
  text[n] = '\0';
  const char* at = std::strstr(text, ", last ");
  const char* c = std::strstr(text, "(cpu ");
  *cpu = c != nullptr ? std::atol(c + 5) : -1;
  const char* k = std::strstr(text, "(its cpu ");
  *copy_cpu = k != nullptr ? std::atol(k + 9) : -1;
  return at != nullptr ? std::atol(at + 7) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PLUGIN.so [HEAP_MB] [OTHER_MB] [THREADS] [PASSES] [SPINNING]\n", argv[0]);
    return 2;
  }
  std::size_t heap_mb = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 256;
  std::size_t other_mb = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 64;
  int nthreads = argc > 4 ? std::atoi(argv[4]) : 16;
  int passes = argc > 5 ? std::atoi(argv[5]) : 5;
  // How many of the threads spin (the rest block): a spinning thread parks only when the
  // scheduler next runs it, so with more spinners than cores the stop waits for their turns.
  int spinners = argc > 6 ? std::atoi(argv[6]) : nthreads / 2;
  auto collect = reinterpret_cast<void (*)()>(dlsym(RTLD_DEFAULT, "kmm_collect"));
  auto print = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "kmm_stats_print"));
  if (collect == nullptr || print == nullptr) {
    std::fprintf(stderr, "kmm-bench-roots: not running on kmm (run it under kmm exec)\n");
    return 2;
  }

  // The host's heap: blocks of 64 B .. 64 KiB up to heap_mb.
  std::vector<void*> blocks;
  blocks.reserve(heap_mb * 64);
  std::size_t total = 0;
  unsigned seed = 12345;
  while (total < heap_mb << 20) {
    seed = seed * 1103515245u + 12345u;
    std::size_t n = std::size_t{64} << ((seed >> 16) % 11);  // 64 B .. 64 KiB
    auto* p = static_cast<std::uintptr_t*>(std::malloc(n));
    if (p == nullptr) break;
    for (std::size_t w = 0; w < n / sizeof(std::uintptr_t); ++w) p[w] = w;
    if (!blocks.empty()) p[0] = reinterpret_cast<std::uintptr_t>(blocks[(seed >> 4) % blocks.size()]);
    blocks.push_back(p);
    total += n;
  }
  // Other writable memory.
  std::size_t other = other_mb << 20;
  auto* mem = static_cast<std::uintptr_t*>(
      mmap(nullptr, other ? other : 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (mem == MAP_FAILED) return 1;
  for (std::size_t w = 0; w < other / sizeof(std::uintptr_t); ++w)
    mem[w] = w % 64 == 0 ? reinterpret_cast<std::uintptr_t>(blocks[w % blocks.size()]) : w;

  void* plugin = dlopen(argv[1], RTLD_NOW);
  if (plugin == nullptr) {
    std::fprintf(stderr, "kmm-bench-roots: dlopen: %s\n", dlerror());
    return 2;
  }
  if (auto leak = reinterpret_cast<int (*)(int)>(dlsym(plugin, "plugin_leak"))) leak(2000);
  if (auto start = reinterpret_cast<int (*)()>(dlsym(plugin, "plugin_start"))) start();
  // A block the host keeps: the module stays unloaded-with-memory, so every kmm_collect is a pass.
  if (auto give = reinterpret_cast<void* (*)(int, void*)>(dlsym(plugin, "plugin_give"))) g_kept = give(1, nullptr);
  dlclose(plugin);

  std::vector<pthread_t> threads(static_cast<std::size_t>(nthreads));
  for (int i = 0; i < nthreads; ++i)
    pthread_create(&threads[static_cast<std::size_t>(i)], nullptr, i < spinners ? spinning : blocked, nullptr);
  usleep(100 * 1000);

  std::printf("heap %zu MB in %zu blocks, other writable %zu MB, %d threads (+ main)\n", total >> 20, blocks.size(),
              other_mb, nthreads);
  std::vector<long> pauses, walls, cpus, copies;
  for (int i = 0; i < passes; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    collect();
    auto t1 = std::chrono::steady_clock::now();
    long wall = static_cast<long>(std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count());
    long cpu = -1, copy_cpu = -1;
    long pause = last_pause_us(print, &cpu, &copy_cpu);
    std::printf("pass %d: pause %ld us (collector cpu %ld us), snapshot copy cpu %ld us, kmm_collect %ld us\n", i + 1,
                pause, cpu, copy_cpu, wall);
    pauses.push_back(pause);
    copies.push_back(copy_cpu);
    cpus.push_back(cpu);
    walls.push_back(wall);
  }
  std::sort(pauses.begin(), pauses.end());
  std::sort(walls.begin(), walls.end());
  std::sort(cpus.begin(), cpus.end());
  std::sort(copies.begin(), copies.end());
  std::printf(
      "pause: median %ld us, worst %ld us (collector cpu: median %ld us); snapshot copy cpu: median %ld us; "
      "kmm_collect: median %ld us, worst %ld us\n",
      pauses[pauses.size() / 2], pauses.back(), cpus[cpus.size() / 2], copies[copies.size() / 2],
      walls[walls.size() / 2], walls.back());
  g_stop.store(true);
  pthread_mutex_lock(&g_mu);
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
  for (pthread_t t : threads) pthread_join(t, nullptr);
  return 0;
}

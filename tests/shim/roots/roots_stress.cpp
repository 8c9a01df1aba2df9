// tests/shim/roots/roots_stress.cpp — shim.roots.stress: reclaim-unreachable passes, each with
// the world stopped, while the host's threads move the only pointer to a kept block between
// a global and their registers, create and join threads, fork, sleep in system calls and
// hammer the allocator (issue 20). One more thread moves the only pointer to a second kept
// block between shared memory (MAP_SHARED: the one memory a snapshot's fork does not
// freeze) and a private global, so a pass that read the shared word later than the instant
// of its stop would miss it. Every pass must keep both blocks and the chain that hangs off
// the first; the plug-in's leak must be reclaimed; nothing may hang or crash.
//
// Run under `kmm exec --protect=reclaim-unreachable --gc-delay=0 -- roots-stress PLUGIN.so`;
// main calls kmm_collect() in a loop (a pass each time: the plug-in stays unloaded with
// referenced blocks) while the collector thread runs its own passes too.
#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
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
constexpr int kSharedTag = 8;
constexpr int kChainTag = 40;
constexpr int kChainLength = 10;
constexpr int kPasses = 10;

void* g_kept;          // the only pointer to the kept block, when no thread holds it
void** g_shared_word;  // in a MAP_SHARED mapping; the second kept block's pointer, or in g_private
void* g_private;
std::atomic<long> g_shared_moves{0};
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

// Copies the word at from to to and clears from, without the pointer passing through a
// register (x86-64: movsq copies memory to memory), so that at a stop it is in one of the two
// words only: a register or stack copy left behind would be a root and hide a missed word.
void move_word(void** from, void** to) {
#if defined(__x86_64__)
  void* src = from;
  void* dst = to;
  asm volatile("movsq" : "+S"(src), "+D"(dst) : : "memory");
#else
  *to = *from;
#endif
  // Release, not seq_cst: x86-64 compiles a seq_cst store as xchg, which leaves the old
  // value (the pointer) in a register.
  __atomic_store_n(from, nullptr, __ATOMIC_RELEASE);
}

// Checks the second block's bytes through the shared word, in a frame of its own: when it
// returns, what it held lies below the mover's stack pointer (stale, not a root), and the
// registers it used are cleared by the caller.
__attribute__((noinline)) bool shared_block_intact() {
  void* p = __atomic_load_n(g_shared_word, __ATOMIC_SEQ_CST);
  return p == nullptr || check_pattern(p, kBlockBytes, kSharedTag);
}

inline void clear_scratch_registers() {
#if defined(__x86_64__)
  asm volatile(
      "xor %%eax, %%eax; xor %%ecx, %%ecx; xor %%edx, %%edx; xor %%esi, %%esi; xor %%edi, %%edi; "
      "xor %%r8d, %%r8d; xor %%r9d, %%r9d; xor %%r10d, %%r10d; xor %%r11d, %%r11d" ::
          : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory");
#endif
}

// Moves the second block's only pointer between the shared word and g_private, leaving it in
// each for a while, and checks its bytes now and then; the pointer is never in this frame.
void* shared_mover(void*) {
  long moves = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    move_word(g_shared_word, &g_private);
    for (int spin = 0; spin < 2000; ++spin) asm volatile("" ::: "memory");
    move_word(&g_private, g_shared_word);
    for (int spin = 0; spin < 2000; ++spin) asm volatile("" ::: "memory");
    if (++moves % 1024 == 0) {
      if (!shared_block_intact()) g_lost.fetch_add(1);
      clear_scratch_registers();
    }
    g_shared_moves.fetch_add(1, std::memory_order_relaxed);
  }
  return nullptr;
}

// In a frame of its own, below main's stack pointer when passes run: no copy of the pointer
// stays in main's frame (the collecting thread's stack is a root from its frame up).
__attribute__((noinline)) void give_to_shared_word(void* (*give)(int, void*)) {
  void* p = give(kSharedTag, nullptr);
  __atomic_store_n(g_shared_word, p, __ATOMIC_SEQ_CST);
  clear_scratch_registers();
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
  // --shared-only: the shared-memory mover alone (and more passes), so that it runs on the
  // other core for the whole of each pass instead of waiting for a turn among the movers.
  bool shared_only = argc == 3 && std::strcmp(argv[1], "--shared-only") == 0;
  if (argc != 2 && !shared_only) return 2;
  auto leaks = reinterpret_cast<int (*)(kmm_leak_stats*)>(dlsym(RTLD_DEFAULT, "kmm_leaks"));
  auto collect = reinterpret_cast<void (*)()>(dlsym(RTLD_DEFAULT, "kmm_collect"));
  if (leaks == nullptr || collect == nullptr) {
    std::fprintf(stderr, "roots-stress: not running on kmm (run it under kmm exec)\n");
    return 2;
  }
  void* plugin = dlopen(argv[argc - 1], RTLD_NOW);
  if (plugin == nullptr) return 2;
  auto give = reinterpret_cast<void* (*)(int, void*)>(dlsym(plugin, "plugin_give"));
  auto give_chain = reinterpret_cast<void* (*)(int, int)>(dlsym(plugin, "plugin_give_chain"));
  auto leak = reinterpret_cast<int (*)(int)>(dlsym(plugin, "plugin_leak"));
  if (give == nullptr || give_chain == nullptr || leak == nullptr || leak(2000) != 2001) return 2;
  g_kept = give(kTag, give_chain(kChainTag, kChainLength));
  // The word at the end of 4 MiB of shared memory: a scan that read the mapping after the
  // stop would reach it a millisecond later, after the mover has moved it many times.
  constexpr std::size_t kSharedBytes = 4u << 20;
  auto* shared =
      static_cast<char*>(mmap(nullptr, kSharedBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (shared == MAP_FAILED) return 2;
  std::memset(shared, 0x11, kSharedBytes);
  g_shared_word = reinterpret_cast<void**>(shared + kSharedBytes - 64);
  give_to_shared_word(give);
  give = nullptr;
  give_chain = nullptr;
  dlclose(plugin);

  pthread_t threads[8];
  int n = 0;
  if (!shared_only) {
    for (int i = 0; i < 4; ++i) pthread_create(&threads[n++], nullptr, mover, nullptr);
    pthread_create(&threads[n++], nullptr, spawner, nullptr);
    pthread_create(&threads[n++], nullptr, forker, nullptr);
    pthread_create(&threads[n++], nullptr, sleeper, nullptr);
  }
  pthread_create(&threads[n++], nullptr, shared_mover, nullptr);
  kmm_leak_stats ls{};
  int passes = shared_only ? 4 * kPasses : kPasses;
  for (int i = 0; i < passes; ++i) {
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
  void* shared_kept = *g_shared_word != nullptr ? *g_shared_word : g_private;
  ok = ok && shared_kept != nullptr && check_pattern(shared_kept, kBlockBytes, kSharedTag);
  // A block freed and not yet reused still holds its bytes: ask kmm whether both kept blocks
  // are still allocated (a transfer succeeds only for a live block).
  auto transfer = reinterpret_cast<int (*)(void*, const char*)>(dlsym(RTLD_DEFAULT, "kmm_transfer"));
  bool kept_live = transfer != nullptr && transfer(g_kept, nullptr) == 0;
  bool shared_live = transfer != nullptr && transfer(shared_kept, nullptr) == 0;
  if (!kept_live || !shared_live) {
    std::printf("FAIL: a kept block was freed (through a global and registers: %s; through shared memory: %s)\n",
                kept_live ? "live" : "freed", shared_live ? "live" : "freed");
    ok = false;
  }
  std::printf(
      "%llu passes, reclaimed %llu, spared %llu; %ld moves, %ld shared moves, %ld threads, %ld forks, %ld sleeps; "
      "lost %d\n",
      static_cast<unsigned long long>(ls.passes), static_cast<unsigned long long>(ls.reclaimed_objects),
      static_cast<unsigned long long>(ls.referenced_objects), g_moves.load(), g_shared_moves.load(), g_spawned.load(),
      g_forks.load(), g_sleeps.load(), g_lost.load());
  if (ls.passes < static_cast<std::uint64_t>(passes) || ls.reclaimed_objects < 1800 ||
      ls.referenced_objects < kChainLength + 2)
    ok = false;
  std::printf("%s\n", ok ? "roots stress: OK" : "roots stress: FAILED");
  return ok ? 0 : 1;
}

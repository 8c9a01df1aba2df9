// tests/shim/roots/stale_plugin.cpp — the plug-in of shim.roots.kmm_stacks: while dlopen runs
// its constructor (before kmm starts its collector threads, which it does when dlopen
// returns), it leaks 64 small blocks and one huge block, and leaves their addresses as stale
// words in thread stacks that glibc keeps for its next threads — kmm's. The blocks are
// referenced from nowhere else: the plug-in keeps only their complements.
//
// How the stacks get the words: four threads run at once (four distinct stacks), each writes
// the addresses over 14 KiB of its stack below its own frame and exits. glibc caches an
// exited thread's stack and hands it to the next pthread_create of the same size, keeping
// (not zeroing) its contents; at exit it gives back only what lies more than 16 KiB below the
// thread's start frame (advise_stack_range), so the words stay. kmm's pass runner and idle
// collector thread then run on these stacks.
// Depends on: libc and pthreads only (a plain plug-in: no kmm API).
#include <pthread.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "stale_words.h"

namespace {
constexpr int kSmallLeaks = 64;
constexpr std::size_t kHugeLeakBytes = 6u << 20;  // over 4 MiB: one of kmm's huge blocks
constexpr std::size_t kPlantBytes = 14u << 10;    // below the 16 KiB glibc keeps at exit
constexpr int kPlanters = 4;

std::uintptr_t g_hidden[kSmallLeaks + 1];  // ~address of each leak, the huge one last
pthread_barrier_t g_all_planted;

void* planter(void*) {
  volatile std::uintptr_t here = 0;
  // From 512 bytes below this frame down: dead stack, which this thread never uses again.
  fill_stack_below(&here, 512, 512 + kPlantBytes, g_hidden, kSmallLeaks + 1);
  // Every planter alive at once: each has its own stack, so glibc caches four.
  pthread_barrier_wait(&g_all_planted);
  return nullptr;
}

__attribute__((constructor)) void leak_and_plant() {
  for (int i = 0; i < kSmallLeaks; ++i) {
    void* p = std::malloc(48);
    if (p == nullptr) return;
    std::memset(p, 0x5a, 48);
    g_hidden[i] = ~reinterpret_cast<std::uintptr_t>(p);
  }
  void* huge = std::malloc(kHugeLeakBytes);
  if (huge == nullptr) return;
  std::memset(huge, 0x5a, 4096);
  g_hidden[kSmallLeaks] = ~reinterpret_cast<std::uintptr_t>(huge);
  pthread_barrier_init(&g_all_planted, nullptr, kPlanters);
  pthread_t t[kPlanters];
  for (auto& th : t)
    if (pthread_create(&th, nullptr, planter, nullptr) != 0) std::abort();  // (the barrier would wait for ever)
  for (auto& th : t) pthread_join(th, nullptr);
}
}  // namespace

// The leaks' addresses, complemented (so that the host's copy is no reference either), and
// how many there are; 0 when the constructor could not allocate.
extern "C" int plugin_hidden_leaks(std::uintptr_t* out, int cap) {
  if (g_hidden[kSmallLeaks] == 0) return 0;
  int n = cap < kSmallLeaks + 1 ? cap : kSmallLeaks + 1;
  std::memcpy(out, g_hidden, static_cast<std::size_t>(n) * sizeof out[0]);
  return n;
}

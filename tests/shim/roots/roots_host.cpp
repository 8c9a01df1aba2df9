// tests/shim/roots/roots_host.cpp — shim.roots: reclaim-unreachable in a real process keeps
// every block the host still references and reclaims the plug-in's leak (issue 20).
//
// Run under `kmm exec --protect=reclaim-unreachable --gc-delay=200ms -- roots-host PLUGIN.so`.
// The plug-in leaks 2,000 small blocks and a huge one, and hands the host blocks it never
// transfers (they stay the plug-in's). The host keeps each in one kind of root only: a global,
// a local of main, another thread's stack (that thread blocked in read), the main thread's
// TLS and another thread's TLS, an mmapped buffer, a register of a spinning thread (on x86-64
// also an SSE register of another and the upper half of a third's AVX register), a static
// of another shared object (libroots-holder.so), a chain of ten blocks reachable only from
// the first, a huge block in a global, an anonymous page the host sealed read-only (mprotect),
// and the stack of a thread that shares one guarded mapping with a second thread's stack
// above it (pthread_attr_setstack: both stacks carved out of one mapping, as a thread made
// with guardsize 0 shares one with the stack below it; before stop 48 the upper thread's
// stack pointer hid the lower thread's live frames, and both of these blocks were freed). After dlclose and a pass,
// every kept block must still hold its bytes (after the host has allocated and dirtied as much again, so that a wrongly
// freed block would have been reused), the scan must have spared them, and at least 90 % of the leak must be reclaimed,
// the huge leak included. Exit status 0 when all holds.
//
// With --sigpwr-blocked one more thread blocks SIGPWR, kmm's stop signal: the world cannot
// stop, and the pass must then only report (nothing reclaimed, every kept block intact).
//
// With --seccomp the host installs a seccomp filter that kills the process on a clone that
// does not make a thread (a sandbox's kind): kmm must not fork under a filter (the pass marks
// in place, and says why), so the host lives and every kept block is spared.
//
// With --wipe-on-fork (--dont-fork) one more block is kept, only in a mapping a fork does not
// copy: MADV_WIPEONFORK (the copy's is empty), MADV_DONTFORK (the copy has none). kmm's
// snapshot mark (gc_snapshot, a forked copy) would miss it: it must notice, mark with the
// world stopped instead, and spare the block.
//
// The host does not link kmm: it finds the kmm_* API with dlsym, so the same program runs on
// any build of the preload library (this test failed on the one before issue 20: every
// block was reclaimed and the host read freed memory).
#include <dlfcn.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kmm/kmm.h"
#include "roots_pattern.h"

extern "C" void holder_keep(void* p);
extern "C" void* holder_get();

namespace {

using GiveFn = void* (*)(int, void*);
using GiveChainFn = void* (*)(int, int);
using GiveHugeFn = void* (*)(int);
using LeakFn = int (*)(int);

GiveFn give;
GiveChainFn give_chain;
GiveHugeFn give_huge;

enum Tag : int {
  kGlobal = 1,
  kMainLocal = 2,
  kHolder = 3,
  kMainTls = 4,
  kMmap = 5,
  kHuge = 6,
  kThreadStack = 7,
  kThreadTls = 8,
  kRegister = 9,
  kWipeOnFork = 10,  // --fork-hidden only
  kDontFork = 11,
  kXmm = 12,          // x86-64: in an SSE register of a spinning thread
  kYmmHigh = 13,      // x86-64 with AVX: in the upper half of an AVX register
  kSealed = 14,       // in an anonymous page made read-only
  kSharedStack = 15,  // on a thread's stack, below another thread's in the same mapping
  kChain = 20,        // 20 .. 29
};
constexpr int kChainLength = 10;
constexpr int kKept = 11 + kChainLength;  // and, on x86-64, the vector registers' (main)
constexpr int kLeaks = 2000;

void* g_global;
void* g_huge;
thread_local void* t_tls;
char* g_mapped;
constexpr std::size_t kMappedBytes = 1u << 20;
constexpr std::size_t kMappedAt = 700000;

std::atomic<int> g_ready{0};
std::atomic<bool> g_stop_spin{false};
int g_pipe_stack[2], g_pipe_tls[2], g_pipe_blocked[2], g_pipe_shared[2];
char* g_sealed;         // an anonymous page of the host's, read-only once the pointer is in it
char* g_shared_stacks;  // one mapping: a guard page, then the lower and the upper thread's stacks
constexpr std::size_t kSharedStackBytes = 256 * 1024;

bool check_block(const char* what, const void* p, int tag) {
  bool ok = p != nullptr && check_pattern(p, kBlockBytes, tag);
  if (!ok) std::printf("FAIL: the block kept in %s lost its bytes\n", what);
  return ok;
}

void wait_pipe(int fd) {
  char c;
  while (read(fd, &c, 1) < 0 && errno == EINTR) {
  }
}

void* stack_thread(void*) {
  void* volatile mine = give(kThreadStack, nullptr);  // only here, on this thread's stack
  g_ready.fetch_add(1);
  wait_pipe(g_pipe_stack[0]);  // blocked in a system call while the pass runs
  return reinterpret_cast<void*>(check_block("another thread's stack", mine, kThreadStack));
}

// Two threads whose stacks lie in one mapping, the upper one's right above the lower one's:
// the lower one keeps a block on its stack only, and both block in read while the pass runs.
// The block comes through a global that the thread clears: main's frames and registers and
// the plug-in's keep no copy of its address.
void* volatile g_handoff;

void* shared_stack_lower(void*) {
  void* volatile mine = g_handoff;
  g_handoff = nullptr;
  g_ready.fetch_add(1);
  wait_pipe(g_pipe_shared[0]);
  return reinterpret_cast<void*>(check_block("a stack below another thread's in one mapping", mine, kSharedStack));
}

void* shared_stack_upper(void*) {
  g_ready.fetch_add(1);
  wait_pipe(g_pipe_shared[0]);
  return reinterpret_cast<void*>(1);
}

bool start_on_shared_stack(pthread_t* t, void* (*fn)(void*), std::size_t index) {
  pthread_attr_t a;
  pthread_attr_init(&a);
  bool ok = pthread_attr_setstack(&a, g_shared_stacks + 4096 + index * kSharedStackBytes, kSharedStackBytes) == 0 &&
            pthread_create(t, &a, fn, nullptr) == 0;
  pthread_attr_destroy(&a);
  return ok;
}

void* tls_thread(void*) {
  t_tls = give(kThreadTls, nullptr);
  g_ready.fetch_add(1);
  wait_pipe(g_pipe_tls[0]);
  return reinterpret_cast<void*>(check_block("another thread's TLS", t_tls, kThreadTls));
}

void* blocked_thread(void*) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPWR);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  g_ready.fetch_add(1);
  wait_pipe(g_pipe_blocked[0]);
  return reinterpret_cast<void*>(1);
}

void* spin_thread(void*) {
  void* p = give(kRegister, nullptr);
  g_ready.fetch_add(1);
  // The pointer lives in a register for the whole loop: the compiler may not spill it (it
  // must be in a register at each asm), and nothing else holds it.
  while (!g_stop_spin.load(std::memory_order_relaxed)) asm volatile("" : "+r"(p));
  return reinterpret_cast<void*>(check_block("a register of a spinning thread", p, kRegister));
}

#if defined(__x86_64__)
// Every general register but the stack and frame pointers zeroed: the copies of a pointer
// moved into a vector register that they still held are gone.
#define ZERO_GENERAL_REGISTERS()                                                                                 \
  asm volatile(                                                                                                  \
      "xor %%eax, %%eax\n\txor %%ebx, %%ebx\n\txor %%ecx, %%ecx\n\txor %%edx, %%edx\n\txor %%esi, %%esi\n\t"     \
      "xor %%edi, %%edi\n\txor %%r8d, %%r8d\n\txor %%r9d, %%r9d\n\txor %%r10d, %%r10d\n\txor %%r11d, %%r11d\n\t" \
      "xor %%r12d, %%r12d\n\txor %%r13d, %%r13d\n\txor %%r14d, %%r14d\n\txor %%r15d, %%r15d" ::                  \
          : "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "memory")

// The only pointer to a block in a vector register of a spinning thread: the scan must read
// the vector state of the stop's signal frame (XMM0-15, and the upper halves of the AVX
// registers, which the frame keeps apart from their lower halves). Each fails when kmm
// leaves the vector state out.
void* xmm_thread(void*) {
  void* p = give(kXmm, nullptr);
  __m128i x = _mm_cvtsi64_si128(reinterpret_cast<long long>(p));
  p = nullptr;
  ZERO_GENERAL_REGISTERS();
  g_ready.fetch_add(1);
  while (!g_stop_spin.load(std::memory_order_relaxed)) asm volatile("" : "+x"(x));
  p = reinterpret_cast<void*>(_mm_cvtsi128_si64(x));
  return reinterpret_cast<void*>(check_block("an SSE register of a spinning thread", p, kXmm));
}

__attribute__((target("avx"))) void* ymm_high_thread(void*) {
  void* p = give(kYmmHigh, nullptr);
  // Loaded from memory straight into lane 3, the upper half: no register's lower half (which
  // the frame keeps with XMM0-15) ever holds it; then the memory is cleared.
  alignas(32) long long lanes[4] = {0, 0, 0, reinterpret_cast<long long>(p)};
  __m256i y;
  asm volatile("vmovdqa %1, %0" : "=x"(y) : "m"(lanes));
  for (long long& l : lanes) *static_cast<volatile long long*>(&l) = 0;
  p = nullptr;
  ZERO_GENERAL_REGISTERS();
  g_ready.fetch_add(1);
  while (!g_stop_spin.load(std::memory_order_relaxed)) asm volatile("" : "+x"(y));
  p = reinterpret_cast<void*>(_mm256_extract_epi64(y, 3));
  return reinterpret_cast<void*>(check_block("the upper half of an AVX register of a spinning thread", p, kYmmHigh));
}
#endif

// Gives the blocks kept in globals, TLS, the mapping and the other object; its frame (and any
// copy it left there) is below main's stack pointer when the pass runs.
__attribute__((noinline)) bool setup_roots() {
  g_global = give(kGlobal, nullptr);
  holder_keep(give(kHolder, nullptr));
  t_tls = give(kMainTls, nullptr);
  g_mapped =
      static_cast<char*>(mmap(nullptr, kMappedBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (g_mapped == MAP_FAILED) return false;
  void* m = give(kMmap, nullptr);
  std::memcpy(g_mapped + kMappedAt, &m, sizeof m);
  g_sealed = static_cast<char*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (g_sealed == MAP_FAILED) return false;
  void* sealed = give(kSealed, nullptr);
  std::memcpy(g_sealed + 128, &sealed, sizeof sealed);
  if (mprotect(g_sealed, 4096, PROT_READ) != 0) return false;
  g_shared_stacks = static_cast<char*>(
      mmap(nullptr, 4096 + 2 * kSharedStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (g_shared_stacks == MAP_FAILED || mprotect(g_shared_stacks, 4096, PROT_NONE) != 0) return false;
  g_huge = give_huge(kHuge);
  // The chain hangs off the global block's `next` word: its ten blocks are reachable only
  // through blocks of the unloaded plug-in (the scan must follow them).
  void* chain = give_chain(kChain, kChainLength);
  std::memcpy(g_global, &chain, sizeof chain);
  return g_global != nullptr && holder_get() != nullptr && t_tls != nullptr && m != nullptr && g_huge != nullptr &&
         chain != nullptr;
}

// --fork-hidden: a block whose only pointer lies in a mapping advised `advice`.
__attribute__((noinline)) char* hide_from_fork(int advice, int tag) {
  auto* m = static_cast<char*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (m == MAP_FAILED || madvise(m, 4096, advice) != 0) return nullptr;
  void* p = give(tag, nullptr);
  std::memcpy(m + 64, &p, sizeof p);
  return p != nullptr ? m : nullptr;
}
char* g_wipe_map;

// --seccomp: clone(2) without CLONE_THREAD kills the process; every other call is allowed
// (threads come from clone3 or clone with CLONE_THREAD).
bool kill_on_process_clone() {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 2),  // not clone: allowed
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
  };
  // A clone without CLONE_THREAD jumps to the kill.
  struct sock_fprog prog {
    static_cast<unsigned short>(sizeof f / sizeof f[0]), f
  };
  // TSYNC: every thread of the process, kmm's collector threads (made at the dlopen) included.
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) == 0;
}
char* g_dontfork_map;

__attribute__((noinline)) void* give_shared_stack_block() {
  return give(kSharedStack, nullptr);
}

__attribute__((noinline)) void* give_for_main() {
  return give(kMainLocal, nullptr);
}

// Allocates and dirties as much as was kept: a kept block wrongly freed is reused here.
__attribute__((noinline)) void churn() {
  static void* blocks[4000];
  for (auto& b : blocks) {
    b = std::malloc(kBlockBytes);
    if (b != nullptr) std::memset(b, 0xee, kBlockBytes);
  }
  for (auto& b : blocks) std::free(b);
}

template <typename T>
T api(const char* name) {
  return reinterpret_cast<T>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

int main(int argc, char** argv) {
  bool blocked = argc == 3 && std::strcmp(argv[1], "--sigpwr-blocked") == 0;
  bool wipe = argc == 3 && std::strcmp(argv[1], "--wipe-on-fork") == 0;
  bool dontfork = argc == 3 && std::strcmp(argv[1], "--dont-fork") == 0;
  bool fork_hidden = wipe || dontfork;
  bool seccomp = argc == 3 && std::strcmp(argv[1], "--seccomp") == 0;
  if (argc != 2 && !blocked && !fork_hidden && !seccomp) {
    std::fprintf(stderr, "usage: %s [--sigpwr-blocked | --wipe-on-fork | --dont-fork | --seccomp] PLUGIN.so\n",
                 argv[0]);
    return 2;
  }
  const char* path = argv[argc - 1];
  std::setvbuf(stdout, nullptr, _IONBF, 0);  // what was printed survives a crash
  auto leaks = api<int (*)(kmm_leak_stats*)>("kmm_leaks");
  auto usage = api<int (*)(const char*, kmm_usage*)>("kmm_module_usage");
  if (leaks == nullptr || usage == nullptr) {
    std::fprintf(stderr, "roots-host: not running on kmm (run it under kmm exec)\n");
    return 2;
  }
  const char* name = std::strrchr(path, '/') != nullptr ? std::strrchr(path, '/') + 1 : path;
  void* plugin = dlopen(path, RTLD_NOW);
  if (plugin == nullptr) {
    std::fprintf(stderr, "roots-host: dlopen: %s\n", dlerror());
    return 2;
  }
  give = reinterpret_cast<GiveFn>(dlsym(plugin, "plugin_give"));
  give_chain = reinterpret_cast<GiveChainFn>(dlsym(plugin, "plugin_give_chain"));
  give_huge = reinterpret_cast<GiveHugeFn>(dlsym(plugin, "plugin_give_huge"));
  auto leak = reinterpret_cast<LeakFn>(dlsym(plugin, "plugin_leak"));
  if (give == nullptr || give_chain == nullptr || give_huge == nullptr || leak == nullptr) return 2;
  if (pipe(g_pipe_stack) != 0 || pipe(g_pipe_tls) != 0 || pipe(g_pipe_blocked) != 0 || pipe(g_pipe_shared) != 0)
    return 2;

  if (leak(kLeaks) != kLeaks + 1 || !setup_roots()) {
    std::printf("FAIL: the plug-in could not allocate\n");
    return 1;
  }
  if (fork_hidden) {
    if (wipe) g_wipe_map = hide_from_fork(MADV_WIPEONFORK, kWipeOnFork);
    if (dontfork) g_dontfork_map = hide_from_fork(MADV_DONTFORK, kDontFork);
    if (g_wipe_map == nullptr && g_dontfork_map == nullptr) {
      std::printf("FAIL: MADV_WIPEONFORK / MADV_DONTFORK refused\n");
      return 1;
    }
  }
  if (seccomp && !kill_on_process_clone()) {
    std::printf("FAIL: seccomp filter refused\n");
    return 1;
  }
  void* volatile main_local = give_for_main();
  pthread_t threads[8];
  int nthreads = 0;
  g_handoff = give_shared_stack_block();
  if (!start_on_shared_stack(&threads[nthreads++], shared_stack_lower, 0) ||
      !start_on_shared_stack(&threads[nthreads++], shared_stack_upper, 1)) {
    std::printf("FAIL: threads on program-placed stacks refused\n");
    return 1;
  }
  pthread_create(&threads[nthreads++], nullptr, stack_thread, nullptr);
  pthread_create(&threads[nthreads++], nullptr, tls_thread, nullptr);
  pthread_create(&threads[nthreads++], nullptr, spin_thread, nullptr);
  if (blocked) pthread_create(&threads[nthreads++], nullptr, blocked_thread, nullptr);
  int vector_kept = 0;
#if defined(__x86_64__)
  pthread_create(&threads[nthreads++], nullptr, xmm_thread, nullptr);
  ++vector_kept;
  if (__builtin_cpu_supports("avx")) {
    pthread_create(&threads[nthreads++], nullptr, ymm_high_thread, nullptr);
    ++vector_kept;
  }
#endif
  while (g_ready.load() != nthreads) usleep(1000);
  kmm_usage before{};
  usage(name, &before);
  std::printf("loaded: %s owns %llu blocks (%llu bytes)\n", name, static_cast<unsigned long long>(before.objects),
              static_cast<unsigned long long>(before.bytes));

  give = nullptr;
  give_chain = nullptr;
  give_huge = nullptr;
  dlclose(plugin);
  kmm_leak_stats ls{};
  // Up to 20 s: the collector runs at idle priority. A pass whose world stop timed out (a
  // thread not scheduled within 1 s on a very busy machine) only reports: wait for the next.
  // The huge leak may go in a later slice than the small blocks (the shim.roots flake on a
  // loaded machine: 2,000 blocks reclaimed, the huge one still there when this loop stopped).
  kmm_usage after{};
  for (int i = 0; i < 400; ++i) {
    usleep(50 * 1000);
    leaks(&ls);
    usage(name, &after);
    if (blocked ? ls.passes >= 1 : ls.reclaimed_objects >= kLeaks * 9 / 10 && after.bytes < 2 * kHugeBytes) break;
  }
  usage(name, &after);
  std::printf(
      "collector: %llu passes, reclaimed %llu blocks, spared %llu referenced; %s owns %llu blocks (%llu bytes)\n",
      static_cast<unsigned long long>(ls.passes), static_cast<unsigned long long>(ls.reclaimed_objects),
      static_cast<unsigned long long>(ls.referenced_objects), name, static_cast<unsigned long long>(after.objects),
      static_cast<unsigned long long>(after.bytes));
  churn();

  bool ok = ls.passes >= 1;
  if (!ok) std::printf("FAIL: no pass ran\n");
  ok = check_block("a global", g_global, kGlobal) && ok;
  ok = check_block("a local of main", main_local, kMainLocal) && ok;
  ok = check_block("a static of another shared object", holder_get(), kHolder) && ok;
  ok = check_block("the main thread's TLS", t_tls, kMainTls) && ok;
  void* m;
  std::memcpy(&m, g_mapped + kMappedAt, sizeof m);
  ok = check_block("an mmapped buffer", m, kMmap) && ok;
  std::memcpy(&m, g_sealed + 128, sizeof m);
  ok = check_block("an anonymous page made read-only", m, kSealed) && ok;
  if (!check_pattern(g_huge, kHugeBytes, kHuge)) {
    std::printf("FAIL: the huge block kept in a global lost its bytes\n");
    ok = false;
  }
  if (wipe) {
    std::memcpy(&m, g_wipe_map + 64, sizeof m);
    ok = check_block("a MADV_WIPEONFORK mapping", m, kWipeOnFork) && ok;
  }
  if (dontfork) {
    std::memcpy(&m, g_dontfork_map + 64, sizeof m);
    ok = check_block("a MADV_DONTFORK mapping", m, kDontFork) && ok;
  }
  void* link;
  std::memcpy(&link, g_global, sizeof link);
  for (int i = 0; i < kChainLength; ++i) {
    if (!check_block("a chain", link, kChain + i)) {
      ok = false;
      break;
    }
    std::memcpy(&link, link, sizeof link);
  }
  g_stop_spin.store(true);
  (void)!write(g_pipe_stack[1], "x", 1);
  (void)!write(g_pipe_tls[1], "x", 1);
  (void)!write(g_pipe_blocked[1], "x", 1);
  (void)!write(g_pipe_shared[1], "xx", 2);
  for (int i = 0; i < nthreads; ++i) {
    void* r = nullptr;
    pthread_join(threads[i], &r);
    ok = r != nullptr && ok;
  }
  if (blocked) {
    // The world could not stop: the pass must not have reclaimed anything.
    if (ls.reclaimed_objects != 0 || ls.leak_objects < static_cast<std::uint64_t>(kLeaks)) {
      std::printf("FAIL: with a thread that cannot stop, reclaimed %llu and reported %llu (want 0 and >= %d)\n",
                  static_cast<unsigned long long>(ls.reclaimed_objects),
                  static_cast<unsigned long long>(ls.leak_objects), kLeaks);
      ok = false;
    }
    std::printf("%s\n", ok ? "roots: OK" : "roots: FAILED");
    return ok ? 0 : 1;
  }
  int kept = kKept + vector_kept + (fork_hidden ? 1 : 0);
  if (ls.referenced_objects < static_cast<std::uint64_t>(kept)) {
    std::printf("FAIL: the scan spared %llu blocks, the host keeps %d\n",
                static_cast<unsigned long long>(ls.referenced_objects), kept);
    ok = false;
  }
  if (ls.reclaimed_objects < kLeaks * 9 / 10) {
    std::printf("FAIL: reclaimed %llu of the %d leaked blocks (want >= 90 %%)\n",
                static_cast<unsigned long long>(ls.reclaimed_objects), kLeaks + 1);
    ok = false;
  }
  if (after.bytes >= 2 * kHugeBytes) {
    std::printf("FAIL: the plug-in's huge leak was not reclaimed (%llu bytes left)\n",
                static_cast<unsigned long long>(after.bytes));
    ok = false;
  }
  std::printf("%s\n", ok ? "roots: OK" : "roots: FAILED");
  return ok ? 0 : 1;
}

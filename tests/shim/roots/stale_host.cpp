// tests/shim/roots/stale_host.cpp — shim.roots.kmm_stacks: stale words in kmm's own threads'
// stacks are not roots. The collector's pass runs on kmm's threads; a slot that its frames
// never write (a text buffer, padding) keeps whatever an earlier call left there, and the
// scan read those stacks like the program's: a leak whose address lay there was spared in
// every pass, for ever (one of the places of the shim.roots flake, where the huge leak was
// kept through 95 passes; --sigframe tests the other).
//
// Run under `kmm exec --protect=reclaim-unreachable --gc-delay=200ms -- stale-host PLUGIN.so`.
// The plug-in (stale_plugin.cpp) leaks 64 small blocks and a huge one in its constructor and
// leaves their addresses in thread stacks that glibc then gives to kmm's collector threads.
// The host checks that the words really are there (else the test would prove nothing: it
// fails), unloads the plug-in, and wants every leak reclaimed: no thread of the program
// references them. It failed before kmm left its own threads' stacks out of the roots.
//
// With --sigframe a thread of the host's leaves the addresses where the stop's signal frame
// will be pushed on its stack (see sleeper below).
//
// With --collect (run it with a gc-delay no pass reaches by itself) the passes are the host's
// own kmm_collect() calls, after it has left the addresses below its own stack pointer too:
// a pass run on the calling thread would have its frames there. The library before ran it
// there and spared all 65, every run, even with kmm's threads left out.
//
// The host does not link kmm: it finds the kmm_* API with dlsym.
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kmm/kmm.h"
#include "stale_words.h"

namespace {

constexpr int kLeaks = 65;  // 64 small blocks and the huge one
std::uintptr_t g_hidden[kLeaks];

// The whole of a small /proc file, NUL-terminated; false when unreadable.
bool read_text(const char* path, char* buf, std::size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, cap - 1 - n);
    if (r <= 0) break;
    n += static_cast<std::size_t>(r);
  }
  close(fd);
  buf[n] = '\0';
  return n != 0;
}

// The stack pointer of thread tid while it waits in a system call (the 8th field of
// /proc/self/task/TID/syscall); 0 while it runs.
std::uintptr_t blocked_sp(long tid) {
  char path[64], text[256];
  std::snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", tid);
  if (!read_text(path, text, sizeof text) || std::strncmp(text, "running", 7) == 0) return 0;
  char* p = text;
  for (int field = 0; field < 7; ++field) {  // nr, six arguments, then sp
    p = std::strchr(p, ' ');
    if (p == nullptr) return 0;
    ++p;
  }
  return static_cast<std::uintptr_t>(std::strtoull(p, nullptr, 16));
}

// The lowest address of the mapping holding addr (from /proc/self/maps); 0 when none.
std::uintptr_t mapping_start(std::uintptr_t addr) {
  static char text[1 << 16];
  if (!read_text("/proc/self/maps", text, sizeof text)) return 0;
  for (char* line = text; *line != '\0';) {
    char* end;
    auto lo = static_cast<std::uintptr_t>(std::strtoull(line, &end, 16));
    auto hi = static_cast<std::uintptr_t>(std::strtoull(end + 1, nullptr, 16));
    if (addr >= lo && addr < hi) return lo;
    char* nl = std::strchr(line, '\n');
    if (nl == nullptr) break;
    line = nl + 1;
  }
  return 0;
}

// How many words below sp, in the 64 KiB under it (within its mapping), are a leak's address.
// Compared through the complement, so that no register or frame of this thread keeps one.
__attribute__((noinline)) long count_planted(std::uintptr_t sp) {
  std::uintptr_t lo = mapping_start(sp);
  if (lo == 0) return 0;
  std::uintptr_t from = sp - lo > 65536 ? sp - 65536 : lo;
  long n = 0;
  for (std::uintptr_t at = from; at + sizeof(std::uintptr_t) <= sp; at += sizeof(std::uintptr_t)) {
    std::uintptr_t w = ~*reinterpret_cast<const volatile std::uintptr_t*>(at);
    for (std::uintptr_t h : g_hidden)
      if (w == h) ++n;
  }
  return n;
}

// glibc's cache of exited threads' stacks still holds those of the plug-in's planters that
// kmm's threads did not take: memory of the program, scanned as such, full of the leaks'
// addresses. Eight threads at once take every cached stack, clear what the planters wrote
// (the same place below the same start frame), and give them back clean.
constexpr int kWipers = 8;
pthread_barrier_t g_all_wiped;

void* wiper(void*) {
  volatile std::uintptr_t here = 0;
  fill_stack_below(&here, 256, 256 + (16u << 10), nullptr, 0);
  pthread_barrier_wait(&g_all_wiped);
  return nullptr;
}

bool wipe_cached_stacks() {
  pthread_barrier_init(&g_all_wiped, nullptr, kWipers);
  pthread_t t[kWipers];
  for (auto& th : t)
    if (pthread_create(&th, nullptr, wiper, nullptr) != 0) return false;
  for (auto& th : t) pthread_join(th, nullptr);
  return true;
}

// --collect: the leaks' addresses in this thread's own stack, 6 to 14 KiB below this frame:
// where a pass run on this thread has its deep frames (the mark's and the sweep's), and
// below what kmm_collect's wait for the runner uses (its frames and, when the thread is
// parked, the signal frame of the stop, whose XSAVE area the kernel does not write whole).
// What lies in a parked thread's live frames is the program's to keep, as in any conservative
// scan: planted there, it would be spared rightly.
__attribute__((noinline)) void plant_below_me() {
  volatile std::uintptr_t here = 0;
  fill_stack_below(&here, 6u << 10, 14u << 10, g_hidden, kLeaks);
}

// --sigframe: a thread of the host's with the leaks' addresses 1 to 15 KiB below its frame,
// blocked in read while the passes run: the stop's signal frame is pushed there, and its
// gaps (alignment padding, fields the kernel does not write) keep the addresses. The scan
// must read the registers that frame holds, not the frame (the library before: it read the
// frame, and the handler's own frames below it, and spared the leaks).
int g_sleeper_pipe[2];

void* sleeper(void*) {
  volatile std::uintptr_t here = 0;
  fill_stack_below(&here, 1u << 10, 15u << 10, g_hidden, kLeaks);
  char c;
  while (read(g_sleeper_pipe[0], &c, 1) < 0 && errno == EINTR) {
  }
  return nullptr;
}

// Threads of this process other than the main one: kmm's (the host's wipers are gone).
int other_threads(long* out, int cap) {
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return 0;
  long self = syscall(SYS_gettid);
  int n = 0;
  while (struct dirent* e = readdir(d)) {
    long tid = std::strtol(e->d_name, nullptr, 10);
    if (tid > 0 && tid != self && n < cap) out[n++] = tid;
  }
  closedir(d);
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  bool collect = argc == 3 && std::strcmp(argv[1], "--collect") == 0;
  bool sigframe = argc == 3 && std::strcmp(argv[1], "--sigframe") == 0;
  if (argc != 2 && !collect && !sigframe) {
    std::fprintf(stderr, "usage: %s [--collect | --sigframe] PLUGIN.so\n", argv[0]);
    return 2;
  }
  auto leaks = reinterpret_cast<int (*)(kmm_leak_stats*)>(dlsym(RTLD_DEFAULT, "kmm_leaks"));
  auto usage = reinterpret_cast<int (*)(const char*, kmm_usage*)>(dlsym(RTLD_DEFAULT, "kmm_module_usage"));
  auto collect_now = reinterpret_cast<void (*)()>(dlsym(RTLD_DEFAULT, "kmm_collect"));
  if (leaks == nullptr || usage == nullptr || collect_now == nullptr) {
    std::fprintf(stderr, "stale-host: not running on kmm (run it under kmm exec)\n");
    return 2;
  }
  const char* path = argv[argc - 1];
  const char* name = std::strrchr(path, '/') != nullptr ? std::strrchr(path, '/') + 1 : path;
  void* plugin = dlopen(path, RTLD_NOW);
  if (plugin == nullptr) {
    std::fprintf(stderr, "stale-host: dlopen: %s\n", dlerror());
    return 2;
  }
  auto hidden = reinterpret_cast<int (*)(std::uintptr_t*, int)>(dlsym(plugin, "plugin_hidden_leaks"));
  if (hidden == nullptr || hidden(g_hidden, kLeaks) != kLeaks) {
    std::printf("FAIL: the plug-in could not allocate its leaks\n");
    return 1;
  }
  kmm_usage before{};
  usage(name, &before);
  std::printf("loaded: %s owns %llu blocks (%llu bytes)\n", name, static_cast<unsigned long long>(before.objects),
              static_cast<unsigned long long>(before.bytes));
  if (before.objects < kLeaks) {
    std::printf("FAIL: the constructor's blocks are not the plug-in's\n");
    return 1;
  }

  if (!wipe_cached_stacks()) {  // (a thread that fails to start leaves the others waiting: the test times out)
    std::printf("FAIL: cannot start threads\n");
    return 1;
  }
  // kmm's threads, each waiting in a system call: the leaks' addresses must lie below their
  // stack pointers, or this test proves nothing.
  long tids[16];
  int nt = 0;
  long planted = 0;
  for (int tries = 0; tries < 200 && planted == 0; ++tries) {
    usleep(10 * 1000);
    nt = other_threads(tids, 16);
    if (nt < 2) continue;  // the pass runner and the idle collector thread
    for (int i = 0; i < nt; ++i)
      if (std::uintptr_t sp = blocked_sp(tids[i])) planted += count_planted(sp);
  }
  std::printf("kmm threads: %d; stale leak addresses below their stack pointers: %ld\n", nt, planted);
  if (planted == 0) {
    std::printf("FAIL: no stale address in kmm's stacks (did glibc not reuse the plug-in's thread stacks?)\n");
    return 1;
  }

  pthread_t sleeper_thread;
  if (sigframe && (pipe(g_sleeper_pipe) != 0 || pthread_create(&sleeper_thread, nullptr, sleeper, nullptr) != 0)) {
    std::printf("FAIL: cannot start the sleeping thread\n");
    return 1;
  }
  dlclose(plugin);
  kmm_leak_stats ls{};
  kmm_usage after{};
  for (int i = 0; i < 400; ++i) {
    if (collect) {
      plant_below_me();
      collect_now();
    } else {
      usleep(50 * 1000);
    }
    leaks(&ls);
    usage(name, &after);
    if (ls.passes >= 1 && after.objects == 0) break;
    if (collect && i == 9) break;  // ten passes of the host's own
  }
  std::printf("collector: %llu passes, reclaimed %llu blocks, spared %llu referenced; %s owns %llu blocks\n",
              static_cast<unsigned long long>(ls.passes), static_cast<unsigned long long>(ls.reclaimed_objects),
              static_cast<unsigned long long>(ls.referenced_objects), name,
              static_cast<unsigned long long>(after.objects));
  if (sigframe) {
    (void)!write(g_sleeper_pipe[1], "x", 1);
    pthread_join(sleeper_thread, nullptr);
  }
  bool ok = ls.passes >= 1 && after.objects == 0 && ls.reclaimed_objects >= kLeaks;
  std::printf("%s\n", ok ? "kmm stacks: OK" : "kmm stacks: FAILED");
  return ok ? 0 : 1;
}

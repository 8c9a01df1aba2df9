// kmm/shim/roots.cpp — the roots of a real process and the world stop, for reclaim-unreachable.
//
// What it does. The collector's reachability scan (protect/collector.h) spares a block of an
// unloaded plug-in when some word of live memory points into it. In the modelled machine that
// memory is the live blocks plus registered roots; in a real process it is also everything the
// program holds outside kmm's blocks. This file is the collector's RootProvider there:
//   stop_world   parks every other thread of the process in a signal handler (kStopSignal,
//                SA_RESTART, every other signal blocked while parked) that publishes its
//                stack pointer and its saved registers (the ucontext), as Boehm GC does.
//                Threads are listed from /proc/self/task and the list is read again until a
//                listing finds no thread that is not parked yet (a parked thread cannot create
//                threads, so this ends; a thread created meanwhile is found by the next
//                listing). A thread whose mask blocks the signal (read from /proc before
//                any thread is signalled) refuses the stop; one that does not park within
//                kStopTimeoutNs all the same fails it: the world restarts, the pass only
//                reports, and the next few passes (1, 2, 4 .. 16) do not try.
//                fork cannot happen meanwhile: the fork handlers take the idle lock that the
//                collector holds during a pass (alloc.cpp, modules.cpp).
//   scan_roots   reads /proc/self/maps and scans every readable and writable private mapping
//                (and shared anonymous memory: memfd, /dev/zero, SysV, /dev/shm), which is the
//                data and bss of every loaded object (their PT_LOAD segments with PF_W), the
//                threads' stacks and their static TLS (glibc keeps it at the top of each
//                thread's stack mapping), dynamic TLS and the main thread's TLS (malloc'd or
//                ld.so's mappings), other allocators' arenas and whatever the program mapped
//                itself. Left out: kmm's RAM (its live blocks are scanned as blocks, by the
//                collector's walk), the huge blocks' mappings and their table (the same, by
//                the huge space), this file's scratch mapping (copies of scanned memory), and,
//                in each stack mapping, what lies below the lowest stack pointer of the
//                threads in it (stale frames are not roots; a mapping may hold two threads'
//                stacks), and kmm's own threads' stacks below their first frames (kmm's
//                frames only: OwnThread). Device mappings and shared file mappings are not
//                read. Every read goes through process_vm_readv on the process itself (a
//                pipe when that is refused): an unreadable page gives an error, never a
//                fault. Then the saved registers of every parked thread (thread_context.h:
//                copied out of its signal frame). The calling thread's own stack is scanned
//                from the current frame up, with its callee-saved registers spilled first.
//   start_world  releases the parked threads (a futex on the stop epoch).
//   mark_in_snapshot (gc_snapshot=on, the default) shortens the stop to the making of a copy:
//                with every other thread parked, the process is forked (a raw clone: no
//                atfork handler, no exit signal, its own fd table closed), the world restarts at
//                once, and the copy — memory frozen at the stop, the parked threads' stacks
//                and registers in it — scans the roots and marks into a shared bitmap, then
//                exits. The copy is trusted only when it holds every mapping the process had
//                (MADV_DONTFORK, MADV_WIPEONFORK break that): else the mark runs again in
//                place, with the world stopped, and every later pass marks in place.
// kmm's own data and bss are read like any object's: they hold kmm's metadata (pointers to
// kmm's frames, caches and free blocks, none of which is an unloaded plug-in's live block)
// and the bootstrap arena, which is program data. The one kmm structure that points at live
// blocks, the huge table, is its own mapping and is skipped.
//
// Depends on: shim.h, proc_maps.h (the maps, parsed), thread_context.h (a parked thread's
// registers), protect/collector.h, Linux (/proc, tgkill, futex, process_vm_readv).
// Nothing here allocates or takes a lock a parked thread could hold: while the world is
// stopped only system calls and this file's static scratch mapping are used.
// Invariants: g_stop_epoch is odd exactly while a stop is under way; a slot's state goes
// 0 (signalled) -> 1 (parked: sp and regs valid) or 2 (gone) within one stop. A snapshot's
// copy is forked only while every thread of the process but the caller is parked, and is
// reaped before mark_in_snapshot returns.
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/report.h"
#include "base/text.h"
#include "shim/proc_maps.h"
#include "shim/shim.h"
#include "shim/thread_context.h"

namespace kmm::shim {
namespace {

constexpr int kStopSignal = SIGPWR;  // as Boehm GC on Linux; rarely a program's own
constexpr unsigned kMaxThreads = 4096;
constexpr unsigned kMaxMaps = 32768;
constexpr std::size_t kMaxExcl = 65536 + 2 * kMaxThreads + 64;
// A parked thread's registers (thread_context.h; where its signal frame is not understood,
// the start of mcontext_t: the general registers).
constexpr std::size_t kRegBytes = kThreadContextBytes;
static_assert(kRegBytes >= sizeof(mcontext_t));
// The most a signal frame and the stop handler's frames take below the interrupted stack
// pointer (x86-64 with AMX state: about 11 KiB).
constexpr std::uintptr_t kMaxSignalFrameBytes = 64 * 1024;
constexpr std::size_t kCopyBytes = 256 * 1024;
constexpr std::size_t kMapsTextBytes = 8u << 20;
constexpr std::uint64_t kStopTimeoutNs = 1'000'000'000ull;
constexpr std::uint64_t kCopyTimeoutNs = 60'000'000'000ull;  // a snapshot's copy: its whole mark

struct ThreadSlot {
  pid_t tid;
  int state;  // 0 signalled, 1 parked, 2 gone
  std::uintptr_t sp;  // the lowest address of its stack that the scan reads
  std::size_t reg_bytes;
  alignas(16) unsigned char regs[kRegBytes];
};

struct Scratch {
  ThreadSlot threads[kMaxThreads];
  MapRange maps[kMaxMaps];
  MapRange parent_maps[kMaxMaps];  // a snapshot mark: the process's maps at the stop
  AddrSpan excl[kMaxExcl];
  std::uintptr_t stack_points[kMaxThreads + 1];  // scan_roots: where stale frames start
  alignas(64) unsigned char copy[kCopyBytes];
  char maps_text[kMapsTextBytes];
};

Scratch* g_s = nullptr;
unsigned g_nthreads = 0;
int g_stop_epoch = 0;  // odd: a stop is under way (futex word)
int g_parked = 0;      // threads parked in this stop (futex word)
int g_pipe[2] = {-1, -1};
bool g_use_pipe = false;
bool g_warned = false;
int g_exempt_tid = 0;  // atomic: a kmm thread not to stop (roots_exempt_thread)

// kmm's own threads (the collector's idle thread, the pass runner, the stats server) and the
// frame of each one's start function (roots_own_thread). Below that frame their stacks hold
// kmm's frames only, never a root of the program: the scan leaves it out. Scanned, it could
// spare a leak for ever: a slot a frame never writes (a StackText buffer, padding) still held
// the address of the last block the previous pass's sweep had visited, and every pass ran the
// same frames at the same depths (a debug build of the shim.roots flake's hunt found a huge
// block's address there; shim.roots.kmm_stacks plants leaks' addresses there). A slot is
// written once, by its thread; tid 0: not (yet) written.
struct OwnThread {
  int tid;
  std::uintptr_t entry;
};
constexpr unsigned kMaxOwnThreads = 4;
OwnThread g_own_threads[kMaxOwnThreads];
unsigned g_nr_own_threads = 0;  // slots handed out (atomic)

// The last stop, for the stats and the benchmark.
std::uint64_t g_stop_begin_ns = 0;
std::uint64_t g_stop_begin_cpu_ns = 0;  // the stopping thread's CPU time

std::uint64_t clock_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}
std::uint64_t mono_ns() {
  return clock_ns(CLOCK_MONOTONIC);
}

long futex(int* addr, int op, int val, const struct timespec* ts) {
  return syscall(SYS_futex, addr, op, val, ts, nullptr, 0);
}

pid_t my_tid() {
  return static_cast<pid_t>(syscall(SYS_gettid));
}

void warn(const char* what) {
  if (g_warned) return;
  g_warned = true;
  StackText<200> line;
  line.str("kmm: warning: reclaim-unreachable: ").str(what).str("; passes only report").nl();
  write_report_text(line.data(), line.size());
}

// --- the parked thread's side ----------------------------------------------------------------

void stop_handler(int, siginfo_t*, void* ctx) {
  int saved_errno = errno;
  int epoch = __atomic_load_n(&g_stop_epoch, __ATOMIC_ACQUIRE);
  if ((epoch & 1) == 0) {  // a late or foreign signal: no stop under way
    errno = saved_errno;
    return;
  }
  pid_t tid = my_tid();
  unsigned n = __atomic_load_n(&g_nthreads, __ATOMIC_ACQUIRE);
  ThreadSlot* me = nullptr;
  for (unsigned i = 0; i < n; ++i) {
    if (g_s->threads[i].tid == tid) {
      me = &g_s->threads[i];
      break;
    }
  }
  if (me == nullptr || __atomic_load_n(&me->state, __ATOMIC_ACQUIRE) != 0) {
    errno = saved_errno;
    return;
  }
  // The interrupted code's registers, and its stack from its stack pointer (less the red
  // zone) up; not the signal frame between that and this frame, whose gaps the kernel never
  // writes (thread_context.h). The handler runs on the interrupted stack: a stack pointer
  // that is not just above this frame is no stack pointer (code using the register for
  // something else), and, as for a frame not understood, everything above this frame is
  // kept, the signal frame included.
  volatile char here = 0;
  auto here_at = reinterpret_cast<std::uintptr_t>(&here) & ~std::uintptr_t{sizeof(void*) - 1};
  std::uintptr_t from;
  me->reg_bytes = capture_interrupted_context(ctx, me->regs, kRegBytes, &from);
  me->sp = from > here_at && from - here_at < kMaxSignalFrameBytes ? from : here_at;
  __atomic_store_n(&me->state, 1, __ATOMIC_RELEASE);
  __atomic_add_fetch(&g_parked, 1, __ATOMIC_ACQ_REL);
  futex(&g_parked, FUTEX_WAKE_PRIVATE, 1, nullptr);
  while (__atomic_load_n(&g_stop_epoch, __ATOMIC_ACQUIRE) == epoch)
    futex(&g_stop_epoch, FUTEX_WAIT_PRIVATE, epoch, nullptr);
  errno = saved_errno;
}

// --- the collector's side --------------------------------------------------------------------

// Calls visit(tid) for every thread of /proc/self/task until it returns false; false when the
// listing cannot be read or a visit said stop.
template <typename Visit>
bool for_each_task(Visit visit) {
  int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd < 0) return false;
  alignas(8) char buf[4096];
  bool ok = true;
  for (;;) {
    long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (got < 0) ok = false;
    if (got <= 0) break;
    for (long at = 0; at < got && ok;) {
      struct Dirent {
        std::uint64_t ino;
        std::int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[1];
      };
      const auto* d = static_cast<const Dirent*>(static_cast<const void*>(buf + at));  // records are 8-aligned
      at += d->reclen;
      if (d->name[0] < '0' || d->name[0] > '9') continue;
      pid_t tid = 0;
      for (const char* c = d->name; *c >= '0' && *c <= '9'; ++c) tid = tid * 10 + (*c - '0');
      ok = visit(tid);
    }
    if (!ok) break;
  }
  syscall(SYS_close, fd);
  return ok;
}

// Signals every thread of /proc/self/task not yet in the table; *added: any new one. False
// when the listing cannot be read or the table is full.
bool signal_new_threads(pid_t self, pid_t pid, bool* added) {
  *added = false;
  return for_each_task([&](pid_t tid) {
    if (tid == self || tid == __atomic_load_n(&g_exempt_tid, __ATOMIC_RELAXED)) return true;
    for (unsigned i = 0; i < g_nthreads; ++i)
      if (g_s->threads[i].tid == tid) return true;
    if (g_nthreads == kMaxThreads) return false;
    ThreadSlot& s = g_s->threads[g_nthreads];
    s.tid = tid;
    s.state = 0;
    s.sp = 0;
    __atomic_store_n(&g_nthreads, g_nthreads + 1, __ATOMIC_RELEASE);  // before the signal
    *added = true;
    if (syscall(SYS_tgkill, pid, tid, kStopSignal) != 0) __atomic_store_n(&s.state, 2, __ATOMIC_RELEASE);
    return true;
  });
}

// /proc/self/task/TID/FILE's first cap - 1 bytes into buf, NUL-terminated; false when it
// cannot be read (the thread is gone). System calls only.
bool read_task_file(pid_t tid, const char* file, char* buf, std::size_t cap) {
  StackText<64> path;
  path.str("/proc/self/task/").u(static_cast<std::uint64_t>(tid)).str("/").str(file);
  int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, path.data(), O_RDONLY | O_CLOEXEC));
  if (fd < 0) return false;
  long n = syscall(SYS_read, fd, buf, cap - 1);
  syscall(SYS_close, fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  return true;
}

// The thread's signal mask (the SigBlk line of /proc/self/task/TID/status) holds the stop
// signal. False when it cannot be read (the thread is gone: nothing to wait for).
bool blocks_stop_signal(pid_t tid) {
  char buf[2048];
  if (!read_task_file(tid, "status", buf, sizeof buf)) return false;
  const char* line = std::strstr(buf, "\nSigBlk:");
  if (line == nullptr) return false;
  std::uint64_t mask = 0;
  for (const char* c = line + 8; *c != '\n' && *c != '\0'; ++c) {
    if (*c >= '0' && *c <= '9') mask = mask << 4 | static_cast<std::uint64_t>(*c - '0');
    if (*c >= 'a' && *c <= 'f') mask = mask << 4 | static_cast<std::uint64_t>(*c - 'a' + 10);
  }
  return (mask >> (kStopSignal - 1) & 1) != 0;
}

// The first thread but self (and the exempt one) whose mask blocks the stop signal for 20 ms
// on end, or 0. glibc blocks every signal for a moment in a thread being created and in one
// that exits: a signal sent then waits, and the stop gets its thread a moment later.
pid_t thread_blocking_stop_signal(pid_t self) {
  pid_t found = 0;
  for_each_task([&](pid_t tid) {
    if (tid == self || tid == __atomic_load_n(&g_exempt_tid, __ATOMIC_RELAXED)) return true;
    for (int look = 0; look < 20 && blocks_stop_signal(tid); ++look) {
      if (look == 19) {
        found = tid;
        break;
      }
      struct timespec ms {
        0, 1'000'000
      };
      syscall(SYS_nanosleep, &ms, nullptr);
    }
    return found == 0;
  });
  return found;
}

// A thread that exited (or is a zombie: a main thread after pthread_exit) will never park.
bool thread_gone(pid_t pid, pid_t tid) {
  if (syscall(SYS_tgkill, pid, tid, 0) != 0) return true;
  char buf[512];
  if (!read_task_file(tid, "stat", buf, sizeof buf)) return true;
  const char* paren = nullptr;  // the state follows the last ')' (the name may hold one)
  for (const char* c = buf; *c != '\0'; ++c)
    if (*c == ')') paren = c;
  return paren != nullptr && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

bool wait_parked(pid_t pid, std::uint64_t deadline) {
  std::uint64_t next_check = mono_ns() + 20'000'000ull;
  for (;;) {
    int seen = __atomic_load_n(&g_parked, __ATOMIC_ACQUIRE);
    bool all = true;
    for (unsigned i = 0; i < g_nthreads && all; ++i)
      all = __atomic_load_n(&g_s->threads[i].state, __ATOMIC_ACQUIRE) != 0;
    if (all) return true;
    std::uint64_t now = mono_ns();
    if (now >= deadline) return false;
    if (now >= next_check) {
      next_check = now + 20'000'000ull;
      for (unsigned i = 0; i < g_nthreads; ++i) {
        ThreadSlot& s = g_s->threads[i];
        if (__atomic_load_n(&s.state, __ATOMIC_ACQUIRE) == 0 && thread_gone(pid, s.tid)) {
          int zero = 0;
          __atomic_compare_exchange_n(&s.state, &zero, 2, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        }
      }
    }
    struct timespec ts {
      0, 1'000'000
    };
    futex(&g_parked, FUTEX_WAIT_PRIVATE, seen, &ts);
  }
}

// Copies [addr, addr + n) of this process into dst without ever faulting; bytes copied.
std::size_t read_self(void* dst, std::uintptr_t addr, std::size_t n) {
  if (!g_use_pipe) {
    struct iovec local {
      dst, n
    };
    struct iovec remote {
      reinterpret_cast<void*>(addr), n
    };
    long got = syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0);
    if (got >= 0) return static_cast<std::size_t>(got);
    if (errno != ENOSYS && errno != EPERM) return 0;
    g_use_pipe = true;  // refused (seccomp, an old kernel): the pipe way from now on
  }
  if (g_pipe[0] < 0 && syscall(SYS_pipe2, g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return 0;
  std::size_t done = 0;
  while (done < n) {
    std::size_t chunk = n - done < 4096 ? n - done : 4096;  // within one page, within the pipe
    long w = syscall(SYS_write, g_pipe[1], reinterpret_cast<const void*>(addr + done), chunk);
    if (w <= 0) break;  // EFAULT: not readable
    long r = syscall(SYS_read, g_pipe[0], static_cast<char*>(dst) + done, static_cast<std::size_t>(w));
    if (r != w) break;
    done += static_cast<std::size_t>(w);
  }
  return done;
}

void scan_foreign(Collector* c, std::uintptr_t lo, std::uintptr_t hi) {
  lo = (lo + sizeof(void*) - 1) & ~std::uintptr_t{sizeof(void*) - 1};
  while (lo < hi) {
    std::size_t n = hi - lo < kCopyBytes ? static_cast<std::size_t>(hi - lo) : kCopyBytes;
    std::size_t got = read_self(g_s->copy, lo, n);
    if (got == n) {
      c->scan_root(g_s->copy, n);
    } else {
      // Part of it is not readable: page by page, skipping what fails.
      for (std::uintptr_t p = lo; p < lo + n;) {
        std::uintptr_t end = (p | (kPageSize - 1)) + 1;
        if (end > lo + n) end = lo + n;
        std::size_t g = read_self(g_s->copy, p, static_cast<std::size_t>(end - p));
        if (g != 0) c->scan_root(g_s->copy, g);
        p = end;
      }
    }
    lo += n;
  }
}

// A /proc file of this process, whole, into g_s->maps_text (proc_maps.h); its length or -1.
long read_proc_scratch(const char* path) {
  return read_proc_text(path, g_s->maps_text, kMapsTextBytes);
}

// /proc/self/maps into g_s->maps; false when it cannot be read whole.
bool read_maps(unsigned* count) {
  long len = read_proc_scratch("/proc/self/maps");
  return len >= 0 && parse_maps(g_s->maps_text, static_cast<std::size_t>(len), g_s->maps, kMaxMaps, count);
}

// The mapping of g_s->maps[0 .. n) that holds a, or null.
const MapRange* scratch_map_containing(unsigned n, std::uintptr_t a) {
  return map_containing(g_s->maps, n, a);
}

// --- the snapshot's copy ----------------------------------------------------------------------

// True when the copy holds every scannable mapping the process had at the stop (parent_maps),
// with its contents: MADV_DONTFORK leaves a mapping out of a fork, MADV_WIPEONFORK leaves it
// empty (its VmFlags in smaps say "wf"); a root there would be missed, so such a copy is not
// trusted. Runs in the copy: one thread, nothing shared but the results.
bool copy_complete(unsigned parent_n) {
  unsigned n = 0;
  if (!read_maps(&n) || !maps_cover(g_s->parent_maps, parent_n, g_s->maps, n)) return false;
  long len = read_proc_scratch("/proc/self/smaps");
  // Unreadable, or too many mappings to check: not trusted.
  return len >= 0 && !smaps_wipes_writable(g_s->maps_text, static_cast<std::size_t>(len));
}

// The calling thread (the one that would fork) runs under a seccomp filter ("Seccomp: 2" in
// /proc/thread-self/status), or its status cannot be read (then: assume so).
bool seccomp_filtered() {
  long len = read_proc_scratch("/proc/thread-self/status");
  return len < 0 || status_seccomp_filtered(g_s->maps_text, static_cast<std::size_t>(len));
}

[[noreturn]] void snapshot_child(bool (*mark)(Collector*), Collector* c, pid_t parent, unsigned parent_n) {
  // The copy must not outlive the process, nor run the program's signal handlers: every
  // signal stays blocked (the mask the clone inherited), and the process's death kills it.
  syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  // Its table of descriptors is a copy of the program's: closed whole at once, so that it
  // holds none of the program's files (the pipe of read_self is made again if needed).
  if (syscall(SYS_close_range, 0u, ~0u, 0u) != 0) {
    struct rlimit rl {};
    ::getrlimit(RLIMIT_NOFILE, &rl);  // a plain system call in libc (armhf has no SYS_getrlimit)
    rlim_t top = rl.rlim_cur < 65536 ? rl.rlim_cur : 65536;
    for (rlim_t fd = 0; fd < top; ++fd) syscall(SYS_close, static_cast<int>(fd));
  }
  g_pipe[0] = g_pipe[1] = -1;
  int code = 3;
  if (static_cast<pid_t>(syscall(SYS_getppid)) == parent) code = !copy_complete(parent_n) ? 2 : mark(c) ? 0 : 1;
  syscall(SYS_exit_group, code);
  __builtin_unreachable();
}

__attribute__((noinline)) std::uintptr_t frame_below_caller() {
  std::uintptr_t here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  asm volatile("" ::: "memory");  // not a tail call: this frame exists below the caller's
  return here;
}

class ProcessRoots final : public RootProvider {
 public:
  void init(Kernel* k) { k_ = k; }

  bool stop_world() override {
    if (!usable) return false;  // roots_install warned why
    struct sigaction cur {};
    if (sigaction(kStopSignal, nullptr, &cur) != 0 || (cur.sa_flags & SA_SIGINFO) == 0 ||
        cur.sa_sigaction != stop_handler) {
      warn("the program took over SIGPWR, kmm's stop signal");
      return false;
    }
    // After a stop that timed out, the next ones wait a few passes (1, 2, 4 .. 16): a thread
    // that cannot take a signal (stuck in an uninterruptible sleep) would freeze the program
    // for kStopTimeoutNs in every pass.
    if (passes_to_skip_ > 0) {
      --passes_to_skip_;
      return false;
    }
    pid_t self = my_tid();
    // A thread that blocks the stop signal (a sigwait-style signal thread, a section that
    // masks every signal) would never park: the stop would freeze every other thread for
    // kStopTimeoutNs and then fail; and a sigwait would take kmm's signal as the program's.
    // Asked first, and then no thread is signalled.
    if (pid_t blocker = thread_blocking_stop_signal(self)) {
      if (blocker != warned_blocker_) {
        warned_blocker_ = blocker;
        StackText<160> line;
        line.str("kmm-gc: thread ").u(static_cast<std::uint64_t>(blocker));
        line.str(" blocks SIGPWR, kmm's stop signal; the world cannot stop: passes only report").nl();
        write_report_text(line.data(), line.size());
      }
      return false;
    }
    // A parked thread must not hold the huge table: the collector takes it first.
    huge_collector_lock();
    pid_t pid = getpid();
    g_stop_begin_ns = mono_ns();
    g_stop_begin_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    std::uint64_t deadline = g_stop_begin_ns + kStopTimeoutNs;
    __atomic_store_n(&g_nthreads, 0u, __ATOMIC_RELEASE);
    __atomic_store_n(&g_parked, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&g_stop_epoch, g_stop_epoch + 1, __ATOMIC_RELEASE);  // odd: stopping
    bool ok = true;
    for (;;) {
      bool added = false;
      if (!signal_new_threads(self, pid, &added)) {
        ok = false;
        break;
      }
      if (!added) break;
      if (!wait_parked(pid, deadline)) {
        ok = false;
        break;
      }
    }
    if (!ok) {
      release();
      warn_stop_failed();
      skip_after_timeout_ = skip_after_timeout_ == 0 ? 1 : skip_after_timeout_ < 16 ? skip_after_timeout_ * 2 : 16;
      passes_to_skip_ = skip_after_timeout_;
      return false;
    }
    skip_after_timeout_ = 0;
    std::uint64_t park = mono_ns() - g_stop_begin_ns;
    last_park_ns = park;
    if (park > longest_park_ns) longest_park_ns = park;
    return true;
  }

  bool scan_roots(Collector* c) override {
    __builtin_unwind_init();  // this thread's callee-saved registers: into this frame
    // Taken in a callee: everything of this frame, the spilled registers included, lies above.
    std::uintptr_t self_sp = frame_below_caller() & ~std::uintptr_t{sizeof(void*) - 1};
    unsigned nmaps = 0;
    if (!read_maps(&nmaps)) return false;
    last_nmaps_ = nmaps;
    std::size_t ne = 0;
    auto exclude = [&](std::uintptr_t lo, std::uintptr_t hi) {
      if (ne < kMaxExcl && lo < hi) g_s->excl[ne++] = AddrSpan{lo, hi};
    };
    auto ram = reinterpret_cast<std::uintptr_t>(k_->phys().base());
    exclude(ram, ram + k_->phys().size());
    auto scratch = reinterpret_cast<std::uintptr_t>(g_s);
    exclude(scratch, scratch + sizeof(Scratch));
    std::size_t room = kMaxExcl - 2 * kMaxThreads - 8;
    std::size_t nh = huge_mapped_spans(g_s->excl + ne, room);
    if (nh > room) return false;
    ne += nh;
    auto shared = reinterpret_cast<std::uintptr_t>(shared_at_);  // the snapshot's bitmap
    exclude(shared, shared + shared_bytes_);
    // Below each stack pointer: stale frames. Only where the stack's mapping is known to be
    // a stack ([stack], or a mapping right above a guard): a stack the program placed in the
    // middle of other memory is scanned whole rather than risk hiding that memory. And only
    // below the LOWEST stack pointer in that mapping: two threads' stacks can share one
    // mapping (a thread made with guardsize 0 above another's stack, which the kernel merges
    // with it; stacks a program carved out of one guarded mapping with pthread_attr_setstack),
    // and below the upper thread's stack pointer lie the lower thread's live frames.
    std::size_t np = 0;
    g_s->stack_points[np++] = self_sp;
    unsigned nt = g_nthreads;
    for (unsigned i = 0; i < nt; ++i)
      if (g_s->threads[i].state == 1) g_s->stack_points[np++] = g_s->threads[i].sp;
    std::sort(g_s->stack_points, g_s->stack_points + np);
    const MapRange* done = nullptr;  // the mapping of the last point: its lowest point was taken
    for (std::size_t i = 0; i < np; ++i) {
      const MapRange* m = scratch_map_containing(nmaps, g_s->stack_points[i]);
      if (m == nullptr || m == done) continue;
      done = m;
      if ((m->flags & kMapScan) == 0) continue;
      bool guarded =
          (m->flags & kMapStackVma) != 0 || (m > g_s->maps && m[-1].hi == m->lo && (m[-1].flags & kMapNoAccess) != 0);
      if (guarded) exclude(m->lo, g_s->stack_points[i]);
    }
    // kmm's own threads: below their first frame (OwnThread), whatever their stack pointers.
    // Their stacks are made with a guard page (default attributes), so no other thread's
    // stack lies below one in its mapping.
    for (const OwnThread& t : g_own_threads) {
      if (__atomic_load_n(&t.tid, __ATOMIC_ACQUIRE) == 0) continue;
      const MapRange* m = scratch_map_containing(nmaps, t.entry);
      if (m != nullptr && (m->flags & kMapScan) != 0 && m > g_s->maps && m[-1].hi == m->lo &&
          (m[-1].flags & kMapNoAccess) != 0)
        exclude(m->lo, t.entry);
    }
    std::sort(g_s->excl, g_s->excl + ne, [](const AddrSpan& a, const AddrSpan& b) { return a.lo < b.lo; });
    std::size_t first = 0;
    for (unsigned i = 0; i < nmaps; ++i) {
      const MapRange& m = g_s->maps[i];
      if ((m.flags & kMapScan) == 0) continue;
      // A snapshot: shared memory is read by the process at the stop, private memory by the copy.
      if (part_ == RootsPart::kShared ? (m.flags & kMapShared) == 0
                                      : part_ == RootsPart::kPrivate && (m.flags & kMapShared) != 0)
        continue;
      while (first < ne && g_s->excl[first].hi <= m.lo && g_s->excl[first].lo <= m.lo) ++first;
      std::uintptr_t at = m.lo;
      for (std::size_t e = first; e < ne && g_s->excl[e].lo < m.hi; ++e) {
        const AddrSpan& x = g_s->excl[e];
        if (x.hi <= at) continue;
        if (x.lo > at) scan_foreign(c, at, x.lo);
        at = x.hi;
        if (at >= m.hi) break;
      }
      if (at < m.hi) scan_foreign(c, at, m.hi);
    }
    if (part_ == RootsPart::kShared) return true;  // the registers: in the copy
    for (unsigned i = 0; i < nt; ++i)
      if (g_s->threads[i].state == 1) c->scan_root(g_s->threads[i].regs, g_s->threads[i].reg_bytes);
    return true;
  }

  void start_world() override { release(); }

  // Snapshot marks (protect/collector.h): the copy is a fork of the process made with every
  // other thread parked, so its memory is the instant of the stop. It is made by a raw clone
  // (no atfork handler runs: the program's could wait on a lock a parked thread holds), with
  // no exit signal (the program's wait(-1) and SIGCHLD handler never see it: a "clone child",
  // reaped here with __WALL), with a table of descriptors of its own that it closes whole
  // first (snapshot_child): it holds no reference to the program's files beyond that moment
  // (a pipe the program closes sees its EOF, a socket its close), and the program's threads,
  // which run on, cannot dup2 onto a descriptor the copy reads /proc through. Until stop 48 it
  // shared the program's table (CLONE_FILES), where a dup2 onto the number of its maps file
  // would have fed it the program's file as the maps, and its close closed the program's.
  void* map_shared(std::size_t bytes) override {
    if (!usable || !g_opts.gc_snapshot || !snapshot_ok_) return nullptr;
    if (seccomp_filtered()) {
      // A filter may kill the process for a clone it does not expect (SECCOMP_RET_KILL) rather
      // than fail it: under one, kmm never forks. Checked at every pass (before the stop): a
      // program may install its filter late.
      snapshot_off("the process runs under a seccomp filter");
      return nullptr;
    }
    // Populated here, before the stop: the pages exist when the copy first writes them.
    void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    shared_at_ = m;
    shared_bytes_ = bytes;
    return m;
  }
  void unmap_shared(void* p, std::size_t bytes) override {
    ::munmap(p, bytes);
    shared_at_ = nullptr;
    shared_bytes_ = 0;
  }

  Snapshot mark_in_snapshot(Collector* c, bool (*mark)(Collector*)) override {
    // Shared memory (memfd, SysV, /dev/zero, /dev/shm) is the one memory a fork does not
    // freeze: the process could move a pointer out of it while the copy marks. It is read
    // here, with the world stopped; the copy reads the private rest and the registers.
    part_ = RootsPart::kShared;
    bool shared_read = scan_roots(c);
    part_ = RootsPart::kAll;
    if (!shared_read) return Snapshot::kUnsupported;
    // The maps that scan just read are the process's at the stop: the copy compares its own.
    unsigned parent_n = last_nmaps_;
    std::memcpy(g_s->parent_maps, g_s->maps, parent_n * sizeof(MapRange));
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t parent = getpid();
    long pid = syscall(SYS_clone, 0, nullptr, nullptr, nullptr, nullptr);
    if (pid == 0) {
      part_ = RootsPart::kPrivate;
      snapshot_child(mark, c, parent, parent_n);
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0) {
      // EAGAIN (a process limit), ENOMEM (strict overcommit), EPERM (a sandbox): mark in place.
      if (errno != EAGAIN) snapshot_off("the process cannot be forked");
      return Snapshot::kUnsupported;
    }
    release();  // the copy holds the instant: the world runs again
    int status = 0;
    struct rusage ru {};
    // Polled, with a deadline: a copy that never finishes (it should not: it takes no lock a
    // parked thread could hold) is killed, and the mark runs in place.
    long r;
    std::uint64_t deadline = mono_ns() + kCopyTimeoutNs;
    for (;;) {
      r = syscall(SYS_wait4, pid, &status, __WALL | WNOHANG, &ru);
      if (r != 0 && !(r < 0 && errno == EINTR)) break;
      if (mono_ns() >= deadline) {
        syscall(SYS_kill, pid, SIGKILL);
        do {
          r = syscall(SYS_wait4, pid, &status, __WALL, &ru);
        } while (r < 0 && errno == EINTR);
        break;
      }
      struct timespec ts {
        0, 500'000
      };
      nanosleep(&ts, nullptr);
    }
    last_copy_cpu_ns = static_cast<std::uint64_t>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1'000'000'000ull +
                       static_cast<std::uint64_t>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
    if (r != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      snapshot_off(r == pid && WIFEXITED(status) && WEXITSTATUS(status) == 2
                       ? "a mapping is not copied by fork (MADV_DONTFORK or MADV_WIPEONFORK)"
                       : "the copy of the process did not finish its mark");
      return Snapshot::kFailed;
    }
    last_copy_ns = mono_ns() - g_stop_begin_ns;
    return Snapshot::kDone;
  }

 private:
  // From now on every mark runs with the world stopped, and stderr says why once.
  void snapshot_off(const char* why) {
    snapshot_ok_ = false;
    StackText<200> line;
    line.str("kmm-gc: ").str(why).str("; marking with the world stopped from now on").nl();
    write_report_text(line.data(), line.size());
  }
  bool snapshot_ok_ = true;
  // Which mappings scan_roots reads: all (in place), or a snapshot's two halves.
  enum class RootsPart : std::uint8_t { kAll, kShared, kPrivate };
  RootsPart part_ = RootsPart::kAll;
  unsigned last_nmaps_ = 0;  // of the last scan_roots: g_s->maps[0 .. last_nmaps_)
  void* shared_at_ = nullptr;  // map_shared's mapping (one at a time): not a root
  std::size_t shared_bytes_ = 0;

  void release() {
    __atomic_store_n(&g_stop_epoch, g_stop_epoch + 1, __ATOMIC_RELEASE);  // even: running
    futex(&g_stop_epoch, FUTEX_WAKE_PRIVATE, 0x7fffffff, nullptr);
    huge_collector_unlock();
    std::uint64_t pause = mono_ns() - g_stop_begin_ns;
    if (pause > longest_pause_ns) longest_pause_ns = pause;
    last_pause_ns = pause;
    last_pause_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - g_stop_begin_cpu_ns;
  }
  void warn_stop_failed() {
    for (unsigned i = 0; i < g_nthreads; ++i) {
      if (g_s->threads[i].state != 0) continue;
      StackText<160> line;
      line.str("kmm-gc: thread ").u(static_cast<std::uint64_t>(g_s->threads[i].tid));
      line.str(" did not stop (SIGPWR blocked?); this pass only reports").nl();
      write_report_text(line.data(), line.size());
      return;
    }
  }

 public:
  bool usable = false;
  std::uint64_t longest_pause_ns = 0;
  std::uint64_t last_pause_ns = 0;
  std::uint64_t last_pause_cpu_ns = 0;  // CPU time of the stopping thread in the last pause
  std::uint64_t longest_park_ns = 0;    // of a pause, the time until every thread was parked
  std::uint64_t last_park_ns = 0;
  std::uint64_t last_copy_ns = 0;      // a snapshot mark: from the stop to the end of the copy's mark
  std::uint64_t last_copy_cpu_ns = 0;  // the copy's CPU time (its whole mark)

 private:
  unsigned passes_to_skip_ = 0;      // stops refused before the next try (after a timeout)
  unsigned skip_after_timeout_ = 0;  // how many the last timeout set: doubles, up to 16
  pid_t warned_blocker_ = 0;         // the last thread named for blocking the stop signal

  Kernel* k_ = nullptr;
};

ProcessRoots g_roots;
bool g_installed = false;

}  // namespace

bool roots_install(Kernel* k) {
  static SpinLock install_lock;
  LockGuard g(install_lock);
  if (g_installed) return g_roots.usable;
  g_installed = true;
  // Set even when the stop cannot work: the provider then fails every stop, and a pass only
  // reports instead of reclaiming blocks it could not prove unreferenced.
  g_roots.init(k);
  k->collector().set_root_provider(&g_roots);
  struct sigaction old {};
  if (sigaction(kStopSignal, nullptr, &old) != 0) return false;
  if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) {
    warn("SIGPWR, kmm's stop signal, is the program's");
    return false;
  }
  void* m =
      ::mmap(nullptr, sizeof(Scratch), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) {
    warn("no memory for the root scan");
    return false;
  }
  g_s = static_cast<Scratch*>(m);
  thread_context_init();
  struct sigaction sa {};
  sa.sa_sigaction = stop_handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);  // nothing of the program runs on a parked thread
  if (sigaction(kStopSignal, &sa, nullptr) != 0) return false;
  g_roots.usable = true;
  return true;
}

void roots_exempt_thread(int tid) {
  __atomic_store_n(&g_exempt_tid, tid, __ATOMIC_RELAXED);
}

int roots_own_thread(const void* entry_frame) {
  unsigned i = __atomic_fetch_add(&g_nr_own_threads, 1u, __ATOMIC_RELAXED);
  if (i >= kMaxOwnThreads) return -1;  // never (there are three): that stack is scanned as before
  g_own_threads[i].entry = reinterpret_cast<std::uintptr_t>(entry_frame);
  // After the entry: a scan that sees the tid reads the entry.
  __atomic_store_n(&g_own_threads[i].tid, static_cast<int>(syscall(SYS_gettid)), __ATOMIC_RELEASE);
  return static_cast<int>(i);
}

void roots_own_thread_exit(int slot) {
  // Before the thread returns: glibc may give its stack to the program's next thread, whose
  // frames must then be scanned.
  if (slot >= 0) __atomic_store_n(&g_own_threads[slot].tid, 0, __ATOMIC_RELEASE);
}

void roots_own_threads_fork_child() {
  for (OwnThread& t : g_own_threads) __atomic_store_n(&t.tid, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&g_nr_own_threads, 0u, __ATOMIC_RELAXED);
}

std::uint64_t roots_longest_pause_ns() {
  return g_roots.longest_pause_ns;
}
std::uint64_t roots_last_pause_ns() {
  return g_roots.last_pause_ns;
}
std::uint64_t roots_last_pause_cpu_ns() {
  return g_roots.last_pause_cpu_ns;
}
std::uint64_t roots_last_copy_ns() {
  return g_roots.last_copy_ns;
}
std::uint64_t roots_last_copy_cpu_ns() {
  return g_roots.last_copy_cpu_ns;
}
std::uint64_t roots_longest_park_ns() {
  return g_roots.longest_park_ns;
}

}  // namespace kmm::shim

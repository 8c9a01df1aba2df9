// kmm/tools/trace/recorder.cpp — libkmm-trace.so, the allocation recorder `kmm trace` preloads.
//
// What it does. Interposes malloc, calloc, realloc, reallocarray, free, posix_memalign,
// aligned_alloc, memalign, valloc, pvalloc and every form of C++ operator new and delete,
// forwards each to glibc's own allocator (__libc_malloc & co., exported by glibc), and
// appends one fixed record (raw_event.h) per call to DIR/raw.PID.SEQ (mode 0600), where DIR
// comes from $KMM_TRACE_DIR (read once, with getenv, which does not allocate). Without that
// variable it only forwards; so it does in secure-execution mode (getauxval(AT_SECURE): a
// setuid, setgid or file-capability program), whose environment is its unprivileged caller's
// (a setuid-root program made root's files in a directory its caller chose).
//
// Rules it keeps so that it can run inside any program:
//   - it never allocates through the traced malloc: records go into one static buffer and
//     out with write(2); paths are built by hand (no snprintf); no libstdc++ (the C++
//     operators are defined here and need none of it: a throwing new that finds no memory
//     calls the next operator new, libstdc++'s, which throws bad_alloc);
//   - one spinlock orders every record: a free is recorded before the block goes back to
//     glibc and a malloc after it comes out, and realloc runs under the lock, so a block
//     another thread gets back is always recorded after the call that released it;
//   - allocation before main: the first call initialises (environ is set by then);
//   - fork: pthread_atfork flushes before the fork; the child opens its own file and
//     records KMM_RAW_FORK first (its inherited blocks belong to the parent);
//   - exec: the new image loads the recorder again and opens raw.PID.(SEQ+1);
//   - a program that closes or reuses our descriptor (daemons close every fd): before each
//     write the descriptor is checked against the file's device and inode, and the file is
//     reopened for appending when it is not ours any more — never through a symbolic link,
//     never blocking on a fifo, and kept only when it is still the file first created (the
//     directory may be writable by others: a link swapped in for the file had records
//     appended, as root, to the file it named); otherwise its records are counted as lost;
//   - callers (KMM_TRACE_CALLERS=1): the return address is looked up in a fixed table of the
//     executable ranges of loaded objects, built with dl_iterate_phdr outside every lock of
//     ours (and only with a try-lock, so a thread inside dlopen never waits on us); a miss
//     rebuilds the table at most once per 256 events (new dlopen); misses count as module 0.
// Lost events: records still in the buffer when the program leaves through _exit() or dies
// of a signal. Everything up to the last flush (every 2048 records, at exit, at fork, before
// every exec call a program makes: execve, execv, execvp, execvpe, fexecve, execl, execlp,
// execle) is kept.
// Calls made by a signal handler while its thread records are forwarded, not recorded (the
// record lock is not re-entrant); they, and records a write could not store (a full disk, a
// file-size limit: SIGXFSZ is held off around the write), are counted and said at exit on
// stderr. Only whole records are stored: a write cut short inside one is cut back to the
// last whole record. errno is left as the program's own call would leave it.
//
// Depends on: glibc (>= 2.34: __libc_* entry points, pthread_atfork in libc), raw_event.h.
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "replay/raw_event.h"

extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* __libc_valloc(size_t);
void* __libc_pvalloc(size_t);
}

#define KMM_EXPORT extern "C" __attribute__((visibility("default")))
#define KMM_EXPORT_CXX __attribute__((visibility("default")))

namespace {

constexpr std::size_t kBufEvents = 2048;
constexpr int kMaxModules = 512;
constexpr int kMaxRanges = 1024;
constexpr std::size_t kNameLen = 64;

enum State : int { kUninit = 0, kIniting = 1, kReady = 2, kOff = 3 };

std::atomic<int> g_state{kUninit};
std::atomic_flag g_lock = ATOMIC_FLAG_INIT;
kmm_raw_event g_buf[kBufEvents];
std::size_t g_n = 0;
int g_fd = -1;
dev_t g_dev = 0;
ino_t g_ino = 0;
bool g_callers = false;
bool g_write_through = false;  // after our destructor: nothing flushes later
char g_dir[2048];
char g_path[2200];
char g_exe[kNameLen] = "main";
pid_t g_parent = 0;

// Module table (callers): names, and two range buffers published by index.
char g_names[kMaxModules][kNameLen];
int g_nmodules = 1;  // 0 is "?"
int g_emitted = 1;   // names already written to the file
struct Range {
  std::uintptr_t lo, hi;
  std::uint16_t mod;
};
Range g_ranges[2][kMaxRanges];
int g_nranges[2] = {0, 0};
std::atomic<int> g_active{0};
std::atomic_flag g_rebuild = ATOMIC_FLAG_INIT;
std::atomic<unsigned> g_since_rebuild{1u << 30};

__thread int t_tid __attribute__((tls_model("initial-exec"))) = 0;
// This thread holds g_lock: a signal handler that allocates while it does must not wait for
// the lock its own thread holds (a deadlock): its calls are forwarded, not recorded.
__thread bool t_locked __attribute__((tls_model("initial-exec"))) = false;
std::atomic<std::uint64_t> g_reentered{0};  // calls of signal handlers while their thread recorded
std::atomic<std::uint64_t> g_unwritten{0};  // records a write could not store

// t_locked is raised before the lock is tried and lowered after it is released (a signal
// fence orders them against a handler on this thread): a handler that runs anywhere in
// between finds it raised.
void lock() {
  t_locked = true;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  while (g_lock.test_and_set(std::memory_order_acquire)) sched_yield();
}
void unlock() {
  g_lock.clear(std::memory_order_release);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_locked = false;
}

// errno as the program left it: a hook sets it only where the call it stands for would
// (the forwarded allocation's ENOMEM), never through the recorder's own fstat, open or write.
struct KeepErrno {
  int saved = errno;
  ~KeepErrno() { errno = saved; }
};

int tid() {
  if (t_tid == 0) t_tid = static_cast<int>(syscall(SYS_gettid));
  return t_tid;
}

std::uint64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Appends s to dst (capacity cap, always terminated); returns the new length.
std::size_t append(char* dst, std::size_t len, std::size_t cap, const char* s) {
  while (*s != '\0' && len + 1 < cap) dst[len++] = *s++;
  dst[len] = '\0';
  return len;
}
std::size_t append_u(char* dst, std::size_t len, std::size_t cap, unsigned long v) {
  char tmp[24];
  int i = 0;
  do {
    tmp[i++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (i > 0 && len + 1 < cap) dst[len++] = tmp[--i];
  dst[len] = '\0';
  return len;
}

// Writes n records from recs; returns how many were stored whole. SIGXFSZ is held off
// meanwhile: the program's RLIMIT_FSIZE limits the program, and a write of ours past it must
// not kill it (one it raised is taken back, not delivered). A short write (a full disk, a
// file-size limit) can end inside a record: those bytes are cut off again (ftruncate to the
// end of the last whole record), so every later record still starts at a multiple of the
// record size — a partial record misaligned all of them, and the whole buffer was counted
// lost although most of it was stored. When the cut fails, nothing more is written
// (g_misaligned): records after the partial one would be read as garbage.
bool g_misaligned = false;
std::size_t write_records(const kmm_raw_event* recs, std::size_t n) {
  if (g_misaligned) return 0;
  sigset_t xfsz, old, pending;
  sigemptyset(&xfsz);
  sigaddset(&xfsz, SIGXFSZ);
  pthread_sigmask(SIG_BLOCK, &xfsz, &old);
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGXFSZ) == 1;
  // O_APPEND: the write goes to the end, and only this process writes its file (under the
  // record lock), so the end now is where the first record lands.
  const off_t start = lseek(g_fd, 0, SEEK_END);
  const char* p = reinterpret_cast<const char*>(recs);
  const std::size_t len = n * sizeof(kmm_raw_event);
  std::size_t done = 0;
  while (done < len) {
    ssize_t w = write(g_fd, p + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += static_cast<std::size_t>(w);
  }
  const std::size_t whole = done / sizeof(kmm_raw_event);
  if (done % sizeof(kmm_raw_event) != 0 &&
      (start < 0 || ftruncate(g_fd, start + static_cast<off_t>(whole * sizeof(kmm_raw_event))) != 0))
    g_misaligned = true;
  if (!was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGXFSZ) == 1) {
    struct timespec zero = {0, 0};
    sigtimedwait(&xfsz, nullptr, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return whole;
}

// Is g_fd still our file? Reopens it for appending when the program closed or reused it, by
// name but only when the name still leads to the very file open_file created (same device
// and inode): not a symbolic link (O_NOFOLLOW), not a fifo (O_NONBLOCK), not another file
// renamed into its place. Otherwise g_fd is -1 and the records are counted as lost.
void ensure_fd() {
  struct stat st;
  if (g_fd >= 0 && fstat(g_fd, &st) == 0 && st.st_dev == g_dev && st.st_ino == g_ino) return;
  g_fd = -1;
  int fd = open(g_path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_dev != g_dev || st.st_ino != g_ino) {
    close(fd);
    return;
  }
  // Keep it out of the low numbers programs reuse.
  int hi = fcntl(fd, F_DUPFD_CLOEXEC, 700);
  if (hi >= 0) {
    close(fd);
    fd = hi;
  }
  g_fd = fd;
}

void flush_locked() {
  if (g_n == 0) return;
  ensure_fd();
  const std::size_t stored = g_fd < 0 ? 0 : write_records(g_buf, g_n);
  if (stored != g_n) g_unwritten.fetch_add(g_n - stored, std::memory_order_relaxed);
  g_n = 0;
}

// At exit: what was lost is said once, on stderr (the trace alone would not show it).
void report_lost() {
  const std::uint64_t reentered = g_reentered.load(std::memory_order_relaxed);
  const std::uint64_t unwritten = g_unwritten.load(std::memory_order_relaxed);
  char line[256];
  std::size_t n = 0;
  if (reentered != 0) {
    n = append(line, n, sizeof line, "kmm-trace: ");
    n = append_u(line, n, sizeof line, static_cast<unsigned long>(reentered));
    n = append(line, n, sizeof line, " calls from signal handlers were not recorded (their thread was recording)\n");
  }
  if (unwritten != 0) {
    n = append(line, n, sizeof line, "kmm-trace: ");
    n = append_u(line, n, sizeof line, static_cast<unsigned long>(unwritten));
    n = append(line, n, sizeof line, " events were lost: a write failed (a full disk, a file-size limit?)\n");
  }
  if (n == 0) return;
  ssize_t w = write(2, line, n);
  (void)w;
}

// Creates DIR/raw.PID.SEQ for this process image (first free SEQ), readable by its owner
// only: the records are the program's heap addresses. O_EXCL: never an existing file or a
// link planted under the name.
void open_file() {
  int pid = getpid();
  for (unsigned seq = 0; seq < 10000; ++seq) {
    std::size_t n = append(g_path, 0, sizeof g_path, g_dir);
    n = append(g_path, n, sizeof g_path, "/raw.");
    n = append_u(g_path, n, sizeof g_path, static_cast<unsigned long>(pid));
    n = append(g_path, n, sizeof g_path, ".");
    append_u(g_path, n, sizeof g_path, seq);
    int fd = open(g_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      int hi = fcntl(fd, F_DUPFD_CLOEXEC, 700);
      if (hi >= 0) {
        close(fd);
        fd = hi;
      }
      struct stat st;
      if (fstat(fd, &st) != 0) {  // no identity to check a reopen against: not recorded
        close(fd);
        break;
      }
      g_fd = fd;
      g_dev = st.st_dev;
      g_ino = st.st_ino;
      return;
    }
    if (errno != EEXIST) break;
  }
  g_fd = -1;
}

void push_locked(const kmm_raw_event& e) {
  g_buf[g_n++] = e;
  if (g_n == kBufEvents || g_write_through) flush_locked();
}

// Writes the names of modules not yet in the file (lock held).
void emit_names_locked() {
  for (; g_emitted < g_nmodules; ++g_emitted) {
    kmm_raw_event e{};
    e.op = KMM_RAW_MODULE;
    e.module = static_cast<std::uint16_t>(g_emitted);
    e.size = strlen(g_names[g_emitted]);
    push_locked(e);
    for (std::size_t off = 0; off < e.size; off += sizeof(kmm_raw_event)) {
      kmm_raw_event chunk{};
      memcpy(&chunk, g_names[g_emitted] + off, e.size - off < sizeof chunk ? e.size - off : sizeof chunk);
      push_locked(chunk);
    }
  }
}

const char* base_name(const char* path) {
  const char* b = path;
  for (const char* p = path; *p != '\0'; ++p)
    if (*p == '/') b = p + 1;
  return b;
}

void init() {
  int expect = kUninit;
  if (!g_state.compare_exchange_strong(expect, kIniting)) {
    while (g_state.load() == kIniting) sched_yield();
    return;
  }
  // Secure execution: the environment is the caller's, who must not choose where a privileged
  // program creates files (the shim ignores KMM_OPTIONS the same way: docs/SECURITY.md).
  const char* dir = getauxval(AT_SECURE) != 0 ? nullptr : getenv(KMM_TRACE_DIR_ENV);
  if (dir == nullptr || *dir == '\0') {
    g_state.store(kOff);
    return;
  }
  append(g_dir, 0, sizeof g_dir, dir);
  const char* callers = getenv(KMM_TRACE_CALLERS_ENV);
  g_callers = callers != nullptr && callers[0] == '1';
  char exe[1024];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    append(g_exe, 0, sizeof g_exe, base_name(exe));
  }
  strncpy(g_names[0], "?", kNameLen);
  open_file();
  g_state.store(g_fd >= 0 ? kReady : kOff);
}

bool ready() {
  int s = g_state.load(std::memory_order_acquire);
  if (s == kReady) return true;
  if (s == kOff) return false;
  init();
  return g_state.load(std::memory_order_acquire) == kReady;
}

// ---- callers ----
struct Scan {
  Range r[kMaxRanges];
  char names[kMaxRanges][kNameLen];
  int n;
};
Scan g_scan;  // used only by the thread holding g_rebuild

int scan_cb(struct dl_phdr_info* info, size_t, void* arg) {
  Scan* s = static_cast<Scan*>(arg);
  const char* name = info->dlpi_name != nullptr && info->dlpi_name[0] != '\0' ? base_name(info->dlpi_name) : g_exe;
  for (int i = 0; i < info->dlpi_phnum && s->n < kMaxRanges; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
    Range& r = s->r[s->n];
    r.lo = info->dlpi_addr + ph.p_vaddr;
    r.hi = r.lo + ph.p_memsz;
    append(s->names[s->n], 0, kNameLen, name);
    ++s->n;
  }
  return 0;
}

void rebuild() {
  if (g_rebuild.test_and_set(std::memory_order_acquire)) return;  // someone else is at it
  g_scan.n = 0;
  dl_iterate_phdr(scan_cb, &g_scan);  // outside our record lock
  lock();
  int next = 1 - g_active.load(std::memory_order_relaxed);
  int n = 0;
  for (int i = 0; i < g_scan.n; ++i) {
    int m = 0;
    for (int j = 1; j < g_nmodules; ++j)
      if (strcmp(g_names[j], g_scan.names[i]) == 0) m = j;
    if (m == 0 && g_nmodules < kMaxModules) {
      m = g_nmodules++;
      append(g_names[m], 0, kNameLen, g_scan.names[i]);
    }
    g_ranges[next][n] = Range{g_scan.r[i].lo, g_scan.r[i].hi, static_cast<std::uint16_t>(m)};
    ++n;
  }
  g_nranges[next] = n;
  g_active.store(next, std::memory_order_release);
  emit_names_locked();
  unlock();
  g_since_rebuild.store(0, std::memory_order_relaxed);
  g_rebuild.clear(std::memory_order_release);
}

std::uint16_t module_of(const void* caller) {
  if (!g_callers) return 0;
  std::uintptr_t a = reinterpret_cast<std::uintptr_t>(caller);
  for (int tries = 0; tries < 2; ++tries) {
    int act = g_active.load(std::memory_order_acquire);
    for (int i = 0; i < g_nranges[act]; ++i)
      if (a >= g_ranges[act][i].lo && a < g_ranges[act][i].hi) return g_ranges[act][i].mod;
    if (tries == 0 && g_since_rebuild.fetch_add(1, std::memory_order_relaxed) >= 256)
      rebuild();
    else
      break;
  }
  return 0;
}

unsigned align_log2(std::size_t a) {
  unsigned l = 0;
  while (l < 63 && (std::size_t{1} << l) < a) ++l;
  return l;
}

void record(std::uint8_t op, const void* ptr, std::size_t size, const void* result, std::size_t align,
            const void* caller) {
  if (t_locked) {  // a signal handler's call while this thread records: forwarded only
    g_reentered.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  KeepErrno keep;
  if (!ready()) return;
  kmm_raw_event e{};
  e.op = op;
  e.align_log2 = static_cast<std::uint8_t>(align > 8 ? align_log2(align) : 0);
  e.module = module_of(caller);
  e.tid = static_cast<std::uint32_t>(tid());
  e.ptr = reinterpret_cast<std::uintptr_t>(ptr);
  e.size = size;
  e.result = reinterpret_cast<std::uintptr_t>(result);
  e.time_ns = now_ns();
  lock();
  push_locked(e);
  unlock();
}

void* alloc_event(void* p, std::size_t size, std::size_t align, const void* caller) {
  record(KMM_RAW_ALLOC, p, size, nullptr, align, caller);
  return p;
}

void free_event(void* p, const void* caller) {
  if (p == nullptr) return;
  record(KMM_RAW_FREE, p, 0, nullptr, 0, caller);
  __libc_free(p);
}

void* realloc_event(void* p, std::size_t size, const void* caller) {
  if (p == nullptr) return alloc_event(__libc_malloc(size), size, 0, caller);
  if (t_locked) {
    g_reentered.fetch_add(1, std::memory_order_relaxed);
    return __libc_realloc(p, size);
  }
  int saved = errno;
  if (!ready()) {
    errno = saved;
    return __libc_realloc(p, size);
  }
  std::uint16_t mod = module_of(caller);
  errno = saved;  // realloc's own errno (ENOMEM) is the one the program sees
  kmm_raw_event e{};
  e.op = KMM_RAW_REALLOC;
  e.module = mod;
  e.tid = static_cast<std::uint32_t>(tid());
  e.ptr = reinterpret_cast<std::uintptr_t>(p);
  e.size = size;
  lock();  // the old block must not be handed out again before this record is in
  void* q = __libc_realloc(p, size);
  KeepErrno keep;
  e.result = reinterpret_cast<std::uintptr_t>(q);
  e.time_ns = now_ns();
  push_locked(e);
  unlock();
  return q;
}

// A throwing new that found no memory and no new_handler: the next definition of the same
// operator (libstdc++'s, after this preloaded one) is called, which throws std::bad_alloc
// (its malloc, ours, fails again and is recorded as failed). Without one, a message and abort.
using OperatorNew = void* (*)(std::size_t);
using OperatorNewAligned = void* (*)(std::size_t, std::align_val_t);
void* new_failed(std::size_t size, std::size_t al, bool array) {
  const char* name = al == 0 ? (array ? "_Znam" : "_Znwm") : (array ? "_ZnamSt11align_val_t" : "_ZnwmSt11align_val_t");
  if (void* next = dlsym(RTLD_NEXT, name)) {
    if (al == 0) return reinterpret_cast<OperatorNew>(next)(size);
    return reinterpret_cast<OperatorNewAligned>(next)(size, static_cast<std::align_val_t>(al));
  }
  static const char msg[] = "kmm-trace: operator new: out of memory (no operator new after the recorder's to throw)\n";
  ssize_t w = write(2, msg, sizeof msg - 1);
  (void)w;
  abort();
}

void atfork_prepare() {
  lock();
  if (g_state.load() == kReady) flush_locked();
  g_parent = getpid();
}
void atfork_parent() {
  unlock();
}
void atfork_child() {
  KeepErrno keep;
  t_tid = 0;
  g_n = 0;
  if (g_state.load() == kReady) {
    if (g_fd >= 0) close(g_fd);
    open_file();
    if (g_fd < 0) {
      g_state.store(kOff);
    } else {
      g_emitted = 1;  // the new file needs the module names again
      kmm_raw_event e{};
      e.op = KMM_RAW_FORK;
      e.tid = static_cast<std::uint32_t>(tid());
      e.ptr = static_cast<std::uint64_t>(g_parent);
      e.time_ns = now_ns();
      push_locked(e);
      emit_names_locked();
    }
  }
  unlock();
}

__attribute__((constructor)) void recorder_start() {
  KeepErrno keep;  // main starts with errno 0, not open's EEXIST or fcntl's EINVAL
  ready();
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

__attribute__((destructor)) void recorder_stop() {
  KeepErrno keep;
  lock();
  if (g_state.load() == kReady) flush_locked();
  g_write_through = true;  // allocations in later destructors go straight out
  unlock();
  report_lost();
}

// Before the image is replaced: what the buffer holds would be lost with it.
void flush_before_exec() {
  KeepErrno keep;
  lock();
  if (g_state.load() == kReady) flush_locked();
  unlock();
}

}  // namespace

// ---- the C allocator ----
KMM_EXPORT void* malloc(size_t size) {
  return alloc_event(__libc_malloc(size), size, 0, __builtin_return_address(0));
}
KMM_EXPORT void free(void* p) {
  free_event(p, __builtin_return_address(0));
}
KMM_EXPORT void cfree(void* p) {
  free_event(p, __builtin_return_address(0));
}
KMM_EXPORT void* calloc(size_t n, size_t size) {
  void* p = __libc_calloc(n, size);
  size_t bytes = 0;
  if (__builtin_mul_overflow(n, size, &bytes)) return p;  // null: glibc refused it
  return alloc_event(p, bytes, 0, __builtin_return_address(0));
}
KMM_EXPORT void* realloc(void* p, size_t size) {
  return realloc_event(p, size, __builtin_return_address(0));
}
KMM_EXPORT void* reallocarray(void* p, size_t n, size_t size) {
  size_t bytes = 0;
  if (__builtin_mul_overflow(n, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc_event(p, bytes, __builtin_return_address(0));
}
KMM_EXPORT int posix_memalign(void** out, size_t align, size_t size) {
  if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
  void* p = __libc_memalign(align, size);
  if (p == nullptr) return ENOMEM;
  *out = alloc_event(p, size, align, __builtin_return_address(0));
  return 0;
}
KMM_EXPORT void* aligned_alloc(size_t align, size_t size) {
  return alloc_event(__libc_memalign(align, size), size, align, __builtin_return_address(0));
}
KMM_EXPORT void* memalign(size_t align, size_t size) {
  return alloc_event(__libc_memalign(align, size), size, align, __builtin_return_address(0));
}
KMM_EXPORT void* valloc(size_t size) {
  return alloc_event(__libc_valloc(size), size, 4096, __builtin_return_address(0));
}
KMM_EXPORT void* pvalloc(size_t size) {
  size_t pg = 4096;
  return alloc_event(__libc_pvalloc(size), (size + pg - 1) & ~(pg - 1), 4096, __builtin_return_address(0));
}

// ---- exec: the buffer goes out first (the new image cannot flush it) ----
// The calls glibc's exec family and posix_spawn's child make internally do not come through
// here; these are the entry points a program calls. execl, execlp and execle gather their
// varargs into an argv, as glibc's do, and go through execv, execvp and execve here.
namespace {
template <typename Fn, typename... Args>
int exec_after_flush(const char* name, Args... args) {
  flush_before_exec();
  auto next = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
  if (next == nullptr) return errno = ENOSYS, -1;
  return next(args...);
}

// The list execl's family takes is arg0, ..., a null pointer (then, for execle, envp). Its
// argv is built on the caller's stack, as glibc's execl builds it (the recorder must not
// malloc here): counted first, then copied.
std::size_t count_exec_args(const char* arg0, va_list ap) {
  std::size_t n = 1;
  for (const char* a = arg0; a != nullptr; a = va_arg(ap, const char*)) ++n;
  return n;  // the null pointer included
}
char** fill_exec_args(char** argv, const char* arg0, va_list ap, char*** envp) {
  std::size_t n = 0;
  argv[n++] = const_cast<char*>(arg0);
  while (argv[n - 1] != nullptr) argv[n++] = va_arg(ap, char*);
  if (envp != nullptr) *envp = va_arg(ap, char**);
  return argv;
}
}  // namespace
KMM_EXPORT int execve(const char* path, char* const argv[], char* const envp[]) {
  return exec_after_flush<decltype(&execve)>("execve", path, argv, envp);
}
KMM_EXPORT int execv(const char* path, char* const argv[]) {
  return exec_after_flush<decltype(&execv)>("execv", path, argv);
}
KMM_EXPORT int execvp(const char* file, char* const argv[]) {
  return exec_after_flush<decltype(&execvp)>("execvp", file, argv);
}
KMM_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) {
  return exec_after_flush<decltype(&execvpe)>("execvpe", file, argv, envp);
}
KMM_EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) {
  return exec_after_flush<decltype(&fexecve)>("fexecve", fd, argv, envp);
}
// A macro, not a function: the argv must live in the frame of the exported call (alloca).
#define KMM_GATHER_EXEC_ARGS(argv, arg, envp)                                                                \
  va_list ap;                                                                                                \
  va_start(ap, arg);                                                                                         \
  va_list count_ap;                                                                                          \
  va_copy(count_ap, ap);                                                                                     \
  const std::size_t nargs = count_exec_args(arg, count_ap);                                                  \
  va_end(count_ap);                                                                                          \
  char** argv = fill_exec_args(static_cast<char**>(__builtin_alloca(nargs * sizeof(char*))), arg, ap, envp); \
  va_end(ap)
KMM_EXPORT int execl(const char* path, const char* arg, ...) {
  KMM_GATHER_EXEC_ARGS(argv, arg, nullptr);
  return execv(path, argv);
}
KMM_EXPORT int execlp(const char* file, const char* arg, ...) {
  KMM_GATHER_EXEC_ARGS(argv, arg, nullptr);
  return execvp(file, argv);
}
KMM_EXPORT int execle(const char* path, const char* arg, ...) {
  char** envp = nullptr;
  KMM_GATHER_EXEC_ARGS(argv, arg, &envp);
  return execve(path, argv, envp);
}
#undef KMM_GATHER_EXEC_ARGS

// ---- C++ ----
// std::get_new_handler lives in libstdc++, which a C program does not load: a weak reference
// under its mangled name, null unless the program loaded libstdc++.
extern "C" std::new_handler kmm_get_new_handler() noexcept __asm__("_ZSt15get_new_handlerv") __attribute__((weak));

namespace {
void* new_throwing(std::size_t size, std::size_t al, bool array, const void* caller) {
  for (;;) {
    void* p = al > 16 ? __libc_memalign(al, size) : __libc_malloc(size);
    if (p != nullptr) return alloc_event(p, size, al > 16 ? al : 0, caller);
    // Read through a volatile: the compiler may not assume the weak symbol is there.
    std::new_handler (*volatile get)() noexcept = &kmm_get_new_handler;
    std::new_handler h = get != nullptr ? get() : nullptr;
    if (h == nullptr) return new_failed(size, al, array);
    h();
  }
}
void* new_nothrow(std::size_t size, std::size_t al, const void* caller) {
  void* p = al > 16 ? __libc_memalign(al, size) : __libc_malloc(size);
  if (p == nullptr) return nullptr;
  return alloc_event(p, size, al > 16 ? al : 0, caller);
}
std::size_t A(std::align_val_t a) {
  return static_cast<std::size_t>(a);
}
}  // namespace

#define RA __builtin_return_address(0)
KMM_EXPORT_CXX void* operator new(std::size_t size) {
  return new_throwing(size, 0, false, RA);
}
KMM_EXPORT_CXX void* operator new[](std::size_t size) {
  return new_throwing(size, 0, true, RA);
}
KMM_EXPORT_CXX void* operator new(std::size_t size, std::align_val_t a) {
  return new_throwing(size, A(a), false, RA);
}
KMM_EXPORT_CXX void* operator new[](std::size_t size, std::align_val_t a) {
  return new_throwing(size, A(a), true, RA);
}
KMM_EXPORT_CXX void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return new_nothrow(size, 0, RA);
}
KMM_EXPORT_CXX void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return new_nothrow(size, 0, RA);
}
KMM_EXPORT_CXX void* operator new(std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return new_nothrow(size, A(a), RA);
}
KMM_EXPORT_CXX void* operator new[](std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return new_nothrow(size, A(a), RA);
}
KMM_EXPORT_CXX void operator delete(void* p) noexcept {
  free_event(p, RA);
}
KMM_EXPORT_CXX void operator delete[](void* p) noexcept {
  free_event(p, RA);
}
KMM_EXPORT_CXX void operator delete(void* p, std::size_t) noexcept {
  free_event(p, RA);
}
KMM_EXPORT_CXX void operator delete[](void* p, std::size_t) noexcept {
  free_event(p, RA);
}
KMM_EXPORT_CXX void operator delete(void* p, std::align_val_t) noexcept {
  free_event(p, RA);
}
KMM_EXPORT_CXX void operator delete[](void* p, std::align_val_t) noexcept {
  free_event(p, RA);
}
KMM_EXPORT_CXX void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  free_event(p, RA);
}
KMM_EXPORT_CXX void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  free_event(p, RA);
}
KMM_EXPORT_CXX void operator delete(void* p, const std::nothrow_t&) noexcept {
  free_event(p, RA);
}
KMM_EXPORT_CXX void operator delete[](void* p, const std::nothrow_t&) noexcept {
  free_event(p, RA);
}
KMM_EXPORT_CXX void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  free_event(p, RA);
}
KMM_EXPORT_CXX void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  free_event(p, RA);
}

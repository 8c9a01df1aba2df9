// kmm/shim/stats.cpp — kmm's views of the process heap: at exit, on demand, and live.
//
// print_stats(fd) formats, into one static buffer (no heap) under a lock, then write(2)s:
//   - per-module usage: every owner (kernel, each plug-in loaded or unloaded) with objects
//     and bytes, page-level and huge (mmap) blocks included;
//   - the protector: mode, passes, leaks found (not reclaimed), reclaimed since start;
//   - the hardening options that are on (as the heap's layers run with them), and what
//     waits in the quarantine;
//   - Linux's /proc/meminfo, /proc/buddyinfo, /proc/slabinfo and /proc/modules of kmm's
//     heap (proc/ printers).
// At exit (a destructor of this library) when KMM_OPTIONS has stats=1 (stderr) or
// stats=PATH. Live: with live=1 a thread listens on the abstract unix socket
// "@kmm-stat-PID"; `kmm stat PID` connects and gets the same text (docs/PRELOAD.md).
//
// Security (docs/SECURITY.md): a stats file is opened so that a name planted by someone else
// is never followed or truncated — created new (O_EXCL, mode 0600), or else appended to only
// when it is a regular file owned by this process's euid, never through a final symlink
// (O_NOFOLLOW), never blocking on a fifo (O_NONBLOCK). The server answers only a peer of
// this process's uid or root (SO_PEERCRED), sends with MSG_NOSIGNAL (a client that hangs up
// is no SIGPIPE) and a send timeout, into a small socket buffer, and holds no lock while it
// sends: a silent client costs the server thread at most the timeout and never delays exit.
//
// Depends on: shim.h, proc/, POSIX sockets, pthreads.
// Invariants: g_buf and g_tally are used only under g_print_lock; g_server_buf only by the
// server thread; the server thread never allocates and never holds g_print_lock while it
// sends.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "base/text.h"
#include "kmm/kmm.h"
#include "proc/proc.h"
#include "shim/shim.h"

#define KMM_EXPORT extern "C" __attribute__((visibility("default")))

namespace kmm::shim {
namespace {

SpinLock g_print_lock;
char g_buf[512 * 1024];
char g_server_buf[512 * 1024];  // the server's copy: it sends without g_print_lock
OwnerTally g_tally[kMaxOwners];
int g_listen_fd = -1;
dev_t g_listen_dev = 0;  // the listening socket's identity (listen_fd_is_ours)
ino_t g_listen_ino = 0;
bool g_server_started = false;

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w <= 0) return;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

const char* state_name(ModuleState s) {
  switch (s) {
    case ModuleState::kLive:
      return "live";
    case ModuleState::kGone:
      return "unloaded";
    default:
      return "free";
  }
}

void format(Kernel& k, TextSink& out) {
  out.str("=== kmm stats: pid ").u(static_cast<std::uint64_t>(::getpid())).str(" ===\n");
  k.usage(g_tally);
  huge_usage(g_tally);
  out.str("--- modules (owner: objects, bytes) ---\n");
  out.left("owner", 40).left("state", 10).str("     objects          bytes\n");
  for (unsigned o = kOwnerKernel; o < kOwnerUntracked; ++o) {
    const Module* m = o >= kOwnerFirstModule ? k.modules().module(static_cast<owner_t>(o)) : nullptr;
    if (o >= kOwnerFirstModule && (m == nullptr || m->state == ModuleState::kFree) && g_tally[o].objects == 0) continue;
    out.left(k.modules().owner_name(static_cast<owner_t>(o)), 40);
    out.left(o == kOwnerKernel ? "host" : m != nullptr ? state_name(m->state) : "?", 10);
    out.u(g_tally[o].objects, 12).u(g_tally[o].bytes, 15).nl();
  }
  const CollectorStats& s = k.collector().stats();
  out.str("--- protector: mode ").str(protector_mode_name(k.collector().mode())).str(", gc_delay ");
  out.u(k.collector().delay_ns() / 1'000'000).str(" ms ---\n");
  out.str("passes ")
      .u(s.passes)
      .str("  leaks found (not reclaimed) ")
      .u(s.leak_objects)
      .str(" objects / ")
      .u(s.leak_bytes);
  out.str(" bytes  reclaimed ").u(s.reclaimed_objects).str(" objects / ").u(s.reclaimed_bytes).str(" bytes");
  out.str("  referenced (spared) ").u(s.referenced_objects).str(" objects / ").u(s.referenced_bytes).str(" bytes\n");
  if (s.world_stops != 0 || s.world_stop_failures != 0) {
    // reclaim-unreachable in this process: the mark ran with every other thread parked (roots.cpp).
    out.str("world stopped for the mark ").u(s.world_stops).str(" times: longest pause ");
    out.u(roots_longest_pause_ns() / 1000).str(" us, last ").u(roots_last_pause_ns() / 1000).str(" us");
    out.str(" (cpu ").u(roots_last_pause_cpu_ns() / 1000).str(" us)");
    out.str(" (longest wait for the threads to park ").u(roots_longest_park_ns() / 1000).str(" us)");
    out.str("; passes that only reported (no stop, roots unreadable) ").u(s.world_stop_failures);
    // gc_snapshot: the mark ran in a forked copy and the pause ended when the copy existed.
    out.str("; marked in a copy of the process ").u(s.snapshot_marks).str(" times (copies not trusted ");
    out.u(s.snapshot_failures).str(")");
    if (s.snapshot_marks != 0) {
      out.str(", the last copy's mark ").u(roots_last_copy_ns() / 1000).str(" us (its cpu ");
      out.u(roots_last_copy_cpu_ns() / 1000).str(" us)");
    }
    out.nl();
  }
  for (unsigned i = 0; i < kNrFaultPoints; ++i) {
    auto p = static_cast<FaultPoint>(i);
    if (!g_opts.fault_on[i]) continue;  // fail_* in KMM_OPTIONS (base/fault_inject.h)
    out.str("--- fault injection: ").str(fault_point_name(p)).str(" calls ").u(fault_calls(p));
    out.str(" failures injected ").u(fault_failures(p)).str(" ---\n");
  }
  // What the heap runs with (not what KMM_OPTIONS asked for): a test reading this line
  // knows the options took effect (tests/shim/realprog).
  const HardeningConfig hardening = heap_hardening(k);
  if (hardening.any()) {  // slab/hardening.h
    char words[160];
    describe_hardening(hardening, words, sizeof words);
    out.str("--- hardening: ").str(words);
    if (hardening.quarantine_bytes != 0) {
      out.str("  quarantined ")
          .u(k.slab().quarantine_objects())
          .str(" objects / ")
          .u(k.slab().quarantine_bytes())
          .str(" bytes");
    }
    if (hardening.guard_pages) {
      out.str("  guarded runs parked ")
          .u(k.kmalloc_layer().guard_cache_pages())
          .str(" pages, reused ")
          .u(k.kmalloc_layer().guard_cache_hits())
          .str(" times");
    }
    out.str(" ---\n");
  }
  out.str("--- memory given back to the OS: ")
      .u(k.buddy().reported_pages())
      .str(" free pages not resident, ")
      .u(purged_pages_total())
      .str(" pages purged since start, ")
      .u(huge_cache_bytes())
      .str(" bytes of freed huge mappings kept for reuse ---\n");
  out.str("--- /proc/meminfo ---\n");
  print_meminfo(k, out);
  out.str("--- /proc/buddyinfo ---\n");
  print_buddyinfo(k, out);
  out.str("--- /proc/slabinfo ---\n");
  print_slabinfo(k, out);
  out.str("--- /proc/modules ---\n");
  print_modules(k, out);
}

// A client waits this long at most for the server to send into its socket buffer.
constexpr int kSendTimeoutMs = 2000;
// The kernel's buffer for one client: a client that does not read pins no more than this.
constexpr int kSendBufferBytes = 16 * 1024;

// Whether the connected peer may read this process's stats: the same uid (real or effective)
// or root, as ptrace's rule would let it read the process's memory; and root only once the
// process is not dumpable (a daemon that dropped root's privileges to a user's uid: the kernel
// keeps that user from its memory and /proc files, and so does this server).
bool peer_allowed(int c, uid_t* peer_uid) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) return false;
  *peer_uid = cred.uid;
  if (cred.uid == 0) return true;
  if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 1) return false;
  return cred.uid == ::getuid() || cred.uid == ::geteuid();
}

// send() until done, the peer hangs up, or the send timeout passes: never SIGPIPE.
void send_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

void serve_one(int c) {
  uid_t uid = 0;
  if (!peer_allowed(c, &uid)) {
    StackText<192> line;
    line.str("kmm: refused: uid ")
        .u(uid)
        .str(" may not read the stats of pid ")
        .u(static_cast<std::uint64_t>(::getpid()));
    line.str(" (same user or root only; root only once the process is not dumpable)").nl();
    ::send(c, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    return;
  }
  struct timeval tv;
  tv.tv_sec = kSendTimeoutMs / 1000;
  tv.tv_usec = (kSendTimeoutMs % 1000) * 1000;
  ::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int bytes = kSendBufferBytes;
  ::setsockopt(c, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  Kernel* k = g_kernel;
  if (k == nullptr) return;
  std::size_t n;
  bool truncated;
  {
    LockGuard g(g_print_lock);
    TextSink out(g_server_buf, sizeof g_server_buf);
    format(*k, out);
    n = out.size();
    truncated = out.truncated();
  }
  send_all(c, g_server_buf, n);
  if (truncated) send_all(c, "... (truncated)\n", 16);
}

// The listening socket is an fd number of the program's: a program that closes every fd
// (daemons do) closes it, and may get the number back for a socket of its own. So the fd is
// the server's only while it is the socket made here (its inode): else the server stops
// rather than spin on a closed fd or accept the program's connections.
bool listen_fd_is_ours(int fd) {
  struct stat st;
  return fd >= 0 && ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == g_listen_dev &&
         st.st_ino == g_listen_ino;
}

void* server_main(void*) {
  int own = roots_own_thread(__builtin_frame_address(0));
  const int fd = g_listen_fd;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    // A timeout, so that a socket closed under a waiting poll (which holds the old file) is
    // noticed within a second.
    int r = ::poll(&p, 1, 1000);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (p.revents & POLLNVAL) != 0 || !listen_fd_is_ours(fd)) break;
    if (r == 0) continue;
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);  // fd is non-blocking: never waits
    if (c < 0) continue;
    serve_one(c);
    ::close(c);
  }
  StackText<160> line;
  line.str("kmm: warning: the program closed the live stats socket (fd ").u(static_cast<std::uint64_t>(fd));
  line.str("); live stats stopped").nl();
  write_report_text(line.data(), line.size());
  roots_own_thread_exit(own);
  return nullptr;
}

void warn_stats_file(const char* path, const char* why) {
  StackText<400> line;
  line.str("kmm: warning: stats file ").str(path).str(" refused: ").str(why).str("; stats not written").nl();
  write_report_text(line.data(), line.size());
}

// The stats file, opened without following or truncating anything planted there: -1 (after a
// warning) when it cannot be opened safely.
int open_stats_file(const char* path) {
  int fd = ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;  // new: ours, mode 0600
  if (errno != EEXIST) {
    warn_stats_file(path, errno == ELOOP ? "it is a symbolic link" : "cannot create it");
    return -1;
  }
  // It exists: append only to a regular file this process's euid owns. O_NONBLOCK: opening a
  // fifo would otherwise wait for a reader.
  fd = ::open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    warn_stats_file(path, errno == ELOOP ? "it is a symbolic link" : "cannot open it");
    return -1;
  }
  struct stat st;
  const char* why = nullptr;
  if (::fstat(fd, &st) != 0)
    why = "cannot stat it";
  else if (!S_ISREG(st.st_mode))
    why = "not a regular file";
  else if (st.st_uid != ::geteuid())
    why = "owned by another user";
  else if (st.st_nlink != 1)
    why = "it has other hard links (one planted where the path is could be another of this user's files)";
  if (why != nullptr) {
    ::close(fd);
    warn_stats_file(path, why);
    return -1;
  }
  ::fcntl(fd, F_SETFL, O_APPEND);  // blocking writes again (a regular file)
  return fd;
}

}  // namespace

HardeningConfig heap_hardening(const Kernel& k) {
  HardeningConfig h = k.slab().config().hardening;
  h.guard_pages = k.kmalloc_layer().config().guard_platform != nullptr;
  return h;
}

void stats_fork_lock() {
  g_print_lock.lock();
}
void stats_fork_unlock() {
  g_print_lock.unlock();
}

void print_stats(int fd) {
  Kernel* k = g_kernel;
  if (k == nullptr) return;
  LockGuard g(g_print_lock);
  TextSink out(g_buf, sizeof g_buf);
  format(*k, out);
  write_all(fd, out.data(), out.size());
  if (out.truncated()) write_all(fd, "... (truncated)\n", 16);
}

void stats_at_exit() {
  if (!g_opts.stats || g_kernel == nullptr) return;
  if (g_opts.stats_path[0] == '\0') {
    print_stats(2);
    return;
  }
  int fd = open_stats_file(g_opts.stats_path);
  if (fd < 0) return;
  print_stats(fd);
  ::close(fd);
}

void start_stat_server() {
  if (!g_opts.live || g_server_started) return;
  g_server_started = true;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return;
  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  TextSink name(addr.sun_path + 1, sizeof addr.sun_path - 1);
  name.str("kmm-stat-").u(static_cast<std::uint64_t>(::getpid()));
  auto len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + 1 + name.size());
  if (::bind(fd, reinterpret_cast<struct sockaddr*>(&addr), len) != 0 || ::listen(fd, 4) != 0) {
    if (errno == EADDRINUSE) {
      // Abstract names are first come, first served: another process squats ours. `kmm stat`
      // checks the server's pid, so it will say so rather than print the squatter's text.
      StackText<160> line;
      line.str("kmm: warning: live stats off: @").str(name.data(), name.size());
      line.str(" is already bound by another process").nl();
      write_report_text(line.data(), line.size());
    }
    ::close(fd);
    return;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return;
  }
  g_listen_dev = st.st_dev;
  g_listen_ino = st.st_ino;
  g_listen_fd = fd;
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &attr, server_main, nullptr) != 0) {
    ::close(fd);
    g_listen_fd = -1;
  }
  pthread_attr_destroy(&attr);
}

void stat_server_fork_child() {
  // The listening thread did not come along; the child serves nothing under its own pid.
  // (Closed only if still ours: the number may be one of the program's by now.)
  if (listen_fd_is_ours(g_listen_fd)) ::close(g_listen_fd);
  g_listen_fd = -1;
  g_server_started = false;
}

namespace {
__attribute__((constructor)) void shim_init() {
  // Boot now if nothing has allocated yet, so options (stats, live) take effect.
  if (kernel() != nullptr) start_stat_server();
}
__attribute__((destructor)) void shim_fini() {
  stats_at_exit();
}
}  // namespace

}  // namespace kmm::shim

KMM_EXPORT void kmm_stats_print(int fd) {
  kmm::shim::print_stats(fd);
}

/* tests/shim/security_victim.cpp — the program test_security.cpp runs as root, as another
 * user, and setuid-root as another user. It links libkmm-preload.so, so kmm is its malloc and
 * its KMM_OPTIONS (stats=, live=) apply to it.
 *   probe      allocates, then prints "euid=E secure=S socket=yes|no": its effective uid,
 *              getauxval(AT_SECURE), and whether something answers on @kmm-stat-<its pid>
 *              (the live stat server, when live=1 took effect); exits 0.
 *   serve N    loads N modules with long names (so its stats are larger than a socket
 *              buffer), prints "ready", then waits until its stdin closes and exits 0.
 *   closeall   closes every fd above stderr, then listens on a socket of its own and serves
 *              three clients of its own: "served=3 of 3" and exit 0 when all reached it.
 *   dropserve UID  loads a module whose name holds a terminal escape sequence, then (as a
 *              daemon does) drops its root privileges to UID, prints "ready", and waits
 *              until its stdin closes.
 *   flood      binds @kmm-stat-<its pid> itself (no preload server: live=0) and answers one
 *              client with 2 MiB of escape sequences: a fake stat server; prints "ready".
 * Depends on: the kmm_* API (include/kmm/kmm.h), POSIX. */
#include <poll.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kmm/kmm.h"

namespace {

bool stat_socket_answers() {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  int n = snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "kmm-stat-%d", static_cast<int>(getpid()));
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + static_cast<std::size_t>(n));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0;
  close(fd);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && strcmp(argv[1], "probe") == 0) {
    void* volatile p = malloc(100);
    free(p);
    printf("euid=%d secure=%lu socket=%s kmm=%d\n", static_cast<int>(geteuid()), getauxval(AT_SECURE),
           stat_socket_answers() ? "yes" : "no", kmm_active());
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "chdir") == 0) {
    // A program that moves: stats=RELATIVE is where it started, not where it ends.
    if (chdir(argv[2]) != 0) return 3;
    void* volatile p = malloc(100);
    free(p);
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "serve") == 0) {
    int n = atoi(argv[2]);
    for (int i = 0; i < n; ++i) {
      char name[64];
      snprintf(name, sizeof name, "security-victim-module-with-a-long-name-%03d", i);
      if (kmm_module_load(name) < 0) break;
    }
    printf("ready\n");
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {
    }
    return 0;
  }
  if (argc >= 2 && strcmp(argv[1], "closeall") == 0) {
    // A daemon's start: every fd above stderr closed (the live stats socket with them), then
    // a listening socket of its own, which takes the lowest number (the stats socket's, most
    // likely), and a client of its own. The client must reach the program, not kmm.
    void* volatile p = malloc(100);
    free(p);
    usleep(100 * 1000);  // the stat server is waiting in poll on its socket
    for (int fd = 3; fd < 1024; ++fd) close(fd);
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    int n = snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "victim-own-%d", static_cast<int>(getpid()));
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + static_cast<std::size_t>(n));
    if (ls < 0 || bind(ls, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(ls, 4) != 0) return 3;
    int got = 0;
    for (int i = 0; i < 3; ++i) {
      if (fork() == 0) {
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        char buf[64] = {};
        if (connect(c, reinterpret_cast<sockaddr*>(&addr), len) != 0) _exit(4);
        ssize_t r = read(c, buf, sizeof buf - 1);
        _exit(r == 5 && memcmp(buf, "hello", 5) == 0 ? 0 : 5);
      }
      pollfd pf = {ls, POLLIN, 0};
      if (poll(&pf, 1, 5000) == 1) {
        int c = accept(ls, nullptr, nullptr);
        if (c >= 0) {
          if (write(c, "hello", 5) == 5) ++got;
          close(c);
        }
      }
      int st = 0;
      wait(&st);
    }
    usleep(1500 * 1000);  // past the stat server's poll timeout: it sees the socket is not its own
    printf("fd=%d served=%d of 3\n", ls, got);
    return got == 3 ? 0 : 1;
  }
  if (argc >= 3 && strcmp(argv[1], "dropserve") == 0) {
    if (kmm_module_load("title\x1b]0;owned\x07\x1b[2J") < 0) return 3;
    auto uid = static_cast<uid_t>(atoi(argv[2]));
    if (setgid(uid) != 0 || setuid(uid) != 0) return 4;
    printf("ready\n");
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {
    }
    return 0;
  }
  if (argc >= 2 && strcmp(argv[1], "flood") == 0) {
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    int n = snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "kmm-stat-%d", static_cast<int>(getpid()));
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + static_cast<std::size_t>(n));
    if (ls < 0 || bind(ls, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(ls, 4) != 0) return 3;
    printf("ready\n");
    fflush(stdout);
    int c = accept(ls, nullptr, nullptr);
    if (c < 0) return 4;
    static char chunk[4096];
    for (std::size_t i = 0; i < sizeof chunk; i += 8) memcpy(chunk + i, "\x1b[31mX\x07", 8);
    for (int i = 0; i < 512; ++i)
      if (send(c, chunk, sizeof chunk, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof chunk)) break;  // hung up
    close(c);
    return 0;
  }
  fprintf(stderr, "usage: %s probe | serve N | closeall | dropserve UID | flood\n", argv[0]);
  return 2;
}

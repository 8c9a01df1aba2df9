/* tests/shim/security_victim.cpp — the program test_security.cpp runs as root, as another
 * user, and setuid-root as another user. It links libkmm-preload.so, so kmm is its malloc and
 * its KMM_OPTIONS (stats=, live=) apply to it.
 *   probe      allocates, then prints "euid=E secure=S socket=yes|no": its effective uid,
 *              getauxval(AT_SECURE), and whether something answers on @kmm-stat-<its pid>
 *              (the live stat server, when live=1 took effect); exits 0.
 *   serve N    loads N modules with long names (so its stats are larger than a socket
 *              buffer), prints "ready", then waits until its stdin closes and exits 0.
 * Depends on: the kmm_* API (include/kmm/kmm.h), POSIX. */
#include <sys/auxv.h>
#include <sys/socket.h>
#include <sys/un.h>
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
  fprintf(stderr, "usage: %s probe | serve N\n", argv[0]);
  return 2;
}

// tests/shim/atfork_host.cpp — shim.fork_handler_that_allocates: forks (a few times, from a
// thread too) with atfork_lib's handler registered. Before kmm's handlers were made the
// oldest (alloc.cpp, register_fork_handlers), the first fork spun for ever on a lock its own
// thread held. Prints "fork with an allocating handler: OK". Run with atfork_lib preloaded
// (LD_PRELOAD) under `kmm exec`. Depends on: libc, pthreads.
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace {
bool fork_and_wait() {
  const pid_t child = fork();
  if (child < 0) return false;
  if (child == 0) {
    void* volatile p = std::malloc(200);  // the child's heap works too
    std::free(p);
    _exit(0);
  }
  int status = 0;
  return waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
}  // namespace

int main() {
  void* volatile keep = std::malloc(10);
  for (int i = 0; i < 5; ++i)
    if (!fork_and_wait()) return std::printf("fork %d failed\n", i), 1;
  bool ok = false;
  pthread_t t;
  pthread_create(
      &t, nullptr,
      [](void* arg) -> void* {
        *static_cast<bool*>(arg) = fork_and_wait();
        return nullptr;
      },
      &ok);
  pthread_join(t, nullptr);
  std::free(keep);
  if (!ok) return std::printf("fork from a thread failed\n"), 1;
  std::printf("fork with an allocating handler: OK\n");
  return 0;
}

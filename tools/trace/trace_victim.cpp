// kmm/tools/trace/trace_victim.cpp — the program tests/replay/test_replay.cpp records with
// `kmm trace`: an allocation before main (a static constructor, 1234567 bytes), malloc 1001,
// calloc(10, 20), realloc to 5003, posix_memalign(64, 256), aligned_alloc(128, 512),
// new int[10] (40 bytes), an over-aligned new, four threads each allocating 333-byte blocks,
// and a fork whose child allocates 777 bytes and frees a block its parent allocated.
// Distinct sizes let the test find each event. Built twice: kmm-trace-victim (the recorder
// preloaded by `kmm trace`) and kmm-trace-linked-victim (the recorder linked in, as a
// setuid program that links it would be: a preload is ignored in secure execution).
// Depends on: libc, libstdc++, pthreads.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>

namespace {

struct BeforeMain {
  void* p;
  BeforeMain() : p(malloc(1234567)) {}
  ~BeforeMain() { free(p); }
};
BeforeMain g_before;

void* worker(void*) {
  for (int i = 0; i < 200; ++i) {
    void* p = malloc(333);
    free(p);
  }
  return nullptr;
}

struct alignas(64) Wide {
  char bytes[192];
};

}  // namespace

// The recorder's manners inside a program (tests/replay/test_replay.cpp runs each mode):
//   errno      errno is 0 at main and kept across malloc/free after every fd is closed;
//   signals    a SIGALRM handler allocates while the main thread does (every millisecond);
//   fsize [N]  RLIMIT_FSIZE of N bytes (default 100000; 0: none) below what the recording
//              writes: the program is not killed;
//   swap FILE  its raw file renamed away and a symbolic link to FILE put in its place, every
//              fd closed, then allocations: the recorder's reopen must not follow the link;
//   secure     prints secure=AT_SECURE, then allocates (the recorder must be off when 1);
//   perms      prints the recording directory's and its own raw file's modes (octal);
//   badalloc   new of an impossible size throws std::bad_alloc, as without the recorder;
//   exec       4242-byte blocks, then execv of itself (mode exec2): they are recorded.
int special(int argc, char** argv, int errno_at_main) {
  const std::string mode = argv[1];
  if (mode == "errno") {
    if (errno_at_main != 0) return std::printf("errno %d at main\n", errno_at_main), 5;
    for (int fd = 3; fd < 1024; ++fd) close(fd);
    for (int i = 0; i < 5000; ++i) {
      void* volatile p = malloc(32);
      errno = 12345;
      free(p);
      if (errno != 12345) return std::printf("free changed errno to %d at %d\n", errno, i), 5;
      errno = 12345;
      p = malloc(48);
      if (errno != 12345) return std::printf("malloc changed errno to %d at %d\n", errno, i), 5;
      free(p);
    }
    return std::printf("errno kept\n"), 0;
  }
  if (mode == "signals") {
    struct sigaction sa {};
    sa.sa_handler = [](int) {
      void* volatile p = malloc(24);
      free(p);
    };
    sigaction(SIGALRM, &sa, nullptr);
    struct itimerval it {};
    it.it_interval.tv_usec = 1000;
    it.it_value.tv_usec = 1000;
    setitimer(ITIMER_REAL, &it, nullptr);
    for (int i = 0; i < 300000; ++i) {
      void* volatile p = malloc(40);
      free(p);
    }
    it = {};
    setitimer(ITIMER_REAL, &it, nullptr);
    return std::printf("signals done\n"), 0;
  }
  if (mode == "fsize") {
    const rlim_t limit = argc >= 3 ? std::strtoull(argv[2], nullptr, 10) : 100000;
    struct rlimit rl = {limit, limit};
    if (limit != 0) setrlimit(RLIMIT_FSIZE, &rl);
    for (int i = 0; i < 200000; ++i) {
      void* volatile p = malloc(40);
      free(p);
    }
    return std::printf("fsize done\n"), 0;
  }
  const char* trace_dir = getenv("KMM_TRACE_DIR");
  const std::string own_raw =
      std::string(trace_dir != nullptr ? trace_dir : ".") + "/raw." + std::to_string(getpid()) + ".0";
  if (mode == "swap" && argc >= 3) {
    if (rename(own_raw.c_str(), (own_raw + ".moved").c_str()) != 0) return std::printf("no raw file to move\n"), 5;
    if (symlink(argv[2], own_raw.c_str()) != 0) return std::printf("cannot plant the link\n"), 5;
    for (int fd = 3; fd < 1024; ++fd) close(fd);
    for (int i = 0; i < 20000; ++i) {
      void* volatile p = malloc(56);
      free(p);
    }
    return std::printf("swap done\n"), 0;
  }
  if (mode == "secure") {
    for (int i = 0; i < 5000; ++i) {
      void* volatile p = malloc(56);
      free(p);
    }
    return std::printf("secure=%lu euid=%u\n", getauxval(AT_SECURE), static_cast<unsigned>(geteuid())), 0;
  }
  if (mode == "perms") {
    struct stat d {
    }, f{};
    if (trace_dir == nullptr || stat(trace_dir, &d) != 0 || stat(own_raw.c_str(), &f) != 0)
      return std::printf("no recording\n"), 5;
    return std::printf("dir=%o raw=%o\n", d.st_mode & 07777, f.st_mode & 07777), 0;
  }
  if (mode == "badalloc") {
    try {
      volatile std::size_t huge = SIZE_MAX / 4;
      char* p = new char[huge];
      delete[] p;
    } catch (const std::bad_alloc&) {
      return std::printf("caught bad_alloc\n"), 0;
    }
    return 5;
  }
  if (mode == "exec" || mode == "execl" || mode == "execlp" || mode == "execle") {
    for (int i = 0; i < 100; ++i) free(malloc(4242));
    char self[] = "/proc/self/exe";
    char arg1[] = "exec2";
    char* args[] = {self, arg1, nullptr};
    if (mode == "execl") execl(self, self, arg1, static_cast<char*>(nullptr));
    if (mode == "execlp") execlp(self, self, arg1, static_cast<char*>(nullptr));
    if (mode == "execle") execle(self, self, arg1, static_cast<char*>(nullptr), environ);
    if (mode == "exec") execv(self, args);
    return 5;
  }
  if (mode == "exec2") return std::printf("exec done\n"), 0;
  (void)argc;
  return 2;
}

int main(int argc, char** argv) {
  const int errno_at_main = errno;
  if (argc >= 2) return special(argc, argv, errno_at_main);
  void* a = malloc(1001);
  void* b = calloc(10, 20);
  void* c = malloc(17);
  c = realloc(c, 5003);
  void* d = nullptr;
  if (posix_memalign(&d, 64, 256) != 0) return 3;
  void* e = aligned_alloc(128, 512);
  int* f = new int[10];
  Wide* w = new Wide;
  pthread_t th[4];
  for (auto& t : th) pthread_create(&t, nullptr, worker, nullptr);
  for (auto& t : th) pthread_join(t, nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    void* g = malloc(777);
    free(g);
    free(a);  // the parent's block
    exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  delete w;
  delete[] f;
  free(e);
  free(d);
  free(c);
  free(b);
  free(a);
  std::printf("victim done\n");
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 4;
}

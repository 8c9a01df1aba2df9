// kmm/tools/trace/trace_victim.cpp — the program tests/replay/test_replay.cpp records with
// `kmm trace`: an allocation before main (a static constructor, 1234567 bytes), malloc 1001,
// calloc(10, 20), realloc to 5003, posix_memalign(64, 256), aligned_alloc(128, 512),
// new int[10] (40 bytes), an over-aligned new, four threads each allocating 333-byte blocks,
// and a fork whose child allocates 777 bytes and frees a block its parent allocated.
// Distinct sizes let the test find each event. Depends on: libc, libstdc++, pthreads.
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <new>

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

int main() {
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

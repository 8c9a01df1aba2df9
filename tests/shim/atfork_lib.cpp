// tests/shim/atfork_lib.cpp — shim.fork_handler_that_allocates: a library whose constructor
// registers a fork handler that allocates (as libraries that keep per-process state do). Its
// constructor runs before kmm has registered its own handlers, so its prepare runs after
// kmm's, which takes every lock of the heap. Depends on: libc only.
#include <pthread.h>

#include <cstdlib>

namespace {
void prepare() {
  void* volatile p = std::malloc(100);  // a refill or a first allocation: needs a heap lock
  std::free(p);
}
__attribute__((constructor)) void register_handler() {
  pthread_atfork(prepare, nullptr, nullptr);
}
}  // namespace

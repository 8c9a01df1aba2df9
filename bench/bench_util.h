// kmm/bench/bench_util.h — what every kmalloc-style benchmark does around each allocation:
// write its first byte as a program would (and keep the compiler from dropping it), and
// count the calling thread's minor page faults. Depends on: Google Benchmark, getrusage(2).
#pragma once

#include <benchmark/benchmark.h>
#include <sys/resource.h>

namespace kmm::bench {

// The pointer goes through DoNotOptimize first, so that under LTO the compiler cannot reason
// about where it came from (kmalloc's ZERO_SIZE_PTR path made g++ -flto warn
// -Wstringop-overflow); ClobberMemory then forces the store out.
inline void touch(void* p) {
  char* c = static_cast<char*>(p);
  benchmark::DoNotOptimize(c);
  c[0] = 1;
  benchmark::ClobberMemory();
}

inline long thread_minflt() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_minflt;
}

}  // namespace kmm::bench

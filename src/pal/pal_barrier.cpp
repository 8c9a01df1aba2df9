// kmm/pal/pal_barrier.cpp — the process-wide asymmetric barrier (pal.h): membarrier(2) on
// Linux, nothing elsewhere (callers then fall back to atomic instructions on their fast path).
// Depends on: pal.h; on Linux, the membarrier system call (4.14+ for PRIVATE_EXPEDITED).
#include "pal/pal.h"

#if defined(__linux__) && !KMM_FREESTANDING
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace kmm {

#if defined(__linux__) && !KMM_FREESTANDING
namespace {
long membarrier(int cmd) {
  return ::syscall(__NR_membarrier, cmd, 0u, 0);
}
}  // namespace

bool register_process_barrier() {
  long cmds = membarrier(MEMBARRIER_CMD_QUERY);
  if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

bool process_barrier() {
  return membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0;
}
#else
bool register_process_barrier() {
  return false;
}
bool process_barrier() {
  return false;
}
#endif

}  // namespace kmm

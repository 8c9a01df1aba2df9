// kmm/base/spinlock.h — the lock every kmm layer uses.
//
// A test-and-test-and-set lock: acquire spins reading (no cache-line ping-pong), then tries an
// exchange; after a short spin it yields the CPU so a preempted holder can run (user space
// has no preempt_disable). Critical sections in kmm are short and never allocate.
//
// Lock order: docs/ARCHITECTURE.md, "Lock order", is the one list; in short
//   module registry  ->  kmem_cache::lock  ->  zone (buddy) lock
// A cache lock may take the zone lock to get or give back a slab's pages; the zone lock
// never takes another lock. The collector takes the registry lock only to read module state
// and releases it before it takes a cache lock.
//
// Depends on: config.h; on a hosted build, sched_yield(2).
#pragma once

#include <atomic>

#include "base/config.h"

#if KMM_HAVE_THREADS
#include <sched.h>
#endif

namespace kmm {

class SpinLock {
 public:
  void lock() {
    for (;;) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      unsigned spins = 0;
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause();
#endif
        } else {
#if KMM_HAVE_THREADS
          sched_yield();
#endif
          spins = 0;
        }
      }
    }
  }
  bool try_lock() {
    return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() {
    locked_.store(false, std::memory_order_release);
  }
  bool is_locked() const {
    return locked_.load(std::memory_order_relaxed);
  }

 private:
  std::atomic<bool> locked_{false};
};

class LockGuard {
 public:
  explicit LockGuard(SpinLock& l) : lock_(l) { lock_.lock(); }
  ~LockGuard() { lock_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  SpinLock& lock_;
};

}  // namespace kmm

// kmm/persist/roots.cpp — named persistent roots (Kernel::root_set / root_get; the scenario's
// `root` command): how a program finds its data again after a reboot.
//
// The table (kMaxPersistRoots entries of a name and a pointer) is a member of the Kernel
// object, so it lives inside RAM and survives with the machine; it is registered as one of
// the collector's roots at format and at every attach, so what a root points to is
// reachable, and reclaim-unreachable never takes it.
//
// Depends on: kernel/kernel.h, persist/attach.h. Never allocates. Invariant: an entry is in
// use exactly when its name's first byte is non-zero, and that byte is written last (a crash
// leaves a whole entry or none). Calls are serialized by one lock of the process (not of the
// heap file: a lock stored there would be held for ever by a process that died holding it):
// two threads setting roots at once picked the same free entry, and a name was read while
// another thread wrote it (79 roots lost or wrong in 2,000 boots before stop 48).
#include <cstring>

#include "base/spinlock.h"
#include "base/text.h"
#include "persist/attach.h"

namespace kmm {

namespace {
SpinLock g_roots_lock;
}  // namespace

void KernelImage::register_roots(Kernel& k) {
  k.collector_.add_root(k.roots_, sizeof k.roots_);
}

bool Kernel::root_set(const char* name, const void* p) {
  std::size_t len = str_len(name);
  if (len == 0 || len >= kPersistRootNameLen) return false;
  LockGuard g(g_roots_lock);
  PersistRoot* free_entry = nullptr;
  for (auto& r : roots_) {
    if (r.name[0] != 0 && str_eq(r.name, name)) {
      __atomic_store_n(&r.value, reinterpret_cast<std::uintptr_t>(p), __ATOMIC_RELAXED);
      if (p == nullptr) __atomic_store_n(&r.name[0], '\0', __ATOMIC_RELAXED);
      return true;
    }
    if (r.name[0] == 0 && free_entry == nullptr) free_entry = &r;
  }
  if (p == nullptr) return true;
  if (free_entry == nullptr) return false;
  // Value and the tail of the name first; the first byte of the name publishes the entry.
  free_entry->value = reinterpret_cast<std::uintptr_t>(p);
  std::memset(free_entry->name + 1, 0, kPersistRootNameLen - 1);
  std::memcpy(free_entry->name + 1, name + 1, len - 1);
  __atomic_signal_fence(__ATOMIC_RELEASE);
  __atomic_store_n(&free_entry->name[0], name[0], __ATOMIC_RELAXED);
  return true;
}

void* Kernel::root_get(const char* name) const {
  LockGuard g(g_roots_lock);
  for (const auto& r : roots_)
    if (r.name[0] != 0 && str_eq(r.name, name)) return reinterpret_cast<void*>(r.value);
  return nullptr;
}

}  // namespace kmm

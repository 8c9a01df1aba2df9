// kmm/protect/module.h — the module registry: insmod, rmmod, lsmod, and who owns what.
//
// A module occupies a slot; its owner id (slot + kOwnerFirstModule) is the byte written in
// the owner vector of every object it allocates. rmmod marks the module Gone, not Free: its
// blocks still carry its id, and the collector (collector.h) needs to know whose they were.
// A Gone slot becomes Free — reusable by a later insmod — only when the collector has found
// it owns nothing any more; so an id is never reused while a block still carries it, and a
// reloaded module is a new instance with a new id, as a reloaded Linux module is a new
// struct module.
//
// States: Free -> Live (insmod) -> Gone (rmmod) -> Free (collector found it empty).
// Holds: a thread working for a module (the preload's kmm_module_scope_enter) holds it. A hold
// is taken only on a Live module, so once a Gone module's last hold goes it gets no other;
// while it has holds it is not dead to the collector (dead_owners, nr_gone leave it out): its
// code may still run and use what it allocated, as Linux's rmmod waits out a module's users.
// Holds belong to a process, never to a heap file (suspend_live clears them).
// Locking: one registry lock, below the collector's in kmm's lock order (docs/ARCHITECTURE.md);
// readers of a single state byte (the collector's dead[] table) copy it under the lock.
// Depends on: base/.
#pragma once

#include "base/spinlock.h"

namespace kmm {

class TextSink;

inline constexpr unsigned kMaxModules = kOwnerUntracked - kOwnerFirstModule;  // 253
inline constexpr unsigned kModuleNameLen = 56;

// kDormant (persistent RAM): loaded before a reboot, not loaded again yet. Its blocks are
// neither live roots nor dead: insmod of the same name makes it Live again with the same
// owner id; the end of the boot grace period makes it Gone (Kernel::boot_complete).
enum class ModuleState : std::uint8_t { kFree, kLive, kGone, kDormant };

struct Module {
  char name[kModuleNameLen];
  ModuleState state;
  bool leaks_reported;      // report mode: this instance's leaks were logged
  std::uint32_t instance;   // how many times a module of this name was loaded before
  std::uint64_t core_size;  // "size" column of /proc/modules
  std::uint64_t address;    // load address shown in /proc/modules
  std::uint64_t load_ns, unload_ns;
};

enum class ModuleError : std::uint8_t { kOk, kAlreadyLoaded, kNotLoaded, kTableFull, kBadName };
const char* module_error_text(ModuleError e);

class ModuleRegistry {
 public:
  void init();
  // insmod: returns the new module's owner id through *owner.
  ModuleError load(const char* name, std::uint64_t core_size, std::uint64_t now_ns, owner_t* owner);
  // rmmod: the live module of that name becomes Gone.
  ModuleError unload(const char* name, std::uint64_t now_ns, owner_t* owner);

  // The live module of that name, or kOwnerFree.
  owner_t find_live(const char* name) const;
  // A hold on module o (see above): false, and no hold, unless o is Live.
  bool hold(owner_t o);
  void unhold(owner_t o);
  // fork()'s child, which has one thread of the parent's: every hold dropped, then one taken
  // again for each module of owners[0..n) (that thread's scopes; the kernel's are skipped),
  // whatever the module's state now.
  void reset_holds(const owner_t* owners, unsigned n);
  unsigned holds(owner_t o) const;
  // Copies states for owners 0..255: true for owners that are Gone (dead) and held by no
  // thread: the modules the collector may take.
  unsigned dead_owners(bool dead[kMaxOwners]) const;
  bool is_live_owner(owner_t o) const;
  // Gone -> Free, once the collector has found the owner holds nothing.
  void release(owner_t o);
  void mark_reported(owner_t o);

  // Name for an owner id: "kernel", a module name, "untracked", or "?".
  const char* owner_name(owner_t o) const;
  const Module* module(owner_t o) const;
  unsigned nr_live() const;
  unsigned nr_gone() const;  // Gone and not held: dead_owners' count
  // Persistent RAM: at attach every Live module becomes Dormant (and the lock is reset);
  // at the end of the grace period every Dormant one becomes Gone. Both return how many.
  unsigned suspend_live();
  unsigned expire_dormant(std::uint64_t now_ns);
  // fork() support (Kernel::lock_all): the registry lock, outermost.
  SpinLock& fork_lock() const { return lock_; }

  // Persistent RAM (persist/attach.cpp), at attach: every slot's name terminated, state known,
  // flag a bool. null, or what is wrong.
  const char* check_stored();

 private:
  mutable SpinLock lock_;
  Module slots_[kMaxModules];
  std::uint32_t holds_[kMaxModules];            // under lock_
  std::uint64_t next_address_ = 0xbf000000ull;  // ARM's MODULES_VADDR
};

}  // namespace kmm

// kmm/protect/module.cpp — registry operations.
#include "protect/module.h"

#include <cstring>
#include <new>

#include "base/bits.h"
#include "base/text.h"

namespace kmm {

const char* module_error_text(ModuleError e) {
  switch (e) {
    case ModuleError::kOk:
      return "ok";
    case ModuleError::kAlreadyLoaded:
      return "module is already loaded";
    case ModuleError::kNotLoaded:
      return "module is not loaded";
    case ModuleError::kTableFull:
      return "module table is full";
    case ModuleError::kBadName:
      return "bad module name (empty, 56 characters or more, or one kmm reserves: kernel, untracked, ?)";
  }
  return "?";
}

void ModuleRegistry::init() {
  std::memset(slots_, 0, sizeof slots_);
  std::memset(holds_, 0, sizeof holds_);
  next_address_ = 0xbf000000ull;
}

ModuleError ModuleRegistry::load(const char* name, std::uint64_t core_size, std::uint64_t now_ns, owner_t* owner) {
  std::size_t n = str_len(name);
  // The names owner_name gives owners that are not modules are not a module's: a row of
  // /proc/allocinfo would read like the kernel's, the untracked owner's or a free slot's.
  if (n == 0 || n >= kModuleNameLen || str_eq(name, "kernel") || str_eq(name, "untracked") || str_eq(name, "?"))
    return ModuleError::kBadName;
  LockGuard g(lock_);
  std::uint32_t instances = 0;
  int free_slot = -1;
  for (unsigned i = 0; i < kMaxModules; ++i) {
    const Module& m = slots_[i];
    if (m.state == ModuleState::kFree) {
      if (free_slot < 0) free_slot = static_cast<int>(i);
      continue;
    }
    if (str_eq(m.name, name)) {
      if (m.state == ModuleState::kLive) return ModuleError::kAlreadyLoaded;
      if (m.state == ModuleState::kDormant) {
        // Loaded before a reboot of persistent RAM: it reclaims its identity (owner id).
        slots_[i].state = ModuleState::kLive;
        slots_[i].load_ns = now_ns;
        *owner = static_cast<owner_t>(i + kOwnerFirstModule);
        return ModuleError::kOk;
      }
      ++instances;
    }
  }
  if (free_slot < 0) return ModuleError::kTableFull;
  Module& m = slots_[free_slot];
  std::memset(&m, 0, sizeof m);
  str_copy(m.name, sizeof m.name, name);
  m.state = ModuleState::kLive;
  m.instance = instances;
  m.core_size = core_size;
  // Load addresses are what /proc/modules shows (no mapping is made): they go up from
  // MODULES_VADDR and start there again rather than wrap past 2^64 (a huge core size).
  // One module's span is cut to 2^40 bytes, the window is 2^44.
  constexpr std::uint64_t kModulesBase = 0xbf000000ull, kModulesSpan = std::uint64_t{1} << 44;
  constexpr std::uint64_t kLargestSpan = std::uint64_t{1} << 40;
  const std::uint64_t span =
      core_size > kLargestSpan ? kLargestSpan : round_up(core_size == 0 ? kPageSize : core_size, kPageSize);
  if (next_address_ < kModulesBase || next_address_ - kModulesBase > kModulesSpan - span) next_address_ = kModulesBase;
  m.address = next_address_;
  next_address_ += span;
  m.load_ns = now_ns;
  *owner = static_cast<owner_t>(free_slot + kOwnerFirstModule);
  return ModuleError::kOk;
}

ModuleError ModuleRegistry::unload(const char* name, std::uint64_t now_ns, owner_t* owner) {
  LockGuard g(lock_);
  for (unsigned i = 0; i < kMaxModules; ++i) {
    Module& m = slots_[i];
    if (m.state == ModuleState::kLive && str_eq(m.name, name)) {
      m.state = ModuleState::kGone;
      m.unload_ns = now_ns;
      *owner = static_cast<owner_t>(i + kOwnerFirstModule);
      return ModuleError::kOk;
    }
  }
  return ModuleError::kNotLoaded;
}

owner_t ModuleRegistry::find_live(const char* name) const {
  LockGuard g(lock_);
  for (unsigned i = 0; i < kMaxModules; ++i) {
    if (slots_[i].state == ModuleState::kLive && str_eq(slots_[i].name, name))
      return static_cast<owner_t>(i + kOwnerFirstModule);
  }
  return kOwnerFree;
}

unsigned ModuleRegistry::dead_owners(bool dead[kMaxOwners]) const {
  LockGuard g(lock_);
  unsigned n = 0;
  for (unsigned o = 0; o < kMaxOwners; ++o) dead[o] = false;
  for (unsigned i = 0; i < kMaxModules; ++i) {
    if (slots_[i].state == ModuleState::kGone && holds_[i] == 0) {
      dead[i + kOwnerFirstModule] = true;
      ++n;
    }
  }
  return n;
}

bool ModuleRegistry::hold(owner_t o) {
  if (o < kOwnerFirstModule || o >= kOwnerUntracked) return false;
  LockGuard g(lock_);
  if (slots_[o - kOwnerFirstModule].state != ModuleState::kLive) return false;
  ++holds_[o - kOwnerFirstModule];
  return true;
}

void ModuleRegistry::unhold(owner_t o) {
  if (o < kOwnerFirstModule || o >= kOwnerUntracked) return;
  LockGuard g(lock_);
  std::uint32_t& h = holds_[o - kOwnerFirstModule];
  if (h != 0) --h;
}

void ModuleRegistry::reset_holds(const owner_t* owners, unsigned n) {
  LockGuard g(lock_);
  std::memset(holds_, 0, sizeof holds_);
  for (unsigned i = 0; i < n; ++i) {
    owner_t o = owners[i];
    if (o < kOwnerFirstModule || o >= kOwnerUntracked) continue;
    ModuleState st = slots_[o - kOwnerFirstModule].state;
    if (st == ModuleState::kLive || st == ModuleState::kGone) ++holds_[o - kOwnerFirstModule];
  }
}

unsigned ModuleRegistry::holds(owner_t o) const {
  if (o < kOwnerFirstModule || o >= kOwnerUntracked) return 0;
  LockGuard g(lock_);
  return holds_[o - kOwnerFirstModule];
}

bool ModuleRegistry::is_live_owner(owner_t o) const {
  if (o == kOwnerKernel || o == kOwnerUntracked) return true;
  if (o < kOwnerFirstModule) return false;
  LockGuard g(lock_);
  return slots_[o - kOwnerFirstModule].state == ModuleState::kLive;
}

void ModuleRegistry::release(owner_t o) {
  if (o < kOwnerFirstModule || o >= kOwnerUntracked) return;
  LockGuard g(lock_);
  Module& m = slots_[o - kOwnerFirstModule];
  if (m.state == ModuleState::kGone && holds_[o - kOwnerFirstModule] == 0) m.state = ModuleState::kFree;
}

void ModuleRegistry::mark_reported(owner_t o) {
  if (o < kOwnerFirstModule || o >= kOwnerUntracked) return;
  LockGuard g(lock_);
  slots_[o - kOwnerFirstModule].leaks_reported = true;
}

const char* ModuleRegistry::owner_name(owner_t o) const {
  if (o == kOwnerKernel) return "kernel";
  if (o == kOwnerUntracked) return "untracked";
  if (o < kOwnerFirstModule) return "?";
  const Module& m = slots_[o - kOwnerFirstModule];
  return m.state == ModuleState::kFree ? "?" : m.name;
}

const Module* ModuleRegistry::module(owner_t o) const {
  if (o < kOwnerFirstModule || o >= kOwnerUntracked) return nullptr;
  const Module& m = slots_[o - kOwnerFirstModule];
  return m.state == ModuleState::kFree ? nullptr : &m;
}

unsigned ModuleRegistry::nr_live() const {
  LockGuard g(lock_);
  unsigned n = 0;
  for (const auto& m : slots_) n += m.state == ModuleState::kLive;
  return n;
}

unsigned ModuleRegistry::nr_gone() const {
  LockGuard g(lock_);
  unsigned n = 0;
  for (unsigned i = 0; i < kMaxModules; ++i) n += slots_[i].state == ModuleState::kGone && holds_[i] == 0;
  return n;
}

unsigned ModuleRegistry::suspend_live() {
  new (&lock_) SpinLock();  // a crashed process may have held it
  std::memset(holds_, 0, sizeof holds_);  // that process's threads are not this one's
  unsigned n = 0;
  for (auto& m : slots_) {
    if (m.state == ModuleState::kLive) {
      m.state = ModuleState::kDormant;
      ++n;
    }
  }
  return n;
}

unsigned ModuleRegistry::expire_dormant(std::uint64_t now_ns) {
  LockGuard g(lock_);
  unsigned n = 0;
  for (auto& m : slots_) {
    if (m.state == ModuleState::kDormant) {
      m.state = ModuleState::kGone;
      m.unload_ns = now_ns;
      ++n;
    }
  }
  return n;
}

}  // namespace kmm

// kmm/vm/vm_types.h — vocabulary shared by the MMU model: accesses, permissions, memory
// types, and the format-neutral mapping attributes that the walker encodes per format.
//
// Depends on: base/config.h, base/text.h (mapping_size_text). Invariants: everything here is a plain value type (no
// heap, no virtual functions), so it may sit in TLB entries and walk records by value.
#pragma once

#include "base/config.h"
#include "base/text.h"

namespace kmm::vm {

// The two page-table formats the model implements.
enum class Format : std::uint8_t {
  kArmv7Short,    // ARMv7-A short-descriptor: 2 levels, 1 MB sections, 4 KB small pages
  kAarch64Gran4k  // AArch64 stage 1, 4 KB granule, 48-bit VA: 4 levels (L0..L3)
};

const char* format_name(Format f);

// What the CPU is doing when it presents a virtual address.
enum class AccessType : std::uint8_t { kRead, kWrite, kExec };

// Who is doing it: PL0/EL0 (user) or PL1/EL1 (kernel).
enum class Privilege : std::uint8_t { kKernel, kUser };

const char* access_name(AccessType a);

// Effective permissions of a leaf mapping, after all format rules have been applied
// (AP bits, XN/PXN/UXN, table-level restrictions, AArch64's implicit PXN on user-writable
// memory). A TLB entry caches these so a hit is checked exactly as a walk would be.
struct Perms {
  bool kernel_read = false;
  bool kernel_write = false;
  bool kernel_exec = false;
  bool user_read = false;
  bool user_write = false;
  bool user_exec = false;

  bool allows(AccessType a, Privilege p) const {
    if (p == Privilege::kUser) {
      return a == AccessType::kRead ? user_read : a == AccessType::kWrite ? user_write : user_exec;
    }
    return a == AccessType::kRead ? kernel_read : a == AccessType::kWrite ? kernel_write : kernel_exec;
  }
};

// Memory types the encoders know how to express (ARMv7 TEX/C/B with TEX remap off; AArch64
// AttrIndx under Linux's MAIR layout, see aarch64_desc.h).
enum class MemType : std::uint8_t {
  kNormal,          // normal memory, write-back write-allocate cacheable
  kNormalUncached,  // normal memory, non-cacheable
  kDevice,          // device memory (ARMv7 shareable device; AArch64 Device-nGnRE)
  kStronglyOrdered  // ARMv7 strongly-ordered; AArch64 Device-nGnRnE
};

const char* mem_type_name(MemType t);

// Format-neutral attributes of a mapping, as Linux's pgprot_t would give them.
//  - user: PL0/EL0 may access it; the kernel may always read what it maps.
//  - writable: writes allowed (by the user if `user`, and by the kernel).
//  - executable: instruction fetch allowed by the owner (the user for user mappings, the
//    kernel for kernel mappings). The kernel never executes user memory (PXN where the format
//    has it), and user code never executes kernel memory.
//  - global: the translation is shared by all ASIDs (nG = 0).
struct MapAttrs {
  bool user = false;
  bool writable = true;
  bool executable = false;
  bool global = true;
  MemType mem = MemType::kNormal;
  std::uint8_t domain = 0;  // ARMv7 only: domain 0..15 of sections and page tables
};

// "4K", "64K", "1M", "2M", "1G": the size of a mapping of 2^shift bytes, as the TLB dump and
// the walk print it.
void mapping_size_text(TextSink& out, unsigned shift);

}  // namespace kmm::vm

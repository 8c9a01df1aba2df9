// kmm/nommu/mmap_copy.h — MmapCopy for /proc/meminfo on NOMMU machines.
//
// Linux's MmapCopy (mm/nommu.c mmap_pages_allocated) is the memory the kernel allocated to
// back private mmaps. A Nommu (nommu.h) registers its running count here against its Kernel;
// proc/meminfo.cpp reads it. Header-only (inline variables), so proc/ needs no link to
// nommu/. A small fixed table, no heap; one Nommu per Kernel.
// Invariant: a registered slot's kernel is live (Nommu::shutdown unregisters).
// Depends on: nothing.
#pragma once

#include <cstdint>

namespace kmm {

struct MmapCopySlot {
  const void* kernel;
  const std::uint64_t* bytes;
};
inline constexpr unsigned kMmapCopySlots = 16;
inline MmapCopySlot g_mmap_copy_slots[kMmapCopySlots] = {};

inline void mmap_copy_register(const void* kernel, const std::uint64_t* bytes) {
  for (auto& s : g_mmap_copy_slots) {
    if (s.kernel == nullptr || s.kernel == kernel) {
      s.kernel = kernel;
      s.bytes = bytes;
      return;
    }
  }
}

inline void mmap_copy_unregister(const void* kernel) {
  for (auto& s : g_mmap_copy_slots)
    if (s.kernel == kernel) s = MmapCopySlot{nullptr, nullptr};
}

// Bytes behind the NOMMU mmaps of `kernel` (0 when none registered).
inline std::uint64_t mmap_copy_bytes(const void* kernel) {
  for (const auto& s : g_mmap_copy_slots)
    if (s.kernel == kernel && s.bytes != nullptr) return *s.bytes;
  return 0;
}

}  // namespace kmm

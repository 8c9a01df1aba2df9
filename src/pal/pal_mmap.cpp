// kmm/pal/pal_mmap.cpp — the anonymous-mapping backend (Linux, any POSIX with MAP_ANONYMOUS).
#include <sys/mman.h>

#include <cstdint>

#include "pal/pal.h"

namespace kmm {

void* MmapPlatform::reserve(std::size_t size, std::size_t align) {
  if (size == 0) return nullptr;
  if (align < kPageSize) align = kPageSize;
  std::size_t span = size + align - kPageSize;
  if (span < size) return nullptr;
  void* raw = ::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  auto start = reinterpret_cast<std::uintptr_t>(raw);
  auto aligned = (start + align - 1) & ~(std::uintptr_t{align} - 1);
  if (aligned > start) ::munmap(raw, aligned - start);
  std::uintptr_t end = start + span;
  if (end > aligned + size) ::munmap(reinterpret_cast<void*>(aligned + size), end - (aligned + size));
  return reinterpret_cast<void*>(aligned);
}

bool MmapPlatform::commit(void* p, std::size_t size) {
  return ::mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
}

bool MmapPlatform::decommit(void* p, std::size_t size) {
  if (::madvise(p, size, MADV_DONTNEED) != 0) return false;
  return ::mprotect(p, size, PROT_NONE) == 0;
}

bool MmapPlatform::protect(void* p, std::size_t size, Prot prot) {
  int flags = prot == Prot::kNone ? PROT_NONE : prot == Prot::kRead ? PROT_READ : PROT_READ | PROT_WRITE;
  return ::mprotect(p, size, flags) == 0;
}

bool MmapPlatform::purge(void* p, std::size_t size) {
  return ::madvise(p, size, MADV_DONTNEED) == 0;
}

void MmapPlatform::release(void* p, std::size_t size) {
  ::munmap(p, size);
}

Platform& mmap_platform() {
  static MmapPlatform instance;
  return instance;
}

}  // namespace kmm

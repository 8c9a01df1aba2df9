// kmm/pal/pal_static.cpp — the static-buffer backend: no OS at all.
#include <cstdint>

#include "pal/pal.h"

namespace kmm {

StaticPlatform::StaticPlatform(void* buffer, std::size_t size) : buffer_(static_cast<char*>(buffer)), size_(size) {}

bool StaticPlatform::inside(const void* p, std::size_t size) const {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  auto b = reinterpret_cast<std::uintptr_t>(buffer_);
  return a >= b && size <= size_ && a - b <= size_ - size;
}

void* StaticPlatform::reserve(std::size_t size, std::size_t align) {
  if (size == 0) return nullptr;
  if (align < kPageSize) align = kPageSize;
  auto base = reinterpret_cast<std::uintptr_t>(buffer_);
  std::uintptr_t at = (base + used_ + align - 1) & ~(std::uintptr_t{align} - 1);
  std::size_t off = at - base;
  if (off > size_ || size > size_ - off) return nullptr;
  used_ = off + size;
  return buffer_ + off;
}

bool StaticPlatform::commit(void* p, std::size_t size) {
  return inside(p, size);
}
bool StaticPlatform::decommit(void* p, std::size_t size) {
  return inside(p, size);
}
bool StaticPlatform::protect(void* p, std::size_t size, Prot prot) {
  return inside(p, size) && prot == Prot::kReadWrite;
}

void StaticPlatform::release(void* p, std::size_t size) {
  if (inside(p, size) && static_cast<char*>(p) + size == buffer_ + used_) {
    used_ = static_cast<std::size_t>(static_cast<char*>(p) - buffer_);
  }
}

}  // namespace kmm

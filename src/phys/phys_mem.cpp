// kmm/phys/phys_mem.cpp — mem_map construction and the boot-time bump allocator.
#include "phys/phys_mem.h"

#include <cstring>

#include "base/bits.h"

namespace kmm {

bool PhysMem::init(void* base, std::size_t size, phys_addr_t phys_offset) {
  base_ = nullptr;
  nr_pages_ = 0;
  if ((reinterpret_cast<std::uintptr_t>(base) & (kPageSize - 1)) != 0) return false;
  if ((phys_offset & (kPageSize - 1)) != 0) return false;
  std::uint64_t pages = size >> kPageShift;
  if (pages < 2 || pages > 0x7FFFFFFFull) return false;
  std::uint64_t map_pages = pages_for(pages * sizeof(Page));
  if (map_pages >= pages) return false;
  base_ = static_cast<char*>(base);
  base_pfn_ = phys_to_pfn(phys_offset);
  nr_pages_ = static_cast<pfn_t>(pages);
  mem_map_ = reinterpret_cast<Page*>(base_);
  std::memset(mem_map_, 0, pages * sizeof(Page));
  boot_pages_ = static_cast<pfn_t>(map_pages);
  for (pfn_t i = 0; i < boot_pages_; ++i) {
    mem_map_[i].set_flags(PG_reserved);
    mem_map_[i].refcount = 1;
  }
  return true;
}

void* PhysMem::memblock_alloc(std::size_t bytes) {
  std::uint64_t n = pages_for(bytes);
  if (n == 0 || n > nr_pages_ - boot_pages_) return nullptr;
  void* p = base_ + (std::size_t{boot_pages_} << kPageShift);
  std::memset(p, 0, n << kPageShift);
  for (std::uint64_t i = 0; i < n; ++i) {
    mem_map_[boot_pages_ + i].set_flags(PG_reserved);
    mem_map_[boot_pages_ + i].refcount = 1;
  }
  boot_pages_ += static_cast<pfn_t>(n);
  return p;
}

}  // namespace kmm

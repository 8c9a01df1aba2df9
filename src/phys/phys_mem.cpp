// kmm/phys/phys_mem.cpp — mem_map construction and the boot-time bump allocator.
#include "phys/phys_mem.h"

#include <cstring>

#include "base/bits.h"

namespace kmm {

bool PhysMem::init(void* base, std::size_t size, phys_addr_t phys_offset, std::size_t online, bool fresh_zero) {
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
  mem_map_ = static_cast<Page*>(base);  // page aligned (checked above)
  boot_pages_ = static_cast<pfn_t>(map_pages);
  std::uint64_t online_pages = online == 0 || online >= size ? pages : pages_for(online);
  if (online_pages < map_pages + 1) online_pages = map_pages + 1;
  if (online_pages > pages) online_pages = pages;
  online_pages_ = static_cast<pfn_t>(online_pages);
  fresh_zero_ = fresh_zero;
  if (fresh_zero) return true;  // zero already; mem_map's frames are is_boot_frame()
  // Descriptors of the online frames; mem_map's own frames are PG_reserved.
  // online_pages <= size / kPageSize, so the product is below size: it fits size_t.
  std::memset(mem_map_, 0, static_cast<std::size_t>(online_pages * sizeof(Page)));
  for (pfn_t i = 0; i < boot_pages_; ++i) {
    mem_map_[i].set_flags(PG_reserved);
    mem_map_[i].refcount = 1;
  }
  return true;
}

pfn_t PhysMem::online_more(pfn_t pages, pfn_t* got) {
  *got = 0;
  if (online_pages_ >= nr_pages_) return kNoPfn;
  pfn_t n = nr_pages_ - online_pages_ < pages ? nr_pages_ - online_pages_ : pages;
  pfn_t first = online_pages_;
  if (!fresh_zero_) std::memset(mem_map_ + first, 0, std::size_t{n} * sizeof(Page));
  online_pages_ += n;
  *got = n;
  return base_pfn_ + first;
}

void* PhysMem::memblock_alloc(std::size_t bytes) {
  std::uint64_t n = pages_for(bytes);
  if (n == 0 || n > online_pages_ - boot_pages_) return nullptr;
  void* p = base_ + (std::size_t{boot_pages_} << kPageShift);
  // n frames of RAM: fits size_t. Fresh memory is zero already (and stays out of RSS until used).
  if (!fresh_zero_) std::memset(p, 0, static_cast<std::size_t>(n << kPageShift));
  for (std::uint64_t i = 0; i < n; ++i) {
    mem_map_[boot_pages_ + i].set_flags(PG_reserved);
    mem_map_[boot_pages_ + i].refcount = 1;
  }
  boot_pages_ += static_cast<pfn_t>(n);
  return p;
}

}  // namespace kmm

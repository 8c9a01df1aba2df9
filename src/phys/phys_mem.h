// kmm/phys/phys_mem.h — physical memory: a region of RAM cut into 4 KiB frames.
//
// RAM spans physical addresses [phys_offset, phys_offset + size) and lives at host address
// `base` (the kernel's direct map, in the real allocator; the modelled machine's page tables
// map it again at PAGE_OFFSET, see vm/). mem_map, the array of page descriptors, is kept in
// the first frames of RAM itself, as the kernel keeps it; after it comes boot memory handed
// out by a memblock-style bump allocator (the kernel's own structures), and the rest is given
// to the page allocator.
//
// Conversions (each O(1), a shift and an add, as the seed says):
//   phys_to_pfn(pa) = pa >> 12           pfn_to_phys(pfn) = pfn << 12
//   pfn_to_page(pfn) = &mem_map[pfn - base_pfn]      page_to_pfn(page) = base_pfn + index
//   page_address(page) = base + (pfn - base_pfn) * 4096
//   virt_to_page(p) = pfn_to_page(base_pfn + (p - base) >> 12)
//
// Depends on: base/, pal/, phys/page.h. Never allocates.
#pragma once

#include <cstdint>

#include "base/config.h"
#include "phys/page.h"

namespace kmm {

class Platform;

class PhysMem {
 public:
  // Takes over `size` bytes at host address `base` (page aligned), standing for physical
  // addresses from `phys_offset` (page aligned). Builds mem_map in the first frames.
  // `online` is how much of it is usable now (0 or >= size: all of it, "dense"); the rest
  // comes online later with online_more(), like memory hotplug — the frames and their
  // descriptors are not touched before, so a huge reservation costs nothing until used.
  // [base, base + mem_map_bytes()) and the online frames must be committed by the caller.
  // Returns false (and leaves *this unusable) when the region is too small to hold mem_map.
  // fresh_zero: the region is a fresh anonymous mapping (it reads as zero and nothing wrote
  // it). Descriptors are then zero already and are not cleared, and mem_map's own frames are
  // known as boot frames by their number (is_boot_frame) rather than marked PG_reserved: the
  // marks alone would fault in 1/128 of mem_map, 512 KiB of RSS in every process for an
  // 8 GiB reservation. Frames memblock_alloc hands out are marked either way.
  bool init(void* base, std::size_t size, phys_addr_t phys_offset, std::size_t online = 0, bool fresh_zero = false);
  // Brings up to `pages` more frames online (descriptors zeroed); returns the first new
  // frame, or kNoPfn when everything is online already. *got receives the count.
  pfn_t online_more(pfn_t pages, pfn_t* got);
  pfn_t online_end_pfn() const { return base_pfn_ + online_pages_; }
  bool fresh_zero() const { return fresh_zero_; }  // init's: frames never written read as zero

  // Boot-time allocation (memblock): page-aligned, zeroed, marked PG_reserved; only before the
  // page allocator takes the free frames. Null when RAM is exhausted.
  void* memblock_alloc(std::size_t bytes);

  pfn_t base_pfn() const { return base_pfn_; }
  pfn_t end_pfn() const { return base_pfn_ + nr_pages_; }
  pfn_t nr_pages() const { return nr_pages_; }
  std::size_t size() const { return std::size_t{nr_pages_} << kPageShift; }
  phys_addr_t phys_offset() const { return phys_addr_t{base_pfn_} << kPageShift; }
  char* base() const { return base_; }
  Page* mem_map() const { return mem_map_; }
  // First frame not used by mem_map or memblock: the page allocator's start.
  pfn_t first_free_pfn() const { return base_pfn_ + boot_pages_; }
  pfn_t reserved_pages() const { return boot_pages_; }
  // A frame of mem_map or of memblock's boot allocations (whether or not marked PG_reserved).
  bool is_boot_frame(pfn_t pfn) const { return pfn - base_pfn_ < boot_pages_; }
  std::size_t mem_map_bytes() const { return std::size_t{nr_pages_} * sizeof(Page); }

  static constexpr pfn_t phys_to_pfn(phys_addr_t pa) { return static_cast<pfn_t>(pa >> kPageShift); }
  static constexpr phys_addr_t pfn_to_phys(pfn_t pfn) { return phys_addr_t{pfn} << kPageShift; }
  static constexpr std::uint32_t phys_page_offset(phys_addr_t pa) {
    return static_cast<std::uint32_t>(pa & (kPageSize - 1));
  }

  bool pfn_valid(pfn_t pfn) const { return pfn >= base_pfn_ && pfn - base_pfn_ < nr_pages_; }
  bool owns(const void* p) const {
    auto a = reinterpret_cast<std::uintptr_t>(p);
    auto b = reinterpret_cast<std::uintptr_t>(base_);
    return a >= b && a - b < size();
  }

  Page* pfn_to_page(pfn_t pfn) const { return mem_map_ + (pfn - base_pfn_); }
  pfn_t page_to_pfn(const Page* page) const { return base_pfn_ + static_cast<pfn_t>(page - mem_map_); }
  void* page_address(const Page* page) const { return base_ + (std::size_t(page - mem_map_) << kPageShift); }
  void* pfn_to_virt(pfn_t pfn) const { return base_ + (std::size_t(pfn - base_pfn_) << kPageShift); }
  pfn_t virt_to_pfn(const void* p) const {
    return base_pfn_ + static_cast<pfn_t>((static_cast<const char*>(p) - base_) >> kPageShift);
  }
  // Caller guarantees owns(p).
  Page* virt_to_page(const void* p) const { return mem_map_ + ((static_cast<const char*>(p) - base_) >> kPageShift); }
  phys_addr_t virt_to_phys(const void* p) const {
    return phys_offset() + static_cast<phys_addr_t>(static_cast<const char*>(p) - base_);
  }
  void* phys_to_virt(phys_addr_t pa) const { return base_ + static_cast<std::size_t>(pa - phys_offset()); }
  bool phys_valid(phys_addr_t pa) const { return pa >= phys_offset() && pa - phys_offset() < size(); }

  // Head descriptor of the allocation that contains frame `page` (itself unless PG_tail).
  // Any thread (the collector reads frames their owners are publishing): acquire on the flags,
  // paired with the release that publishes a tail after its head (Page::tail_head).
  Page* compound_head(Page* page) const {
    return (page->get_flags_acquire() & PG_tail) ? pfn_to_page(page->tail_head()) : page;
  }

 private:
  char* base_ = nullptr;
  Page* mem_map_ = nullptr;
  pfn_t base_pfn_ = 0;
  pfn_t nr_pages_ = 0;
  pfn_t boot_pages_ = 0;    // frames from the start taken by mem_map and memblock
  pfn_t online_pages_ = 0;  // frames [0, online_pages_) have initialised descriptors
  bool fresh_zero_ = false;  // init's fresh_zero: descriptors start zero, mem_map's frames unmarked
};

}  // namespace kmm

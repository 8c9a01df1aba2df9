// kmm/kernel/vmalloc.h — vmalloc: virtually contiguous areas built from scattered frames.
//
// An area is a range of the modelled kernel's vmalloc space [VMALLOC_START, VMALLOC_END),
// followed by one guard page (as Linux leaves one), backed by order-0 frames taken one by one
// from the buddy allocator — physically scattered, contiguous only in the modelled virtual
// space. Each area records its owner, so the protector reclaims a gone module's vmalloc
// memory like its kmalloc memory. The area record (vm_struct) and its frame array come from
// the kernel: the records from their own cache (vmap_area), which the collector's
// reachability scan does not read (an area's own record is not a reference to it), the frame
// arrays from kmalloc.
//
// Addresses handed out are modelled kernel virtual addresses (e.g. 0xf0800000), not host
// pointers: the host cannot see vmalloc memory as contiguous. The MMU model (vm/) maps them.
// Invariant: areas are sorted by address and never overlap (guard page included); used
// bytes == sum of nr_pages * 4096.
// Depends on: slab/ (kmalloc), protect/ (OwnedSpace).
#pragma once

#include "protect/collector.h"

namespace kmm {

class TextSink;

struct VmArea {
  std::uint64_t addr;       // first byte (modelled VA)
  std::uint64_t size;       // bytes of address space, guard page included
  std::uint64_t requested;  // bytes the caller asked for
  std::uint32_t nr_pages;
  owner_t owner;
  pfn_t* pages;  // nr_pages frame numbers
  VmArea* next;
};

class Vmalloc final : public OwnedSpace {
 public:
  // False when the record cache cannot be made.
  bool init(Kmalloc* kmalloc, std::uint64_t start, std::uint64_t end);
  // Returns the area's address, or 0 (out of memory or of vmalloc space).
  std::uint64_t vmalloc(std::size_t size, owner_t owner);
  // False when addr is not the start of an area (reported by the caller).
  bool vfree(std::uint64_t addr);
  const VmArea* find(std::uint64_t addr) const;  // the area containing addr
  bool set_owner(std::uint64_t addr, owner_t owner);

  std::uint64_t start() const { return start_; }
  std::uint64_t end() const { return end_; }
  std::uint64_t used_bytes() const { return used_pages_ * kPageSize; }
  // How many times an area has come or gone (VmallocPages::generation, the MMU model's sync).
  std::uint64_t changes() const { return __atomic_load_n(&changes_, __ATOMIC_ACQUIRE); }
  std::uint64_t largest_chunk() const;
  const VmArea* areas() const { return head_; }
  // /proc/vmallocinfo, Linux's layout: "0x...-0x... size caller pages=N vmalloc".
  void print_info(TextSink& out, const class ModuleRegistry& modules) const;
  bool check_invariants(TextSink* why) const;
  // Persistent RAM (persist/rebuild.cpp; reattach: persist/attach.cpp): re-makes the object
  // (vtable, lock) in a new process and keeps the valid prefix of the area list (records live
  // in vmap_area, frame arrays live kmalloc blocks, frames PG_vmalloc and claimed once);
  // returns areas dropped.
  std::uint64_t revive();
  // Before revive, at attach: the pointers to the Kernel's parts re-set, the record cache
  // checked to be a cache in use. null, or what is wrong.
  const char* reattach(Kmalloc* km, PhysMem* phys);
  KmemCache* area_cache() const { return area_cache_; }

  // OwnedSpace, for the collector.
  void for_each_block(Visit visit, void* arg) override;
  void for_each_piece(void* handle, ScanPiece scan, void* arg) override;
  void free_block(void* handle) override;
  bool find_block(std::uintptr_t word, void** key, owner_t* owner) override;
  void address_range(std::uintptr_t* lo, std::uintptr_t* hi) override {
    constexpr std::uint64_t kMax = ~std::uintptr_t{0};
    *lo = static_cast<std::uintptr_t>(start_ < kMax ? start_ : kMax);
    *hi = static_cast<std::uintptr_t>(end_ < kMax ? end_ : kMax);
  }

 private:
  void release(VmArea* a);
  const VmArea* find_locked(std::uint64_t addr) const;
  Kmalloc* kmalloc_ = nullptr;
  KmemCache* area_cache_ = nullptr;  // "vmap_area", SLAB_NOLEAKTRACE: its addresses are not references
  PhysMem* phys_ = nullptr;
  std::uint64_t start_ = 0, end_ = 0;
  VmArea* head_ = nullptr;
  std::uint64_t used_pages_ = 0;
  std::uint64_t changes_ = 0;  // written under lock_
  mutable SpinLock lock_;
  // While the collector walks the areas (for_each_block, lock_ held by that thread): areas its
  // visitor frees wait here to be released after the walk, and find_block does not relock.
  // Only the walking thread reads or writes these.
  VmArea* walk_freed_ = nullptr;
  bool walking_ = false;
};

}  // namespace kmm

// kmm/vm/kernel_space.h — the kernel's address space: swapper_pg_dir, the direct map of all
// RAM at PAGE_OFFSET, the vmalloc area, and the seed's address conversions.
//
// How it works. init() builds swapper_pg_dir (Linux's init_mm.pgd) in frames from a
// FrameSource, in either format, and maps every byte of RAM once, at
//     virtual = PAGE_OFFSET + (physical - PHYS_OFFSET)
// with the largest mappings alignment allows: ARMv7 1 MB sections (Linux does not use
// supersections for lowmem; neither do we), AArch64 2 MB / 1 GB blocks. Both are kernel
// read-write, execute-never, global, normal write-back memory (kmm has no kernel image, so
// there is no text to make executable). On ARMv7 the table is a single 16 KB TTBR0 table
// (TTBCR.N = 0, as Linux without LPAE); on AArch64 the kernel lives in the TTBR1 half
// (PAGE_OFFSET must be at or above 0xffff000000000000) and TTBR0 of swapper is empty.
//
// The vmalloc area [vmalloc_start, vmalloc_end) is mapped page by page from the kernel's
// list of vmalloc areas. The kernel (kernel/vmalloc.h) knows nothing of page tables, so the
// mapping follows it lazily: sync_vmalloc() makes the tables agree with the areas of a
// VmallocPages view — every page an area holds is mapped to its frame, every other page of
// the area is unmapped (and its TLB entries flushed in every ASID). This stands in for the
// set_pte/vunmap calls Linux makes inside vmalloc/vfree, done at the next walk instead.
// Tables emptied by a vfree go back to the frame source at that sync.
//
// Each change to the kernel half bumps generation(), so an ARMv7 process table, which
// carries copies of swapper's kernel first-level entries (address_space.h), knows to copy
// them again before its next walk (Linux's vmalloc fault does the same, one entry at a time).
//
// Conversions (the chain of document 001, each a subtraction and a shift):
//     virt_to_phys(va) = va - PAGE_OFFSET + PHYS_OFFSET     (direct map only)
//     phys_to_virt(pa) = pa - PHYS_OFFSET + PAGE_OFFSET     (RAM only)
//     pfn = pa >> 12, and mem_map[pfn - base_pfn] is the page descriptor (phys/).
//
// Depends on: base/config.h, vm/walk.h, vm/tlb.h, vm/frame_source.h. No heap.
// Invariants (check_invariants()): the table is initialised; every page of RAM translates
// (kernel read) to its physical address; no leaf of the kernel half lies outside the direct
// map and the vmalloc area; table_frames() matches the PageTable's count.
#pragma once

#include "base/config.h"
#include "vm/frame_source.h"
#include "vm/tlb.h"
#include "vm/walk.h"

namespace kmm::vm {

// Linux's arm64 PAGE_OFFSET with 48-bit VAs (5.4 and later): the linear map starts the TTBR1
// half. Used when the machine's format is AArch64 and no page_offset was given.
inline constexpr std::uint64_t kAarch64PageOffset = 0xFFFF000000000000ull;

struct KernelSpaceConfig {
  Format format = Format::kArmv7Short;
  std::uint64_t page_offset = 0xC0000000ull;
  phys_addr_t phys_offset = 0;  // physical address of the first byte of RAM
  std::uint64_t ram_bytes = 0;  // multiple of 4 KB
  std::uint64_t vmalloc_start = 0;
  std::uint64_t vmalloc_end = 0;
};

// What the kernel's vmalloc areas hold, as the MMU model needs it (kernel/ implements it,
// vm/ cannot see kernel types). Addresses are page aligned.
struct VmallocPages {
  // The frame backing the page at va, if some live area holds it.
  virtual bool frame_at(std::uint64_t va, phys_addr_t* pa) const = 0;
  // Calls fn for every page held by a live area, in any order.
  using PageFn = void (*)(void* arg, std::uint64_t va, phys_addr_t pa);
  virtual void for_each_page(PageFn fn, void* arg) const = 0;
  // A number that changes whenever an area comes or goes, so a sync can be skipped when
  // nothing moved. Exact, a count of changes, not a hash of the areas: an area freed and
  // another made at the same address and size, on the same first frame, must not look
  // unchanged (its other pages would stay mapped to frames given to someone else).
  virtual std::uint64_t generation() const = 0;

 protected:
  ~VmallocPages() = default;
};

struct SyncStats {
  std::uint64_t mapped = 0;    // pages mapped by this sync
  std::uint64_t unmapped = 0;  // pages unmapped by this sync
};

class KernelSpace {
 public:
  KernelSpace() = default;
  KernelSpace(const KernelSpace&) = delete;
  KernelSpace& operator=(const KernelSpace&) = delete;

  // Builds swapper_pg_dir and the direct map. kUnaligned: page_offset or phys_offset not a
  // multiple of 4 KB (ARMv7 also wants page_offset on a 16 MB boundary, as Linux does, so
  // user and kernel never share a group of four second-level tables); kOutOfRange: the
  // direct map or vmalloc area does not fit the format's kernel half; kNoMemory.
  VmError init(FrameSource* frames, const KernelSpaceConfig& config);
  // Frees every table (swapper_pg_dir included).
  void destroy();
  bool initialised() const { return pt_.initialised(); }

  const KernelSpaceConfig& config() const { return config_; }
  const PageTable& pgd() const { return pt_; }
  PageTable& pgd() { return pt_; }
  std::uint64_t generation() const { return generation_; }
  std::uint64_t table_frames() const { return pt_.table_frames(); }
  // First VA of the kernel half (PAGE_OFFSET on ARMv7; the TTBR1 half on AArch64).
  std::uint64_t kernel_base() const;

  // The direct-map conversions; false when the address is outside the direct map / RAM.
  bool virt_to_phys(std::uint64_t va, phys_addr_t* pa) const;
  bool phys_to_virt(phys_addr_t pa, std::uint64_t* va) const;
  bool in_direct_map(std::uint64_t va) const;
  bool in_vmalloc(std::uint64_t va) const { return va >= config_.vmalloc_start && va < config_.vmalloc_end; }

  // Makes the vmalloc area's tables agree with `areas` (see above). Flushes unmapped pages
  // from tlb (every ASID) when tlb is not null. kNoMemory when a table frame is missing
  // (what could be mapped is mapped). Skipped when the areas' generation has not changed.
  VmError sync_vmalloc(const VmallocPages& areas, Tlb* tlb, SyncStats* stats = nullptr);

  bool check_invariants(TextSink* why) const;
  // After a sync: every page of the vmalloc area maps exactly what `areas` holds there (the
  // same frame, 4K), and every page the areas hold is mapped. A stale page (a frame given
  // back and handed to someone else) fails here.
  bool check_vmalloc(const VmallocPages& areas, TextSink* why) const;

 private:
  static void map_one(void* arg, std::uint64_t va, phys_addr_t pa);

  PageTable pt_;
  KernelSpaceConfig config_;
  std::uint64_t generation_ = 0;
  std::uint64_t areas_generation_ = 0;
  bool synced_once_ = false;
  // Scratch of map_one during a sync.
  SyncStats* sync_stats_ = nullptr;
  VmError sync_error_ = VmError::kOk;
};

// Where the next walk could find a mapping after a translation fault at `level` for va:
// the first address past the span the missing entry would have covered.
std::uint64_t next_span(Format f, std::uint64_t va, unsigned fault_level);

}  // namespace kmm::vm

// kmm/vm/address_space.h — a user process's address space (Linux's mm_struct): its own
// page tables, its VMAs, demand paging, protection faults, and exit.
//
// How it works. init() makes the process's tables: on ARMv7 a 16 KB first-level table of
// its own (TTBCR.N = 0, as Linux without LPAE) whose kernel half (entries PAGE_OFFSET >> 20
// and up) is a copy of swapper_pg_dir's, refreshed before every walk when the kernel half
// has changed (KernelSpace::generation()); on AArch64 its own TTBR0 tree and the kernel's
// TTBR1 root, shared. The process is tagged with an ASID; its mappings are not global
// (nG = 1), the kernel's are, so one TLB serves every process at once.
//
// VMAs are kept in a fixed array sorted by address (at most kMaxVmas). Layout, as Linux
// lays out an ELF process (addresses are the model's, without randomisation):
//     text   [0x00010000, +64K)        r-x    (ARM's ELF load address; the model has no image)
//     heap   [brk_start, brk)          rw-    grows with brk(); brk_start = text_start + 1M
//     mmap   top down from mmap_base   as asked   (mmap_base = TASK_SIZE - 128M)
//     stack  [TASK_SIZE - 128K, TASK_SIZE)  rw-
// TASK_SIZE is PAGE_OFFSET - 16M on ARMv7 (Linux's), 2^48 on AArch64. Nothing below
// mmap_min_addr (4K: page zero, NULL) is ever mapped.
//
// A VMA is a promise, not memory: mmap and brk only record it. The first access to a page
// (access()) walks the tables through the TLB; a translation fault on a page some VMA
// allows is a page fault that takes a frame from the data FrameSource, zeroes it, maps it
// with the VMA's permissions, and walks again (demand paging). An access the VMA forbids
// (write to read-only, execute of a non-executable mapping), an address in no VMA, and a
// user access to kernel space are faults with a reason; nothing is changed.
//
// munmap / brk shrink / destroy give back every data frame and every table frame. Data
// frames come from `data`, tables from `tables` (the machine marks them PG_process and
// PG_pgtable); bytes() is what the process takes from the pool.
//
// Depends on: base/config.h, vm/walk.h, vm/tlb.h, vm/kernel_space.h, vm/frame_source.h.
// No heap. Invariants (check_invariants()): VMAs sorted, disjoint, page aligned, inside
// [mmap_min_addr, TASK_SIZE); every user leaf is a 4 KB page inside a VMA, with no more
// permission than the VMA; the number of user leaves == data_frames().
#pragma once

#include "base/config.h"
#include "vm/frame_source.h"
#include "vm/kernel_space.h"
#include "vm/tlb.h"
#include "vm/walk.h"

namespace kmm::vm {

enum Prot : std::uint8_t { kProtNone = 0, kProtRead = 1, kProtWrite = 2, kProtExec = 4 };

enum class VmaKind : std::uint8_t { kAnon, kText, kHeap, kStack };

struct Vma {
  std::uint64_t start = 0;  // first byte
  std::uint64_t end = 0;    // one past the last byte
  std::uint8_t prot = 0;    // Prot bits
  VmaKind kind = VmaKind::kAnon;
  bool contains(std::uint64_t va) const { return va >= start && va < end; }
};

enum class MmError : std::uint8_t {
  kOk,
  kBadArgs,      // size 0, or an address/size not a multiple of 4 KB
  kOutOfRange,   // below mmap_min_addr or above TASK_SIZE
  kOverlap,      // a fixed address overlaps a VMA, or brk would run into one
  kNoSpace,      // no gap big enough for the mapping
  kTooManyVmas,  // the VMA array is full
  kNoVma,        // munmap of a range not inside one VMA
  kNoMemory,     // no frame for a table
  kNotInitialised,
};

const char* mm_error_name(MmError e);

struct AddressLayout {
  std::uint64_t task_size = 0;
  std::uint64_t mmap_min_addr = 0x1000;
  std::uint64_t text_start = 0;
  std::uint64_t text_size = 0x10000;
  std::uint64_t brk_start = 0;
  std::uint64_t mmap_base = 0;
  std::uint64_t stack_size = 0x20000;
};

// The layout above for a kernel space's format and PAGE_OFFSET.
AddressLayout default_layout(const KernelSpaceConfig& kernel);

enum class AccessOutcome : std::uint8_t {
  kOk,           // translated (TLB hit or walk)
  kDemandPaged,  // a page fault gave the page a zeroed frame, then it translated
  kSegvNoVma,    // no VMA covers the address
  kSegvProt,     // the VMA forbids this access
  kFault,        // a hardware fault no page fault handler resolves (kernel space, ...)
  kNoMemory,     // the page fault found no frame
};

struct AccessResult {
  AccessOutcome outcome = AccessOutcome::kOk;
  Walk fault;             // the walk that faulted (demand paging and faults)
  Walk walk;              // the final translation (kOk, kDemandPaged)
  phys_addr_t frame = 0;  // kDemandPaged: the new frame's physical address
  const char* why = nullptr;
};

class AddressSpace {
 public:
  static constexpr unsigned kMaxVmas = 64;

  AddressSpace() = default;
  AddressSpace(const AddressSpace&) = delete;
  AddressSpace& operator=(const AddressSpace&) = delete;

  // Makes the tables and the text and stack VMAs. kernel must outlive this space.
  MmError init(FrameSource* tables, FrameSource* data, KernelSpace* kernel, std::uint16_t asid);
  // Frees every data frame and table, flushes the ASID from tlb (if given).
  void destroy(Tlb* tlb);
  bool initialised() const { return pt_.initialised(); }

  const AddressLayout& layout() const { return layout_; }
  const PageTable& pgd() const { return pt_; }
  std::uint16_t asid() const { return asid_; }

  // Anonymous mapping of size bytes (rounded up to pages). fixed != 0: exactly there (it
  // must be free: MAP_FIXED_NOREPLACE); else the highest gap below mmap_base.
  MmError mmap(std::uint64_t size, std::uint8_t prot, VmaKind kind, std::uint64_t fixed, std::uint64_t* addr);
  // Unmaps [addr, addr+size) (rounded to pages), which must lie inside one VMA; frees its
  // frames and flushes them from tlb.
  MmError munmap(std::uint64_t addr, std::uint64_t size, Tlb* tlb);
  // Moves the program break to new_brk (>= brk_start): the heap VMA grows or shrinks, whole
  // pages above the new break are unmapped. Returns the error, *now the break after.
  MmError brk(std::uint64_t new_brk, Tlb* tlb);
  std::uint64_t brk_start() const { return layout_.brk_start; }
  std::uint64_t brk_end() const { return brk_; }

  const Vma* find_vma(std::uint64_t va) const;
  unsigned nr_vmas() const { return nr_vmas_; }
  const Vma& vma(unsigned i) const { return vmas_[i]; }

  // A modelled load, store or instruction fetch at va: see above.
  AccessResult access(std::uint64_t va, AccessType access, Privilege priv, Tlb& tlb);
  // Copies the kernel half from swapper_pg_dir again if it changed (ARMv7).
  void sync_kernel();

  std::uint64_t data_frames() const { return data_frames_; }
  std::uint64_t table_frames() const { return pt_.table_frames(); }
  std::uint64_t faults() const { return faults_; }
  std::uint64_t bytes() const { return (data_frames_ + pt_.table_frames()) * 4096; }

  bool check_invariants(TextSink* why) const;

 private:
  MmError insert_vma(const Vma& v);
  void remove_vma(unsigned i);
  // Frees the data frames mapped in [start, end) and unmaps them.
  void release_range(std::uint64_t start, std::uint64_t end, Tlb* tlb);

  PageTable pt_;
  FrameSource* data_ = nullptr;
  KernelSpace* kernel_ = nullptr;
  AddressLayout layout_;
  std::uint16_t asid_ = 0;
  std::uint64_t kernel_gen_ = 0;
  std::uint64_t brk_ = 0;
  std::uint64_t data_frames_ = 0;
  std::uint64_t faults_ = 0;
  unsigned nr_vmas_ = 0;
  Vma vmas_[kMaxVmas];
};

}  // namespace kmm::vm

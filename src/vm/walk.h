// kmm/vm/walk.h — page tables stored in modelled physical frames, and the hardware walk.
//
// How it works. A PageTable is one translation regime: the roots that TTBR0 and TTBR1 point
// at, in one of two formats (vm_types.h), with every table in frames from a FrameSource.
// map() writes real descriptors with the encoders of armv7_desc.h / aarch64_desc.h, choosing
// the largest mapping the alignment of VA and PA and the remaining size allow (ARMv7: 16 MB
// supersection, 1 MB section, 64 KB large page, 4 KB small page; AArch64: 1 GB and 2 MB
// blocks, 4 KB pages), and allocating intermediate tables on the way down. unmap() clears
// descriptors and gives back every table that becomes empty. translate() is the hardware
// walk: it reads descriptors from memory (never from any side structure), records every
// step, and ends in a physical address or a fault, exactly as the MMU would decide.
//
// Table placement. ARMv7: the first-level table of TTBR0 is 16 KB >> TTBCR.N (alloc_frames
// order 2, 1 or 0), TTBR1's is 16 KB (order 2). A second-level table is 1 KB: four of them
// share one frame, serving the four first-level entries 4k..4k+3 (as Linux pairs them), and
// the frame is freed when all four are empty. AArch64: every table is one 4 KB frame.
//
// Errors (VmError) are returned by value and leave the tables as they were: map() rolls back
// what it had written when it meets an existing mapping or runs out of frames; unmap()
// checks the whole range first. A malformed descriptor met in a walk is a translation fault
// carrying its value; a table pointer to memory the FrameSource does not back is a walk
// abort.
//
// Depends on: base/config.h, base/text.h, vm/vm_types.h, vm/armv7_desc.h, vm/aarch64_desc.h,
// vm/frame_source.h, vm/tlb.h. No allocation besides frames from the FrameSource.
// Invariants: roots are allocated iff initialised(); every table reachable from an owned root
// was allocated by this PageTable and counted in table_frames(); no table reachable from a
// root is empty (all invalid) after a map or unmap returns.
#pragma once

#include "base/config.h"
#include "base/text.h"
#include "vm/frame_source.h"
#include "vm/tlb.h"
#include "vm/vm_types.h"

namespace kmm::vm {

enum class VmError : std::uint8_t {
  kOk,
  kBadConfig,       // TTBCR.N out of range, or a borrowed TTBR1 where there is none
  kNotInitialised,  // the PageTable has no tables
  kUnaligned,       // VA, PA or size not a multiple of 4 KB
  kOutOfRange,      // outside the format's VA space, or a PA the format cannot express
  kAlreadyMapped,   // some page of the range is mapped already
  kSplitsBlock,     // unmap would cut a section/block/large page in part
  kNoMemory,        // the FrameSource has no frame for a table
  kCorruptTable,    // a reserved descriptor or unbacked table met while changing tables
};

const char* vm_error_name(VmError e);

enum class FaultKind : std::uint8_t {
  kNone,
  kTranslation,  // invalid or reserved descriptor, or a VA outside every table's range
  kAccessFlag,   // AArch64 leaf with AF == 0
  kDomain,       // ARMv7: DACR says no access (00) or reserved (10) for the domain
  kPermission,   // AP / XN / PXN / UXN forbid this access at this privilege
  kWalkAbort,    // a descriptor address the FrameSource does not back (external abort)
};

const char* fault_name(FaultKind f);

inline constexpr phys_addr_t kNoTable = ~phys_addr_t{0};

struct PageTableConfig {
  Format format = Format::kArmv7Short;
  unsigned ttbcr_n = 0;              // ARMv7: TTBCR.N, 0..7 (0: TTBR0 only)
  std::uint32_t dacr = 0x55555555u;  // ARMv7: every domain "client" (check AP)
  bool use_supersections = true;     // ARMv7 16 MB
  bool use_sections = true;          // ARMv7 1 MB; AArch64 2 MB blocks
  bool use_large_pages = true;       // ARMv7 64 KB
  bool use_gigabyte_blocks = true;   // AArch64 1 GB
  // The TTBR1 root borrowed from another PageTable (a kernel half shared by every process,
  // as arm64 Linux does); kNoTable: this PageTable allocates and owns its own. Tables under
  // a borrowed root are changed by map/unmap but never freed by destroy().
  phys_addr_t shared_ttbr1 = kNoTable;
  // ARMv7 with TTBCR.N == 0 only: first-level entries from this index up (the kernel half,
  // PAGE_OFFSET >> 20) are copies of another table's entries, written by copy_l1_entries()
  // (Linux's pgd_alloc copies init_mm's kernel entries into every process's pgd). map and
  // unmap refuse that range, and destroy() never frees the tables those entries point at.
  // 4096: none (the whole table is this PageTable's own). Must be a multiple of 4.
  unsigned armv7_shared_l1_first = 4096;
};

// One step of a walk: which table was read, where, and what was found.
struct WalkStep {
  std::uint8_t level = 0;     // ARMv7 1..2; AArch64 0..3
  std::uint8_t kind = 0;      // armv7::Kind or aarch64::Kind, as a number
  std::uint32_t index = 0;    // index into the table
  phys_addr_t table = 0;      // physical base of the table
  phys_addr_t desc_addr = 0;  // physical address of the descriptor read
  std::uint64_t desc = 0;     // its value
};

struct Walk {
  Format format = Format::kArmv7Short;
  AccessType access = AccessType::kRead;
  Privilege priv = Privilege::kKernel;
  std::uint64_t va = 0;
  std::int8_t ttbr = -1;  // 0 or 1; -1 when no TTBR could be chosen
  unsigned ttbcr_n = 0;
  phys_addr_t root = 0;  // the table TTBRn points at
  std::uint8_t nsteps = 0;
  WalkStep steps[4];
  bool tlb_hit = false;  // set by translate_cached when no walk was needed
  // Outcome.
  FaultKind fault = FaultKind::kNone;
  std::uint8_t fault_level = 0;
  std::uint64_t fault_desc = 0;  // the descriptor that decided the fault (0 if none read)
  const char* why = nullptr;     // a phrase saying why, for faults
  phys_addr_t pa = 0;
  std::uint8_t size_shift = 0;  // the leaf maps 2^size_shift bytes
  phys_addr_t leaf_base = 0;    // physical base of the leaf mapping
  Perms perms;
  bool global = false;
  std::uint8_t domain = 0;

  bool ok() const { return fault == FaultKind::kNone; }
  // The TLB entry this walk would fill (meaningful when ok()).
  TlbEntry tlb_entry(std::uint16_t asid) const;
};

// One leaf mapping found by visit(), in VA order.
struct Leaf {
  std::uint64_t va = 0;
  phys_addr_t pa = 0;
  std::uint8_t size_shift = 0;
  std::uint8_t level = 0;
  std::uint8_t kind = 0;  // armv7::Kind or aarch64::Kind
  std::uint64_t desc = 0;
  Perms perms;
  bool global = true;
};
using LeafVisitor = void (*)(void* arg, const Leaf& leaf);

class PageTable {
 public:
  PageTable() = default;
  PageTable(const PageTable&) = delete;
  PageTable& operator=(const PageTable&) = delete;
  // Does not free tables: call destroy() first (the FrameSource may already be gone).
  ~PageTable() = default;

  // Allocates the root table(s), zeroed. kBadConfig, kNoMemory, kOutOfRange (ARMv7 table
  // above 4 GB). A PageTable already initialised is destroyed first.
  VmError init(FrameSource* frames, const PageTableConfig& config);
  // Frees every table this PageTable owns (not those under a borrowed TTBR1 root).
  void destroy();
  bool initialised() const { return frames_ != nullptr; }

  const PageTableConfig& config() const { return config_; }
  Format format() const { return config_.format; }
  // Physical address of the root table for TTBRn (kNoTable when there is none).
  phys_addr_t root(unsigned ttbr) const { return ttbr < 2 ? root_[ttbr] : kNoTable; }
  // Frames (4 KB each) holding this PageTable's own tables, roots included.
  std::uint64_t table_frames() const { return table_frames_; }
  // Whether [va, va+size) lies in one translatable region: ARMv7 [0, 2^32); AArch64 TTBR0
  // [0, 2^48) or TTBR1 [2^64 - 2^48, 2^64). size 0 is never in range.
  bool range_ok(std::uint64_t va, std::uint64_t size) const;

  // Maps [va, va+size) to [pa, pa+size). All three 4 KB aligned, size > 0.
  VmError map(std::uint64_t va, phys_addr_t pa, std::uint64_t size, const MapAttrs& attrs);
  // Removes every mapping in [va, va+size); holes are skipped. 4 KB aligned.
  VmError unmap(std::uint64_t va, std::uint64_t size);

  // The hardware walk, recorded step by step. Never changes anything.
  Walk translate(std::uint64_t va, AccessType access, Privilege priv) const;

  // ARMv7, armv7_shared_l1_first < 4096: copies first-level entries [armv7_shared_l1_first,
  // 4096) from `from`'s TTBR0 table (the kernel's swapper_pg_dir) into this one. kBadConfig
  // for any other format or configuration.
  VmError copy_l1_entries(const PageTable& from);

  // Calls visit for every leaf mapping, in VA order (TTBR0 then TTBR1).
  void visit(LeafVisitor fn, void* arg) const;

 private:
  bool read_desc(phys_addr_t pa, std::uint64_t* value) const;
  bool write_desc(phys_addr_t pa, std::uint64_t value);
  VmError alloc_table(unsigned order, phys_addr_t* pa);
  void free_table(phys_addr_t pa, unsigned order);
  bool table_empty(phys_addr_t table, unsigned entries) const;
  bool touches_shared(std::uint64_t va, std::uint64_t size) const;

  // Format-specific halves (walk.cpp).
  VmError map_armv7(std::uint64_t va, phys_addr_t pa, std::uint64_t size, const MapAttrs& a, std::uint64_t* done);
  VmError map_aarch64(std::uint64_t va, phys_addr_t pa, std::uint64_t size, const MapAttrs& a, std::uint64_t* done);
  VmError unmap_armv7(std::uint64_t va, std::uint64_t size, bool check_only);
  VmError unmap_aarch64(std::uint64_t va, std::uint64_t size, bool check_only);
  phys_addr_t armv7_l1_addr(std::uint32_t va) const;
  VmError armv7_l2_table(std::uint32_t va, const MapAttrs& a, phys_addr_t* table);
  void armv7_collapse_l2(std::uint32_t va);
  void aarch64_collapse(std::uint64_t va, unsigned leaf_level);
  void translate_armv7(Walk* w) const;
  void translate_aarch64(Walk* w) const;
  void free_aarch64_tree(phys_addr_t table, unsigned level);
  void visit_aarch64(phys_addr_t table, unsigned level, std::uint64_t va_base, LeafVisitor fn, void* arg) const;

  FrameSource* frames_ = nullptr;
  PageTableConfig config_;
  phys_addr_t root_[2] = {kNoTable, kNoTable};
  bool owns_root_[2] = {false, false};
  unsigned root_order_[2] = {0, 0};
  std::uint64_t table_frames_ = 0;
};

// Prints a walk as a textbook walk-through: the TTBR chosen, each level (table base, index,
// descriptor address, value, decoded meaning), then the physical address and PFN, or the
// fault and why.
void print_walk(const Walk& w, TextSink& out);

// Translation through a TLB: a hit (matching VA and ASID, permissions allowing the access)
// returns at once with tlb_hit set; otherwise the table walk runs (counted as a walk) and a
// successful one is inserted. A hit whose cached permissions forbid the access walks again,
// so the fault is reported with its level and descriptor.
Walk translate_cached(const PageTable& pt, Tlb& tlb, std::uint64_t va, AccessType access, Privilege priv,
                      std::uint16_t asid);

// The same without a walk record, for hot paths (modelled loads and stores, benchmarks):
// the fault kind (kNone on success) and, on success, the physical address in *pa.
FaultKind translate_pa(const PageTable& pt, Tlb& tlb, std::uint64_t va, AccessType access, Privilege priv,
                       std::uint16_t asid, phys_addr_t* pa);

}  // namespace kmm::vm

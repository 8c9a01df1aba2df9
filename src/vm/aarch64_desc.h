// kmm/vm/aarch64_desc.h — AArch64 stage-1 translation table formats for the 4 KB granule and
// a 48-bit VA/PA (TCR_ELx.TxSZ == 16), bit-exact to the ARM Architecture Reference Manual for
// A-profile (DDI 0487, "VMSAv8-64 translation table format descriptors", D8.3).
//
// Four levels of 512 64-bit entries (one 4 KB table each); VA[47:39] indexes L0, VA[38:30]
// L1, VA[29:21] L2, VA[20:12] L3.
//   bit[0] == 0              invalid (bits[63:1] ignored, free for software)
//   L0..L2, bits[1:0] == 11  table: [47:12] next-level table, [59] PXNTable, [60] UXNTable,
//                            [62:61] APTable, [63] NSTable; [11:2] and [58:52] ignored
//   L1/L2, bits[1:0] == 01   block (1 GB at L1, OA [47:30]; 2 MB at L2, OA [47:21])
//   L3, bits[1:0] == 11      page (4 KB, OA [47:12])
//   L0 01 and L3 01          reserved: decode as kReserved (a walk faults on them)
// Leaf attributes: lower [4:2] AttrIndx, [5] NS, [7:6] AP[2:1], [9:8] SH, [10] AF, [11] nG;
// upper [51] DBM, [52] Contiguous, [53] PXN, [54] UXN, [58:55] reserved for software.
// AP[2:1] (EL1&0): 00 EL1 RW/EL0 none; 01 RW both; 10 EL1 RO/EL0 none; 11 RO both. Memory
// that EL0 may write is never executable at EL1 (the architecture treats PXN as 1).
//
// The model is strict where real hardware is UNPREDICTABLE or raises an address-size fault,
// so that a corrupted table is caught, not followed: output-address bits above 47, and the
// RES0 bits below a block's size ([29:12] of an L1 block, [20:12] of an L2 block), make a
// descriptor decode as kReserved with the reason in `why`. GP (bit 50), nT (bit 16) and
// PBHA (bits[62:59] of leaves) are not modelled: decode drops them.
//
// TTBR selection: VA[63:48] all zeros -> TTBR0, all ones -> TTBR1 (bit 55 chooses, and with
// TBI off every bit above 47 must equal it); anything else is a level-0 translation fault.
//
// Depends on: base/config.h, base/text.h, vm/vm_types.h. Pure: touches no memory.
#pragma once

#include "base/config.h"
#include "base/text.h"
#include "vm/vm_types.h"

namespace kmm::vm::aarch64 {

inline constexpr unsigned kLevels = 4;
inline constexpr unsigned kEntries = 512;
inline constexpr unsigned kVaBits = 48;
inline constexpr std::uint64_t kOaMask = 0x0000FFFFFFFFF000ull;  // bits[47:12]

enum class Kind : std::uint8_t { kInvalid, kTable, kBlock, kPage, kReserved };

const char* kind_name(Kind k);

struct Desc {
  Kind kind = Kind::kInvalid;
  phys_addr_t addr = 0;  // next-level table (kTable) or output address (kBlock, kPage)
  // Table descriptors: hierarchical limits on everything below.
  bool ns_table = false;
  std::uint8_t ap_table = 0;  // APTable[1:0]: bit 0 no EL0 access, bit 1 no write
  bool uxn_table = false;
  bool pxn_table = false;
  // Block and page descriptors.
  std::uint8_t attr_indx = 0;  // AttrIndx[2:0], an index into MAIR_ELx
  bool ns = false;
  std::uint8_t ap = 0;  // AP[2:1] as a 2-bit number
  std::uint8_t sh = 0;  // SH[1:0]
  bool af = false;      // access flag
  bool ng = false;      // not global
  bool dbm = false;     // dirty bit modifier
  bool contiguous = false;
  bool pxn = false;
  bool uxn = false;
  std::uint8_t sw = 0;        // bits[58:55], software use
  const char* why = nullptr;  // kReserved: which rule the value breaks
};

// Shift of the VA bits that index `level` (39, 30, 21, 12), and the size one entry maps.
constexpr unsigned level_shift(unsigned level) {
  return 39 - 9 * level;
}
constexpr std::uint64_t level_size(unsigned level) {
  return std::uint64_t{1} << level_shift(level);
}
constexpr unsigned index(std::uint64_t va, unsigned level) {
  return static_cast<unsigned>((va >> level_shift(level)) & (kEntries - 1));
}
// 0 for TTBR0, 1 for TTBR1, -1 when VA[63:48] are neither all zeros nor all ones.
constexpr int ttbr_for(std::uint64_t va) {
  const std::uint64_t top = va >> kVaBits;
  return top == 0 ? 0 : top == 0xFFFF ? 1 : -1;
}

// Decoders are total. level is 0..3; a level above 3 decodes everything as kReserved.
Desc decode(unsigned level, std::uint64_t v);
// Encoders refuse (false, *out untouched) a kind not allowed at the level, a misaligned or
// too-wide address, an out-of-range field, or a field of the other descriptor family set.
bool encode(unsigned level, const Desc& d, std::uint64_t* out);

// Limits accumulated from the table descriptors above a leaf.
struct TableLimits {
  bool no_user = false;    // APTable[0]
  bool read_only = false;  // APTable[1]
  bool uxn = false;
  bool pxn = false;
  void add(const Desc& table) {
    no_user = no_user || (table.ap_table & 1u) != 0;
    read_only = read_only || (table.ap_table & 2u) != 0;
    uxn = uxn || table.uxn_table;
    pxn = pxn || table.pxn_table;
  }
};

Perms leaf_perms(const Desc& leaf, const TableLimits& limits = TableLimits{});
const char* ap_text(std::uint8_t ap);
const char* sh_text(std::uint8_t sh);
// Linux's MAIR_EL1 layout: 0 normal, 1 normal-tagged, 2 normal-nc, 3 device-nGnRnE,
// 4 device-nGnRE; 5..7 unused.
const char* attr_indx_text(std::uint8_t attr_indx);
std::uint8_t attr_indx_for(MemType t);
std::uint8_t ap_for(bool user, bool writable);

// A block (level 1 or 2) or page (level 3) descriptor for one mapping, with AF set.
Desc leaf_desc(unsigned level, phys_addr_t pa, const MapAttrs& a);
// A table descriptor with no hierarchical limits.
Desc table_desc(phys_addr_t next_table);

// One line of decoded fields, e.g.
//   "block 2M OA 0x40000000 AttrIndx=0 (normal) AP=00 (EL1 RW, EL0 none) SH=11 (inner) AF=1 nG=0
//   PXN=0 UXN=1"
void describe(unsigned level, const Desc& d, TextSink& out);
void describe(unsigned level, std::uint64_t v, TextSink& out);

}  // namespace kmm::vm::aarch64

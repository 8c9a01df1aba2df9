// kmm/vm/armv7_desc.h — ARMv7-A short-descriptor translation table formats, bit-exact to the
// ARM Architecture Reference Manual (ARMv7-A/R, DDI 0406C, section B3.5.1), with the
// Multiprocessing and PXN extensions (so first-level bits[1:0] == 0b11 is a section with
// PXN set, unless a caller decodes with pxn_supported = false).
//
// First level (4096 entries of 32 bits, 16 KB, indexed by VA[31:20]):
//   bits[1:0] 00  fault (bits[31:2] ignored by the MMU, free for software)
//             01  page table: [31:10] L2 table base, [9] IMPL, [8:5] domain, [4] SBZ,
//                 [3] NS, [2] PXN
//             1x  section ([18] == 0): [31:20] PA[31:20], [19] NS, [17] nG, [16] S,
//                 [15] AP[2], [14:12] TEX, [11:10] AP[1:0], [9] IMPL, [8:5] domain, [4] XN,
//                 [3] C, [2] B, [0] PXN
//             1x  supersection ([18] == 1): [31:24] PA[31:24], [23:20] PA[35:32],
//                 [8:5] PA[39:36] (no domain: supersections are in domain 0), other bits as
//                 a section. A supersection is 16 identical entries, 16-entry aligned.
// Second level (256 entries of 32 bits, 1 KB, indexed by VA[19:12]):
//   bits[1:0] 00  fault
//             01  large page (64 KB): [31:16] PA, [15] XN, [14:12] TEX, [11] nG, [10] S,
//                 [9] AP[2], [8:6] SBZ, [5:4] AP[1:0], [3] C, [2] B. 16 identical entries.
//             1x  small page (4 KB): [31:12] PA, [11] nG, [10] S, [9] AP[2], [8:6] TEX,
//                 [5:4] AP[1:0], [3] C, [2] B, [0] XN
// Access permissions (SCTLR.AFE == 0): AP[2:0] 000 none; 001 PL1 RW; 010 PL1 RW, PL0 RO;
// 011 RW both; 100 reserved (modelled as no access); 101 PL1 RO; 110 and 111 RO both.
// Memory type (SCTLR.TRE == 0): TEX/C/B as in table B3-10.
//
// TTBR selection (TTBCR.N = 0..7): VA < 2^(32-N) walks from TTBR0 (a table of 16 KB >> N,
// index VA[31-N:20]); above, TTBR1 (16 KB, index VA[31:20]). N == 0: TTBR0 only.
//
// Depends on: base/config.h, base/text.h, vm/vm_types.h. Everything here is pure: no memory
// is touched, nothing is allocated. Encoders refuse (return false) a field that does not fit.
#pragma once

#include "base/config.h"
#include "base/text.h"
#include "vm/vm_types.h"

namespace kmm::vm::armv7 {

inline constexpr unsigned kL1Entries = 4096;
inline constexpr unsigned kL2Entries = 256;
inline constexpr std::uint32_t kL1TableBytes = 16 * 1024;  // with TTBCR.N == 0
inline constexpr std::uint32_t kL2TableBytes = 1024;
inline constexpr std::uint64_t kSuperSectionSize = 16u << 20;
inline constexpr std::uint64_t kSectionSize = 1u << 20;
inline constexpr std::uint64_t kLargePageSize = 64u << 10;
inline constexpr std::uint64_t kSmallPageSize = 4u << 10;

enum class Kind : std::uint8_t {
  kFault,         // L1 or L2 bits[1:0] == 00
  kTable,         // L1: coarse page table
  kSection,       // L1: 1 MB
  kSupersection,  // L1: 16 MB
  kLargePage,     // L2: 64 KB
  kSmallPage,     // L2: 4 KB
  kReserved       // L1 bits[1:0] == 11 on an implementation without PXN
};

const char* kind_name(Kind k);

// The fields of one descriptor. Which fields mean something depends on `kind` (see the
// table above); the others are zero after decode and must be zero to encode.
struct Desc {
  Kind kind = Kind::kFault;
  phys_addr_t addr = 0;     // L2 table base (kTable) or output address base (leaves)
  std::uint8_t domain = 0;  // kTable, kSection
  std::uint8_t ap = 0;      // AP[2:0]: bit 2 is AP[2] (APX), bits 1:0 are AP[1:0]
  std::uint8_t tex = 0;     // TEX[2:0]
  bool c = false;
  bool b = false;
  bool s = false;     // shareable
  bool ng = false;    // not global: tagged with the ASID
  bool xn = false;    // execute never
  bool pxn = false;   // privileged execute never (kTable, kSection, kSupersection)
  bool ns = false;    // non-secure (kTable, kSection, kSupersection)
  bool impl = false;  // bit 9, IMPLEMENTATION DEFINED (L1 only)
};

// Decoders: total, any 32-bit value decodes to something.
Desc decode_l1(std::uint32_t v, bool pxn_supported = true);
Desc decode_l2(std::uint32_t v);

// Encoders: false (and *out untouched) when the kind is wrong for the level, the address is
// misaligned or too wide for the kind, or a field is out of range or has no place in it.
bool encode_l1(const Desc& d, std::uint32_t* out);
bool encode_l2(const Desc& d, std::uint32_t* out);

// Effective permissions of a leaf (section, supersection, large or small page).
Perms leaf_perms(const Desc& d);
// "PL1 RW, PL0 none" and so on for AP[2:0].
const char* ap_text(std::uint8_t ap);
// The memory type TEX/C/B names with TEX remap off, e.g. "normal WB-WA", "device".
const char* mem_type_text(std::uint8_t tex, bool c, bool b);
// TEX/C/B/S for a MemType (the inverse of mem_type_text for the four types we encode).
void mem_type_bits(MemType t, std::uint8_t* tex, bool* c, bool* b, bool* s);
// AP[2:0] for MapAttrs' user/writable.
std::uint8_t ap_for(bool user, bool writable);

// Build a leaf descriptor for one mapping from format-neutral attributes.
Desc leaf_desc(Kind kind, phys_addr_t pa, const MapAttrs& a);

// One line of decoded fields, e.g.
//   "section PA 0x80000000 AP=001 (PL1 RW, PL0 none) domain 0 TEX=001 C=1 B=1 (normal WB-WA) S=1
//   nG=0 XN=1 PXN=0"
void describe(const Desc& d, TextSink& out);
void describe_l1(std::uint32_t v, TextSink& out, bool pxn_supported = true);
void describe_l2(std::uint32_t v, TextSink& out);

// TTBR selection and indices. n is TTBCR.N (0..7).
constexpr unsigned ttbr_for(std::uint32_t va, unsigned n) {
  return (n != 0 && (va >> (32 - n)) != 0) ? 1u : 0u;
}
constexpr std::uint32_t l1_table_bytes(unsigned n, unsigned ttbr) {
  return ttbr == 0 ? (kL1TableBytes >> n) : kL1TableBytes;
}
constexpr unsigned l1_index(std::uint32_t va) {
  return va >> 20;
}
constexpr unsigned l2_index(std::uint32_t va) {
  return (va >> 12) & 0xFFu;
}
// Address of the first-level descriptor for va: TTBR0[31:14-N] or TTBR1[31:14], + index*4.
constexpr phys_addr_t l1_desc_addr(std::uint32_t ttbr_value, unsigned n, unsigned ttbr, std::uint32_t va) {
  const std::uint32_t base = ttbr_value & ~(l1_table_bytes(n, ttbr) - 1);
  const std::uint32_t index = ttbr == 0 ? (va >> 20) & ((1u << (12 - n)) - 1) : va >> 20;
  return phys_addr_t{base} | (phys_addr_t{index} << 2);
}
// Address of the second-level descriptor: L1 table-descriptor[31:10] + VA[19:12]*4.
constexpr phys_addr_t l2_desc_addr(std::uint32_t l1_desc, std::uint32_t va) {
  return phys_addr_t{l1_desc & 0xFFFFFC00u} | (phys_addr_t{l2_index(va)} << 2);
}

}  // namespace kmm::vm::armv7

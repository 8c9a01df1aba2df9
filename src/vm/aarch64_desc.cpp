// kmm/vm/aarch64_desc.cpp — AArch64 4 KB-granule descriptor encoders, decoders, printers.
// Depends on: aarch64_desc.h. Bit positions are named once (DDI 0487, D8.3) and used below.
#include "vm/aarch64_desc.h"

namespace kmm::vm::aarch64 {
namespace {

using u64 = std::uint64_t;

constexpr u64 bit(unsigned n) {
  return u64{1} << n;
}
constexpr bool has(u64 v, unsigned n) {
  return ((v >> n) & 1u) != 0;
}
constexpr std::uint8_t field(u64 v, unsigned lo, unsigned width) {
  return static_cast<std::uint8_t>((v >> lo) & ((u64{1} << width) - 1));
}
constexpr u64 flag(bool on, unsigned n) {
  return on ? bit(n) : 0u;
}

// Table descriptor upper attributes.
constexpr unsigned kPxnTable = 59, kUxnTable = 60, kApTable = 61, kNsTable = 63;
// Leaf attributes.
constexpr unsigned kAttrIndx = 2, kNs = 5, kAp = 6, kSh = 8, kAf = 10, kNg = 11, kDbm = 51, kContig = 52, kPxn = 53,
                   kUxn = 54, kSw = 55;
// Output-address bits the 48-bit model does not have (PA[51:48] would live in [15:12] with
// FEAT_LPA on 64 KB granules only; with 4 KB and no LPA2 they are bits[51:48], RES0).
constexpr u64 kHighOaBits = 0x000F000000000000ull;

u64 block_res0_mask(unsigned level) {
  // Bits between 12 and the block size: [29:12] for 1 GB, [20:12] for 2 MB.
  return (bit(level_shift(level)) - 1) & ~u64{0xFFF};
}

Desc reserved(const char* why) {
  Desc d;
  d.kind = Kind::kReserved;
  d.why = why;
  return d;
}

void decode_leaf_attrs(u64 v, Desc* d) {
  d->attr_indx = field(v, kAttrIndx, 3);
  d->ns = has(v, kNs);
  d->ap = field(v, kAp, 2);
  d->sh = field(v, kSh, 2);
  d->af = has(v, kAf);
  d->ng = has(v, kNg);
  d->dbm = has(v, kDbm);
  d->contiguous = has(v, kContig);
  d->pxn = has(v, kPxn);
  d->uxn = has(v, kUxn);
  d->sw = field(v, kSw, 4);
}

}  // namespace

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kInvalid:
      return "invalid";
    case Kind::kTable:
      return "table";
    case Kind::kBlock:
      return "block";
    case Kind::kPage:
      return "page";
    case Kind::kReserved:
      return "reserved";
  }
  return "?";
}

Desc decode(unsigned level, u64 v) {
  if (level >= kLevels) return reserved("no such level");
  if (!has(v, 0)) return Desc{};
  if ((v & kHighOaBits) != 0) return reserved("output address above 48 bits");
  const bool type_bit = has(v, 1);
  Desc d;
  if (level < 3 && type_bit) {
    d.kind = Kind::kTable;
    d.addr = v & kOaMask;
    d.pxn_table = has(v, kPxnTable);
    d.uxn_table = has(v, kUxnTable);
    d.ap_table = field(v, kApTable, 2);
    d.ns_table = has(v, kNsTable);
    return d;
  }
  if (level == 0) return reserved("block descriptor at level 0 (4 KB granule)");
  if (level == 3 && !type_bit) return reserved("level 3 bits[1:0] == 01");
  if (level == 3) {
    d.kind = Kind::kPage;
    d.addr = v & kOaMask;
  } else {
    if ((v & block_res0_mask(level)) != 0) return reserved("RES0 bits set below the block size");
    d.kind = Kind::kBlock;
    d.addr = v & kOaMask & ~(level_size(level) - 1);
  }
  decode_leaf_attrs(v, &d);
  return d;
}

bool encode(unsigned level, const Desc& d, u64* out) {
  if (level >= kLevels) return false;
  u64 v = 0;
  const bool leaf_fields = d.attr_indx != 0 || d.ns || d.ap != 0 || d.sh != 0 || d.af || d.ng || d.dbm ||
                           d.contiguous || d.pxn || d.uxn || d.sw != 0;
  const bool table_fields = d.ns_table || d.ap_table != 0 || d.uxn_table || d.pxn_table;
  switch (d.kind) {
    case Kind::kInvalid:
      if (d.addr != 0 || leaf_fields || table_fields) return false;
      v = 0;
      break;
    case Kind::kTable:
      if (level == 3 || leaf_fields || d.ap_table > 3) return false;
      if ((d.addr & ~kOaMask) != 0) return false;
      v = d.addr | 3u | flag(d.pxn_table, kPxnTable) | flag(d.uxn_table, kUxnTable) | (u64{d.ap_table} << kApTable) |
          flag(d.ns_table, kNsTable);
      break;
    case Kind::kBlock:
    case Kind::kPage: {
      if (table_fields) return false;
      if (d.kind == Kind::kBlock && (level == 0 || level == 3)) return false;
      if (d.kind == Kind::kPage && level != 3) return false;
      if ((d.addr & ~(kOaMask & ~(level_size(level) - 1))) != 0) return false;
      if (d.attr_indx > 7 || d.ap > 3 || d.sh > 3 || d.sw > 15) return false;
      v = d.addr | (d.kind == Kind::kPage ? 3u : 1u) | (u64{d.attr_indx} << kAttrIndx) | flag(d.ns, kNs) |
          (u64{d.ap} << kAp) | (u64{d.sh} << kSh) | flag(d.af, kAf) | flag(d.ng, kNg) | flag(d.dbm, kDbm) |
          flag(d.contiguous, kContig) | flag(d.pxn, kPxn) | flag(d.uxn, kUxn) | (u64{d.sw} << kSw);
      break;
    }
    default:
      return false;
  }
  *out = v;
  return true;
}

Perms leaf_perms(const Desc& leaf, const TableLimits& limits) {
  Perms p;
  if (leaf.kind != Kind::kBlock && leaf.kind != Kind::kPage) return p;
  const bool user = (leaf.ap & 1u) != 0 && !limits.no_user;
  const bool ro = (leaf.ap & 2u) != 0 || limits.read_only;
  p.kernel_read = true;
  p.kernel_write = !ro;
  p.user_read = user;
  p.user_write = user && !ro;
  p.user_exec = user && !leaf.uxn && !limits.uxn;
  // EL0-writable memory is privileged-execute-never whatever PXN says.
  p.kernel_exec = !leaf.pxn && !limits.pxn && !p.user_write;
  return p;
}

const char* ap_text(std::uint8_t ap) {
  switch (ap & 3u) {
    case 0:
      return "EL1 RW, EL0 none";
    case 1:
      return "EL1 RW, EL0 RW";
    case 2:
      return "EL1 RO, EL0 none";
    default:
      return "EL1 RO, EL0 RO";
  }
}

const char* sh_text(std::uint8_t sh) {
  switch (sh & 3u) {
    case 0:
      return "non-shareable";
    case 1:
      return "reserved";
    case 2:
      return "outer";
    default:
      return "inner";
  }
}

const char* attr_indx_text(std::uint8_t attr_indx) {
  switch (attr_indx) {
    case 0:
      return "normal";
    case 1:
      return "normal-tagged";
    case 2:
      return "normal-nc";
    case 3:
      return "device-nGnRnE";
    case 4:
      return "device-nGnRE";
    default:
      return "unused";
  }
}

std::uint8_t attr_indx_for(MemType t) {
  switch (t) {
    case MemType::kNormal:
      return 0;
    case MemType::kNormalUncached:
      return 2;
    case MemType::kDevice:
      return 4;
    case MemType::kStronglyOrdered:
      return 3;
  }
  return 0;
}

std::uint8_t ap_for(bool user, bool writable) {
  if (user) return writable ? 1 : 3;
  return writable ? 0 : 2;
}

Desc leaf_desc(unsigned level, phys_addr_t pa, const MapAttrs& a) {
  Desc d;
  d.kind = level == 3 ? Kind::kPage : Kind::kBlock;
  d.addr = pa;
  d.attr_indx = attr_indx_for(a.mem);
  d.ap = ap_for(a.user, a.writable);
  d.sh = (a.mem == MemType::kNormal || a.mem == MemType::kNormalUncached) ? 3 : 0;
  d.af = true;
  d.ng = !a.global;
  const bool device = a.mem == MemType::kDevice || a.mem == MemType::kStronglyOrdered;
  // As Linux: user mappings are never kernel-executable, kernel ones never user-executable.
  d.pxn = a.user || !a.executable || device;
  d.uxn = !a.user || !a.executable || device;
  return d;
}

Desc table_desc(phys_addr_t next_table) {
  Desc d;
  d.kind = Kind::kTable;
  d.addr = next_table;
  return d;
}

namespace {

void flag_text(TextSink& out, const char* name, bool v) {
  out.ch(' ').str(name).ch('=').ch(v ? '1' : '0');
}
void bits2(TextSink& out, unsigned v) {
  out.ch(static_cast<char>('0' + ((v >> 1) & 1u))).ch(static_cast<char>('0' + (v & 1u)));
}

}  // namespace

void describe(unsigned level, const Desc& d, TextSink& out) {
  out.str(kind_name(d.kind));
  switch (d.kind) {
    case Kind::kInvalid:
      return;
    case Kind::kReserved:
      if (d.why != nullptr) out.str(" (").str(d.why).ch(')');
      return;
    case Kind::kTable:
      out.str(" at 0x").hex(d.addr, 12);
      if (d.ap_table != 0) {
        out.str(" APTable=");
        bits2(out, d.ap_table);
      }
      if (d.pxn_table) out.str(" PXNTable=1");
      if (d.uxn_table) out.str(" UXNTable=1");
      if (d.ns_table) out.str(" NSTable=1");
      return;
    default:
      break;
  }
  if (d.kind == Kind::kBlock) out.str(level == 1 ? " 1G" : " 2M");
  out.str(" OA 0x").hex(d.addr, 12);
  out.str(" AttrIndx=").u(d.attr_indx).str(" (").str(attr_indx_text(d.attr_indx)).ch(')');
  out.str(" AP=");
  bits2(out, d.ap);
  out.str(" (").str(ap_text(d.ap)).ch(')');
  out.str(" SH=");
  bits2(out, d.sh);
  out.str(" (").str(sh_text(d.sh)).ch(')');
  flag_text(out, "AF", d.af);
  flag_text(out, "nG", d.ng);
  flag_text(out, "PXN", d.pxn);
  flag_text(out, "UXN", d.uxn);
  if (d.contiguous) out.str(" Contiguous=1");
  if (d.dbm) out.str(" DBM=1");
  if (d.ns) out.str(" NS=1");
}

void describe(unsigned level, u64 v, TextSink& out) {
  describe(level, decode(level, v), out);
}

}  // namespace kmm::vm::aarch64

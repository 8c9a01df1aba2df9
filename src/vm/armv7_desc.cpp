// kmm/vm/armv7_desc.cpp — ARMv7-A short-descriptor encoders, decoders and printers.
// Depends on: armv7_desc.h. Bit positions are named once below and used everywhere, so each
// can be checked against the manual in one place (DDI 0406C, figures B3-4 and B3-5).
#include "vm/armv7_desc.h"

namespace kmm::vm::armv7 {
namespace {

using u32 = std::uint32_t;

constexpr u32 bit(unsigned n) {
  return u32{1} << n;
}
constexpr bool has(u32 v, unsigned n) {
  return (v >> n) & 1u;
}
constexpr u32 field(u32 v, unsigned lo, unsigned width) {
  return (v >> lo) & ((u32{1} << width) - 1);
}
constexpr u32 flag(bool on, unsigned n) {
  return on ? bit(n) : 0u;
}

// First level.
constexpr unsigned kL1TableNs = 3, kL1TablePxn = 2;
constexpr unsigned kSecPxn = 0, kSecB = 2, kSecC = 3, kSecXn = 4, kSecDomain = 5, kImpl = 9, kSecAp01 = 10,
                   kSecTex = 12, kSecAp2 = 15, kSecS = 16, kSecNg = 17, kSecSuper = 18, kSecNs = 19;
// Second level, large page.
constexpr unsigned kLgB = 2, kLgC = 3, kLgAp01 = 4, kLgAp2 = 9, kLgS = 10, kLgNg = 11, kLgTex = 12, kLgXn = 15;
// Second level, small page.
constexpr unsigned kSmXn = 0, kSmB = 2, kSmC = 3, kSmAp01 = 4, kSmTex = 6, kSmAp2 = 9, kSmS = 10, kSmNg = 11;

constexpr std::uint8_t ap_of(u32 v, unsigned ap2_bit, unsigned ap01_lo) {
  return static_cast<std::uint8_t>((field(v, ap2_bit, 1) << 2) | field(v, ap01_lo, 2));
}
constexpr std::uint8_t u8(u32 v) {
  return static_cast<std::uint8_t>(v);
}

}  // namespace

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kFault:
      return "fault";
    case Kind::kTable:
      return "page table";
    case Kind::kSection:
      return "section";
    case Kind::kSupersection:
      return "supersection";
    case Kind::kLargePage:
      return "large page";
    case Kind::kSmallPage:
      return "small page";
    case Kind::kReserved:
      return "reserved";
  }
  return "?";
}

Desc decode_l1(u32 v, bool pxn_supported) {
  Desc d;
  switch (v & 3u) {
    case 0:
      d.kind = Kind::kFault;
      return d;
    case 1:
      d.kind = Kind::kTable;
      d.addr = v & 0xFFFFFC00u;
      d.domain = u8(field(v, kSecDomain, 4));
      d.ns = has(v, kL1TableNs);
      d.pxn = has(v, kL1TablePxn);
      d.impl = has(v, kImpl);
      return d;
    default:
      break;
  }
  if ((v & 3u) == 3u && !pxn_supported) {
    d.kind = Kind::kReserved;
    return d;
  }
  d.pxn = has(v, kSecPxn);
  d.b = has(v, kSecB);
  d.c = has(v, kSecC);
  d.xn = has(v, kSecXn);
  d.impl = has(v, kImpl);
  d.ap = ap_of(v, kSecAp2, kSecAp01);
  d.tex = u8(field(v, kSecTex, 3));
  d.s = has(v, kSecS);
  d.ng = has(v, kSecNg);
  d.ns = has(v, kSecNs);
  if (has(v, kSecSuper)) {
    d.kind = Kind::kSupersection;
    d.addr = phys_addr_t{v & 0xFF000000u} | (phys_addr_t{field(v, 20, 4)} << 32) |
             (phys_addr_t{field(v, kSecDomain, 4)} << 36);
  } else {
    d.kind = Kind::kSection;
    d.addr = v & 0xFFF00000u;
    d.domain = u8(field(v, kSecDomain, 4));
  }
  return d;
}

Desc decode_l2(u32 v) {
  Desc d;
  switch (v & 3u) {
    case 0:
      d.kind = Kind::kFault;
      return d;
    case 1:
      d.kind = Kind::kLargePage;
      d.addr = v & 0xFFFF0000u;
      d.b = has(v, kLgB);
      d.c = has(v, kLgC);
      d.ap = ap_of(v, kLgAp2, kLgAp01);
      d.s = has(v, kLgS);
      d.ng = has(v, kLgNg);
      d.tex = u8(field(v, kLgTex, 3));
      d.xn = has(v, kLgXn);
      return d;
    default:
      d.kind = Kind::kSmallPage;
      d.addr = v & 0xFFFFF000u;
      d.xn = has(v, kSmXn);
      d.b = has(v, kSmB);
      d.c = has(v, kSmC);
      d.ap = ap_of(v, kSmAp2, kSmAp01);
      d.tex = u8(field(v, kSmTex, 3));
      d.s = has(v, kSmS);
      d.ng = has(v, kSmNg);
      return d;
  }
}

namespace {

bool common_leaf_fields_ok(const Desc& d) {
  return d.ap <= 7 && d.tex <= 7;
}

// Fields that only the first level has must be clear in a second-level descriptor.
bool no_l1_only_fields(const Desc& d) {
  return d.domain == 0 && !d.pxn && !d.ns && !d.impl;
}

}  // namespace

bool encode_l1(const Desc& d, u32* out) {
  u32 v = 0;
  switch (d.kind) {
    case Kind::kFault:
      v = 0;
      break;
    case Kind::kTable:
      if ((d.addr & 0x3FFu) != 0 || d.addr > 0xFFFFFFFFu || d.domain > 15) return false;
      if (d.ap != 0 || d.tex != 0 || d.c || d.b || d.s || d.ng || d.xn) return false;
      v = static_cast<u32>(d.addr) | (u32{d.domain} << kSecDomain) | flag(d.ns, kL1TableNs) | flag(d.pxn, kL1TablePxn) |
          flag(d.impl, kImpl) | 1u;
      break;
    case Kind::kSection:
    case Kind::kSupersection: {
      if (!common_leaf_fields_ok(d)) return false;
      u32 base = 0;
      if (d.kind == Kind::kSection) {
        if ((d.addr & 0xFFFFFu) != 0 || d.addr > 0xFFFFFFFFu || d.domain > 15) return false;
        base = static_cast<u32>(d.addr) | (u32{d.domain} << kSecDomain);
      } else {
        // PA[39:24]: [31:24] in place, [35:32] at bits[23:20], [39:36] in the domain field.
        if ((d.addr & 0xFFFFFFu) != 0 || (d.addr >> 40) != 0 || d.domain != 0) return false;
        base = static_cast<u32>(d.addr & 0xFF000000u) | (static_cast<u32>((d.addr >> 32) & 0xFu) << 20) |
               (static_cast<u32>((d.addr >> 36) & 0xFu) << kSecDomain) | bit(kSecSuper);
      }
      v = base | flag(d.pxn, kSecPxn) | bit(1) | flag(d.b, kSecB) | flag(d.c, kSecC) | flag(d.xn, kSecXn) |
          flag(d.impl, kImpl) | (u32{d.ap & 3u} << kSecAp01) | (u32{d.tex} << kSecTex) |
          flag((d.ap & 4u) != 0, kSecAp2) | flag(d.s, kSecS) | flag(d.ng, kSecNg) | flag(d.ns, kSecNs);
      break;
    }
    default:
      return false;
  }
  *out = v;
  return true;
}

bool encode_l2(const Desc& d, u32* out) {
  u32 v = 0;
  switch (d.kind) {
    case Kind::kFault:
      v = 0;
      break;
    case Kind::kLargePage:
      if (!common_leaf_fields_ok(d) || !no_l1_only_fields(d)) return false;
      if ((d.addr & 0xFFFFu) != 0 || d.addr > 0xFFFFFFFFu) return false;
      v = static_cast<u32>(d.addr) | 1u | flag(d.b, kLgB) | flag(d.c, kLgC) | (u32{d.ap & 3u} << kLgAp01) |
          flag((d.ap & 4u) != 0, kLgAp2) | flag(d.s, kLgS) | flag(d.ng, kLgNg) | (u32{d.tex} << kLgTex) |
          flag(d.xn, kLgXn);
      break;
    case Kind::kSmallPage:
      if (!common_leaf_fields_ok(d) || !no_l1_only_fields(d)) return false;
      if ((d.addr & 0xFFFu) != 0 || d.addr > 0xFFFFFFFFu) return false;
      v = static_cast<u32>(d.addr) | bit(1) | flag(d.xn, kSmXn) | flag(d.b, kSmB) | flag(d.c, kSmC) |
          (u32{d.ap & 3u} << kSmAp01) | (u32{d.tex} << kSmTex) | flag((d.ap & 4u) != 0, kSmAp2) | flag(d.s, kSmS) |
          flag(d.ng, kSmNg);
      break;
    default:
      return false;
  }
  *out = v;
  return true;
}

Perms leaf_perms(const Desc& d) {
  Perms p;
  switch (d.ap) {
    case 1:
      p.kernel_read = p.kernel_write = true;
      break;
    case 2:
      p.kernel_read = p.kernel_write = p.user_read = true;
      break;
    case 3:
      p.kernel_read = p.kernel_write = p.user_read = p.user_write = true;
      break;
    case 5:
      p.kernel_read = true;
      break;
    case 6:
    case 7:
      p.kernel_read = p.user_read = true;
      break;
    default:
      break;  // 000 no access; 100 reserved, modelled as no access
  }
  p.kernel_exec = p.kernel_read && !d.xn && !d.pxn;
  p.user_exec = p.user_read && !d.xn;
  return p;
}

const char* ap_text(std::uint8_t ap) {
  switch (ap & 7u) {
    case 0:
      return "PL1 none, PL0 none";
    case 1:
      return "PL1 RW, PL0 none";
    case 2:
      return "PL1 RW, PL0 RO";
    case 3:
      return "PL1 RW, PL0 RW";
    case 4:
      return "reserved";
    case 5:
      return "PL1 RO, PL0 none";
    case 6:
      return "PL1 RO, PL0 RO (deprecated)";
    default:
      return "PL1 RO, PL0 RO";
  }
}

const char* mem_type_text(std::uint8_t tex, bool c, bool b) {
  const unsigned cb = (c ? 2u : 0u) | (b ? 1u : 0u);
  if ((tex & 4u) != 0) return "normal, cacheable (outer TEX[1:0], inner C/B)";
  switch ((tex & 3u) * 4u + cb) {
    case 0:
      return "strongly-ordered";
    case 1:
      return "shareable device";
    case 2:
      return "normal WT, no WA";
    case 3:
      return "normal WB, no WA";
    case 4:
      return "normal non-cacheable";
    case 5:
      return "reserved";
    case 6:
      return "implementation defined";
    case 7:
      return "normal WB-WA";
    case 8:
      return "non-shareable device";
    default:
      return "reserved";
  }
}

void mem_type_bits(MemType t, std::uint8_t* tex, bool* c, bool* b, bool* s) {
  switch (t) {
    case MemType::kNormal:
      *tex = 1;
      *c = true;
      *b = true;
      *s = true;
      return;
    case MemType::kNormalUncached:
      *tex = 1;
      *c = false;
      *b = false;
      *s = true;
      return;
    case MemType::kDevice:
      *tex = 0;
      *c = false;
      *b = true;
      *s = false;
      return;
    case MemType::kStronglyOrdered:
      *tex = 0;
      *c = false;
      *b = false;
      *s = false;
      return;
  }
}

std::uint8_t ap_for(bool user, bool writable) {
  if (user) return writable ? 3 : 7;  // 011 RW both; 111 RO both (Linux: APX|AP[1:0]=11)
  return writable ? 1 : 5;            // 001 PL1 RW; 101 PL1 RO
}

Desc leaf_desc(Kind kind, phys_addr_t pa, const MapAttrs& a) {
  Desc d;
  d.kind = kind;
  d.addr = pa;
  d.ap = ap_for(a.user, a.writable);
  mem_type_bits(a.mem, &d.tex, &d.c, &d.b, &d.s);
  d.ng = !a.global;
  d.xn = !a.executable || a.mem == MemType::kDevice || a.mem == MemType::kStronglyOrdered;
  if (kind == Kind::kSection || kind == Kind::kSupersection) {
    d.pxn = a.user;  // the kernel never executes user memory
    if (kind == Kind::kSection) d.domain = a.domain;
  }
  return d;
}

namespace {

void bits3(TextSink& out, unsigned v) {
  out.ch(static_cast<char>('0' + ((v >> 2) & 1u)))
      .ch(static_cast<char>('0' + ((v >> 1) & 1u)))
      .ch(static_cast<char>('0' + (v & 1u)));
}
void flag_text(TextSink& out, const char* name, bool v) {
  out.ch(' ').str(name).ch('=').ch(v ? '1' : '0');
}

}  // namespace

void describe(const Desc& d, TextSink& out) {
  out.str(kind_name(d.kind));
  switch (d.kind) {
    case Kind::kFault:
    case Kind::kReserved:
      return;
    case Kind::kTable:
      out.str(" at 0x").hex(d.addr, 8).str(" domain ").u(d.domain);
      flag_text(out, "PXN", d.pxn);
      flag_text(out, "NS", d.ns);
      return;
    default:
      break;
  }
  out.str(" PA 0x").hex(d.addr, d.kind == Kind::kSupersection && d.addr > 0xFFFFFFFFu ? 10 : 8);
  out.str(" AP=");
  bits3(out, d.ap);
  out.str(" (").str(ap_text(d.ap)).ch(')');
  if (d.kind == Kind::kSection) out.str(" domain ").u(d.domain);
  out.str(" TEX=");
  bits3(out, d.tex);
  flag_text(out, "C", d.c);
  flag_text(out, "B", d.b);
  out.str(" (").str(mem_type_text(d.tex, d.c, d.b)).ch(')');
  flag_text(out, "S", d.s);
  flag_text(out, "nG", d.ng);
  flag_text(out, "XN", d.xn);
  if (d.kind == Kind::kSection || d.kind == Kind::kSupersection) flag_text(out, "PXN", d.pxn);
}

void describe_l1(u32 v, TextSink& out, bool pxn_supported) {
  describe(decode_l1(v, pxn_supported), out);
}
void describe_l2(u32 v, TextSink& out) {
  describe(decode_l2(v), out);
}

}  // namespace kmm::vm::armv7

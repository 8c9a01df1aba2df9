// Tests of the ARMv7-A short-descriptor encoders and decoders (src/vm/armv7_desc.h).
// Every vector is derived by hand from the bit layouts of DDI 0406C B3.5.1 (figures B3-4 and
// B3-5); the derivation is written above it, bit by bit, so a reader can check it.
#include "vm/armv7_desc.h"

#include <gtest/gtest.h>

#include <cstring>

namespace kmm::vm::armv7 {
namespace {

std::uint32_t enc1(const Desc& d) {
  std::uint32_t v = 0xFFFFFFFFu;
  EXPECT_TRUE(encode_l1(d, &v));
  return v;
}
std::uint32_t enc2(const Desc& d) {
  std::uint32_t v = 0xFFFFFFFFu;
  EXPECT_TRUE(encode_l2(d, &v));
  return v;
}

// Kernel RAM section, as Linux maps lowmem: PA 0x80000000, AP[2:0]=001 (PL1 RW), domain 0,
// TEX=001 C=1 B=1 (normal WB-WA), S=1, nG=0, XN=1, PXN=0.
//   [31:20] 0x800          -> 0x80000000
//   [16] S                 -> 0x00010000
//   [14:12] TEX=001        -> 0x00001000
//   [11:10] AP[1:0]=01     -> 0x00000400
//   [4] XN                 -> 0x00000010
//   [3] C, [2] B, [1] 1    -> 0x0000000E
//   total                     0x8001141E
TEST(Armv7Desc, SectionVector) {
  Desc d;
  d.kind = Kind::kSection;
  d.addr = 0x80000000u;
  d.ap = 1;
  d.tex = 1;
  d.c = d.b = d.s = d.xn = true;
  EXPECT_EQ(enc1(d), 0x8001141Eu);

  const Desc back = decode_l1(0x8001141Eu);
  EXPECT_EQ(back.kind, Kind::kSection);
  EXPECT_EQ(back.addr, 0x80000000u);
  EXPECT_EQ(back.ap, 1);
  EXPECT_EQ(back.tex, 1);
  EXPECT_TRUE(back.c && back.b && back.s && back.xn);
  EXPECT_FALSE(back.ng || back.pxn || back.ns || back.impl);
  EXPECT_EQ(back.domain, 0);
}

// The classic early-boot identity section 0x0000040E: [11:10] AP=01 -> 0x400, [3] C -> 0x8,
// [2] B -> 0x4, [1] -> 0x2: section at PA 0, PL1 RW, TEX=000 C=1 B=1 (normal WB, no WA).
TEST(Armv7Desc, EarlyBootSection) {
  const Desc d = decode_l1(0x0000040Eu);
  EXPECT_EQ(d.kind, Kind::kSection);
  EXPECT_EQ(d.addr, 0u);
  EXPECT_EQ(d.ap, 1);
  EXPECT_EQ(d.tex, 0);
  EXPECT_TRUE(d.c && d.b);
  EXPECT_FALSE(d.xn || d.pxn);
  EXPECT_STREQ(mem_type_text(d.tex, d.c, d.b), "normal WB, no WA");
}

// Coarse page table at PA 0x00104C00, domain 1:
//   [31:10] 0x00104C00 (1 KB aligned) | [8:5] domain 1 -> 0x20 | [1:0] 01 -> 0x00104C21
TEST(Armv7Desc, PageTableVector) {
  Desc d;
  d.kind = Kind::kTable;
  d.addr = 0x00104C00u;
  d.domain = 1;
  EXPECT_EQ(enc1(d), 0x00104C21u);
  const Desc back = decode_l1(0x00104C21u);
  EXPECT_EQ(back.kind, Kind::kTable);
  EXPECT_EQ(back.addr, 0x00104C00u);
  EXPECT_EQ(back.domain, 1);
  EXPECT_FALSE(back.pxn);
  // PXN is bit 2, NS bit 3 of a table descriptor.
  const Desc pxn_ns = decode_l1(0x00104C2Du);
  EXPECT_TRUE(pxn_ns.pxn);
  EXPECT_TRUE(pxn_ns.ns);
}

// Supersection at the 40-bit PA 0xAB_CD00_0000: PA[31:24]=0xCD in [31:24], PA[35:32]=0xB in
// [23:20], PA[39:36]=0xA in [8:5]; AP=011, XN=1, nG=1, TEX=000 C=0 B=1 (shareable device).
//   0xCD000000 | 0x00B00000 | [18] 0x40000 | [17] nG 0x20000
//   | [11:10] AP=11 0xC00 | [8:5] 0xA<<5 = 0x140 | [4] XN 0x10 | [2] B 0x4 | [1] 0x2
//   = 0xCDB60D56
TEST(Armv7Desc, SupersectionVector) {
  Desc d;
  d.kind = Kind::kSupersection;
  d.addr = 0xABCD000000ull;
  d.ap = 3;
  d.xn = d.ng = d.b = true;
  EXPECT_EQ(enc1(d), 0xCDB60D56u);
  const Desc back = decode_l1(0xCDB60D56u);
  EXPECT_EQ(back.kind, Kind::kSupersection);
  EXPECT_EQ(back.addr, 0xABCD000000ull);
  EXPECT_EQ(back.ap, 3);
  EXPECT_TRUE(back.xn && back.ng && back.b);
  EXPECT_FALSE(back.c);
  EXPECT_EQ(back.domain, 0);  // supersections live in domain 0
  EXPECT_STREQ(mem_type_text(back.tex, back.c, back.b), "shareable device");
}

// Small page PA 0x00403000 (the seed's frame 0x403), AP=010 (PL1 RW, PL0 RO), TEX=001 C=1
// B=1, S=1, nG=1, XN=1:
//   0x00403000 | [11] nG 0x800 | [10] S 0x400 | [8:6] TEX=001 0x40 | [5:4] AP=10 0x20
//   | [3] C 0x8 | [2] B 0x4 | [1] 0x2 | [0] XN 0x1 = 0x00403C6F
TEST(Armv7Desc, SmallPageVector) {
  Desc d;
  d.kind = Kind::kSmallPage;
  d.addr = 0x00403000u;
  d.ap = 2;
  d.tex = 1;
  d.c = d.b = d.s = d.ng = d.xn = true;
  EXPECT_EQ(enc2(d), 0x00403C6Fu);
  const Desc back = decode_l2(0x00403C6Fu);
  EXPECT_EQ(back.kind, Kind::kSmallPage);
  EXPECT_EQ(back.addr, 0x00403000u);
  EXPECT_EQ(back.ap, 2);
  EXPECT_EQ(back.tex, 1);
  EXPECT_TRUE(back.c && back.b && back.s && back.ng && back.xn);
}

// Large page PA 0x12340000, AP=111 (APX=1, AP[1:0]=11: RO both), XN=1, TEX=000 C=1 B=0:
//   0x12340000 | [15] XN 0x8000 | [9] AP[2] 0x200 | [5:4] AP=11 0x30 | [3] C 0x8 | [1:0] 01
//   = 0x12348239
TEST(Armv7Desc, LargePageVector) {
  Desc d;
  d.kind = Kind::kLargePage;
  d.addr = 0x12340000u;
  d.ap = 7;
  d.xn = d.c = true;
  EXPECT_EQ(enc2(d), 0x12348239u);
  const Desc back = decode_l2(0x12348239u);
  EXPECT_EQ(back.kind, Kind::kLargePage);
  EXPECT_EQ(back.addr, 0x12340000u);
  EXPECT_EQ(back.ap, 7);
  EXPECT_TRUE(back.xn && back.c);
  EXPECT_FALSE(back.b || back.s || back.ng);
}

// bits[1:0] == 11 at the first level is a section with PXN=1 on an implementation with the
// PXN extension, and a reserved encoding without it.
TEST(Armv7Desc, PxnEncodingAndReserved) {
  const Desc with = decode_l1(0x0000040Fu);
  EXPECT_EQ(with.kind, Kind::kSection);
  EXPECT_TRUE(with.pxn);
  EXPECT_EQ(decode_l1(0x0000040Fu, /*pxn_supported=*/false).kind, Kind::kReserved);
  EXPECT_EQ(decode_l1(0x0000040Eu, /*pxn_supported=*/false).kind, Kind::kSection);
}

// Junk: 0xDEADBEEC has bits[1:0]=00, a fault at either level. 0xDEADBEEF at the second level
// is a small page: 0xEEF = 1110 1110 1111b -> XN=1, B=1, C=1, AP[1:0]=10, TEX=011,
// AP[2]=1 (AP=110), S=1, nG=1, PA 0xDEADB000.
TEST(Armv7Desc, JunkValuesDecodeTotally) {
  EXPECT_EQ(decode_l1(0xDEADBEECu).kind, Kind::kFault);
  EXPECT_EQ(decode_l2(0xDEADBEECu).kind, Kind::kFault);
  const Desc d = decode_l2(0xDEADBEEFu);
  EXPECT_EQ(d.kind, Kind::kSmallPage);
  EXPECT_EQ(d.addr, 0xDEADB000u);
  EXPECT_EQ(d.ap, 6);
  EXPECT_EQ(d.tex, 3);
  EXPECT_TRUE(d.xn && d.b && d.c && d.s && d.ng);
}

TEST(Armv7Desc, EncoderRefusesWhatDoesNotFit) {
  std::uint32_t v = 0x5A5A5A5Au;
  Desc d;
  d.kind = Kind::kSection;
  d.addr = 0x80080000u;  // not 1 MB aligned
  EXPECT_FALSE(encode_l1(d, &v));
  d.addr = 0x100000000ull;  // above 4 GB: only supersections reach there
  EXPECT_FALSE(encode_l1(d, &v));
  d.addr = 0x80000000u;
  d.domain = 16;
  EXPECT_FALSE(encode_l1(d, &v));
  d.domain = 0;
  d.ap = 8;
  EXPECT_FALSE(encode_l1(d, &v));
  d.ap = 0;
  d.tex = 8;
  EXPECT_FALSE(encode_l1(d, &v));

  Desc ss;
  ss.kind = Kind::kSupersection;
  ss.addr = 0x01000000u;
  ss.domain = 3;  // the domain field holds PA[39:36] in a supersection
  EXPECT_FALSE(encode_l1(ss, &v));
  ss.domain = 0;
  ss.addr = 0x10000000000ull;  // 2^40: beyond 40 bits
  EXPECT_FALSE(encode_l1(ss, &v));
  ss.addr = 0x00800000u;  // 8 MB: not 16 MB aligned
  EXPECT_FALSE(encode_l1(ss, &v));

  Desc small;
  small.kind = Kind::kSmallPage;
  small.addr = 0x1000;
  small.pxn = true;  // no PXN bit at the second level
  EXPECT_FALSE(encode_l2(small, &v));
  small.pxn = false;
  small.domain = 1;
  EXPECT_FALSE(encode_l2(small, &v));
  small.domain = 0;
  small.addr = 0x1800;
  EXPECT_FALSE(encode_l2(small, &v));

  Desc large;
  large.kind = Kind::kLargePage;
  large.addr = 0x8000;  // 32 KB: not 64 KB aligned
  EXPECT_FALSE(encode_l2(large, &v));

  Desc table;
  table.kind = Kind::kTable;
  table.addr = 0x200;  // not 1 KB aligned
  EXPECT_FALSE(encode_l1(table, &v));
  table.addr = 0x400;
  table.xn = true;  // no XN in a table descriptor
  EXPECT_FALSE(encode_l1(table, &v));

  Desc wrong_level;
  wrong_level.kind = Kind::kSmallPage;
  EXPECT_FALSE(encode_l1(wrong_level, &v));
  wrong_level.kind = Kind::kSection;
  EXPECT_FALSE(encode_l2(wrong_level, &v));
  wrong_level.kind = Kind::kReserved;
  EXPECT_FALSE(encode_l1(wrong_level, &v));
  EXPECT_EQ(v, 0x5A5A5A5Au);  // never written on refusal
}

// Round trip over pseudo-random values: every value that decodes to a kind the encoder
// accepts re-encodes to itself, except the bits the architecture leaves SBZ or ignored
// (fault bits[31:2], table bit 4, large-page bits[8:6]).
TEST(Armv7Desc, RoundTripRandom) {
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  for (int k = 0; k < 200000; ++k) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const auto v = static_cast<std::uint32_t>(x);
    std::uint32_t out = 0;
    const Desc d1 = decode_l1(v);
    ASSERT_TRUE(encode_l1(d1, &out));
    std::uint32_t expect1 = v;
    if (d1.kind == Kind::kFault) expect1 = 0;
    if (d1.kind == Kind::kTable) expect1 = v & ~0x10u;
    ASSERT_EQ(out, expect1) << std::hex << v;

    const Desc d2 = decode_l2(v);
    ASSERT_TRUE(encode_l2(d2, &out));
    std::uint32_t expect2 = v;
    if (d2.kind == Kind::kFault) expect2 = 0;
    if (d2.kind == Kind::kLargePage) expect2 = v & ~0x1C0u;
    ASSERT_EQ(out, expect2) << std::hex << v;
  }
}

TEST(Armv7Desc, PermissionsFromAp) {
  struct Row {
    std::uint8_t ap;
    bool kr, kw, ur, uw;
  };
  const Row rows[] = {{0, false, false, false, false}, {1, true, true, false, false},   {2, true, true, true, false},
                      {3, true, true, true, true},     {4, false, false, false, false}, {5, true, false, false, false},
                      {6, true, false, true, false},   {7, true, false, true, false}};
  for (const Row& r : rows) {
    Desc d;
    d.kind = Kind::kSmallPage;
    d.ap = r.ap;
    const Perms p = leaf_perms(d);
    EXPECT_EQ(p.kernel_read, r.kr) << int{r.ap};
    EXPECT_EQ(p.kernel_write, r.kw) << int{r.ap};
    EXPECT_EQ(p.user_read, r.ur) << int{r.ap};
    EXPECT_EQ(p.user_write, r.uw) << int{r.ap};
    EXPECT_EQ(p.kernel_exec, r.kr);
    EXPECT_EQ(p.user_exec, r.ur);
  }
  Desc d;
  d.kind = Kind::kSection;
  d.ap = 3;
  d.pxn = true;
  EXPECT_FALSE(leaf_perms(d).kernel_exec);
  EXPECT_TRUE(leaf_perms(d).user_exec);
  d.xn = true;
  EXPECT_FALSE(leaf_perms(d).user_exec);
}

TEST(Armv7Desc, LeafFromAttrsMatchesLinux) {
  MapAttrs kernel;  // PAGE_KERNEL: RW, NX, global, normal memory
  std::uint32_t v = 0;
  ASSERT_TRUE(encode_l1(leaf_desc(Kind::kSection, 0x80000000u, kernel), &v));
  EXPECT_EQ(v, 0x8001141Eu);  // the SectionVector above
  MapAttrs user_ro;
  user_ro.user = true;
  user_ro.writable = false;
  user_ro.global = false;
  const Desc d = leaf_desc(Kind::kSmallPage, 0x3000, user_ro);
  EXPECT_EQ(d.ap, 7);
  EXPECT_TRUE(d.ng);
  EXPECT_TRUE(d.xn);
  EXPECT_FALSE(d.pxn);  // no PXN field at the second level
  ASSERT_TRUE(encode_l2(d, &v));
  const Perms p = leaf_perms(decode_l2(v));
  EXPECT_TRUE(p.user_read);
  EXPECT_FALSE(p.user_write);
  EXPECT_FALSE(p.kernel_write);
}

// TTBCR.N splits the address space: VA < 2^(32-N) uses TTBR0.
TEST(Armv7Desc, TtbrSelection) {
  EXPECT_EQ(ttbr_for(0xFFFFFFFFu, 0), 0u);  // N == 0: TTBR0 only
  EXPECT_EQ(ttbr_for(0x7FFFFFFFu, 1), 0u);
  EXPECT_EQ(ttbr_for(0x80000000u, 1), 1u);
  EXPECT_EQ(ttbr_for(0x3FFFFFFFu, 2), 0u);
  EXPECT_EQ(ttbr_for(0x40000000u, 2), 1u);
  EXPECT_EQ(ttbr_for(0x01FFFFFFu, 7), 0u);
  EXPECT_EQ(ttbr_for(0x02000000u, 7), 1u);
  EXPECT_EQ(l1_table_bytes(0, 0), 16384u);
  EXPECT_EQ(l1_table_bytes(2, 0), 4096u);
  EXPECT_EQ(l1_table_bytes(2, 1), 16384u);
  // N=2: TTBR0 table is 4 KB aligned; TTBR value 0x12345059 (low bits are walk attributes)
  // gives base 0x12345000; VA 0x3FF00000 has index VA[29:20] = 0x3FF -> +0xFFC.
  EXPECT_EQ(l1_desc_addr(0x12345059u, 2, 0, 0x3FF00000u), 0x12345FFCu);
  // TTBR1 base 0x87654000 (16 KB aligned); VA 0xC0100000 -> index 0xC01 -> +0x3004.
  EXPECT_EQ(l1_desc_addr(0x87654000u, 2, 1, 0xC0100000u), 0x87657004u);
  // N=0, TTBR0 0x00004000, VA 0x00403012 (the seed's address): index 4 -> 0x00004010.
  EXPECT_EQ(l1_desc_addr(0x00004000u, 0, 0, 0x00403012u), 0x00004010u);
  // Second level: table 0x00104C00, VA[19:12] = 0x03 -> 0x00104C0C.
  EXPECT_EQ(l2_desc_addr(0x00104C21u, 0x00403012u), 0x00104C0Cu);
}

TEST(Armv7Desc, DescribePrintsFields) {
  StackText<256> t;
  describe_l1(0x8001141Eu, t);
  EXPECT_STREQ(t.data(),
               "section PA 0x80000000 AP=001 (PL1 RW, PL0 none) domain 0 TEX=001 C=1 B=1 "
               "(normal WB-WA) S=1 nG=0 XN=1 PXN=0");
  t.clear();
  describe_l1(0x00104C21u, t);
  EXPECT_STREQ(t.data(), "page table at 0x00104c00 domain 1 PXN=0 NS=0");
  t.clear();
  describe_l2(0x00403C6Fu, t);
  EXPECT_STREQ(t.data(),
               "small page PA 0x00403000 AP=010 (PL1 RW, PL0 RO) TEX=001 C=1 B=1 (normal WB-WA) "
               "S=1 nG=1 XN=1");
  t.clear();
  describe_l1(0u, t);
  EXPECT_STREQ(t.data(), "fault");
  t.clear();
  describe_l1(0xCDB60D56u, t);
  EXPECT_EQ(std::strncmp(t.data(), "supersection PA 0xabcd000000 AP=011", 35), 0) << t.data();
}

}  // namespace
}  // namespace kmm::vm::armv7

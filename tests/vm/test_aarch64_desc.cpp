// Tests of the AArch64 4 KB-granule descriptor encoders and decoders (src/vm/aarch64_desc.h).
// Vectors are derived by hand from DDI 0487 D8.3 (VMSAv8-64 descriptor formats); each
// derivation is written above its vector.
#include "vm/aarch64_desc.h"

#include <gtest/gtest.h>

namespace kmm::vm::aarch64 {
namespace {

std::uint64_t enc(unsigned level, const Desc& d) {
  std::uint64_t v = ~0ull;
  EXPECT_TRUE(encode(level, d, &v));
  return v;
}

// L2 block (2 MB) for kernel RAM at OA 0x40000000: AttrIndx=0 (normal), AP=00 (EL1 RW),
// SH=11, AF=1, nG=0, PXN=1, UXN=1 (Linux's PAGE_KERNEL, a data mapping):
//   OA 0x40000000 | [54] UXN 0x0040000000000000 | [53] PXN 0x0020000000000000
//   | [10] AF 0x400 | [9:8] SH=11 0x300 | [1:0] 01
//   = 0x0060000040000701
TEST(Aarch64Desc, BlockVector) {
  Desc d;
  d.kind = Kind::kBlock;
  d.addr = 0x40000000u;
  d.sh = 3;
  d.af = d.pxn = d.uxn = true;
  EXPECT_EQ(enc(2, d), 0x0060000040000701ull);
  const Desc back = decode(2, 0x0060000040000701ull);
  EXPECT_EQ(back.kind, Kind::kBlock);
  EXPECT_EQ(back.addr, 0x40000000u);
  EXPECT_EQ(back.sh, 3);
  EXPECT_EQ(back.ap, 0);
  EXPECT_EQ(back.attr_indx, 0);
  EXPECT_TRUE(back.af && back.pxn && back.uxn);
  EXPECT_FALSE(back.ng);
  // The same value is also a valid 1 GB block at level 1 (0x40000000 is 1 GB aligned).
  EXPECT_EQ(decode(1, 0x0060000040000701ull).kind, Kind::kBlock);
  // From format-neutral attributes: MapAttrs{} is kernel RW NX global normal.
  EXPECT_EQ(enc(2, leaf_desc(2, 0x40000000u, MapAttrs{})), 0x0060000040000701ull);
}

// L3 page for user data at OA 0x00403000: AttrIndx=0, AP=01 (RW both), SH=11, AF=1, nG=1,
// PXN=1, UXN=1:
//   0x00403000 | [54:53] 0x0060000000000000 | [11] nG 0x800 | [10] AF 0x400
//   | [9:8] SH 0x300 | [7:6] AP=01 0x40 | [1:0] 11
//   = 0x0060000000403F43
TEST(Aarch64Desc, PageVector) {
  Desc d;
  d.kind = Kind::kPage;
  d.addr = 0x00403000u;
  d.ap = 1;
  d.sh = 3;
  d.af = d.ng = d.pxn = d.uxn = true;
  EXPECT_EQ(enc(3, d), 0x0060000000403F43ull);
  MapAttrs user_data;
  user_data.user = true;
  user_data.global = false;
  EXPECT_EQ(enc(3, leaf_desc(3, 0x00403000u, user_data)), 0x0060000000403F43ull);
  const Desc back = decode(3, 0x0060000000403F43ull);
  EXPECT_EQ(back.kind, Kind::kPage);
  EXPECT_EQ(back.addr, 0x00403000u);
  EXPECT_EQ(back.ap, 1);
  EXPECT_TRUE(back.ng);
}

// Table descriptor for a next-level table at 0x0000000812345000 with APTable=01 (no EL0
// access below) and UXNTable=1:
//   0x0000000812345000 | [61] APTable[0] 0x2000000000000000 | [60] UXNTable 0x1000000000000000
//   | [1:0] 11
//   = 0x3000000812345003
TEST(Aarch64Desc, TableVector) {
  Desc d = table_desc(0x0000000812345000ull);
  d.ap_table = 1;
  d.uxn_table = true;
  EXPECT_EQ(enc(0, d), 0x3000000812345003ull);
  const Desc back = decode(1, 0x3000000812345003ull);
  EXPECT_EQ(back.kind, Kind::kTable);
  EXPECT_EQ(back.addr, 0x0000000812345000ull);
  EXPECT_EQ(back.ap_table, 1);
  EXPECT_TRUE(back.uxn_table);
  EXPECT_FALSE(back.pxn_table || back.ns_table);
  // PXNTable is bit 59, NSTable bit 63, APTable[1] bit 62.
  const Desc all = decode(0, 0xC800000000001003ull);
  EXPECT_TRUE(all.pxn_table && all.ns_table);
  EXPECT_EQ(all.ap_table, 2);
}

// L1 block (1 GB) of device memory at OA 0x80000000: AttrIndx=4 (device-nGnRE) -> [4:2]=100
// = 0x10, AP=00, SH=00, AF 0x400, PXN and UXN 0x0060000000000000, [1:0] 01:
//   = 0x0060000080000411
TEST(Aarch64Desc, DeviceGigabyteBlock) {
  MapAttrs dev;
  dev.mem = MemType::kDevice;
  EXPECT_EQ(enc(1, leaf_desc(1, 0x80000000u, dev)), 0x0060000080000411ull);
  const Desc back = decode(1, 0x0060000080000411ull);
  EXPECT_EQ(back.attr_indx, 4);
  EXPECT_STREQ(attr_indx_text(back.attr_indx), "device-nGnRE");
}

TEST(Aarch64Desc, ReservedAndInvalidEncodings) {
  // bit[0] == 0: invalid whatever else is set.
  EXPECT_EQ(decode(0, 0xFFFFFFFFFFFFFFFEull).kind, Kind::kInvalid);
  EXPECT_EQ(decode(3, 0x0000000000403F42ull).kind, Kind::kInvalid);
  // L3 with bits[1:0] == 01 is reserved.
  const Desc l3 = decode(3, 0x0060000000403F41ull);
  EXPECT_EQ(l3.kind, Kind::kReserved);
  EXPECT_NE(l3.why, nullptr);
  // No block descriptors at L0 with the 4 KB granule (without FEAT_LPA2).
  EXPECT_EQ(decode(0, 0x0060000040000701ull).kind, Kind::kReserved);
  // A 2 MB block with bit 12 set (RES0 below the block size).
  EXPECT_EQ(decode(2, 0x0060000040001701ull).kind, Kind::kReserved);
  // A 1 GB block whose OA 0x40200000 is only 2 MB aligned: bit 21 is RES0 at L1.
  EXPECT_EQ(decode(1, 0x0060000040200701ull).kind, Kind::kReserved);
  // ... but the same value is a fine 2 MB block at L2.
  EXPECT_EQ(decode(2, 0x0060000040200701ull).kind, Kind::kBlock);
  // Output address bit 48 set: beyond the modelled 48-bit PA.
  EXPECT_EQ(decode(3, 0x0001000000403F43ull).kind, Kind::kReserved);
  EXPECT_EQ(decode(1, 0x0001000000403003ull).kind, Kind::kReserved);
  // No level 4.
  EXPECT_EQ(decode(4, 0x0060000000403F43ull).kind, Kind::kReserved);
}

TEST(Aarch64Desc, EncoderRefusesWhatDoesNotFit) {
  std::uint64_t v = 0x5A5A5A5A5A5A5A5Aull;
  Desc block;
  block.kind = Kind::kBlock;
  block.addr = 0x40000000u;
  EXPECT_FALSE(encode(0, block, &v));  // no L0 blocks
  EXPECT_FALSE(encode(3, block, &v));  // L3 has pages, not blocks
  block.addr = 0x40100000u;            // 1 MB: not 2 MB aligned
  EXPECT_FALSE(encode(2, block, &v));
  block.addr = 0x40200000u;  // 2 MB aligned, not 1 GB aligned
  EXPECT_TRUE(encode(2, block, &v));
  v = 0x5A5A5A5A5A5A5A5Aull;
  EXPECT_FALSE(encode(1, block, &v));
  block.addr = 0x1000000000000ull;  // 2^48
  EXPECT_FALSE(encode(2, block, &v));
  block.addr = 0;
  block.attr_indx = 8;
  EXPECT_FALSE(encode(2, block, &v));
  block.attr_indx = 0;
  block.ap = 4;
  EXPECT_FALSE(encode(2, block, &v));
  block.ap = 0;
  block.uxn_table = true;  // a table field in a block
  EXPECT_FALSE(encode(2, block, &v));

  Desc page;
  page.kind = Kind::kPage;
  page.addr = 0x1000;
  EXPECT_FALSE(encode(2, page, &v));  // pages only at L3
  page.addr = 0x1800;
  EXPECT_FALSE(encode(3, page, &v));

  Desc table = table_desc(0x2000);
  EXPECT_FALSE(encode(3, table, &v));  // no tables at L3
  table.af = true;                     // a leaf field in a table
  EXPECT_FALSE(encode(1, table, &v));

  Desc reserved;
  reserved.kind = Kind::kReserved;
  EXPECT_FALSE(encode(1, reserved, &v));
  EXPECT_FALSE(encode(4, page, &v));
  EXPECT_EQ(v, 0x5A5A5A5A5A5A5A5Aull);  // never written on refusal
}

// Round trip over pseudo-random values: a value that decodes to a valid kind re-encodes to
// itself, less the bits the model does not keep (ignored bits of invalid and table
// descriptors, GP bit 50 and bits[63:59] of leaves).
TEST(Aarch64Desc, RoundTripRandom) {
  std::uint64_t x = 0x243F6A8885A308D3ull;
  for (int k = 0; k < 200000; ++k) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    for (unsigned level = 0; level < kLevels; ++level) {
      std::uint64_t v = x & ~0x000F000000000000ull;  // keep OA within 48 bits
      if ((k & 1) != 0 && (level == 1 || level == 2)) {
        v &= ~((level_size(level) - 1) & ~0xFFFull);  // block RES0 bits clear
      }
      const Desc d = decode(level, v);
      if (d.kind == Kind::kReserved) continue;
      std::uint64_t out = 0;
      ASSERT_TRUE(encode(level, d, &out)) << std::hex << v;
      std::uint64_t expect = 0;
      if (d.kind == Kind::kTable) expect = v & (kOaMask | 0xF800000000000003ull);
      if (d.kind == Kind::kBlock || d.kind == Kind::kPage) {
        expect = v & (kOaMask | 0x07F8000000000FFFull);
      }
      ASSERT_EQ(out, expect) << "level " << level << " value " << std::hex << v;
    }
  }
}

TEST(Aarch64Desc, Permissions) {
  Desc d;
  d.kind = Kind::kPage;
  d.af = true;
  d.ap = 0;  // EL1 RW
  Perms p = leaf_perms(d);
  EXPECT_TRUE(p.kernel_read && p.kernel_write && p.kernel_exec);
  EXPECT_FALSE(p.user_read || p.user_write || p.user_exec);
  d.ap = 1;  // RW both: the kernel may not execute EL0-writable memory even with PXN=0
  p = leaf_perms(d);
  EXPECT_TRUE(p.user_read && p.user_write && p.user_exec);
  EXPECT_FALSE(p.kernel_exec);
  d.ap = 2;
  p = leaf_perms(d);
  EXPECT_TRUE(p.kernel_read && p.kernel_exec);
  EXPECT_FALSE(p.kernel_write || p.user_read);
  d.ap = 3;
  d.uxn = true;
  p = leaf_perms(d);
  EXPECT_TRUE(p.user_read && p.kernel_exec);
  EXPECT_FALSE(p.user_write || p.user_exec || p.kernel_write);

  // Table limits: APTable[0] removes EL0 access, APTable[1] writes, UXN/PXNTable exec.
  Desc rw_all;
  rw_all.kind = Kind::kBlock;
  rw_all.ap = 1;
  TableLimits lim;
  Desc t = table_desc(0x1000);
  t.ap_table = 1;
  lim.add(t);
  p = leaf_perms(rw_all, lim);
  EXPECT_FALSE(p.user_read || p.user_write || p.user_exec);
  EXPECT_TRUE(p.kernel_write);
  EXPECT_TRUE(p.kernel_exec);  // not EL0-writable any more, so PXN is not implied
  t.ap_table = 2;
  t.pxn_table = true;
  lim.add(t);
  p = leaf_perms(rw_all, lim);
  EXPECT_FALSE(p.kernel_write || p.kernel_exec);
  EXPECT_TRUE(p.kernel_read);
}

TEST(Aarch64Desc, TtbrSelectionAndIndices) {
  EXPECT_EQ(ttbr_for(0x0000FFFFFFFFFFFFull), 0);
  EXPECT_EQ(ttbr_for(0xFFFF000000000000ull), 1);
  EXPECT_EQ(ttbr_for(0xFFFF800000000000ull), 1);
  EXPECT_EQ(ttbr_for(0x0001000000000000ull), -1);
  EXPECT_EQ(ttbr_for(0x0080000000000000ull), -1);  // bit 55 alone, with 63:56 clear
  EXPECT_EQ(ttbr_for(0xFF7F000000000000ull), -1);
  // 0xFFFF800012345678: VA[47:39] = 0x100, VA[38:30] = 0, VA[29:21] = 0x91, VA[20:12] = 0x145.
  const std::uint64_t va = 0xFFFF800012345678ull;
  EXPECT_EQ(index(va, 0), 0x100u);
  EXPECT_EQ(index(va, 1), 0u);
  EXPECT_EQ(index(va, 2), 0x91u);
  EXPECT_EQ(index(va, 3), 0x145u);
  // The seed's 0x403012: L2 index 2, L3 index 3, offset 0x012.
  EXPECT_EQ(index(0x403012u, 2), 2u);
  EXPECT_EQ(index(0x403012u, 3), 3u);
  EXPECT_EQ(level_size(1), 1ull << 30);
  EXPECT_EQ(level_size(2), 2ull << 20);
}

TEST(Aarch64Desc, DescribePrintsFields) {
  StackText<256> t;
  describe(2, 0x0060000040000701ull, t);
  EXPECT_STREQ(t.data(),
               "block 2M OA 0x000040000000 AttrIndx=0 (normal) AP=00 (EL1 RW, EL0 none) "
               "SH=11 (inner) AF=1 nG=0 PXN=1 UXN=1");
  t.clear();
  describe(0, 0x3000000812345003ull, t);
  EXPECT_STREQ(t.data(), "table at 0x000812345000 APTable=01 UXNTable=1");
  t.clear();
  describe(3, 0x0060000000403F41ull, t);
  EXPECT_STREQ(t.data(), "reserved (level 3 bits[1:0] == 01)");
  t.clear();
  describe(1, 0u, t);
  EXPECT_STREQ(t.data(), "invalid");
}

}  // namespace
}  // namespace kmm::vm::aarch64

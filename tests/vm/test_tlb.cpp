// Tests of the TLB model (src/vm/tlb.h): geometry, hits and misses, LRU and seeded random
// replacement, ASIDs and global entries, the four flushes, mixed page sizes, counters and the
// stats printer. check_invariants() runs after every step that changes the TLB.
#include "vm/tlb.h"

#include <gtest/gtest.h>

#include <cstring>

namespace kmm::vm {
namespace {

TlbEntry page(std::uint64_t va, phys_addr_t pa, std::uint16_t asid = 0, bool global = true, std::uint8_t shift = 12) {
  TlbEntry e;
  e.va = va;
  e.pa = pa;
  e.asid = asid;
  e.global = global;
  e.size_shift = shift;
  e.perms.kernel_read = e.perms.kernel_write = true;
  return e;
}

TlbConfig cfg(unsigned entries, unsigned ways, TlbReplacement r = TlbReplacement::kLru, std::uint64_t seed = 1) {
  TlbConfig c;
  c.entries = entries;
  c.ways = ways;
  c.replacement = r;
  c.seed = seed;
  return c;
}

TEST(Tlb, ConfigureValidatesGeometry) {
  Tlb t;
  EXPECT_EQ(t.config().entries, 64u);
  EXPECT_EQ(t.sets(), 1u);
  EXPECT_TRUE(t.configure(cfg(128, 4)));
  EXPECT_EQ(t.sets(), 32u);
  EXPECT_EQ(t.ways(), 4u);
  EXPECT_TRUE(t.configure(cfg(32, 32)));
  EXPECT_EQ(t.sets(), 1u);
  EXPECT_FALSE(t.configure(cfg(0, 0)));
  EXPECT_FALSE(t.configure(cfg(Tlb::kMaxEntries + 1, 0)));
  EXPECT_FALSE(t.configure(cfg(64, 5)));  // 5 does not divide 64
  EXPECT_FALSE(t.configure(cfg(96, 2)));  // 48 sets: not a power of two
  EXPECT_EQ(t.config().entries, 32u);     // a refused configuration changes nothing
  EXPECT_TRUE(t.check_invariants());
}

TEST(Tlb, HitMissAndTranslate) {
  Tlb t;
  EXPECT_EQ(t.lookup(0x403012, 1), nullptr);
  t.count_walk();
  ASSERT_TRUE(t.insert(page(0x403000, 0x82000)));
  EXPECT_TRUE(t.check_invariants());
  const TlbEntry* e = t.lookup(0x403012, 1);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->translate(0x403012), 0x82012u);
  EXPECT_EQ(t.lookup(0x404000, 1), nullptr);
  EXPECT_EQ(t.stats().lookups, 3u);
  EXPECT_EQ(t.stats().hits, 1u);
  EXPECT_EQ(t.stats().misses, 2u);
  EXPECT_EQ(t.stats().walks, 1u);
  EXPECT_EQ(t.stats().fills, 1u);
  // Unaligned VA/PA are aligned down to the entry size.
  ASSERT_TRUE(t.insert(page(0x405678, 0x90123)));
  e = t.probe(0x405000, 0);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->va, 0x405000u);
  EXPECT_EQ(e->pa, 0x90000u);
  EXPECT_FALSE(t.insert(page(0, 0, 0, true, 11)));  // below 4 KB
  EXPECT_FALSE(t.insert(page(0, 0, 0, true, 41)));
}

TEST(Tlb, LruEvictsLeastRecentlyUsedFullyAssociative) {
  Tlb t;
  ASSERT_TRUE(t.configure(cfg(4, 0)));
  for (std::uint64_t k = 0; k < 4; ++k) ASSERT_TRUE(t.insert(page(k << 12, k << 12)));
  // Touch pages 0, 2, 3: page 1 is now least recently used.
  ASSERT_NE(t.lookup(0x0000, 0), nullptr);
  ASSERT_NE(t.lookup(0x2000, 0), nullptr);
  ASSERT_NE(t.lookup(0x3000, 0), nullptr);
  ASSERT_TRUE(t.insert(page(0x4000, 0x4000)));
  EXPECT_EQ(t.stats().evictions, 1u);
  EXPECT_EQ(t.probe(0x1000, 0), nullptr);
  EXPECT_NE(t.probe(0x0000, 0), nullptr);
  EXPECT_NE(t.probe(0x4000, 0), nullptr);
  EXPECT_EQ(t.valid_entries(), 4u);
  EXPECT_TRUE(t.check_invariants());
}

TEST(Tlb, SetAssociativeIndexingAndConflicts) {
  Tlb t;
  ASSERT_TRUE(t.configure(cfg(8, 2)));  // 4 sets of 2 ways
  // Pages 0, 4, 8 all index set 0 (VPN % 4 == 0): the third evicts the LRU of the set,
  // while set 1 stays untouched.
  ASSERT_TRUE(t.insert(page(0x1000, 0x1000)));  // set 1
  ASSERT_TRUE(t.insert(page(0x0000, 0xA000)));
  ASSERT_TRUE(t.insert(page(0x4000, 0xB000)));
  ASSERT_NE(t.lookup(0x0000, 0), nullptr);  // 0x4000 becomes LRU in set 0
  ASSERT_TRUE(t.insert(page(0x8000, 0xC000)));
  EXPECT_EQ(t.probe(0x4000, 0), nullptr);
  EXPECT_NE(t.probe(0x0000, 0), nullptr);
  EXPECT_NE(t.probe(0x8000, 0), nullptr);
  EXPECT_NE(t.probe(0x1000, 0), nullptr);
  EXPECT_EQ(t.valid_entries(), 3u);
  EXPECT_TRUE(t.check_invariants());
}

TEST(Tlb, RandomReplacementIsDeterministicForASeed) {
  auto run = [](std::uint64_t seed, std::uint64_t* survivors) {
    Tlb t;
    EXPECT_TRUE(t.configure(cfg(16, 0, TlbReplacement::kRandom, seed)));
    for (std::uint64_t k = 0; k < 64; ++k) EXPECT_TRUE(t.insert(page(k << 12, k << 12)));
    *survivors = 0;
    for (std::uint64_t k = 0; k < 64; ++k) {
      if (t.probe(k << 12, 0) != nullptr) *survivors |= std::uint64_t{1} << k;
    }
    EXPECT_EQ(t.valid_entries(), 16u);
    EXPECT_EQ(t.stats().evictions, 48u);
    EXPECT_TRUE(t.check_invariants());
  };
  std::uint64_t a = 0, b = 0, c = 0;
  run(42, &a);
  run(42, &b);
  run(7, &c);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);  // a different seed picks different victims
  EXPECT_EQ(__builtin_popcountll(a), 16);
}

TEST(Tlb, AsidsAndGlobalEntries) {
  Tlb t;
  ASSERT_TRUE(t.insert(page(0x10000, 0x1000, /*asid=*/1, /*global=*/false)));
  ASSERT_TRUE(t.insert(page(0x10000, 0x2000, /*asid=*/2, /*global=*/false)));
  ASSERT_TRUE(t.insert(page(0xC0000000, 0x0, /*asid=*/0, /*global=*/true)));
  EXPECT_TRUE(t.check_invariants());
  ASSERT_NE(t.lookup(0x10004, 1), nullptr);
  EXPECT_EQ(t.lookup(0x10004, 1)->translate(0x10004), 0x1004u);
  EXPECT_EQ(t.lookup(0x10004, 2)->translate(0x10004), 0x2004u);
  EXPECT_EQ(t.lookup(0x10004, 3), nullptr);
  // A global entry matches every ASID.
  EXPECT_NE(t.lookup(0xC0000123, 1), nullptr);
  EXPECT_NE(t.lookup(0xC0000123, 99), nullptr);
  // Inserting over an existing translation in the same context replaces it.
  ASSERT_TRUE(t.insert(page(0x10000, 0x3000, 1, false)));
  EXPECT_EQ(t.lookup(0x10000, 1)->pa, 0x3000u);
  EXPECT_EQ(t.lookup(0x10000, 2)->pa, 0x2000u);
  EXPECT_EQ(t.valid_entries(), 3u);
  // A global entry over them drops both ASID-tagged ones.
  ASSERT_TRUE(t.insert(page(0x10000, 0x4000, 0, true)));
  EXPECT_EQ(t.valid_entries(), 2u);
  EXPECT_EQ(t.lookup(0x10000, 2)->pa, 0x4000u);
  EXPECT_TRUE(t.check_invariants());
}

TEST(Tlb, Flushes) {
  Tlb t;
  ASSERT_TRUE(t.insert(page(0x1000, 0x1000, 1, false)));
  ASSERT_TRUE(t.insert(page(0x2000, 0x2000, 1, false)));
  ASSERT_TRUE(t.insert(page(0x1000, 0x5000, 2, false)));
  ASSERT_TRUE(t.insert(page(0xC0000000, 0, 0, true)));
  EXPECT_EQ(t.flush_asid(1), 2u);  // global entries survive an ASID flush
  EXPECT_EQ(t.probe(0x2000, 1), nullptr);
  EXPECT_NE(t.probe(0x1000, 2), nullptr);
  EXPECT_NE(t.probe(0xC0000000, 1), nullptr);
  EXPECT_TRUE(t.check_invariants());

  // By VA + ASID: the ASID's entry and any global entry covering the VA go.
  ASSERT_TRUE(t.insert(page(0x1000, 0x6000, 3, false)));
  EXPECT_EQ(t.flush_va(0x1234, 3), 1u);
  EXPECT_NE(t.probe(0x1000, 2), nullptr);
  EXPECT_EQ(t.flush_va(0xC0000FFF, 7), 1u);
  EXPECT_EQ(t.probe(0xC0000000, 0), nullptr);

  // By VA, all ASIDs.
  ASSERT_TRUE(t.insert(page(0x1000, 0x7000, 4, false)));
  EXPECT_EQ(t.flush_va_all_asids(0x1000), 2u);
  EXPECT_EQ(t.valid_entries(), 0u);

  ASSERT_TRUE(t.insert(page(0x1000, 0x7000, 4, false)));
  ASSERT_TRUE(t.insert(page(0x9000, 0x7000, 4, true)));
  EXPECT_EQ(t.flush_all(), 2u);
  EXPECT_EQ(t.valid_entries(), 0u);
  EXPECT_EQ(t.stats().flushes, 5u);
  EXPECT_EQ(t.stats().flushed_entries, 8u);
  EXPECT_TRUE(t.check_invariants());
}

TEST(Tlb, MixedPageSizes) {
  Tlb t;
  ASSERT_TRUE(t.configure(cfg(16, 4)));                              // 4 sets: each size is indexed by its own VPN
  ASSERT_TRUE(t.insert(page(0xC0000000, 0x80000000, 0, true, 20)));  // 1 MB section
  ASSERT_TRUE(t.insert(page(0x40000000, 0x40000000, 0, true, 21)));  // 2 MB block
  ASSERT_TRUE(t.insert(page(0x00410000, 0x00120000, 0, true, 16)));  // 64 KB large page
  ASSERT_TRUE(t.insert(page(0x00403000, 0x00082000, 0, true, 12)));  // 4 KB page
  EXPECT_TRUE(t.check_invariants());
  const TlbEntry* e = t.lookup(0xC00FFFFF, 0);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->translate(0xC00FFFFF), 0x800FFFFFu);
  EXPECT_EQ(t.lookup(0x401FFFFF, 0)->translate(0x401FFFFF), 0x401FFFFFu);
  EXPECT_EQ(t.lookup(0x0041ABCD, 0)->translate(0x0041ABCD), 0x0012ABCDu);
  EXPECT_EQ(t.lookup(0x00403012, 0)->translate(0x00403012), 0x00082012u);
  EXPECT_EQ(t.lookup(0xC0100000, 0), nullptr);
  // A 4 KB entry inside the section's range replaces the section (no two candidates).
  ASSERT_TRUE(t.insert(page(0xC0005000, 0x90005000, 0, true, 12)));
  EXPECT_EQ(t.probe(0xC0000000, 0), nullptr);
  EXPECT_TRUE(t.check_invariants());
  // 1 GB entries too, in the AArch64 top half of the address space.
  ASSERT_TRUE(t.insert(page(0xFFFF800040000000ull, 0x40000000, 0, true, 30)));
  EXPECT_EQ(t.lookup(0xFFFF80007FFFFFFFull, 0)->translate(0xFFFF80007FFFFFFFull), 0x7FFFFFFFu);
}

TEST(Tlb, ManyRandomOperationsKeepInvariants) {
  for (unsigned ways : {0u, 1u, 2u, 8u}) {
    for (TlbReplacement r : {TlbReplacement::kLru, TlbReplacement::kRandom}) {
      Tlb t;
      ASSERT_TRUE(t.configure(cfg(32, ways, r, 3)));
      std::uint64_t x = 12345;
      for (int k = 0; k < 5000; ++k) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        const std::uint64_t va = (x >> 20) & 0xFFFFF000ull;
        const auto asid = static_cast<std::uint16_t>((x >> 8) & 3);
        const std::uint8_t shifts[] = {12, 12, 12, 16, 20, 21};
        const std::uint8_t shift = shifts[(x >> 4) % 6];
        switch (x % 7) {
          case 0:
            t.flush_asid(asid);
            break;
          case 1:
            t.flush_va(va, asid);
            break;
          case 2:
          case 3:
            (void)t.lookup(va, asid);
            break;
          default:
            ASSERT_TRUE(t.insert(page(va, va, asid, (x & 0x100) != 0, shift)));
            break;
        }
        ASSERT_TRUE(t.check_invariants()) << "step " << k;
        // Whatever lookup finds must really cover the address in that context.
        const TlbEntry* e = t.probe(va, asid);
        if (e != nullptr) {
          ASSERT_TRUE(e->covers(va));
          ASSERT_TRUE(e->global || e->asid == asid);
        }
      }
      EXPECT_EQ(t.stats().hits + t.stats().misses, t.stats().lookups);
    }
  }
}

TEST(Tlb, PrintStatsAndEntries) {
  Tlb t;
  ASSERT_TRUE(t.configure(cfg(64, 4)));
  ASSERT_TRUE(t.insert(page(0x403000, 0x82000, 5, false)));
  (void)t.lookup(0x403012, 5);
  (void)t.lookup(0x403FFF, 5);
  (void)t.lookup(0x500000, 5);
  t.count_walk();
  StackText<1024> out;
  t.print_stats(out);
  EXPECT_NE(std::strstr(out.data(), "TLB: 64 entries, 4-way set associative (16 sets), LRU"), nullptr) << out.data();
  EXPECT_NE(std::strstr(out.data(), "(66.6%)"), nullptr) << out.data();
  EXPECT_NE(std::strstr(out.data(), "walks"), nullptr);
  out.clear();
  t.print_entries(out);
  EXPECT_NE(std::strstr(out.data(), "0x0000000000403000 0x0000000000082000 4K        5 rw-/---"), nullptr)
      << out.data();
}

}  // namespace
}  // namespace kmm::vm

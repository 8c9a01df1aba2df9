// tests/page/test_buddy.cpp — BuddyZone on 16 MiB and on odd zones (not a multiple of 4 MiB,
// nonzero start): initial free lists worked out by hand, alloc/free of every order, split and
// merge back, random sequences, exhaustion, watermarks, alloc_pages_exact, and Linux's
// fragmentation / unusable indices against values computed by hand from mm/vmstat.c.
// check_invariants() runs after every step.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <random>
#include <vector>

#include "../common/machine_fixture.h"
#include "base/bits.h"

namespace kmm {
namespace {

using Machine = test::PageMachine;
using test::MachineOptions;
using Counts = std::array<std::uint64_t, kNrOrders>;

Counts counts(const BuddyZone& z) {
  Counts c{};
  z.snapshot(c.data());
  for (unsigned k = 0; k < kNrOrders; ++k) EXPECT_EQ(c[k], z.nr_free(k));
  return c;
}

::testing::AssertionResult zone_ok(const BuddyZone& z) {
  StackText<256> why;
  if (z.check_invariants(&why)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << why.data();
}

MachineOptions pages_only(std::size_t ram, phys_addr_t off = 0, std::uint64_t wm = test::kWatermarksOff) {
  MachineOptions o;
  o.ram = ram;
  o.phys_offset = off;
  o.min_free_kbytes = wm;
  o.slab = false;
  return o;
}

// Every order-k block's index relative to the zone start is a multiple of 2^k.
// Index of a frame from the start of RAM: buddy blocks are aligned to their size there
// (so that they are aligned in host addresses too), not from the zone's first frame.
pfn_t zindex(const BuddyZone& z, const Page* p) {
  return z.phys()->page_to_pfn(p) - z.phys()->base_pfn();
}

TEST(Buddy, SixteenMegInitialLists) {
  Machine m(pages_only(16u << 20));
  ASSERT_TRUE(m.ok());
  // 4096 frames; mem_map = 4096 * 32 B = 32 frames; the zone holds 4064 = 3*1024 + 512 + 256
  // + 128 + 64 + 32.
  EXPECT_EQ(m.zone.start_pfn(), 32u);
  EXPECT_EQ(m.zone.end_pfn(), 4096u);
  EXPECT_EQ(m.zone.managed_pages(), 4064u);
  EXPECT_EQ(m.zone.free_pages(), 4064u);
  Counts want{0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 3};
  EXPECT_EQ(counts(m.zone), want);
  EXPECT_EQ(m.zone.largest_free_block(), 1024u);
  EXPECT_TRUE(zone_ok(m.zone));
}

TEST(Buddy, OddZoneInitialLists) {
  // 5 MiB + 12 KiB at physical 0x80000000: 1283 frames, mem_map 41056 B = 11 frames, zone of
  // 1272 frames [11, 1283) counted from the start of RAM, cut into blocks aligned there:
  // 11 (o0), 12 (o2), 16 (o4), 32 (o5), 64 (o6), 128 (o7), 256 (o8), 512 (o9), 1024 (o8),
  // 1280 (o1), 1282 (o0).
  Machine m(pages_only((5u << 20) + 12 * 1024, 0x80000000));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m.phys.nr_pages(), 1283u);
  EXPECT_EQ(m.zone.start_pfn(), 0x80000u + 11);
  EXPECT_EQ(m.zone.managed_pages(), 1272u);
  Counts want{2, 1, 1, 0, 1, 1, 1, 1, 2, 1, 0};
  EXPECT_EQ(counts(m.zone), want);
  EXPECT_TRUE(zone_ok(m.zone));
}

void every_order_round_trip(BuddyZone& z, unsigned max_order = kMaxOrder) {
  const Counts start = counts(z);
  const std::uint64_t free0 = z.free_pages();
  for (unsigned order = 0; order <= max_order; ++order) {
    SCOPED_TRACE(order);
    Page* p = z.alloc_pages(order);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(zone_ok(z));
    EXPECT_EQ(z.free_pages(), free0 - (std::uint64_t{1} << order));
    EXPECT_EQ(zindex(z, p) % (pfn_t{1} << order), 0u) << "block aligned to its size";
    EXPECT_EQ(p->refcount, 1u);
    EXPECT_FALSE(p->is(PG_buddy));
    EXPECT_GE(z.phys()->page_to_pfn(p), z.start_pfn());
    EXPECT_LE(z.phys()->page_to_pfn(p) + (pfn_t{1} << order), z.end_pfn());
    // The memory is usable over the whole block.
    std::memset(z.phys()->page_address(p), 0x6B, kPageSize << order);
    z.free_pages(p, order);
    EXPECT_TRUE(zone_ok(z));
    EXPECT_EQ(z.free_pages(), free0);
    EXPECT_EQ(counts(z), start) << "merged back to the original lists";
  }
}

TEST(Buddy, EveryOrderSixteenMeg) {
  Machine m(pages_only(16u << 20));
  ASSERT_TRUE(m.ok());
  every_order_round_trip(m.zone);
}

TEST(Buddy, EveryOrderOddZone) {
  Machine m(pages_only((5u << 20) + 12 * 1024, 0x80000000));
  ASSERT_TRUE(m.ok());
  // No aligned order-10 block fits in 1283 frames counted from the start of RAM.
  EXPECT_EQ(m.zone.alloc_pages(kMaxOrder), nullptr);
  every_order_round_trip(m.zone, kMaxOrder - 1);
}

TEST(Buddy, ZoneWithOddStartInsideRam) {
  // A zone that starts 3 frames after the first free frame and stops 5 before the end.
  MachineOptions o = pages_only(8u << 20, 0x2000000);
  o.zone = false;  // this test's zone is the only one on the machine
  Machine m(o);
  ASSERT_TRUE(m.ok());
  BuddyZone z;
  pfn_t start = m.phys.first_free_pfn() + 3;
  pfn_t end = m.phys.end_pfn() - 5;
  z.init(&m.phys, start, end, test::kWatermarksOff);
  EXPECT_EQ(z.managed_pages(), std::uint64_t{end - start});
  EXPECT_EQ(z.free_pages(), std::uint64_t{end - start});
  // Frames [19, 2043) of RAM (2048 - 16 of mem_map - 3, and - 5), in blocks aligned from the
  // start of RAM: 19 o0, 20 o2, 24 o3, 32 o5, 64 o6, 128 o7, 256 o8, 512 o9, 1024 o9,
  // 1536 o8, 1792 o7, 1920 o6, 1984 o5, 2016 o4, 2032 o3, 2040 o1, 2042 o0 = 2024 frames.
  Counts want{2, 1, 1, 2, 1, 2, 2, 2, 2, 2, 0};
  EXPECT_EQ(counts(z), want);
  EXPECT_TRUE(zone_ok(z));
  every_order_round_trip(z, kMaxOrder - 1);
}

TEST(Buddy, SplitAndMergeByHand) {
  Machine m(pages_only(16u << 20));
  ASSERT_TRUE(m.ok());
  BuddyZone& z = m.zone;
  const Counts start = counts(z);
  // The smallest free block is the order-5 one at frame 32 (right after mem_map's 32 frames):
  // an order-0 request
  // splits it into one free block each of orders 4, 3, 2, 1, 0.
  Page* a = z.alloc_pages(0);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(zindex(z, a), 32u);
  EXPECT_TRUE(zone_ok(z));
  Counts after_a{1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 3};
  EXPECT_EQ(counts(z), after_a);
  // The next order-0 request takes the order-0 buddy, leaving that list empty.
  Page* b = z.alloc_pages(0);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(zindex(z, b), 33u);
  Counts after_b{0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 3};
  EXPECT_EQ(counts(z), after_b);
  EXPECT_TRUE(zone_ok(z));
  // An order-1 request takes the free order-1 block (34).
  Page* c = z.alloc_pages(1);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(zindex(z, c), 34u);
  EXPECT_TRUE(zone_ok(z));
  // Free a: no merge (b is allocated).
  z.free_pages(a, 0);
  Counts after_free_a{1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 3};
  EXPECT_EQ(counts(z), after_free_a);
  EXPECT_TRUE(zone_ok(z));
  // Free b: a+b merge to order 1, but its buddy c is allocated.
  z.free_pages(b, 0);
  Counts after_free_b{0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 3};
  EXPECT_EQ(counts(z), after_free_b);
  EXPECT_TRUE(zone_ok(z));
  // Free c: everything cascades back into the order-5 block.
  z.free_pages(c, 1);
  EXPECT_EQ(counts(z), start);
  EXPECT_TRUE(zone_ok(z));
  const Page* head = m.phys.pfn_to_page(m.phys.base_pfn() + 32);
  EXPECT_TRUE(head->is(PG_buddy));
  EXPECT_EQ(head->order, 5u);
  EXPECT_FALSE(m.phys.pfn_to_page(m.phys.base_pfn() + 34)->is(PG_buddy)) << "no stale head inside a merged block";
}

TEST(Buddy, RandomSequencesKeepInvariants) {
  for (std::uint32_t seed : {1u, 42u, 2024u}) {
    SCOPED_TRACE(seed);
    Machine m(pages_only((6u << 20) + 20 * 1024, 0x10000000));
    ASSERT_TRUE(m.ok());
    BuddyZone& z = m.zone;
    const Counts start = counts(z);
    std::mt19937 gen(seed);
    auto rng = [&gen] { return static_cast<unsigned>(gen()); };
    struct Block {
      Page* p;
      unsigned order;
      unsigned char tag;
    };
    std::vector<Block> live;
    std::uint64_t held = 0;
    for (int step = 0; step < 3000; ++step) {
      bool do_alloc = live.empty() || rng() % 100 < 55;
      if (do_alloc) {
        unsigned order = rng() % 100 < 70 ? rng() % 3 : rng() % (kMaxOrder + 1);
        Page* p = z.alloc_pages(order);
        if (p == nullptr) {
          EXPECT_LT(z.largest_free_block(), std::uint64_t{1} << order) << "failed although a block was free";
        } else {
          auto tag = static_cast<unsigned char>(rng());
          std::memset(m.phys.page_address(p), tag, kPageSize << order);
          live.push_back({p, order, tag});
          held += std::uint64_t{1} << order;
        }
      } else {
        std::size_t i = rng() % live.size();
        Block b = live[i];
        live[i] = live.back();
        live.pop_back();
        const auto* mem = static_cast<const unsigned char*>(m.phys.page_address(b.p));
        ASSERT_EQ(mem[0], b.tag);
        ASSERT_EQ(mem[(kPageSize << b.order) - 1], b.tag) << "another block overlapped this one";
        z.free_pages(b.p, b.order);
        held -= std::uint64_t{1} << b.order;
      }
      ASSERT_TRUE(zone_ok(z)) << "step " << step;
      ASSERT_EQ(z.free_pages() + held, z.managed_pages());
    }
    for (const Block& b : live) z.free_pages(b.p, b.order);
    EXPECT_TRUE(zone_ok(z));
    EXPECT_EQ(counts(z), start);
  }
}

TEST(Buddy, ExhaustionReturnsNullAndZoneStaysUsable) {
  Machine m(pages_only(4u << 20, 0x1000));
  ASSERT_TRUE(m.ok());
  BuddyZone& z = m.zone;
  const Counts start = counts(z);
  std::vector<Page*> pages;
  while (Page* p = z.alloc_pages(0)) pages.push_back(p);
  EXPECT_EQ(pages.size(), z.managed_pages());
  EXPECT_EQ(z.free_pages(), 0u);
  EXPECT_EQ(z.largest_free_block(), 0u);
  EXPECT_TRUE(zone_ok(z));
  std::uint64_t fails = z.alloc_failures();
  EXPECT_EQ(z.alloc_pages(0), nullptr);
  EXPECT_EQ(z.alloc_pages(3), nullptr);
  EXPECT_EQ(z.alloc_pages(0, __GFP_NOWMARK | __GFP_HIGH), nullptr);
  EXPECT_EQ(z.alloc_pages_exact(1), nullptr);
  EXPECT_EQ(z.alloc_failures(), fails + 4);
  EXPECT_EQ(z.alloc_pages(kMaxOrder + 1), nullptr) << "orders above 10 never succeed";
  // Give one back: it is served again.
  Page* back = pages.back();
  pages.pop_back();
  z.free_pages(back, 0);
  Page* again = z.alloc_pages(0);
  EXPECT_EQ(again, back);
  pages.push_back(again);
  for (Page* p : pages) z.free_pages(p, 0);
  EXPECT_TRUE(zone_ok(z));
  EXPECT_EQ(counts(z), start);
  EXPECT_NE(z.alloc_pages(9), nullptr) << "1016 frames: the largest block is order 9";
}

TEST(Buddy, LinuxDefaultWatermarks) {
  Machine m(pages_only(16u << 20, 0, test::kWatermarksLinux));
  ASSERT_TRUE(m.ok());
  BuddyZone& z = m.zone;
  // managed 4064 pages = 16256 kB; min_free_kbytes = sqrt(16256 * 16) = 509 kB = 127 pages;
  // low = min + min/4, high = min + min/2.
  EXPECT_EQ(z.watermarks().min, 127u);
  EXPECT_EQ(z.watermarks().low, 158u);
  EXPECT_EQ(z.watermarks().high, 190u);
  std::vector<Page*> pages;
  while (Page* p = z.alloc_pages(0, GFP_KERNEL)) pages.push_back(p);
  EXPECT_EQ(z.free_pages(), 127u) << "GFP_KERNEL stops at the min watermark";
  EXPECT_EQ(pages.size(), 4064u - 127u);
  EXPECT_EQ(z.alloc_pages(0, GFP_KERNEL), nullptr);
  // __GFP_HIGH may use half the reserve.
  std::size_t high = 0;
  while (Page* p = z.alloc_pages(0, __GFP_HIGH)) {
    pages.push_back(p);
    ++high;
  }
  EXPECT_EQ(high, 64u);
  EXPECT_EQ(z.free_pages(), 63u);
  // __GFP_NOWMARK ignores it.
  std::size_t nowmark = 0;
  while (Page* p = z.alloc_pages(0, __GFP_NOWMARK)) {
    pages.push_back(p);
    ++nowmark;
  }
  EXPECT_EQ(nowmark, 63u);
  EXPECT_EQ(z.free_pages(), 0u);
  EXPECT_TRUE(zone_ok(z));
  for (Page* p : pages) z.free_pages(p, 0);
  EXPECT_EQ(z.free_pages(), 4064u);
  EXPECT_TRUE(zone_ok(z));
}

TEST(Buddy, ExplicitMinFreeAndOrderAwareCheck) {
  Machine m(pages_only(16u << 20, 0, 400));  // 400 kB = 100 pages
  ASSERT_TRUE(m.ok());
  BuddyZone& z = m.zone;
  EXPECT_EQ(z.watermarks().min, 100u);
  EXPECT_EQ(z.watermarks().low, 125u);
  EXPECT_EQ(z.watermarks().high, 150u);
  std::vector<Page*> pages;
  // Bring free down to exactly 100 + 8.
  while (z.free_pages() > 108) pages.push_back(z.alloc_pages(0, __GFP_NOWMARK));
  EXPECT_EQ(z.free_pages(), 108u);
  Page* big = z.alloc_pages(4);  // 16 pages would leave 92 < 100
  EXPECT_EQ(big, nullptr);
  Page* ok = z.alloc_pages(3);  // 8 pages leave exactly 100
  EXPECT_NE(ok, nullptr);
  EXPECT_EQ(z.free_pages(), 100u);
  Page* atomic = z.alloc_pages(4, GFP_ATOMIC);  // reserve halves to 50
  EXPECT_NE(atomic, nullptr);
  z.free_pages(atomic, 4);
  z.free_pages(ok, 3);
  for (Page* p : pages) z.free_pages(p, 0);
  EXPECT_TRUE(zone_ok(z));
  EXPECT_EQ(z.free_pages(), z.managed_pages());
}

TEST(Buddy, WatermarkNeverReservesMoreThanAQuarter) {
  // 1 MiB machine: Linux's floor of 128 kB = 32 pages, but a quarter of 254 pages is 63: 32.
  Machine small(pages_only(1u << 20, 0, test::kWatermarksLinux));
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small.zone.managed_pages(), 254u);
  EXPECT_EQ(small.zone.watermarks().min, 32u);
  // 256 kB machine (64 frames, 63 managed): 32 pages would be half of it; capped at 15.
  Machine tiny(pages_only(256u << 10, 0, test::kWatermarksLinux));
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny.zone.managed_pages(), 63u);
  EXPECT_EQ(tiny.zone.watermarks().min, 15u);
}

TEST(Buddy, AllocPagesExact) {
  Machine m(pages_only(16u << 20));
  ASSERT_TRUE(m.ok());
  BuddyZone& z = m.zone;
  const Counts start = counts(z);
  // 130 KiB = 33 pages (the seed's kmalloc2 program): an order-6 block, 31 frames returned.
  std::uint64_t count = pages_for(130 * 1024);
  ASSERT_EQ(count, 33u);
  Page* p = z.alloc_pages_exact(count);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(zone_ok(z));
  EXPECT_EQ(z.free_pages(), 4064u - 33u);
  // The order-6 block at frame 64: frames 97.. go back as orders 0,1,2,3,4.
  EXPECT_EQ(zindex(z, p), 64u);
  Counts want{1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 3};
  EXPECT_EQ(counts(z), want);
  std::memset(m.phys.page_address(p), 0x11, static_cast<std::size_t>(count * kPageSize));
  // An order-0 request now takes the freed frame right after the 33.
  Page* next = z.alloc_pages(0);
  EXPECT_EQ(zindex(z, next), 64u + 33u);
  z.free_pages(next, 0);
  z.free_pages_exact(p, count);
  EXPECT_TRUE(zone_ok(z));
  EXPECT_EQ(counts(z), start);
  // Zeroing, and the edge cases.
  Page* zp = z.alloc_pages_exact(3, __GFP_ZERO);
  ASSERT_NE(zp, nullptr);
  const auto* bytes = static_cast<const unsigned char*>(m.phys.page_address(zp));
  for (std::size_t i = 0; i < 3 * kPageSize; ++i) ASSERT_EQ(bytes[i], 0);
  z.free_pages_exact(zp, 3);
  EXPECT_EQ(z.alloc_pages_exact(0), nullptr);
  EXPECT_EQ(z.alloc_pages_exact(1025), nullptr) << "more than an order-10 block";
  // Counts whose bytes pass 2^64 (count << 12 wrapped: 2^52 + 1 frames read as 1).
  for (std::uint64_t huge : {(std::uint64_t{1} << 52) + 1, std::uint64_t{1} << 52, ~std::uint64_t{0}})
    EXPECT_EQ(z.alloc_pages_exact(huge), nullptr) << huge;
  EXPECT_EQ(counts(z), start);
  Page* whole = z.alloc_pages_exact(1024);
  ASSERT_NE(whole, nullptr);
  z.free_pages_exact(whole, 1024);
  EXPECT_TRUE(zone_ok(z));
  EXPECT_EQ(counts(z), start);
}

// take_free_range (krealloc growing a page run in place): a range inside one free block, and
// one across blocks, leaves the lists with the rest of each block given back; a range with an
// allocated frame in it, or past the zone, is refused with nothing changed; freed with
// free_pages_exact, everything merges back.
TEST(Buddy, TakeFreeRange) {
  Machine m(pages_only(16u << 20));
  ASSERT_TRUE(m.ok());
  BuddyZone& z = m.zone;
  const Counts start = counts(z);
  const std::uint64_t free0 = z.free_pages();
  Page* p = z.alloc_pages_exact(33);  // frames 64 .. 96 (as in AllocPagesExact)
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(zindex(z, p), 64u);
  const pfn_t end = z.phys()->page_to_pfn(p) + 33;
  // Inside the freed tail and beyond it: frames 97 .. 139 (orders 0..4 there, then 128's block).
  ASSERT_TRUE(z.take_free_range(end, 43, GFP_KERNEL));
  EXPECT_TRUE(zone_ok(z));
  EXPECT_EQ(z.free_pages(), free0 - 33 - 43);
  for (pfn_t f = end; f < end + 43; ++f) EXPECT_FALSE(z.frame_is_free(f)) << f;
  EXPECT_TRUE(z.frame_is_free(end + 43));
  // Refused, nothing changed: an allocated frame inside, a range past the zone, none at all.
  const Counts mid = counts(z);
  EXPECT_FALSE(z.take_free_range(end - 1, 2, GFP_KERNEL));
  EXPECT_FALSE(z.take_free_range(end + 40, 8, GFP_KERNEL));
  EXPECT_FALSE(z.take_free_range(z.end_pfn() - 1, 2, GFP_KERNEL));
  EXPECT_FALSE(z.take_free_range(end + 43, 0, GFP_KERNEL));
  EXPECT_EQ(counts(z), mid);
  EXPECT_TRUE(zone_ok(z));
  // The run, grown, goes back whole.
  z.free_pages_exact(p, 33 + 43);
  EXPECT_TRUE(zone_ok(z));
  EXPECT_EQ(counts(z), start);
  EXPECT_EQ(z.free_pages(), free0);
}

// take_free_frames (realloc's headroom): as many free frames as follow, between least and
// most; fewer free than least is refused with nothing changed.
TEST(Buddy, TakeFreeFramesTakesWhatFollowsUpToMost) {
  Machine m(pages_only(16u << 20));
  ASSERT_TRUE(m.ok());
  BuddyZone& z = m.zone;
  const Counts start = counts(z);
  const std::uint64_t free0 = z.free_pages();
  Page* p = z.alloc_pages_exact(33);  // frames 64 .. 96
  ASSERT_NE(p, nullptr);
  const pfn_t end = z.phys()->page_to_pfn(p) + 33;
  // A wall eight frames after the run: frame end + 8 taken alone.
  const std::uint64_t gap = 8;
  const pfn_t wall_pfn = end + gap;
  ASSERT_TRUE(z.take_free_range(wall_pfn, 1, GFP_KERNEL));
  Page* wall = z.phys()->pfn_to_page(wall_pfn);
  // Up to most when most are free.
  EXPECT_EQ(z.take_free_frames(end, 1, 3, GFP_KERNEL), 3u);
  for (pfn_t f = end; f < end + 3; ++f) EXPECT_FALSE(z.frame_is_free(f)) << f;
  EXPECT_TRUE(z.frame_is_free(end + 3));
  // Up to the wall when it comes first; refused when fewer than least are free.
  const Counts before = counts(z);
  EXPECT_EQ(z.take_free_frames(end + 3, gap - 3 + 1, gap + 10, GFP_KERNEL), 0u) << "least reaches the wall";
  EXPECT_EQ(z.take_free_frames(wall_pfn, 1, 1, GFP_KERNEL), 0u) << "an allocated frame";
  EXPECT_EQ(counts(z), before);
  EXPECT_EQ(z.take_free_frames(end + 3, 1, gap + 10, GFP_KERNEL), gap - 3);
  EXPECT_TRUE(zone_ok(z));
  EXPECT_EQ(z.free_pages(), free0 - 33 - gap - 1);
  // The run, grown to the wall, goes back whole.
  z.free_pages_exact(p, 33 + gap);
  z.free_pages_exact(wall, 1);
  EXPECT_TRUE(zone_ok(z));
  EXPECT_EQ(counts(z), start);
  EXPECT_EQ(z.free_pages(), free0);
}

// take_free_frames under Linux's watermarks: when taking up to `most` would go below the min
// watermark, it takes `least` if that alone does not; when even least would, nothing.
TEST(Buddy, TakeFreeFramesGivesUpTheHeadroomBeforeTheWatermark) {
  Machine m(pages_only(16u << 20, 0, test::kWatermarksLinux));
  ASSERT_TRUE(m.ok());
  BuddyZone& z = m.zone;
  ASSERT_EQ(z.watermarks().min, 127u);
  Page* p = z.alloc_pages_exact(33);
  ASSERT_NE(p, nullptr);
  const pfn_t end = z.phys()->page_to_pfn(p) + 33;
  // The 31 frames after the run set aside, every other frame taken, then 98 of them back:
  // with the 31 back too, 129 frames are free, 2 above the watermark.
  ASSERT_TRUE(z.take_free_range(end, 31, __GFP_NOWMARK));
  std::vector<Page*> taken;
  while (Page* q = z.alloc_pages(0, __GFP_NOWMARK)) taken.push_back(q);
  ASSERT_GE(taken.size(), 98u);
  for (std::size_t i = 0; i < 98; ++i) z.free_pages(taken[i], 0);
  z.free_pages_exact(z.phys()->pfn_to_page(end), 31);
  ASSERT_EQ(z.free_pages(), 129u);
  const Counts before = counts(z);
  EXPECT_EQ(z.take_free_frames(end, 3, 31, GFP_KERNEL), 0u) << "least itself goes below the watermark";
  EXPECT_EQ(counts(z), before);
  EXPECT_EQ(z.take_free_frames(end, 1, 31, GFP_KERNEL), 1u) << "the headroom given up, least taken";
  EXPECT_EQ(z.free_pages(), 128u);
  EXPECT_EQ(z.take_free_frames(end + 1, 1, 30, __GFP_NOWMARK), 30u) << "no watermark: all the room";
  EXPECT_TRUE(zone_ok(z));
  z.free_pages_exact(p, 33 + 31);
  for (std::size_t i = 98; i < taken.size(); ++i) z.free_pages(taken[i], 0);
  EXPECT_EQ(z.free_pages(), z.managed_pages());
  EXPECT_TRUE(zone_ok(z));
}

TEST(Buddy, AllocZeroes) {
  Machine m(pages_only(2u << 20));
  ASSERT_TRUE(m.ok());
  Page* p = m.zone.alloc_pages(2);
  std::memset(m.phys.page_address(p), 0xFF, 4 * kPageSize);
  m.zone.free_pages(p, 2);
  Page* q = m.zone.alloc_pages(2, __GFP_ZERO);
  ASSERT_EQ(q, p) << "the same block comes back first";
  const auto* bytes = static_cast<const unsigned char*>(m.phys.page_address(q));
  for (std::size_t i = 0; i < 4 * kPageSize; ++i) ASSERT_EQ(bytes[i], 0);
  m.zone.free_pages(q, 2);
}

// set_reported_reads_zero (the preload's zone): fresh frames start reported (not resident,
// reading as zero), and __GFP_ZERO skips the clear of a reported block: calloc of fresh or
// purged frames touches none of them. The frames here are filled with 0xAA first, against the
// contract, so that a skipped clear shows; a block freed after use is dirty and is cleared.
TEST(Buddy, AZoneThatKnowsFreshFramesReadZeroSkipsTheirClear) {
  Machine m(pages_only(2u << 20));
  ASSERT_TRUE(m.ok());
  Page* chunk = m.zone.alloc_pages(4);
  ASSERT_NE(chunk, nullptr);
  pfn_t start = m.phys.page_to_pfn(chunk);
  std::memset(m.phys.page_address(chunk), 0xAA, 16 * kPageSize);
  BuddyZone z;
  z.set_reported_reads_zero(true);
  z.init(&m.phys, start, start + 16, test::kWatermarksOff);
  EXPECT_EQ(z.reported_pages(), 16u) << "fresh frames: not resident";
  EXPECT_TRUE(zone_ok(z));
  Page* p = z.alloc_pages(2, __GFP_ZERO);
  ASSERT_NE(p, nullptr);
  const auto* bytes = static_cast<const unsigned char*>(m.phys.page_address(p));
  EXPECT_EQ(bytes[0], 0xAA) << "a reported block is not cleared again";
  EXPECT_EQ(z.reported_pages(), 12u);
  std::memset(m.phys.page_address(p), 0xFF, 4 * kPageSize);  // the caller used it
  z.free_pages(p, 2);
  EXPECT_TRUE(zone_ok(z));
  Page* q = z.alloc_pages_exact(3, __GFP_ZERO);  // the dirty block comes first (the head)
  ASSERT_EQ(q, p);
  for (std::size_t i = 0; i < 3 * kPageSize; ++i) ASSERT_EQ(bytes[i], 0) << "a dirty block is cleared";
  z.free_pages_exact(q, 3);
  EXPECT_TRUE(zone_ok(z));

  BuddyZone plain;  // a modelled machine's zone: reported means purged only, and every clear runs
  std::memset(m.phys.page_address(chunk), 0xAA, 16 * kPageSize);
  plain.init(&m.phys, start, start + 16, test::kWatermarksOff);
  EXPECT_EQ(plain.reported_pages(), 0u);
  Page* r = plain.alloc_pages(2, __GFP_ZERO);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(static_cast<const unsigned char*>(m.phys.page_address(r))[0], 0);
}

// A 16-frame zone on a bigger machine, for fragmentation states small enough to work by hand.
class SmallZone : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(m.ok());
    // 16 frames taken from the machine's zone become a zone of their own.
    Page* chunk = m.zone.alloc_pages(4);
    ASSERT_NE(chunk, nullptr);
    start = m.phys.page_to_pfn(chunk);
    z.init(&m.phys, start, start + 16, test::kWatermarksOff);
    ASSERT_EQ(z.nr_free(4), 1u);
    for (unsigned i = 0; i < 16; ++i) {
      pages[i] = z.alloc_pages(0);
      ASSERT_EQ(m.phys.page_to_pfn(pages[i]) - start, pfn_t{i}) << "splits hand out the lowest frame first";
    }
    ASSERT_EQ(z.free_pages(), 0u);
  }
  void free_page(unsigned i) {
    z.free_pages(pages[i], 0);
    ASSERT_TRUE(zone_ok(z));
  }
  Machine m{pages_only(1u << 20)};
  BuddyZone z;
  pfn_t start = 0;
  Page* pages[16] = {};
};

TEST_F(SmallZone, IndicesWithNoFreeMemory) {
  // No free blocks: fragmentation index 0 (failure is for lack of memory); unusable index
  // 1000 ("no free memory is interpreted as all free memory is unusable", mm/vmstat.c).
  for (unsigned order = 0; order <= kMaxOrder; ++order) {
    EXPECT_EQ(z.fragmentation_index(order), 0) << order;
    EXPECT_EQ(z.unusable_index(order), 1000) << order;
  }
  EXPECT_EQ(z.largest_free_block(), 0u);
}

TEST_F(SmallZone, IndicesWithEveryOtherPageFree) {
  for (unsigned i = 0; i < 16; i += 2) free_page(i);
  EXPECT_EQ(z.nr_free(0), 8u);
  EXPECT_EQ(z.free_pages(), 8u);
  EXPECT_EQ(z.largest_free_block(), 1u);
  // free_pages 8, free_blocks_total 8, suitable 0 for order >= 1:
  // index = 1000 - (1000 + 8 * 1000 / 2^order) / 8
  EXPECT_EQ(z.fragmentation_index(0), -1000);
  EXPECT_EQ(z.fragmentation_index(1), 375);  // 1000 - 5000/8
  EXPECT_EQ(z.fragmentation_index(2), 625);  // 1000 - 3000/8
  EXPECT_EQ(z.fragmentation_index(3), 750);  // 1000 - 2000/8
  EXPECT_EQ(z.fragmentation_index(4), 813);  // 1000 - 1500/8 (187)
  EXPECT_EQ(z.unusable_index(0), 0);
  EXPECT_EQ(z.unusable_index(1), 1000);
  EXPECT_EQ(z.unusable_index(4), 1000);
}

TEST_F(SmallZone, IndicesWithMixedBlocks) {
  for (unsigned i : {0u, 1u, 2u, 3u, 5u, 7u}) free_page(i);
  // Free: one order-2 block (0..3) and order-0 blocks 5 and 7: 6 pages in 3 blocks.
  EXPECT_EQ(z.nr_free(2), 1u);
  EXPECT_EQ(z.nr_free(0), 2u);
  EXPECT_EQ(z.largest_free_block(), 4u);
  EXPECT_EQ(z.fragmentation_index(0), -1000);
  EXPECT_EQ(z.fragmentation_index(1), -1000);
  EXPECT_EQ(z.fragmentation_index(2), -1000);
  EXPECT_EQ(z.fragmentation_index(3), 417);  // 1000 - (1000 + 6000/8) / 3 = 1000 - 583
  EXPECT_EQ(z.fragmentation_index(4), 542);  // 1000 - (1000 + 6000/16) / 3 = 1000 - 458
  EXPECT_EQ(z.unusable_index(0), 0);
  EXPECT_EQ(z.unusable_index(1), 333);  // (6 - 2*2) * 1000 / 6
  EXPECT_EQ(z.unusable_index(2), 333);  // (6 - 1*4) * 1000 / 6
  EXPECT_EQ(z.unusable_index(3), 1000);
  // Freeing the rest merges everything into one order-4 block.
  for (unsigned i : {4u, 6u, 8u, 9u, 10u, 11u, 12u, 13u, 14u, 15u}) free_page(i);
  EXPECT_EQ(z.nr_free(4), 1u);
  EXPECT_EQ(z.free_pages(), 16u);
  EXPECT_EQ(z.largest_free_block(), 16u);
  EXPECT_EQ(z.fragmentation_index(4), -1000);
  EXPECT_EQ(z.unusable_index(4), 0);
  // No order-5 block can ever exist in 16 frames: 1000 - (1000 + 16000/32) / 1 = -500.
  EXPECT_EQ(z.fragmentation_index(5), -500);
  EXPECT_EQ(z.unusable_index(5), 1000);
}

}  // namespace
}  // namespace kmm

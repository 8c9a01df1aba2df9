// tests/page/test_range.cpp — RangeAllocator (uClinux page_alloc2 style): exact page counts,
// first fit from either end by the placement rule, merging with both neighbours on free,
// boundary tags in mem_map, buddyinfo-style free_blocks, watermarks, and a random sequence
// checked against a shadow bitmap. check_invariants() runs after every step.
#include <gtest/gtest.h>

#include <array>
#include <random>
#include <vector>

#include "../common/machine_fixture.h"
#include "page/range.h"

namespace kmm {
namespace {

using test::MachineOptions;

MachineOptions phys_only(std::size_t ram) {
  MachineOptions o;
  o.ram = ram;
  o.zone = false;
  o.slab = false;
  return o;
}

struct RangeMachine {
  explicit RangeMachine(std::size_t ram, RangePlacement rule = RangePlacement::kBottomUp, std::uint64_t small = 1,
                        std::uint64_t wm = test::kWatermarksOff)
      : m(phys_only(ram)) {
    if (m.ok()) r.init(&m.phys, m.phys.first_free_pfn(), m.phys.end_pfn(), wm, rule, small);
  }
  pfn_t pfn(const Page* p) const { return m.phys.page_to_pfn(p); }
  ::testing::AssertionResult ok() const {
    StackText<512> why;
    if (r.check_invariants(&why)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << why.data();
  }
  test::PageMachine m;
  RangeAllocator r;
};

TEST(Range, InitIsOneRun) {
  RangeMachine t(4u << 20);  // 1024 frames, mem_map 32 KiB = 8 frames
  ASSERT_TRUE(t.m.ok());
  EXPECT_EQ(t.r.start_pfn(), 8u);
  EXPECT_EQ(t.r.managed_pages(), 1016u);
  EXPECT_EQ(t.r.free_pages(), 1016u);
  EXPECT_EQ(t.r.largest_free_block(), 1016u);
  EXPECT_EQ(t.r.nr_runs(), 1u);
  EXPECT_STREQ(t.r.name(), "range");
  EXPECT_TRUE(t.ok());
  // buddyinfo view of [8, 1024) relative to 8: 1016 = 512+256+128+64+32+16+8.
  std::array<std::uint64_t, kNrOrders> nr{};
  t.r.free_blocks(nr.data());
  std::array<std::uint64_t, kNrOrders> want{0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0};
  EXPECT_EQ(nr, want);
}

TEST(Range, ExactCountsBottomUpFirstFit) {
  RangeMachine t(4u << 20);
  pfn_t base = t.r.start_pfn();
  Page* a = t.r.alloc_pages_exact(33);  // 33 pages, not 64
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(t.pfn(a), base);
  EXPECT_EQ(t.r.free_pages(), 1016u - 33);
  EXPECT_EQ(a->refcount, 1u);
  EXPECT_EQ(a->flags, 0u);
  EXPECT_TRUE(t.ok());
  Page* b = t.r.alloc_pages_exact(3);
  EXPECT_EQ(t.pfn(b), base + 33);
  Page* c = t.r.alloc_pages(2);  // 4 frames, any alignment
  EXPECT_EQ(t.pfn(c), base + 36);
  EXPECT_TRUE(t.ok());
  EXPECT_FALSE(t.r.frame_is_free(base + 39));
  EXPECT_TRUE(t.r.frame_is_free(base + 40));
  // A hole of 3 at base+33: a 3-page request fills it exactly (first fit), a 4 goes on.
  t.r.free_pages_exact(b, 3);
  EXPECT_TRUE(t.ok());
  EXPECT_EQ(t.r.nr_runs(), 2u);
  Page* d = t.r.alloc_pages_exact(4);
  EXPECT_EQ(t.pfn(d), base + 40);
  Page* e = t.r.alloc_pages_exact(3);
  EXPECT_EQ(t.pfn(e), base + 33);
  EXPECT_EQ(t.r.nr_runs(), 1u);
  EXPECT_TRUE(t.ok());
  t.r.free_pages_exact(a, 33);
  t.r.free_pages_exact(e, 3);
  t.r.free_pages(c, 2);
  t.r.free_pages_exact(d, 4);
  EXPECT_TRUE(t.ok());
  EXPECT_EQ(t.r.nr_runs(), 1u);
  EXPECT_EQ(t.r.free_pages(), 1016u);
}

TEST(Range, MergeLeftRightBothNone) {
  RangeMachine t(4u << 20);
  Page* p[5];
  for (auto& x : p) x = t.r.alloc_pages_exact(10);
  // Runs: used 0..49, free 50.. .
  t.r.free_pages_exact(p[1], 10);  // no free neighbour: a new run
  EXPECT_EQ(t.r.nr_runs(), 2u);
  EXPECT_TRUE(t.ok());
  t.r.free_pages_exact(p[2], 10);  // merges left
  EXPECT_EQ(t.r.nr_runs(), 2u);
  EXPECT_TRUE(t.ok());
  t.r.free_pages_exact(p[4], 10);  // merges right (with the tail run)
  EXPECT_EQ(t.r.nr_runs(), 2u);
  EXPECT_TRUE(t.ok());
  t.r.free_pages_exact(p[3], 10);  // merges both
  EXPECT_EQ(t.r.nr_runs(), 1u);
  EXPECT_TRUE(t.ok());
  EXPECT_EQ(t.r.largest_free_block(), 1016u - 10);
  t.r.free_pages_exact(p[0], 10);
  EXPECT_TRUE(t.ok());
  EXPECT_EQ(t.r.largest_free_block(), 1016u);
}

TEST(Range, OneFrameRunsAreHeadAndTail) {
  RangeMachine t(1u << 20);
  std::vector<Page*> v;
  for (int i = 0; i < 9; ++i) v.push_back(t.r.alloc_pages(0));
  for (int i = 0; i < 9; i += 2) t.r.free_pages(v[static_cast<std::size_t>(i)], 0);
  EXPECT_TRUE(t.ok());
  EXPECT_EQ(t.r.nr_runs(), 5u);  // 4 single frames and the rest (frame 8 merged with the tail)
  for (int i = 1; i < 9; i += 2) {
    t.r.free_pages(v[static_cast<std::size_t>(i)], 0);
    EXPECT_TRUE(t.ok());
  }
  EXPECT_EQ(t.r.nr_runs(), 1u);
}

TEST(Range, SeedRuleSmallFromTheTop) {
  RangeMachine t(4u << 20, RangePlacement::kSmallTopDown, 1);
  Page* small = t.r.alloc_pages(0);
  EXPECT_EQ(t.pfn(small), t.r.end_pfn() - 1);
  Page* big = t.r.alloc_pages_exact(2);
  EXPECT_EQ(t.pfn(big), t.r.start_pfn());
  Page* small2 = t.r.alloc_pages(0);
  EXPECT_EQ(t.pfn(small2), t.r.end_pfn() - 2);
  EXPECT_TRUE(t.r.top_down(1));
  EXPECT_FALSE(t.r.top_down(2));
  EXPECT_TRUE(t.ok());
  t.r.set_small_pages(4);
  Page* four = t.r.alloc_pages_exact(4);
  EXPECT_EQ(t.pfn(four), t.r.end_pfn() - 6);
  EXPECT_TRUE(t.ok());
}

TEST(Range, SourceRuleSmallFromTheBottom) {
  RangeMachine t(4u << 20, RangePlacement::kSmallBottomUp, 2);
  Page* two = t.r.alloc_pages_exact(2);
  EXPECT_EQ(t.pfn(two), t.r.start_pfn());
  Page* three = t.r.alloc_pages_exact(3);
  EXPECT_EQ(t.pfn(three), t.r.end_pfn() - 3);
  Page* one = t.r.alloc_pages(0);
  EXPECT_EQ(t.pfn(one), t.r.start_pfn() + 2);
  EXPECT_TRUE(t.ok());
  // Top-down first fit takes the highest run that fits: free a hole of 3 low and one of 5 high.
  t.r.free_pages_exact(three, 3);
  EXPECT_TRUE(t.ok());
  EXPECT_EQ(t.r.nr_runs(), 1u);
}

TEST(Range, ExhaustionAndFailureCount) {
  RangeMachine t(1u << 20);  // 256 frames, 2 for mem_map
  EXPECT_EQ(t.r.alloc_pages_exact(255), nullptr);
  EXPECT_EQ(t.r.alloc_pages(kMaxOrder + 1), nullptr);
  EXPECT_EQ(t.r.alloc_failures(), 2u);
  Page* all = t.r.alloc_pages_exact(254);
  ASSERT_NE(all, nullptr);
  EXPECT_EQ(t.r.nr_runs(), 0u);
  EXPECT_EQ(t.r.largest_free_block(), 0u);
  EXPECT_EQ(t.r.alloc_pages(0), nullptr);
  EXPECT_TRUE(t.ok());
  t.r.free_pages_exact(all, 254);
  EXPECT_TRUE(t.ok());
  EXPECT_EQ(t.r.free_pages(), 254u);
}

TEST(Range, WatermarksAsBuddy) {
  RangeMachine t(16u << 20, RangePlacement::kBottomUp, 1, test::kWatermarksLinux);
  Watermarks w = t.r.watermarks();
  // 4064 frames = 16256 kB; sqrt(16 * 16256) = 510 kB -> 127 pages.
  EXPECT_EQ(w.min, 127u);
  EXPECT_EQ(w.low, 127u + 31);
  EXPECT_EQ(w.high, 127u + 63);
  EXPECT_EQ(t.r.alloc_pages_exact(4064 - 126), nullptr);
  EXPECT_NE(t.r.alloc_pages_exact(4064 - 127, __GFP_NOWMARK), nullptr);
  EXPECT_TRUE(t.ok());
}

TEST(Range, FragmentedFreeBlocksAndIndices) {
  RangeMachine t(1u << 20);
  // 254 frames from pfn 2. Allocate pairs, free every other pair: 2-frame holes.
  std::vector<Page*> v;
  for (int i = 0; i < 127; ++i) v.push_back(t.r.alloc_pages_exact(2));
  for (std::size_t i = 0; i < v.size(); i += 2) t.r.free_pages_exact(v[i], 2);
  EXPECT_TRUE(t.ok());
  EXPECT_EQ(t.r.free_pages(), 128u);
  EXPECT_EQ(t.r.largest_free_block(), 2u);
  std::array<std::uint64_t, kNrOrders> nr{};
  t.r.free_blocks(nr.data());
  EXPECT_EQ(nr[1], 64u);
  EXPECT_EQ(fragmentation_index(nr.data(), 2), 1000 - (1000 + 128 * 1000 / 4) / 64);
  EXPECT_EQ(unusable_index(nr.data(), 2), 1000);
  EXPECT_EQ(unusable_index(nr.data(), 1), 0);
}

TEST(Range, RandomAgainstShadow) {
  for (RangePlacement rule :
       {RangePlacement::kBottomUp, RangePlacement::kSmallTopDown, RangePlacement::kSmallBottomUp}) {
    RangeMachine t(2u << 20, rule, 2);
    std::mt19937 rng(42);
    std::vector<std::pair<Page*, std::uint64_t>> live;
    std::vector<bool> used(t.r.end_pfn(), false);
    for (int step = 0; step < 3000; ++step) {
      if (live.empty() || rng() % 3 != 0) {
        std::uint64_t n = 1 + rng() % (rng() % 4 == 0 ? 40 : 3);
        Page* p = t.r.alloc_pages_exact(n);
        if (p == nullptr) {
          EXPECT_LT(t.r.largest_free_block(), n);
          continue;
        }
        pfn_t f = t.pfn(p);
        bool top = t.r.top_down(n);
        (void)top;
        // size_t indices: vector<bool>::size_type is 32 bits on 32-bit ARM.
        for (std::size_t i = 0; i < n; ++i) {
          ASSERT_FALSE(used[f + i]);
          used[f + i] = true;
        }
        live.emplace_back(p, n);
      } else {
        std::size_t i = rng() % live.size();
        pfn_t f = t.pfn(live[i].first);
        for (std::size_t j = 0; j < live[i].second; ++j) used[f + j] = false;
        t.r.free_pages_exact(live[i].first, live[i].second);
        live[i] = live.back();
        live.pop_back();
      }
      ASSERT_TRUE(t.ok()) << "step " << step;
      if (step % 97 == 0) {
        for (pfn_t f = t.r.start_pfn(); f < t.r.end_pfn(); ++f) ASSERT_EQ(t.r.frame_is_free(f), !used[f]);
      }
    }
  }
}

}  // namespace
}  // namespace kmm

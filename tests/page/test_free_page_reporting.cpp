// tests/page/test_free_page_reporting.cpp — BuddyZone::report_free (Linux's free page
// reporting, page/buddy.h): which blocks are reported (age, order, budget), where reported
// blocks sit on the lists (the tail: allocation prefers resident frames), what splitting and
// merging do to the mark, a sink that refuses, and an allocation that meets a block isolated
// while the sink runs (it waits and succeeds instead of failing). check_invariants() — which
// checks the reported suffix of each list and the reported page count — runs after each step.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "../common/machine_fixture.h"

namespace kmm {
namespace {

using Machine = test::PageMachine;
using test::MachineOptions;

::testing::AssertionResult zone_ok(const BuddyZone& z) {
  StackText<256> why;
  if (z.check_invariants(&why)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << why.data();
}

MachineOptions pages_only(std::size_t ram) {
  MachineOptions o;
  o.ram = ram;
  o.min_free_kbytes = test::kWatermarksOff;
  o.slab = false;
  return o;
}

struct Recorder {
  std::vector<std::pair<void*, std::size_t>> calls;
  std::uint64_t bytes = 0;
  bool accept = true;
  static bool sink(void* arg, void* addr, std::size_t n) {
    auto* r = static_cast<Recorder*>(arg);
    r->calls.emplace_back(addr, n);
    if (r->accept) r->bytes += n;
    return r->accept;
  }
};

// 16 MiB: the zone is 4064 frames in blocks of orders 5..10 (test_buddy.cpp works them out).
TEST(FreePageReporting, OnlyBlocksFreeLongEnough) {
  Machine m(pages_only(16u << 20));
  ASSERT_TRUE(m.ok());
  Recorder r;
  // Every block was freed at clock 0; at 999 ms none is a second old.
  m.zone.set_clock_ms(999);
  EXPECT_EQ(m.zone.report_free(0, 1000, ~0ull, &Recorder::sink, &r), 0u);
  EXPECT_TRUE(r.calls.empty());
  m.zone.set_clock_ms(1000);
  EXPECT_EQ(m.zone.report_free(0, 1000, ~0ull, &Recorder::sink, &r), 4064u);
  EXPECT_EQ(r.bytes, 4064u * kPageSize);
  // Largest orders first: three order-10 blocks, then 9, 8, 7, 6, 5.
  ASSERT_EQ(r.calls.size(), 8u);
  EXPECT_EQ(r.calls[0].second, kPageSize << 10);
  EXPECT_EQ(r.calls[7].second, kPageSize << 5);
  EXPECT_EQ(m.zone.reported_pages(), 4064u);
  EXPECT_EQ(m.zone.reported_total(), 4064u);
  EXPECT_EQ(m.zone.free_pages(), 4064u);  // the model's free memory does not change
  EXPECT_TRUE(zone_ok(m.zone));
  // Nothing is reported twice.
  EXPECT_EQ(m.zone.report_free(0, 0, ~0ull, &Recorder::sink, &r), 0u);
  EXPECT_EQ(r.calls.size(), 8u);
}

TEST(FreePageReporting, MinOrderAndBudget) {
  Machine m(pages_only(16u << 20));
  ASSERT_TRUE(m.ok());
  Recorder r;
  // Orders >= 8 only: 3 * 1024 + 512 + 256.
  EXPECT_EQ(m.zone.report_free(8, 0, ~0ull, &Recorder::sink, &r), 3840u);
  EXPECT_TRUE(zone_ok(m.zone));
  // A budget of 100 pages still reports whole blocks: one of order 7 (128) and it stops.
  EXPECT_EQ(m.zone.report_free(0, 0, 100, &Recorder::sink, &r), 128u);
  EXPECT_EQ(m.zone.reported_pages(), 3968u);
  EXPECT_TRUE(zone_ok(m.zone));
}

TEST(FreePageReporting, AllocationPrefersResidentBlocks) {
  Machine m(pages_only(16u << 20));
  ASSERT_TRUE(m.ok());
  Page* a = m.zone.alloc_pages(10);
  ASSERT_NE(a, nullptr);
  Recorder r;
  ASSERT_EQ(m.zone.report_free(0, 0, ~0ull, &Recorder::sink, &r), 4064u - 1024u);
  // a comes back unreported: it goes to the head of list 10, before the two reported blocks.
  m.zone.free_pages(a, 10);
  EXPECT_TRUE(zone_ok(m.zone));
  EXPECT_FALSE(a->is(PG_reported));
  EXPECT_EQ(m.zone.alloc_pages(10), a);
  // The next order-10 request gets a reported block; its flags are clean once allocated.
  Page* b = m.zone.alloc_pages(10);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(b, a);
  EXPECT_EQ(b->get_flags(), 0u);
  EXPECT_EQ(m.zone.reported_pages(), 4064u - 2u * 1024u);  // a and b are out
  EXPECT_TRUE(zone_ok(m.zone));
}

TEST(FreePageReporting, SplitKeepsTheMarkMergeNeedsBothHalves) {
  Machine m(pages_only(16u << 20));
  ASSERT_TRUE(m.ok());
  Recorder r;
  ASSERT_EQ(m.zone.report_free(0, 0, ~0ull, &Recorder::sink, &r), 4064u);
  // An order-0 allocation splits the order-5 block: orders 0..4 halves stay reported.
  Page* p = m.zone.alloc_pages(0);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(m.zone.reported_pages(), 4063u);
  EXPECT_TRUE(zone_ok(m.zone));
  // Freed, p merges with its reported buddies; p itself was faulted in again, so the merged
  // block is not reported: the whole order-5 block (32 pages) is resident as far as the zone
  // knows and will be reported again.
  m.zone.free_pages(p, 0);
  EXPECT_EQ(m.zone.reported_pages(), 4064u - 32u);
  EXPECT_TRUE(zone_ok(m.zone));
  EXPECT_EQ(m.zone.report_free(0, 0, ~0ull, &Recorder::sink, &r), 32u);
  EXPECT_EQ(m.zone.reported_pages(), 4064u);
  // alloc_pages_exact of 3 pages from a reported block: the excess frame stays reported.
  Page* e = m.zone.alloc_pages_exact(3);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(m.zone.reported_pages(), 4061u);
  EXPECT_TRUE(zone_ok(m.zone));
  m.zone.free_pages_exact(e, 3);
  EXPECT_TRUE(zone_ok(m.zone));
}

TEST(FreePageReporting, RefusingSinkLeavesBlocksAsTheyWere) {
  Machine m(pages_only(16u << 20));
  ASSERT_TRUE(m.ok());
  Recorder r;
  r.accept = false;
  EXPECT_EQ(m.zone.report_free(0, 0, ~0ull, &Recorder::sink, &r), 0u);
  EXPECT_EQ(r.calls.size(), 1u);  // stops at the first refusal
  EXPECT_EQ(m.zone.reported_pages(), 0u);
  EXPECT_EQ(m.zone.free_pages(), 4064u);
  EXPECT_TRUE(zone_ok(m.zone));
  std::uint64_t before[kNrOrders], after[kNrOrders];
  m.zone.snapshot(before);
  r.accept = true;
  EXPECT_EQ(m.zone.report_free(0, 0, ~0ull, &Recorder::sink, &r), 4064u);
  m.zone.snapshot(after);
  for (unsigned k = 0; k < kNrOrders; ++k) EXPECT_EQ(before[k], after[k]) << "order " << k;
}

// The only free block large enough is isolated while the sink runs: an allocation on another
// thread must wait for it and succeed, not fail (nor call grow).
struct Gate {
  std::atomic<int> state{0};  // 1: sink entered; 2: allocator started waiting
  static bool sink(void* arg, void*, std::size_t) {
    auto* g = static_cast<Gate*>(arg);
    g->state.store(1);
    while (g->state.load() != 2) std::this_thread::yield();
    // Give the allocating thread time to find the list empty (it waits either way).
    for (int i = 0; i < 1000; ++i) std::this_thread::yield();
    return true;
  }
};

TEST(FreePageReporting, AllocationWaitsForAnIsolatedBlock) {
  Machine m(pages_only(16u << 20));
  ASSERT_TRUE(m.ok());
  // Take everything but one order-10 block.
  std::vector<Page*> held;
  for (;;) {
    Page* p = m.zone.alloc_pages(0);
    if (p == nullptr) break;
    held.push_back(p);
    if (m.zone.free_pages() == 1024u && m.zone.nr_free(10) == 1) break;
  }
  ASSERT_EQ(m.zone.free_pages(), 1024u);
  ASSERT_EQ(m.zone.nr_free(10), 1u);
  Gate g;
  std::thread reporter([&] { EXPECT_EQ(m.zone.report_free(10, 0, ~0ull, &Gate::sink, &g), 1024u); });
  while (g.state.load() != 1) std::this_thread::yield();
  EXPECT_EQ(m.zone.free_pages(), 0u);  // isolated
  g.state.store(2);
  Page* big = m.zone.alloc_pages(10);
  reporter.join();
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(m.zone.alloc_failures(), 0u);
  m.zone.free_pages(big, 10);
  for (Page* p : held) m.zone.free_pages(p, 0);
  EXPECT_EQ(m.zone.free_pages(), 4064u);
  EXPECT_TRUE(zone_ok(m.zone));
}

}  // namespace
}  // namespace kmm

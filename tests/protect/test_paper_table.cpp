// tests/protect/test_paper_table.cpp — the 2004 paper's fixed table: record/erase/collect,
// the 10,000-record limit (what does not fit goes untracked and is counted), and a Kernel
// booted with paper_table=true reclaiming a gone module's kmallocs as the paper did.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "../kernel/kernel_fixture.h"
#include "protect/paper_table.h"

namespace kmm {
namespace {

using test::boot_kernel;
using test::invariants;
using test::KernelPtr;
using test::kSecond;

const void* fake(std::uintptr_t i) {
  return reinterpret_cast<const void*>(0x10000 + i * 16);
}

class PaperTableTest : public ::testing::Test {
 protected:
  void SetUp() override { table.init(memory.data()); }
  std::vector<PaperRecord> memory = std::vector<PaperRecord>(PaperTable::kRecords);
  PaperTable table;
};

TEST_F(PaperTableTest, SizedAsInThePaper) {
  EXPECT_EQ(PaperTable::kRecords, 10000u);
  if (sizeof(void*) == 8) {
    EXPECT_EQ(sizeof(PaperRecord), 24u);
    EXPECT_EQ(PaperTable::bytes_needed(), 240000u);
  }
  EXPECT_EQ(table.in_use(), 0u);
  EXPECT_EQ(table.untracked(), 0u);
}

TEST_F(PaperTableTest, RecordEraseFirstFree) {
  ASSERT_TRUE(table.record(fake(1), 2, 100));
  ASSERT_TRUE(table.record(fake(2), 3, 200));
  ASSERT_TRUE(table.record(fake(3), 2, 300));
  EXPECT_EQ(table.in_use(), 3u);
  EXPECT_EQ(table.high_water(), 3u);
  EXPECT_TRUE(table.erase(fake(2)));
  EXPECT_FALSE(table.erase(fake(2))) << "no record any more";
  EXPECT_FALSE(table.erase(fake(99)));
  EXPECT_EQ(table.in_use(), 2u);
  // The freed record is reused first: the high-water mark stays.
  ASSERT_TRUE(table.record(fake(4), 4, 400));
  EXPECT_EQ(table.high_water(), 3u);
  EXPECT_EQ(memory[1].ptr, fake(4));
  EXPECT_EQ(memory[1].size, 400u);
}

TEST_F(PaperTableTest, CollectVisitsAndClearsDeadOwnersOnly) {
  for (std::uintptr_t i = 0; i < 30; ++i) ASSERT_TRUE(table.record(fake(i), static_cast<owner_t>(2 + i % 3), i));
  bool dead[kMaxOwners] = {};
  dead[3] = true;
  struct Seen {
    unsigned n = 0;
    std::uint64_t bytes = 0;
    bool wrong_owner = false;
  } seen;
  unsigned n = table.collect(
      dead,
      [](void* arg, const void*, std::size_t size, owner_t o) {
        auto* s = static_cast<Seen*>(arg);
        s->n++;
        s->bytes += size;
        if (o != 3) s->wrong_owner = true;
      },
      &seen);
  EXPECT_EQ(n, 10u);
  EXPECT_EQ(seen.n, 10u);
  EXPECT_FALSE(seen.wrong_owner);
  EXPECT_EQ(seen.bytes, 1u + 4 + 7 + 10 + 13 + 16 + 19 + 22 + 25 + 28);
  EXPECT_EQ(table.in_use(), 20u);
  EXPECT_FALSE(table.erase(fake(1))) << "collected records are gone";
  EXPECT_TRUE(table.erase(fake(0)));
  // A second collect finds nothing.
  EXPECT_EQ(table.collect(
                dead, [](void*, const void*, std::size_t, owner_t) { ADD_FAILURE(); }, nullptr),
            0u);
}

TEST_F(PaperTableTest, TenThousandRecordsThenUntracked) {
  for (std::uintptr_t i = 0; i < PaperTable::kRecords; ++i) ASSERT_TRUE(table.record(fake(i), 2, 8)) << i;
  EXPECT_EQ(table.in_use(), 10000u);
  EXPECT_FALSE(table.record(fake(10000), 2, 8));
  EXPECT_FALSE(table.record(fake(10001), 2, 8));
  EXPECT_EQ(table.untracked(), 2u);
  EXPECT_EQ(table.in_use(), 10000u);
  // Linear erase finds the last record too.
  EXPECT_TRUE(table.erase(fake(9999)));
  EXPECT_TRUE(table.record(fake(10002), 2, 8));
  EXPECT_EQ(table.untracked(), 2u);
}

KernelPtr boot_paper(std::uint64_t ram = std::uint64_t{16} << 20) {
  BootConfig cfg = test::small_config(ram);
  cfg.paper_table = true;
  cfg.protector = ProtectorMode::kReclaim;
  cfg.gc_delay_ns = 5 * kSecond;
  return boot_kernel(cfg);
}

TEST(PaperTableKernel, ReclaimsLikeThePaper) {
  KernelPtr k = boot_paper();
  ASSERT_TRUE(k);
  ASSERT_NE(k->paper_table(), nullptr);
  std::uint64_t before = k->zone().free_pages();
  owner_t m;
  ASSERT_EQ(k->insmod("m_test", 16384, &m), ModuleError::kOk);
  void* kernel_block = k->kmalloc(128, GFP_KERNEL, kOwnerKernel);
  std::uint64_t with_kernel_block = k->zone().free_pages();
  void* a = k->kmalloc(4096, GFP_KERNEL, m);
  void* b = k->kmalloc(4096, GFP_KERNEL, m);
  void* t = k->kmalloc(64 * 1024, GFP_KERNEL, m);
  void* n = k->kmalloc(128, GFP_KERNEL, m);
  void* freed = k->kmalloc(200, GFP_KERNEL, m);
  ASSERT_TRUE(a && b && t && n && freed && kernel_block);
  EXPECT_EQ(k->paper_table()->in_use(), 5u) << "kernel blocks are not recorded";
  ASSERT_TRUE(k->kfree(freed, m));
  EXPECT_EQ(k->paper_table()->in_use(), 4u) << "kfree erases the record";
  ASSERT_EQ(k->rmmod("m_test"), ModuleError::kOk);
  k->idle(4 * kSecond);
  EXPECT_EQ(k->owner_of(a), m) << "before gc_delay";
  k->idle(kSecond);
  EXPECT_EQ(k->paper_table()->in_use(), 0u);
  EXPECT_EQ(k->owner_of(a), kOwnerFree);
  EXPECT_EQ(k->owner_of(t), kOwnerFree);
  EXPECT_EQ(k->owner_of(kernel_block), kOwnerKernel);
  EXPECT_EQ(k->zone().free_pages(), with_kernel_block);
  EXPECT_EQ(k->modules().nr_gone(), 0u);
  EXPECT_TRUE(invariants(*k));
  ASSERT_TRUE(k->kfree(kernel_block));
  EXPECT_EQ(k->zone().free_pages(), before);
}

TEST(PaperTableKernel, OnlyReclaimModeFreesAndEveryPassIsCounted) {
  // report frees nothing; reclaim-unreachable frees nothing either (the paper's table has
  // no reachability scan: a block still referenced would be freed); reclaim frees. Every
  // pass is counted as the collector's own are (gc.passes, leaks.*, reclaimed.*).
  KernelPtr k = boot_paper();
  ASSERT_TRUE(k);
  k->set_protector(ProtectorMode::kReport);
  owner_t m;
  ASSERT_EQ(k->insmod("m_kept", 16384, &m), ModuleError::kOk);
  void* a = k->kmalloc(100, GFP_KERNEL, m);
  ASSERT_NE(a, nullptr);
  const std::uint64_t fp = k->footprint(a);
  ASSERT_EQ(k->rmmod("m_kept"), ModuleError::kOk);
  k->idle(5 * kSecond);
  EXPECT_EQ(k->owner_of(a), m) << "report freed it";
  EXPECT_EQ(k->collector().stats().passes, 1u);
  EXPECT_EQ(k->collector().stats().leak_objects, 1u);
  EXPECT_EQ(k->collector().stats().leak_bytes, fp);
  k->set_protector(ProtectorMode::kReclaimUnreachable);
  k->idle(5 * kSecond);
  EXPECT_EQ(k->owner_of(a), m) << "reclaim-unreachable freed it without a scan";
  EXPECT_EQ(k->collector().stats().passes, 2u);
  EXPECT_EQ(k->paper_table()->in_use(), 1u);
  k->set_protector(ProtectorMode::kReclaim);
  k->idle(5 * kSecond);
  EXPECT_EQ(k->owner_of(a), kOwnerFree);
  EXPECT_EQ(k->collector().stats().passes, 3u);
  EXPECT_EQ(k->collector().stats().leak_objects, 0u);
  EXPECT_EQ(k->collector().stats().reclaimed_objects, 1u);
  EXPECT_EQ(k->collector().stats().reclaimed_bytes, fp);
  EXPECT_EQ(k->modules().nr_gone(), 0u);
  EXPECT_TRUE(invariants(*k));
}

TEST(PaperTableKernel, AllocPagesBlocksAreReclaimedToo) {
  KernelPtr k = boot_paper();
  ASSERT_TRUE(k);
  std::uint64_t before = k->zone().free_pages();
  owner_t m;
  ASSERT_EQ(k->insmod("m_pages", 16384, &m), ModuleError::kOk);
  void* p = k->alloc_pages(3, GFP_KERNEL, m);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(k->paper_table()->in_use(), 1u);
  ASSERT_EQ(k->rmmod("m_pages"), ModuleError::kOk);
  k->idle(5 * kSecond);
  EXPECT_EQ(k->paper_table()->in_use(), 0u);
  EXPECT_EQ(k->zone().free_pages(), before);
  EXPECT_TRUE(invariants(*k));
}

TEST(PaperTableKernel, RateLimitedByGcDelayAfterEveryPass) {
  KernelPtr k = boot_paper();
  ASSERT_TRUE(k);
  owner_t m;
  ASSERT_EQ(k->insmod("m1", 16384, &m), ModuleError::kOk);
  void* a = k->kmalloc(100, GFP_KERNEL, m);
  ASSERT_EQ(k->rmmod("m1"), ModuleError::kOk);
  k->idle(5 * kSecond);  // t = 5s: the first pass
  EXPECT_EQ(k->owner_of(a), kOwnerFree);
  ASSERT_EQ(k->insmod("m2", 16384, &m), ModuleError::kOk);
  void* b = k->kmalloc(100, GFP_KERNEL, m);
  ASSERT_EQ(k->rmmod("m2"), ModuleError::kOk);
  k->idle(kSecond);  // t = 6s: the paper walks the table only once gc_delay has passed again
  EXPECT_EQ(k->owner_of(b), m);
  k->idle(4 * kSecond);  // t = 10s
  EXPECT_EQ(k->owner_of(b), kOwnerFree);
}

TEST(PaperTableKernel, OverflowLeavesUntrackedLeakBehind) {
  KernelPtr k = boot_paper(std::uint64_t{64} << 20);
  ASSERT_TRUE(k);
  owner_t m;
  ASSERT_EQ(k->insmod("hog", 16384, &m), ModuleError::kOk);
  std::vector<void*> blocks;
  for (unsigned i = 0; i < PaperTable::kRecords + 10; ++i) {
    void* p = k->kmalloc(8, GFP_KERNEL, m);
    ASSERT_NE(p, nullptr);
    blocks.push_back(p);
  }
  EXPECT_EQ(k->paper_table()->in_use(), PaperTable::kRecords);
  EXPECT_EQ(k->paper_table()->untracked(), 10u);
  ASSERT_EQ(k->rmmod("hog"), ModuleError::kOk);
  k->idle(5 * kSecond);
  EXPECT_EQ(k->paper_table()->in_use(), 0u);
  // The ten the table never saw are still there: the paper's design cannot find them.
  std::vector<OwnerTally> t(kMaxOwners);
  k->usage(t.data());
  EXPECT_EQ(t[m].objects, 10u);
  for (unsigned i = 0; i < PaperTable::kRecords; ++i) ASSERT_EQ(k->owner_of(blocks[i]), kOwnerFree) << i;
  for (unsigned i = PaperTable::kRecords; i < blocks.size(); ++i) EXPECT_EQ(k->owner_of(blocks[i]), m);
  // The id still marks blocks: it must not be handed to a new module.
  owner_t again;
  ASSERT_EQ(k->insmod("innocent", 16384, &again), ModuleError::kOk);
  EXPECT_NE(again, m) << "a released owner id would charge the old leak to the new module";
  k->usage(t.data());
  EXPECT_EQ(t[again].objects, 0u);
  EXPECT_TRUE(invariants(*k));
}

}  // namespace
}  // namespace kmm

// Tests of vm/address_space.h: layout, mmap placement (top down, fixed, overlap), demand
// paging with zeroed frames, every protection fault, user access to kernel space, brk grow
// and shrink, munmap (whole, ends, middle), exit returning every frame and table, the ARMv7
// kernel-half copy following swapper's changes, AArch64's shared TTBR1, ASIDs in one TLB,
// and a random run under check_invariants().
#include "vm/address_space.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "buffer_frames.h"

namespace kmm::vm {
namespace {

using test::BufferFrames;

struct FakeAreas final : VmallocPages {
  std::map<std::uint64_t, phys_addr_t> pages;
  bool frame_at(std::uint64_t va, phys_addr_t* pa) const override {
    auto it = pages.find(va);
    if (it == pages.end()) return false;
    *pa = it->second;
    return true;
  }
  void for_each_page(PageFn fn, void* arg) const override {
    for (auto& [va, pa] : pages) fn(arg, va, pa);
  }
  std::uint64_t generation() const override {
    return pages.size() * 1000003 + (pages.empty() ? 0 : pages.begin()->first);
  }
};

struct Machine {
  explicit Machine(Format f) : tables(0x10000000, 256), data(0x20000000, 4096) {
    KernelSpaceConfig c;
    c.format = f;
    c.page_offset = f == Format::kArmv7Short ? 0xC0000000ull : kAarch64PageOffset;
    c.phys_offset = f == Format::kArmv7Short ? 0 : 0x40000000;
    c.ram_bytes = 64u << 20;
    c.vmalloc_start = c.page_offset + c.ram_bytes + (8u << 20);
    c.vmalloc_end = c.vmalloc_start + (64u << 20);
    EXPECT_EQ(ks.init(&tables, c), VmError::kOk);
  }
  ~Machine() { ks.destroy(); }
  BufferFrames tables;
  BufferFrames data;
  KernelSpace ks;
  Tlb tlb;
};

class AddressSpaceTest : public ::testing::TestWithParam<Format> {};

TEST_P(AddressSpaceTest, LayoutAndMaps) {
  Machine m(GetParam());
  AddressSpace as;
  ASSERT_EQ(as.init(&m.tables, &m.data, &m.ks, 5), MmError::kOk);
  const AddressLayout& l = as.layout();
  if (GetParam() == Format::kArmv7Short) {
    EXPECT_EQ(l.task_size, 0xBF000000u);
    EXPECT_EQ(as.table_frames(), 4u) << "a 16 KB first-level table";
  } else {
    EXPECT_EQ(l.task_size, std::uint64_t{1} << 48);
    EXPECT_EQ(as.table_frames(), 1u) << "TTBR0 root only: TTBR1 is the kernel's";
    EXPECT_EQ(as.pgd().root(1), m.ks.pgd().root(1));
  }
  ASSERT_EQ(as.nr_vmas(), 2u);
  EXPECT_EQ(as.vma(0).kind, VmaKind::kText);
  EXPECT_EQ(as.vma(1).kind, VmaKind::kStack);
  EXPECT_EQ(as.vma(1).end, l.task_size);
  std::uint64_t a1 = 0, a2 = 0;
  ASSERT_EQ(as.mmap(10000, kProtRead | kProtWrite, VmaKind::kAnon, 0, &a1), MmError::kOk);
  EXPECT_EQ(a1, l.mmap_base - 12288) << "top down from mmap_base, rounded to pages";
  ASSERT_EQ(as.mmap(4096, kProtRead, VmaKind::kAnon, 0, &a2), MmError::kOk);
  EXPECT_EQ(a2, a1 - 4096);
  std::uint64_t f = 0;
  EXPECT_EQ(as.mmap(4096, kProtRead, VmaKind::kAnon, a1, &f), MmError::kOverlap);
  EXPECT_EQ(as.mmap(4096, kProtRead, VmaKind::kAnon, 0x0, &f), MmError::kOk) << "0: the kernel picks";
  EXPECT_EQ(as.mmap(0, kProtRead, VmaKind::kAnon, 0, &f), MmError::kBadArgs);
  EXPECT_EQ(as.mmap(4096, kProtRead, VmaKind::kAnon, 0x1234, &f), MmError::kBadArgs);
  EXPECT_EQ(as.mmap(4096, kProtRead, VmaKind::kAnon, l.task_size, &f), MmError::kOutOfRange);
  EXPECT_TRUE(as.check_invariants(nullptr));
  as.destroy(&m.tlb);
  EXPECT_EQ(m.data.in_use(), 0u);
}

TEST_P(AddressSpaceTest, DemandPagingAndFaults) {
  Machine m(GetParam());
  AddressSpace as;
  ASSERT_EQ(as.init(&m.tables, &m.data, &m.ks, 7), MmError::kOk);
  const std::size_t tables0 = m.tables.in_use();
  std::uint64_t buf = 0, ro = 0;
  ASSERT_EQ(as.mmap(64 * 1024, kProtRead | kProtWrite, VmaKind::kAnon, 0x00400000, &buf), MmError::kOk);
  ASSERT_EQ(as.mmap(4096, kProtRead, VmaKind::kAnon, 0x00500000, &ro), MmError::kOk);
  EXPECT_EQ(as.data_frames(), 0u) << "a VMA is a promise";

  AccessResult r = as.access(0x00403012, AccessType::kWrite, Privilege::kUser, m.tlb);
  ASSERT_EQ(r.outcome, AccessOutcome::kDemandPaged);
  EXPECT_EQ(r.fault.fault, FaultKind::kTranslation);
  EXPECT_EQ(r.walk.pa, r.frame + 0x12);
  EXPECT_EQ(*m.data.host(r.frame + 0x12), 0) << "zeroed frame";
  EXPECT_EQ(as.data_frames(), 1u);
  EXPECT_EQ(as.faults(), 1u);
  r = as.access(0x00403ff0, AccessType::kRead, Privilege::kUser, m.tlb);
  EXPECT_EQ(r.outcome, AccessOutcome::kOk);
  EXPECT_TRUE(r.walk.tlb_hit);

  EXPECT_EQ(as.access(0x00403000, AccessType::kExec, Privilege::kUser, m.tlb).outcome, AccessOutcome::kSegvProt);
  EXPECT_EQ(as.access(ro, AccessType::kWrite, Privilege::kUser, m.tlb).outcome, AccessOutcome::kSegvProt);
  EXPECT_EQ(as.access(ro, AccessType::kRead, Privilege::kUser, m.tlb).outcome, AccessOutcome::kDemandPaged);
  EXPECT_EQ(as.access(ro, AccessType::kWrite, Privilege::kUser, m.tlb).outcome, AccessOutcome::kSegvProt);
  EXPECT_EQ(as.access(0x00600000, AccessType::kRead, Privilege::kUser, m.tlb).outcome, AccessOutcome::kSegvNoVma);
  EXPECT_EQ(as.access(0x10, AccessType::kRead, Privilege::kUser, m.tlb).outcome, AccessOutcome::kSegvNoVma) << "NULL";
  // Text is executable; the kernel may not execute it (PXN / implicit).
  EXPECT_EQ(as.access(as.layout().text_start, AccessType::kExec, Privilege::kUser, m.tlb).outcome,
            AccessOutcome::kDemandPaged);

  // User access to kernel space: the walk goes through the kernel half and faults.
  const std::uint64_t kva = m.ks.config().page_offset + 0x3012;
  r = as.access(kva, AccessType::kRead, Privilege::kUser, m.tlb);
  EXPECT_EQ(r.outcome, AccessOutcome::kFault);
  EXPECT_EQ(r.fault.fault, FaultKind::kPermission);
  EXPECT_STREQ(r.why, "user access to kernel space");
  r = as.access(kva, AccessType::kRead, Privilege::kKernel, m.tlb);
  EXPECT_EQ(r.outcome, AccessOutcome::kOk);
  EXPECT_EQ(r.walk.pa, m.ks.config().phys_offset + 0x3012);
  EXPECT_TRUE(as.check_invariants(nullptr));

  // Exit: every frame and table back, the ASID flushed.
  as.destroy(&m.tlb);
  EXPECT_EQ(m.data.in_use(), 0u);
  EXPECT_EQ(m.tables.in_use(), tables0 - (GetParam() == Format::kArmv7Short ? 4u : 1u));
  for (unsigned i = 0; i < 8; ++i) EXPECT_EQ(m.tlb.probe(0x00403000, 7), nullptr);
}

TEST_P(AddressSpaceTest, BrkAndMunmap) {
  Machine m(GetParam());
  AddressSpace as;
  ASSERT_EQ(as.init(&m.tables, &m.data, &m.ks, 1), MmError::kOk);
  const std::uint64_t b = as.brk_start();
  ASSERT_EQ(as.brk(b + 10000, &m.tlb), MmError::kOk);
  const Vma* heap = as.find_vma(b);
  ASSERT_NE(heap, nullptr);
  EXPECT_EQ(heap->kind, VmaKind::kHeap);
  EXPECT_EQ(heap->end, b + 12288);
  for (std::uint64_t x = b; x < b + 10000; x += 4096) as.access(x, AccessType::kWrite, Privilege::kUser, m.tlb);
  EXPECT_EQ(as.data_frames(), 3u);
  ASSERT_EQ(as.brk(b + 4096, &m.tlb), MmError::kOk);
  EXPECT_EQ(as.data_frames(), 1u);
  EXPECT_EQ(m.data.in_use(), 1u);
  EXPECT_EQ(as.access(b + 8192, AccessType::kRead, Privilege::kUser, m.tlb).outcome, AccessOutcome::kSegvNoVma)
      << "the TLB entry went with the page";
  ASSERT_EQ(as.brk(b, &m.tlb), MmError::kOk);
  EXPECT_EQ(as.find_vma(b), nullptr);
  EXPECT_EQ(as.brk(b - 1, &m.tlb), MmError::kOutOfRange);
  // A break within a page of 2^64 is out of range, not rounded up to 0 (which shrank the heap
  // to nothing and released everything below it, the text included).
  ASSERT_EQ(as.brk(b + 4096, &m.tlb), MmError::kOk);
  as.access(b, AccessType::kWrite, Privilege::kUser, m.tlb);
  const std::uint64_t frames = as.data_frames();
  EXPECT_EQ(as.brk(0xFFFFFFFFFFFFF001ull, &m.tlb), MmError::kOutOfRange);
  EXPECT_EQ(as.data_frames(), frames);
  EXPECT_TRUE(as.check_invariants(nullptr));
  ASSERT_EQ(as.brk(b, &m.tlb), MmError::kOk);

  std::uint64_t a = 0;
  ASSERT_EQ(as.mmap(5 * 4096, kProtRead | kProtWrite, VmaKind::kAnon, 0, &a), MmError::kOk);
  for (unsigned i = 0; i < 5; ++i) as.access(a + i * 4096, AccessType::kWrite, Privilege::kUser, m.tlb);
  ASSERT_EQ(as.munmap(a + 4096 * 2, 4096, &m.tlb), MmError::kOk) << "a hole in the middle";
  EXPECT_EQ(as.nr_vmas(), 4u);
  EXPECT_EQ(as.data_frames(), 4u);
  ASSERT_EQ(as.munmap(a, 4096, &m.tlb), MmError::kOk);
  ASSERT_EQ(as.munmap(a + 4 * 4096, 4096, &m.tlb), MmError::kOk);
  EXPECT_EQ(as.munmap(a, 3 * 4096, &m.tlb), MmError::kNoVma);
  EXPECT_EQ(as.data_frames(), 2u);
  EXPECT_TRUE(as.check_invariants(nullptr));
  as.destroy(&m.tlb);
  EXPECT_EQ(m.data.in_use(), 0u);
}

TEST_P(AddressSpaceTest, KernelHalfFollowsSwapper) {
  Machine m(GetParam());
  AddressSpace as;
  ASSERT_EQ(as.init(&m.tables, &m.data, &m.ks, 3), MmError::kOk);
  FakeAreas areas;
  const std::uint64_t v = m.ks.config().vmalloc_start;
  areas.pages[v] = 0x00700000;
  ASSERT_EQ(m.ks.sync_vmalloc(areas, &m.tlb), VmError::kOk);
  AccessResult r = as.access(v + 8, AccessType::kWrite, Privilege::kKernel, m.tlb);
  ASSERT_EQ(r.outcome, AccessOutcome::kOk) << "vmalloc seen from the process (copied entry or shared TTBR1)";
  EXPECT_EQ(r.walk.pa, 0x00700008u);
  areas.pages.clear();
  ASSERT_EQ(m.ks.sync_vmalloc(areas, &m.tlb), VmError::kOk);
  EXPECT_EQ(as.access(v + 8, AccessType::kRead, Privilege::kKernel, m.tlb).outcome, AccessOutcome::kFault);
  as.destroy(&m.tlb);
}

TEST_P(AddressSpaceTest, AsidsShareOneTlb) {
  Machine m(GetParam());
  AddressSpace p1, p2;
  ASSERT_EQ(p1.init(&m.tables, &m.data, &m.ks, 1), MmError::kOk);
  ASSERT_EQ(p2.init(&m.tables, &m.data, &m.ks, 2), MmError::kOk);
  std::uint64_t a = 0;
  ASSERT_EQ(p1.mmap(4096, kProtRead | kProtWrite, VmaKind::kAnon, 0x00400000, &a), MmError::kOk);
  ASSERT_EQ(p2.mmap(4096, kProtRead | kProtWrite, VmaKind::kAnon, 0x00400000, &a), MmError::kOk);
  AccessResult r1 = p1.access(0x00400000, AccessType::kWrite, Privilege::kUser, m.tlb);
  AccessResult r2 = p2.access(0x00400000, AccessType::kWrite, Privilege::kUser, m.tlb);
  EXPECT_NE(r1.walk.pa, r2.walk.pa) << "same VA, different frames";
  EXPECT_EQ(p1.access(0x00400000, AccessType::kRead, Privilege::kUser, m.tlb).walk.pa, r1.walk.pa);
  EXPECT_EQ(p2.access(0x00400000, AccessType::kRead, Privilege::kUser, m.tlb).walk.pa, r2.walk.pa);
  p1.destroy(&m.tlb);
  EXPECT_EQ(p2.access(0x00400000, AccessType::kRead, Privilege::kUser, m.tlb).walk.pa, r2.walk.pa);
  p2.destroy(&m.tlb);
  EXPECT_EQ(m.data.in_use(), 0u);
}

TEST_P(AddressSpaceTest, RandomRunKeepsInvariants) {
  Machine m(GetParam());
  AddressSpace as;
  ASSERT_EQ(as.init(&m.tables, &m.data, &m.ks, 9), MmError::kOk);
  std::mt19937 rng(42);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> maps;
  for (int step = 0; step < 400; ++step) {
    int op = static_cast<int>(rng() % 4);
    if (op == 0 || maps.empty()) {
      std::uint64_t size = (1 + rng() % 8) * 4096, a = 0;
      std::uint8_t prot = static_cast<std::uint8_t>(1 + rng() % 7);
      if (as.mmap(size, prot, VmaKind::kAnon, 0, &a) == MmError::kOk) maps.push_back({a, size});
    } else if (op == 1) {
      auto i = rng() % maps.size();
      ASSERT_EQ(as.munmap(maps[i].first, maps[i].second, &m.tlb), MmError::kOk);
      maps.erase(maps.begin() + static_cast<long>(i));
    } else {
      auto& mp = maps[rng() % maps.size()];
      as.access(mp.first + rng() % mp.second, static_cast<AccessType>(rng() % 3), Privilege::kUser, m.tlb);
    }
    StackText<256> why;
    ASSERT_TRUE(as.check_invariants(&why)) << why.data() << " at step " << step;
    ASSERT_TRUE(m.tlb.check_invariants());
  }
  as.destroy(&m.tlb);
  EXPECT_EQ(m.data.in_use(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Formats, AddressSpaceTest, ::testing::Values(Format::kArmv7Short, Format::kAarch64Gran4k),
                         [](const auto& p) {
                           return p.param == Format::kArmv7Short ? std::string("armv7") : std::string("aarch64");
                         });

}  // namespace
}  // namespace kmm::vm

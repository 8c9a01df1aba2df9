// Tests of the page-table walker (src/vm/walk.h) over tables in frames of a modelled
// physical memory: a FrameSource over a plain aligned buffer, defined here. Covers the
// mapping sizes chosen, the walk record, every fault kind, malformed descriptors, argument
// errors, rollback, table reclaim, TTBCR.N, AArch64 TTBR1, the TLB front end, and a random
// map/unmap run checked against a reference model.
#include "vm/walk.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "vm/aarch64_desc.h"
#include "vm/armv7_desc.h"

namespace kmm::vm {
namespace {

// Physical memory of `frames` frames at physical address `base` (16 KB aligned), with a
// first-fit frame allocator that can serve aligned runs of 2^order frames.
class BufferFrames final : public FrameSource {
 public:
  BufferFrames(phys_addr_t base, std::size_t frames)
      : base_(base), used_(frames, false), mem_(static_cast<unsigned char*>(std::aligned_alloc(16384, frames * 4096))) {
    std::memset(mem_, 0xA5, frames * 4096);  // not zero: the walker must zero its tables
  }
  ~BufferFrames() { std::free(mem_); }
  BufferFrames(const BufferFrames&) = delete;
  BufferFrames& operator=(const BufferFrames&) = delete;

  bool alloc_frame(phys_addr_t* pa, void** host) override { return alloc_frames(0, pa, host); }
  bool alloc_frames(unsigned order, phys_addr_t* pa, void** host) override {
    if (limit_ >= 0 && in_use_ + (std::size_t{1} << order) > static_cast<std::size_t>(limit_)) {
      return false;
    }
    const std::size_t n = std::size_t{1} << order;
    for (std::size_t f = 0; f + n <= used_.size(); f += n) {
      bool free = true;
      for (std::size_t k = 0; k < n && free; ++k) free = !used_[f + k];
      if (!free) continue;
      for (std::size_t k = 0; k < n; ++k) used_[f + k] = true;
      in_use_ += n;
      *pa = base_ + f * 4096;
      *host = mem_ + f * 4096;
      return true;
    }
    return false;
  }
  void free_frame(phys_addr_t pa) override { free_frames(pa, 0); }
  void free_frames(phys_addr_t pa, unsigned order) override {
    const std::size_t f = static_cast<std::size_t>((pa - base_) / 4096);
    for (std::size_t k = 0; k < (std::size_t{1} << order); ++k) {
      ASSERT_TRUE(used_[f + k]) << "double free of frame " << f + k;
      used_[f + k] = false;
    }
    in_use_ -= std::size_t{1} << order;
  }
  void* phys_to_host(phys_addr_t pa) override {
    if (pa < base_ || pa >= base_ + used_.size() * 4096) return nullptr;
    return mem_ + (pa - base_);
  }

  std::size_t in_use() const { return in_use_; }
  void set_limit(long frames) { limit_ = frames; }  // -1: no limit

 private:
  phys_addr_t base_;
  std::vector<bool> used_;
  unsigned char* mem_;
  std::size_t in_use_ = 0;
  long limit_ = -1;
};

PageTableConfig armv7_cfg(unsigned n = 0) {
  PageTableConfig c;
  c.format = Format::kArmv7Short;
  c.ttbcr_n = n;
  return c;
}
PageTableConfig a64_cfg() {
  PageTableConfig c;
  c.format = Format::kAarch64Gran4k;
  return c;
}

MapAttrs kernel_rw() {
  return MapAttrs{};
}
MapAttrs user_rw() {
  MapAttrs a;
  a.user = true;
  return a;
}
MapAttrs user_ro() {
  MapAttrs a;
  a.user = true;
  a.writable = false;
  return a;
}

std::uint64_t read_phys(BufferFrames& f, phys_addr_t pa, unsigned bytes) {
  std::uint64_t v = 0;
  std::memcpy(&v, f.phys_to_host(pa), bytes);
  return v;
}
void write_phys(BufferFrames& f, phys_addr_t pa, std::uint64_t v, unsigned bytes) {
  std::memcpy(f.phys_to_host(pa), &v, bytes);
}

constexpr phys_addr_t kRamBase = 0x80000000u;

class Armv7Walk : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(pt.init(&frames, armv7_cfg()), VmError::kOk); }
  void TearDown() override {
    pt.destroy();
    EXPECT_EQ(frames.in_use(), 0u);
  }
  BufferFrames frames{kRamBase, 256};
  PageTable pt;
};

TEST_F(Armv7Walk, RootIsA16KTable) {
  EXPECT_EQ(pt.table_frames(), 4u);
  EXPECT_EQ(frames.in_use(), 4u);
  EXPECT_EQ(pt.root(0) & 0x3FFF, 0u);
  EXPECT_EQ(pt.root(1), kNoTable);  // TTBCR.N == 0: TTBR0 only
  for (unsigned k = 0; k < 4096; ++k) ASSERT_EQ(read_phys(frames, pt.root(0) + k * 4, 4), 0u);
}

// The seed's example: VA 0x00403012 -> frame 0x82, offset 0x12, through a small page.
// Expected second-level descriptor (kernel... here user RW, global, normal, XN):
//   0x00082000 | [10] S 0x400 | [8:6] TEX=001 0x40 | [5:4] AP=11 0x30 | C,B 0xC | [1] 0x2
//   | [0] XN 0x1 = 0x0008247F
TEST_F(Armv7Walk, SmallPageWalk) {
  ASSERT_EQ(pt.map(0x00403000u, 0x00082000u, 4096, user_rw()), VmError::kOk);
  EXPECT_EQ(pt.table_frames(), 5u);
  const Walk w = pt.translate(0x00403012u, AccessType::kRead, Privilege::kUser);
  ASSERT_TRUE(w.ok()) << fault_name(w.fault) << " " << (w.why ? w.why : "");
  EXPECT_EQ(w.pa, 0x00082012u);
  EXPECT_EQ(w.size_shift, 12);
  ASSERT_EQ(w.nsteps, 2);
  EXPECT_EQ(w.steps[0].level, 1);
  EXPECT_EQ(w.steps[0].table, pt.root(0));
  EXPECT_EQ(w.steps[0].index, 4u);
  EXPECT_EQ(w.steps[0].desc_addr, pt.root(0) + 0x10);
  const phys_addr_t l2_table = w.steps[0].desc & 0xFFFFFC00u;
  EXPECT_EQ(w.steps[0].desc, l2_table | 0x5u);  // page table, domain 0, PXN (a user table)
  EXPECT_EQ(w.steps[1].table, l2_table);
  EXPECT_EQ(w.steps[1].index, 3u);
  EXPECT_EQ(w.steps[1].desc_addr, l2_table + 0xC);
  EXPECT_EQ(w.steps[1].desc, 0x0008247Fu);
  EXPECT_EQ(w.steps[1].kind, static_cast<std::uint8_t>(armv7::Kind::kSmallPage));
  // The descriptor really is in the modelled RAM.
  EXPECT_EQ(read_phys(frames, l2_table + 0xC, 4), 0x0008247Fu);
}

// Kernel direct map at PAGE_OFFSET 0xC0000000 of RAM at 0x80000000, in 1 MB sections (with
// supersections off, as Linux's lowmem map): VA 0xC0403012 -> PA 0x80403012 in one step.
TEST_F(Armv7Walk, SectionWalkAtPageOffset) {
  pt.destroy();
  PageTableConfig c = armv7_cfg();
  c.use_supersections = false;
  ASSERT_EQ(pt.init(&frames, c), VmError::kOk);
  ASSERT_EQ(pt.map(0xC0000000u, 0x80000000u, 16u << 20, kernel_rw()), VmError::kOk);
  EXPECT_EQ(pt.table_frames(), 4u);  // sections need no second-level table
  const Walk w = pt.translate(0xC0403012u, AccessType::kWrite, Privilege::kKernel);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.pa, 0x80403012u);
  ASSERT_EQ(w.nsteps, 1);
  EXPECT_EQ(w.steps[0].index, 0xC04u);
  EXPECT_EQ(w.steps[0].desc_addr, pt.root(0) + 0x3010);
  // Section PA 0x80400000, AP=001, TEX=001 C B, S, XN: 0x80400000 | 0x1141E.
  EXPECT_EQ(w.steps[0].desc, 0x8041141Eu);
  // A user access to kernel space faults (the seed's user/kernel split).
  const Walk u = pt.translate(0xC0403012u, AccessType::kRead, Privilege::kUser);
  EXPECT_EQ(u.fault, FaultKind::kPermission);
  EXPECT_EQ(u.fault_level, 1);
  EXPECT_EQ(u.fault_desc, 0x8041141Eu);
  // Kernel exec of a non-executable mapping.
  EXPECT_EQ(pt.translate(0xC0000000u, AccessType::kExec, Privilege::kKernel).fault, FaultKind::kPermission);
}

TEST_F(Armv7Walk, ChoosesLargestMappingThatFits) {
  // 16 MB aligned, 16 MB + 1 MB + 64 KB + 4 KB: one supersection, one section, one large
  // page, one small page.
  const std::uint64_t size = (16u << 20) + (1u << 20) + (64u << 10) + 4096;
  ASSERT_EQ(pt.map(0x10000000u, 0x20000000u, size, kernel_rw()), VmError::kOk);
  struct Probe {
    std::uint64_t va;
    unsigned shift;
  } probes[] = {{0x10000000u, 24}, {0x10FFFFFFu, 24}, {0x11000000u, 20},
                {0x11100000u, 16}, {0x1110FFFFu, 16}, {0x11110000u, 12}};
  for (const Probe& p : probes) {
    const Walk w = pt.translate(p.va, AccessType::kRead, Privilege::kKernel);
    ASSERT_TRUE(w.ok()) << std::hex << p.va;
    EXPECT_EQ(w.size_shift, p.shift) << std::hex << p.va;
    EXPECT_EQ(w.pa, p.va - 0x10000000u + 0x20000000u);
  }
  EXPECT_FALSE(pt.translate(0x11111000u, AccessType::kRead, Privilege::kKernel).ok());
  // The supersection is 16 identical entries.
  const std::uint64_t first = read_phys(frames, pt.root(0) + 0x100 * 4, 4);
  for (unsigned k = 1; k < 16; ++k) {
    EXPECT_EQ(read_phys(frames, pt.root(0) + (0x100 + k) * 4, 4), first);
  }
  // Misaligned PA: VA 1 MB aligned but PA only 4 KB aligned -> small pages throughout.
  ASSERT_EQ(pt.map(0x30000000u, 0x00403000u, 1u << 20, kernel_rw()), VmError::kOk);
  EXPECT_EQ(pt.translate(0x30000000u, AccessType::kRead, Privilege::kKernel).size_shift, 12);
  ASSERT_EQ(pt.unmap(0x10000000u, size), VmError::kOk);
  ASSERT_EQ(pt.unmap(0x30000000u, 1u << 20), VmError::kOk);
  EXPECT_EQ(pt.table_frames(), 4u);
}

TEST_F(Armv7Walk, PermissionAndDomainFaults) {
  ASSERT_EQ(pt.map(0x00400000u, 0x00100000u, 4096, user_ro()), VmError::kOk);
  EXPECT_TRUE(pt.translate(0x00400000u, AccessType::kRead, Privilege::kUser).ok());
  Walk w = pt.translate(0x00400004u, AccessType::kWrite, Privilege::kUser);
  EXPECT_EQ(w.fault, FaultKind::kPermission);
  EXPECT_EQ(w.fault_level, 2);
  // AP=111: the kernel may not write it either.
  EXPECT_EQ(pt.translate(0x00400004u, AccessType::kWrite, Privilege::kKernel).fault, FaultKind::kPermission);
  // XN: no instruction fetch.
  EXPECT_EQ(pt.translate(0x00400000u, AccessType::kExec, Privilege::kUser).fault, FaultKind::kPermission);
  MapAttrs text = user_ro();
  text.executable = true;
  ASSERT_EQ(pt.map(0x00500000u, 0x00200000u, 1u << 20, text), VmError::kOk);  // a section
  EXPECT_TRUE(pt.translate(0x00500000u, AccessType::kExec, Privilege::kUser).ok());
  // PXN on a user section: the kernel may not execute user code.
  EXPECT_EQ(pt.translate(0x00500000u, AccessType::kExec, Privilege::kKernel).fault, FaultKind::kPermission);
  // Nor a user small page: its table's PXN (small pages have no bit of their own).
  ASSERT_EQ(pt.map(0x00600000u, 0x00300000u, 4096, text), VmError::kOk);
  EXPECT_TRUE(pt.translate(0x00600000u, AccessType::kExec, Privilege::kUser).ok());
  w = pt.translate(0x00600000u, AccessType::kExec, Privilege::kKernel);
  EXPECT_EQ(w.fault, FaultKind::kPermission);
  EXPECT_EQ(w.fault_level, 2);
  struct KernelExec {
    static void fn(void* arg, const Leaf& leaf) {
      if (leaf.va == 0x00600000u) *static_cast<int*>(arg) = leaf.perms.kernel_exec ? 1 : 0;
    }
  };
  int kernel_exec = -1;
  pt.visit(&KernelExec::fn, &kernel_exec);
  EXPECT_EQ(kernel_exec, 0) << "visit applies the table's PXN to its pages too";

  // Domains: 00 no access -> domain fault; 11 manager -> no permission checks.
  pt.destroy();
  PageTableConfig c = armv7_cfg();
  c.dacr = 0x55555554u;  // domain 0 no access
  ASSERT_EQ(pt.init(&frames, c), VmError::kOk);
  ASSERT_EQ(pt.map(0x00400000u, 0x00100000u, 4096, user_ro()), VmError::kOk);
  w = pt.translate(0x00400000u, AccessType::kRead, Privilege::kKernel);
  EXPECT_EQ(w.fault, FaultKind::kDomain);
  pt.destroy();
  c.dacr = 0x55555557u;  // domain 0 manager
  ASSERT_EQ(pt.init(&frames, c), VmError::kOk);
  ASSERT_EQ(pt.map(0x00400000u, 0x00100000u, 4096, user_ro()), VmError::kOk);
  EXPECT_TRUE(pt.translate(0x00400000u, AccessType::kWrite, Privilege::kUser).ok());
}

TEST_F(Armv7Walk, MalformedDescriptorsFaultWithTheirValue) {
  // Nothing mapped: a fault entry at level 1.
  Walk w = pt.translate(0x12345678u, AccessType::kRead, Privilege::kKernel);
  EXPECT_EQ(w.fault, FaultKind::kTranslation);
  EXPECT_EQ(w.fault_level, 1);
  EXPECT_EQ(w.fault_desc, 0u);
  // Junk with bits[1:0] == 00 written into the first-level table: still a fault entry.
  write_phys(frames, pt.root(0) + 0x123 * 4, 0xDEADBEECu, 4);
  w = pt.translate(0x12345678u, AccessType::kRead, Privilege::kKernel);
  EXPECT_EQ(w.fault, FaultKind::kTranslation);
  EXPECT_EQ(w.fault_desc, 0xDEADBEECu);
  // A page-table pointer to memory that does not exist: an abort on the walk, not a crash.
  write_phys(frames, pt.root(0) + 0x123 * 4, 0x00001001u, 4);
  w = pt.translate(0x12345678u, AccessType::kRead, Privilege::kKernel);
  EXPECT_EQ(w.fault, FaultKind::kWalkAbort);
  EXPECT_EQ(w.fault_level, 2);
  // map/unmap refuse to work through it.
  EXPECT_EQ(pt.map(0x12300000u, 0x0, 4096, kernel_rw()), VmError::kCorruptTable);
  write_phys(frames, pt.root(0) + 0x123 * 4, 0, 4);
  // A VA above 32 bits.
  EXPECT_EQ(pt.translate(0x100000000ull, AccessType::kRead, Privilege::kKernel).fault, FaultKind::kTranslation);
}

TEST_F(Armv7Walk, ArgumentErrors) {
  EXPECT_EQ(pt.map(0x1001, 0x2000, 4096, kernel_rw()), VmError::kUnaligned);
  EXPECT_EQ(pt.map(0x1000, 0x2001, 4096, kernel_rw()), VmError::kUnaligned);
  EXPECT_EQ(pt.map(0x1000, 0x2000, 100, kernel_rw()), VmError::kUnaligned);
  EXPECT_EQ(pt.map(0x1000, 0x2000, 0, kernel_rw()), VmError::kOutOfRange);
  EXPECT_EQ(pt.map(0xFFFFF000u, 0x2000, 8192, kernel_rw()), VmError::kOutOfRange);
  EXPECT_EQ(pt.map(0x100000000ull, 0x2000, 4096, kernel_rw()), VmError::kOutOfRange);
  // A small page cannot reach a PA above 4 GB.
  EXPECT_EQ(pt.map(0x1000, 0x100000000ull, 4096, kernel_rw()), VmError::kOutOfRange);
  MapAttrs bad = kernel_rw();
  bad.domain = 16;
  EXPECT_EQ(pt.map(0x1000, 0x2000, 4096, bad), VmError::kBadConfig);
  EXPECT_EQ(pt.unmap(0x1800, 4096), VmError::kUnaligned);
  EXPECT_EQ(pt.table_frames(), 4u);  // nothing left behind by the refusals
  PageTable fresh;
  EXPECT_EQ(fresh.map(0x1000, 0x2000, 4096, kernel_rw()), VmError::kNotInitialised);
  EXPECT_EQ(fresh.translate(0x1000, AccessType::kRead, Privilege::kKernel).fault, FaultKind::kTranslation);
  PageTable bad_n;
  EXPECT_EQ(bad_n.init(&frames, armv7_cfg(8)), VmError::kBadConfig);
}

TEST_F(Armv7Walk, OverlapIsRefusedAndRolledBack) {
  ASSERT_EQ(pt.map(0x00105000u, 0x5000, 4096, kernel_rw()), VmError::kOk);
  const std::uint64_t frames_before = pt.table_frames();
  // 0x00100000..0x00108000 overlaps the page at 0x00105000: nothing of it may stay mapped.
  EXPECT_EQ(pt.map(0x00100000u, 0x40000, 0x8000, kernel_rw()), VmError::kAlreadyMapped);
  EXPECT_FALSE(pt.translate(0x00100000u, AccessType::kRead, Privilege::kKernel).ok());
  EXPECT_TRUE(pt.translate(0x00105000u, AccessType::kRead, Privilege::kKernel).ok());
  EXPECT_EQ(pt.table_frames(), frames_before);
  // A section over pages, and pages over a section.
  EXPECT_EQ(pt.map(0x00100000u, 0x00100000u, 1u << 20, kernel_rw()), VmError::kAlreadyMapped);
  ASSERT_EQ(pt.map(0x00200000u, 0x00200000u, 1u << 20, kernel_rw()), VmError::kOk);
  EXPECT_EQ(pt.map(0x00201000u, 0x1000, 4096, kernel_rw()), VmError::kAlreadyMapped);
  // Unmapping part of the section would split it.
  EXPECT_EQ(pt.unmap(0x00200000u, 4096), VmError::kSplitsBlock);
  EXPECT_TRUE(pt.translate(0x00200000u, AccessType::kRead, Privilege::kKernel).ok());
  // A range holding a hole and a mapping unmaps fine.
  EXPECT_EQ(pt.unmap(0x00000000u, 4u << 20), VmError::kOk);
  EXPECT_EQ(pt.table_frames(), 4u);
}

TEST_F(Armv7Walk, FourSecondLevelTablesShareAFrame) {
  for (std::uint32_t mb = 0; mb < 4; ++mb) {
    ASSERT_EQ(pt.map(0x00400000u + (mb << 20) + 0x3000, 0x1000, 4096, kernel_rw()), VmError::kOk);
  }
  EXPECT_EQ(pt.table_frames(), 5u);  // one frame for the four 1 KB tables
  ASSERT_EQ(pt.map(0x00800000u, 0x1000, 4096, kernel_rw()), VmError::kOk);
  EXPECT_EQ(pt.table_frames(), 6u);  // the next group of four takes another
  for (std::uint32_t mb = 0; mb < 3; ++mb) {
    ASSERT_EQ(pt.unmap(0x00400000u + (mb << 20) + 0x3000, 4096), VmError::kOk);
    EXPECT_EQ(pt.table_frames(), 6u);  // the shared frame stays while one table is in use
  }
  ASSERT_EQ(pt.unmap(0x00700000u + 0x3000, 4096), VmError::kOk);
  EXPECT_EQ(pt.table_frames(), 5u);
  ASSERT_EQ(pt.unmap(0x00800000u, 4096), VmError::kOk);
  EXPECT_EQ(pt.table_frames(), 4u);
}

TEST_F(Armv7Walk, OutOfFramesRollsBack) {
  frames.set_limit(static_cast<long>(frames.in_use()) + 1);  // room for one table frame
  // Pages in two 4 MB groups need two frames: the second fails, the first is given back.
  EXPECT_EQ(pt.map(0x003FF000u, 0x1000, 0x2000, kernel_rw()), VmError::kNoMemory);
  EXPECT_EQ(pt.table_frames(), 4u);
  EXPECT_EQ(frames.in_use(), 4u);
  EXPECT_FALSE(pt.translate(0x003FF000u, AccessType::kRead, Privilege::kKernel).ok());
  frames.set_limit(-1);
}

TEST(Armv7WalkTtbcr, TtbcrNSplitsBetweenTwoTables) {
  BufferFrames frames(kRamBase, 64);
  PageTable pt;
  ASSERT_EQ(pt.init(&frames, armv7_cfg(1)), VmError::kOk);
  EXPECT_EQ(pt.table_frames(), 2u + 4u);  // TTBR0: 8 KB; TTBR1: 16 KB
  ASSERT_NE(pt.root(1), kNoTable);
  ASSERT_EQ(pt.map(0x00100000u, 0x00100000u, 1u << 20, kernel_rw()), VmError::kOk);
  ASSERT_EQ(pt.map(0xC0000000u, 0x00200000u, 1u << 20, kernel_rw()), VmError::kOk);
  Walk lo = pt.translate(0x00100010u, AccessType::kRead, Privilege::kKernel);
  Walk hi = pt.translate(0xC0000010u, AccessType::kRead, Privilege::kKernel);
  ASSERT_TRUE(lo.ok() && hi.ok());
  EXPECT_EQ(lo.ttbr, 0);
  EXPECT_EQ(hi.ttbr, 1);
  EXPECT_EQ(lo.steps[0].desc_addr, pt.root(0) + 4);
  EXPECT_EQ(hi.steps[0].desc_addr, pt.root(1) + 0xC00 * 4);
  EXPECT_EQ(hi.pa, 0x00200010u);
  pt.destroy();
  EXPECT_EQ(frames.in_use(), 0u);

  // N = 3: TTBR0's table is 2 KB (one frame, partly used).
  ASSERT_EQ(pt.init(&frames, armv7_cfg(3)), VmError::kOk);
  EXPECT_EQ(pt.table_frames(), 1u + 4u);
  ASSERT_EQ(pt.map(0x1FF00000u, 0x0, 1u << 20, kernel_rw()), VmError::kOk);
  const Walk w = pt.translate(0x1FF00000u, AccessType::kRead, Privilege::kKernel);
  EXPECT_EQ(w.ttbr, 0);
  EXPECT_EQ(w.steps[0].index, 0x1FFu);
  pt.destroy();
  EXPECT_EQ(frames.in_use(), 0u);
}

// ---------------------------------------------------------------------------------------
// AArch64.

class Aarch64Walk : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(pt.init(&frames, a64_cfg()), VmError::kOk); }
  void TearDown() override {
    pt.destroy();
    EXPECT_EQ(frames.in_use(), 0u);
  }
  BufferFrames frames{kRamBase, 256};
  PageTable pt;
};

TEST_F(Aarch64Walk, FourLevelPageWalk) {
  EXPECT_EQ(pt.table_frames(), 2u);  // L0 tables of TTBR0 and TTBR1
  ASSERT_EQ(pt.map(0x403000u, 0x82000u, 4096, user_rw()), VmError::kOk);
  EXPECT_EQ(pt.table_frames(), 5u);  // + L1, L2, L3
  const Walk w = pt.translate(0x403012u, AccessType::kWrite, Privilege::kUser);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.pa, 0x82012u);
  EXPECT_EQ(w.ttbr, 0);
  ASSERT_EQ(w.nsteps, 4);
  const std::uint32_t idx[4] = {0, 0, 2, 3};
  for (unsigned k = 0; k < 4; ++k) {
    EXPECT_EQ(w.steps[k].level, k);
    EXPECT_EQ(w.steps[k].index, idx[k]);
    EXPECT_EQ(w.steps[k].desc_addr, w.steps[k].table + idx[k] * 8);
    if (k < 3) {
      EXPECT_EQ(w.steps[k].desc & 3u, 3u);
      EXPECT_EQ(w.steps[k + 1 < 4 ? k + 1 : k].table, w.steps[k].desc & aarch64::kOaMask);
    }
  }
  // User RW page, global: 0x82000 | UXN/PXN? user data: PXN=1, UXN=1 (not executable)
  //   | AF 0x400 | SH 0x300 | AP=01 0x40 | [1:0] 11 = 0x0060000000082743
  EXPECT_EQ(w.steps[3].desc, 0x0060000000082743ull);
  // EL0-writable: the kernel may not execute it; the user may not either (UXN).
  EXPECT_EQ(pt.translate(0x403000u, AccessType::kExec, Privilege::kKernel).fault, FaultKind::kPermission);
  EXPECT_EQ(pt.translate(0x403000u, AccessType::kExec, Privilege::kUser).fault, FaultKind::kPermission);
  ASSERT_EQ(pt.unmap(0x403000u, 4096), VmError::kOk);
  EXPECT_EQ(pt.table_frames(), 2u);  // L1, L2, L3 given back
}

TEST_F(Aarch64Walk, BlocksAndTtbr1) {
  // Linear map at 0xFFFF800000000000 of 1 GB + 2 MB + 4 KB of RAM at 0x40000000.
  const std::uint64_t kLinear = 0xFFFF800000000000ull;
  const std::uint64_t size = (1ull << 30) + (2u << 20) + 4096;
  ASSERT_EQ(pt.map(kLinear, 0x40000000u, size, kernel_rw()), VmError::kOk);
  Walk w = pt.translate(kLinear + 0x12345678, AccessType::kRead, Privilege::kKernel);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.ttbr, 1);
  EXPECT_EQ(w.nsteps, 2);  // L0 table, L1 1 GB block
  EXPECT_EQ(w.size_shift, 30);
  EXPECT_EQ(w.pa, 0x52345678u);
  EXPECT_EQ(w.steps[0].index, 0x100u);
  w = pt.translate(kLinear + (1ull << 30) + 0x1234, AccessType::kRead, Privilege::kKernel);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.size_shift, 21);
  EXPECT_EQ(w.nsteps, 3);
  w = pt.translate(kLinear + (1ull << 30) + (2u << 20) + 8, AccessType::kRead, Privilege::kKernel);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.size_shift, 12);
  EXPECT_EQ(w.pa, 0x40000000u + (1ull << 30) + (2u << 20) + 8);
  // User access to the kernel's linear map: permission fault at the block's level.
  w = pt.translate(kLinear, AccessType::kRead, Privilege::kUser);
  EXPECT_EQ(w.fault, FaultKind::kPermission);
  EXPECT_EQ(w.fault_level, 1);
  // Unmapping half the 1 GB block would split it.
  EXPECT_EQ(pt.unmap(kLinear, 1u << 29), VmError::kSplitsBlock);
  ASSERT_EQ(pt.unmap(kLinear, size), VmError::kOk);
  EXPECT_EQ(pt.table_frames(), 2u);
}

TEST_F(Aarch64Walk, FaultsAndMalformedDescriptors) {
  // Not canonical: neither TTBR.
  Walk w = pt.translate(0x0001000000000000ull, AccessType::kRead, Privilege::kKernel);
  EXPECT_EQ(w.fault, FaultKind::kTranslation);
  EXPECT_EQ(w.fault_level, 0);
  EXPECT_EQ(w.nsteps, 0);
  // Nothing mapped: invalid at L0.
  w = pt.translate(0x1000, AccessType::kRead, Privilege::kKernel);
  EXPECT_EQ(w.fault, FaultKind::kTranslation);
  EXPECT_EQ(w.fault_level, 0);

  ASSERT_EQ(pt.map(0x403000u, 0x82000u, 4096, kernel_rw()), VmError::kOk);
  w = pt.translate(0x403000u, AccessType::kRead, Privilege::kKernel);
  ASSERT_TRUE(w.ok());
  const phys_addr_t l3_slot = w.steps[3].desc_addr;
  const std::uint64_t good = w.steps[3].desc;
  // L3 with bits[1:0] == 01 is reserved: a translation fault carrying the value.
  write_phys(frames, l3_slot, good & ~std::uint64_t{2}, 8);
  w = pt.translate(0x403000u, AccessType::kRead, Privilege::kKernel);
  EXPECT_EQ(w.fault, FaultKind::kTranslation);
  EXPECT_EQ(w.fault_level, 3);
  EXPECT_EQ(w.fault_desc, good & ~std::uint64_t{2});
  // AF == 0: access flag fault.
  write_phys(frames, l3_slot, good & ~std::uint64_t{0x400}, 8);
  EXPECT_EQ(pt.translate(0x403000u, AccessType::kRead, Privilege::kKernel).fault, FaultKind::kAccessFlag);
  // Output address above 48 bits: reserved in this model.
  write_phys(frames, l3_slot, good | (std::uint64_t{1} << 48), 8);
  EXPECT_EQ(pt.translate(0x403000u, AccessType::kRead, Privilege::kKernel).fault, FaultKind::kTranslation);
  write_phys(frames, l3_slot, good, 8);
  // APTable[0] on the L1 table descriptor: no EL0 access below, whatever the leaf says.
  ASSERT_EQ(pt.unmap(0x403000u, 4096), VmError::kOk);
  ASSERT_EQ(pt.map(0x403000u, 0x82000u, 4096, user_rw()), VmError::kOk);
  w = pt.translate(0x403000u, AccessType::kRead, Privilege::kUser);
  ASSERT_TRUE(w.ok());
  write_phys(frames, w.steps[1].desc_addr, w.steps[1].desc | (std::uint64_t{1} << 61), 8);
  w = pt.translate(0x403000u, AccessType::kRead, Privilege::kUser);
  EXPECT_EQ(w.fault, FaultKind::kPermission);
  EXPECT_EQ(w.fault_level, 3);
  write_phys(frames, w.steps[1].desc_addr, w.steps[1].desc & ~(std::uint64_t{1} << 61), 8);
  // A table pointer outside RAM: walk abort.
  const phys_addr_t l2_slot = w.steps[2].desc_addr;
  const std::uint64_t l2_good = w.steps[2].desc;
  write_phys(frames, l2_slot, 0x0000000000001003ull, 8);
  w = pt.translate(0x403000u, AccessType::kRead, Privilege::kUser);
  EXPECT_EQ(w.fault, FaultKind::kWalkAbort);
  EXPECT_EQ(w.fault_level, 3);
  write_phys(frames, l2_slot, l2_good, 8);
}

TEST_F(Aarch64Walk, ArgumentErrors) {
  EXPECT_EQ(pt.map(0x0000FFFFFFFFF000ull, 0, 8192, kernel_rw()), VmError::kOutOfRange);
  EXPECT_EQ(pt.map(0x0001000000000000ull, 0, 4096, kernel_rw()), VmError::kOutOfRange);
  EXPECT_EQ(pt.map(0x1000, 0x0001000000000000ull, 4096, kernel_rw()), VmError::kOutOfRange);
  EXPECT_EQ(pt.map(0x1000, 0x1000, 0x800, kernel_rw()), VmError::kUnaligned);
  EXPECT_EQ(pt.table_frames(), 2u);
  // The very top page of the address space is fine.
  ASSERT_EQ(pt.map(0xFFFFFFFFFFFFF000ull, 0x1000, 4096, kernel_rw()), VmError::kOk);
  EXPECT_EQ(pt.translate(0xFFFFFFFFFFFFFFFFull, AccessType::kRead, Privilege::kKernel).pa, 0x1FFFu);
  ASSERT_EQ(pt.unmap(0xFFFFFFFFFFFFF000ull, 4096), VmError::kOk);
  EXPECT_EQ(pt.table_frames(), 2u);
}

TEST(Aarch64Shared, BorrowedKernelHalf) {
  BufferFrames frames(kRamBase, 64);
  PageTable kernel;
  ASSERT_EQ(kernel.init(&frames, a64_cfg()), VmError::kOk);
  ASSERT_EQ(kernel.map(0xFFFF800000000000ull, 0x40000000u, 2u << 20, kernel_rw()), VmError::kOk);
  PageTableConfig c = a64_cfg();
  c.shared_ttbr1 = kernel.root(1);
  PageTable process;
  ASSERT_EQ(process.init(&frames, c), VmError::kOk);
  EXPECT_EQ(process.table_frames(), 1u);
  EXPECT_TRUE(process.translate(0xFFFF800000000000ull, AccessType::kRead, Privilege::kKernel).ok());
  process.destroy();
  EXPECT_TRUE(kernel.translate(0xFFFF800000000000ull, AccessType::kRead, Privilege::kKernel).ok());
  kernel.destroy();
  EXPECT_EQ(frames.in_use(), 0u);
}

// ---------------------------------------------------------------------------------------
// TLB front end, printing, visiting.

TEST_F(Armv7Walk, TranslateThroughTlb) {
  ASSERT_EQ(pt.map(0x00403000u, 0x00082000u, 4096, user_ro()), VmError::kOk);
  Tlb tlb;
  Walk w = translate_cached(pt, tlb, 0x00403012u, AccessType::kRead, Privilege::kUser, 1);
  ASSERT_TRUE(w.ok());
  EXPECT_FALSE(w.tlb_hit);
  w = translate_cached(pt, tlb, 0x00403FFFu, AccessType::kRead, Privilege::kUser, 1);
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(w.tlb_hit);
  EXPECT_EQ(w.pa, 0x00082FFFu);
  // A hit whose permissions forbid the access walks again and reports the fault fully.
  w = translate_cached(pt, tlb, 0x00403000u, AccessType::kWrite, Privilege::kUser, 1);
  EXPECT_EQ(w.fault, FaultKind::kPermission);
  EXPECT_EQ(w.fault_level, 2);
  EXPECT_EQ(tlb.stats().hits, 2u);
  EXPECT_EQ(tlb.stats().misses, 1u);
  EXPECT_EQ(tlb.stats().walks, 2u);
  // After unmap the stale entry still translates until flushed, as on hardware.
  ASSERT_EQ(pt.unmap(0x00403000u, 4096), VmError::kOk);
  EXPECT_TRUE(translate_cached(pt, tlb, 0x00403000u, AccessType::kRead, Privilege::kUser, 1).ok());
  tlb.flush_va(0x00403000u, 1);
  EXPECT_FALSE(translate_cached(pt, tlb, 0x00403000u, AccessType::kRead, Privilege::kUser, 1).ok());
}

TEST_F(Aarch64Walk, TranslatePaFastPath) {
  ASSERT_EQ(pt.map(0x403000u, 0x82000u, 4096, user_ro()), VmError::kOk);
  Tlb tlb;
  phys_addr_t pa = 0;
  EXPECT_EQ(translate_pa(pt, tlb, 0x403012u, AccessType::kRead, Privilege::kUser, 3, &pa), FaultKind::kNone);
  EXPECT_EQ(pa, 0x82012u);
  pa = 0;
  EXPECT_EQ(translate_pa(pt, tlb, 0x403FF0u, AccessType::kRead, Privilege::kUser, 3, &pa), FaultKind::kNone);
  EXPECT_EQ(pa, 0x82FF0u);
  EXPECT_EQ(tlb.stats().hits, 1u);
  EXPECT_EQ(translate_pa(pt, tlb, 0x403000u, AccessType::kWrite, Privilege::kUser, 3, &pa), FaultKind::kPermission);
  EXPECT_EQ(translate_pa(pt, tlb, 0x500000u, AccessType::kRead, Privilege::kUser, 3, &pa), FaultKind::kTranslation);
  EXPECT_EQ(tlb.stats().walks, 3u);
}

TEST_F(Armv7Walk, PrintWalkReadsLikeATextbook) {
  ASSERT_EQ(pt.map(0x00403000u, 0x00082000u, 4096, user_rw()), VmError::kOk);
  const Walk w = pt.translate(0x00403012u, AccessType::kRead, Privilege::kUser);
  char buf[1024];
  TextSink out(buf, sizeof buf);
  print_walk(w, out);
  const phys_addr_t l2 = w.steps[1].table;
  StackText<1024> want;
  want.str("translate 0x00403012 (user read) on ARMv7 short-descriptor, TTBR0 = 0x")
      .hex(pt.root(0), 8)
      .str(" (TTBCR.N=0)\n");
  want.str("  L1: table 0x").hex(pt.root(0), 8).str(" index 0x004  desc @0x").hex(pt.root(0) + 0x10, 8);
  want.str(" = 0x").hex(w.steps[0].desc, 8).str("  page table at 0x").hex(l2, 8);
  want.str(" domain 0 PXN=1 NS=0\n");
  want.str("  L2: table 0x").hex(l2, 8).str(" index 0x003  desc @0x").hex(l2 + 0xC, 8);
  want.str(
      " = 0x0008247f  small page PA 0x00082000 AP=011 (PL1 RW, PL0 RW) TEX=001 C=1 B=1 "
      "(normal WB-WA) S=1 nG=0 XN=1\n");
  want.str("  => PA 0x00082012  PFN 0x82 offset 0x012  (4K mapping at 0x00082000)\n");
  EXPECT_STREQ(out.data(), want.data());

  out.clear();
  print_walk(pt.translate(0xC0000000u, AccessType::kRead, Privilege::kUser), out);
  EXPECT_NE(std::strstr(out.data(),
                        "  => translation fault at level 1, descriptor 0x00000000: "
                        "first-level descriptor is a fault entry"),
            nullptr)
      << out.data();
}

TEST_F(Aarch64Walk, PrintAndVisit) {
  ASSERT_EQ(pt.map(0xFFFF800000000000ull, 0x40000000u, 2u << 20, kernel_rw()), VmError::kOk);
  ASSERT_EQ(pt.map(0x400000u, 0x82000u, 8192, user_ro()), VmError::kOk);
  StackText<2048> out;
  print_walk(pt.translate(0xFFFF800000001234ull, AccessType::kRead, Privilege::kKernel), out);
  EXPECT_NE(std::strstr(out.data(),
                        "translate 0xffff800000001234 (kernel read) on AArch64 4K "
                        "granule, TTBR1"),
            nullptr)
      << out.data();
  EXPECT_NE(std::strstr(out.data(), "  L2: "), nullptr);
  EXPECT_NE(std::strstr(out.data(), "block 2M OA 0x000040000000"), nullptr) << out.data();
  EXPECT_NE(std::strstr(out.data(), "=> PA 0x000040001234  PFN 0x40001 offset 0x234"), nullptr) << out.data();

  struct Seen {
    int n = 0;
    std::uint64_t va[4] = {};
    std::uint8_t shift[4] = {};
  } seen;
  pt.visit(
      [](void* arg, const Leaf& leaf) {
        auto* s = static_cast<Seen*>(arg);
        if (s->n < 4) {
          s->va[s->n] = leaf.va;
          s->shift[s->n] = leaf.size_shift;
        }
        ++s->n;
      },
      &seen);
  ASSERT_EQ(seen.n, 3);
  EXPECT_EQ(seen.va[0], 0x400000u);
  EXPECT_EQ(seen.va[1], 0x401000u);
  EXPECT_EQ(seen.va[2], 0xFFFF800000000000ull);
  EXPECT_EQ(seen.shift[2], 21);
}

TEST_F(Armv7Walk, VisitListsEveryLeafOnce) {
  ASSERT_EQ(pt.map(0x10000000u, 0x20000000u, (16u << 20) + (64u << 10) + 4096, kernel_rw()), VmError::kOk);
  std::vector<std::pair<std::uint64_t, unsigned>> leaves;
  pt.visit(
      [](void* arg, const Leaf& leaf) {
        static_cast<std::vector<std::pair<std::uint64_t, unsigned>>*>(arg)->push_back({leaf.va, leaf.size_shift});
      },
      &leaves);
  ASSERT_EQ(leaves.size(), 3u);
  EXPECT_EQ(leaves[0], (std::pair<std::uint64_t, unsigned>{0x10000000u, 24}));
  EXPECT_EQ(leaves[1], (std::pair<std::uint64_t, unsigned>{0x11000000u, 16}));
  EXPECT_EQ(leaves[2], (std::pair<std::uint64_t, unsigned>{0x11010000u, 12}));
}

// ---------------------------------------------------------------------------------------
// Random map/unmap against a reference: per 4 KB page of a 64 MB window, the PA or none.

void random_against_reference(Format format) {
  BufferFrames frames(kRamBase, 1024);
  PageTable pt;
  PageTableConfig c;
  c.format = format;
  ASSERT_EQ(pt.init(&frames, c), VmError::kOk);
  const std::uint64_t window = format == Format::kArmv7Short ? 0x40000000u : 0x7F0000000000ull;
  constexpr std::uint64_t kPages = (64u << 20) / 4096;
  // Indexed by 64-bit page numbers (always < kPages); vector's operator[] takes size_t, which
  // is 32 bits on 32-bit ARM, so narrow here once rather than at every use.
  struct Ref : std::vector<std::uint64_t> {
    using std::vector<std::uint64_t>::vector;
    std::uint64_t& operator[](std::uint64_t i) {
      return std::vector<std::uint64_t>::operator[](static_cast<std::size_t>(i));
    }
  };
  Ref ref(kPages, ~0ull);
  std::uint64_t x = 0xC0FFEE;
  auto rnd = [&x]() {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x >> 17;
  };
  for (int step = 0; step < 600; ++step) {
    // Sizes from 4 KB to 4 MB, starts aligned to their own power-of-two size half the time,
    // so that sections, blocks and large pages appear.
    const unsigned log = 12 + static_cast<unsigned>(rnd() % 11);
    std::uint64_t pages = (std::uint64_t{1} << (log - 12)) + ((rnd() & 1) ? rnd() % 4 : 0);
    std::uint64_t first = rnd() % kPages;
    if (rnd() & 1) first &= ~((std::uint64_t{1} << (log - 12)) - 1);
    if (first + pages > kPages) pages = kPages - first;
    const std::uint64_t va = window + first * 4096;
    if (rnd() % 3 != 0) {
      // ARMv7 pages and sections reach only the low 4 GB of PA.
      const std::uint64_t unit = log < 21 ? 4096 : (2u << 20);
      const phys_addr_t pa = (rnd() % (format == Format::kArmv7Short ? 0x700 : 0x4000)) * unit;
      bool free = true;
      for (std::uint64_t p = 0; p < pages; ++p) free = free && ref[first + p] == ~0ull;
      const VmError e = pt.map(va, pa, pages * 4096, kernel_rw());
      ASSERT_EQ(e, free ? VmError::kOk : VmError::kAlreadyMapped) << "step " << step;
      if (e == VmError::kOk) {
        for (std::uint64_t p = 0; p < pages; ++p) ref[first + p] = pa + p * 4096;
      }
    } else {
      const VmError e = pt.unmap(va, pages * 4096);
      ASSERT_TRUE(e == VmError::kOk || e == VmError::kSplitsBlock) << vm_error_name(e);
      if (e == VmError::kOk) {
        for (std::uint64_t p = 0; p < pages; ++p) ref[first + p] = ~0ull;
      }
    }
    // Spot-check 64 pages and the edges of the range.
    for (int k = 0; k < 66; ++k) {
      std::uint64_t p = k < 64 ? rnd() % kPages : (k == 64 ? first : first + pages - 1);
      const Walk w = pt.translate(window + p * 4096 + 0x10, AccessType::kRead, Privilege::kKernel);
      if (ref[p] == ~0ull) {
        ASSERT_EQ(w.fault, FaultKind::kTranslation) << "step " << step << " page " << p;
      } else {
        ASSERT_TRUE(w.ok()) << "step " << step << " page " << p;
        ASSERT_EQ(w.pa, ref[p] + 0x10) << "step " << step << " page " << p;
      }
    }
  }
  // Unmapping everything must give back every table frame.
  ASSERT_EQ(pt.unmap(window, kPages * 4096), VmError::kOk);
  EXPECT_EQ(pt.table_frames(), format == Format::kArmv7Short ? 4u : 2u);
  pt.destroy();
  EXPECT_EQ(frames.in_use(), 0u);
}

TEST(WalkRandom, Armv7AgainstReference) {
  random_against_reference(Format::kArmv7Short);
}
TEST(WalkRandom, Aarch64AgainstReference) {
  random_against_reference(Format::kAarch64Gran4k);
}

}  // namespace
}  // namespace kmm::vm

// tests/slab/test_hardening.cpp — the hardening options of slab/hardening.h, each shown to
// catch what it is for: an encoded free list that a use-after-free write cannot steer, red
// zones that catch an overflow by one byte (past the size asked for, not only the class),
// poison that catches a write after free, a quarantine that delays reuse and keeps double
// frees visible, guard pages that fault (or, over a static buffer, are checked) past a large
// block; the option parser; and a random workload with every option on and the invariants
// (which then also check poison and red zones of every free slot) after every step.
// Detected corruption always stops the process: those cases are death tests.
#include <signal.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "../common/fault_probe.h"
#include "../common/machine_fixture.h"
#include "../common/report_capture.h"
#include "slab/hardening.h"

namespace kmm {
namespace {

using test::Machine;
using test::MachineOptions;
using test::ReportCapture;

MachineOptions hardened(HardeningConfig h, Platform* guard = nullptr) {
  MachineOptions o;
  o.ram = std::size_t{16} << 20;
  o.slab_cfg.hardening = h;
  o.slab_cfg.random_seed = 0x1234567887654321ull;
  o.kmalloc_cfg.policy = KmallocPolicy::kPow2;
  o.kmalloc_cfg.guard_platform = guard;
  return o;
}

HardeningConfig only(bool HardeningConfig::*flag) {
  HardeningConfig h;
  h.*flag = true;
  return h;
}

bool set(HardeningConfig* h, const char* key, const char* value, bool* bad) {
  *bad = false;
  return set_hardening_option(h, key, std::strlen(key), value, std::strlen(value), bad);
}

TEST(HardeningOptions, ParseEveryKeyAndRejectBadValues) {
  HardeningConfig h;
  bool bad = false;
  EXPECT_TRUE(set(&h, "freelist_hardened", "on", &bad));
  EXPECT_TRUE(set(&h, "redzone", "1", &bad));
  EXPECT_TRUE(set(&h, "poison", "yes", &bad));
  EXPECT_TRUE(set(&h, "guard_pages", "true", &bad));
  EXPECT_TRUE(set(&h, "quarantine", "256K", &bad));
  EXPECT_TRUE(h.freelist_hardened && h.redzone && h.poison && h.guard_pages);
  EXPECT_EQ(h.quarantine_bytes, 256u << 10);
  char text[128];
  describe_hardening(h, text, sizeof text);
  EXPECT_STREQ(text, "freelist_hardened=on redzone=on poison=on guard_pages=on quarantine=262144");
  EXPECT_TRUE(set(&h, "poison", "off", &bad));
  EXPECT_FALSE(h.poison);

  EXPECT_FALSE(set(&h, "redzone", "maybe", &bad));
  EXPECT_TRUE(bad);
  EXPECT_FALSE(set(&h, "quarantine", "lots", &bad));
  EXPECT_TRUE(bad);
  EXPECT_FALSE(set(&h, "quarantine", "2G", &bad));  // above kMaxQuarantineBytes
  EXPECT_TRUE(bad);
  EXPECT_FALSE(set(&h, "protect", "on", &bad));  // not a hardening key: left to the caller
  EXPECT_FALSE(bad);
  describe_hardening(HardeningConfig{}, text, sizeof text);
  EXPECT_STREQ(text, "none");
}

// --- freelist_hardened --------------------------------------------------------------------

TEST(FreelistHardened, LinksAreStoredEncoded) {
  Machine m{hardened(only(&HardeningConfig::freelist_hardened))};
  ASSERT_TRUE(m.ok());
  KmemCache* c = m.slab.create("enc-64", 64, 0, 0);
  ASSERT_NE(c, nullptr);
  EXPECT_NE(c->fl_key, 0u);
  auto* a = static_cast<char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
  auto* b = static_cast<char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
  ASSERT_EQ(b, a + 64);
  m.slab.free(c, b, "kmem_cache_free");
  m.slab.free(c, a, "kmem_cache_free");  // free list: a -> b -> rest
  std::uint32_t raw;
  std::memcpy(&raw, a, sizeof raw);
  EXPECT_NE(raw, 64u) << "the link to b is not stored in the clear";
  EXPECT_EQ(m.slab.get_link(c, a), 64u);
  EXPECT_TRUE(m.check());
  // Two caches, or the same offset in two slots, do not share a mask.
  EXPECT_NE(SlabAllocator::link_mask(c, a), SlabAllocator::link_mask(c, b));
}

TEST(FreelistHardenedDeathTest, AForgedLinkIsCaughtNotFollowed) {
  // A use-after-free write of a plausible offset (0: the slab's first slot, still live) into
  // a free object's link. Plain links name a live slot, which the pop refuses by its owner byte; encoded
  // ones decode the forgery to garbage, which the allocation reports as corruption before
  // it looks at the slot.
  auto forge_and_allocate = [](bool harden) {
    Machine m{hardened(harden ? only(&HardeningConfig::freelist_hardened) : HardeningConfig{})};
    KmemCache* c = m.slab.create("victim-64", 64, 0, 0);
    auto* live = static_cast<char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
    auto* freed = static_cast<char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
    m.slab.free(c, freed, "kmem_cache_free");
    std::uint32_t forged = 0;  // "the next free slot is at offset 0"
    std::memcpy(freed, &forged, sizeof forged);
    EXPECT_EQ(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel), freed);
    return m.slab.alloc(c, GFP_KERNEL, kOwnerKernel) == live;  // steered onto a live object
  };
  // Plain links: the forged offset is a slot of the slab, which the cache's own path (no
  // thread caches here) pops only after its owner byte says free: caught, as in use.
  EXPECT_DEATH(forge_and_allocate(false), "corruption in kmalloc.*free list points at an object in use");
  EXPECT_DEATH(forge_and_allocate(true), "corruption in kmalloc.*free list points outside its slab");
}

// --- red zones ----------------------------------------------------------------------------

TEST(Redzone, LayoutKeepsAlignmentAndAskedSize) {
  Machine m{hardened(only(&HardeningConfig::redzone))};
  ASSERT_TRUE(m.ok());
  for (unsigned i = 0; i < kNrKmallocClasses; ++i) {
    KmemCache* c = m.km.class_cache(i);
    EXPECT_TRUE(c->debug & kDebugRedzone) << c->name;
    EXPECT_GE(c->fp_offset, c->object_size + kRedzoneMin) << c->name;
    EXPECT_EQ(c->size % 16, 0u) << c->name;
    EXPECT_EQ(c->tc_slot, 0xFF) << c->name << ": a debug cache takes no tc_slot";
    if ((c->object_size & (c->object_size - 1)) == 0) {
      void* p = m.km.kmalloc(c->object_size, GFP_KERNEL, kOwnerKernel);
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % std::min<std::size_t>(c->object_size, kPageSize), 0u) << c->name;
      m.km.kfree(p);
    }
  }
  auto* p = static_cast<char*>(m.km.kmalloc(20, GFP_KERNEL, kOwnerKernel));
  EXPECT_EQ(m.km.ksize(p), 20u) << "ksize is the size asked for, so writing all of it is safe";
  std::memset(p, 'x', 20);
  // krealloc within the slot moves the red zone with the size.
  EXPECT_EQ(m.km.krealloc(p, 30, GFP_KERNEL, kOwnerKernel), p);
  EXPECT_EQ(m.km.ksize(p), 30u);
  std::memset(p, 'y', 30);
  EXPECT_EQ(m.km.krealloc(p, 10, GFP_KERNEL, kOwnerKernel), p);
  EXPECT_EQ(m.km.ksize(p), 10u);
  m.km.kfree(p);
  // kzalloc zeroes the size asked for, not the red zone after it (found by the engine fuzzer).
  auto* z = static_cast<unsigned char*>(m.km.kzalloc(7295, GFP_KERNEL, kOwnerKernel));
  for (std::size_t i = 0; i < 7295; ++i) ASSERT_EQ(z[i], 0) << i;
  m.km.kfree(z);
  KmemCache* c = m.slab.create("zero-40", 40, 0, 0);
  auto* o = static_cast<unsigned char*>(m.slab.alloc(c, GFP_KERNEL | __GFP_ZERO, kOwnerKernel));
  for (std::size_t i = 0; i < 40; ++i) ASSERT_EQ(o[i], 0) << i;
  m.slab.free(c, o, "kmem_cache_free");
  EXPECT_TRUE(m.check());
}

TEST(RedzoneDeathTest, OverflowByOneByteIsReportedAtFree) {
  EXPECT_DEATH(
      {
        Machine m{hardened(only(&HardeningConfig::redzone))};
        auto* p = static_cast<char*>(m.km.kmalloc(20, GFP_KERNEL, kOwnerKernel));
        p[20] = 0;  // one past the size asked for, inside kmalloc-32's slot
        m.km.kfree(p);
      },
      "corruption in kfree.*kmalloc-32.*red zone overwritten \\(buffer overflow\\): byte 20 of a block of 20");
  EXPECT_DEATH(
      {
        Machine m{hardened(only(&HardeningConfig::redzone))};
        KmemCache* c = m.slab.create("obj-40", 40, 0, 0);
        auto* p = static_cast<char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
        p[40] = 0;
        m.slab.free(c, p, "kmem_cache_free");
      },
      "red zone overwritten.*byte 40 of a block of 40");
}

TEST(RedzoneDeathTest, AnOverflowThatRewritesTheKeptSizeIsReported) {
  // Past the red zone into the size kept after it: with the red zone's own fill (0xcc) the
  // size read 0xcccccccc (taken as the whole object: no report at all), with zeros 0 (a
  // report naming byte 0 of a block of 0 bytes). The size's complement beside it tells.
  for (char fill : {static_cast<char>(kRedActive), char{0}}) {
    EXPECT_DEATH(
        {
          Machine m{hardened(only(&HardeningConfig::redzone))};
          KmemCache* c = m.slab.create("rz-96", 96, 0, 0);
          auto* p = static_cast<char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
          std::memset(p + 96, fill, c->fp_offset + 8 - 96);
          m.slab.free(c, p, "kmem_cache_free");
        },
        "corruption in kmem_cache_free.*the size kept after the red zone was overwritten");
  }
}

TEST(RedzoneDeathTest, OverflowIntoAFreeNeighbourIsReportedWhenItIsTaken) {
  EXPECT_DEATH(
      {
        Machine m{hardened(only(&HardeningConfig::redzone))};
        KmemCache* c = m.slab.create("obj-32", 32, 0, 0);
        auto* a = static_cast<char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
        auto* b = static_cast<char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
        m.slab.free(c, b, "kmem_cache_free");
        b[35] = 1;  // the free slot's red zone (an overrun reaching it from far away)
        m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
        (void)a;
      },
      "red zone of a free object overwritten at byte 35");
}

// --- poison -------------------------------------------------------------------------------

TEST(Poison, NewObjectsReadAsPoisonAndZeroedOnesAsZero) {
  Machine m{hardened(only(&HardeningConfig::poison))};
  ASSERT_TRUE(m.ok());
  auto* p = static_cast<unsigned char*>(m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel));
  for (int i = 0; i < 63; ++i) ASSERT_EQ(p[i], kPoisonFree) << i;
  EXPECT_EQ(p[63], kPoisonEnd);
  auto* z = static_cast<unsigned char*>(m.km.kzalloc(64, GFP_KERNEL, kOwnerKernel));
  for (int i = 0; i < 64; ++i) ASSERT_EQ(z[i], 0) << i;
  m.km.kfree(p);
  m.km.kfree(z);
  EXPECT_TRUE(m.check());
}

TEST(PoisonDeathTest, WriteAfterFreeIsReportedWhenTheSlotIsReused) {
  EXPECT_DEATH(
      {
        Machine m{hardened(only(&HardeningConfig::poison))};
        void* keep = m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel);  // the slab stays (not discarded when empty)
        auto* p = static_cast<char*>(m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel));
        m.km.kfree(p);
        p[8] = 42;
        (void)keep;  // the dangling pointer writes
        m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel);
      },
      "corruption in kmalloc.*kmalloc-64.*written after it was freed \\(use after free\\): poison changed at byte 8");
}

TEST(Poison, CheckInvariantsFindsAWriteAfterFreeBeforeReuse) {
  Machine m{hardened(only(&HardeningConfig::poison))};
  ASSERT_TRUE(m.ok());
  void* keep = m.km.kmalloc(128, GFP_KERNEL, kOwnerKernel);  // the slab stays (not discarded when empty)
  auto* p = static_cast<char*>(m.km.kmalloc(128, GFP_KERNEL, kOwnerKernel));
  m.km.kfree(p);
  EXPECT_TRUE(m.check());
  p[3] = 7;
  auto r = m.check();
  EXPECT_FALSE(r);
  EXPECT_NE(std::string(r.message()).find("lost its poison"), std::string::npos) << r.message();
  p[3] = static_cast<char>(kPoisonFree);
  EXPECT_TRUE(m.check());
  m.km.kfree(keep);
}

// --- quarantine ---------------------------------------------------------------------------

TEST(Quarantine, DelaysReuseUntilItsBytesAreExceeded) {
  HardeningConfig h;
  h.quarantine_bytes = 4096;
  Machine m{hardened(h)};
  ASSERT_TRUE(m.ok());
  KmemCache* c = m.km.cache_for(64);
  void* first = m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel);
  m.km.kfree(first);
  EXPECT_EQ(m.slab.quarantine_objects(), 1u);
  EXPECT_EQ(m.slab.quarantine_bytes(), c->size);
  // 4096 / 64 = 64 objects fit; the first comes out when the 65th goes in.
  std::set<void*> seen;
  for (int i = 0; i < 63; ++i) {
    void* p = m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel);
    EXPECT_NE(p, first) << i;
    seen.insert(p);
    m.km.kfree(p);
  }
  EXPECT_EQ(m.slab.quarantine_objects(), 64u);
  EXPECT_TRUE(m.check()) << "quarantined objects are free but on no free list";
  EXPECT_EQ(c->active_objects(), 64u);
  void* p = m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel);
  m.km.kfree(p);  // pushes the 65th: the first leaves
  EXPECT_EQ(m.slab.quarantine_objects(), 64u);
  bool reused = false;
  for (int i = 0; i < 64 && !reused; ++i) reused = m.km.kmalloc(64, GFP_KERNEL, kOwnerKernel) == first;
  EXPECT_TRUE(reused) << "the oldest object came back to its slab";
  m.slab.quarantine_flush();
  EXPECT_EQ(m.slab.quarantine_objects(), 0u);
  EXPECT_EQ(m.slab.quarantine_bytes(), 0u);
  EXPECT_TRUE(m.check());
}

TEST(Quarantine, DoubleFreeOfAQuarantinedObjectIsStillCaught) {
  HardeningConfig h;
  h.quarantine_bytes = 64 << 10;
  Machine m{hardened(h)};
  ASSERT_TRUE(m.ok());
  void* p = m.km.kmalloc(100, GFP_KERNEL, kOwnerKernel);
  EXPECT_EQ(m.km.kfree(p), kOwnerKernel);
  ReportCapture cap;
  EXPECT_EQ(m.km.kfree(p), kOwnerFree);
  ASSERT_EQ(cap.reports().size(), 1u);
  EXPECT_EQ(cap.reports()[0].kind, ErrorKind::kDoubleFree);
  EXPECT_EQ(m.slab.quarantine_objects(), 1u);
}

TEST(Quarantine, DestroyFlushesItAndObjectsLargerThanItPassStraightThrough) {
  HardeningConfig h;
  h.quarantine_bytes = 1024;
  Machine m{hardened(h)};
  ASSERT_TRUE(m.ok());
  KmemCache* c = m.slab.create("q-200", 200, 0, 0);
  void* p = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
  m.slab.free(c, p, "kmem_cache_free");
  EXPECT_EQ(m.slab.quarantine_objects(), 1u);
  EXPECT_TRUE(m.slab.destroy(c)) << "destroy gives the quarantined object back first";
  EXPECT_EQ(m.slab.quarantine_objects(), 0u);
  void* big = m.km.kmalloc(2048, GFP_KERNEL, kOwnerKernel);  // kmalloc-2k: larger than the quarantine
  m.km.kfree(big);
  EXPECT_EQ(m.slab.quarantine_objects(), 0u);
  EXPECT_TRUE(m.check());
}

TEST(QuarantineDeathTest, AWriteAfterFreeIsCaughtWhenTheObjectLeavesIt) {
  // poison + quarantine: the object is checked as it leaves the quarantine, not only if its
  // slot is taken again (a slab given back whole would lose the evidence).
  EXPECT_DEATH(
      {
        HardeningConfig h;
        h.poison = true;
        h.quarantine_bytes = 4096;
        Machine m{hardened(h)};
        KmemCache* c = m.slab.create("uaf-200", 200, 0, 0);
        auto* p = static_cast<char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
        m.slab.free(c, p, "kmem_cache_free");
        p[17] = 1;  // the write after free
        for (int i = 0; i < 64; ++i) m.slab.free(c, m.slab.alloc(c, GFP_KERNEL, kOwnerKernel), "kmem_cache_free");
      },
      "corruption in kfree.*written after it was freed \\(use after free\\): poison changed at byte 17");
}

TEST(Quarantine, HoldsAtMostAQuarterOfRam) {
  HardeningConfig h;
  h.quarantine_bytes = std::uint64_t{64} << 20;  // more than the machine's 16 MiB
  Machine m{hardened(h)};
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m.slab.config().hardening.quarantine_bytes, std::uint64_t{m.phys.size()} / 4);
  EXPECT_GT(m.slab.config().hardening.quarantine_bytes, 0u);
}

TEST(Quarantine, AnAllocationThatFindsNoMemoryEmptiesItFirst) {
  // Live blocks fill the machine; half are freed (most of them wait in the quarantine); as
  // many are asked for again. The memory is free: a correct program must get it, the slabs
  // held by quarantined objects too (the reviewer's churn with quarantine=512M:ram=64M got
  // NULL with 59 MB waiting).
  for (std::size_t size : {std::size_t{1000}, std::size_t{3000}}) {
    HardeningConfig h;
    h.quarantine_bytes = std::uint64_t{4} << 20;
    Machine m{hardened(h)};
    ASSERT_TRUE(m.ok());
    std::vector<void*> live;
    while (void* p = m.km.kmalloc(size, GFP_KERNEL, kOwnerKernel)) live.push_back(p);
    ASSERT_GT(live.size(), 8u) << size;
    const std::size_t half = live.size() / 2;
    for (std::size_t i = 0; i < half; ++i) m.km.kfree(live[i]);
    EXPECT_GT(m.slab.quarantine_objects(), 0u) << size;
    for (std::size_t i = 0; i < half; ++i) {
      live[i] = m.km.kmalloc(size, GFP_KERNEL, kOwnerKernel);
      ASSERT_NE(live[i], nullptr) << size << " B: allocation " << i << " of " << half << " with "
                                  << m.slab.quarantine_objects() << " objects quarantined";
    }
    for (void* p : live) m.km.kfree(p);
    EXPECT_TRUE(m.check());
  }
  // Page runs too: every small object freed, most of them quarantined, their slabs held; the
  // runs asked for next need those frames.
  HardeningConfig h;
  h.quarantine_bytes = std::uint64_t{4} << 20;
  Machine m{hardened(h)};
  ASSERT_TRUE(m.ok());
  const std::uint64_t free0 = m.zone.free_pages();
  std::vector<void*> small;
  while (void* p = m.km.kmalloc(1000, GFP_KERNEL, kOwnerKernel)) small.push_back(p);
  for (void* p : small) m.km.kfree(p);
  EXPECT_GT(m.slab.quarantine_objects(), 0u);
  std::vector<void*> runs;
  while (void* p = m.km.kmalloc(std::size_t{64} << 10, GFP_KERNEL, kOwnerKernel)) runs.push_back(p);
  EXPECT_GE(runs.size() * 16, free0 * 9 / 10) << "runs of 64 KiB for 90 % of the free frames";
  for (void* p : runs) m.km.kfree(p);
  EXPECT_TRUE(m.check());
}

// One who can read a freed slot's link (and knows the next free offset) learns the mask and
// can forge a link to any slot of the slab: here to a live one. Freed a[2]'s link is made to
// name live a[5]; a[2] is taken again, and the next pop would hand out a[5] a second time.
struct ForgedLink {
  explicit ForgedLink(bool harden, bool owned) : m{options(harden, owned)} {
    c = m.slab.create("forge-64", 64, 0, 0);
    for (auto& p : a) p = static_cast<char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
    m.slab.free(c, a[2], "kmem_cache_free");
    SlabAllocator::ObjectInfo info{};
    EXPECT_TRUE(m.slab.lookup(a[5], &info));
    const auto target = static_cast<std::uint32_t>(info.index * c->size);  // a[5]'s offset
    std::uint32_t raw;
    std::memcpy(&raw, a[2], sizeof raw);
    const std::uint32_t forged = target ^ raw ^ m.slab.get_link(c, a[2]);  // raw ^ link: the mask
    std::memcpy(a[2], &forged, sizeof forged);
    EXPECT_EQ(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel), a[2]);
  }
  static MachineOptions options(bool harden, bool owned) {
    MachineOptions o = hardened(harden ? only(&HardeningConfig::freelist_hardened) : HardeningConfig{});
    o.slab_cfg.thread_caches = owned;
    return o;
  }
  Machine m;
  KmemCache* c = nullptr;
  char* a[8] = {};
};

TEST(FreelistHardened, TheFastPopOfAForgedLinkToALiveObjectRefuses) {
  // A thread's own slab: the fast path pops without the general path's checks. Plain links
  // it follows (it looks at no owner byte: the common case pays nothing); with the option on
  // it reads the owner byte it is about to write and refuses a slot in use.
  ForgedLink plain(false, true);
  ASSERT_EQ(plain.c->tc_slot == 0xFF, false);
  EXPECT_EQ(plain.m.slab.alloc_fast(plain.c, GFP_KERNEL, kOwnerKernel), plain.a[5]);
  ForgedLink hard(true, true);
  EXPECT_EQ(hard.m.slab.alloc_fast(hard.c, GFP_KERNEL, kOwnerKernel), nullptr);
}

TEST(FreelistHardenedDeathTest, ALinkForgedWithTheLeakedKeyStillHandsOutNoLiveObject) {
  // The general path, which the fast path's refusal leads to, names it; so does the cache's
  // own path (no thread caches), with or without the option.
  for (bool owned : {true, false}) {
    EXPECT_DEATH(
        {
          ForgedLink f(true, owned);
          f.m.slab.alloc(f.c, GFP_KERNEL, kOwnerKernel);
        },
        "corruption in kmalloc.*free list points at an object in use")
        << (owned ? "thread-owned slab" : "cache's own slabs");
  }
}

// --- guard pages --------------------------------------------------------------------------

TEST(GuardPages, LargeBlocksGetAnExactRunAndOneGuardFrame) {
  Machine m{hardened(only(&HardeningConfig::guard_pages), &mmap_platform())};
  ASSERT_TRUE(m.ok());
  std::uint64_t free0 = m.zone.free_pages();
  auto* p = static_cast<char*>(m.km.kmalloc(10000, GFP_KERNEL, kOwnerKernel));
  ASSERT_NE(p, nullptr);
  Page* head = m.phys.virt_to_page(p);
  EXPECT_TRUE(head->is(PG_guarded));
  EXPECT_EQ(head->get_nr_pages(), 4u) << "3 pages for 10000 bytes + the guard";
  EXPECT_EQ(head->lru.objects, 1u) << "the mmap platform protects the guard frame";
  EXPECT_EQ(free0 - m.zone.free_pages(), 4u);
  EXPECT_EQ(m.km.ksize(p), 10000u);
  EXPECT_EQ(Kmalloc::large_usable_bytes(head), 3 * kPageSize);
  std::memset(p, 1, 10000);
  m.km.kfree(p);
  EXPECT_EQ(m.km.guard_cache_pages(), 4u) << "parked, guard still protected";
  EXPECT_EQ(m.km.drain_guard_cache(), 4u);
  EXPECT_EQ(m.zone.free_pages(), free0);
  // The frame is usable again after the drain (unprotected): a new block may cover it.
  std::vector<char*> blocks;
  for (int i = 0; i < 8; ++i) {
    blocks.push_back(static_cast<char*>(m.km.kmalloc(2 * kPageSize + 1, GFP_KERNEL, kOwnerKernel)));
    std::memset(blocks.back(), 2, 2 * kPageSize + 1);
  }
  for (char* b : blocks) m.km.kfree(b);
  m.km.drain_guard_cache();
  EXPECT_EQ(m.zone.free_pages(), free0);
  EXPECT_TRUE(m.check());
}

TEST(GuardPages, AFreedRunIsParkedAndTakenAgainBySameSizedRequest) {
  Machine m{hardened(only(&HardeningConfig::guard_pages), &mmap_platform())};
  ASSERT_TRUE(m.ok());
  std::uint64_t free0 = m.zone.free_pages();
  auto* p = static_cast<char*>(m.km.kmalloc(10000, GFP_KERNEL, kOwnerKernel));
  m.km.kfree(p);
  EXPECT_EQ(m.km.large_pages(), 0u) << "a parked run is not a live block";
  EXPECT_EQ(m.km.ksize(p), 0u);
  EXPECT_EQ(m.km.owner_of(p), kOwnerFree);
  EXPECT_FALSE(m.km.set_owner(p, kOwnerKernel)) << "a parked run is not revived";
  // Same page count (3 + guard), different size: the parked run, slack patterned anew.
  auto* q = static_cast<char*>(m.km.kmalloc(12000, GFP_KERNEL | __GFP_ZERO, kOwnerKernel));
  EXPECT_EQ(q, p);
  EXPECT_EQ(m.km.guard_cache_hits(), 1u);
  EXPECT_EQ(m.km.guard_cache_pages(), 0u);
  EXPECT_EQ(m.km.ksize(q), 12000u);
  for (std::size_t i = 0; i < 12000; ++i) ASSERT_EQ(q[i], 0) << i;
  for (std::size_t i = 12000; i < 3 * kPageSize; ++i) ASSERT_EQ(static_cast<std::uint8_t>(q[i]), kGuardFill) << i;
  EXPECT_EQ(m.phys.virt_to_page(q)->lru.objects, 1u) << "its guard is still protected";
  // Another page count does not take it.
  auto* r = static_cast<char*>(m.km.kmalloc(5 * kPageSize, GFP_KERNEL, kOwnerKernel));
  EXPECT_EQ(m.km.guard_cache_hits(), 1u);
  m.km.kfree(q);
  m.km.kfree(r);
  EXPECT_EQ(m.km.guard_cache_pages(), 4u + 6u);
  m.km.drain_guard_cache();
  EXPECT_EQ(m.zone.free_pages(), free0);
  EXPECT_TRUE(m.check());
}

TEST(GuardPages, ParkedRunsGoBackAfterAWholeIdlePeriodWhenTheCacheIsFullOrOnFailure) {
  Machine m{hardened(only(&HardeningConfig::guard_pages), &mmap_platform())};
  ASSERT_TRUE(m.ok());
  std::uint64_t free0 = m.zone.free_pages();
  // Aging: the first aged drain marks, the second gives back what was parked before the first.
  m.km.kfree(m.km.kmalloc(2 * kPageSize + 1, GFP_KERNEL, kOwnerKernel));  // 3 + 1 frames
  EXPECT_EQ(m.km.drain_guard_cache(true), 0u);
  m.km.kfree(m.km.kmalloc(4 * kPageSize, GFP_KERNEL, kOwnerKernel));  // 4 + 1, parked after the mark
  EXPECT_EQ(m.km.drain_guard_cache(true), 4u);
  EXPECT_EQ(m.km.guard_cache_pages(), 5u);
  EXPECT_EQ(m.km.drain_guard_cache(true), 5u);
  EXPECT_EQ(m.zone.free_pages(), free0);
  // At most 1/32 of the managed frames wait: a run that would pass it goes straight back.
  std::uint64_t cap = m.zone.managed_pages() / 32;
  std::vector<void*> big;
  for (std::uint64_t parked = 0; parked + 9 <= cap; parked += 9)
    big.push_back(m.km.kmalloc(8 * kPageSize, GFP_KERNEL, kOwnerKernel));
  void* one_more = m.km.kmalloc(8 * kPageSize, GFP_KERNEL, kOwnerKernel);
  for (void* b : big) m.km.kfree(b);
  std::uint64_t parked = m.km.guard_cache_pages();
  EXPECT_LE(parked, cap);
  m.km.kfree(one_more);
  EXPECT_EQ(m.km.guard_cache_pages(), parked) << "over the cap: given back, not parked";
  // Exhaustion: an allocation that finds no frames drains the cache and tries again.
  std::vector<void*> fill;
  while (void* b = m.km.kmalloc(16 * kPageSize, GFP_KERNEL, kOwnerKernel)) fill.push_back(b);
  EXPECT_EQ(m.km.guard_cache_pages(), 0u) << "drained before the allocation failed";
  for (void* b : fill) m.km.kfree(b);
  m.km.drain_guard_cache();
  EXPECT_EQ(m.zone.free_pages(), free0);
  EXPECT_TRUE(m.check());
}

TEST(GuardPages, ASecondFreeOfAParkedRunIsADoubleFree) {
  Machine m{hardened(only(&HardeningConfig::guard_pages), &mmap_platform())};
  ASSERT_TRUE(m.ok());
  ReportCapture cap;
  void* p = m.km.kmalloc(10000, GFP_KERNEL, kOwnerKernel);
  m.km.kfree(p);
  m.km.kfree(p);
  ASSERT_EQ(cap.reports().size(), 1u);
  EXPECT_EQ(cap.reports()[0].kind, ErrorKind::kDoubleFree);
  EXPECT_EQ(m.km.guard_cache_pages(), 4u) << "parked once";
  m.km.drain_guard_cache();
  EXPECT_TRUE(m.check());
}

TEST(GuardPages, TheLargestBuddyBlockHasNoRoomForAGuard) {
  MachineOptions o = hardened(only(&HardeningConfig::guard_pages), &mmap_platform());
  o.kmalloc_cfg.policy = KmallocPolicy::kKmalloc2;  // up to 4 MiB, the largest buddy block
  Machine m{o};
  ASSERT_TRUE(m.ok());
  void* p = m.km.kmalloc(kPageSize << kMaxOrder, GFP_KERNEL, kOwnerKernel);
  ASSERT_NE(p, nullptr) << "served unguarded rather than refused";
  EXPECT_FALSE(m.phys.virt_to_page(p)->is(PG_guarded));
  void* q = m.km.kmalloc((kPageSize << kMaxOrder) - kPageSize, GFP_KERNEL, kOwnerKernel);
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(m.phys.virt_to_page(q)->is(PG_guarded));
  m.km.kfree(p);
  m.km.kfree(q);
  EXPECT_TRUE(m.check());
}

TEST(GuardPages, KreallocWithinTheFramesStaysInPlaceAndTheSlackFollows) {
  Machine m{hardened(only(&HardeningConfig::guard_pages), &mmap_platform())};
  ASSERT_TRUE(m.ok());
  auto* p = static_cast<unsigned char*>(m.km.kmalloc(9000, GFP_KERNEL, kOwnerKernel));  // 3 frames + guard
  ASSERT_NE(p, nullptr);
  for (std::size_t i = 0; i < 9000; ++i) p[i] = static_cast<unsigned char>(i);
  std::uint64_t free0 = m.zone.free_pages();
  // Grow to the end of the frames: same block, ksize follows, the new bytes are writable.
  auto* q = static_cast<unsigned char*>(m.km.krealloc(p, 3 * kPageSize, GFP_KERNEL, kOwnerKernel));
  ASSERT_EQ(q, p);
  EXPECT_EQ(m.km.ksize(p), 3 * kPageSize);
  std::memset(p + 9000, 7, 3 * kPageSize - 9000);
  // Shrink: ksize follows and the bytes given up become slack (checked at free).
  ASSERT_EQ(m.km.krealloc(p, 5000, GFP_KERNEL, kOwnerKernel), p);
  EXPECT_EQ(m.km.ksize(p), 5000u);
  for (std::size_t i = 5000; i < 3 * kPageSize; ++i) ASSERT_EQ(p[i], kGuardFill) << i;
  // __GFP_ZERO: the part grown into reads zero.
  ASSERT_EQ(m.km.krealloc(p, 11000, GFP_KERNEL | __GFP_ZERO, kOwnerKernel), p);
  for (std::size_t i = 5000; i < 11000; ++i) ASSERT_EQ(p[i], 0u) << i;
  for (std::size_t i = 0; i < 5000; ++i) ASSERT_EQ(p[i], static_cast<unsigned char>(i)) << i;
  EXPECT_EQ(m.zone.free_pages(), free0) << "no frames taken or given back";
  // Past the frames: the block moves to a new guarded run, contents kept.
  auto* r = static_cast<unsigned char*>(m.km.krealloc(p, 3 * kPageSize + 1, GFP_KERNEL, kOwnerKernel));
  ASSERT_NE(r, nullptr);
  EXPECT_NE(r, p);
  EXPECT_EQ(m.km.ksize(r), 3 * kPageSize + 1);
  for (std::size_t i = 0; i < 5000; ++i) ASSERT_EQ(r[i], static_cast<unsigned char>(i)) << i;
  m.km.kfree(r);
  EXPECT_TRUE(m.check());
}

// A module's guarded run is resized in place only while no pass may sweep it (ModuleWindow):
// a sweep checks its slack against its size. A thread with no cache (as here: this machine
// has no thread caches) opens its window through the count of unfenced windows, which a
// pass's fence waits out: resized in place while the module is live; once a pass has flagged
// it gone, krealloc moves it, and the moved block is the caller's.
TEST(GuardPages, AModulesRunIsResizedInPlaceUntilItsOwnerIsGone) {
  Machine m{hardened(only(&HardeningConfig::guard_pages), &mmap_platform())};
  ASSERT_TRUE(m.ok());
  constexpr owner_t kModule = kOwnerFirstModule + 1;
  auto* p = static_cast<unsigned char*>(m.km.kmalloc(9000, GFP_KERNEL, kModule));  // 3 frames + guard
  ASSERT_NE(p, nullptr);
  for (std::size_t i = 0; i < 9000; ++i) p[i] = static_cast<unsigned char>(i);
  EXPECT_TRUE(m.km.resize_guarded(p, 3 * kPageSize, "test"));
  EXPECT_EQ(m.km.ksize(p), 3 * kPageSize) << "in place, within its frames";
  bool dead[kMaxOwners] = {};
  dead[kModule] = true;
  m.slab.mark_owners_gone(dead);
  EXPECT_FALSE(m.km.resize_guarded(p, 9000, "test"));
  EXPECT_EQ(m.km.ksize(p), 3 * kPageSize) << "refused: nothing changed";
  auto* q = static_cast<unsigned char*>(m.km.krealloc(p, 3 * kPageSize + 1, GFP_KERNEL, kOwnerKernel));
  ASSERT_NE(q, nullptr);
  EXPECT_NE(q, p) << "moved";
  EXPECT_EQ(m.km.owner_of(q), kOwnerKernel) << "moved once its owner is gone: the caller's";
  for (std::size_t i = 0; i < 9000; ++i) ASSERT_EQ(q[i], static_cast<unsigned char>(i)) << i;
  EXPECT_EQ(m.km.kfree(q), kOwnerKernel);
  EXPECT_TRUE(m.check());
}

// The same for a debug cache's object (redzone): resized within its slot only inside the
// window, as its red zone follows the size a sweep checks it against.
TEST(Redzone, AModulesObjectIsResizedInPlaceUntilItsOwnerIsGone) {
  Machine m{hardened(only(&HardeningConfig::redzone))};
  ASSERT_TRUE(m.ok());
  constexpr owner_t kModule = kOwnerFirstModule + 1;
  auto* p = static_cast<unsigned char*>(m.km.kmalloc(40, GFP_KERNEL, kModule));
  ASSERT_NE(p, nullptr);
  for (std::size_t i = 0; i < 40; ++i) p[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(m.km.krealloc(p, 30, GFP_KERNEL, kOwnerKernel), p) << "in place, within its slot";
  EXPECT_EQ(m.km.owner_of(p), kModule);
  EXPECT_EQ(m.km.ksize(p), 30u);
  bool dead[kMaxOwners] = {};
  dead[kModule] = true;
  m.slab.mark_owners_gone(dead);
  auto* q = static_cast<unsigned char*>(m.km.krealloc(p, 20, GFP_KERNEL, kOwnerKernel));
  ASSERT_NE(q, nullptr);
  EXPECT_NE(q, p) << "moved, though it fits its slot";
  EXPECT_EQ(m.km.owner_of(q), kOwnerKernel) << "moved once its owner is gone: the caller's";
  EXPECT_EQ(m.km.ksize(q), 20u);
  for (std::size_t i = 0; i < 20; ++i) ASSERT_EQ(q[i], static_cast<unsigned char>(i)) << i;
  // The kernel's own object keeps resizing in place.
  auto* k = static_cast<unsigned char*>(m.km.kmalloc(40, GFP_KERNEL, kOwnerKernel));
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(m.km.krealloc(k, 30, GFP_KERNEL, kOwnerKernel), k);
  EXPECT_EQ(m.km.ksize(k), 30u);
  EXPECT_EQ(m.km.kfree(q), kOwnerKernel);
  m.km.kfree(k);
  EXPECT_TRUE(m.check());
}

TEST(GuardPagesDeathTest, SlackDamageIsReportedWhenKreallocGrowsOverIt) {
  // Growing in place would make the damaged byte part of the block: the check comes first.
  EXPECT_DEATH(
      {
        Machine m{hardened(only(&HardeningConfig::guard_pages), &mmap_platform())};
        auto* p = static_cast<char*>(m.km.kmalloc(9000, GFP_KERNEL, kOwnerKernel));
        p[9001] = 0;
        m.km.krealloc(p, 10000, GFP_KERNEL, kOwnerKernel);
      },
      "corruption in krealloc.*large block overrun: byte 9001 of a block of 9000 bytes");
}

TEST(GuardPagesDeathTest, AWriteIntoTheSlackAKreallocGaveUpIsReportedAtFree) {
  EXPECT_DEATH(
      {
        Machine m{hardened(only(&HardeningConfig::guard_pages), &mmap_platform())};
        auto* p = static_cast<char*>(m.km.kmalloc(12000, GFP_KERNEL, kOwnerKernel));
        p = static_cast<char*>(m.km.krealloc(p, 9000, GFP_KERNEL, kOwnerKernel));
        p[9000] = 0;
        m.km.kfree(p);
      },
      "corruption in kfree.*large block overrun: byte 9000 of a block of 9000 bytes");
}

TEST(GuardPagesDeathTest, ALinearOverrunFaultsAtTheGuard) {
  // The fault must be the store to the guard frame's first byte (fault_probe.h), not a
  // failed allocation or any earlier byte.
  EXPECT_EXIT(
      {
        Machine m{hardened(only(&HardeningConfig::guard_pages), &mmap_platform())};
        auto* p =
            static_cast<volatile char*>(static_cast<char*>(m.km.kmalloc(3 * kPageSize, GFP_KERNEL, kOwnerKernel)));
        if (p == nullptr) test::allocation_failed("kmalloc(3 pages)");
        test::expect_fault_at(p + 3 * kPageSize);
        for (std::size_t i = 0; i <= 3 * kPageSize; ++i) p[i] = 1;  // the last store hits the guard
      },
      testing::KilledBySignal(SIGSEGV), test::kFaultAtExpectedAddress);
}

TEST(GuardPagesDeathTest, ARunTakenFromTheCacheStillFaultsAtItsGuard) {
  EXPECT_EXIT(
      {
        Machine m{hardened(only(&HardeningConfig::guard_pages), &mmap_platform())};
        void* first = m.km.kmalloc(3 * kPageSize, GFP_KERNEL, kOwnerKernel);
        if (first == nullptr) test::allocation_failed("kmalloc(3 pages)");
        m.km.kfree(first);
        auto* p =
            static_cast<volatile char*>(static_cast<char*>(m.km.kmalloc(3 * kPageSize - 5, GFP_KERNEL, kOwnerKernel)));
        if (p == nullptr) test::allocation_failed("kmalloc(3 pages - 5)");
        if (m.km.guard_cache_hits() != 1) std::exit(0);  // not reused: exiting cleanly fails the test
        test::expect_fault_at(p + 3 * kPageSize);
        for (std::size_t i = 0; i <= 3 * kPageSize; ++i) p[i] = 1;  // the last store hits the guard
      },
      testing::KilledBySignal(SIGSEGV), test::kFaultAtExpectedAddress);
}

TEST(GuardPagesDeathTest, SlackOverrunIsReportedAtFree) {
  EXPECT_DEATH(
      {
        Machine m{hardened(only(&HardeningConfig::guard_pages), &mmap_platform())};
        auto* p = static_cast<char*>(m.km.kmalloc(10000, GFP_KERNEL, kOwnerKernel));
        p[10000] = 0;
        m.km.kfree(p);
      },
      "corruption in kfree.*large block overrun: byte 10000 of a block of 10000 bytes");
}

TEST(GuardPagesDeathTest, WithoutProtectionTheGuardFrameIsChecked) {
  // A static buffer cannot protect a frame: the guard is a pattern, checked on free.
  static char buffer[8 << 20] __attribute__((aligned(4096)));
  EXPECT_DEATH(
      {
        StaticPlatform plat(buffer, sizeof buffer);
        Machine m{hardened(only(&HardeningConfig::guard_pages), &plat)};
        auto* p = static_cast<char*>(m.km.kmalloc(12000, GFP_KERNEL, kOwnerKernel));  // 3 pages + guard
        Page* head = m.phys.virt_to_page(p);
        if (head->lru.objects != 2) std::exit(0);  // not patterned: exiting cleanly fails the test
        p[3 * kPageSize + 100] = 0;
        m.km.kfree(p);
      },
      "overrun into its guard page: byte 12388 of a block of 12000 bytes");
}

// --- everything on ------------------------------------------------------------------------

TEST(Hardening, RandomWorkloadWithEveryOptionKeepsTheInvariants) {
  HardeningConfig h;
  h.freelist_hardened = h.redzone = h.poison = h.guard_pages = true;
  h.quarantine_bytes = 32 << 10;
  Machine m{hardened(h, &mmap_platform())};
  ASSERT_TRUE(m.ok());
  std::uint64_t free0 = m.zone.free_pages();
  std::mt19937 rng(7);
  struct Live {
    char* p;
    std::size_t size;
    char fill;
  };
  std::vector<Live> live;
  for (int step = 0; step < 3000; ++step) {
    auto op = static_cast<unsigned>(rng() % 10);
    if (op < 5 || live.empty()) {
      std::size_t size = rng() % 4 == 0 ? 1 + rng() % 20000 : 1 + rng() % 600;
      auto* p = static_cast<char*>(m.km.kmalloc(size, GFP_KERNEL, kOwnerKernel));
      ASSERT_NE(p, nullptr) << step;
      ASSERT_EQ(m.km.ksize(p), size);
      char fill = static_cast<char>(rng());
      std::memset(p, fill, size);  // every byte asked for, and not one more
      live.push_back({p, size, fill});
    } else if (op < 9) {
      std::size_t i = rng() % live.size();
      for (std::size_t b = 0; b < live[i].size; ++b) ASSERT_EQ(live[i].p[b], live[i].fill) << step;
      m.km.kfree(live[i].p);
      live[i] = live.back();
      live.pop_back();
    } else {
      std::size_t i = rng() % live.size();
      std::size_t size = 1 + rng() % 3000;
      auto* q = static_cast<char*>(m.km.krealloc(live[i].p, size, GFP_KERNEL, kOwnerKernel));
      ASSERT_NE(q, nullptr);
      std::size_t keep = std::min(size, live[i].size);
      for (std::size_t b = 0; b < keep; ++b) ASSERT_EQ(q[b], live[i].fill) << step;
      std::memset(q, live[i].fill, size);
      live[i] = {q, size, live[i].fill};
    }
    if (step % 100 == 0) {
      ASSERT_TRUE(m.check()) << step;
    }
  }
  for (const Live& l : live) m.km.kfree(l.p);
  m.slab.quarantine_flush();
  m.km.drain_guard_cache();  // parked guarded runs are free memory too
  ASSERT_TRUE(m.check());
  for (unsigned i = 0; i < kNrKmallocClasses; ++i) EXPECT_EQ(m.km.class_cache(i)->active_objects(), 0u);
  EXPECT_EQ(m.km.large_pages(), 0u);
  m.shutdown_slab();
  EXPECT_EQ(m.zone.free_pages(), m.boot_free_pages()) << "every frame back, the quarantine ring included";
  (void)free0;
}

}  // namespace
}  // namespace kmm

// tests/slab/test_owned_slab.cpp — slabs owned by a thread (src/slab/owned_slab.cpp and the fast
// paths in slab.h): frees by other threads reach the owner through the slab's remote list and
// are allocated again without new slabs; a full slab that remote frees reach is found through
// the owner's hint; a thread that exits gives its slabs back with their remote frees merged;
// a full slab takes fast frees until a quarter of it is free, and the frees that change the
// thread's slab lists (and its refills) are finished apart from the general path; the collector's free of an
// object on a thread's slab goes onto the remote list; a fresh slab's free list is threaded a
// frame at a time; emptied slabs stay with their thread up to kKeptEmptySlabs.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../common/machine_fixture.h"
#include "../common/report_capture.h"
#include "slab/thread_cache.h"

namespace kmm {
namespace {

using test::Machine;
using test::MachineOptions;
using test::ReportCapture;

// RAM aligned as the preload's is (a free finds an owned slab's head by masking), or only to
// a page (through the page descriptors).
MachineOptions with_thread_caches(bool aligned = true) {
  MachineOptions o;
  o.ram = std::size_t{8} << 20;
  o.ram_align = aligned ? kPageSize << kMaxOrder : kPageSize;
  o.kmalloc = false;
  o.slab_cfg = SlabConfig{.thread_caches = true, .min_partial = 0, .hardening = {}, .random_seed = 0};
  return o;
}

// A cache whose slabs threads own (the fast paths' caches).
KmemCache* owned_cache(Machine& m, const char* name, std::size_t size) {
  KmemCache* c = m.slab.create(name, size, 0, 0);
  EXPECT_NE(c, nullptr);
  if (c != nullptr) {
    EXPECT_NE(c->tc_slot, 0xFF) << name;
  }
  return c;
}

// The end of a test: this thread's slabs back to c, the machine sound, c empty and destroyed.
void drain_check_destroy(Machine& m, KmemCache* c) {
  m.slab.drain_current_thread();
  EXPECT_EQ(c->active_objects(), 0u);
  EXPECT_TRUE(m.check());
  EXPECT_TRUE(m.slab.destroy(c));
}

// The head descriptor of the thread-owned slab that holds p (found by masking, as free_fast_masked does).
Page* owned_slab_head(Machine& m, const void* p) {
  auto base = reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{kMaxOwnedSlabBytes - 1};
  return m.phys.virt_to_page(reinterpret_cast<void*>(base));
}

// A free that must be refused and reported as kind, changing nothing.
void expect_refused_free(Machine& m, KmemCache* c, const void* p, ErrorKind kind) {
  ReportCapture cap;
  EXPECT_EQ(m.slab.free(c, p, "kfree"), kOwnerFree);
  ASSERT_EQ(cap.count(), 1u);
  EXPECT_EQ(cap.last().kind, kind);
}

// Runs fn on a thread of its own and waits for it (the thread's slabs go back when it exits).
template <typename Fn>
void on_other_thread(Fn&& fn) {
  std::thread t(std::forward<Fn>(fn));
  t.join();
}

void remote_frees_come_back(bool aligned) {
  Machine m(with_thread_caches(aligned));
  ASSERT_TRUE(m.ok());
  KmemCache* c = m.slab.create("own-64", 64, 0, 0);
  ASSERT_NE(c->tc_slot, 0xFF);
  EXPECT_EQ(c->order, kOwnedSlabOrder);
  EXPECT_FALSE(c->offslab_owners);
  std::vector<void*> objs;
  for (unsigned i = 0; i < 3u * c->objects; ++i) objs.push_back(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
  std::uint64_t slabs = c->nr_slabs.load();
  EXPECT_EQ(c->nr_owned, slabs) << "every slab this thread allocated from is its own";
  on_other_thread([&] {
    for (void* p : objs) EXPECT_EQ(m.slab.free(c, p, "kmem_cache_free"), kOwnerKernel);
  });
  // The frees sat on the slabs' remote lists: the owner takes them back, and a second free of
  // any of them is still a double free.
  {
    ReportCapture cap;
    EXPECT_EQ(m.slab.free(c, objs[5], "kmem_cache_free"), kOwnerFree);
    ASSERT_EQ(cap.count(), 1u);
    EXPECT_EQ(cap.last().kind, ErrorKind::kDoubleFree);
  }
  std::set<void*> before(objs.begin(), objs.end());
  std::vector<void*> again;
  for (unsigned i = 0; i < 3u * c->objects; ++i) {
    void* p = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
    ASSERT_TRUE(before.count(p)) << "object " << i << " is not one the other thread freed";
    again.push_back(p);
  }
  EXPECT_EQ(std::set<void*>(again.begin(), again.end()).size(), again.size()) << "handed out twice";
  EXPECT_EQ(c->nr_slabs.load(), slabs) << "no new slab while remote frees wait";
  for (void* p : again) m.slab.free(c, p, "kmem_cache_free");
  m.slab.drain_current_thread();
  EXPECT_EQ(c->active_objects(), 0u);
  EXPECT_EQ(c->nr_owned, 0u);
  EXPECT_TRUE(m.check());
  EXPECT_TRUE(m.slab.destroy(c));
  m.shutdown_slab();
}

TEST(OwnedSlab, RemoteFreesComeBackToTheOwnerWithoutNewSlabs) {
  remote_frees_come_back(/*aligned=*/true);
}

TEST(OwnedSlab, RemoteFreesComeBackWhenHeadsAreFoundThroughDescriptors) {
  remote_frees_come_back(/*aligned=*/false);
}

// The fast paths' slot test (owned_slot_start: one multiply for the index and the "starts a
// slot" answer) against exact division, for every geometry create() gives a cache whose slabs
// threads own: every size a slot can have, every offset in the slab and some far beyond it
// (kNoObject, lazy links).
TEST(OwnedSlab, TheSlotTestIsExactForEveryOwnedGeometry) {
  for (std::uint32_t size = 8; size <= kKmallocMaxCacheSize; size += size < 1024 ? 1 : 8) {
    const std::uint32_t objects = owned_objects_for(size);  // size_cache, owned
    const auto reciprocal = static_cast<std::uint32_t>(((std::uint64_t{1} << 32) + size - 1) / size);
    auto agrees = [&](std::uint64_t off) {
      std::uint64_t q = off * reciprocal;
      bool fast = (q >> 32) < objects && owned_slot_start(q);
      bool exact = off < std::uint64_t{objects} * size && off % size == 0;
      return fast == exact;
    };
    for (std::uint32_t off = 0; off < kMaxOwnedSlabBytes; ++off)
      ASSERT_TRUE(agrees(off)) << "size " << size << " offset " << off;
    for (std::uint64_t off : {std::uint64_t{kNoObject}, std::uint64_t{kLazyLink}, std::uint64_t{kLazyLink | 4096},
                              std::uint64_t{kLazyLink | kMaxOwnedSlabBytes}, std::uint64_t{kMaxOwnedSlabBytes} * size,
                              std::uint64_t{1} << 31})
      ASSERT_TRUE(agrees(off)) << "size " << size << " offset " << off;
  }
}

// The same test on real caches: a free of a pointer inside an object, not at its start, is
// refused and reported, and the object stays allocated.
TEST(OwnedSlab, AFreeInsideAnObjectIsReportedNotTaken) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  for (std::size_t size : {8u, 24u, 40u, 100u, 1000u, 4000u, 8000u}) {
    KmemCache* c = owned_cache(m, "own-odd", size);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->objects, owned_objects_for(c->size)) << "the geometry the test above checks";
    auto* p = static_cast<char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
    auto* q = static_cast<char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
    ASSERT_NE(p, nullptr);
    for (std::size_t d : {std::size_t{1}, std::size_t{4}, std::size_t{c->size} / 2, std::size_t{c->size} - 1}) {
      SCOPED_TRACE(testing::Message() << "size " << size << " +" << d);
      expect_refused_free(m, c, q + d, ErrorKind::kInvalidFree);
    }
    EXPECT_EQ(m.slab.free(c, q, "kmem_cache_free"), kOwnerKernel);
    EXPECT_EQ(m.slab.free(c, p, "kmem_cache_free"), kOwnerKernel);
    drain_check_destroy(m, c);
  }
  m.shutdown_slab();
}

// An owned slab carries its cache's geometry in its second frame's descriptor, on the line of
// its head's, and the free fast path reads that copy, not the cache: with a copy that says the
// slab holds no object, the fast free refuses (and the general path, which reads the cache,
// frees), and check_invariants names a slab of the cache's lists whose copy differs.
TEST(OwnedSlab, AnOwnedSlabsGeometryLiesBesideItsHeadAndTheFastFreeReadsIt) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m.slab.owned_by_mask());
  KmemCache* c = owned_cache(m, "own-geo", 48);
  ASSERT_NE(c, nullptr);
  void* keep = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
  void* p = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
  Page* head = owned_slab_head(m, p);
  ASSERT_TRUE(head->is(PG_slab) && head->is(PG_head));
  EXPECT_TRUE(m.slab.owned_geometry_ok(c, head));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(head) >> 6,
            reinterpret_cast<std::uintptr_t>(&head[1].tail.owners[kTailOwnerBytes - 1]) >> 6)
      << "the copy and the head descriptor share a cache line";

  std::uint8_t saved[kTailOwnerBytes];
  std::memcpy(saved, head[1].tail.owners, sizeof saved);
  const std::uint32_t no_objects = 0;
  std::memcpy(head[1].tail.owners + offsetof(OwnedSlabGeometry, objects), &no_objects, sizeof no_objects);
  owner_t freed = kOwnerFree;
  EXPECT_EQ(m.slab.free_fast_masked(c, p, &freed), kFreeFastNo) << "the fast free read the cache, not the copy";
  SlabAllocator::ObjectInfo info;
  ASSERT_TRUE(m.slab.lookup(p, &info));
  EXPECT_EQ(info.owner, kOwnerKernel) << "a refused fast free changes nothing";
  EXPECT_EQ(m.slab.free(c, p, "kmem_cache_free"), kOwnerKernel);  // the general path
  std::memcpy(head[1].tail.owners, saved, sizeof saved);
  p = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
  EXPECT_NE(m.slab.free_fast_masked(c, p, &freed), kFreeFastNo);
  EXPECT_EQ(freed, kOwnerKernel);

  m.slab.drain_current_thread();  // the slab, with `keep`, goes to the cache's partial list
  EXPECT_TRUE(m.check());
  std::memcpy(head[1].tail.owners + offsetof(OwnedSlabGeometry, objects), &no_objects, sizeof no_objects);
  testing::AssertionResult bad = m.check();
  EXPECT_FALSE(bad);
  EXPECT_NE(std::string(bad.message()).find("geometry"), std::string::npos) << bad.message();
  std::memcpy(head[1].tail.owners, saved, sizeof saved);
  EXPECT_EQ(m.slab.free(c, keep, "kmem_cache_free"), kOwnerKernel);
  drain_check_destroy(m, c);
  m.shutdown_slab();
}

// A module's object freed by the thread that owns its slab: the owner the free returns is the
// module's (kfree's callers count by it), the slot is free again, and a second free is a
// double free; a gone module's object (the collector may be claiming it) is freed as well,
// through the exchange of the general path.
// Owner colouring (slab.h): the slabs of a class keep their owner vectors in kOwnerColours
// places in turn, each after the slots and inside the slab; the descriptor path, the geometry
// copy beside each head and every free path agree on each object's owner byte: a free by this
// thread (the fast path reads the copy), by another (free_fast_remote reads the copy too), and
// a second free of one of them, still found a double free.
TEST(OwnedSlab, OwnerVectorsAreColouredSlabBySlab) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  KmemCache* c = owned_cache(m, "own-colour", 1000);
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->owner_colour_mask, kOwnerColours - 1);
  std::vector<void*> objs;
  std::set<Page*> heads;
  while (heads.size() < 2 * kOwnerColours) {
    void* p = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
    ASSERT_NE(p, nullptr);
    objs.push_back(p);
    heads.insert(owned_slab_head(m, p));
  }
  std::set<std::uint32_t> offsets;
  for (Page* head : heads) {
    char* base = static_cast<char*>(m.phys.page_address(head));
    std::uint32_t off = m.slab.owners_offset_at(c, base);
    EXPECT_GE(off, std::uint64_t{c->objects} * c->size) << "after the slots";
    EXPECT_EQ((off - c->owners_offset) % kOwnerColourBytes, 0u);
    EXPECT_LE(off + c->objects, kMaxOwnedSlabBytes) << "inside the slab";
    EXPECT_EQ(reinterpret_cast<char*>(m.slab.owner_slot(c, head, 0)), base + off);
    EXPECT_TRUE(m.slab.owned_geometry_ok(c, head));
    offsets.insert(off);
  }
  EXPECT_EQ(offsets.size(), std::size_t{kOwnerColours}) << "every colour in use";
  for (void* p : objs) {
    Page* head = owned_slab_head(m, p);
    auto idx = static_cast<unsigned>((static_cast<char*>(p) - static_cast<char*>(m.phys.page_address(head))) / c->size);
    ASSERT_EQ(*m.slab.owner_slot(c, head, idx), kOwnerKernel) << "the allocation wrote its own slot's byte";
  }
  on_other_thread([&] {
    for (std::size_t i = 0; i < objs.size(); i += 2)
      EXPECT_EQ(m.slab.free(c, objs[i], "kmem_cache_free"), kOwnerKernel);
  });
  for (std::size_t i = 1; i < objs.size(); i += 2) EXPECT_EQ(m.slab.free(c, objs[i], "kmem_cache_free"), kOwnerKernel);
  void* still_in_a_slab = nullptr;
  for (void* p : objs) {
    Page* head = owned_slab_head(m, p);
    if (!head->is(PG_slab)) continue;  // emptied and given back
    auto idx = static_cast<unsigned>((static_cast<char*>(p) - static_cast<char*>(m.phys.page_address(head))) / c->size);
    EXPECT_EQ(*m.slab.owner_slot(c, head, idx), kOwnerFree);
    still_in_a_slab = p;
  }
  ASSERT_NE(still_in_a_slab, nullptr) << "this thread keeps its emptied slabs (kKeptEmptySlabs)";
  expect_refused_free(m, c, still_in_a_slab, ErrorKind::kDoubleFree);
  drain_check_destroy(m, c);
  m.shutdown_slab();
}

TEST(OwnedSlab, AModulesObjectIsFreedWithItsOwnerLiveOrGone) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  KmemCache* c = owned_cache(m, "own-mod", 96);
  ASSERT_NE(c, nullptr);
  constexpr owner_t kModule = 7;
  for (bool gone : {false, true}) {
    std::vector<void*> objs;
    for (int i = 0; i < 64; ++i) objs.push_back(m.slab.alloc(c, GFP_KERNEL, kModule));
    void* keep = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);  // the slab stays in use
    if (gone) {
      bool dead[kMaxOwners] = {};
      dead[kModule] = true;
      m.slab.mark_owners_gone(dead);
    }
    for (void* p : objs) {
      SlabAllocator::ObjectInfo info;
      ASSERT_TRUE(m.slab.lookup(p, &info));
      EXPECT_EQ(info.owner, kModule);
      EXPECT_EQ(m.slab.free(c, p, "kfree"), kModule) << (gone ? "gone" : "live");
      ASSERT_TRUE(m.slab.lookup(p, &info));
      EXPECT_EQ(info.owner, kOwnerFree);
    }
    expect_refused_free(m, c, objs[3], ErrorKind::kDoubleFree);
    if (gone) m.slab.set_owner_live(kModule);
    EXPECT_EQ(m.slab.free(c, keep, "kfree"), kOwnerKernel);
  }
  drain_check_destroy(m, c);
  m.shutdown_slab();
}

// kfree's first test, one range for two conditions (slab.h, in_masked_ram): an address of
// the machine's RAM whose slabs are found by masking. False outside the RAM, and for every
// address of a machine whose RAM is not aligned for masking (the general path then decides).
TEST(OwnedSlab, InMaskedRamIsInRamAndOwnedByMask) {
  for (bool aligned : {true, false}) {
    Machine m(with_thread_caches(aligned));
    ASSERT_TRUE(m.ok());
    if (aligned) {
      ASSERT_TRUE(m.slab.owned_by_mask());
    }
    const auto lo = reinterpret_cast<std::uintptr_t>(m.phys.base());
    const std::uintptr_t size = m.phys.size();
    int local = 0;
    for (std::uintptr_t a : {lo, lo + size / 2, lo + size - 1, lo - 1, lo + size, std::uintptr_t{0},
                             reinterpret_cast<std::uintptr_t>(&local)}) {
      const void* p = reinterpret_cast<const void*>(a);
      EXPECT_EQ(m.slab.in_masked_ram(p), m.slab.owned_by_mask() && m.phys.owns(p))
          << (aligned ? "aligned" : "unaligned") << " RAM, address " << a - lo << " from its start";
    }
    KmemCache* c = owned_cache(m, "own-masked-64", 64);
    void* obj = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
    ASSERT_NE(obj, nullptr);
    EXPECT_EQ(m.slab.in_masked_ram(obj), aligned || m.slab.owned_by_mask());
    EXPECT_EQ(m.slab.free(c, obj, "kmem_cache_free"), kOwnerKernel);
    drain_check_destroy(m, c);
    m.shutdown_slab();
  }
}

// A fresh owned slab's free list is threaded one frame at a time (extend_lazy), from the top
// down: the frames a thread never reaches are never written, and the first objects share
// their frame with the slab's owner bytes.
TEST(OwnedSlab, AFreshSlabIsThreadedAFrameAtATimeFromTheTop) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  KmemCache* c = m.slab.create("own-lazy-64", 64, 0, 0);
  auto* first = static_cast<char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
  SlabAllocator::ObjectInfo info{};
  ASSERT_TRUE(m.slab.lookup(first, &info));
  ASSERT_EQ(info.index, c->objects - 1u) << "the highest slot first";
  char* base = first - std::size_t{info.index} * c->size;
  const std::uint32_t top = info.index * c->size;
  const std::uint32_t frame = top & ~static_cast<std::uint32_t>(kPageSize - 1);
  EXPECT_EQ(c->owners_offset / kPageSize, top / kPageSize) << "the first object is in the owner bytes' frame";
  // The rest of the top slot's frame is threaded, downwards; its last link is the lazy link.
  unsigned threaded = 0;
  std::uint32_t off = info.slab->lru.freelist;
  while (off != kNoObject && !(off & kLazyLink)) {
    EXPECT_EQ(off, top - (threaded + 1) * c->size);
    ++threaded;
    off = m.slab.get_link(c, base + off);
  }
  EXPECT_EQ(threaded, (top - frame) / c->size);
  ASSERT_NE(off, kNoObject);
  const std::uint32_t lowest = top - threaded * c->size;
  EXPECT_EQ(lowest, frame);
  EXPECT_EQ(lazy_frontier(off), lowest) << "the frames below are not threaded yet";
  // The lazy link's low 16 bits, where malloc prefetches, name the slot it was read from (the
  // lowest threaded), not a slot of the untouched frame below.
  EXPECT_EQ(off & 0xFFFF, lowest);
  // Given back to the cache with its tail unthreaded, the slab still checks out (check_cache
  // counts the tail's slots as free), and the next allocation takes it again.
  m.slab.drain_current_thread();
  EXPECT_EQ(c->nr_owned, 0u);
  EXPECT_TRUE(m.check());
  EXPECT_EQ(c->active_objects(), 1u);
  // Allocating through the first frame threads the second, and so on, every slot once.
  std::set<void*> seen{first};
  for (unsigned i = 1; i < c->objects; ++i) ASSERT_TRUE(seen.insert(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel)).second);
  EXPECT_EQ(c->nr_slabs.load(), 1u);
  for (void* p : seen) m.slab.free(c, p, "kmem_cache_free");
  m.slab.drain_current_thread();
  EXPECT_TRUE(m.check());
  m.shutdown_slab();
}

TEST(OwnedSlab, AFullSlabReachedByRemoteFreesIsUsedAgain) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  KmemCache* c = m.slab.create("own-full-128", 128, 0, 0);
  // Two whole slabs and one object of a third: the first two are set aside as full.
  std::vector<void*> objs;
  for (unsigned i = 0; i < 2u * c->objects + 1; ++i) objs.push_back(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
  ASSERT_EQ(c->nr_slabs.load(), 3u);
  ThreadCache* tc = m.slab.thread_cache();
  ASSERT_NE(tc->own[c->tc_slot].full, kNoPfn);
  // Another thread frees half of the first slab's objects.
  on_other_thread([&] {
    for (unsigned i = 0; i < c->objects; i += 2) m.slab.free(c, objs[i], "kmem_cache_free");
  });
  // The third slab's free slots, then the first slab's freed ones: still three slabs.
  unsigned want = (c->objects - 1) + (c->objects + 1) / 2;
  for (unsigned i = 0; i < want; ++i) ASSERT_NE(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel), nullptr);
  EXPECT_EQ(c->nr_slabs.load(), 3u) << "the hint led the owner back to its full slab";
  // Now every slot is taken: the next allocation needs a fourth slab.
  ASSERT_NE(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel), nullptr);
  EXPECT_EQ(c->nr_slabs.load(), 4u);
  m.slab.drain_current_thread();
  EXPECT_TRUE(m.check());
  EXPECT_EQ(c->active_objects(), 2u * c->objects + 1 - (c->objects + 1) / 2 + want + 1);
  m.shutdown_slab();
}

// The fast free's room test (one compare against a threshold made from the full bit, with no
// branch on it): a slab set aside as full takes its thread's frees on the fast path until it
// is freed down to unfull_inuse + 1 in use; that free goes to the general path, which moves
// the slab back among those with room. The last object of a slab that is not cur goes there
// too (the slab is given back); cur's last object is freed fast.
TEST(OwnedSlab, AFullSlabTakesFastFreesUntilAQuarterOfItIsFree) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m.slab.owned_by_mask());
  KmemCache* c = owned_cache(m, "own-room-128", 128);
  ASSERT_NE(c, nullptr);
  std::vector<void*> objs;
  for (unsigned i = 0; i < 2u * c->objects + 1; ++i) objs.push_back(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
  auto full = [](const Page* head) {
    return (__atomic_load_n(&head->lru.nr_pages, __ATOMIC_RELAXED) & kSlabFull) != 0;
  };
  Page* first = owned_slab_head(m, objs[0]);
  ASSERT_EQ(owned_slab_head(m, objs[c->objects - 1]), first);
  ASSERT_TRUE(full(first)) << "a slab allocated to its end is set aside as full";
  ASSERT_GT(c->unfull_inuse, 1u);
  owner_t freed = kOwnerFree;
  unsigned i = 0;
  for (; first->lru.inuse > c->unfull_inuse + 1u; ++i) {
    ASSERT_NE(m.slab.free_fast_masked(c, objs[i], &freed), kFreeFastNo) << "free " << i << " onto the full slab";
    EXPECT_EQ(freed, kOwnerKernel);
    ASSERT_TRUE(full(first)) << "still set aside after free " << i;
  }
  EXPECT_EQ(i, c->objects - c->unfull_inuse - 1u);
  EXPECT_EQ(m.slab.free_fast_masked(c, objs[i], &freed), kFreeFastNo) << "the free that gives it room again";
  EXPECT_TRUE(full(first)) << "a refused fast free changes nothing";
  EXPECT_EQ(m.slab.free(c, objs[i], "kmem_cache_free"), kOwnerKernel);
  EXPECT_FALSE(full(first)) << "the general path moved it back among the slabs with room";
  EXPECT_TRUE(m.check());
  for (++i; first->lru.inuse > 1; ++i)
    ASSERT_NE(m.slab.free_fast_masked(c, objs[i], &freed), kFreeFastNo) << "free " << i << " onto a slab with room";
  ASSERT_EQ(i, c->objects - 1);
  EXPECT_EQ(m.slab.free_fast_masked(c, objs[i], &freed), kFreeFastNo) << "the last object of a slab that is not cur";
  EXPECT_EQ(m.slab.free(c, objs[i], "kmem_cache_free"), kOwnerKernel);
  // The third slab's one object: cur's last, freed fast. cur's count carries kInuseCur (the
  // room test's mark of cur); the slabs that were cur before no longer do.
  void* last = objs[2u * c->objects];
  Page* cur = owned_slab_head(m, last);
  ASSERT_EQ(owned_inuse(cur), 1u);
  EXPECT_EQ(cur->lru.inuse & kInuseCur, kInuseCur);
  EXPECT_EQ(first->lru.inuse & kInuseCur, 0u);
  EXPECT_EQ(owned_slab_head(m, objs[c->objects])->lru.inuse & kInuseCur, 0u);
  EXPECT_NE(m.slab.free_fast_masked(c, last, &freed), kFreeFastNo);
  EXPECT_EQ(cur->lru.inuse, kInuseCur) << "cur, empty, stays cur";
  for (unsigned j = c->objects; j < 2u * c->objects; ++j)
    EXPECT_EQ(m.slab.free(c, objs[j], "kmem_cache_free"), kOwnerKernel);
  drain_check_destroy(m, c);
  m.shutdown_slab();
}

// The frees the fast path refuses on a slab this thread owns because its lists must change
// (a full slab freed down to its threshold, the last object of a slab that is not cur) are
// finished by free_owned_refused, as the general path would finish them; everything else it
// refuses in turn, changing nothing: a module's object, a free slot, a pointer inside an
// object, another thread's slab, a block that is no slab.
TEST(OwnedSlab, TheListChangingFreesOfOwnSlabsAreFinishedApart) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m.slab.owned_by_mask());
  KmemCache* c = owned_cache(m, "own-refused-128", 128);
  ASSERT_NE(c, nullptr);
  std::vector<void*> objs;
  for (unsigned i = 0; i < 2u * c->objects + 1; ++i) objs.push_back(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
  auto full = [](const Page* head) {
    return (__atomic_load_n(&head->lru.nr_pages, __ATOMIC_RELAXED) & kSlabFull) != 0;
  };
  auto owner_of = [&](const void* p) {
    SlabAllocator::ObjectInfo info;
    EXPECT_TRUE(m.slab.lookup(p, &info));
    return info.owner;
  };
  Page* first = owned_slab_head(m, objs[0]);
  ASSERT_TRUE(full(first));
  owner_t freed = kOwnerFree;
  unsigned i = 0;
  for (; first->lru.inuse > c->unfull_inuse + 1u; ++i)
    ASSERT_NE(m.slab.free_fast_masked(c, objs[i], &freed), kFreeFastNo) << "free " << i;
  // What it refuses, with the slab at its threshold: nothing changes.
  {
    ReportCapture cap;
    EXPECT_EQ(m.slab.free_owned_refused(objs[0]), kFreeFastNo) << "a free slot (a double free)";
    EXPECT_EQ(m.slab.free_owned_refused(static_cast<char*>(objs[i]) + 8), kFreeFastNo) << "inside an object";
    std::uint16_t inuse = first->lru.inuse;
    on_other_thread([&] {
      void* theirs = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);  // a thread cache of its own
      EXPECT_EQ(m.slab.free_owned_refused(objs[i]), kFreeFastNo) << "another thread's slab";
      EXPECT_EQ(m.slab.free(c, theirs, "kmem_cache_free"), kOwnerKernel);
    });
    EXPECT_EQ(first->lru.inuse, inuse);
    EXPECT_EQ(owner_of(objs[i]), kOwnerKernel);
    EXPECT_TRUE(full(first));
    EXPECT_EQ(cap.count(), 0u) << "it reports nothing: the general path does";
  }
  EXPECT_EQ(m.slab.free_fast_masked(c, objs[i], &freed), kFreeFastNo) << "the free that gives it room again";
  EXPECT_NE(m.slab.free_owned_refused(objs[i]), kFreeFastNo);
  EXPECT_EQ(owner_of(objs[i]), kOwnerFree);
  EXPECT_FALSE(full(first)) << "moved back among the slabs with room";
  EXPECT_TRUE(m.check());
  expect_refused_free(m, c, objs[i], ErrorKind::kDoubleFree);
  for (++i; first->lru.inuse > 1; ++i) ASSERT_NE(m.slab.free_fast_masked(c, objs[i], &freed), kFreeFastNo);
  ASSERT_EQ(i, c->objects - 1);
  EXPECT_EQ(m.slab.free_fast_masked(c, objs[i], &freed), kFreeFastNo) << "the last object of a slab that is not cur";
  EXPECT_NE(m.slab.free_owned_refused(objs[i]), kFreeFastNo);
  EXPECT_EQ(first->lru.inuse, 0u);
  EXPECT_TRUE(m.check());
  // A module's object on a full slab: the general path's (the protector's fence).
  constexpr owner_t kModule = 9;
  Page* second = owned_slab_head(m, objs[c->objects]);
  ASSERT_TRUE(full(second));
  m.slab.set_owner(objs[c->objects], kModule);
  for (unsigned j = c->objects + 1; second->lru.inuse > c->unfull_inuse + 1u; ++j)
    ASSERT_EQ(m.slab.free(c, objs[j], "kmem_cache_free"), kOwnerKernel);
  EXPECT_EQ(m.slab.free_owned_refused(objs[c->objects]), kFreeFastNo) << "a module's object";
  EXPECT_EQ(owner_of(objs[c->objects]), kModule);
  EXPECT_EQ(m.slab.free(c, objs[c->objects], "kmem_cache_free"), kModule);
  EXPECT_FALSE(full(second));
  for (unsigned j = c->objects + 1; j <= 2u * c->objects; ++j)
    if (owner_of(objs[j]) == kOwnerKernel) {
      EXPECT_EQ(m.slab.free(c, objs[j], "kmem_cache_free"), kOwnerKernel);
    }
  // A page run is no slab.
  Page* run = m.zone.alloc_pages(kOwnedSlabOrder, GFP_KERNEL);
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(m.slab.free_owned_refused(m.phys.page_address(run)), kFreeFastNo);
  m.zone.free_pages(run, kOwnedSlabOrder);
  drain_check_destroy(m, c);
  m.shutdown_slab();
}

// When this thread's slab of a cache is spent, alloc_refilled takes the next one and pops from
// it, as alloc_slow would: every object a new one, owned as asked, none handed out twice.
TEST(OwnedSlab, ASpentSlabIsRefilledAndPoppedApart) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  KmemCache* c = owned_cache(m, "own-refill-256", 256);
  ASSERT_NE(c, nullptr);
  constexpr owner_t kModule = 5;
  std::set<void*> seen;
  void* p = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);  // the thread's cache, and its first slab
  ASSERT_NE(p, nullptr);
  seen.insert(p);
  ThreadCache* tc = m.slab.thread_cache_if_ready();
  ASSERT_NE(tc, nullptr);
  unsigned refills = 0;
  while (seen.size() < 3u * c->objects + 2) {
    void* q = SlabAllocator::alloc_fast_owned(tc, c, c->tc_slot, GFP_KERNEL, kModule);
    if (q == nullptr) {
      ++refills;
      q = m.slab.alloc_refilled(tc, c, kModule);
      ASSERT_NE(q, nullptr) << "refill " << refills;
    }
    ASSERT_TRUE(seen.insert(q).second) << "handed out twice";
    SlabAllocator::ObjectInfo info;
    ASSERT_TRUE(m.slab.lookup(q, &info));
    EXPECT_EQ(info.owner, kModule);
    EXPECT_TRUE(info.exact);
  }
  EXPECT_GE(refills, 3u) << "one a slab after the first at least (a fresh slab's frames are threaded one by one)";
  EXPECT_EQ(c->nr_owned, 4u);
  EXPECT_TRUE(m.check());
  for (void* q : seen) EXPECT_NE(m.slab.free(c, q, "kmem_cache_free"), kOwnerFree);
  drain_check_destroy(m, c);
  m.shutdown_slab();
}

TEST(OwnedSlab, AThreadThatExitsGivesItsSlabsBackWithRemoteFreesMerged) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  KmemCache* c = m.slab.create("own-exit-96", 96, 0, 0);
  std::vector<void*> objs(2u * c->objects + 7);
  std::atomic<int> stage{0};
  std::thread owner([&] {
    for (void*& p : objs) p = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
    stage = 1;
    while (stage.load() != 2) std::this_thread::yield();
  });
  while (stage.load() != 1) std::this_thread::yield();
  // This thread frees every third object while the owner still lives: remote frees.
  unsigned freed = 0;
  for (std::size_t i = 0; i < objs.size(); i += 3, ++freed) m.slab.free(c, objs[i], "kmem_cache_free");
  stage = 2;
  owner.join();
  // The owner's exit merged the remote lists: the counters say exactly what is live.
  EXPECT_EQ(c->nr_owned, 0u);
  EXPECT_EQ(c->active_objects(), objs.size() - freed);
  EXPECT_TRUE(m.check());
  for (std::size_t i = 0; i < objs.size(); ++i)
    if (i % 3 != 0) m.slab.free(c, objs[i], "kmem_cache_free");
  m.slab.drain_current_thread();
  EXPECT_EQ(c->active_objects(), 0u);
  EXPECT_TRUE(m.check());
  EXPECT_TRUE(m.slab.destroy(c));
  m.shutdown_slab();
}

TEST(OwnedSlab, TheCollectorsFreeOfAnOwnedSlabsObjectGoesOntoItsRemoteList) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  KmemCache* c = m.slab.create("own-gc-32", 32, 0, 0);
  void* a = m.slab.alloc(c, GFP_KERNEL, 7);
  void* b = m.slab.alloc(c, GFP_KERNEL, 7);
  SlabAllocator::ObjectInfo info{};
  ASSERT_TRUE(m.slab.lookup(a, &info));
  {
    // The collector's path: under the cache lock, claim and free (free_slot_locked).
    LockGuard g(c->lock);
    ASSERT_TRUE(m.slab.claim_slot(c, info.slab, info.index, 7));
    EXPECT_FALSE(m.slab.free_claimed_slot_locked(c, info.slab, info.index)) << "an owned slab is never discarded";
  }
  // The slot is free (a free of it is a double free) and comes back to the owner.
  {
    ReportCapture cap;
    EXPECT_EQ(m.slab.free(c, a, "kmem_cache_free"), kOwnerFree);
    EXPECT_EQ(cap.count(), 1u);
  }
  m.slab.free(c, b, "kmem_cache_free");
  m.slab.drain_current_thread();
  EXPECT_EQ(c->active_objects(), 0u);
  EXPECT_TRUE(m.check());
  EXPECT_TRUE(m.slab.destroy(c));
  m.shutdown_slab();
}

// Producer/consumer: every object is freed by another thread than the one that allocated it,
// for many rounds; then the counters match the slabs and nothing is lost.
TEST(OwnedSlab, ProducerConsumerLosesNothing) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  KmemCache* c = m.slab.create("own-pc-48", 48, 0, 0);
  constexpr int kRounds = 200;
  constexpr int kBatch = 300;
  std::vector<void*> box[2];
  std::atomic<int> turn{0};  // 2r: the producer fills box[r % 2]; 2r + 1: the consumer empties it
  std::uint64_t most_slabs = 0;
  std::thread producer([&] {
    for (int r = 0; r < kRounds; ++r) {
      while (turn.load() != 2 * r) std::this_thread::yield();
      auto& b = box[r % 2];
      for (int i = 0; i < kBatch; ++i) b.push_back(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
      std::uint64_t slabs = c->nr_slabs.load();
      if (slabs > most_slabs) most_slabs = slabs;
      turn = 2 * r + 1;
    }
  });
  std::thread consumer([&] {
    for (int r = 0; r < kRounds; ++r) {
      while (turn.load() != 2 * r + 1) std::this_thread::yield();
      auto& b = box[r % 2];
      for (void* p : b) ASSERT_EQ(m.slab.free(c, p, "kmem_cache_free"), kOwnerKernel);
      b.clear();
      turn = 2 * r + 2;
    }
  });
  producer.join();
  consumer.join();
  EXPECT_EQ(c->nr_owned, 0u);
  EXPECT_EQ(c->active_objects(), 0u);
  // The producer reused what the consumer freed: at most about two batches' slabs ever, not
  // the 200 batches' it allocated in all.
  EXPECT_LE(most_slabs * c->objects, 2u * kBatch + 4u * c->objects);
  EXPECT_TRUE(m.check());
  EXPECT_TRUE(m.slab.destroy(c));
  m.shutdown_slab();
}

// A thread's frees that empty its slabs leave up to kKeptEmptySlabs of them with it: its next
// allocations take them back with no cache lock and no slab another thread used last. The
// rest go back to the cache at once; the purge round (release_kept_empty_slabs) and the
// thread's exit give the kept ones back too.
TEST(OwnedSlab, EmptiedSlabsStayWithTheirThreadUpToTheLimit) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  KmemCache* c = m.slab.create("own-256", 256, 0, 0);
  ASSERT_NE(c->tc_slot, 0xFF);
  on_other_thread([&] {
    const unsigned slabs = kKeptEmptySlabs + 4;
    std::vector<void*> objs;
    for (unsigned i = 0; i < slabs * c->objects; ++i) {
      objs.push_back(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
      ASSERT_NE(objs.back(), nullptr);
    }
    EXPECT_EQ(c->nr_owned, slabs);
    for (void* p : objs) EXPECT_EQ(m.slab.free(c, p, "kmem_cache_free"), kOwnerKernel);
    EXPECT_EQ(c->nr_owned, kKeptEmptySlabs + 1) << "cur, and the emptied slabs the thread keeps";
    EXPECT_EQ(c->active_objects(), std::uint64_t{kKeptEmptySlabs + 1} * c->objects) << "owned slots count as active";
    std::uint64_t taken = c->alloc_calls.load();
    objs.clear();
    for (unsigned i = 0; i < (kKeptEmptySlabs + 1) * c->objects; ++i) {
      objs.push_back(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
      ASSERT_NE(objs.back(), nullptr);
    }
    EXPECT_EQ(c->alloc_calls.load(), taken) << "the kept slabs served these: none taken from the cache";
    EXPECT_EQ(c->nr_owned, kKeptEmptySlabs + 1);
    for (void* p : objs) EXPECT_EQ(m.slab.free(c, p, "kmem_cache_free"), kOwnerKernel);
    m.slab.release_kept_empty_slabs();
    EXPECT_EQ(c->nr_owned, 1u) << "only cur stays";
    objs.clear();
    // Kept again after the release, and given back when the thread exits.
    for (unsigned i = 0; i < 3 * c->objects; ++i) objs.push_back(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
    for (void* p : objs) EXPECT_EQ(m.slab.free(c, p, "kmem_cache_free"), kOwnerKernel);
    EXPECT_EQ(c->nr_owned, 3u);
  });
  EXPECT_EQ(c->nr_owned, 0u);
  EXPECT_EQ(c->active_objects(), 0u);
  EXPECT_TRUE(m.check());
  EXPECT_TRUE(m.slab.destroy(c));
  m.shutdown_slab();
}

}  // namespace
}  // namespace kmm

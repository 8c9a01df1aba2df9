// tests/slab/test_thread_cache.cpp — which ThreadCache a thread finds (src/slab/thread_cache.cpp
// and SlabAllocator::thread_cache in slab.h): the one-entry kmm_thread_hot.last in front of the per-heap
// slots, with two heaps used in turn by one thread (each finds its own cache, and a free onto
// the thread's own slab stays local), a heap shut down and another booted in its place, and a
// thread that exits; and the slot no cache is given (kNoTcSlot).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "../common/machine_fixture.h"
#include "slab/thread_cache.h"

namespace kmm {
namespace {

using test::Machine;
using test::MachineOptions;

MachineOptions with_thread_caches() {
  MachineOptions o;
  o.ram = std::size_t{8} << 20;
  o.kmalloc = false;
  o.slab_cfg = SlabConfig{.thread_caches = true, .min_partial = 0, .hardening = {}, .random_seed = 0};
  return o;
}

// A ThreadCache lives in its heap's RAM: the pointer tells which machine it belongs to.
bool in_ram(Machine& m, const void* p) {
  return m.phys.owns(p);
}

// The objects of c freed, the thread's slabs given back: c holds none in use and m checks
// whole; then m's slab allocator shuts down.
void free_all_and_shut_down(Machine& m, KmemCache* c, const std::vector<void*>& objects) {
  for (void* p : objects) m.slab.free(c, p, "kmem_cache_free");
  m.slab.drain_current_thread();
  EXPECT_EQ(c->active_objects(), 0u);
  EXPECT_TRUE(m.check());
  m.shutdown_slab();
}

// Two machines with thread caches, each with a cache of 64-byte objects, for one thread to
// use in turn.
class TwoHeapsInTurn : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(b.ok());
    ca = a.slab.create("tca-64", 64, 0, 0);
    cb = b.slab.create("tcb-64", 64, 0, 0);
    ASSERT_NE(ca, nullptr);
    ASSERT_NE(cb, nullptr);
  }
  Machine a{with_thread_caches()};
  Machine b{with_thread_caches()};
  KmemCache* ca = nullptr;
  KmemCache* cb = nullptr;
};

TEST_F(TwoHeapsInTurn, EachFindTheirOwn) {
  std::vector<void*> pa, pb;
  for (int i = 0; i < 300; ++i) {
    pa.push_back(a.slab.alloc(ca, GFP_KERNEL, kOwnerKernel));
    ASSERT_TRUE(in_ram(a, a.slab.thread_cache()));
    pb.push_back(b.slab.alloc(cb, GFP_KERNEL, kOwnerKernel));
    ASSERT_TRUE(in_ram(b, b.slab.thread_cache()));
    ASSERT_TRUE(in_ram(a, pa.back()));
    ASSERT_TRUE(in_ram(b, pb.back()));
  }
  EXPECT_NE(a.slab.thread_cache(), b.slab.thread_cache());
  free_all_and_shut_down(a, ca, pa);
  free_all_and_shut_down(b, cb, pb);
}

// Each heap gives this thread's cache an id of its own, so two heaps' slabs can carry the same
// owner field: the fast free compares the slab's with the owner bits of the thread's last slot
// (kmm_thread_hot), whose generation says which heap they are of. A free onto the thread's own
// slab goes onto the slab's local list, whichever heap the thread used last, and the next
// allocation pops it (LIFO); one pushed onto the remote list instead would not come back next.
TEST_F(TwoHeapsInTurn, AFreeOntoTheThreadsOwnSlabIsItsNextAllocation) {
  std::vector<void*> keep_a, keep_b;  // so that no free below empties a slab
  for (int i = 0; i < 8; ++i) {
    keep_a.push_back(a.slab.alloc(ca, GFP_KERNEL, kOwnerKernel));
    keep_b.push_back(b.slab.alloc(cb, GFP_KERNEL, kOwnerKernel));
  }
  ASSERT_EQ(a.slab.thread_cache()->owner_bits, b.slab.thread_cache()->owner_bits)
      << "each heap's first thread id is 1: the owner fields alone do not tell the heaps apart";
  for (int round = 0; round < 64; ++round) {
    void* qa = a.slab.alloc(ca, GFP_KERNEL, kOwnerKernel);
    void* qb = b.slab.alloc(cb, GFP_KERNEL, kOwnerKernel);  // b's slot is the thread's last
    ASSERT_NE(qa, nullptr);
    ASSERT_NE(qb, nullptr);
    b.slab.free(cb, qb, "kmem_cache_free");  // the fast free, b's slot last
    EXPECT_EQ(b.slab.alloc(cb, GFP_KERNEL, kOwnerKernel), qb) << "round " << round;
    a.slab.free(ca, qa, "kmem_cache_free");  // b's slot last: a's general path, then a's fast ones
    EXPECT_EQ(a.slab.alloc(ca, GFP_KERNEL, kOwnerKernel), qa) << "round " << round;
    a.slab.free(ca, qa, "kmem_cache_free");  // a's slot last now: the fast free
    EXPECT_EQ(a.slab.alloc(ca, GFP_KERNEL, kOwnerKernel), qa) << "round " << round;
    a.slab.free(ca, qa, "kmem_cache_free");
    b.slab.free(cb, qb, "kmem_cache_free");
    ASSERT_TRUE(a.ok());
  }
  free_all_and_shut_down(a, ca, keep_a);
  free_all_and_shut_down(b, cb, keep_b);
}

TEST(ThreadCache, AHeapBootedAfterAnotherShutDownGetsAFreshCache) {
  // The second machine may reuse the first one's address and heap id: only the generation
  // tells the first machine's ThreadCache (now freed with its RAM) from a new one.
  for (int round = 0; round < 4; ++round) {
    auto m = std::make_unique<Machine>(with_thread_caches());
    ASSERT_TRUE(m->ok());
    KmemCache* c = m->slab.create("tcr-32", 32, 0, 0);
    ThreadCache* tc = m->slab.thread_cache();
    ASSERT_NE(tc, nullptr);
    ASSERT_TRUE(in_ram(*m, tc));
    EXPECT_EQ(tc->heap, &m->slab);
    for (unsigned i = 0; i < kMaxTcSlots; ++i) {
      EXPECT_EQ(tc->own[i].cur, &tc->no_slab) << "a fresh cache, round " << round;
      EXPECT_EQ(tc->own[i].partial, kNoPfn) << "a fresh cache, round " << round;
      EXPECT_EQ(tc->own[i].full, kNoPfn) << "a fresh cache, round " << round;
    }
    EXPECT_NE(tc->id, 0u) << "0 is owned by none";
    void* p = m->slab.alloc(c, GFP_KERNEL, kOwnerKernel);
    ASSERT_NE(p, nullptr);
    m->slab.free(c, p, "kmem_cache_free");
    m->slab.drain_current_thread();
    EXPECT_TRUE(m->slab.destroy(c));
    m->shutdown_slab();
  }
}

TEST(ThreadCache, AThreadThatExitsGivesItsSlabsBack) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  KmemCache* c = m.slab.create("tce-64", 64, 0, 0);
  std::set<ThreadCache*> seen;
  for (int t = 0; t < 3; ++t) {
    ThreadCache* mine = nullptr;
    std::thread th([&] {
      std::vector<void*> objs;
      for (int i = 0; i < 100; ++i) objs.push_back(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
      mine = m.slab.thread_cache();
      for (void* p : objs) m.slab.free(c, p, "kmem_cache_free");
    });
    th.join();
    ASSERT_NE(mine, nullptr);
    seen.insert(mine);
    // At exit its slabs went back to the cache and its ThreadCache to the zone.
    EXPECT_EQ(c->active_objects(), 0u) << "thread " << t;
    EXPECT_EQ(c->nr_owned, 0u) << "thread " << t;
  }
  EXPECT_NE(m.slab.thread_cache(), nullptr);
  EXPECT_TRUE(m.check());
  EXPECT_TRUE(m.slab.destroy(c));
  m.shutdown_slab();
}

// A thread takes slab after slab until memory runs out: every free slot of every slab is
// allocated exactly once before an allocation fails, and the failure leaves the thread's lists
// sound (its full slabs set aside, no cur).
TEST(ThreadCache, OutOfMemoryHandsOutEverySlotOnce) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  KmemCache* c = m.slab.create("tco-64", 64, 0, 0);
  std::vector<void*> objs;
  std::set<void*> distinct;
  for (;;) {
    void* p = m.slab.alloc(c, GFP_KERNEL | __GFP_NOWARN, kOwnerKernel);
    if (p == nullptr) break;
    ASSERT_TRUE(in_ram(m, p));
    ASSERT_TRUE(distinct.insert(p).second) << "handed out twice: " << p;
    std::memset(p, 0x5a, c->object_size);
    objs.push_back(p);
  }
  // Nothing free is left in any slab: every one this thread took is full and set aside.
  EXPECT_EQ(c->active_objects(), c->total_objects());
  EXPECT_EQ(objs.size(), c->total_objects());
  ThreadCache* tc = m.slab.thread_cache();
  EXPECT_EQ(tc->own[c->tc_slot].cur, &tc->no_slab);
  EXPECT_EQ(tc->own[c->tc_slot].partial, kNoPfn);
  EXPECT_EQ(c->nr_owned, c->nr_slabs.load());
  for (void* p : objs) m.slab.free(c, p, "kmem_cache_free");
  m.slab.drain_current_thread();
  EXPECT_EQ(c->active_objects(), 0u);
  EXPECT_TRUE(m.check());
  EXPECT_TRUE(m.slab.destroy(c));
  m.shutdown_slab();
}

// own[kNoTcSlot] is no cache's: the shim's class table points a class whose cache has no
// tc_slot at it, and its fast path tests nothing else, so a pop from it must fail before and
// after the thread has used every cache it has, and its cur must stay no_slab.
TEST(ThreadCache, ThePopOfTheSlotNoCacheIsGivenAlwaysFails) {
  Machine m(with_thread_caches());
  ASSERT_TRUE(m.ok());
  KmemCache* owned = m.slab.create("tcn-64", 64, 0, 0);
  ASSERT_NE(owned, nullptr);
  ASSERT_NE(owned->tc_slot, 0xFF);
  ASSERT_LT(owned->tc_slot, kNoTcSlot);
  void* first = m.slab.alloc(owned, GFP_KERNEL, kOwnerKernel);  // makes this thread's cache
  ASSERT_NE(first, nullptr);
  ThreadCache* tc = m.slab.thread_cache();
  ASSERT_NE(tc, nullptr);
  EXPECT_EQ(SlabAllocator::alloc_fast_owned(tc, owned, kNoTcSlot, GFP_KERNEL, kOwnerKernel), nullptr);
  // Every other slot in use too: a cache for each that is left.
  std::vector<KmemCache*> caches{owned};
  std::vector<void*> objs{first};
  for (unsigned i = 1; i < kMaxTcSlots; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "tcn-%u", i);
    KmemCache* c = m.slab.create(name, 32 + 16 * i, 0, 0);
    ASSERT_NE(c, nullptr);
    caches.push_back(c);
    void* p = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
    ASSERT_NE(p, nullptr);
    objs.push_back(p);
  }
  // No slot is left: the next cache gets none, and the shim would give it kNoTcSlot.
  KmemCache* slotless = m.slab.create("tcn-none", 48, 0, 0);
  ASSERT_NE(slotless, nullptr);
  EXPECT_EQ(slotless->tc_slot, 0xFF);
  for (KmemCache* c : {owned, slotless})
    EXPECT_EQ(SlabAllocator::alloc_fast_owned(tc, c, kNoTcSlot, GFP_KERNEL, kOwnerKernel), nullptr);
  EXPECT_EQ(tc->own[kNoTcSlot].cur, &tc->no_slab);
  EXPECT_EQ(tc->own[kNoTcSlot].partial, kNoPfn);
  // The general path serves the slotless cache.
  void* q = m.slab.alloc(slotless, GFP_KERNEL, kOwnerKernel);
  ASSERT_NE(q, nullptr);
  m.slab.free(slotless, q, "kmem_cache_free");
  for (std::size_t i = 0; i < objs.size(); ++i) m.slab.free(caches[i], objs[i], "kmem_cache_free");
  m.slab.drain_current_thread();
  EXPECT_TRUE(m.check());
  EXPECT_TRUE(m.slab.destroy(slotless));
  for (KmemCache* c : caches) EXPECT_TRUE(m.slab.destroy(c));
  m.shutdown_slab();
}

}  // namespace
}  // namespace kmm

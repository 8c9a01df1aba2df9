// tests/slab/test_slab.cpp — kmem_cache create/alloc/free/destroy: sizing, objects distinct,
// aligned and writable, owner bytes, a random sequence with check_invariants after every
// step, out of memory, per-thread magazines on one thread; bad frees (double, interior,
// foreign, wrong cache) and destroy of a non-empty cache, as death tests under the default
// policy and as refused-and-reported calls under OnError::kReport.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
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

MachineOptions slab_only(std::size_t ram = std::size_t{16} << 20, SlabConfig cfg = {}) {
  MachineOptions o;
  o.ram = ram;
  o.kmalloc = false;
  o.slab_cfg = cfg;
  return o;
}

std::uintptr_t addr(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p);
}

class Slab : public ::testing::Test {
 protected:
  void SetUp() override {
    test::default_report_policy();
    ASSERT_TRUE(m.ok());
  }
  Machine m{slab_only()};
};

TEST_F(Slab, CreateSizesTheCache) {
  KmemCache* c = m.slab.create("test-40", 40, 0, 0);
  ASSERT_NE(c, nullptr);
  EXPECT_STREQ(c->name, "test-40");
  EXPECT_EQ(c->object_size, 40u);
  EXPECT_EQ(c->size, 40u);
  EXPECT_EQ(c->align, 8u);
  // One page: 4096 / (40 + 1 owner byte) = 99 objects, 37 bytes left over.
  EXPECT_EQ(c->order, 0u);
  EXPECT_EQ(c->objects, 99u);
  EXPECT_FALSE(c->offslab_owners);
  EXPECT_EQ(m.slab.cache(c->id), c);

  KmemCache* h = m.slab.create("hw-40", 40, 0, SLAB_HWCACHE_ALIGN);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->size, 64u);
  KmemCache* a = m.slab.create("a-24-32", 24, 32, 0);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->size, 32u);
  // 1 KiB objects: an order-1 slab holds 8, owners in the tail descriptor.
  KmemCache* k = m.slab.create("test-1k", 1024, 0, 0);
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->order, 1u);
  EXPECT_EQ(k->objects, 8u);
  EXPECT_TRUE(k->offslab_owners);
  for (KmemCache* x : {c, h, a, k}) {
    std::uint64_t used = std::uint64_t{x->objects} * x->size + (x->offslab_owners ? 0 : x->objects);
    EXPECT_LE(used, kPageSize << x->order) << x->name;
    EXPECT_TRUE(m.slab.destroy(x));
  }
  EXPECT_EQ(m.slab.cache(c->id), nullptr);
}

TEST_F(Slab, CreateRefusesBadArguments) {
  ReportCapture cap;
  EXPECT_EQ(m.slab.create("zero", 0, 0, 0), nullptr);
  EXPECT_EQ(m.slab.create("align3", 64, 3, 0), nullptr);
  EXPECT_EQ(m.slab.create("align8k", 64, 8192, 0), nullptr);
  EXPECT_EQ(m.slab.create("huge", std::size_t{4} << 20, 0, 0), nullptr);
  ASSERT_EQ(cap.count(), 4u);
  for (const auto& r : cap.reports()) {
    EXPECT_EQ(r.kind, ErrorKind::kBadArgument);
    EXPECT_EQ(r.action, "kmem_cache_create");
  }
  EXPECT_NE(cap.text().find("bad argument in kmem_cache_create"), std::string::npos) << cap.text();
}

TEST_F(Slab, ObjectsDistinctAlignedWritable) {
  struct Spec {
    const char* name;
    std::size_t size, align;
  };
  const Spec specs[] = {{"s-8", 8, 0},       {"s-40", 40, 0},      {"s-96-32", 96, 32}, {"s-200", 200, 0},
                        {"s-1000", 1000, 0}, {"s-3000", 3000, 64}, {"s-8192", 8192, 0}, {"s-100k", 100000, 4096}};
  for (const Spec& s : specs) {
    SCOPED_TRACE(s.name);
    KmemCache* c = m.slab.create(s.name, s.size, s.align, 0);
    ASSERT_NE(c, nullptr);
    unsigned n = 3u * c->objects + 1;  // more than three slabs' worth
    std::vector<unsigned char*> objs;
    std::set<unsigned char*> seen;
    for (unsigned i = 0; i < n; ++i) {
      auto* p = static_cast<unsigned char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
      ASSERT_NE(p, nullptr);
      ASSERT_TRUE(seen.insert(p).second) << "object handed out twice";
      ASSERT_EQ(addr(p) % c->align, 0u);
      ASSERT_TRUE(m.phys.owns(p) && m.phys.owns(p + s.size - 1));
      std::memset(p, static_cast<int>(i & 0xFF), s.size);
      objs.push_back(p);
      ASSERT_TRUE(m.check()) << "after alloc " << i;
    }
    EXPECT_EQ(c->active_objects(), n);
    EXPECT_EQ(c->nr_slabs.load(), 4u);
    for (unsigned i = 0; i < n; ++i) {
      ASSERT_EQ(objs[i][0], i & 0xFF);
      ASSERT_EQ(objs[i][s.size - 1], i & 0xFF) << "objects overlap";
    }
    for (unsigned i = 0; i < n; ++i) {
      EXPECT_EQ(m.slab.free(c, objs[i], "kmem_cache_free"), kOwnerKernel);
      ASSERT_TRUE(m.check()) << "after free " << i;
    }
    EXPECT_EQ(c->active_objects(), 0u);
    EXPECT_EQ(c->nr_slabs.load(), 0u) << "empty slabs go back (min_partial 0)";
    EXPECT_TRUE(m.slab.destroy(c));
    EXPECT_EQ(m.zone.free_pages(), m.boot_free_pages());
  }
}

TEST_F(Slab, ZeroFlagZeroesObject) {
  KmemCache* c = m.slab.create("z-100", 100, 0, 0);
  auto* p = static_cast<unsigned char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
  void* keep = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);  // keeps the slab alive
  std::memset(p, 0xCC, 100);
  m.slab.free(c, p, "kmem_cache_free");
  auto* q = static_cast<unsigned char*>(m.slab.alloc(c, __GFP_ZERO, kOwnerKernel));
  ASSERT_EQ(q, p) << "the last freed object comes back first";
  for (int i = 0; i < 100; ++i) ASSERT_EQ(q[i], 0) << i;
  m.slab.free(c, q, "kmem_cache_free");
  m.slab.free(c, keep, "kmem_cache_free");
  EXPECT_TRUE(m.slab.destroy(c));
}

TEST_F(Slab, OwnerByteIsTheAllocationBitmap) {
  for (std::size_t size : {std::size_t{48}, std::size_t{2048}}) {  // in-slab and tail-descriptor owners
    KmemCache* c = m.slab.create("own", size, 0, 0);
    ASSERT_NE(c, nullptr);
    void* a = m.slab.alloc(c, GFP_KERNEL, 7);
    void* b = m.slab.alloc(c, GFP_KERNEL, kOwnerFree);  // no owner given: the kernel's
    SlabAllocator::ObjectInfo info{};
    ASSERT_TRUE(m.slab.lookup(a, &info));
    EXPECT_EQ(info.cache, c);
    EXPECT_EQ(info.owner, 7);
    EXPECT_TRUE(info.exact);
    EXPECT_EQ(*m.slab.owner_slot(c, info.slab, info.index), 7);
    ASSERT_TRUE(m.slab.lookup(b, &info));
    EXPECT_EQ(info.owner, kOwnerKernel);
    ASSERT_TRUE(m.slab.lookup(static_cast<char*>(a) + 1, &info));
    EXPECT_FALSE(info.exact);
    EXPECT_TRUE(m.slab.set_owner(a, 42));
    ASSERT_TRUE(m.slab.lookup(a, &info));
    EXPECT_EQ(info.owner, 42);
    EXPECT_FALSE(m.slab.set_owner(static_cast<char*>(a) + 8, 3)) << "not the start of an object";
    EXPECT_EQ(m.slab.free(c, a, "kmem_cache_free"), 42) << "free returns the owner it had";
    ASSERT_TRUE(m.slab.lookup(a, &info));
    EXPECT_EQ(info.owner, kOwnerFree) << "free clears the owner byte";
    EXPECT_FALSE(m.slab.set_owner(a, 3)) << "a free object has no owner to change";
    int on_stack = 0;
    EXPECT_FALSE(m.slab.lookup(&on_stack, &info));
    EXPECT_EQ(m.slab.free(c, b, "kmem_cache_free"), kOwnerKernel);
    EXPECT_TRUE(m.check());
    EXPECT_TRUE(m.slab.destroy(c));
  }
}

TEST_F(Slab, RandomSequenceKeepsInvariants) {
  KmemCache* caches[] = {m.slab.create("r-16", 16, 0, 0), m.slab.create("r-72", 72, 0, 0),
                         m.slab.create("r-500", 500, 0, 0), m.slab.create("r-1500", 1500, 0, SLAB_HWCACHE_ALIGN),
                         m.slab.create("r-5000", 5000, 0, 0)};
  for (KmemCache* c : caches) ASSERT_NE(c, nullptr);
  struct Obj {
    KmemCache* c;
    unsigned char* p;
    unsigned char tag;
  };
  std::vector<Obj> live;
  std::mt19937 gen(7);
  auto rng = [&gen] { return static_cast<unsigned>(gen()); };
  for (int step = 0; step < 4000; ++step) {
    if (live.empty() || rng() % 100 < 60) {
      KmemCache* c = caches[rng() % 5];
      auto* p = static_cast<unsigned char*>(m.slab.alloc(c, GFP_KERNEL, static_cast<owner_t>(1 + rng() % 200)));
      ASSERT_NE(p, nullptr);
      auto tag = static_cast<unsigned char>(rng());
      std::memset(p, tag, c->object_size);
      live.push_back({c, p, tag});
    } else {
      std::size_t i = rng() % live.size();
      Obj o = live[i];
      live[i] = live.back();
      live.pop_back();
      ASSERT_EQ(o.p[0], o.tag);
      ASSERT_EQ(o.p[o.c->object_size - 1], o.tag) << "object overwritten";
      ASSERT_NE(m.slab.free(o.c, o.p, "kmem_cache_free"), kOwnerFree);
    }
    ASSERT_TRUE(m.check()) << "step " << step;
  }
  for (const Obj& o : live) m.slab.free(o.c, o.p, "kmem_cache_free");
  ASSERT_TRUE(m.check());
  for (KmemCache* c : caches) EXPECT_TRUE(m.slab.destroy(c));
  EXPECT_EQ(m.slab.slab_pages(), 0u);
  EXPECT_EQ(m.zone.free_pages(), m.boot_free_pages());
}

TEST_F(Slab, MinPartialKeepsEmptySlabs) {
  Machine k(slab_only(std::size_t{4} << 20,
                      SlabConfig{.thread_caches = false, .min_partial = 2, .hardening = {}, .random_seed = 0}));
  ASSERT_TRUE(k.ok());
  KmemCache* c = k.slab.create("mp-512", 512, 0, 0);
  std::vector<void*> objs;
  for (unsigned i = 0; i < 4u * c->objects; ++i) objs.push_back(k.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
  EXPECT_EQ(c->nr_slabs.load(), 4u);
  for (void* p : objs) k.slab.free(c, p, "kmem_cache_free");
  EXPECT_TRUE(k.check());
  EXPECT_EQ(c->nr_slabs.load(), 2u) << "two empty slabs kept, the others given back";
  EXPECT_EQ(c->nr_empty, 2u);
  EXPECT_EQ(c->active_objects(), 0u);
  EXPECT_TRUE(k.slab.destroy(c));
  EXPECT_EQ(k.zone.free_pages(), k.boot_free_pages());
}

TEST_F(Slab, OutOfMemoryReturnsNullAndStaysUsable) {
  Machine k(slab_only(std::size_t{1} << 20));
  ASSERT_TRUE(k.ok());
  KmemCache* c = k.slab.create("oom-256", 256, 0, 0);
  std::vector<void*> objs;
  while (void* p = k.slab.alloc(c, GFP_KERNEL, kOwnerKernel)) objs.push_back(p);
  EXPECT_EQ(k.zone.free_pages(), 0u);
  EXPECT_EQ(objs.size(), c->active_objects());
  EXPECT_GE(objs.size(), 200u * c->objects / 16);
  EXPECT_TRUE(k.check());
  EXPECT_EQ(k.slab.alloc(c, GFP_KERNEL, kOwnerKernel), nullptr) << "still null, no crash";
  // A free makes room for exactly that object again.
  void* back = objs.back();
  objs.pop_back();
  k.slab.free(c, back, "kmem_cache_free");
  EXPECT_EQ(k.slab.alloc(c, GFP_KERNEL, kOwnerKernel), back);
  objs.push_back(back);
  for (void* p : objs) k.slab.free(c, p, "kmem_cache_free");
  EXPECT_TRUE(k.check());
  EXPECT_EQ(k.zone.free_pages(), k.boot_free_pages());
  EXPECT_NE(k.slab.alloc(c, GFP_KERNEL, kOwnerKernel), nullptr);
}

TEST_F(Slab, DestroyNonEmptyRefusedAndReported) {
  KmemCache* c = m.slab.create("busy", 128, 0, 0);
  void* p = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
  void* q = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
  {
    ReportCapture cap;
    EXPECT_FALSE(m.slab.destroy(c));
    ASSERT_EQ(cap.count(), 1u);
    EXPECT_EQ(cap.last().kind, ErrorKind::kCacheNotEmpty);
    EXPECT_EQ(cap.last().action, "kmem_cache_destroy");
    EXPECT_EQ(cap.last().cache, "busy");
    EXPECT_EQ(cap.last().size, 128u);
    EXPECT_NE(cap.text().find("cache still holds objects in kmem_cache_destroy"), std::string::npos) << cap.text();
    EXPECT_NE(cap.text().find("(cache busy, size 128): 2 objects still allocated; cache kept"), std::string::npos)
        << cap.text();
  }
  // The cache is kept and works.
  EXPECT_EQ(m.slab.cache(c->id), c);
  EXPECT_TRUE(m.check());
  void* r = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
  EXPECT_NE(r, nullptr);
  for (void* x : {p, q, r}) m.slab.free(c, x, "kmem_cache_free");
  EXPECT_TRUE(m.slab.destroy(c));
  EXPECT_EQ(m.zone.free_pages(), m.boot_free_pages());
}

// Destroying a busy cache is a refused request, not corruption: even under the default
// abort policy it is reported and the process goes on (this test reaching its end is the
// proof; it is no death test).
TEST_F(Slab, DestroyNonEmptyUnderTheAbortPolicyGoesOn) {
  KmemCache* c = m.slab.create("busy", 128, 0, 0);
  ASSERT_NE(c, nullptr);
  void* p = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
  ASSERT_NE(p, nullptr);
  {
    ReportCapture cap(OnError::kAbort);  // the default policy, with the report recorded
    EXPECT_FALSE(m.slab.destroy(c));
    ASSERT_EQ(cap.count(), 1u);
    EXPECT_EQ(cap.last().kind, ErrorKind::kCacheNotEmpty);
    EXPECT_NE(cap.text().find("(cache busy, size 128): 1 objects still allocated; cache kept"), std::string::npos)
        << cap.text();
  }
  m.slab.free(c, p, "kmem_cache_free");
  EXPECT_TRUE(m.slab.destroy(c));
}

TEST_F(Slab, BadFreesRefusedUnderReportPolicy) {
  KmemCache* a = m.slab.create("a-cache", 40, 0, 0);
  KmemCache* b = m.slab.create("b-cache", 40, 0, 0);
  auto* p = static_cast<char*>(m.slab.alloc(a, GFP_KERNEL, 5));
  void* keep = m.slab.alloc(a, GFP_KERNEL, kOwnerKernel);
  void* in_b = m.slab.alloc(b, GFP_KERNEL, kOwnerKernel);
  ReportCapture cap;
  // Interior pointer: refused; the object stays live with its owner.
  EXPECT_EQ(m.slab.free(a, p + 8, "kmem_cache_free"), kOwnerFree);
  ASSERT_EQ(cap.count(), 1u);
  EXPECT_EQ(cap.last().kind, ErrorKind::kInvalidFree);
  EXPECT_EQ(cap.last().pointer, p + 8);
  SlabAllocator::ObjectInfo info{};
  ASSERT_TRUE(m.slab.lookup(p, &info));
  EXPECT_EQ(info.owner, 5);
  // Wrong cache: refused; the object still belongs to b.
  EXPECT_EQ(m.slab.free(a, in_b, "kmem_cache_free"), kOwnerFree);
  ASSERT_EQ(cap.count(), 2u);
  EXPECT_EQ(cap.last().kind, ErrorKind::kWrongCache);
  EXPECT_EQ(cap.last().cache, "a-cache");
  EXPECT_EQ(cap.last().detail, "object belongs to b-cache");
  EXPECT_EQ(b->active_objects(), 1u);
  // Foreign pointers: the stack, a global, the C heap.
  static int global_thing = 0;
  int on_stack = 0;
  void* from_malloc = std::malloc(64);
  for (const void* f : {static_cast<const void*>(&on_stack), static_cast<const void*>(&global_thing),
                        static_cast<const void*>(from_malloc)}) {
    EXPECT_EQ(m.slab.free(a, f, "kmem_cache_free"), kOwnerFree);
    EXPECT_EQ(cap.last().kind, ErrorKind::kForeignPointer);
    EXPECT_EQ(cap.last().pointer, f);
  }
  std::free(from_malloc);
  // Reserved memory (mem_map itself) is inside the machine but not a slab.
  EXPECT_EQ(m.slab.free(a, m.phys.mem_map(), "kmem_cache_free"), kOwnerFree);
  EXPECT_EQ(cap.last().kind, ErrorKind::kInvalidFree);
  // Double free: the first free works, the second is refused.
  EXPECT_EQ(m.slab.free(a, p, "kmem_cache_free"), 5);
  std::uint64_t active = a->active_objects();
  EXPECT_EQ(m.slab.free(a, p, "kmem_cache_free"), kOwnerFree);
  EXPECT_EQ(cap.last().kind, ErrorKind::kDoubleFree);
  EXPECT_EQ(cap.last().action, "kmem_cache_free");
  EXPECT_EQ(a->active_objects(), active) << "a refused free changes nothing";
  EXPECT_EQ(cap.count(), 7u);
  EXPECT_EQ(report_count(), 7u);
  EXPECT_TRUE(m.check());
  // The free list was not corrupted: the next two objects are distinct.
  void* x = m.slab.alloc(a, GFP_KERNEL, kOwnerKernel);
  void* y = m.slab.alloc(a, GFP_KERNEL, kOwnerKernel);
  EXPECT_NE(x, y);
  EXPECT_TRUE(m.check());
  for (void* o : {x, y, keep}) m.slab.free(a, o, "kmem_cache_free");
  m.slab.free(b, in_b, "kmem_cache_free");
  EXPECT_EQ(cap.count(), 7u);
  EXPECT_TRUE(m.slab.destroy(a));
  EXPECT_TRUE(m.slab.destroy(b));
  EXPECT_TRUE(m.check());
}

// The module-free fence (slab.h, fence_module_frees): a thread inside the window of a plain
// free of a module's object (in_free raised) holds the collector's fence until it leaves it.
TEST(SlabFence, WaitsForAFreeInsideItsWindow) {
  Machine k(slab_only(std::size_t{4} << 20,
                      SlabConfig{.thread_caches = true, .min_partial = 0, .hardening = {}, .random_seed = 0}));
  ASSERT_TRUE(k.ok());
  if (!k.slab.module_free_fence()) GTEST_SKIP() << "no membarrier(2) here: module objects are always freed by exchange";
  std::atomic<int> stage{0};
  std::atomic<bool> left_window{false};
  std::thread freer([&] {
    ThreadCache* tc = k.slab.thread_cache();
    ASSERT_NE(tc, nullptr);
    __atomic_store_n(&tc->in_free, 1u, __ATOMIC_RELAXED);  // as if preempted inside the window
    stage = 1;
    while (stage.load() != 2) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    left_window = true;
    __atomic_store_n(&tc->in_free, 0u, __ATOMIC_RELEASE);
  });
  while (stage.load() != 1) {
  }
  stage = 2;
  k.slab.fence_module_frees();
  EXPECT_TRUE(left_window.load()) << "the fence returned while a free was inside its window";
  freer.join();
  k.slab.drain_thread_caches();
}

// A thread with no cache (a heap without thread caches, as here; in the preload a thread past
// its exit hook or beyond kMaxTcIds) opens its window through the count of unfenced windows
// (open_module_window): the fence waits it out too, and a window opened after a pass flagged
// the owner sees it gone. It had opened none: a realloc choosing the owner of a moved block
// read "live" while a pass began, and gave the dead owner a block the pass could sweep.
TEST(SlabFence, WaitsForTheWindowOfAThreadWithNoCache) {
  Machine k(slab_only(std::size_t{4} << 20,
                      SlabConfig{.thread_caches = false, .min_partial = 0, .hardening = {}, .random_seed = 0}));
  ASSERT_TRUE(k.ok());
  constexpr owner_t kModule = kOwnerFirstModule + 2;
  std::atomic<int> stage{0};
  std::atomic<bool> left_window{false};
  std::thread reallocer([&] {
    bool gone = true;
    ThreadCache* window = k.slab.open_module_window(kModule, &gone);
    EXPECT_FALSE(gone);
    EXPECT_NE(window, nullptr) << "a window is open";
    stage = 1;
    while (stage.load() != 2) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    left_window = true;
    SlabAllocator::close_module_window(window);
  });
  while (stage.load() != 1) {
  }
  bool dead[kMaxOwners] = {};
  dead[kModule] = true;
  k.slab.mark_owners_gone(dead);
  stage = 2;
  k.slab.fence_module_frees();
  EXPECT_TRUE(left_window.load()) << "the fence returned while a window was open";
  reallocer.join();
  bool gone = false;
  ThreadCache* after = k.slab.open_module_window(kModule, &gone);
  EXPECT_TRUE(gone) << "a window opened after the pass flagged the owner";
  SlabAllocator::close_module_window(after);
}

// A fork's child has only the forking thread: a window another thread had open at the fork
// (ModuleWindow, a free's) is closed by close_windows_after_fork (the preload's fork_child),
// or the child's fence would wait for a thread that is not there.
TEST(SlabFence, AWindowLeftOpenByAThreadGoneAtForkIsClosed) {
  Machine k(slab_only(std::size_t{4} << 20,
                      SlabConfig{.thread_caches = true, .min_partial = 0, .hardening = {}, .random_seed = 0}));
  ASSERT_TRUE(k.ok());
  if (!k.slab.module_free_fence()) GTEST_SKIP() << "no membarrier(2) here: no window is ever opened";
  // A thread that opens a window and stays inside it, as the threads of the parent do for the
  // child: they never run again there.
  ThreadCache* other_tc = nullptr;
  std::atomic<int> stage{0};
  std::thread t([&] {
    bool gone = true;
    other_tc = k.slab.open_module_window(kOwnerFirstModule, &gone);
    EXPECT_FALSE(gone);
    stage = 1;
    while (stage.load() != 2) {
    }
    SlabAllocator::close_module_window(other_tc);
  });
  while (stage.load() != 1) {
  }
  ASSERT_NE(other_tc, nullptr);
  EXPECT_EQ(__atomic_load_n(&other_tc->in_free, __ATOMIC_ACQUIRE), 1u);
  k.slab.close_windows_after_fork();
  const bool closed = __atomic_load_n(&other_tc->in_free, __ATOMIC_ACQUIRE) == 0;
  if (closed) k.slab.fence_module_frees();  // returns at once (open, it would wait for ever)
  stage = 2;
  t.join();
  EXPECT_TRUE(closed) << "the other thread's window is still open";
  k.slab.drain_thread_caches();
}

TEST_F(Slab, ThreadCacheOnOneThread) {
  Machine k(slab_only(std::size_t{8} << 20,
                      SlabConfig{.thread_caches = true, .min_partial = 0, .hardening = {}, .random_seed = 0}));
  ASSERT_TRUE(k.ok());
  KmemCache* c = k.slab.create("tc-64", 64, 0, 0);
  ASSERT_NE(c->tc_slot, 0xFF);
  std::vector<void*> objs;
  for (int i = 0; i < 500; ++i) {
    void* p = k.slab.alloc(c, GFP_KERNEL, 3);
    ASSERT_NE(p, nullptr);
    SlabAllocator::ObjectInfo info{};
    ASSERT_TRUE(k.slab.lookup(p, &info));
    ASSERT_EQ(info.owner, 3);
    objs.push_back(p);
  }
  EXPECT_EQ(std::set<void*>(objs.begin(), objs.end()).size(), objs.size());
  EXPECT_TRUE(k.check());
  {
    // A double free is caught even while the object sits on this thread's own slab's free
    // list, and the list does not take it twice.
    ReportCapture cap;
    void* p = objs.back();
    objs.pop_back();
    EXPECT_EQ(k.slab.free(c, p, "kmem_cache_free"), 3);
    EXPECT_EQ(k.slab.free(c, p, "kmem_cache_free"), kOwnerFree);
    ASSERT_EQ(cap.count(), 1u);
    EXPECT_EQ(cap.last().kind, ErrorKind::kDoubleFree);
    void* x = k.slab.alloc(c, GFP_KERNEL, 3);
    void* y = k.slab.alloc(c, GFP_KERNEL, 3);
    EXPECT_NE(x, y);
    objs.push_back(x);
    objs.push_back(y);
  }
  for (void* p : objs) EXPECT_EQ(k.slab.free(c, p, "kmem_cache_free"), 3);
  EXPECT_TRUE(k.check());
  // The free slots of the slab this thread still owns (its cur) count as active until drained;
  // the slabs that emptied went back to the cache.
  EXPECT_GT(c->active_objects(), 0u);
  EXPECT_EQ(c->nr_owned, 1u);
  EXPECT_LE(c->active_objects(), std::uint64_t{c->nr_owned} * c->objects);
  k.slab.drain_current_thread();
  EXPECT_EQ(c->active_objects(), 0u);
  EXPECT_EQ(c->nr_slabs.load(), 0u);
  EXPECT_TRUE(k.check());
  EXPECT_TRUE(k.slab.destroy(c));
  // Only this thread's ThreadCache pages remain taken; shutdown gives them back.
  k.shutdown_slab();
  EXPECT_EQ(k.zone.free_pages(), k.boot_free_pages());
  EXPECT_TRUE(k.check_zone());
}

TEST_F(Slab, EmptyKeepBytesKeepsEmptySlabsUntilShrink) {
  Machine k(slab_only(std::size_t{4} << 20, SlabConfig{.thread_caches = false,
                                                       .min_partial = 1,
                                                       .hardening = {},
                                                       .random_seed = 0,
                                                       .empty_keep_bytes = 2 * kPageSize}));
  ASSERT_TRUE(k.ok());
  KmemCache* c = k.slab.create("keep-256", 256, 0, 0);
  ASSERT_EQ(c->order, 0u);
  std::vector<void*> objs;
  for (unsigned i = 0; i < 5u * c->objects; ++i) objs.push_back(k.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
  EXPECT_EQ(c->nr_slabs.load(), 5u);
  for (void* p : objs) k.slab.free(c, p, "kmem_cache_free");
  EXPECT_TRUE(k.check());
  // min_partial (1) and two more (8 KiB of order-0 slabs); the other two went at once.
  EXPECT_EQ(c->nr_slabs.load(), 3u);
  EXPECT_EQ(c->nr_empty, 3u);
  std::uint64_t free_before = k.zone.free_pages();
  // Kept slabs come back with their free lists: the same objects, no new slab.
  objs.clear();
  for (unsigned i = 0; i < 3u * c->objects; ++i) objs.push_back(k.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
  EXPECT_EQ(c->nr_slabs.load(), 3u);
  EXPECT_EQ(k.zone.free_pages(), free_before);
  for (void* p : objs) k.slab.free(c, p, "kmem_cache_free");
  EXPECT_EQ(k.slab.shrink_empty(), 2u) << "two pages: all but min_partial's";
  EXPECT_EQ(c->nr_slabs.load(), 1u);
  EXPECT_EQ(c->nr_empty, 1u);
  EXPECT_EQ(k.slab.shrink_empty(), 0u);
  EXPECT_TRUE(k.check());
  EXPECT_TRUE(k.slab.destroy(c));
  EXPECT_EQ(k.zone.free_pages(), k.boot_free_pages());
}

// empty_keep_bytes is one budget for every cache, and the cache that frees now takes it: the
// empty slabs other caches keep beyond min_partial go back to the page allocator when it needs
// the room (an earlier phase's slabs would otherwise hold it until the purge round); min_partial
// a cache is kept whatever the budget says.
TEST_F(Slab, EmptyKeepBytesIsOneBudgetTheCacheFreeingNowTakes) {
  Machine k(slab_only(std::size_t{4} << 20, SlabConfig{.thread_caches = false,
                                                       .min_partial = 1,
                                                       .hardening = {},
                                                       .random_seed = 0,
                                                       .empty_keep_bytes = 3 * kPageSize}));
  ASSERT_TRUE(k.ok());
  KmemCache* a = k.slab.create("budget-a", 256, 0, 0);
  KmemCache* b = k.slab.create("budget-b", 256, 0, 0);
  ASSERT_EQ(a->order, 0u);
  ASSERT_EQ(b->order, 0u);
  std::vector<void*> as, bs;
  for (unsigned i = 0; i < 5u * a->objects; ++i) as.push_back(k.slab.alloc(a, GFP_KERNEL, kOwnerKernel));
  for (unsigned i = 0; i < 3u * b->objects; ++i) bs.push_back(k.slab.alloc(b, GFP_KERNEL, kOwnerKernel));
  for (void* p : as) k.slab.free(a, p, "kmem_cache_free");
  EXPECT_EQ(a->nr_empty, 4u) << "min_partial and three pages of budget";
  EXPECT_EQ(a->nr_slabs.load(), 4u) << "the fifth went at once";
  EXPECT_EQ(k.slab.kept_empty_bytes(), 3 * kPageSize);
  EXPECT_TRUE(k.check());
  // b's second empty slab needs the budget: a's three go back, and b keeps all of its own.
  for (void* p : bs) k.slab.free(b, p, "kmem_cache_free");
  EXPECT_EQ(a->nr_empty, 1u);
  EXPECT_EQ(a->nr_slabs.load(), 1u);
  EXPECT_EQ(b->nr_empty, 3u);
  EXPECT_EQ(k.slab.kept_empty_bytes(), 2 * kPageSize);
  EXPECT_TRUE(k.check());
  // Its own slabs are never given up to itself: a fourth and fifth empty slab of b go at once.
  bs.clear();
  for (unsigned i = 0; i < 5u * b->objects; ++i) bs.push_back(k.slab.alloc(b, GFP_KERNEL, kOwnerKernel));
  EXPECT_EQ(k.slab.kept_empty_bytes(), 0u);
  for (void* p : bs) k.slab.free(b, p, "kmem_cache_free");
  EXPECT_EQ(b->nr_empty, 4u);
  EXPECT_EQ(k.slab.kept_empty_bytes(), 3 * kPageSize);
  EXPECT_EQ(k.slab.shrink_empty(), 3u);
  EXPECT_EQ(k.slab.kept_empty_bytes(), 0u);
  EXPECT_TRUE(k.check());
  EXPECT_TRUE(k.slab.destroy(a));
  EXPECT_TRUE(k.slab.destroy(b));
  EXPECT_EQ(k.slab.kept_empty_bytes(), 0u);
  EXPECT_EQ(k.zone.free_pages(), k.boot_free_pages());
}

TEST_F(Slab, OutOfMemoryTakesTheEmptySlabsOtherCachesKept) {
  Machine k(slab_only(std::size_t{1} << 20, SlabConfig{.thread_caches = false,
                                                       .min_partial = 0,
                                                       .hardening = {},
                                                       .random_seed = 0,
                                                       .empty_keep_bytes = std::uint64_t{1} << 20}));
  ASSERT_TRUE(k.ok());
  KmemCache* a = k.slab.create("keep-a", 128, 0, 0);
  KmemCache* b = k.slab.create("keep-b", 192, 0, 0);
  std::vector<void*> objs;
  while (void* p = k.slab.alloc(a, GFP_KERNEL, kOwnerKernel)) objs.push_back(p);
  EXPECT_EQ(k.zone.free_pages(), 0u);
  std::uint64_t a_slabs = a->nr_slabs.load();
  for (void* p : objs) k.slab.free(a, p, "kmem_cache_free");
  EXPECT_EQ(a->nr_slabs.load(), a_slabs) << "all kept: the budget is the whole RAM";
  // b finds no free page, takes a's empty slabs and fills the RAM with its own.
  objs.clear();
  while (void* p = k.slab.alloc(b, GFP_KERNEL, kOwnerKernel)) objs.push_back(p);
  EXPECT_EQ(a->nr_slabs.load(), 0u);
  EXPECT_EQ(b->nr_slabs.load(), a_slabs);
  EXPECT_EQ(objs.size(), b->nr_slabs.load() * b->objects);
  EXPECT_TRUE(k.check());
  for (void* p : objs) k.slab.free(b, p, "kmem_cache_free");
  k.slab.shrink_empty();
  EXPECT_EQ(k.zone.free_pages(), k.boot_free_pages());
}

TEST_F(Slab, OwnerBytesFoundByMaskMatchTheDescriptors) {
  // RAM aligned to the largest buddy block: every slab order's start follows from an object's
  // address, and an allocation's mark_allocated writes the owner byte it finds so. (Without
  // thread caches: with them every cache's slabs are kOwnedSlabOrder, one order.)
  MachineOptions o = slab_only(std::size_t{16} << 20,
                               SlabConfig{.thread_caches = false, .min_partial = 0, .hardening = {}, .random_seed = 0});
  o.ram_align = kPageSize << kMaxOrder;
  Machine k(o);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k.slab.owner_mask_orders(), kMaxOrder + 1);
  std::set<unsigned> orders;
  for (std::size_t size : {16u, 96u, 520u, 1000u, 1500u, 3000u, 5000u}) {
    KmemCache* c = k.slab.create("mask", size, 0, 0);
    ASSERT_NE(c, nullptr);
    orders.insert(c->order);
    std::vector<void*> objs;
    for (unsigned i = 0; i < 3u * c->objects; ++i) {
      auto owner = static_cast<owner_t>(2 + i % 200);
      void* p = k.slab.alloc(c, GFP_KERNEL, owner);
      ASSERT_NE(p, nullptr);
      SlabAllocator::ObjectInfo info{};
      ASSERT_TRUE(k.slab.lookup(p, &info));
      ASSERT_EQ(info.owner, owner) << "size " << size << " object " << i;
      objs.push_back(p);
    }
    for (void* p : objs) k.slab.free(c, p, "kmem_cache_free");
    k.slab.drain_current_thread();
    EXPECT_TRUE(k.check());
    EXPECT_TRUE(k.slab.destroy(c));
  }
  EXPECT_GE(orders.size(), 3u) << "slabs of several orders";
  k.shutdown_slab();
}

TEST_F(Slab, RefillHandsOutASlabsObjectsInDescendingAddressOrder) {
  Machine k(slab_only(std::size_t{8} << 20,
                      SlabConfig{.thread_caches = true, .min_partial = 0, .hardening = {}, .random_seed = 0}));
  ASSERT_TRUE(k.ok());
  KmemCache* c = k.slab.create("order-64", 64, 0, 0);
  ASSERT_NE(c->tc_slot, 0xFF);
  // Several slabs, each owned by this thread in turn: within a slab every object lies just
  // below the one before it (the free list is threaded from the top, slab.h: kLazyLink).
  std::vector<char*> objs;
  for (unsigned i = 0; i < 4u * c->objects; ++i) objs.push_back(static_cast<char*>(k.slab.alloc(c, GFP_KERNEL, 2)));
  unsigned adjacent = 0;
  for (std::size_t i = 1; i < objs.size(); ++i) adjacent += objs[i] == objs[i - 1] - c->size;
  EXPECT_EQ(adjacent, objs.size() - 4) << "only the first object of each new slab jumps";
  for (char* p : objs) k.slab.free(c, p, "kmem_cache_free");
  k.slab.drain_current_thread();
  EXPECT_TRUE(k.check());
  EXPECT_TRUE(k.slab.destroy(c));
  k.shutdown_slab();
}

TEST_F(Slab, OwnedSlabFreesKeepInvariantsWhateverTheOrder) {
  // Frees onto this thread's slabs in every order: runs of one slab, frees that empty a slab
  // (it goes back to the cache), that take a full slab back to partial, in and out of order.
  Machine k(slab_only(std::size_t{8} << 20,
                      SlabConfig{.thread_caches = true, .min_partial = 1, .hardening = {}, .random_seed = 0}));
  ASSERT_TRUE(k.ok());
  KmemCache* c = k.slab.create("flush-128", 128, 0, 0);
  std::mt19937 rng(7);
  for (int round = 0; round < 6; ++round) {
    std::vector<void*> objs;
    for (unsigned i = 0; i < 5u * c->objects; ++i) objs.push_back(k.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
    if (round % 3 == 1) std::shuffle(objs.begin(), objs.end(), rng);
    if (round % 3 == 2) {  // interleave the slabs: every other object, then the rest
      std::vector<void*> mixed;
      for (std::size_t i = 0; i < objs.size(); i += 2) mixed.push_back(objs[i]);
      for (std::size_t i = 1; i < objs.size(); i += 2) mixed.push_back(objs[i]);
      objs.swap(mixed);
    }
    for (std::size_t i = 0; i < objs.size(); ++i) {
      ASSERT_EQ(k.slab.free(c, objs[i], "kmem_cache_free"), kOwnerKernel);
      if (i % 97 == 0) {
        ASSERT_TRUE(k.check()) << "round " << round << " free " << i;
      }
    }
    k.slab.drain_current_thread();
    ASSERT_TRUE(k.check()) << "round " << round;
    EXPECT_EQ(c->active_objects(), 0u);
    EXPECT_EQ(c->nr_slabs.load(), 1u) << "min_partial keeps one";
  }
  EXPECT_TRUE(k.slab.destroy(c));
  k.shutdown_slab();
  EXPECT_EQ(k.zone.free_pages(), k.boot_free_pages());
}

// ---- Death tests: the default policy stops the process with the report line. ----

class SlabDeathTest : public Slab {};

TEST_F(SlabDeathTest, DoubleFree) {
  KmemCache* c = m.slab.create("test-40", 40, 0, 0);
  void* p = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
  void* keep = m.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
  (void)keep;
  m.slab.free(c, p, "kmem_cache_free");
  EXPECT_DEATH(m.slab.free(c, p, "kmem_cache_free"),
               "kmm: ERROR: double free in kmem_cache_free: pointer 0x[0-9a-f]+ \\(cache test-40, size 40\\)");
}

TEST_F(SlabDeathTest, InteriorPointer) {
  KmemCache* c = m.slab.create("test-40", 40, 0, 0);
  auto* p = static_cast<char*>(m.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
  EXPECT_DEATH(m.slab.free(c, p + 4, "kmem_cache_free"),
               "kmm: ERROR: invalid free \\(not the start of a live object\\) in kmem_cache_free: pointer "
               "0x[0-9a-f]+ \\(cache test-40, size 40\\): pointer is not the start of an object");
}

TEST_F(SlabDeathTest, ForeignPointers) {
  KmemCache* c = m.slab.create("test-40", 40, 0, 0);
  static int global_thing = 0;
  int on_stack = 0;
  void* from_malloc = std::malloc(40);
  const char* want =
      "kmm: ERROR: free of a pointer kmm does not own in kmem_cache_free: pointer 0x[0-9a-f]+ "
      "\\(cache test-40\\): not inside this machine's memory";
  EXPECT_DEATH(m.slab.free(c, &on_stack, "kmem_cache_free"), want);
  EXPECT_DEATH(m.slab.free(c, &global_thing, "kmem_cache_free"), want);
  EXPECT_DEATH(m.slab.free(c, from_malloc, "kmem_cache_free"), want);
  std::free(from_malloc);
}

TEST_F(SlabDeathTest, WrongCache) {
  KmemCache* a = m.slab.create("a-cache", 40, 0, 0);
  KmemCache* b = m.slab.create("b-cache", 40, 0, 0);
  void* p = m.slab.alloc(b, GFP_KERNEL, kOwnerKernel);
  EXPECT_DEATH(m.slab.free(a, p, "kmem_cache_free"),
               "kmm: ERROR: free into the wrong cache in kmem_cache_free: pointer 0x[0-9a-f]+ "
               "\\(cache a-cache, size 40\\): object belongs to b-cache");
}

TEST_F(SlabDeathTest, DoubleFreeThroughThreadCache) {
  Machine k(slab_only(std::size_t{4} << 20,
                      SlabConfig{.thread_caches = true, .min_partial = 0, .hardening = {}, .random_seed = 0}));
  ASSERT_TRUE(k.ok());
  KmemCache* c = k.slab.create("tc-32", 32, 0, 0);
  void* p = k.slab.alloc(c, GFP_KERNEL, kOwnerKernel);
  k.slab.free(c, p, "kmem_cache_free");
  EXPECT_DEATH(k.slab.free(c, p, "kmem_cache_free"),
               "double free in kmem_cache_free: pointer 0x[0-9a-f]+ \\(cache tc-32");
  k.slab.drain_current_thread();
}

TEST_F(SlabDeathTest, RefillFollowsNoLinkOutOfItsSlab) {
  Machine k(slab_only(std::size_t{4} << 20,
                      SlabConfig{.thread_caches = true, .min_partial = 0, .hardening = {}, .random_seed = 0}));
  ASSERT_TRUE(k.ok());
  KmemCache* c = k.slab.create("uaf-64", 64, 0, 0);
  auto* first = static_cast<char*>(k.slab.alloc(c, GFP_KERNEL, kOwnerKernel));
  ASSERT_NE(first, nullptr);
  // The slab this thread owns hands out its objects in descending address order; its free
  // list now starts at the slot below. A use after free overwrites that slot's link.
  std::uint32_t forged = 0x7ff0;  // the start of no slot of the slab
  std::memcpy(first - c->size, &forged, sizeof forged);
  // The next allocation takes that slot and its forged link becomes the free list's head;
  // the one after must not follow it.
  ASSERT_EQ(k.slab.alloc(c, GFP_KERNEL, kOwnerKernel), first - c->size);
  EXPECT_DEATH(k.slab.alloc(c, GFP_KERNEL, kOwnerKernel),
               "corruption in kmalloc.*uaf-64.*slab free list points outside its slab");
}

}  // namespace
}  // namespace kmm

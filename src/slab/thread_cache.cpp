// kmm/slab/thread_cache.cpp — thread-local lookup, creation, exit and draining.
#include "slab/thread_cache.h"

#include <cstring>

#include "base/bits.h"
#include "base/fault_inject.h"
#include "base/report.h"
#include "pal/pal.h"

#if KMM_HAVE_THREADS
#include <pthread.h>
#include <sched.h>
#endif

namespace kmm {

void SlabAllocator::mark_owners_gone(const bool* dead) {
  for (unsigned o = kOwnerFirstModule; o < kMaxOwners; ++o) {
    if (dead[o]) __atomic_store_n(&owner_gone_[o], std::uint8_t{1}, __ATOMIC_SEQ_CST);
  }
}

#if KMM_HAVE_THREADS
__thread TcTlsSlot kmm_tc_slots[kMaxHeaps] __attribute__((tls_model("initial-exec")));
__thread ThreadHotWords kmm_thread_hot
    __attribute__((tls_model("initial-exec"))) = {{0, nullptr, 0}, kOwnerKernel, kFreeTickInterval};

namespace {

using TlsSlot = TcTlsSlot;
__attribute__((tls_model("initial-exec"))) thread_local bool t_key_set;
// Set by this thread's exit hook. glibc runs key destructors in key order, so another
// library's destructor may free or allocate after ours: from then on the thread gets no
// cache (thread_cache_slow), and works under the cache locks, as a thread beyond kMaxTcIds
// does. A cache made then would never be given back: the hook has run and is not run again
// (t_key_set), so its page, its thread id and every slab it adopted would be lost.
__attribute__((tls_model("initial-exec"))) thread_local bool t_exited;

struct HeapEntry {
  SlabAllocator* heap;
  std::uint64_t gen;
};

SpinLock g_heaps_lock;
HeapEntry g_heaps[kMaxHeaps];
std::uint64_t g_next_gen = 1;
pthread_key_t g_exit_key;
pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

void on_thread_exit(void*) {
  t_exited = true;                                 // before the caches go: no later call on this thread makes another
  kmm_thread_hot.last = TcTlsSlot{0, nullptr, 0};  // before any ThreadCache goes: a later free finds none
  for (unsigned i = 0; i < kMaxHeaps; ++i) {
    TlsSlot& s = kmm_tc_slots[i];
    if (s.tc == nullptr) continue;
    LockGuard g(g_heaps_lock);
    if (g_heaps[i].heap != nullptr && g_heaps[i].gen == s.gen) {
      SlabAllocator* heap = g_heaps[i].heap;
      heap->disown_thread_slabs(s.tc);
      heap->tc_detach(s.tc);
    }
    s.tc = nullptr;
    s.gen = 0;
  }
}

void make_key() {
  pthread_key_create(&g_exit_key, on_thread_exit);
}

// failslab's change hook: every heap with thread caches routes its allocations to the slow
// path (where the injection point is) while failslab is on. Heaps without always take it.
void route_all_heaps(FaultPoint, bool on) {
  LockGuard g(g_heaps_lock);
  for (auto& e : g_heaps)
    if (e.heap != nullptr) e.heap->route_faults(on);
}

}  // namespace

void tc_register_heap(SlabAllocator* heap, std::uint32_t* id, std::uint64_t* gen) {
  pthread_once(&g_key_once, make_key);
  fault_set_change_hook(FaultPoint::kSlab, route_all_heaps);
  LockGuard g(g_heaps_lock);
  for (unsigned i = 0; i < kMaxHeaps; ++i) {
    if (g_heaps[i].heap == nullptr) {
      g_heaps[i].heap = heap;
      g_heaps[i].gen = g_next_gen++;
      *id = i;
      *gen = g_heaps[i].gen;
      return;
    }
  }
  fatal("more than 16 kmm heaps with thread caches in one process");
}

void tc_unregister_heap(SlabAllocator* heap) {
  LockGuard g(g_heaps_lock);
  for (auto& e : g_heaps) {
    if (e.heap == heap) {
      e.heap = nullptr;
      e.gen = 0;
    }
  }
}

ThreadCache* SlabAllocator::thread_cache_slow() {
  if (heap_gen_ == kNoHeapGen) return nullptr;  // no thread caches (or shut down)
  TlsSlot& s = kmm_tc_slots[heap_id_];
  if (s.gen == heap_gen_) {
    kmm_thread_hot.last = s;
    return s.tc;
  }
  // First use on this thread (or a stale slot from a machine that is gone), unless the
  // thread is past its exit hook (t_exited). A thread id first: a thread beyond kMaxTcIds
  // gets no ThreadCache and works under the cache locks.
  if (t_exited) return nullptr;
  std::uint32_t id = 0;
  {
    LockGuard g(tc_list_lock_);
    tc_ids_[0] |= 1;  // id 0 is "owned by none"
    for (unsigned w = 0; w < kMaxTcIds / 64 && id == 0; ++w) {
      if (tc_ids_[w] == ~std::uint64_t{0}) continue;
      unsigned b = static_cast<unsigned>(__builtin_ctzll(~tc_ids_[w]));
      tc_ids_[w] |= std::uint64_t{1} << b;
      id = w * 64 + b;
    }
  }
  if (id == 0) return nullptr;
  unsigned order = get_order(sizeof(ThreadCache));
  Page* pages = zone_->alloc_pages(order, __GFP_ZERO | __GFP_HIGH);
  if (pages == nullptr) {
    LockGuard g(tc_list_lock_);
    tc_ids_[id / 64] &= ~(std::uint64_t{1} << (id % 64));
    return nullptr;
  }
  auto* tc = static_cast<ThreadCache*>(phys_->page_address(pages));
  tc->heap = this;
  tc->pages = pages;
  tc->id = id;
  tc->owner_bits = id << kSlabStateOwnerShift;
  tc->kept_empty = 0;
  __atomic_store_n(&remote_hint_[id], 0u, __ATOMIC_RELAXED);  // a previous owner's hints
  tc->no_slab.lru.freelist = kNoObject;
  std::memset(&tc->no_slab_geometry, 0, sizeof tc->no_slab_geometry);  // objects 0: no pop passes
  for (OwnedSlabs& o : tc->own) {
    o.cur = &tc->no_slab;
    o.base = nullptr;
    o.partial = o.full = kNoPfn;
  }
  pages->set_flags(PG_reserved);
  pages->set_order(static_cast<std::uint8_t>(order));
  {
    LockGuard g(tc_list_lock_);
    tc->prev = nullptr;
    tc->next = tc_list_;
    if (tc_list_ != nullptr) tc_list_->prev = tc;
    tc_list_ = tc;
  }
  s.tc = tc;
  s.owner_bits = tc->owner_bits;
  s.gen = heap_gen_;
  kmm_thread_hot.last = s;
  if (!t_key_set) {
    t_key_set = true;
    pthread_setspecific(g_exit_key, reinterpret_cast<void*>(1));
  }
  return tc;
}

// The heavy side of free_module_object_plain (slab.h): after the barrier, a thread still
// inside its window read the gone flags before they were set and will clear the owner byte
// with a plain store; wait until it has (the window is a handful of instructions, unless the
// thread was preempted inside it). Takes no cache lock: callers may hold none.
void SlabAllocator::fence_module_frees() {
  // The windows of threads with no cache or no barrier call (open_module_window): the flags'
  // seq_cst stores came first, so a window opened after this read sees them.
  for (unsigned spins = 0; __atomic_load_n(&unfenced_windows_, __ATOMIC_SEQ_CST) != 0;)
    if (++spins % 64 == 0) sched_yield();
  if (!fence_ok_) return;
  // mark_owners_gone's seq_cst stores come first; the barrier call is a full barrier too.
  if (!process_barrier()) {
    // The call failed after registering (it should not): stop relying on it. Frees of module
    // objects already past the check cannot be told apart, so they are waited for below.
    __atomic_store_n(&fence_ok_, false, __ATOMIC_RELAXED);
  }
  LockGuard g(tc_list_lock_);
  for (ThreadCache* tc = tc_list_; tc != nullptr; tc = tc->next) {
    unsigned spins = 0;
    while (__atomic_load_n(&tc->in_free, __ATOMIC_ACQUIRE) != 0) {
      if (++spins % 64 == 0) sched_yield();
    }
  }
}

void SlabAllocator::close_windows_after_fork() {
  for (ThreadCache* tc = tc_list_; tc != nullptr; tc = tc->next) __atomic_store_n(&tc->in_free, 0u, __ATOMIC_RELEASE);
  __atomic_store_n(&unfenced_windows_, 0u, __ATOMIC_RELEASE);  // only the forking thread runs here
}

void SlabAllocator::tc_detach(ThreadCache* tc) {
  {
    LockGuard g(tc_list_lock_);
    if (tc->prev != nullptr)
      tc->prev->next = tc->next;
    else
      tc_list_ = tc->next;
    if (tc->next != nullptr) tc->next->prev = tc->prev;
    tc_ids_[tc->id / 64] &= ~(std::uint64_t{1} << (tc->id % 64));  // its slabs are all given back
  }
  Page* pages = tc->pages;
  zone_->free_pages(pages, pages->get_order());
}

void SlabAllocator::tc_release_all() {
  for (;;) {
    ThreadCache* tc;
    {
      LockGuard g(tc_list_lock_);
      tc = tc_list_;
    }
    if (tc == nullptr) return;
    disown_thread_slabs(tc);
    tc_detach(tc);
  }
}

void SlabAllocator::drain_current_thread() {
  if (!cfg_.thread_caches) return;
  TlsSlot& s = kmm_tc_slots[heap_id_];
  if (s.gen == heap_gen_ && s.tc != nullptr) disown_thread_slabs(s.tc);
}

// Gives back every thread's slabs. Safe only when no other thread is using this
// allocator's thread caches at the same moment (idle drain, shrink, shutdown, tests).
void SlabAllocator::drain_thread_caches() {
  if (!cfg_.thread_caches) return;
  {
    LockGuard g(tc_list_lock_);
    for (ThreadCache* tc = tc_list_; tc != nullptr; tc = tc->next) disown_thread_slabs(tc);
  }
}

void SlabAllocator::lock_all() {
  g_heaps_lock.lock();
  tc_list_lock_.lock();
  registry_lock_.lock();
  for (auto& c : caches_) c.lock.lock();
  q_lock_.lock();  // a leaf: quarantine_push and _flush take no lock under it
}

void SlabAllocator::unlock_all() {
  q_lock_.unlock();
  for (unsigned i = kMaxCaches; i-- > 0;) caches_[i].lock.unlock();
  registry_lock_.unlock();
  tc_list_lock_.unlock();
  g_heaps_lock.unlock();
}

// kmem_cache_destroy: only each thread's slabs of c are given back. Other threads keep using
// their slabs of other caches meanwhile, unlocked (draining all of them here was a race the
// soak found: heap corruption in kmalloc caches); no thread may be using c itself, which is
// kmem_cache_destroy's contract, as in Linux.
void tc_drain_cache(SlabAllocator* heap, KmemCache* c) {
  heap->disown_cache_slabs(c);
}

void SlabAllocator::disown_cache_slabs(KmemCache* c) {
  if (!cfg_.thread_caches || c->tc_slot == 0xFF) return;
  LockGuard g(tc_list_lock_);
  for (ThreadCache* tc = tc_list_; tc != nullptr; tc = tc->next) disown_slot(c, tc);
}

#else  // no threads: there are no thread caches

void tc_register_heap(SlabAllocator*, std::uint32_t* id, std::uint64_t* gen) {
  *id = 0;
  *gen = 0;
}
void tc_unregister_heap(SlabAllocator*) {}
void tc_drain_cache(SlabAllocator*, KmemCache*) {}
void SlabAllocator::disown_cache_slabs(KmemCache*) {}
ThreadCache* SlabAllocator::thread_cache_slow() {
  return nullptr;
}
void SlabAllocator::tc_detach(ThreadCache*) {}
void SlabAllocator::fence_module_frees() {}
void SlabAllocator::close_windows_after_fork() {}
void SlabAllocator::tc_release_all() {}
void SlabAllocator::drain_current_thread() {}
void SlabAllocator::drain_thread_caches() {}
void SlabAllocator::lock_all() {
  registry_lock_.lock();
  for (auto& c : caches_) c.lock.lock();
  q_lock_.lock();  // a leaf: quarantine_push and _flush take no lock under it
}
void SlabAllocator::unlock_all() {
  q_lock_.unlock();
  for (unsigned i = kMaxCaches; i-- > 0;) caches_[i].lock.unlock();
  registry_lock_.unlock();
}

#endif

}  // namespace kmm

// kmm/slab/owned_slab.cpp — slabs owned by a thread: refills, remote frees, giving slabs back.
//
// The slow paths of the thread-owned slabs described at the top of slab.h (the fast paths,
// a pop and a push on the owner's own slab, are inline there). Who may touch what:
//   - a slab's free list and in-use count: its owner thread alone while a thread owns it;
//     the cache lock's holder while none does;
//   - the state word: anyone, atomically. Remote frees replace its low 16 bits (the remote
//     list's head) with a compare-and-swap; the owner takes the list back the same way and
//     sets or clears kSlabFull (and the slab's room_floor with it: set_room_floor,
//     clear_full); the owner field changes only under the cache lock;
//   - a ThreadCache's lists (OwnedSlabs): its thread alone (or a drain, other threads quiet);
//   - remote_hint_[id]: bits set by remote frees, taken by the owner with an atomic and.
// Remote lists are push-only stacks emptied whole by one thread, so a push is ABA-safe: a
// pusher only assumes the head it links to is the head when its compare-and-swap succeeds.
// Lock order: a cache lock is taken with no other kmm lock held, except by the collector,
// which frees with free_owned_slot(locked = true) and so never takes it again.
// Depends on: slab/slab.h, base/report.h.
#include "base/report.h"
#include "slab/slab.h"

namespace kmm {
namespace {

constexpr std::uint32_t kRemoteMask = 0xFFFFu;

std::uint32_t owner_of_state(std::uint32_t s) {
  return (s & kSlabStateOwnerMask) >> kSlabStateOwnerShift;
}
std::uint32_t remote_of_state(std::uint32_t s) {
  return s & kRemoteMask;
}

void kept_empty_add(ThreadCache* tc, int n) {
  __atomic_fetch_add(&tc->kept_empty, static_cast<std::uint32_t>(n), __ATOMIC_RELAXED);
}

}  // namespace

// The remote list starting at `first` (taken off the state word by the caller) joins head's
// free list. Every link is checked as it is followed, as a refill checks the free list: an
// object written after its free must not send the allocator outside its slab.
static void merge_remote(SlabAllocator* a, KmemCache* c, Page* head, std::uint32_t first) {
  if (first == kRemoteNone) return;
  char* base = static_cast<char*>(a->slab_base(head));
  const std::uint32_t slab_bytes = std::uint32_t{kPageSize} << c->order;
  unsigned n = 0;
  std::uint32_t last = first;
  for (std::uint32_t off = first; off != kNoObject;) {
    auto idx = static_cast<std::uint32_t>((std::uint64_t{off} * c->reciprocal) >> 32);
    if (off >= slab_bytes || idx * c->size != off || n >= c->objects) {
      report({ErrorKind::kCorruption, "kfree", base + (off < slab_bytes ? off : 0), c->name, c->size,
              "remote free list points outside its slab (use after free?)"});
      break;  // (report stops the process on corruption)
    }
    last = off;
    ++n;
    // The walk waits for each link, a line another core wrote, before it knows the next. A
    // slab's remote list mostly holds objects near one another (a consumer frees what a
    // producer allocated, in batches), so the objects 4, 8, 12 and 16 slots on are likely
    // further along it: fetching their lines now overlaps those transfers with this one.
    // xmalloc on two threads, interleaved: 0.157 s with no prefetch, 0.134 with the one at 4
    // slots, 0.118 with these four (0.126 with eight, to 32 slots); threads, whose lists are
    // sparse, the same within noise. Inside the slab whatever it holds: prefetches, never loads.
    for (unsigned k = 4; k <= 16; k += 4) {
      std::uint32_t ahead = off + k * c->size;
      __builtin_prefetch(base + (ahead < slab_bytes ? ahead : off));
    }
    off = a->get_link(c, base + off);
  }
  a->set_link(c, base + last, head->lru.freelist);
  head->lru.freelist = first;
  head->lru.inuse = static_cast<std::uint16_t>(head->lru.inuse - n);
}

bool SlabAllocator::collect_remote(KmemCache* c, Page* head) {
  std::uint32_t* w = slab_state_word(head);
  std::uint32_t s = __atomic_load_n(w, __ATOMIC_RELAXED);
  do {
    if (remote_of_state(s) == kRemoteNone) return false;
  } while (!__atomic_compare_exchange_n(w, &s, s | kRemoteNone, true, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED));
  merge_remote(this, c, head, remote_of_state(s));
  return true;
}

Page* SlabAllocator::take_slab(KmemCache* c, ThreadCache* tc, gfp_t gfp) {
  LockGuard g(c->lock);
  Page* head = partial_slab_locked(c, gfp);  // own_locked takes it off the partial list
  if (head != nullptr) own_locked(c, tc, head);
  return head;
}

void SlabAllocator::own_locked(KmemCache* c, ThreadCache* tc, Page* head) {
  if (head->lru.inuse == head->lru.objects) {
    list_del(&c->full, head);
    c->nr_full--;
  } else {
    list_del(&c->partial, head);
    c->nr_partial--;
    if (head->lru.inuse == 0) empty_removed(c);
  }
  // Every slot of an owned slab counts as active (slab.h).
  c->free_in_slabs.store(c->free_in_slabs.load(std::memory_order_relaxed) - (c->objects - head->lru.inuse),
                         std::memory_order_relaxed);
  c->nr_owned++;
  c->alloc_calls.fetch_add(1, std::memory_order_relaxed);
  // Owned by none until now: no remote list (frees took the lock), so a plain publish.
  __atomic_store_n(slab_state_word(head), (tc->id << kSlabStateOwnerShift) | kRemoteNone, __ATOMIC_RELEASE);
}

void SlabAllocator::adopt_locked(KmemCache* c, ThreadCache* tc, Page* head) {
  bool full = head->lru.inuse == head->lru.objects;
  own_locked(c, tc, head);
  OwnedSlabs& o = tc->own[c->tc_slot];
  if (full) {  // the free about to be made gives it room: free_local moves it to partial
    __atomic_fetch_or(slab_state_word(head), kSlabFull, __ATOMIC_RELAXED);
    set_room_floor(c, head, true);
    list_add(&o.full, head);
  } else {
    list_add(&o.partial, head);
  }
}

void SlabAllocator::disown_locked(KmemCache* c, Page* head) {
  // After the exchange a remote free finds owner 0 and waits for the lock we hold.
  std::uint32_t s = __atomic_exchange_n(slab_state_word(head), kSlabUnowned, __ATOMIC_ACQ_REL);
  set_room_floor(c, head, false);  // kSlabFull went with the owner
  merge_remote(this, c, head, remote_of_state(s));
  c->nr_owned--;
  unsigned nfree = c->objects - head->lru.inuse;
  if (nfree == 0) {
    list_add(&c->full, head);
    c->nr_full++;
    return;
  }
  list_add(&c->partial, head);
  c->nr_partial++;
  settle_slab_locked(c, head, /*was_full=*/false, nfree);
}

namespace {
// The slab o allocates from becomes head (null: none); the in-use counts' kInuseCur bit moves
// with it (slab.h), so that no other slab of this thread's holds the bit.
void set_cur(OwnedSlabs& o, ThreadCache* tc, Page* head, void* base) {
  if (o.cur != &tc->no_slab) o.cur->lru.inuse = static_cast<std::uint16_t>(o.cur->lru.inuse & ~kInuseCur);
  if (head != nullptr) head->lru.inuse = static_cast<std::uint16_t>(head->lru.inuse | kInuseCur);
  o.cur = head != nullptr ? head : &tc->no_slab;
  o.base = static_cast<char*>(base);
}
}  // namespace

bool SlabAllocator::owned_refill(KmemCache* c, ThreadCache* tc, gfp_t gfp) {
  OwnedSlabs& o = tc->own[c->tc_slot];
  const std::uint32_t slab_bytes = std::uint32_t{kPageSize} << c->order;
  const std::uint32_t mine = tc->id << kSlabStateOwnerShift;
  for (;;) {
    Page* head = o.cur;
    if (head != &tc->no_slab) {
      std::uint32_t off = head->lru.freelist;
      if (off != kNoObject && (off & kLazyLink)) {
        extend_lazy(c, head);
        continue;
      }
      if (off != kNoObject) {
        auto idx = static_cast<std::uint32_t>((std::uint64_t{off} * c->reciprocal) >> 32);
        if (__builtin_expect(off >= slab_bytes || idx * c->size != off, 0)) {
          report({ErrorKind::kCorruption, "kmalloc", o.base, c->name, c->size,
                  "slab free list points outside its slab (use after free?)"});
          head->lru.freelist = kNoObject;  // (report stops the process on corruption)
          continue;
        }
        if (__builtin_expect(!slot_free(c, head, idx), 0)) {
          report({ErrorKind::kCorruption, "kmalloc", o.base + off, c->name, c->size,
                  "slab free list points at an object in use (use after free?)"});
          head->lru.freelist = kNoObject;  // (report stops the process on corruption)
          continue;
        }
        return true;
      }
      if (collect_remote(c, head)) continue;
      // Exhausted: set aside as full, unless a remote free came in meanwhile (then take it).
      std::uint32_t expect = mine | kRemoteNone;
      if (!__atomic_compare_exchange_n(slab_state_word(head), &expect, expect | kSlabFull, false, __ATOMIC_ACQ_REL,
                                       __ATOMIC_RELAXED))
        continue;
      set_room_floor(c, head, true);
      list_del(&o.partial, head);
      list_add(&o.full, head);
      set_cur(o, tc, nullptr, nullptr);
    }
    // Another slab of ours with room (every one on partial but an exhausted cur has some).
    if (o.partial != kNoPfn) {
      Page* next = phys_->pfn_to_page(o.partial);
      if (next->lru.inuse == 0) kept_empty_add(tc, -1);  // a kept empty slab is cur now
      set_cur(o, tc, next, phys_->page_address(next));
      continue;
    }
    // Full slabs of ours that remote frees reached since we last looked.
    std::uint32_t bit = 1u << c->tc_slot;
    if (__atomic_load_n(&remote_hint_[tc->id], __ATOMIC_RELAXED) & bit) {
      __atomic_fetch_and(&remote_hint_[tc->id], ~bit, __ATOMIC_ACQ_REL);
      bool moved = false;
      for (pfn_t pfn = o.full; pfn != kNoPfn;) {
        Page* h = phys_->pfn_to_page(pfn);
        pfn = h->lru.next;
        if (remote_of_state(slab_state(h)) == kRemoteNone) continue;
        clear_full(c, h);
        list_del(&o.full, h);
        list_add(&o.partial, h);
        moved = true;
      }
      if (moved) continue;
    }
    Page* fresh = take_slab(c, tc, gfp);
    if (fresh == nullptr) return false;
    list_add(&o.partial, fresh);
    set_cur(o, tc, fresh, phys_->page_address(fresh));
  }
}

void* SlabAllocator::alloc_refilled(ThreadCache* tc, KmemCache* c, owner_t owner) {
  if (!owned_refill(c, tc, GFP_KERNEL)) return nullptr;
  // cur now has a free slot whose offset owned_refill checked (and no lazy link first).
  return alloc_fast_owned(tc, c, c->tc_slot, GFP_KERNEL, owner);
}

FreeFastResult SlabAllocator::free_owned_refused(const void* p) {
  char* base = owned_slab_base(p);
  Page* head = owned_head_at(base);
  if ((head->get_flags() & (PG_slab | PG_head)) != (PG_slab | PG_head)) return kFreeFastNo;
  ThreadCache* tc = thread_cache_if_ready();
  if (tc == nullptr) return kFreeFastNo;
  std::uint32_t state = __atomic_load_n(slab_state_word(head), __ATOMIC_RELAXED);
  // Only this thread changes the owner field of a slab it owns (or the kSlabFull bit), so what
  // is read here holds until free_local; remote frees change only the remote list's bits.
  if ((state & kSlabStateOwnerMask) != tc->owner_bits) return kFreeFastNo;
  // A slab a thread owns is of a cache with a tc_slot (only take_slab tags an owner).
  KmemCache* c = &caches_[head->get_cache_id()];
  auto off = static_cast<std::uint32_t>(static_cast<const char*>(p) - base);
  std::uint64_t q = std::uint64_t{off} * c->reciprocal;  // the fast path's slot test
  auto idx = static_cast<std::uint32_t>(q >> 32);
  if (idx >= c->objects || !owned_slot_start(q)) return kFreeFastNo;  // not a slot's start
  owner_t* slot = owner_slot(c, head, idx);
  // A module's object (the protector's fence and the collector's race) and a free slot (a
  // double free) are the general path's.
  if (__atomic_load_n(slot, __ATOMIC_RELAXED) != kOwnerKernel) return kFreeFastNo;
  __atomic_store_n(slot, kOwnerFree, __ATOMIC_RELAXED);  // the collector never takes the kernel's
  free_local(c, tc, head, off, state);
  return free_fast_done();
}

void SlabAllocator::free_local(KmemCache* c, ThreadCache* tc, Page* head, std::uint32_t off, std::uint32_t state) {
  OwnedSlabs& o = tc->own[c->tc_slot];
  char* base = static_cast<char*>(phys_->page_address(head));
  set_link(c, base + off, head->lru.freelist);
  head->lru.freelist = off;
  head->lru.inuse--;
  if ((state & kSlabFull) && head->lru.inuse <= c->unfull_inuse) {
    // Set aside by us, on our full list, and a quarter free now: back to partial.
    clear_full(c, head);
    list_del(&o.full, head);
    list_add(&o.partial, head);
  }
  // inuse counts the remote list too, so an empty slab has none. It stays with this thread
  // while it keeps fewer than kKeptEmptySlabs, else goes back to the cache (which keeps empty
  // slabs up to min_partial / empty_keep_bytes); cur stays cur either way.
  if (head->lru.inuse == 0 && head != o.cur) {
    if (__atomic_load_n(&tc->kept_empty, __ATOMIC_RELAXED) < kKeptEmptySlabs) {
      kept_empty_add(tc, 1);
      return;
    }
    list_del(&o.partial, head);
    LockGuard g(c->lock);
    disown_locked(c, head);
  }
}

bool SlabAllocator::free_owned_slot(KmemCache* c, Page* head, std::uint32_t off, ThreadCache* tc, bool locked) {
  std::uint32_t* w = slab_state_word(head);
  char* obj = static_cast<char*>(phys_->page_address(head)) + off;
  std::uint32_t s = __atomic_load_n(w, __ATOMIC_RELAXED);
  for (;;) {
    std::uint32_t owner = owner_of_state(s);
    if (owner == 0) {
      auto idx = static_cast<unsigned>((std::uint64_t{off} * c->reciprocal) >> 32);
      if (locked) return free_central_locked(c, head, idx);
      {
        LockGuard g(c->lock);
        s = __atomic_load_n(w, __ATOMIC_RELAXED);
        if (owner_of_state(s) != 0) continue;  // taken by a thread meanwhile
        if (tc == nullptr) return free_central_locked(c, head, idx);
        // A slab whose owner exited (or that was given back) and whose objects this thread
        // frees: it becomes this thread's, so the rest of its frees take no lock (a program
        // whose threads hand their work on, larson's shape, freed every object under the
        // lock before).
        adopt_locked(c, tc, head);
        s = __atomic_load_n(w, __ATOMIC_RELAXED);
      }
      free_local(c, tc, head, off, s);
      return false;
    }
    if (!locked && tc != nullptr && owner == tc->id) {
      free_local(c, tc, head, off, s);
      return false;
    }
    std::uint32_t first = remote_of_state(s);
    set_link(c, obj, first == kRemoteNone ? kNoObject : first);
    if (__atomic_compare_exchange_n(w, &s, (s & ~kRemoteMask) | off, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
      // The first remote free onto a slab its owner set aside as full: tell the owner.
      if ((s & kSlabFull) && first == kRemoteNone)
        __atomic_fetch_or(&remote_hint_[owner], 1u << c->tc_slot, __ATOMIC_RELEASE);
      return false;
    }
  }
}

void SlabAllocator::disown_slot(KmemCache* c, ThreadCache* tc) {
  OwnedSlabs& o = tc->own[c->tc_slot];
  if (o.partial == kNoPfn && o.full == kNoPfn) return;
  // No cur first: its in-use count loses kInuseCur before disown_locked reads it.
  const Page* cur = o.cur;
  set_cur(o, tc, nullptr, nullptr);
  LockGuard g(c->lock);
  for (pfn_t* list : {&o.partial, &o.full}) {
    while (*list != kNoPfn) {
      Page* head = phys_->pfn_to_page(*list);
      list_del(list, head);
      // A kept empty slab (free_local): on partial, not cur; a full slab is never empty.
      if (list == &o.partial && head->lru.inuse == 0 && head != cur) kept_empty_add(tc, -1);
      disown_locked(c, head);
    }
  }
}

void SlabAllocator::release_kept_empty_slabs() {
  ThreadCache* tc = thread_cache_if_ready();
  if (tc == nullptr || __atomic_load_n(&tc->kept_empty, __ATOMIC_RELAXED) == 0) return;
  for (unsigned id = 0; id < kMaxCaches; ++id) {
    KmemCache* c = cache(id);
    if (c == nullptr || c->tc_slot == 0xFF) continue;
    OwnedSlabs& o = tc->own[c->tc_slot];
    for (pfn_t pfn = o.partial; pfn != kNoPfn;) {
      Page* head = phys_->pfn_to_page(pfn);
      pfn = head->lru.next;
      if (head->lru.inuse != 0 || head == o.cur) continue;
      list_del(&o.partial, head);
      kept_empty_add(tc, -1);
      LockGuard g(c->lock);
      disown_locked(c, head);
    }
  }
}

void SlabAllocator::disown_thread_slabs(ThreadCache* tc) {
  for (unsigned id = 0; id < kMaxCaches; ++id) {
    KmemCache* c = cache(id);
    if (c != nullptr && c->tc_slot != 0xFF) disown_slot(c, tc);
  }
}

}  // namespace kmm

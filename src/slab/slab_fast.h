// kmm/slab/slab_fast.h — the slab allocator's inline fast paths: malloc's pop from this
// thread's slab (alloc_fast), free's push onto it or, for another thread's slab, onto its
// remote list (free_fast, free_fast_remote). slab.h includes it at its end; nothing else does.
//
// These paths take only the common cases and change nothing when they refuse: the general
// paths of slab.cpp and owned_slab.cpp run every check again and name what is wrong. Every
// word they read and why it can be trusted is said where it is read.
// Depends on: slab/slab.h (the SlabAllocator, KmemCache, Page and ThreadCache it works on).
#pragma once

#include "slab/slab.h"

namespace kmm {

// The allocation fast path: a pop from the free list of this thread's slab of c, and the
// owner byte. The offset popped was a link in a free slot: it is checked to be a slot of the
// slab before it is used (a write after free must not send the allocator outside its slab);
// a bad one goes to alloc_slow, which reports it.
__attribute__((always_inline)) inline void* SlabAllocator::alloc_fast(KmemCache* c, gfp_t gfp, owner_t owner) {
  ThreadCache* tc = thread_cache_if_ready();  // a thread's first allocation: alloc_slow
  if (__builtin_expect(tc == nullptr, 0)) return nullptr;
  // alloc_tc_slot is tc_slot or 0xFF (failslab; no tc_slot): read from c either way, it is
  // both the test and the index (one load of c, not two).
  std::uint8_t slot = __atomic_load_n(&c->alloc_tc_slot, __ATOMIC_RELAXED);
  if (__builtin_expect(slot == 0xFF, 0)) return nullptr;
  return alloc_fast_owned(tc, c, slot, gfp, owner);
}

__attribute__((always_inline)) inline void* SlabAllocator::alloc_fast_owned_at(ThreadCache* tc, KmemCache* c,
                                                                               std::size_t own_off, gfp_t gfp,
                                                                               owner_t owner) {
  // own_off is a multiple of sizeof(OwnedSlabs) (own_offset): an element of own, aligned.
  OwnedSlabs& o = *reinterpret_cast<OwnedSlabs*>(reinterpret_cast<std::uintptr_t>(tc->own) + own_off);
  Page* head = o.cur;
  std::uint32_t off = head->lru.freelist;
  // The geometry from cur's copy beside its head, the line the free list's head was read
  // from, not from c: malloc waits for no load of c (and no_slab's copy is zero: objects 0).
  // kNoObject and a lazy link (kLazyLink: bit 31) give an index far beyond `objects`, so
  // one compare covers them (owned_slot_start).
  std::uint64_t q = std::uint64_t{off} * owned_geometry(head, offsetof(OwnedSlabGeometry, reciprocal));
  auto idx = static_cast<std::uint32_t>(q >> 32);
  if (__builtin_expect(idx < owned_geometry(head, offsetof(OwnedSlabGeometry, objects)) && owned_slot_start(q), 1)) {
    // Everything read before the stores (they might alias it, for all the compiler knows).
    char* base = o.base;
    char* p = base + off;
    if (p == nullptr) __builtin_unreachable();  // callers test the result: not needed here
    // A cache with a tc_slot keeps its owner bytes inside its slabs (size_cache). Their offset
    // and the link key in one load (OwnedSlabLayoutWord); the key's test is the flags of the
    // shift that takes it out. (reciprocal and objects stay two loads: one word split in
    // registers needed a register more than the preload's malloc has without saves.)
    OwnedSlabLayoutWord g = owned_layout_word(head);
    owner_t* os = reinterpret_cast<owner_t*>(base + g.owners_offset()) + idx;
    // The link, decoded under freelist_hardened (load_owned_link's work, written out so that
    // the option's two steps share the one branch on the key). A link forged by one who read
    // a freed slot's link (and so knows the key) still names only a slot of this slab; one in
    // use is refused here, and owned_refill reports it.
    std::uint32_t next;
    std::memcpy(&next, p, sizeof next);
    if (__builtin_expect(g.fl_key() != 0, 0)) {
      if (__atomic_load_n(os, __ATOMIC_RELAXED) != kOwnerFree) return nullptr;
      next ^= link_mask_of(g.fl_key(), p);
    }
    head->lru.freelist = next;
    head->lru.inuse++;
    // The next allocation of this class pops `next` and waits for its link: start the load
    // now. Its low 16 bits keep the address inside this 64 KiB slab whatever the link holds
    // (kNoObject, a lazy link, a corrupted one): a prefetch never faults, but it stays in RAM.
    __builtin_prefetch(base + (next & 0xFFFF));
    __atomic_store_n(os, owner == kOwnerFree ? kOwnerKernel : owner, __ATOMIC_RELAXED);
    if (gfp & __GFP_ZERO) std::memset(p, 0, c->object_size);
    return p;
  }
  return nullptr;
}

__attribute__((always_inline)) inline void* SlabAllocator::alloc(KmemCache* c, gfp_t gfp, owner_t owner,
                                                                 std::size_t asked) {
  if (void* p = alloc_fast(c, gfp, owner)) return p;
  return alloc_slow(c, gfp, owner, asked);
}

// The free fast path, the common cases only: an object of a slab this thread owns, which stays
// in use after it — the kernel's, or a live module's (the protector's plain free, below) — or
// a kernel-owned object of a slab another thread owns (its remote list). The checks
// that find a bad free (p is the start of a slot of a slab cache — of c, when c is given — and
// the slot is allocated) come first, then the push. kFreeFastDone / kFreeFastTick: done.
// kFreeFastNo: nothing was changed, and free_page_object_general, which runs every check again,
// decides (a gone module's object, a module's object freed onto another thread's slab, a free
// slot, a slab owned by none, a full or emptied one, no tc_slot, a bad pointer). It calls
// nothing but free_fast_remote, so its callers need few register saves.
__attribute__((always_inline)) inline FreeFastResult SlabAllocator::free_fast(KmemCache* c, Page* page, const void* p,
                                                                              owner_t* freed) {
  // The slab's head: by masking p (a slab of a cache with a tc_slot is 64 KiB and aligned, so
  // if the frame there heads one, p is inside it: see kOwnedSlabOrder), else through p's
  // descriptor.
  if (__builtin_expect(owned_by_mask(), 1)) return free_fast_masked(c, p, freed);
  Page* head = page;
  std::uint32_t head_flags = page->get_flags();
  if (head_flags & PG_tail) {  // a tail of a slab, or of anything else: its head says which
    head = phys_->pfn_to_page(page->tail_head());
    head_flags = head->get_flags();
  }
  return free_fast_at<true>(c, head, head_flags, static_cast<char*>(phys_->page_address(head)), p, freed,
                            call_free_fast_remote());
}

__attribute__((always_inline)) inline FreeFastResult SlabAllocator::free_fast_masked(KmemCache* c, const void* p,
                                                                                     owner_t* freed) {
  char* base = owned_slab_base(p);
  Page* head = owned_head_at(base);
  return free_fast_at<true>(c, head, head->get_flags(), base, p, freed, call_free_fast_remote());
}

template <bool kCountTick, typename Remote>
__attribute__((always_inline)) inline FreeFastResult SlabAllocator::free_fast_masked_with(const void* p, owner_t* freed,
                                                                                          Remote&& remote) {
  char* base = owned_slab_base(p);
  Page* head = owned_head_at(base);
  return free_fast_at<kCountTick>(nullptr, head, head->get_flags(), base, p, freed, remote);
}

// head: the descriptor of base, the frame that heads p's slab if p is a slab object.
template <bool kCountTick, typename Remote>
__attribute__((always_inline)) inline FreeFastResult SlabAllocator::free_fast_at(KmemCache* c, Page* head,
                                                                                 std::uint32_t head_flags, char* base,
                                                                                 const void* p, owner_t* freed,
                                                                                 Remote&& remote) {
  if (__builtin_expect((head_flags & (PG_slab | PG_head)) != (PG_slab | PG_head), 0)) return kFreeFastNo;
  if (__builtin_expect(c != nullptr && c->id != head->get_cache_id(), 0)) return kFreeFastNo;
  // This thread's cache of this heap, by the generation alone: the thread's cache itself is
  // not loaded on this path (its owner bits are beside the generation in TLS, and the
  // countdown is there too), so no register holds it and a local free reads none of its words.
  if (__builtin_expect(!thread_cache_ready(), 0)) return kFreeFastNo;
  auto off = static_cast<std::uint64_t>(static_cast<const char*>(p) - base);
  // The owner test first: a slab whose state names this thread is a thread-owned slab (a
  // cache with a tc_slot: only take_slab of one tags an owner; new_slab writes kSlabUnowned),
  // and a thread-owned slab has its cache's geometry beside its head (OwnedSlabGeometry) and
  // its owner bytes inside it (size_cache). Any other slab is not looked at further here.
  std::uint32_t state = __atomic_load_n(&head->lru.nr_pages, __ATOMIC_RELAXED);
  std::uint32_t slab_owner = state & kSlabStateOwnerMask;  // the owner's id, shifted (owner_bits)
  // Another thread's slab (or one owned by none): apart, so that this path keeps its values in
  // registers it need not save. It reads the geometry from the cache: the slab is not ours.
  if (__builtin_expect(slab_owner != ready_owner_bits(), 0)) {
    *freed = kOwnerKernel;  // the only owner free_fast_remote takes
    return remote(ready_thread_cache(), head, state | off << 32, static_cast<char*>(const_cast<void*>(p)));
  }
  // Room for a local free: a slab not set aside as full has it unless this is its last object
  // (inuse 1) and it is not cur; one set aside as full (kSlabFull: bit 31) until it is freed down to
  // unfull_inuse + 1, when the general path moves it back. Its owner keeps that threshold
  // beside the head (OwnedSlabGeometry::room_floor): no branch on the full bit (in larson half
  // the frees land on full slabs, and that branch mispredicted on 45 % of frees, callgrind
  // --branch-sim) and no arithmetic on the state word. It comes in one load with the owner
  // vector's offset and the link key (OwnedSlabLayoutWord), and is tested first, for every
  // owner: once a module's owner byte is cleared the free must finish here.
  // Below the threshold: a full slab's free goes to the general path; so does the last object
  // of a slab that is not cur (it gives the slab back). cur's count carries kInuseCur (slab.h),
  // which is above every threshold: its last object stays on this path, with no lookup of
  // which slab is cur. (A threshold above 1 is a full slab's, and a full slab is never cur.)
  OwnedSlabLayoutWord g = owned_layout_word(head);
  if (__builtin_expect(head->lru.inuse <= g.room_floor(), 0)) return kFreeFastNo;
  // Ours: the slot test, exact for a slab threads own (owned_slot_start), with the geometry
  // read from the line of the head descriptor, which only this thread changes while it owns
  // the slab (the copy is written before the slab is published; after, only its room_floor
  // changes, and only by its owner).
  // The slot's start test before its index is compared, so the product's low half is dead by
  // then and the index takes its register (the other order kept both, and kfree saved two
  // registers for it). reciprocal and objects are two loads, not one word split in registers:
  // that needed a register more than free has without saves.
  std::uint64_t q = off * owned_geometry(head, offsetof(OwnedSlabGeometry, reciprocal));
  auto idx = static_cast<std::uint32_t>(q >> 32);
  if (__builtin_expect(!owned_slot_start(q) || idx >= owned_geometry(head, offsetof(OwnedSlabGeometry, objects)), 0))
    return kFreeFastNo;
  owner_t* slot = reinterpret_cast<owner_t*>(base + g.owners_offset()) + idx;
  // Read before the stores below (which might alias it, for all the compiler knows).
  std::uint32_t key = g.fl_key();
  // The push, with the link key it is given: the module branch below reads the key again from
  // the head's line rather than keep it in a register across the protector's window (which
  // needs every register free has without saves).
  auto push = [&](std::uint32_t link_key) {
    store_owned_link(link_key, base + off, head->lru.freelist);
    head->lru.freelist = static_cast<std::uint32_t>(off);
    head->lru.inuse--;
    if constexpr (kCountTick) return free_fast_done();
    return kFreeFastDone;
  };
  owner_t owner = __atomic_load_n(slot, __ATOMIC_RELAXED);
  if (__builtin_expect(owner != kOwnerKernel, 0)) {
    // A module's object (or a free slot: the general path reports the double free). Its owner
    // byte goes by the protector's plain free, which refuses — changing nothing — when the
    // module is gone (the collector may be claiming it: the general path exchanges) or the
    // process has no barrier for the fence.
    // (Through tc->heap, this allocator: `this` is not kept in a register past the
    // thread-cache test, which spared free two register saves; tc is read from TLS here.)
    ThreadCache* tc = ready_thread_cache();
    if (owner == kOwnerFree || !tc->heap->free_module_object_plain(tc, slot, owner)) return kFreeFastNo;
    *freed = owner;
    return push(owned_geometry(head, offsetof(OwnedSlabGeometry, fl_key)));
  }
  // The collector never takes the kernel's objects: a plain store suffices.
  __atomic_store_n(slot, kOwnerFree, __ATOMIC_RELAXED);
  *freed = kOwnerKernel;
  return push(key);
}

// free_fast_at's object obj of a slab another thread owns, or of one owned by none (state_off:
// the slab's state word as read, and obj's offset in the slab above it; packed, so every
// argument is in a register): the slot test, with the geometry from the cache (this thread
// does not own the slab), the owner byte, then one compare-and-swap onto the slab's remote
// list (owned_slab.cpp). The first remote free onto a slab set aside as full tells its owner:
// the general path (kFirstOntoFull below). kFreeFastNo when nothing was changed.
__attribute__((noinline)) inline FreeFastResult SlabAllocator::free_fast_remote(ThreadCache* tc, Page* head,
                                                                                std::uint64_t state_off, char* obj) {
  constexpr std::uint32_t kFirstOntoFull = kSlabFull | kRemoteNone;
  auto state = static_cast<std::uint32_t>(state_off);
  auto off32 = static_cast<std::uint32_t>(state_off >> 32);
  std::uint32_t slab_owner = state & kSlabStateOwnerMask;
  if (slab_owner == 0 || (state & kFirstOntoFull) == kFirstOntoFull) return kFreeFastNo;
  std::uint16_t cache_id = head->get_cache_id();
  if (__builtin_expect(cache_id >= kMaxCaches, 0)) return kFreeFastNo;
  const KmemCache* sc = &caches_[cache_id];
  std::uint64_t q = std::uint64_t{off32} * sc->reciprocal;
  auto idx = static_cast<std::uint32_t>(q >> 32);
  if (idx >= sc->objects32 || !owned_slot_start(q)) return kFreeFastNo;
  // The slab's owner vector where its colour puts it (slab.h), from the cache, as the rest of
  // this slab's geometry: not from the copy beside its head, which a free of a stale pointer
  // could read while the slab's frames are made into something else (plain bytes then).
  auto* slot = reinterpret_cast<owner_t*>(obj - off32 + owners_offset_at(sc, obj - off32)) + idx;
  std::uint32_t key = sc->fl_key;
  if (__atomic_load_n(slot, __ATOMIC_RELAXED) != kOwnerKernel) return kFreeFastNo;
  __atomic_store_n(slot, kOwnerFree, __ATOMIC_RELAXED);
  for (;;) {
    std::uint32_t first = state & kRemoteNone;
    store_owned_link(key, obj, first == kRemoteNone ? kNoObject : first);
    if (__atomic_compare_exchange_n(&head->lru.nr_pages, &state, (state & ~kRemoteNone) | off32, true, __ATOMIC_RELEASE,
                                    __ATOMIC_RELAXED))
      return free_fast_done();
    slab_owner = state & kSlabStateOwnerMask;
    if (__builtin_expect(slab_owner == 0 || slab_owner == tc->owner_bits || (state & kFirstOntoFull) == kFirstOntoFull,
                         0)) {
      // The state changed meanwhile: undone (no one frees a kernel-owned object but its
      // holder, and the collector never claims one), and the general path decides.
      __atomic_store_n(slot, kOwnerKernel, __ATOMIC_RELAXED);
      return kFreeFastNo;
    }
  }
}

// A fast free done: the countdown to the caller's periodic work.
__attribute__((always_inline)) inline FreeFastResult SlabAllocator::free_fast_done() {
#if KMM_HAVE_THREADS
  if (__builtin_expect(--kmm_thread_hot.free_countdown != 0, 1)) return kFreeFastDone;  // from kFreeTickInterval
  kmm_thread_hot.free_countdown = kFreeTickInterval;
  return kFreeFastTick;
#else
  return kFreeFastDone;  // no thread caches: no fast free reaches here
#endif
}

inline owner_t SlabAllocator::free_page_object(KmemCache* c, Page* page, const void* p, const char* action) {
  owner_t freed;
  if (__builtin_expect(free_fast(c, page, p, &freed) != kFreeFastNo, 1)) return freed;
  return free_page_object_general(c, page, p, action);
}

}  // namespace kmm

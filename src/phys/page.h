// kmm/phys/page.h — the page descriptor, Linux's `struct page`, one per 4 KiB frame.
//
// mem_map[pfn - base_pfn] describes frame pfn. A descriptor is 32 bytes on every target
// (0.78 % of RAM; Linux's is 64 bytes, 1.56 %), because links are 32-bit page frame numbers,
// not pointers: the same layout on 32- and 64-bit hosts, and position-independent, so a
// mem_map inside a file means the same thing wherever the file is mapped.
//
// What a descriptor is, by its flags (exactly one role at a time):
//   PG_reserved          boot memory: mem_map itself, the kernel's own structures.
//   PG_buddy             head of a free block of 2^order frames on free list `order`; with
//                        PG_reported too, the block's frames were given back to the host
//                        (free page reporting, page/buddy.h) and read as zero when touched;
//                        the range allocator (page/range.h) every frame of a free run, the
//                        run's first and last also PG_range_end with lru.nr_pages = length.
//   PG_slab | PG_head    first frame of a slab: slab fields valid, cache_id names the cache.
//   PG_large | PG_head   first frame of a page-level allocation (large kmalloc, alloc_pages
//                        by a module): `owner` and `large.nr_pages` valid.
//   PG_guarded           (with PG_large | PG_head) the block's last frame is a guard page
//                        (slab/hardening.h): lru.freelist holds the bytes asked for,
//                        lru.objects how the guard is kept (1: the platform made it
//                        inaccessible, 2: filled with a pattern the free checks).
//   PG_tail              a later frame of a slab or large allocation: tail.head is the head.
//   none of these        an order-0 page allocated with alloc_pages, or a frame inside a
//                        free buddy block (not its head).
// Invariant: `owner` is kOwnerFree on every frame that is not a PG_large head or an
// order-N alloc_pages head; slab objects keep their owners in the slab's owner vector.
//
// Depends on: base/config.h.
#pragma once

#include "base/config.h"

namespace kmm {

enum PageFlags : std::uint32_t {
  PG_reserved = 1u << 0,
  PG_buddy = 1u << 1,
  PG_slab = 1u << 2,
  PG_head = 1u << 3,
  PG_tail = 1u << 4,
  PG_large = 1u << 5,            // large kmalloc (page-level, owned)
  PG_pages = 1u << 6,            // alloc_pages() block handed to a caller
  PG_vmalloc = 1u << 7,          // frame backing a vmalloc area
  PG_process = 1u << 8,          // frame owned by a modelled user process (vm/, nommu/)
  PG_pgtable = 1u << 9,          // frame holding a page table
  PG_offslab_owners = 1u << 10,  // slab head: owners live in tail descriptors
  PG_range_end = 1u << 11,       // range allocator: first or last frame of a free run (with PG_buddy)
  PG_guarded = 1u << 12,         // large head: the last frame is a guard page
  PG_reported = 1u << 13,        // buddy head: the block's frames were given back to the host
};

// Owner bytes a tail descriptor can hold for its slab (see slab/slab.h).
inline constexpr unsigned kTailOwnerBytes = 16;

struct Page {
  std::uint32_t flags;
  std::uint8_t order;      // free block order (PG_buddy) or allocation order (PG_head)
  std::uint8_t owner;      // protector: owner of a page-level allocation (PG_large/PG_pages)
  std::uint16_t cache_id;  // PG_slab head: index of its kmem_cache in the kernel's table
  std::uint32_t refcount;  // _refcount: users of the frame (1 while allocated)
  // Named outside the union: ISO C++ allows only data members in an anonymous union
  // (clang -Wpedantic rejects anonymous structs there).
  struct Lru {  // buddy free lists, slab partial/full lists
    pfn_t next;
    pfn_t prev;
    std::uint32_t freelist;  // slab: offset of the first free object, kNoObject if none
    std::uint16_t inuse;     // slab: objects handed out (counting per-thread caches)
    std::uint16_t objects;   // slab: capacity
    std::uint32_t nr_pages;  // large: frames in the allocation (exact, kmalloc2 style)
  };
  struct Tail {
    pfn_t head;
    std::uint8_t owners[kTailOwnerBytes];
  };
  union {
    Lru lru;
    Tail tail;
  };

  // flags and order of a frame are read by the buddy allocator under its lock while the
  // frame's owner writes them outside it (a neighbour checked for merging): relaxed atomics,
  // a plain load or store on every target, keep that well defined.
  std::uint32_t get_flags() const { return __atomic_load_n(&flags, __ATOMIC_RELAXED); }
  void set_flags(std::uint32_t f) { __atomic_store_n(&flags, f, __ATOMIC_RELAXED); }
  std::uint8_t get_order() const { return __atomic_load_n(&order, __ATOMIC_RELAXED); }
  void set_order(std::uint8_t o) { __atomic_store_n(&order, o, __ATOMIC_RELAXED); }
  bool is(std::uint32_t f) const { return (get_flags() & f) != 0; }
  // Publishing a block: every field of the head (owner, nr_pages, cache_id...) and its tails
  // is written first, then the head's flags with release; the collector, walking mem_map on
  // another thread, reads the flags with acquire and only then the rest.
  void publish_flags(std::uint32_t f) { __atomic_store_n(&flags, f, __ATOMIC_RELEASE); }
  std::uint32_t get_flags_acquire() const { return __atomic_load_n(&flags, __ATOMIC_ACQUIRE); }
  // A tail's head: written before the tail's PG_tail flag is published (release), read after
  // it is seen (acquire), so a thread walking mem_map (the collector's conservative scan) never
  // reads it half-written; relaxed atomics because a frame may be reused meanwhile (a stale
  // head is still a frame of this machine: the caller checks what it finds there).
  pfn_t tail_head() const { return __atomic_load_n(&tail.head, __ATOMIC_RELAXED); }
  void set_tail_head(pfn_t h) { __atomic_store_n(&tail.head, h, __ATOMIC_RELAXED); }
  // Fields the collector reads without a lock while their owner writes them.
  owner_t get_owner() const { return __atomic_load_n(&owner, __ATOMIC_RELAXED); }
  void set_owner(owner_t o) { __atomic_store_n(&owner, o, __ATOMIC_RELAXED); }
  // Claims a page-level block for freeing: exactly one of a kfree and a collector pass
  // racing on the same block wins. Returns the owner it had (kOwnerFree: already claimed).
  owner_t claim_owner() { return __atomic_exchange_n(&owner, static_cast<owner_t>(0), __ATOMIC_ACQ_REL); }
  bool claim_owner_if(owner_t expected) {
    return __atomic_compare_exchange_n(&owner, &expected, static_cast<owner_t>(0), false, __ATOMIC_ACQ_REL,
                                       __ATOMIC_RELAXED);
  }
  // The owner goes from *expected to `to` unless it changed (a claim, a transfer): then false,
  // with what it is now in *expected (ownership transfer against a racing claim).
  bool replace_owner(owner_t* expected, owner_t to) {
    return __atomic_compare_exchange_n(&owner, expected, to, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
  }
  std::uint16_t get_cache_id() const { return __atomic_load_n(&cache_id, __ATOMIC_RELAXED); }
  void set_cache_id(std::uint16_t id) { __atomic_store_n(&cache_id, id, __ATOMIC_RELAXED); }
  // refcount: written by the page allocators under their lock, read unlocked by kfree's
  // diagnosis of a pointer into a page that may be given back at the same moment.
  std::uint32_t get_refcount() const { return __atomic_load_n(&refcount, __ATOMIC_RELAXED); }
  void set_refcount(std::uint32_t r) { __atomic_store_n(&refcount, r, __ATOMIC_RELAXED); }
  std::uint32_t get_nr_pages() const { return __atomic_load_n(&lru.nr_pages, __ATOMIC_RELAXED); }
  void set_nr_pages(std::uint32_t n) { __atomic_store_n(&lru.nr_pages, n, __ATOMIC_RELAXED); }
};

static_assert(sizeof(Page) == 32, "struct page must stay 32 bytes");

inline constexpr std::uint32_t kNoObject = 0xFFFFFFFFu;

}  // namespace kmm

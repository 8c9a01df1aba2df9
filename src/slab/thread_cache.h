// kmm/slab/thread_cache.h — per-thread caches: the slabs a thread owns (the pcp of user space).
//
// Each thread that allocates from a SlabAllocator with thread caches on gets a ThreadCache,
// carved from that allocator's own pages (no libc heap), with a thread id (the owner tag in
// its slabs' state words) and one OwnedSlabs per cache slot (slab.h; owned_slab.cpp has the
// slow paths). A thread finds its cache through a thread-local table indexed by the
// allocator's heap id and checked against its generation, so a cache of a machine that has
// since shut down is never touched. At thread exit (a pthread key destructor) its slabs go
// back to their caches, remote frees merged in, and the ThreadCache's pages to the buddy
// allocator; its id is free again.
//
// Invariant (mimalloc style): for each cache c,
//   c.active_objects == live objects + free slots of slabs threads own.
// Depends on: slab/slab.h, and pthreads on a hosted build.
#pragma once

#include "slab/slab.h"

namespace kmm {

// OwnedSlabs, ThreadCache, kMaxHeaps and the thread-local table live in slab.h: the
// allocation fast path there is inline.

// Registry of allocators that use thread caches (at most kMaxHeaps at once).
void tc_register_heap(SlabAllocator* heap, std::uint32_t* id, std::uint64_t* gen);
void tc_unregister_heap(SlabAllocator* heap);
// Every thread's slabs of cache c go back to it (kmem_cache_destroy).
void tc_drain_cache(SlabAllocator* heap, KmemCache* c);

}  // namespace kmm

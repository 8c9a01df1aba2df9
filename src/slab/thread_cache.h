// kmm/slab/thread_cache.h — per-thread magazines of free objects (the pcp of user space).
//
// Each thread that allocates from a SlabAllocator with thread caches on gets a ThreadCache,
// carved from that allocator's own pages (no libc heap), holding one magazine per cache
// slot. A thread finds its cache through a thread-local table indexed by the allocator's
// heap id and checked against its generation, so a cache of a machine that has since shut
// down is never touched. At thread exit (a pthread key destructor) the magazines go back to
// their slabs and the ThreadCache's pages to the buddy allocator.
//
// Invariant (mimalloc style): for each cache c,
//   c.active_objects == live objects + sum over threads of |magazine(c)|.
// Depends on: slab/slab.h, and pthreads on a hosted build.
#pragma once

#include "slab/slab.h"

namespace kmm {

// Magazine, ThreadCache, kMaxHeaps and the thread-local table live in slab.h: the
// allocation fast path there is inline.

// Registry of allocators that use thread caches (at most kMaxHeaps at once).
void tc_register_heap(SlabAllocator* heap, std::uint32_t* id, std::uint64_t* gen);
void tc_unregister_heap(SlabAllocator* heap);
// Empties every thread's magazine of cache c into its slabs (kmem_cache_destroy, shrink).
void tc_drain_cache(SlabAllocator* heap, KmemCache* c);

}  // namespace kmm

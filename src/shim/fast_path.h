// kmm/shim/fast_path.h — malloc's and free's common case, inline in the exported functions.
//
// What it does. A small request of a booted kernel goes straight to its size class's slab
// cache (the thread's own slab, slab.h), and a free of a slab object straight to the slab's
// free path, with no call between malloc_api.cpp and alloc.cpp: under callgrind the calls and
// their register saves were a third of a malloc/free pair. Everything else — boot, page runs,
// huge blocks, the bootstrap arena, glibc's blocks, bad pointers — goes to alloc_general and
// release_general (alloc.cpp), which hold the whole logic.
//
// Depends on: shim.h, kernel/kernel.h (slab, kmalloc). Invariants: the fast path makes no
// decision the general path would make differently: a pointer it does not recognise as a
// RAM slab object, or a kernel not yet booted, always takes the general path.
#pragma once

#include "shim/shim.h"

namespace kmm::shim {

constexpr std::size_t kMaxClassBytes = kKmallocMaxCacheSize;  // 8 KiB: the largest size class
// The size class of every request up to 8 KiB, indexed by (size + 15) / 16 (alloc.cpp fills
// it before g_kernel is published).
extern KmemCache* g_class[kMaxClassBytes / 16 + 1] KMM_SHIM_HIDDEN;
// Each class's place among a thread's slabs (own_offset of its tc_slot), beside it: malloc
// finds the thread's slab with it at once, not after loading the slot from the cache (one
// dependent load less before the free list's head is read) and scaling it.
extern own_off_t g_class_own[kMaxClassBytes / 16 + 1] KMM_SHIM_HIDDEN;

void* alloc_general(std::size_t size, owner_t owner);
void release_general(void* p, const char* action);

#if KMM_HAVE_THREADS
// What malloc's fast path and its refill both ask first: a small request, from outside the
// plug-ins' address hull, of a thread that has its cache of g_kernel's heap (booted; g_class
// was filled before g_kernel was published, and g_heap_gen after it; failslab off: while it
// is on, g_heap_gen matches no thread). False: the general path decides.
__attribute__((always_inline)) inline bool thread_heap_takes(std::size_t size, const void* ra) {
  auto a = reinterpret_cast<std::uintptr_t>(ra);
  if (__builtin_expect(size > kMaxClassBytes || (a >= __atomic_load_n(&g_plugin_lo, __ATOMIC_RELAXED) &&
                                                 a < __atomic_load_n(&g_plugin_hi, __ATOMIC_RELAXED)),
                       0))
    return false;
  return __builtin_expect(kmm_thread_hot.last.gen == __atomic_load_n(&g_heap_gen, __ATOMIC_RELAXED), 1);
}
#endif

// malloc's common case alone: a small request of a booted kernel from outside the plug-ins'
// address hull, popped from this thread's slab; null when anything else must decide (the
// caller then runs the whole path). It calls nothing, so malloc saves no registers for it.
__attribute__((always_inline)) inline void* alloc_fast(std::size_t size, const void* ra) {
#if KMM_HAVE_THREADS
  if (!thread_heap_takes(size, ra)) return nullptr;
  owner_t owner = current_owner();
  // The thread's owner is never kOwnerFree (kernel.cpp: OwnerScope), so alloc_fast's mapping
  // of kOwnerFree to the kernel folds away.
  if (owner == kOwnerFree) __builtin_unreachable();
  std::size_t cls = (size + 15) >> 4;
  // alloc_fast_owned: no test of alloc_tc_slot (failslab moves g_heap_gen instead), and a
  // class with no tc_slot has kNoTcSlot, whose pop always fails.
  return SlabAllocator::alloc_fast_owned_at(kmm_thread_hot.last.tc, g_class[cls], g_class_own[cls], GFP_KERNEL, owner);
#else
  (void)size;
  (void)ra;
  return nullptr;
#endif
}

// malloc's next case, for its slow path: alloc_fast refused because this thread's slab of
// the class is spent (once in some dozens of a program's allocations): the refill and the
// pop, with no walk down the general path (SlabAllocator::alloc_refilled). Null when any
// other test refused, or the refill could not: the general path then decides.
inline void* alloc_refill(std::size_t size, const void* ra) {
#if KMM_HAVE_THREADS
  if (!thread_heap_takes(size, ra)) return nullptr;
  std::size_t cls = (size + 15) >> 4;
  if (g_class_own[cls] == own_offset(kNoTcSlot)) return nullptr;
  Kernel* k = __atomic_load_n(&g_kernel, __ATOMIC_RELAXED);
  return k->slab().alloc_refilled(kmm_thread_hot.last.tc, g_class[cls], current_owner());
#else
  (void)size;
  (void)ra;
  return nullptr;
#endif
}

__attribute__((always_inline)) inline void* alloc(std::size_t size, owner_t owner) {
  Kernel* k = __atomic_load_n(&g_kernel, __ATOMIC_ACQUIRE);
  if (__builtin_expect(k != nullptr && size <= kMaxClassBytes, 1))
    return k->slab().alloc(g_class[(size + 15) >> 4], GFP_KERNEL, owner, size);
  return alloc_general(size, owner);
}

// Whether p lies in a booted kernel's RAM (false for null, glibc's and the bootstrap arena's
// pointers, and before boot). Inside the RAM means booted: the range is empty until g_kernel
// is published (alloc.cpp), and the acquire load of its size pairs with the release that
// publishes it after g_kernel, so g_kernel can then be loaded with no test. The range is
// published only when the kernel's owned slabs are found by masking (alloc.cpp), so a caller
// may take the masked fast free.
__attribute__((always_inline)) inline bool in_booted_ram(const void* p) {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  // The size first: its acquire orders the start's load after it, so a size that is
  // published comes with its start (the operands of one `<` load in either order, and a
  // start read before boot, 0, with the size read after would take a low foreign pointer
  // for RAM).
  std::uintptr_t bytes = __atomic_load_n(&g_ram_bytes, __ATOMIC_ACQUIRE);
  return a - __atomic_load_n(&g_ram_lo, __ATOMIC_RELAXED) < bytes;
}

// free's common case (a slab object of a booted kernel, freed onto a thread's slab), with the
// remote branch — another thread's slab — handed to remote(tc, head, state_off, obj), as
// free_fast_masked_with says: kFreeFastDone or kFreeFastTick when done, kFreeFastNo when
// nothing was changed and the general path must run (null included). Counted towards the
// tick: every kFreeTickInterval-th of the thread's fast frees is kFreeFastTick, and the caller
// runs purge_tick_fast_free (the general path's frees count in purge_tick's own countdown). A
// remote that finishes the free whatever happens leaves the caller a path that calls nothing
// returning into it, so it saves no registers (the exported free family: malloc_api.cpp do_free).
template <typename Remote>
__attribute__((always_inline)) inline FreeFastResult release_fast_with(void* p, Remote&& remote) {
  if (__builtin_expect(!in_booted_ram(p), 0)) return kFreeFastNo;
  Kernel* k = __atomic_load_n(&g_kernel, __ATOMIC_RELAXED);
  owner_t freed;  // the shim keeps no per-owner count of its own (the kernel's stats read owner bytes)
  return k->slab().free_fast_masked_with<true>(p, &freed, remote);
}

// The same with the remote branch's compare-and-swap called here (free_fast_masked): true when
// done, false when nothing was changed (for callers that run the general path themselves).
__attribute__((always_inline)) inline bool release_fast(void* p) {
  if (__builtin_expect(!in_booted_ram(p), 0)) return false;
  Kernel* k = __atomic_load_n(&g_kernel, __ATOMIC_RELAXED);
  owner_t freed;
  FreeFastResult r = k->slab().free_fast_masked(nullptr, p, &freed);
  if (__builtin_expect(r == kFreeFastNo, 0)) return false;
  if (__builtin_expect(r == kFreeFastTick, 0)) purge_tick_fast_free();
  return true;
}

// free's next case, for its slow path: the fast path refused a kernel-owned object of this
// thread's own slab because the slab's lists must change (SlabAllocator::free_owned_refused):
// done here, not down the general path. kFreeFastNo when it is anything else.
inline FreeFastResult release_refused(void* p) {
  if (!in_booted_ram(p)) return kFreeFastNo;
  return __atomic_load_n(&g_kernel, __ATOMIC_RELAXED)->slab().free_owned_refused(p);
}

// Every free: the common case inline, the rest in release_general. Callers that name the
// action by the caller's address (free_action) call release_fast first themselves, so the name
// is worked out only for the general path.
__attribute__((always_inline)) inline void release(void* p, const char* action) {
  if (__builtin_expect(!release_fast(p), 0)) release_general(p, action);
}

}  // namespace kmm::shim

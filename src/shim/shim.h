// kmm/shim/shim.h — the preload shim's internals: kmm as the process's malloc.
//
// What it does. One Kernel (kernel/kernel.h) is booted lazily by the first allocation of the
// process — possibly before main, while ld.so and libc start — over a large reservation of
// address space that comes online 4 MiB at a time (memory hotplug). Requests map onto it:
//   1..8192 bytes          kmalloc size classes (1..16 -> kmalloc-16, so every block is
//                          16-aligned, glibc's ABI); thread-owned slabs, no lock;
//   8 KiB..4 MiB           exact page runs from the buddy allocator (kmalloc2 policy);
//   over 4 MiB             a direct mmap, recorded in a small open-addressing table (huge.cpp)
//                          so free, realloc and malloc_usable_size find it, counted per owner;
//   aligned requests       a power-of-two slab class (aligned to its size), a power-of-two
//                          buddy block (aligned to its size: RAM is reserved 4 MiB-aligned),
//                          or an over-aligned mmap.
// Ownership: the owner of an allocation is the plug-in (a dlopen'd shared object, a kmm module)
// whose text contains the caller's return address, else the thread's OwnerScope (kernel by
// default). modules.cpp keeps the plug-in table and the collector thread.
//
// Depends on: kernel/, proc/ (stats), base/ (options, reports), POSIX. No C++ standard
// library containers, no exceptions, no iostream, no malloc (it *is* malloc).
//
// Invariants: g_kernel is published once, after boot completes, and never changes (except a
// failed boot, which leaves it null and makes every allocation fail with ENOMEM); every
// pointer handed out is in kmm's RAM, in the huge table, or in the static bootstrap arena.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/fault_inject.h"
#include "kernel/kernel.h"
#include "shim/options.h"

// On the declarations of the globals malloc's and free's fast paths read: the library is
// built with hidden visibility, but an extern declaration counts as default, so each read
// went through the GOT (an extra load); hidden, it is one PC-relative load.
#define KMM_SHIM_HIDDEN __attribute__((visibility("hidden")))

namespace kmm::shim {

// Options (KMM_OPTIONS) and their parser: shim/options.h.
extern Kernel* g_kernel KMM_SHIM_HIDDEN;
extern Options g_opts;

// Boots on first use; null when kmm cannot run (the allocation then fails with ENOMEM).
Kernel* boot_kernel();
inline Kernel* kernel() {
  Kernel* k = __atomic_load_n(&g_kernel, __ATOMIC_ACQUIRE);
  return k != nullptr ? k : boot_kernel();
}

// The owner of an allocation made from return address ra (plug-in range lookup, else the
// thread's scope). Cheap when no plug-in is loaded: one load and a compare.
extern std::uintptr_t g_plugin_lo KMM_SHIM_HIDDEN,
    g_plugin_hi KMM_SHIM_HIDDEN;  // [min, max) of all plug-in text ranges
// g_kernel's slab heap generation (SlabAllocator::heap_gen), published after g_kernel;
// kNoHeapGen, which no thread's slot holds, before, and while failslab is on (alloc.cpp:
// route_malloc_fast_path). A thread whose last-used slot (kmm_thread_hot.last) carries it has
// its thread cache of g_kernel: malloc's fast path tests this alone, with no load of g_kernel,
// and no test of the cache's alloc_tc_slot.
extern std::uint64_t g_heap_gen KMM_SHIM_HIDDEN;
// The kernel's RAM, [g_ram_lo, g_ram_lo + g_ram_bytes): 0 bytes until boot publishes g_kernel
// (then g_ram_bytes, with release), so a pointer inside it is a booted kernel's (free's fast path).
// A copy of the slab allocator's in_masked_ram range: empty when the RAM is not aligned for
// finding slabs by masking (owned_by_mask).
extern std::uintptr_t g_ram_lo KMM_SHIM_HIDDEN;
extern std::size_t g_ram_bytes KMM_SHIM_HIDDEN;
owner_t plugin_owner_slow(std::uintptr_t ra);
inline owner_t owner_for(const void* ra) {
  auto a = reinterpret_cast<std::uintptr_t>(ra);
  if (__builtin_expect(
          a >= __atomic_load_n(&g_plugin_lo, __ATOMIC_RELAXED) && a < __atomic_load_n(&g_plugin_hi, __ATOMIC_RELAXED),
          0)) {
    owner_t o = plugin_owner_slow(a);
    if (o != kOwnerFree) return o;
  }
  return current_owner();
}
// Action name for reports of a free made from ra ("free", or "free by libfoo.so"). Inline:
// it is on every free's path, and outside the plug-ins' hull it is two loads and a compare.
const char* plugin_free_action(std::uintptr_t ra, const char* base);
inline const char* free_action(const void* ra, const char* base) {
  auto a = reinterpret_cast<std::uintptr_t>(ra);
  if (__builtin_expect(
          a < __atomic_load_n(&g_plugin_lo, __ATOMIC_RELAXED) || a >= __atomic_load_n(&g_plugin_hi, __ATOMIC_RELAXED),
          1))
    return base;
  return plugin_free_action(a, base);
}

// The allocation core (alloc.cpp). Sizes are the caller's; owner is resolved (never free).
// alloc(size, owner) and release(p, action), malloc's and free's, are in fast_path.h.
void* alloc_zeroed(std::size_t n, std::size_t size, owner_t owner);
void* alloc_aligned(std::size_t align, std::size_t size, owner_t owner);
void* resize(void* p, std::size_t size, owner_t owner, const char* action);
std::size_t usable_size(const void* p);
owner_t block_owner(const void* p);
bool set_block_owner(const void* p, owner_t owner);

// Giving free memory back to the OS (purge.cpp): purge_tick on every free of a RAM block
// the general path makes (a countdown; the slow part every 1024 frees; free's fast path counts
// in its thread cache instead and calls purge_tick_now: fast_path.h), trim_now for malloc_trim (true: some memory
// was given back), and the pages given back since start.
void purge_boot(Kernel* k);      // starts the zone's clock: the first round waits one delay
void purge_tick_now(Kernel* k);  // the slow part at once (a huge free)
std::uint32_t coarse_ms();       // the purge's clock: CLOCK_MONOTONIC_COARSE in ms, never 0
// The same for free's fast path, which keeps no kernel pointer for it (booted: g_kernel).
__attribute__((noinline)) void purge_tick_fast_free();
extern __thread int t_purge_countdown __attribute__((tls_model("initial-exec")));
inline void purge_tick(Kernel* k) {  // inline: it is on every free's path
  if (__builtin_expect(--t_purge_countdown <= 0, 0)) purge_tick_now(k);
}
bool trim_now();
std::uint64_t purged_pages_total();

// Huge blocks (huge.cpp): direct mappings for requests over 4 MiB.
// zero: the block must read as zero (calloc): a fresh mapping does, a reused one is cleared.
void* huge_alloc(std::size_t size, std::size_t align, owner_t owner, bool zero = false);
// Under guard_pages a huge block has a guard page after it (huge.cpp); free and resize check
// its slack and report an overrun as heap corruption, naming `action`.
bool huge_free(void* p, const char* action);                       // false: not a huge block
std::size_t huge_size(const void* p);                              // 0: not a huge block
// In place or moved (mremap); null on failure. new_owner (not kOwnerFree): the block becomes
// its (a gone plug-in's block that the host resizes: ModuleWindow::gone in shim::resize).
void* huge_resize(void* p, std::size_t size, const char* action, owner_t new_owner = kOwnerFree);
owner_t huge_owner(const void* p);
// Whether [lo, hi) meets a mapping of kmm's huge blocks: a live one, its table, or one the
// cache keeps (huge_cache_overlaps). Takes the table's lock, then the cache's.
bool huge_overlaps(std::uintptr_t lo, std::uintptr_t hi);
bool huge_set_owner(const void* p, owner_t o);
void huge_usage(OwnerTally* out);  // adds per-owner huge usage to out
void huge_lock();                  // the table's lock, then the cache's (fork)
void huge_unlock();
// The collector's view of huge blocks (an OwnedSpace: marked, scanned and reclaimed like the
// rest), registered at boot. For a stopped world the collector holds the table from
// huge_collector_lock to huge_collector_unlock; meanwhile huge_mapped_spans lists the table's
// own mapping and every block's mapping (the root scan skips them: blocks are scanned as
// blocks). Returns how many spans there are (more than cap: out holds the first cap).
struct AddrSpan {
  std::uintptr_t lo, hi;
};
OwnedSpace* huge_space();
void huge_collector_lock();
void huge_collector_unlock();
std::size_t huge_mapped_spans(AddrSpan* out, std::size_t cap);

// Freed huge mappings kept for reuse (huge_cache.cpp). take: a mapping of exactly `bytes`
// (trimmed or grown from a cached one), or null; *used is set to how many of its first bytes
// hold a freed block's old contents (a grown part reads as zero); put: keeps the mapping or
// unmaps it; age:
// unmaps entries cached at least max_age_ms (0: all) and sets the clock new entries get;
// returns the bytes unmapped.
void* huge_cache_take(std::size_t bytes, std::size_t* used);
void huge_cache_put(void* start, std::size_t bytes);
void huge_cache_put(void* start, std::size_t bytes, std::uint32_t freed_ms);  // stamped
// Moves the pages of [src, src + len) to [dst, dst + len) (replacing what is mapped there)
// with mremap, a kernel mapping at a time when the range spans several; a part that cannot
// move is copied when keep_data (else dropped) and unmapped. Page-aligned arguments.
void huge_move_pages(std::uintptr_t src, std::size_t len, std::uintptr_t dst, bool keep_data);
// The mapping [start, start + old_bytes) resized to new_bytes (mremap, MREMAP_MAYMOVE); one
// that spans several kernel mappings, which mremap cannot grow (EFAULT), is moved into a
// fresh mapping of the new size (huge_move_pages). MAP_FAILED: the old mapping is unchanged.
void* huge_remap(std::uintptr_t start, std::size_t old_bytes, std::size_t new_bytes, bool keep_data);
std::uint64_t huge_cache_age(std::uint32_t now_ms, std::uint32_t max_age_ms);
std::uint64_t huge_cache_bytes();
void huge_cache_lock();
void huge_cache_unlock();
struct AddrSpan;
std::size_t huge_cache_spans(AddrSpan* out, std::size_t cap);  // under huge_cache_lock
bool huge_cache_overlaps(std::uintptr_t lo, std::uintptr_t hi);  // takes huge_cache_lock
bool huge_cache_starts_at(std::uintptr_t a);                     // a cached mapping starts at a

// Modules (modules.cpp).
void modules_fork_lock();
void modules_fork_unlock();
void modules_fork_child();
// The report calls' locks (kmm_module_usage's tally here; mallinfo.cpp's and stats.cpp's
// below): outermost of the fork handlers' (alloc.cpp), since each is held over walks that
// take the huge table's and the kernel's locks. A fork while another thread held one left it
// held for ever in the child: its first mallinfo2, malloc_stats or exit stats spun (stop 48).
void module_usage_fork_lock();
void module_usage_fork_unlock();
void mallinfo_fork_lock();  // mallinfo.cpp
void mallinfo_fork_unlock();
void stats_fork_lock();  // stats.cpp
void stats_fork_unlock();

// The process's roots and the world stop for reclaim-unreachable (roots.cpp): installs the
// stop signal's handler and sets the collector's RootProvider. Called when the collector
// thread is first needed; false (with a warning) when the signal is the program's.
bool roots_install(Kernel* k);
// A kmm thread the world stop leaves running (the idle collector thread, which holds nothing
// of the program's and only waits for the pass runner); 0: none.
void roots_exempt_thread(int tid);
// A kmm thread's start function says so, with its own frame (__builtin_frame_address(0)):
// the scan then leaves that thread's stack below the frame out of the roots (it holds kmm's
// frames only). Returns the slot that roots_own_thread_exit(slot) clears before the thread
// returns (glibc may reuse its stack for a thread of the program's); -1: none (then it is
// scanned as any thread's). roots_own_threads_fork_child forgets them all (a fork's child
// has none of the threads).
int roots_own_thread(const void* entry_frame);
void roots_own_thread_exit(int slot);
void roots_own_threads_fork_child();
std::uint64_t roots_longest_pause_ns();  // the longest world stop so far
std::uint64_t roots_last_pause_ns();
std::uint64_t roots_last_pause_cpu_ns();  // CPU time the collector spent in it
std::uint64_t roots_last_copy_ns();       // gc_snapshot: the stop to the end of the copy's mark
std::uint64_t roots_last_copy_cpu_ns();   // the copy's CPU time
std::uint64_t roots_longest_park_ns();    // the longest wait for every thread to park

// Stats (stats.cpp).
void print_stats(int fd);
// The hardening options the heap runs with, read from its layers (the slab's config; guard
// pages when the kmalloc layer has a platform to protect guard frames with): what the exit
// stats and kmm_hardening_options() show, so both prove the options took effect.
HardeningConfig heap_hardening(const Kernel& k);
void stats_at_exit();
void start_stat_server();
void stat_server_fork_child();

// A block glibc's malloc made (its brk heap or one of its mmapped chunks) goes back to glibc's
// free (foreign.cpp); false: not glibc's, the caller reports it.
bool glibc_free(void* p);
// Such a block's usable size, by glibc's malloc_usable_size (realloc copies it into a block of
// kmm's; malloc_usable_size answers for it); 0: not glibc's.
std::size_t glibc_usable_size(const void* p);

// Bootstrap arena (alloc.cpp): memory handed out while the kernel boots; never freed.
bool in_bootstrap(const void* p);

}  // namespace kmm::shim

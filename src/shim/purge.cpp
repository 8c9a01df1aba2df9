// kmm/shim/purge.cpp — giving free memory back to the OS: the purge delay and malloc_trim.
//
// The heap's frames stay with the buddy allocator when blocks are freed (a kernel keeps its
// memory), so without this a program's RSS is its high-water mark. Linux's free page
// reporting (page/buddy.h) gives the frames of free blocks back to the host while the
// allocator keeps the blocks: a reported block reads as zero when touched again, and is
// handed out last. Two triggers:
//   - the purge delay (KMM_OPTIONS purge_delay=, default 1 s; off disables it): every
//     kPurgeTickFrees frees a thread reads (counted apart for free's fast path, in its thread
//     cache: kFreeTickInterval, slab.h, the same interval) the coarse monotonic clock (vDSO, no syscall) and,
//     at most once per delay for the whole process, reports the blocks that have been free
//     for at least the delay — at most kPurgeRoundPages a round, so no free() pays for more
//     than a bounded madvise; a round that hit the cap lets the next tick go on at once.
//     Each round first gives the empty slabs caches kept (slab.h, empty_keep_bytes) back to
//     the buddy allocator: they are purged a round later.
//     Memory freed and reused within the delay is never given back (its next touch would
//     fault: ~13 us a page here), as with mimalloc's purge delay and jemalloc's decay. A
//     process that makes no allocator call at all keeps its RSS until its next call, as
//     under those allocators without a background thread.
//   - malloc_trim(): this thread's slabs go back to their caches and every cache's empty
//     slabs to the buddy allocator, then every free block is reported at once.
// The same delay unmaps freed huge mappings kept in the huge cache (huge_cache.cpp); a huge
// free ticks at once (it is rare and already costs a system call or two).
// Runs with no kmm lock held (after kfree returned). Depends on: shim.h, kernel/.
#include <time.h>

#include "shim/shim.h"

namespace kmm::shim {

__attribute__((tls_model("initial-exec"))) __thread int t_purge_countdown = 0;

namespace {
constexpr int kPurgeTickFrees = kFreeTickInterval;  // the general path's; free_fast counts its own
constexpr std::uint64_t kPurgeRoundPages = 2048;  // 8 MiB a round

std::uint32_t g_last_round_ms = 0;  // atomic: the clock at the last round (0: none yet)
std::uint64_t g_purged_pages = 0;   // atomic: pages given back since start (statistics)

}  // namespace

std::uint32_t coarse_ms() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  auto ms = static_cast<std::uint64_t>(ts.tv_sec) * 1000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000u;
  return static_cast<std::uint32_t>(ms) | 1u;  // never 0, the "no round yet" mark
}

void purge_boot(Kernel* k) {
  std::uint32_t now = coarse_ms();
  k->buddy().set_clock_ms(now);
  huge_cache_age(now, ~std::uint32_t{0});  // nothing cached yet: sets the cache's clock
  __atomic_store_n(&g_last_round_ms, now, __ATOMIC_RELAXED);
}

void purge_tick_now(Kernel* k) {
  t_purge_countdown = kPurgeTickFrees;
  std::uint64_t delay_ns = g_opts.purge_delay_ns;
  if (delay_ns == 0) return;
  auto delay_ms = static_cast<std::uint32_t>(delay_ns / 1'000'000u > 0x7fffffffu ? 0x7fffffffu : delay_ns / 1'000'000u);
  std::uint32_t now = coarse_ms();
  k->buddy().set_clock_ms(now);
  std::uint32_t last = __atomic_load_n(&g_last_round_ms, __ATOMIC_RELAXED);
  if (last != 0 && now - last < delay_ms) return;
  if (!__atomic_compare_exchange_n(&g_last_round_ms, &last, now, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return;
  huge_cache_age(now, delay_ms);
  if (k->persistent()) return;  // the heap's frames are its file's
  // Empty slabs reach the buddy allocator (they are purged once they have aged a delay).
  k->slab().release_kept_empty_slabs();  // this thread's (kKeptEmptySlabs); others keep theirs
  k->slab().shrink_empty();  // the empty slabs caches kept (empty_keep_bytes) too
  std::uint64_t n = k->purge_free(0, delay_ms, kPurgeRoundPages);
  __atomic_fetch_add(&g_purged_pages, n, __ATOMIC_RELAXED);
  if (n >= kPurgeRoundPages) __atomic_store_n(&g_last_round_ms, now - delay_ms, __ATOMIC_RELAXED);  // more to do
}

void purge_tick_fast_free() {
  purge_tick_now(__atomic_load_n(&g_kernel, __ATOMIC_ACQUIRE));
}

bool trim_now() {
  Kernel* k = g_kernel;
  if (k == nullptr) return false;
  if (k->persistent()) return huge_cache_age(coarse_ms(), 0) != 0;
  k->slab().drain_current_thread();
  k->slab().shrink_empty();
  std::uint32_t now = coarse_ms();
  k->buddy().set_clock_ms(now);
  std::uint64_t n = k->purge_free(0, 0, ~std::uint64_t{0});
  __atomic_fetch_add(&g_purged_pages, n, __ATOMIC_RELAXED);
  return huge_cache_age(now, 0) + n != 0;
}

std::uint64_t purged_pages_total() {
  return __atomic_load_n(&g_purged_pages, __ATOMIC_RELAXED);
}

}  // namespace kmm::shim

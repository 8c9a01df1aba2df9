// kmm/page/buddy.h — the binary buddy page allocator (Linux mm/page_alloc.c, one zone).
//
// Free frames are kept in blocks of 2^order frames, order 0..kMaxOrder (10: 4 MiB blocks),
// each block aligned to its size relative to the zone's first frame. A free block's head
// descriptor carries PG_buddy and its order, and sits on free_area[order], a doubly linked
// list threaded through the descriptors by page frame number.
//
// Allocation of order n takes the first block of the smallest order >= n that has one and
// splits it, returning the upper halves to the lists below (expand()). Freeing merges a
// block with its buddy (index ^ (1 << order)) while the buddy is a free head of the same
// order, then puts the result on its list.
//
// Free page reporting (Linux mm/page_reporting.c): report_free() hands free blocks that have
// stayed free long enough to a sink (the platform's purge: madvise(MADV_DONTNEED)), so the
// host can take their frames back while the buddy allocator keeps them. A reported block is
// PG_buddy | PG_reported and sits at the TAIL of its free list, unreported ones at the head:
// allocation takes the head, so frames still resident are used first and a reported block
// is handed out (and faulted in again) only when nothing else of its order is free. Split,
// a reported block's halves stay reported; merged, a block is reported only if both halves
// were. While the sink runs the block is isolated: off its list and out of free_pages,
// without the zone lock; an allocation that fails meanwhile waits for it and retries rather
// than fail. Each free block's head records when it was freed (lru.freelist, in the zone's
// clock: milliseconds set by the caller with set_clock_ms, wrapping), so report_free can
// skip blocks freed less than min_age_ms ago (the purge delay).
//
// Watermarks follow Linux: min = min_free_kbytes (by default sqrt(16 * managed kB), clamped
// to [128, 65536] kB), low = min * 5/4, high = min * 3/2. An ordinary allocation fails
// rather than take the zone below min; __GFP_HIGH may use half of the reserve; __GFP_NOWMARK
// ignores it. There is no reclaim: below min an allocation simply fails (returns null).
//
// Invariants (check_invariants):
//   - every block on free_area[k] is PG_buddy, order k, aligned, inside the zone;
//   - no two free blocks are buddies of the same order (they would have merged);
//   - sum over k of nr_free[k] << k == free_pages; list links are consistent both ways;
//   - on each list the reported blocks form a suffix; their pages sum to reported_pages.
// Locking: one spinlock per zone, innermost in kmm's lock order (docs/ARCHITECTURE.md).
// Depends on: base/, phys/.
#pragma once

#include "base/spinlock.h"
#include "page/page_alloc.h"

namespace kmm {

class TextSink;

struct FreeArea {
  pfn_t head = kNoPfn;
  pfn_t tail = kNoPfn;
  std::uint64_t nr_free = 0;
};

class BuddyZone final : public PageAllocator {
 public:
  // Takes over frames [start, end) of `phys` and frees them into the lists.
  void init(PhysMem* phys, pfn_t start, pfn_t end, std::uint64_t min_free_kbytes_or_0);
  // Memory hotplug: frames [end_pfn(), new_end) join the zone. They must have been brought
  // online by phys.online_more(), which leaves their descriptors zero: only each new free
  // block's head is written.
  void add_frames(pfn_t new_end);
  // Free frames known to read as zero: the zone's RAM is a fresh anonymous mapping whose purge
  // zero-fills (the preload's machine: PhysMem::fresh_zero). Then the frames init and
  // add_frames free are PG_reported from the start (never touched: not resident, taken after
  // frames that are), and an allocation with __GFP_ZERO that takes a reported block skips its
  // clear: calloc of a page run of fresh or purged frames faults in only what the program
  // touches (glibc's calloc of fresh heap or mmap memory does the same). Off (every modelled
  // machine), reported only means purged and every __GFP_ZERO clears. Set before init.
  void set_reported_reads_zero(bool on) { reported_zero_ = on; }
  bool reported_reads_zero() const { return reported_zero_; }
  // Called (without the zone lock) when an allocation of `order` finds nothing, first with
  // kReclaim: give back memory the machine holds resident (Kernel::grow: the empty slabs
  // caches keep), true when some came back; then, if the retry still finds nothing, with
  // kGrow: bring more frames online with add_frames(). True has the allocation retried. Also
  // called with kReclaim, its result unused, after an allocation took a block the purge round
  // gave back to the OS: the next allocations then find the kept memory before more of those.
  enum class GrowStep : std::uint8_t { kReclaim, kGrow };
  using GrowFn = bool (*)(void* arg, unsigned order, GrowStep step);
  void set_grow(GrowFn fn, void* arg) {
    grow_ = fn;
    grow_arg_ = arg;
  }

  Page* alloc_pages(unsigned order, gfp_t gfp = GFP_KERNEL) override;
  void free_pages(Page* page, unsigned order) override;
  // Exactly `count` frames, physically contiguous (Linux alloc_pages_exact): allocates the
  // enclosing power of two and gives the excess frames back. Null when impossible.
  Page* alloc_pages_exact(std::uint64_t count, gfp_t gfp = GFP_KERNEL) override;
  void free_pages_exact(Page* page, std::uint64_t count) override;
  // The free blocks holding [pfn, pfn + n) leave the lists; the parts of them outside the
  // range go back, as reported as they were (see PageAllocator).
  std::uint64_t take_free_frames(pfn_t pfn, std::uint64_t least, std::uint64_t most, gfp_t gfp) override;

  std::uint64_t free_pages() const override { return free_pages_.load(std::memory_order_relaxed); }
  std::uint64_t managed_pages() const override { return managed_pages_; }
  std::uint64_t nr_free(unsigned order) const { return area_[order].nr_free; }
  Watermarks watermarks() const override { return wmark_; }
  pfn_t start_pfn() const override { return start_; }
  pfn_t end_pfn() const override { return end_; }
  PhysMem* phys() const override { return phys_; }
  std::uint64_t alloc_failures() const override { return failures_.load(std::memory_order_relaxed); }
  bool frame_is_free(pfn_t pfn) const override;
  const char* name() const override { return "buddy"; }
  bool aligned_blocks() const override { return true; }  // the buddy of index i is i ^ 2^k

  // A consistent copy of the free counts per order (for /proc/buddyinfo and fragmentation).
  void snapshot(std::uint64_t out[kNrOrders]) const;
  void free_blocks(std::uint64_t out[kNrOrders]) const override { snapshot(out); }
  // Largest free block, in pages.
  std::uint64_t largest_free_block() const override;

  // Linux's extfrag index for a request of `order` (mm/vmstat.c __fragmentation_index),
  // in thousandths: -1000 when a suitable block exists, 0 when failure would be for lack
  // of memory, towards 1000 when for fragmentation.
  int fragmentation_index(unsigned order) const;
  // Linux's unusable free space index in thousandths: the share of free memory that cannot
  // serve a request of `order`.
  int unusable_index(unsigned order) const;

  // Full consistency check; on failure writes why into `why` (may be null) and returns false.
  bool check_invariants(TextSink* why) const override;

  // --- free page reporting (see the top of this file) ---
  // The sink gives [addr, addr + bytes) back to the host; false when it cannot (the block
  // then stays as it was and report_free stops).
  using ReportSink = bool (*)(void* arg, void* addr, std::size_t bytes);
  // Reports free blocks of order >= min_order that are not reported yet and were freed at
  // least min_age_ms ago, largest orders first, until max_pages pages are reported or none
  // is left. Returns the pages reported by this call. Never holds the zone lock while the
  // sink runs. One caller at a time (a second returns 0 at once).
  std::uint64_t report_free(unsigned min_order, std::uint32_t min_age_ms, std::uint64_t max_pages, ReportSink sink,
                            void* arg);
  // The zone's clock for free stamps (milliseconds, any origin, may wrap).
  void set_clock_ms(std::uint32_t now) { __atomic_store_n(&clock_ms_, now, __ATOMIC_RELAXED); }
  // Free pages whose frames the host has taken back (reported, not allocated since).
  std::uint64_t reported_pages() const { return reported_pages_.load(std::memory_order_relaxed); }
  // Pages reported since boot (a block reported twice counts twice).
  std::uint64_t reported_total() const { return reported_total_.load(std::memory_order_relaxed); }

  // Persistent RAM (persist/rebuild.cpp): after an attach in a new process, re-makes the
  // object (vtable, lock, lists, counters) keeping its frame range and watermarks, and frees
  // into the lists every frame of the zone whose descriptor has no role (flags == 0).
  void rebuild(PhysMem* phys);

  // fork() support (Kernel::lock_all): the zone lock, innermost; report_free's lock just
  // outside it (a child must not inherit blocks isolated by a report in flight).
  SpinLock& fork_lock() const { return lock_; }
  SpinLock& report_fork_lock() { return report_lock_; }

 private:
  // Blocks are aligned to their size in frame numbers counted from the start of RAM (not
  // of the zone), so a block of order k sits at a host address aligned to 4K << k when RAM
  // is: memalign can take big alignments straight from the buddy allocator.
  pfn_t index(pfn_t pfn) const { return pfn - phys_->base_pfn(); }
  // list_add puts a reported block at the tail, any other at the head; list_del returns
  // whether the block was reported.
  void list_add(unsigned order, pfn_t pfn, bool reported = false);
  bool list_del(unsigned order, pfn_t pfn);
  void free_locked(pfn_t pfn, unsigned order, bool reported = false);
  // *reported (may be null): whether the block handed out came from a reported one.
  Page* alloc_locked(unsigned order, gfp_t gfp, bool* reported = nullptr);
  // After a failed allocation: true if blocks were isolated by report_free (then waits until
  // they are back, and the caller retries).
  bool wait_isolated();
  bool watermark_ok(unsigned order, gfp_t gfp) const;
  bool watermark_ok_pages(std::uint64_t pages, gfp_t gfp) const;
  // The free block that holds frame pfn (*head, *order), if there is one (under the lock).
  bool free_block_holding(pfn_t pfn, pfn_t* head, unsigned* order) const;
  // Frees [pfn, end) as the largest aligned blocks (under the lock).
  void free_run_locked(pfn_t pfn, pfn_t end, bool reported);

  // free_pages_ changes only under lock_, so a change is a load and a store, not a locked
  // read-modify-write; readers without the lock (watermark peeks, /proc) see either value.
  void add_free_pages(std::uint64_t n) {
    free_pages_.store(free_pages_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub_free_pages(std::uint64_t n) {
    free_pages_.store(free_pages_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }

  PhysMem* phys_ = nullptr;
  pfn_t start_ = 0, end_ = 0;
  // The zone lock, the free page count and the free lists' heads, which every locked call
  // reads and writes, together: the lock's line carries the count and the lists of orders
  // 0..2, the next line orders 3..6. Apart, two threads that take and give page runs in turn
  // (realloc 2 4) moved the lock's line, the count's line (with a locked subtract on it: a
  // third of take_free_frames' samples under perf) and the lists' lines between the cores.
  alignas(64) mutable SpinLock lock_;
  std::atomic<std::uint64_t> free_pages_{0};
  FreeArea area_[kNrOrders];
  std::uint64_t managed_pages_ = 0;
  std::atomic<std::uint64_t> failures_{0};
  Watermarks wmark_;
  GrowFn grow_ = nullptr;
  void* grow_arg_ = nullptr;
  std::uint32_t clock_ms_ = 0;                    // set_clock_ms; stamped on free blocks
  std::atomic<std::uint64_t> reported_pages_{0};  // free and reported now
  bool reported_zero_ = false;                    // set_reported_reads_zero
  std::atomic<std::uint64_t> reported_total_{0};
  std::atomic<std::uint64_t> isolated_pages_{0};  // off the lists while report_free's sink runs
  SpinLock report_lock_;                          // one report_free at a time
};

}  // namespace kmm

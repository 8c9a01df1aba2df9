// kmm/page/range.h — the page-range allocator (uClinux's page_alloc2 style).
//
// What it does. Hands out runs of exactly `count` physically contiguous frames, first fit,
// with no rounding to a power of two (a 33-page request takes 33 pages, not 64). Which end of
// memory a request is placed at depends on its size (the placement rule, set at init):
//   kBottomUp      plain first fit from the lowest address;
//   kSmallTopDown  requests of at most `small_pages` frames from the top of memory down,
//                  larger ones from the bottom up (document 002's description of kmalloc2:
//                  "allocations of 2 KB or less from the top, larger from the bottom");
//   kSmallBottomUp requests of at most `small_pages` frames from the bottom up, larger ones
//                  from the top down (what uClinux's mmnommu/page_alloc2.c does, with 2 pages).
// The point of both rules: keep short-lived small blocks (slab pages holding network buffers)
// at one end so they do not cut up the space large programs need at the other.
//
// How. Free memory is a list of maximal free runs, in address order, threaded through the
// page descriptors (boundary tags, no side table):
//   - every frame of a free run carries PG_buddy ("free in the page allocator", as for the
//     buddy allocator, so kfree's double-free check and the mem_map walkers work unchanged)
//     with order 0 (walkers step one frame at a time);
//   - the run's first and last frames also carry PG_range_end, and lru.nr_pages = the run's
//     length (a one-frame run is its own head and tail); the head's lru.next / lru.prev link
//     the runs in address order.
// Allocation walks the list from the chosen end and cuts the request from that end of the
// first run that fits. Freeing looks at the two neighbouring frames: a free frame before the
// block is the tail of a run (runs are maximal), a free frame after it is a head; the block
// merges with them in O(1); only a block with no free neighbour walks the list to find its
// place. Cost: O(runs) per allocation (first fit), O(1) or O(runs) per free, O(count) to set
// and clear the frames' flags.
//
// Watermarks as the buddy allocator's (min_free_kbytes, Linux's formula by default).
// free_blocks() reports each run as a buddy allocator would hold it (count_run_blocks), so
// /proc/buddyinfo and the fragmentation indices mean the same on both allocators.
//
// Invariants (check_invariants): runs lie inside the zone, in strictly increasing address
// order, separated by at least one used frame (maximal); head and tail carry PG_buddy |
// PG_range_end and the run's length; interior frames carry PG_buddy only; frames between runs
// carry no PG_buddy; back links match; the lengths sum to free_pages; the run count matches.
// Locking: one spinlock, innermost (as the buddy zone's).
// Depends on: base/, phys/, page/page_alloc.h.
#pragma once

#include "base/spinlock.h"
#include "page/page_alloc.h"

namespace kmm {

enum class RangePlacement : std::uint8_t { kBottomUp, kSmallTopDown, kSmallBottomUp };

class RangeAllocator final : public PageAllocator {
 public:
  // Takes over frames [start, end) of `phys`. min_free_kbytes: 0 Linux's formula, ~0 off.
  void init(PhysMem* phys, pfn_t start, pfn_t end, std::uint64_t min_free_kbytes, RangePlacement rule,
            std::uint64_t small_pages);
  // The size (in frames) at or below which a request counts as small.
  void set_small_pages(std::uint64_t n) { small_pages_ = n; }
  std::uint64_t small_pages() const { return small_pages_; }
  RangePlacement placement() const { return rule_; }
  // True when a request of `count` frames is placed from the top of memory down.
  bool top_down(std::uint64_t count) const;

  Page* alloc_pages(unsigned order, gfp_t gfp = GFP_KERNEL) override;
  void free_pages(Page* page, unsigned order) override;
  Page* alloc_pages_exact(std::uint64_t count, gfp_t gfp = GFP_KERNEL) override;
  void free_pages_exact(Page* page, std::uint64_t count) override;

  std::uint64_t free_pages() const override { return free_pages_.load(std::memory_order_relaxed); }
  std::uint64_t managed_pages() const override { return managed_pages_; }
  std::uint64_t largest_free_block() const override;
  void free_blocks(std::uint64_t out[kNrOrders]) const override;
  Watermarks watermarks() const override { return wmark_; }
  std::uint64_t alloc_failures() const override { return failures_.load(std::memory_order_relaxed); }
  pfn_t start_pfn() const override { return start_; }
  pfn_t end_pfn() const override { return end_; }
  PhysMem* phys() const override { return phys_; }
  bool frame_is_free(pfn_t pfn) const override;
  bool check_invariants(TextSink* why) const override;
  const char* name() const override { return "range"; }

  std::uint64_t nr_runs() const { return nr_runs_; }

 private:
  Page* pg(pfn_t pfn) const { return phys_->pfn_to_page(pfn); }
  Page* alloc_locked(std::uint64_t count, gfp_t gfp);
  void free_locked(pfn_t pfn, std::uint64_t count);
  // Marks [pfn, pfn+len) as one free run (flags of every frame, head/tail tags).
  void mark_run(pfn_t pfn, std::uint64_t len);
  void set_len(pfn_t head, std::uint64_t len);
  void link_after(pfn_t prev, pfn_t run);  // prev == kNoPfn: at the front
  void unlink(pfn_t run);
  bool watermark_ok(std::uint64_t count, gfp_t gfp) const;

  PhysMem* phys_ = nullptr;
  pfn_t start_ = 0, end_ = 0;
  pfn_t first_ = kNoPfn, last_ = kNoPfn;  // lowest and highest run heads
  std::uint64_t nr_runs_ = 0;
  std::atomic<std::uint64_t> free_pages_{0};
  std::uint64_t managed_pages_ = 0;
  std::atomic<std::uint64_t> failures_{0};
  Watermarks wmark_;
  RangePlacement rule_ = RangePlacement::kBottomUp;
  std::uint64_t small_pages_ = 1;
  mutable SpinLock lock_;
};

}  // namespace kmm

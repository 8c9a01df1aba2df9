// kmm/page/page_alloc.h — the page allocator interface every layer above asks for frames.
//
// Two implementations: the buddy allocator (buddy.h, Linux's) and a page-range allocator
// (range.h, uClinux's page_alloc2: exact page counts, first fit, placement direction by
// size). Slab, kmalloc, vmalloc, the collector and process memory see only this interface,
// so a machine boots with either (`boot page_alloc=buddy|range`).
//
// Contract: alloc_pages(order) returns 2^order physically contiguous frames (aligned to
// their size for buddy; any alignment for range), or null; alloc_pages_exact(n) returns
// exactly n contiguous frames; the free_* calls take back exactly what was handed out (a run
// that take_free_range grew: its whole length, with free_pages_exact).
// Returned descriptors have flags 0 and refcount 1 on the head; the caller sets roles.
// free_blocks() describes free memory as Linux's buddyinfo would: per order, how many
// aligned free blocks of that order a buddy allocator would hold. The buddy's blocks are
// aligned to their order in absolute frame numbers; the range allocator counts its runs'
// blocks aligned to its zone's first frame (count_run_blocks), what it can serve, so for the
// same free frames the two views may differ where the zone does not start at such a frame.
// All calls are thread-safe.
//
// Depends on: base/, phys/, page/gfp.h.
#pragma once

#include <atomic>

#include "page/gfp.h"
#include "phys/phys_mem.h"

namespace kmm {

class TextSink;

inline constexpr unsigned kMaxOrder = 10;
inline constexpr unsigned kNrOrders = kMaxOrder + 1;

struct Watermarks {
  std::uint64_t min = 0, low = 0, high = 0;  // in pages
};

class PageAllocator {
 public:
  virtual Page* alloc_pages(unsigned order, gfp_t gfp) = 0;
  virtual void free_pages(Page* page, unsigned order) = 0;
  virtual Page* alloc_pages_exact(std::uint64_t count, gfp_t gfp) = 0;
  virtual void free_pages_exact(Page* page, std::uint64_t count) = 0;

  virtual std::uint64_t free_pages() const = 0;
  virtual std::uint64_t managed_pages() const = 0;
  virtual std::uint64_t largest_free_block() const = 0;  // pages
  virtual void free_blocks(std::uint64_t out[kNrOrders]) const = 0;
  virtual Watermarks watermarks() const = 0;
  virtual std::uint64_t alloc_failures() const = 0;
  virtual pfn_t start_pfn() const = 0;
  virtual pfn_t end_pfn() const = 0;
  virtual PhysMem* phys() const = 0;
  // True when frame pfn is free (for maps of physical memory).
  virtual bool frame_is_free(pfn_t pfn) const = 0;
  virtual bool check_invariants(TextSink* why) const = 0;
  virtual const char* name() const = 0;
  // True when every block of order k starts at a frame index (from phys's base) that is a
  // multiple of 2^k, as buddy blocks do: the slab allocator then finds a slab's start by
  // masking an object's address (SlabAllocator::owner_slot_of). A run allocator need not.
  virtual bool aligned_blocks() const { return false; }
  // Takes the free frames [pfn, pfn + n) for the caller, who appends them to a run it holds
  // that ends at pfn (krealloc growing a page run in place); the run is then freed with
  // free_pages_exact of its whole length. n is the most frames in [least, most] that are free
  // right after pfn (a caller that grows by small steps asks for room beyond what it needs
  // now, so that its next steps need no call); 0, and nothing changed, when fewer than
  // `least` are free or the watermarks (gfp) refuse them. The range allocator's runs are not
  // grown (0).
  virtual std::uint64_t take_free_frames(pfn_t pfn, std::uint64_t least, std::uint64_t most, gfp_t gfp) {
    (void)pfn;
    (void)least;
    (void)most;
    (void)gfp;
    return 0;
  }
  // Exactly [pfn, pfn + count), or false and nothing changed.
  bool take_free_range(pfn_t pfn, std::uint64_t count, gfp_t gfp) {
    return count != 0 && take_free_frames(pfn, count, count, gfp) == count;
  }

 protected:
  ~PageAllocator() = default;
};

// The common end of both allocators' alloc_pages_exact: a failure counted, or the run zeroed
// when gfp asks (__GFP_ZERO). Returns p.
Page* finish_exact_alloc(PhysMem* phys, Page* p, std::uint64_t count, gfp_t gfp, std::atomic<std::uint64_t>* failures);

// Linux's zone watermarks for a zone of `managed_pages`: min = min_free_kbytes (0: Linux's
// default, sqrt(16 * managed kB) clamped to [128, 65536] kB; ~0: watermarks off), never more
// than a quarter of the zone; low = min * 5/4; high = min * 3/2. Both page allocators use it.
Watermarks linux_watermarks(std::uint64_t managed_pages, std::uint64_t min_free_kbytes);

// Linux's extfrag index (mm/vmstat.c __fragmentation_index) for a request of `order`, in
// thousandths: -1000 when a suitable block exists, 0 when a failure would be for lack of
// memory, towards 1000 when for fragmentation.
int fragmentation_index(const std::uint64_t free_blocks[kNrOrders], unsigned order);
// Linux's unusable free space index in thousandths.
int unusable_index(const std::uint64_t free_blocks[kNrOrders], unsigned order);
// Aligned power-of-two decomposition of a free run [pfn, pfn+count) relative to `base`,
// added into out[] (how a buddy allocator would hold that run).
void count_run_blocks(pfn_t base, pfn_t pfn, std::uint64_t count, std::uint64_t out[kNrOrders]);

}  // namespace kmm

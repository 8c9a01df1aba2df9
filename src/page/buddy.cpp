// kmm/page/buddy.cpp — buddy split/merge, watermarks, fragmentation indices.
#include "page/buddy.h"

#include <cstring>

#if KMM_HAVE_THREADS
#include <sched.h>
#endif

#include "base/bits.h"
#include "base/fault_inject.h"
#include "base/text.h"

namespace kmm {

void BuddyZone::init(PhysMem* phys, pfn_t start, pfn_t end, std::uint64_t min_free_kbytes) {
  phys_ = phys;
  start_ = start;
  end_ = end;
  for (auto& a : area_) a = FreeArea{};
  free_pages_.store(0, std::memory_order_relaxed);
  managed_pages_ = end > start ? end - start : 0;
  // Free the range as the largest aligned blocks that fit (Linux's memblock_free_all).
  pfn_t pfn = start;
  while (pfn < end) {
    unsigned order = kMaxOrder;
    while (order > 0 && ((index(pfn) & ((pfn_t{1} << order) - 1)) != 0 || pfn + (pfn_t{1} << order) > end)) --order;
    Page* p = phys_->pfn_to_page(pfn);
    for (pfn_t i = 0; i < (pfn_t{1} << order); ++i) {
      Page* q = p + i;
      q->set_flags(0);
      q->set_refcount(0);
      q->set_owner(kOwnerFree);
    }
    free_locked(pfn, order, reported_zero_);  // fresh frames: not resident (set_reported_reads_zero)
    pfn += pfn_t{1} << order;
  }
  wmark_ = linux_watermarks(managed_pages_, min_free_kbytes);
}

void BuddyZone::list_add(unsigned order, pfn_t pfn, bool reported) {
  Page* p = phys_->pfn_to_page(pfn);
  FreeArea& a = area_[order];
  p->set_flags(reported ? PG_buddy | PG_reported : PG_buddy);
  p->set_order(static_cast<std::uint8_t>(order));
  p->lru.freelist = __atomic_load_n(&clock_ms_, __ATOMIC_RELAXED);  // freed at (report_free's age); set_clock_ms needs no lock
  if (reported) {
    // The tail: reported blocks are taken last (their frames must be faulted in again).
    p->lru.next = kNoPfn;
    p->lru.prev = a.tail;
    if (a.tail != kNoPfn)
      phys_->pfn_to_page(a.tail)->lru.next = pfn;
    else
      a.head = pfn;
    a.tail = pfn;
    reported_pages_.fetch_add(std::uint64_t{1} << order, std::memory_order_relaxed);
  } else {
    p->lru.prev = kNoPfn;
    p->lru.next = a.head;
    if (a.head != kNoPfn)
      phys_->pfn_to_page(a.head)->lru.prev = pfn;
    else
      a.tail = pfn;
    a.head = pfn;
  }
  a.nr_free++;
}

bool BuddyZone::list_del(unsigned order, pfn_t pfn) {
  Page* p = phys_->pfn_to_page(pfn);
  FreeArea& a = area_[order];
  bool reported = p->is(PG_reported);
  if (p->lru.prev != kNoPfn) {
    phys_->pfn_to_page(p->lru.prev)->lru.next = p->lru.next;
  } else {
    a.head = p->lru.next;
  }
  if (p->lru.next != kNoPfn) {
    phys_->pfn_to_page(p->lru.next)->lru.prev = p->lru.prev;
  } else {
    a.tail = p->lru.prev;
  }
  p->set_flags(0);
  p->set_order(0);
  p->lru.next = p->lru.prev = kNoPfn;
  p->lru.freelist = 0;
  a.nr_free--;
  if (reported) reported_pages_.fetch_sub(std::uint64_t{1} << order, std::memory_order_relaxed);
  return reported;
}

void BuddyZone::free_locked(pfn_t pfn, unsigned order, bool reported) {
  add_free_pages(std::uint64_t{1} << order);
  while (order < kMaxOrder) {
    pfn_t buddy = phys_->base_pfn() + (index(pfn) ^ (pfn_t{1} << order));
    if (buddy < start_ || buddy + (pfn_t{1} << order) > end_) break;
    Page* b = phys_->pfn_to_page(buddy);
    if (!b->is(PG_buddy) || b->get_order() != order) break;
    // The merged block is reported only if both halves were (else it is reported again).
    reported = list_del(order, buddy) && reported;
    if (buddy < pfn) pfn = buddy;
    ++order;
  }
  list_add(order, pfn, reported);
}

// Linux's should_fail_alloc_page(): the fail_page_alloc point, before the zone lock (its
// verbose line may go to a log). An injected failure counts as a failure of the zone.
static bool fail_page_alloc(std::uint64_t pages, gfp_t gfp) {
  if (gfp & __GFP_NOFAIL) return false;
  return fault_should_fail(FaultPoint::kPage, static_cast<std::size_t>(pages << kPageShift), "buddy");
}

bool BuddyZone::watermark_ok(unsigned order, gfp_t gfp) const {
  return watermark_ok_pages(std::uint64_t{1} << order, gfp);
}

bool BuddyZone::watermark_ok_pages(std::uint64_t want, gfp_t gfp) const {
  if (gfp & __GFP_NOWMARK) return true;
  std::uint64_t reserve = wmark_.min;
  if (gfp & __GFP_HIGH) reserve /= 2;
  std::uint64_t free = free_pages_.load(std::memory_order_relaxed);
  return free >= want && free - want >= reserve;
}

bool BuddyZone::free_block_holding(pfn_t pfn, pfn_t* head, unsigned* order) const {
  for (unsigned k = 0; k <= kMaxOrder; ++k) {
    pfn_t h = phys_->base_pfn() + (index(pfn) & ~((pfn_t{1} << k) - 1));
    if (h < start_) break;  // a block never starts before the zone
    const Page* p = phys_->pfn_to_page(h);
    if (p->is(PG_buddy) && p->get_order() == k) {
      *head = h;
      *order = k;
      return true;
    }
  }
  return false;  // allocated, or isolated by report_free (off the lists, no PG_buddy)
}

void BuddyZone::free_run_locked(pfn_t pfn, pfn_t end, bool reported) {
  while (pfn < end) {
    unsigned k = 0;
    while (k < kMaxOrder && (index(pfn) & ((pfn_t{1} << (k + 1)) - 1)) == 0 && pfn + (pfn_t{2} << k) <= end) ++k;
    free_locked(pfn, k, reported);
    pfn += pfn_t{1} << k;
  }
}

std::uint64_t BuddyZone::take_free_frames(pfn_t pfn, std::uint64_t least, std::uint64_t most, gfp_t gfp) {
  if (least == 0 || most < least || pfn < start_ || pfn >= end_ || least > end_ - pfn) return 0;
  if (most > end_ - pfn) most = end_ - pfn;
  // A frame that is not free now is very likely not free under the lock either: refused
  // without it. Two threads growing their runs by realloc took the zone lock 130 K times in
  // `realloc 2 4`, one in six to find the frame after the run taken; the flags and orders
  // are read atomically (page.h), so the look is only early, never wrong.
  if (__builtin_expect(fail_page_alloc(least, gfp), 0)) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  pfn_t h;
  unsigned k;
  if (!free_block_holding(pfn, &h, &k)) return 0;
  LockGuard g(lock_);
  // Every block first, so that a refusal changes nothing: how far the free frames reach.
  pfn_t end = pfn;
  const pfn_t limit = pfn + static_cast<pfn_t>(most);
  while (end < limit && free_block_holding(end, &h, &k)) end = h + (pfn_t{1} << k);
  if (end > limit) end = limit;
  if (end - pfn < least) return 0;
  if (!watermark_ok_pages(end - pfn, gfp)) {
    end = pfn + static_cast<pfn_t>(least);  // the room beyond least is a wish, not a need
    if (!watermark_ok_pages(least, gfp)) return 0;
  }
  const std::uint64_t n = end - pfn;
  for (pfn_t at = pfn; at < end;) {
    free_block_holding(at, &h, &k);  // found above; what the frees below give back is outside the range
    bool reported = list_del(k, h);
    sub_free_pages(std::uint64_t{1} << k);
    pfn_t bend = h + (pfn_t{1} << k);
    if (h < pfn) free_run_locked(h, pfn, reported);
    if (bend > end) free_run_locked(end, bend, reported);
    at = bend;
  }
  return n;
}

Page* BuddyZone::alloc_locked(unsigned order, gfp_t gfp, bool* reported) {
  if (order > kMaxOrder || !watermark_ok(order, gfp)) return nullptr;
  unsigned k = order;
  while (k <= kMaxOrder && area_[k].head == kNoPfn) ++k;
  if (k > kMaxOrder) return nullptr;
  pfn_t pfn = area_[k].head;
  bool was_reported = list_del(k, pfn);
  // expand(): give back the upper halves (still reported if the block was).
  while (k > order) {
    --k;
    list_add(k, pfn + (pfn_t{1} << k), was_reported);
  }
  if (reported != nullptr) *reported = was_reported;
  sub_free_pages(std::uint64_t{1} << order);
  Page* p = phys_->pfn_to_page(pfn);
  p->set_refcount(1);
  return p;
}

void BuddyZone::add_frames(pfn_t new_end) {
  LockGuard g(lock_);
  pfn_t pfn = end_;
  if (new_end <= end_) return;
  end_ = new_end;
  managed_pages_ += new_end - pfn;
  while (pfn < new_end) {
    unsigned order = kMaxOrder;
    while (order > 0 && ((index(pfn) & ((pfn_t{1} << order) - 1)) != 0 || pfn + (pfn_t{1} << order) > new_end)) --order;
    // No store to the block's other descriptors: PhysMem::online_more hands them over zero
    // (flags 0, refcount 0, kOwnerFree), as a free frame's are, and in the preload they lie
    // in a fresh mapping: storing the zeros again would fault in a page of mem_map for every
    // 128 frames the heap grows by, whether they are ever used or not.
    free_locked(pfn, order, reported_zero_);  // fresh frames: not resident
    pfn += pfn_t{1} << order;
  }
}

Page* BuddyZone::alloc_pages(unsigned order, gfp_t gfp) {
  if (__builtin_expect(fail_page_alloc(std::uint64_t{1} << (order > kMaxOrder ? kMaxOrder : order), gfp), 0)) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  Page* p;
  bool reported = false;
  {
    LockGuard g(lock_);
    p = alloc_locked(order, gfp, &reported);
  }
  if (p == nullptr && wait_isolated()) {
    LockGuard g(lock_);
    p = alloc_locked(order, gfp, &reported);
  }
  // The heap's growth: memory the machine holds first, then more frames (GrowFn).
  for (GrowStep step : {GrowStep::kReclaim, GrowStep::kGrow}) {
    if (p != nullptr || grow_ == nullptr || order > kMaxOrder) break;
    if (!grow_(grow_arg_, order, step)) continue;
    LockGuard g(lock_);
    p = alloc_locked(order, gfp, &reported);
  }
  if (p == nullptr) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  if (reported && grow_ != nullptr) grow_(grow_arg_, order, GrowStep::kReclaim);
  if ((gfp & __GFP_ZERO) && !(reported && reported_zero_)) std::memset(phys_->page_address(p), 0, kPageSize << order);
  return p;
}

void BuddyZone::free_pages(Page* page, unsigned order) {
  pfn_t pfn = phys_->page_to_pfn(page);
  LockGuard g(lock_);
  for (pfn_t i = 0; i < (pfn_t{1} << order); ++i) {
    Page* q = page + i;
    q->set_flags(0);
    q->set_owner(kOwnerFree);
    q->set_refcount(0);
    q->set_cache_id(0);
  }
  free_locked(pfn, order);
}

Page* BuddyZone::alloc_pages_exact(std::uint64_t count, gfp_t gfp) {
  if (count == 0) return nullptr;
  if (__builtin_expect(fail_page_alloc(count, gfp), 0)) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  // More than the largest block is refused before the shift: count << kPageShift wraps from
  // 2^52 frames on, and a small order would hand out fewer frames than asked.
  unsigned order = count > (std::uint64_t{1} << kMaxOrder) ? kMaxOrder + 1 : get_order(count << kPageShift);
  if (order > kMaxOrder) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  Page* p = nullptr;
  bool reported = false;
  // Then the heap's growth: memory the machine holds first, more frames if that was not
  // enough (GrowFn).
  for (int attempt = 0; attempt < 4 && p == nullptr; ++attempt) {
    if (attempt == 1 && !wait_isolated()) continue;
    if (attempt >= 2) {
      if (grow_ == nullptr) break;
      if (!grow_(grow_arg_, order, attempt == 2 ? GrowStep::kReclaim : GrowStep::kGrow)) continue;
    }
    LockGuard g(lock_);
    p = alloc_locked(order, gfp, &reported);
    if (p != nullptr) {
      pfn_t pfn = phys_->page_to_pfn(p);
      // Give back frames [count, 2^order) as the largest aligned blocks.
      free_run_locked(pfn + static_cast<pfn_t>(count), pfn + (pfn_t{1} << order), reported);
    }
  }
  if (p != nullptr && reported && grow_ != nullptr) grow_(grow_arg_, order, GrowStep::kReclaim);
  if (p != nullptr && reported && reported_zero_) gfp &= ~__GFP_ZERO;  // fresh or purged: zero already
  return finish_exact_alloc(phys_, p, count, gfp, &failures_);
}

void BuddyZone::free_pages_exact(Page* page, std::uint64_t count) {
  pfn_t pfn = phys_->page_to_pfn(page);
  pfn_t end = pfn + static_cast<pfn_t>(count);
  LockGuard g(lock_);
  for (pfn_t i = 0; i < count; ++i) {
    Page* q = page + i;
    q->set_flags(0);
    q->set_owner(kOwnerFree);
    q->set_refcount(0);
    q->set_cache_id(0);
  }
  free_run_locked(pfn, end, false);
}

void BuddyZone::snapshot(std::uint64_t out[kNrOrders]) const {
  LockGuard g(lock_);
  for (unsigned k = 0; k < kNrOrders; ++k) out[k] = area_[k].nr_free;
}

std::uint64_t BuddyZone::largest_free_block() const {
  std::uint64_t nr[kNrOrders];
  snapshot(nr);
  for (unsigned k = kNrOrders; k-- > 0;)
    if (nr[k] != 0) return std::uint64_t{1} << k;
  return 0;
}

int BuddyZone::fragmentation_index(unsigned order) const {
  std::uint64_t nr[kNrOrders];
  snapshot(nr);
  return kmm::fragmentation_index(nr, order);
}

int BuddyZone::unusable_index(unsigned order) const {
  std::uint64_t nr[kNrOrders];
  snapshot(nr);
  return kmm::unusable_index(nr, order);
}

bool BuddyZone::frame_is_free(pfn_t pfn) const {
  if (pfn < start_ || pfn >= end_) return false;
  LockGuard g(lock_);
  for (unsigned o = 0; o <= kMaxOrder; ++o) {
    pfn_t head = phys_->base_pfn() + (index(pfn) & ~((pfn_t{1} << o) - 1));
    const Page* p = phys_->pfn_to_page(head);
    if (p->is(PG_buddy) && p->get_order() == o) return true;
  }
  return false;
}

bool BuddyZone::check_invariants(TextSink* why) const {
  LockGuard g(lock_);
  std::uint64_t total = 0, reported = 0;
  for (unsigned k = 0; k < kNrOrders; ++k) {
    std::uint64_t n = 0;
    pfn_t prev = kNoPfn;
    bool in_reported_suffix = false;
    for (pfn_t pfn = area_[k].head; pfn != kNoPfn;) {
      if (pfn < start_ || pfn + (pfn_t{1} << k) > end_) {
        if (why) why->str("buddy: block ").u(pfn).str(" of order ").u(k).str(" outside the zone");
        return false;
      }
      const Page* p = phys_->pfn_to_page(pfn);
      if (!p->is(PG_buddy) || p->get_order() != k) {
        if (why) why->str("buddy: block ").u(pfn).str(" on list ").u(k).str(" lacks PG_buddy/order");
        return false;
      }
      if ((index(pfn) & ((pfn_t{1} << k) - 1)) != 0) {
        if (why) why->str("buddy: block ").u(pfn).str(" misaligned for order ").u(k);
        return false;
      }
      if (p->lru.prev != prev) {
        if (why) why->str("buddy: broken back link at ").u(pfn);
        return false;
      }
      if (p->is(PG_reported)) {
        in_reported_suffix = true;
        reported += std::uint64_t{1} << k;
      } else if (in_reported_suffix) {
        if (why) why->str("buddy: unreported block ").u(pfn).str(" after a reported one on list ").u(k);
        return false;
      }
      if (k < kMaxOrder) {
        pfn_t buddy = phys_->base_pfn() + (index(pfn) ^ (pfn_t{1} << k));
        if (buddy >= start_ && buddy + (pfn_t{1} << k) <= end_) {
          const Page* b = phys_->pfn_to_page(buddy);
          if (b->is(PG_buddy) && b->get_order() == k) {
            if (why) why->str("buddy: blocks ").u(pfn).str(" and ").u(buddy).str(" are free buddies of order ").u(k);
            return false;
          }
        }
      }
      ++n;
      if (n > managed_pages_) {
        if (why) why->str("buddy: cycle in free list ").u(k);
        return false;
      }
      prev = pfn;
      pfn = p->lru.next;
    }
    if (prev != area_[k].tail) {
      if (why) why->str("buddy: free list ").u(k).str(" ends at ").u(prev).str(", its tail says ").u(area_[k].tail);
      return false;
    }
    if (n != area_[k].nr_free) {
      if (why) why->str("buddy: free list ").u(k).str(" holds ").u(n).str(" blocks, nr_free says ").u(area_[k].nr_free);
      return false;
    }
    total += n << k;
  }
  if (total != free_pages_.load(std::memory_order_relaxed)) {
    if (why) why->str("buddy: lists hold ").u(total).str(" pages, free_pages says ").u(free_pages_.load());
    return false;
  }
  if (reported != reported_pages_.load(std::memory_order_relaxed)) {
    if (why)
      why->str("buddy: lists hold ").u(reported).str(" reported pages, reported_pages says ").u(reported_pages_.load());
    return false;
  }
  return true;
}

bool BuddyZone::wait_isolated() {
  if (isolated_pages_.load(std::memory_order_acquire) == 0) return false;
  // report_free holds them only for one sink call (a madvise): wait rather than fail or grow.
  while (isolated_pages_.load(std::memory_order_acquire) != 0) {
#if KMM_HAVE_THREADS
    sched_yield();
#endif
  }
  return true;
}

std::uint64_t BuddyZone::report_free(unsigned min_order, std::uint32_t min_age_ms, std::uint64_t max_pages,
                                     ReportSink sink, void* arg) {
  if (min_order > kMaxOrder || !report_lock_.try_lock()) return 0;
  // Young blocks sit at the head of a list; skipping more than this many moves on to the
  // next order, so a call's cost stays bounded whatever the lists hold.
  constexpr unsigned kMaxSkips = 64;
  std::uint64_t done = 0;
  bool stopped = false;
  for (unsigned k = kNrOrders; k-- > min_order && !stopped && done < max_pages;) {
    while (done < max_pages) {
      pfn_t pick = kNoPfn;
      {
        LockGuard g(lock_);
        std::uint32_t now = __atomic_load_n(&clock_ms_, __ATOMIC_RELAXED);  // set_clock_ms writes it with no lock
        unsigned skipped = 0;
        for (pfn_t pfn = area_[k].head; pfn != kNoPfn && skipped < kMaxSkips; ++skipped) {
          const Page* p = phys_->pfn_to_page(pfn);
          if (p->is(PG_reported)) break;  // the reported suffix: nothing further on this list
          if (static_cast<std::uint32_t>(now - p->lru.freelist) >= min_age_ms) {
            pick = pfn;
            break;
          }
          pfn = p->lru.next;
        }
        if (pick == kNoPfn) break;
        list_del(k, pick);  // isolated: no allocation takes it, no free merges with it
        sub_free_pages(std::uint64_t{1} << k);
        isolated_pages_.fetch_add(std::uint64_t{1} << k, std::memory_order_relaxed);
      }
      bool ok = sink(arg, phys_->pfn_to_virt(pick), std::size_t{kPageSize} << k);
      {
        LockGuard g(lock_);
        free_locked(pick, k, ok);
        isolated_pages_.fetch_sub(std::uint64_t{1} << k, std::memory_order_release);
      }
      if (!ok) {
        stopped = true;
        break;
      }
      done += std::uint64_t{1} << k;
    }
  }
  reported_total_.fetch_add(done, std::memory_order_relaxed);
  report_lock_.unlock();
  return done;
}

}  // namespace kmm

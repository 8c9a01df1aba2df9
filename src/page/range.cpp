// kmm/page/range.cpp — first-fit page runs with boundary tags in mem_map (see range.h).
#include "page/range.h"

#include <cstring>

#include "base/fault_inject.h"
#include "base/text.h"

namespace kmm {
namespace {

constexpr std::uint32_t kRunEnd = PG_buddy | PG_range_end;

}  // namespace

void RangeAllocator::init(PhysMem* phys, pfn_t start, pfn_t end, std::uint64_t min_free_kbytes, RangePlacement rule,
                          std::uint64_t small_pages) {
  phys_ = phys;
  start_ = start;
  end_ = end;
  rule_ = rule;
  small_pages_ = small_pages;
  first_ = last_ = kNoPfn;
  nr_runs_ = 0;
  managed_pages_ = end > start ? end - start : 0;
  free_pages_.store(0, std::memory_order_relaxed);
  if (managed_pages_ != 0) {
    for (pfn_t pfn = start; pfn < end; ++pfn) {
      Page* p = pg(pfn);
      p->set_flags(PG_buddy);
      p->set_order(0);
      p->set_refcount(0);
      p->owner = kOwnerFree;
      p->cache_id = 0;
    }
    set_len(start, managed_pages_);
    link_after(kNoPfn, start);
    free_pages_.store(managed_pages_, std::memory_order_relaxed);
  }
  wmark_ = linux_watermarks(managed_pages_, min_free_kbytes);
}

bool RangeAllocator::top_down(std::uint64_t count) const {
  switch (rule_) {
    case RangePlacement::kSmallTopDown:
      return count <= small_pages_;
    case RangePlacement::kSmallBottomUp:
      return count > small_pages_;
    case RangePlacement::kBottomUp:
      break;
  }
  return false;
}

void RangeAllocator::set_len(pfn_t head, std::uint64_t len) {
  Page* h = pg(head);
  h->set_flags(kRunEnd);
  h->lru.nr_pages = static_cast<std::uint32_t>(len);
  Page* t = pg(head + static_cast<pfn_t>(len - 1));
  t->set_flags(kRunEnd);
  t->lru.nr_pages = static_cast<std::uint32_t>(len);
}

void RangeAllocator::link_after(pfn_t prev, pfn_t run) {
  Page* r = pg(run);
  pfn_t next = prev == kNoPfn ? first_ : pg(prev)->lru.next;
  r->lru.prev = prev;
  r->lru.next = next;
  if (prev == kNoPfn)
    first_ = run;
  else
    pg(prev)->lru.next = run;
  if (next == kNoPfn)
    last_ = run;
  else
    pg(next)->lru.prev = run;
  ++nr_runs_;
}

void RangeAllocator::unlink(pfn_t run) {
  Page* r = pg(run);
  if (r->lru.prev == kNoPfn)
    first_ = r->lru.next;
  else
    pg(r->lru.prev)->lru.next = r->lru.next;
  if (r->lru.next == kNoPfn)
    last_ = r->lru.prev;
  else
    pg(r->lru.next)->lru.prev = r->lru.prev;
  r->lru.next = r->lru.prev = kNoPfn;
  --nr_runs_;
}

bool RangeAllocator::watermark_ok(std::uint64_t count, gfp_t gfp) const {
  if (gfp & __GFP_NOWMARK) return true;
  std::uint64_t reserve = wmark_.min;
  if (gfp & __GFP_HIGH) reserve /= 2;
  std::uint64_t free = free_pages_.load(std::memory_order_relaxed);
  return free >= count && free - count >= reserve;
}

Page* RangeAllocator::alloc_locked(std::uint64_t count, gfp_t gfp) {
  if (count == 0 || count > managed_pages_ || !watermark_ok(count, gfp)) return nullptr;
  pfn_t block = kNoPfn;
  if (top_down(count)) {
    for (pfn_t run = last_; run != kNoPfn; run = pg(run)->lru.prev) {
      std::uint64_t len = pg(run)->lru.nr_pages;
      if (len < count) continue;
      block = run + static_cast<pfn_t>(len - count);
      if (len == count) {
        unlink(run);
      } else {
        set_len(run, len - count);  // the run keeps its head; its tail moves down
      }
      break;
    }
  } else {
    for (pfn_t run = first_; run != kNoPfn; run = pg(run)->lru.next) {
      std::uint64_t len = pg(run)->lru.nr_pages;
      if (len < count) continue;
      block = run;
      pfn_t prev = pg(run)->lru.prev;
      unlink(run);
      if (len != count) {
        pfn_t rest = run + static_cast<pfn_t>(count);
        set_len(rest, len - count);
        link_after(prev, rest);
      }
      break;
    }
  }
  if (block == kNoPfn) return nullptr;
  for (std::uint64_t i = 0; i < count; ++i) {
    Page* q = pg(block + static_cast<pfn_t>(i));
    q->set_flags(0);
    q->set_order(0);
    q->set_refcount(0);
    q->lru.next = q->lru.prev = kNoPfn;
    q->lru.nr_pages = 0;
  }
  pg(block)->set_refcount(1);
  free_pages_.fetch_sub(count, std::memory_order_relaxed);
  return pg(block);
}

void RangeAllocator::free_locked(pfn_t pfn, std::uint64_t count) {
  pfn_t end = pfn + static_cast<pfn_t>(count);
  for (pfn_t f = pfn; f < end; ++f) {
    Page* q = pg(f);
    q->set_flags(PG_buddy);
    q->set_order(0);
    q->owner = kOwnerFree;
    q->set_refcount(0);
    q->cache_id = 0;
  }
  bool left = pfn > start_ && pg(pfn - 1)->is(PG_buddy);
  bool right = end < end_ && pg(end)->is(PG_buddy);
  pfn_t left_head = kNoPfn;
  std::uint64_t llen = 0, rlen = 0;
  if (left) {
    llen = pg(pfn - 1)->lru.nr_pages;  // a free frame before the block is a run's tail
    left_head = pfn - static_cast<pfn_t>(llen);
  }
  if (right) rlen = pg(end)->lru.nr_pages;  // ... and one after it a run's head
  if (left && right) {
    unlink(end);
    pg(pfn - 1)->set_flags(PG_buddy);
    pg(end)->set_flags(PG_buddy);
    set_len(left_head, llen + count + rlen);
  } else if (left) {
    pg(pfn - 1)->set_flags(PG_buddy);
    set_len(left_head, llen + count);
  } else if (right) {
    pfn_t prev = pg(end)->lru.prev;
    unlink(end);
    pg(end)->set_flags(PG_buddy);
    set_len(pfn, count + rlen);
    link_after(prev, pfn);
  } else {
    // No free neighbour: find the run before the block (address order).
    pfn_t prev = kNoPfn;
    if (last_ != kNoPfn && last_ < pfn) {
      prev = last_;
    } else {
      for (pfn_t run = first_; run != kNoPfn && run < pfn; run = pg(run)->lru.next) prev = run;
    }
    set_len(pfn, count);
    link_after(prev, pfn);
  }
  free_pages_.fetch_add(count, std::memory_order_relaxed);
}

Page* RangeAllocator::alloc_pages(unsigned order, gfp_t gfp) {
  if (order > kMaxOrder) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  return alloc_pages_exact(std::uint64_t{1} << order, gfp);
}

void RangeAllocator::free_pages(Page* page, unsigned order) {
  free_pages_exact(page, std::uint64_t{1} << order);
}

Page* RangeAllocator::alloc_pages_exact(std::uint64_t count, gfp_t gfp) {
  // The fail_page_alloc point (alloc_pages comes through here too); see buddy.cpp.
  if (__builtin_expect(!(gfp & __GFP_NOFAIL) &&
                           fault_should_fail(FaultPoint::kPage, static_cast<std::size_t>(count << kPageShift), "range"),
                       0)) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  Page* p;
  {
    LockGuard g(lock_);
    p = alloc_locked(count, gfp);
  }
  return finish_exact_alloc(phys_, p, count, gfp, &failures_);
}

void RangeAllocator::free_pages_exact(Page* page, std::uint64_t count) {
  if (count == 0) return;
  pfn_t pfn = phys_->page_to_pfn(page);
  LockGuard g(lock_);
  free_locked(pfn, count);
}

std::uint64_t RangeAllocator::largest_free_block() const {
  LockGuard g(lock_);
  std::uint64_t best = 0;
  for (pfn_t run = first_; run != kNoPfn; run = pg(run)->lru.next)
    if (pg(run)->lru.nr_pages > best) best = pg(run)->lru.nr_pages;
  return best;
}

void RangeAllocator::free_blocks(std::uint64_t out[kNrOrders]) const {
  for (unsigned k = 0; k < kNrOrders; ++k) out[k] = 0;
  LockGuard g(lock_);
  for (pfn_t run = first_; run != kNoPfn; run = pg(run)->lru.next)
    count_run_blocks(start_, run, pg(run)->lru.nr_pages, out);
}

bool RangeAllocator::frame_is_free(pfn_t pfn) const {
  if (pfn < start_ || pfn >= end_) return false;
  return pg(pfn)->is(PG_buddy);
}

bool RangeAllocator::check_invariants(TextSink* why) const {
  LockGuard g(lock_);
  std::uint64_t total = 0, runs = 0;
  pfn_t prev = kNoPfn;
  pfn_t covered = start_;  // frames below this are checked
  for (pfn_t run = first_; run != kNoPfn; run = pg(run)->lru.next) {
    const Page* h = pg(run);
    std::uint64_t len = h->lru.nr_pages;
    if (run < start_ || len == 0 || run + len > end_) {
      if (why) why->str("range: run ").u(run).str(" of ").u(len).str(" frames outside the zone");
      return false;
    }
    if (prev != kNoPfn && run <= prev) {
      if (why) why->str("range: run ").u(run).str(" after ").u(prev).str(": list out of address order");
      return false;
    }
    if (h->lru.prev != prev) {
      if (why) why->str("range: broken back link at run ").u(run);
      return false;
    }
    if (run < covered || (run == covered && prev != kNoPfn)) {
      if (why) why->str("range: run ").u(run).str(" touches or overlaps the run before it (not merged)");
      return false;
    }
    for (pfn_t f = covered; f < run; ++f) {
      if (pg(f)->is(PG_buddy)) {
        if (why) why->str("range: frame ").u(f).str(" marked free but on no run");
        return false;
      }
    }
    pfn_t tail = run + static_cast<pfn_t>(len - 1);
    for (pfn_t f = run; f <= tail; ++f) {
      std::uint32_t fl = pg(f)->get_flags();
      bool end_frame = f == run || f == tail;
      if (fl != (end_frame ? kRunEnd : std::uint32_t{PG_buddy})) {
        if (why) why->str("range: frame ").u(f).str(" of run ").u(run).str(" has flags 0x").hex(fl);
        return false;
      }
    }
    if (pg(tail)->lru.nr_pages != len) {
      if (why) why->str("range: run ").u(run).str(" tail says ").u(pg(tail)->lru.nr_pages).str(" frames, head ").u(len);
      return false;
    }
    total += len;
    if (++runs > managed_pages_) {
      if (why) why->str("range: cycle in the run list");
      return false;
    }
    prev = run;
    covered = tail + 1;
  }
  if (prev != last_) {
    if (why) why->str("range: last run is ").u(prev).str(", last_ says ").u(last_);
    return false;
  }
  for (pfn_t f = covered; f < end_; ++f) {
    if (pg(f)->is(PG_buddy)) {
      if (why) why->str("range: frame ").u(f).str(" marked free but on no run");
      return false;
    }
  }
  if (runs != nr_runs_) {
    if (why) why->str("range: ").u(runs).str(" runs on the list, nr_runs says ").u(nr_runs_);
    return false;
  }
  if (total != free_pages_.load(std::memory_order_relaxed)) {
    if (why) why->str("range: runs hold ").u(total).str(" frames, free_pages says ").u(free_pages_.load());
    return false;
  }
  return true;
}

}  // namespace kmm

// kmm/slab/kmalloc.cpp — size classes, large blocks, krealloc, ksize.
#include "slab/kmalloc.h"

#include <cstring>

#include "base/bits.h"
#include "base/report.h"
#include "base/text.h"

namespace kmm {
namespace {
constexpr std::size_t kClassSizes[kNrKmallocClasses] = {8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192};
constexpr const char* kClassNames[kNrKmallocClasses] = {
    "kmalloc-8",   "kmalloc-16",  "kmalloc-32", "kmalloc-64", "kmalloc-96", "kmalloc-128", "kmalloc-192",
    "kmalloc-256", "kmalloc-512", "kmalloc-1k", "kmalloc-2k", "kmalloc-4k", "kmalloc-8k"};
}  // namespace

std::size_t Kmalloc::class_size(unsigned i) {
  return kClassSizes[i];
}

bool Kmalloc::init(SlabAllocator* slab, const KmallocConfig& cfg) {
  slab_ = slab;
  phys_ = slab->phys();
  cfg_ = cfg;
  max_size_ = cfg.max_size != 0                    ? cfg.max_size
              : cfg.policy == KmallocPolicy::kPow2 ? (std::uint64_t{1} << 20)
                                                   : (kPageSize << kMaxOrder);
  if (max_size_ > (kPageSize << kMaxOrder)) max_size_ = kPageSize << kMaxOrder;
  for (unsigned i = 0; i < kNrKmallocClasses; ++i) {
    classes_[i] = slab->create(kClassNames[i], kClassSizes[i], 8, SLAB_KMALLOC);
    if (classes_[i] == nullptr) return false;
  }
  fill_class_tables();
  return true;
}

void Kmalloc::fill_class_tables() {
  for (unsigned i = 0; i < kNrKmallocClasses; ++i) class_own_[i] = own_offset(pop_slot_of(classes_[i]));
  for (unsigned n = 0; n <= kSmallClassBytes / 8; ++n) {
    unsigned c = 0;
    while (kClassSizes[c] < n * 8) ++c;
    small_class_[n] = classes_[c];
    small_own_[n] = class_own_[c];
  }
}

std::uint64_t Kmalloc::large_footprint(std::size_t size) const {
  if (size > max_size_) return 0;
  if (cfg_.policy == KmallocPolicy::kPow2) return kPageSize << get_order(size);
  return pages_for(size) << kPageShift;
}

void Kmalloc::publish_large_tails(Page* head, std::uint64_t from, std::uint64_t to) const {
  const pfn_t head_pfn = phys_->page_to_pfn(head);
  for (std::uint64_t i = from; i < to; ++i) {
    head[i].set_tail_head(head_pfn);
    head[i].publish_flags(PG_large | PG_tail);  // after its head (Page::tail_head)
  }
}

void* Kmalloc::kmalloc_large(std::size_t size, gfp_t gfp, owner_t owner) {
  if (size > max_size_) return nullptr;
  void* p = kmalloc_large_once(size, gfp, owner);
  if (p == nullptr && slab_->reclaim_quarantine()) p = kmalloc_large_once(size, gfp, owner);
  return p;
}

void* Kmalloc::kmalloc_large_once(std::size_t size, gfp_t gfp, owner_t owner) {
  PageAllocator* zone = slab_->zone();
  PhysMem* phys = slab_->phys();
  Page* head;
  std::uint64_t npages;
  // A block of the largest buddy size has no room for a guard frame: it goes unguarded.
  bool guarded = cfg_.guard_platform != nullptr && pages_for(size) < (std::uint64_t{1} << kMaxOrder);
  bool reused = false;  // a parked run: its guard frame is still protected
  bool zeroed = false;  // the zone cleared it, or knew its frames read as zero (buddy.h)
  if (guarded) {
    npages = pages_for(size) + 1;
    head = take_guarded(npages);
    reused = head != nullptr;
    if (head == nullptr) head = zone->alloc_pages_exact(npages, gfp & ~__GFP_ZERO);
    // Frames parked in the cache are free memory: give them back and try once more.
    if (head == nullptr && drain_guard_cache() != 0) head = zone->alloc_pages_exact(npages, gfp & ~__GFP_ZERO);
  } else if (cfg_.policy == KmallocPolicy::kPow2) {
    unsigned order = get_order(size);
    head = zone->alloc_pages(order, gfp & ~__GFP_ZERO);
    npages = std::uint64_t{1} << order;
  } else {
    npages = pages_for(size);
    // __GFP_ZERO goes down: the zone skips the clear of frames it knows read as zero (fresh
    // or purged: set_reported_reads_zero), so a calloc of 1 MiB no longer faults in 256 pages.
    head = zone->alloc_pages_exact(npages, gfp);
    zeroed = true;
  }
  if (head == nullptr) return nullptr;
  // Owner, size and tails before the head's flags (persistent RAM: a crash never leaves a
  // head whose size or owner is stale; see docs/PERSISTENCE.md).
  head->set_owner(owner == kOwnerFree ? kOwnerKernel : owner);
  head->set_nr_pages(static_cast<std::uint32_t>(npages));
  publish_large_tails(head, 1, npages);
  void* p = phys->page_address(head);
  if (guarded) {
    // The slack after the size asked for and, when the platform cannot protect it, the guard
    // frame itself carry a pattern that free_large checks.
    char* end = static_cast<char*>(p) + static_cast<std::size_t>((npages - 1) << kPageShift);
    std::memset(static_cast<char*>(p) + size, kGuardFill, static_cast<std::size_t>(end - static_cast<char*>(p)) - size);
    bool mmu = reused || cfg_.guard_platform->protect(end, kPageSize, Prot::kNone);
    if (!mmu) std::memset(end, kGuardFill, kPageSize);
    head->lru.freelist = static_cast<std::uint32_t>(size);
    head->lru.objects = mmu ? 1 : 2;
  }
  head->publish_flags(PG_large | PG_head | (guarded ? std::uint32_t{PG_guarded} : 0u));
  large_pages_.fetch_add(npages, std::memory_order_relaxed);
  if ((gfp & __GFP_ZERO) && !zeroed) std::memset(p, 0, size);
  return p;
}

void* Kmalloc::kmalloc_after_fast(std::size_t size, gfp_t gfp, owner_t owner) {
  if (KmemCache* c = size - 1 < kKmallocMaxCacheSize ? cache_for(size) : nullptr)
    return slab_->alloc_slow(c, gfp, owner, size);
  return kmalloc_slow(size, gfp, owner);
}

void* Kmalloc::kmalloc_slow(std::size_t size, gfp_t gfp, owner_t owner) {
  if (size == 0) return ZERO_SIZE_PTR;
  if (size > max_size_) {
    // More than a quarter of the address space (2^62 on 64-bit, 1 GiB on 32-bit): no
    // machine kmm models has it, so this is a caller's overflow, not a large request.
    if (size > (std::size_t{1} << (sizeof(std::size_t) * 8 - 2))) {
      report({ErrorKind::kSizeOverflow, "kmalloc", nullptr, nullptr, size, "no allocator serves this size"});
    }
    return nullptr;
  }
  return kmalloc_large(size, gfp, owner);
}

void* Kmalloc::kcalloc(std::size_t n, std::size_t size, gfp_t gfp, owner_t owner) {
  std::size_t bytes;
  if (mul_overflows(n, size, &bytes)) {
    StackText<96> why;
    why.u(n).str(" * ").u(size).str(" overflows size_t");
    report({ErrorKind::kSizeOverflow, "kcalloc", nullptr, nullptr, size, why.data()});
    return nullptr;
  }
  return kmalloc(bytes, gfp | __GFP_ZERO, owner);
}

void Kmalloc::free_large(Page* head, const char* action) {
  std::uint64_t npages = head->get_nr_pages();
  bool guarded = head->is(PG_guarded);
  if (guarded) check_guard(head, action);
  // alloc_pages blocks (PG_pages) were never counted (Kernel::alloc_pages does not add them).
  if (!head->is(PG_pages)) large_pages_.fetch_sub(npages, std::memory_order_relaxed);
  head->set_owner(kOwnerFree);
  if (guarded) {
    if (park_guarded(head, npages)) return;  // guard still protected, for the next such run
    unprotect_guard(head);
    slab_->zone()->free_pages_exact(head, npages);
  } else {
    // Its whole length, as the allocator took it and grow_large_in_place grew it (a grown
    // kPow2 block need not be aligned to a power of two any more: not free_pages by order).
    slab_->zone()->free_pages_exact(head, npages);
  }
}

owner_t Kmalloc::claim_and_free_large(Page* head, const void* p, const char* action) {
  owner_t owner = head->claim_owner();
  if (owner == kOwnerFree) {
    report({ErrorKind::kDoubleFree, action, p, nullptr, std::size_t{head->get_nr_pages()} << kPageShift,
            "the block is already free"});
    return kOwnerFree;
  }
  free_large(head, action);
  return owner;
}

namespace {
// "<what>BYTE of a block of ASKED bytes was written<where>", reported as heap corruption.
void report_overrun(const char* action, void* p, std::size_t asked, const char* what, std::size_t byte,
                    const char* where) {
  StackText<160> why;
  why.str(what).u(byte).str(" of a block of ").u(asked).str(" bytes was written").str(where);
  report({ErrorKind::kCorruption, action, p, nullptr, asked, why.data()});
}
}  // namespace

// A guarded block about to be freed: the slack after the size asked for must still hold the
// pattern, and so must the guard frame when it was not protected (a protected one stays so:
// the run may be parked; unprotect_guard before its frames go back).
void Kmalloc::check_guard(Page* head, const char* action) {
  check_slack(head, action);
  if (head->lru.objects == 1) return;  // protected: an overrun into it faulted
  char* p = static_cast<char*>(slab_->phys()->page_address(head));
  std::size_t asked = head->lru.freelist;
  std::size_t usable = large_usable_bytes(head);
  std::size_t bad = first_not(p + usable, kPageSize, kGuardFill);
  if (bad == kPageSize) return;
  report_overrun(action, p, asked, "large block overrun into its guard page: byte ", usable + bad, "");
}

// A protected guard frame is made accessible again before its frames go back.
void Kmalloc::unprotect_guard(Page* head) {
  if (head->lru.objects != 1) return;  // patterned, never protected
  char* guard = static_cast<char*>(slab_->phys()->page_address(head)) + large_usable_bytes(head);
  if (!cfg_.guard_platform->protect(guard, kPageSize, Prot::kReadWrite))
    fatal("kmm: cannot make a guard page accessible again (host out of mappings)");
}

bool Kmalloc::park_guarded(Page* head, std::uint64_t npages) {
  if (head->lru.objects != 1) return false;  // only a protected guard saves anything
  std::uint64_t cap = slab_->zone()->managed_pages() / 32;
  if (cap > 2048) cap = 2048;
  LockGuard g(guard_cache_lock_);
  std::uint64_t parked = guard_cache_pages_.load(std::memory_order_relaxed);
  if (guard_cache_count_ == kGuardCacheSlots || parked + npages > cap) return false;
  guard_cache_[guard_cache_count_++] = ParkedRun{head, false};
  guard_cache_pages_.store(parked + npages, std::memory_order_relaxed);
  return true;
}

Page* Kmalloc::take_guarded(std::uint64_t npages) {
  if (guard_cache_pages_.load(std::memory_order_relaxed) == 0) return nullptr;
  LockGuard g(guard_cache_lock_);
  // Newest first: its frames are the likeliest to be in the CPU's caches.
  for (unsigned i = guard_cache_count_; i-- > 0;) {
    if (guard_cache_[i].head->get_nr_pages() != npages) continue;
    Page* head = guard_cache_[i].head;
    guard_cache_[i] = guard_cache_[--guard_cache_count_];
    guard_cache_pages_.store(guard_cache_pages_.load(std::memory_order_relaxed) - npages, std::memory_order_relaxed);
    guard_cache_hits_.fetch_add(1, std::memory_order_relaxed);
    return head;
  }
  return nullptr;
}

std::uint64_t Kmalloc::drain_guard_cache(bool aged_only) {
  if (guard_cache_pages_.load(std::memory_order_relaxed) == 0) return 0;
  ParkedRun out[kGuardCacheSlots];
  unsigned n = 0;
  {
    LockGuard g(guard_cache_lock_);
    for (unsigned i = 0; i < guard_cache_count_;) {
      if (aged_only && !guard_cache_[i].aged) {
        guard_cache_[i++].aged = true;
        continue;
      }
      out[n++] = guard_cache_[i];
      guard_cache_[i] = guard_cache_[--guard_cache_count_];
    }
    std::uint64_t given = 0;
    for (unsigned i = 0; i < n; ++i) given += out[i].head->get_nr_pages();
    guard_cache_pages_.store(guard_cache_pages_.load(std::memory_order_relaxed) - given, std::memory_order_relaxed);
  }
  // The frames go back outside the lock (it is a leaf; the zone has its own).
  std::uint64_t frames = 0;
  for (unsigned i = 0; i < n; ++i) {
    std::uint64_t npages = out[i].head->get_nr_pages();
    unprotect_guard(out[i].head);
    slab_->zone()->free_pages_exact(out[i].head, npages);
    frames += npages;
  }
  return frames;
}

// The slack between a guarded block's size asked for and its guard frame must hold kGuardFill.
void Kmalloc::check_slack(Page* head, const char* action) {
  char* p = static_cast<char*>(slab_->phys()->page_address(head));
  std::size_t asked = head->lru.freelist;
  std::size_t slack = large_usable_bytes(head) - asked;
  std::size_t bad = first_not(p + asked, slack, kGuardFill);
  if (bad == slack) return;
  report_overrun(action, p, asked, "large block overrun: byte ", asked + bad, " (slack before the guard page)");
}

bool Kmalloc::resize_guarded(void* p, std::size_t new_size, const char* action) {
  if (cfg_.guard_platform == nullptr) return false;  // guard_pages off: no guarded runs
  if (zero_or_null(p) || new_size == 0 || !phys_->owns(p)) return false;
  Page* head = phys_->virt_to_page(p);
  if (!head->is(PG_large) || !head->is(PG_head) || !head->is(PG_guarded) || phys_->page_address(head) != p)
    return false;
  // A module's block only while no pass may sweep it (grow_large_in_place says why): a sweep
  // would check the slack against a size being changed (a false corruption report stops the
  // process), and the new size would land in a freed head.
  ModuleWindow window(*slab_, &head->owner);
  if (!window.ok() || new_size > large_usable_bytes(head)) return false;
  // The old slack is checked before part of it becomes the block (a grow would hide damage).
  check_slack(head, action);
  std::size_t asked = head->lru.freelist;
  if (new_size < asked) std::memset(static_cast<char*>(p) + new_size, kGuardFill, asked - new_size);
  head->lru.freelist = static_cast<std::uint32_t>(new_size);
  return true;
}

Kmalloc::AskedResize Kmalloc::resize_asked_as(void* p, std::size_t new_size, const char* action) {
  SlabAllocator::ObjectInfo info;
  if (slab_->lookup(p, &info)) {
    if (!info.cache->debug) return AskedResize::kNotKept;
    // A module's object is rewritten so only where no pass may sweep it meanwhile
    // (ModuleWindow, on its owner byte): a sweep checks its red zone against the size being
    // changed, and a slot the pass reclaimed would take the writes.
    ModuleWindow window(*slab_, slab_->owner_slot(info.cache, info.slab, info.index));
    return window.ok() && slab_->resize_in_place(info.cache, p, new_size) ? AskedResize::kResized
                                                                          : AskedResize::kDebugObjectMoves;
  }
  return resize_guarded(p, new_size, action) ? AskedResize::kResized : AskedResize::kNotKept;
}

owner_t Kmalloc::kfree_remote(ThreadCache* tc, Page* head, std::uint64_t state_off, char* obj, const char* action) {
  if (slab_->free_fast_remote(tc, head, state_off, obj) != kFreeFastNo) return kOwnerKernel;
  return kfree_after_fast(obj, action);
}

owner_t Kmalloc::kfree_after_fast(const void* p, const char* action) {
  if (phys_->owns(p)) {
    // A slab of this thread's whose lists must change: without the general path's lookups.
    if (slab_->owned_by_mask() && slab_->free_owned_refused(p) != kFreeFastNo) return kOwnerKernel;
    Page* page = phys_->virt_to_page(p);
    // Where the fast path has refused (it changed nothing): straight to the rest.
    if (__builtin_expect(page->is(PG_slab), 1))
      return slab_->owned_by_mask() ? slab_->free_page_object_general(nullptr, page, p, action)
                                    : slab_->free_page_object(nullptr, page, p, action);
  }
  return kfree_slow(p, action);
}

owner_t Kmalloc::kfree_slow(const void* p, const char* action) {
  if (zero_or_null(p)) return kOwnerFree;
  PhysMem* phys = slab_->phys();
  if (!phys->owns(p)) {
    report({ErrorKind::kForeignPointer, action, p, nullptr, 0, "not inside this machine's memory"});
    return kOwnerFree;
  }
  Page* page = phys->virt_to_page(p);
  if (page->is(PG_large)) {
    Page* head = phys->compound_head(page);
    if (page != head || phys->page_address(head) != p) {
      report({ErrorKind::kInvalidFree, action, p, nullptr, std::size_t{head->lru.nr_pages} << kPageShift,
              "pointer is inside a large block, not its start"});
      return kOwnerFree;
    }
    return claim_and_free_large(head, p, action);
  }
  // Atomic reads: the page may be given back at this very moment (a late free racing the
  // collector's reclaim of a gone module's slab), and this is only the diagnosis.
  // Boot frames (mem_map, memblock) may carry no mark at all (PhysMem::init's fresh_zero).
  if (!phys->is_boot_frame(phys->virt_to_pfn(p)) &&
      (page->is(PG_buddy) || (page->get_flags() == 0 && page->get_refcount() == 0))) {
    report({ErrorKind::kDoubleFree, action, p, nullptr, 0, "the page is already free"});
  } else {
    report({ErrorKind::kInvalidFree, action, p, nullptr, 0, "not a kmalloc block"});
  }
  return kOwnerFree;
}

// What ksize answers for a live slab object and for a live page run's head: the size asked
// of a debug cache (it red-zones the rest), the slot's; a guarded run's asked size, the frames'.
std::size_t Kmalloc::slab_object_size(const SlabAllocator::ObjectInfo& info, const void* p) const {
  return info.cache->debug ? slab_->asked_size(info.cache, p) : info.cache->size;
}
std::size_t Kmalloc::large_block_size(const Page* head) {
  return head->is(PG_guarded) ? std::size_t{head->lru.freelist} : std::size_t{head->lru.nr_pages} << kPageShift;
}

std::size_t Kmalloc::ksize(const void* p) const {
  if (zero_or_null(p)) return 0;
  PhysMem* phys = slab_->phys();
  if (!phys->owns(p)) return 0;
  SlabAllocator::ObjectInfo info;
  if (slab_->lookup(p, &info)) {
    if (info.owner == kOwnerFree || !info.exact) return 0;
    return slab_object_size(info, p);
  }
  Page* page = phys->virt_to_page(p);
  if (page->is(PG_large) && page->is(PG_head) && page->get_owner() != kOwnerFree) return large_block_size(page);
  return 0;
}

std::size_t Kmalloc::ksize_owner(const void* p, owner_t* owner) const {
  *owner = kOwnerFree;
  if (zero_or_null(p) || !phys_->owns(p)) return 0;
  SlabAllocator::ObjectInfo info;
  if (slab_->lookup(p, &info)) {
    if (info.owner == kOwnerFree || !info.exact) return 0;
    *owner = info.owner;
    return slab_object_size(info, p);
  }
  Page* page = phys_->virt_to_page(p);
  if (!page->is(PG_large) || !page->is(PG_head) || phys_->page_address(page) != p) return 0;
  owner_t o = page->get_owner();
  if (o == kOwnerFree) return 0;
  *owner = o;
  return large_block_size(page);
}

std::size_t Kmalloc::footprint(const void* p) const {
  if (zero_or_null(p)) return 0;
  SlabAllocator::ObjectInfo info;
  if (slab_->lookup(p, &info)) {
    if (info.owner == kOwnerFree || !info.exact) return 0;
    // The slot plus its share of the slab's unused tail and owner byte.
    return info.cache->size + (info.cache->offslab_owners ? 0 : 1);
  }
  return ksize(p);
}

owner_t Kmalloc::owner_of(const void* p) const {
  owner_t owner;
  ksize_owner(p, &owner);
  return owner;
}

bool Kmalloc::set_owner(const void* p, owner_t owner) {
  if (zero_or_null(p) || !slab_->phys()->owns(p)) return false;
  if (slab_->set_owner(p, owner)) return true;
  Page* page = slab_->phys()->virt_to_page(p);
  if (page->is(PG_large) && page->is(PG_head) && slab_->phys()->page_address(page) == p) {
    // From the owner read to the new one by compare-and-swap (SlabAllocator::set_owner says
    // why): a freed (or parked, or reclaimed) block is not revived.
    owner_t seen = page->get_owner();
    while (seen != kOwnerFree)
      if (page->replace_owner(&seen, owner)) return true;
  }
  return false;
}

bool Kmalloc::grow_large_in_place(void* p, std::size_t new_size, gfp_t gfp, std::size_t room) {
  if (zero_or_null(p) || new_size > max_size_ || !phys_->owns(p)) return false;
  Page* head = phys_->virt_to_page(p);
  // A kmalloc block: alloc_pages blocks (PG_pages) are freed by order, guarded ones keep their
  // guard frame last.
  if ((head->get_flags() & (PG_large | PG_head | PG_pages | PG_guarded)) != (PG_large | PG_head) ||
      phys_->page_address(head) != p)
    return false;
  // A module's block only while no pass may sweep it. Once its module is gone a pass claims
  // and frees its blocks (the owner's exchange, as kfree claims), and growing takes no claim:
  // a pass that freed the run between the length read below and the new length's store left
  // the new tails pointing at a freed head, the frames lost, the length written into a free
  // block's descriptor (tests/protect, GrowInPlaceRacingTheReclaimOfAGoneModule lost 3-18
  // frames a round). Inside the fence's window, opened on the run's owner (ModuleWindow: a
  // run freed meanwhile fails ok()), a pass that begins now waits until the run is grown, and
  // one that began before has flagged the owner gone: then, or with no window to open, the
  // block is moved instead (krealloc and realloc: kmalloc, copy, kfree), and kfree's claim
  // decides the race.
  ModuleWindow window(*slab_, &head->owner);
  if (!window.ok()) return false;
  const std::uint64_t have = head->get_nr_pages();
  const std::uint64_t need = pages_for(new_size);
  if (need <= have) return false;  // it fits: nothing to grow (ksize says so)
  const std::uint64_t most = pages_for(room > new_size ? (room < max_size_ ? room : max_size_) : new_size);
  const std::uint64_t got = slab_->zone()->take_free_frames(phys_->page_to_pfn(head) + static_cast<pfn_t>(have),
                                                            need - have, most - have, gfp);
  if (got == 0) return false;
  const std::uint64_t want = have + got;
  publish_large_tails(head, have, want);  // free frames: their owner is kOwnerFree already (page.h)
  __atomic_store_n(&head->lru.nr_pages, static_cast<std::uint32_t>(want), __ATOMIC_RELEASE);  // after the tails
  large_pages_.fetch_add(want - have, std::memory_order_relaxed);
  return true;
}

void* Kmalloc::krealloc(void* p, std::size_t new_size, gfp_t gfp, owner_t owner) {
  if (zero_or_null(p)) return kmalloc(new_size, gfp, owner);
  if (new_size == 0) {
    kfree(p, "krealloc");
    return ZERO_SIZE_PTR;
  }
  std::size_t have = ksize(p);
  if (have == 0) {
    // Not a live block: let kfree's checks name the problem.
    kfree(p, "krealloc");
    return nullptr;
  }
  // One lookup decides, where blocks keep their asked size; none otherwise (no debug cache).
  const AskedResize kept = keeps_asked_sizes() ? resize_asked_as(p, new_size, "krealloc") : AskedResize::kNotKept;
  if (kept == AskedResize::kResized) {
    // The red zone or the slack follows the size, up to the end of the slot or the frames.
    if ((gfp & __GFP_ZERO) && new_size > have) std::memset(static_cast<char*>(p) + have, 0, new_size - have);
    return p;
  }
  // A debug cache's object that did not fit its slot (or may be swept meanwhile) moves, and
  // kfree claims it; so does any block that neither fits nor grows in place.
  const bool debug_object = kept == AskedResize::kDebugObjectMoves;
  if (!debug_object && new_size <= have) return p;
  if (!debug_object && grow_large_in_place(p, new_size, gfp & ~__GFP_ZERO)) {
    if (gfp & __GFP_ZERO) std::memset(static_cast<char*>(p) + have, 0, ksize(p) - have);
    return p;
  }
  owner_t keep = owner_of(p);
  if (keep == kOwnerFree) keep = owner;
  void* q;
  {
    // A gone module's block becomes the caller's: a pass that marked before this move would
    // sweep a new block of the dead owner while the caller holds it (ModuleWindow::gone).
    ModuleWindow window(*slab_, keep);
    q = kmalloc(new_size, gfp & ~__GFP_ZERO, window.gone() ? owner : keep);
  }
  if (q == nullptr) return nullptr;  // the old block stays valid, as in Linux
  // A shrink moves too (a module's object no pass can be held off from): only what fits.
  std::memcpy(q, p, have < new_size ? have : new_size);
  if ((gfp & __GFP_ZERO) && new_size > have) std::memset(static_cast<char*>(q) + have, 0, ksize(q) - have);
  kfree(p, "krealloc");
  return q;
}

}  // namespace kmm

// kmm/slab/slab.cpp — cache sizing, slab lists, object alloc/free, checks, and the debug
// caches' red zones, poison and quarantine (slab/hardening.h).
#include "slab/slab.h"

#include <cstring>
#include <initializer_list>  // for (x : {a, b}); not pulled in by a freestanding <cstring>

#include "base/bits.h"
#include "base/fault_inject.h"
#include "base/report.h"
#include "base/text.h"
#include "pal/pal.h"
#include "slab/thread_cache.h"

namespace kmm {
namespace {

inline owner_t load_owner(const owner_t* slot) {
  return __atomic_load_n(slot, __ATOMIC_RELAXED);
}
inline void store_owner(owner_t* slot, owner_t v) {
  __atomic_store_n(slot, v, __ATOMIC_RELAXED);
}

// splitmix64: the per-cache keys of freelist_hardened from the boot's random seed.
std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

void SlabAllocator::init(PageAllocator* zone, const SlabConfig& cfg) {
  zone_ = zone;
  phys_ = zone->phys();
  cfg_ = cfg;
#if !KMM_HAVE_THREADS
  cfg_.thread_caches = false;
#endif
  for (unsigned i = 0; i < kMaxCaches; ++i) {
    __atomic_store_n(&caches_[i].in_use, false, __ATOMIC_RELAXED);
    caches_[i].id = static_cast<std::uint16_t>(i);
  }
  heap_id_ = 0;
  heap_gen_ = kNoHeapGen;  // matches no thread's slot: thread_cache_if_ready's tc is never null
  if (cfg_.thread_caches) tc_register_heap(this, &heap_id_, &heap_gen_);
  set_fast_gen(fault_enabled(FaultPoint::kSlab));
  std::memset(owner_gone_, 0, sizeof owner_gone_);
  // Only threads with a ThreadCache take part in the module-free fence (free_page_object).
  fence_ok_ = cfg_.thread_caches && register_process_barrier();
  set_owner_mask_orders();
  q_ring_ = nullptr;
  q_pages_ = nullptr;
  q_cap_ = q_head_ = 0;
  q_count_ = q_bytes_ = 0;
  // Freed memory that waits must never be what makes a correct program run out: at most a
  // quarter of the zone waits (kmm_hardening_options reports the size in force), and an
  // allocation that finds no memory empties the quarantine and tries again (alloc_slow).
  // (Of the RAM's whole span: memory that comes online as the heap grows counts.)
  const std::uint64_t quarantine_cap = std::uint64_t{phys_->size()} / 4;
  if (cfg_.hardening.quarantine_bytes > quarantine_cap) cfg_.hardening.quarantine_bytes = quarantine_cap;
  if (cfg_.hardening.quarantine_bytes != 0) {
    // One ring slot per 32 bytes of quarantine (the mean object is larger), within what one
    // buddy block holds; the ring caps the objects, quarantine_bytes the bytes.
    std::uint64_t want = cfg_.hardening.quarantine_bytes / 32;
    if (want < 64) want = 64;
    std::uint64_t max_entries = (kPageSize << kMaxOrder) / sizeof(void*);
    if (want > max_entries) want = max_entries;
    q_order_ = get_order(static_cast<std::size_t>(want * sizeof(void*)));
    q_pages_ = zone_->alloc_pages(q_order_, GFP_KERNEL);
    if (q_pages_ != nullptr) {
      q_ring_ = static_cast<void**>(phys_->page_address(q_pages_));
      q_cap_ = static_cast<std::uint32_t>((kPageSize << q_order_) / sizeof(void*));
    } else {
      cfg_.hardening.quarantine_bytes = 0;  // no memory for the ring: run without
    }
  }
}

void SlabAllocator::shutdown() {
  if (q_pages_ != nullptr) {
    quarantine_flush();
    zone_->free_pages(q_pages_, q_order_);
    q_pages_ = nullptr;
    q_ring_ = nullptr;
    q_cap_ = 0;
  }
  release_thread_caches();
  for (unsigned i = 0; i < kMaxCaches; ++i) {
    KmemCache* c = &caches_[i];
    if (!__atomic_load_n(&c->in_use, __ATOMIC_ACQUIRE)) continue;
    LockGuard g(c->lock);
    for (pfn_t* list : {&c->partial, &c->full}) {
      while (*list != kNoPfn) {
        Page* head = phys_->pfn_to_page(*list);
        list_del(list, head);
        discard_slab(c, head);
      }
    }
    __atomic_store_n(&c->in_use, false, __ATOMIC_RELEASE);
  }
}

void SlabAllocator::release_thread_caches() {
  if (!cfg_.thread_caches) return;
  tc_unregister_heap(this);
  tc_release_all();  // threads still alive never touch them again (stale generation)
  heap_gen_ = kNoHeapGen;
  set_fast_gen(true);
}

bool SlabAllocator::size_cache(KmemCache* c, bool owned) {
  // SLUB's calculate_order in spirit: the smallest order (<= slub_max_order, more for
  // huge objects) that holds at least 8 objects with no more than 1/8 wasted. A cache whose
  // slabs threads will own takes 64 KiB slabs (kOwnedSlabOrder): a thread switches slabs once
  // per slab's worth of allocations, and small slabs made it switch every few (kmalloc-1k held
  // 8 objects; mimalloc's pages for small objects are 64 KiB).
  unsigned best_order = 0, best_objects = 0;
  bool best_off = false;
  std::uint64_t best_waste_num = ~std::uint64_t{0}, best_waste_den = 1;
  if (owned) {  // threads will own its slabs: kOwnedSlabOrder, owner bytes inside (slab.h)
    best_order = kOwnedSlabOrder;
    best_objects = owned_objects_for(c->size);  // room for the owner colours (slab.h)
  }
  unsigned max_order = kMaxSlabOrder;
  while ((kPageSize << max_order) < c->size && max_order < kMaxOrder) ++max_order;
  for (unsigned order = 0; !owned && order <= max_order; ++order) {
    std::uint64_t bytes = kPageSize << order;
    std::uint64_t npages = std::uint64_t{1} << order;
    std::uint64_t in = bytes / (c->size + 1u);
    std::uint64_t off_cap = (npages - 1) * kTailOwnerBytes;
    std::uint64_t off = bytes / c->size;
    if (off > off_cap) off = 0;
    bool use_off = off > in;
    std::uint64_t objs = use_off ? off : in;
    if (objs > 0xFFFF) objs = 0xFFFF;
    if (objs == 0) continue;
    std::uint64_t waste = bytes - objs * c->size - (use_off ? 0 : objs);
    bool good = objs >= 8 && waste * 8 <= bytes;
    if (good || order == max_order || waste * best_waste_den < best_waste_num * bytes) {
      if (best_objects == 0 || good || waste * best_waste_den < best_waste_num * bytes) {
        best_order = order;
        best_objects = static_cast<unsigned>(objs);
        best_off = use_off;
        best_waste_num = waste;
        best_waste_den = bytes;
      }
    }
    if (good) break;
  }
  if (best_objects == 0) return false;
  c->order = static_cast<std::uint8_t>(best_order);
  c->objects = static_cast<std::uint16_t>(best_objects);
  c->objects32 = c->objects;
  c->unfull_inuse = unfull_inuse_for(c->objects);
  c->offslab_owners = best_off;
  c->owners_offset = best_off ? 0 : best_objects * c->size;
  c->owner_colour_mask = owner_colour_mask_for(c);
  c->reciprocal = static_cast<std::uint32_t>(((std::uint64_t{1} << 32) + c->size - 1) / c->size);
  return true;
}

KmemCache* SlabAllocator::create(const char* name, std::size_t size, std::size_t align, std::uint32_t flags) {
  if (size == 0 || size > (kPageSize << kMaxOrder) / 2 || (align != 0 && !is_pow2(align)) || align > kPageSize) {
    report(
        {ErrorKind::kBadArgument, "kmem_cache_create", nullptr, name, size, "object size or alignment out of range"});
    return nullptr;
  }
  LockGuard g(registry_lock_);
  KmemCache* c = nullptr;
  for (unsigned i = 0; i < kMaxCaches; ++i) {
    if (!__atomic_load_n(&caches_[i].in_use, __ATOMIC_RELAXED)) {
      c = &caches_[i];
      break;
    }
  }
  if (c == nullptr) {
    report({ErrorKind::kBadArgument, "kmem_cache_create", nullptr, name, size, "cache table full"});
    return nullptr;
  }
  std::size_t a = align < 8 ? 8 : align;
  if ((flags & SLAB_HWCACHE_ALIGN) && a < 64 && size > 32) a = 64;
  std::memset(c->name, 0, sizeof c->name);
  str_copy(c->name, sizeof c->name, name);
  c->object_size = static_cast<std::uint32_t>(size);
  c->size = static_cast<std::uint32_t>(round_up(size, a));
  c->align = static_cast<std::uint32_t>(a);
  const HardeningConfig& h = cfg_.hardening;
  c->debug = 0;
  c->fp_offset = 0;
  if (h.redzone) c->debug |= kDebugRedzone | kDebugOrigSize;
  if (h.poison) c->debug |= kDebugPoison;
  if (h.quarantine_bytes != 0) c->debug |= kDebugQuarantine;
  if (c->debug & (kDebugRedzone | kDebugPoison)) {
    // [object | red zone (at least kRedzoneMin bytes, up to the metadata word) | link, asked]:
    // the free link leaves the object, so poison covers all of it (SLUB moves it the same way).
    // Slots stay 16-aligned (malloc's alignment), and a power-of-two kmalloc class keeps its
    // natural alignment (Linux guarantees it with slub_debug too): the stride then doubles.
    std::size_t da = a < 16 ? 16 : a;
    if ((flags & SLAB_KMALLOC) && is_pow2(size) && size > da) da = size < kPageSize ? size : kPageSize;
    auto meta = static_cast<std::size_t>(round_up(size + ((c->debug & kDebugRedzone) ? kRedzoneMin : 0), 8));
    c->fp_offset = static_cast<std::uint32_t>(meta);
    c->size = static_cast<std::uint32_t>(round_up(meta + 8, da));
    c->align = static_cast<std::uint32_t>(da);
  }
  c->fl_key = 0;
  if (h.freelist_hardened) {
    c->fl_key = static_cast<std::uint32_t>(mix64(cfg_.random_seed ^ (std::uint64_t{c->id} << 32)));
    if (c->fl_key == 0) c->fl_key = 0x9E3779B9u;
  }
  c->flags = flags;
  c->partial = c->full = kNoPfn;
  c->nr_partial = c->nr_full = c->nr_empty = 0;
  c->nr_slabs.store(0, std::memory_order_relaxed);
  c->free_in_slabs.store(0, std::memory_order_relaxed);
  c->alloc_calls.store(0, std::memory_order_relaxed);
  // Objects of up to a quarter of an owned slab: threads own its slabs.
  bool owned = cfg_.thread_caches && c->debug == 0 && tc_slots_used_ < kMaxTcSlots && c->size <= kMaxOwnedSlabBytes / 4;
  if (!size_cache(c, owned)) {
    report({ErrorKind::kBadArgument, "kmem_cache_create", nullptr, name, size, "no slab order fits"});
    return nullptr;
  }
  c->tc_slot = 0xFF;
  c->nr_owned = 0;
  if (owned) c->tc_slot = tc_slots_used_++;
  // The fast paths read and write an owned cache's links at offset 0 (get_owned_link).
  if (owned && c->fp_offset != 0) fatal("kmem_cache_create: a cache threads own has its free link off offset 0");
  // The fast path's copy of tc_slot; the registry lock orders this against failslab's hook.
  __atomic_store_n(&c->alloc_tc_slot, fault_enabled(FaultPoint::kSlab) ? std::uint8_t{0xFF} : c->tc_slot,
                   __ATOMIC_RELAXED);
  __atomic_store_n(&c->in_use, true, __ATOMIC_RELEASE);  // every field above first
  return c;
}

bool SlabAllocator::destroy(KmemCache* c) {
  if (c == nullptr) return true;
  if (cfg_.thread_caches && c->tc_slot != 0xFF) tc_drain_cache(this, c);
  if (c->debug & kDebugQuarantine) quarantine_flush();
  {
    LockGuard g(c->lock);
    if (c->active_objects() != 0) {
      StackText<96> why;
      why.u(c->active_objects()).str(" objects still allocated; cache kept");
      report({ErrorKind::kCacheNotEmpty, "kmem_cache_destroy", nullptr, c->name, c->object_size, why.data()});
      return false;
    }
    while (c->partial != kNoPfn) {
      Page* head = phys_->pfn_to_page(c->partial);
      list_del(&c->partial, head);
      c->nr_partial--;
      if (head->lru.inuse == 0) empty_removed(c);
      discard_slab(c, head);
    }
  }
  LockGuard g(registry_lock_);
  __atomic_store_n(&c->in_use, false, __ATOMIC_RELEASE);
  // A tc_slot is not reused: a thread's (now empty) lists for it are never looked at again.
  return true;
}

std::uint64_t SlabAllocator::shrink_empty(const KmemCache* except, bool try_only) {
  std::uint64_t pages = 0;
  for (unsigned id = 0; id < kMaxCaches; ++id) {
    KmemCache* c = cache(id);
    if (c == nullptr || c == except) continue;
    if (try_only) {
      if (!c->lock.try_lock()) continue;
    } else {
      c->lock.lock();
    }
    for (pfn_t pfn = c->partial; pfn != kNoPfn && c->nr_empty > cfg_.min_partial;) {
      Page* head = phys_->pfn_to_page(pfn);
      pfn = head->lru.next;
      if (head->lru.inuse != 0) continue;
      list_del(&c->partial, head);
      c->nr_partial--;
      empty_removed(c);
      discard_slab(c, head);
      pages += std::uint64_t{1} << c->order;
    }
    c->lock.unlock();
  }
  return pages;
}

void SlabAllocator::set_owner_mask_orders() {
  owner_mask_orders_ = 0;
  masked_ram_bytes_ = 0;
  if (zone_ == nullptr || !zone_->aligned_blocks()) return;
  auto base = reinterpret_cast<std::uintptr_t>(phys_->base());
  unsigned orders = 0;
  while (orders <= kMaxOrder && (base & ((std::uintptr_t{kPageSize} << orders) - 1)) == 0) ++orders;
  owner_mask_orders_ = static_cast<std::uint8_t>(orders);
  owned_head_bias_ = reinterpret_cast<std::uintptr_t>(phys_->mem_map()) - (base >> kPageToDescShift);
  if (owned_by_mask()) {
    masked_ram_lo_ = base;
    masked_ram_bytes_ = phys_->size();
  }
}

Page* SlabAllocator::new_slab(KmemCache* c, gfp_t gfp) {
  Page* head = zone_->alloc_pages(c->order, gfp & ~__GFP_ZERO);
  if (head == nullptr) return nullptr;
  pfn_t head_pfn = phys_->page_to_pfn(head);
  unsigned npages = 1u << c->order;
  // Persistent RAM (docs/PERSISTENCE.md): the head's flags are written last, after the tails
  // and the zeroed owner vector, so a crash never leaves a slab whose owner bytes are stale.
  head->set_order(c->order);
  head->set_cache_id(c->id);
  head->set_owner(kOwnerFree);  // atomic: the collector reads owners of frames it walks
  for (unsigned i = 1; i < npages; ++i) {
    Page* t = head + i;
    t->set_tail_head(head_pfn);
    std::memset(t->tail.owners, 0, sizeof t->tail.owners);
    t->publish_flags(PG_slab | PG_tail);  // after its head and owner bytes (Page::tail_head)
  }
  char* base = static_cast<char*>(phys_->page_address(head));
  if (slab_found_by_mask(c) && (reinterpret_cast<std::uintptr_t>(base) & slab_mask(c)) != 0)
    fatal("slab: a block of the page allocator is not aligned to its size (owner_slot_of would miss its start)");
  if (!c->offslab_owners) std::memset(base + owners_offset_at(c, base), 0, c->objects);
  if (c->tc_slot != 0xFF) {
    set_owned_geometry(c, head);  // the free fast path's copy, beside the head (slab.h)
    // A slab threads will own: its free list is threaded a page at a time as it is used
    // (extend_lazy), so the frames a thread never reaches are never touched (mimalloc's free
    // list extension), from the top, where the owner bytes are (slab.h, kLazyLink): a 64 KiB
    // slab of a thread that allocates three objects costs one frame.
    head->lru.freelist = lazy_link(std::uint32_t{c->objects} * c->size);
  } else {
    // Thread the free list in address order.
    for (unsigned i = 0; i < c->objects; ++i) {
      char* obj = base + std::size_t{i} * c->size;
      if (c->debug) debug_init_slot(c, obj);
      set_link(c, obj, i + 1 < c->objects ? (i + 1) * c->size : kNoObject);
    }
    head->lru.freelist = 0;
  }
  head->lru.inuse = 0;
  head->lru.objects = c->objects;
  __atomic_store_n(slab_state_word(head), kSlabUnowned, __ATOMIC_RELAXED);  // owned by no thread
  head->publish_flags(PG_slab | PG_head | (c->offslab_owners ? std::uint32_t{PG_offslab_owners} : 0u));
  c->nr_slabs.fetch_add(1, std::memory_order_relaxed);
  c->free_in_slabs.fetch_add(c->objects, std::memory_order_relaxed);
  slab_pages_.fetch_add(npages, std::memory_order_relaxed);
  return head;
}

void SlabAllocator::discard_slab(KmemCache* c, Page* head) {
  unsigned npages = 1u << c->order;
  c->nr_slabs.fetch_sub(1, std::memory_order_relaxed);
  c->free_in_slabs.fetch_sub(c->objects - head->lru.inuse, std::memory_order_relaxed);
  slab_pages_.fetch_sub(npages, std::memory_order_relaxed);
  zone_->free_pages(head, c->order);
}

void SlabAllocator::extend_lazy(const KmemCache* c, Page* head) {
  std::uint32_t frontier = lazy_frontier(head->lru.freelist);
  const std::uint32_t end = std::uint32_t{c->objects} * c->size;
  if (frontier == 0 || frontier > end || frontier % c->size != 0) {
    report({ErrorKind::kCorruption, "kmalloc", slab_base(head), c->name, c->size,
            "slab free list points outside its slab (use after free?)"});
    head->lru.freelist = kNoObject;  // (report stops the process on corruption)
    return;
  }
  char* base = static_cast<char*>(slab_base(head));
  // At least one object (the highest unthreaded), and the others that start in its frame,
  // from the top down: the frame is touched, the ones below it are not.
  std::uint32_t top = frontier - c->size;
  std::uint32_t stop = top & ~static_cast<std::uint32_t>(kPageSize - 1);
  std::uint32_t off = top;
  for (;;) {
    if (off == 0) {
      set_link(c, base + off, kNoObject);
      break;
    }
    std::uint32_t next = off - c->size;
    if (next < stop) {
      set_link(c, base + off, lazy_link(off));
      break;
    }
    set_link(c, base + off, next);
    off = next;
  }
  head->lru.freelist = top;
}

// The partial list's first slab gives one object (a new slab when there is none). The link
// that becomes the slab's free list is checked: a freed object written after its free (use
// after free) must not send the allocator outside its slab.
Page* SlabAllocator::partial_slab_locked(KmemCache* c, gfp_t gfp) {
  if (c->partial == kNoPfn) {
    Page* fresh = new_slab(c, gfp);
    // Other caches may hold empty slabs (empty_keep_bytes): theirs, then one more try.
    if (fresh == nullptr && cfg_.empty_keep_bytes != 0 && shrink_empty(c, /*try_only=*/true) != 0)
      fresh = new_slab(c, gfp);
    if (fresh == nullptr) return nullptr;
    list_add(&c->partial, fresh);
    c->nr_partial++;
    empty_added(c);
  }
  return phys_->pfn_to_page(c->partial);
}

void* SlabAllocator::alloc_central_locked(KmemCache* c, gfp_t gfp) {
  const std::uint32_t slab_bytes = std::uint32_t{kPageSize} << c->order;
  Page* head = partial_slab_locked(c, gfp);
  if (head == nullptr) return nullptr;
  c->alloc_calls.fetch_add(1, std::memory_order_relaxed);
  char* base = static_cast<char*>(phys_->page_address(head));
  if (head->lru.freelist != kNoObject && (head->lru.freelist & kLazyLink)) extend_lazy(c, head);
  std::uint32_t off = head->lru.freelist;
  if (head->lru.inuse == 0) empty_removed(c);
  // The slot index by multiply-shift (as slot_index does): exact for every multiple of the
  // stride inside the slab, so an offset that is not one shows as idx * size != off.
  auto idx = static_cast<std::uint32_t>((std::uint64_t{off} * c->reciprocal) >> 32);
  if (__builtin_expect(off >= slab_bytes || idx * c->size != off, 0)) {
    report({ErrorKind::kCorruption, "kmalloc", base + (off == kNoObject ? 0 : off), c->name, c->size,
            "slab free list points outside its slab (use after free?)"});
  } else if (__builtin_expect(!slot_free(c, head, idx), 0)) {
    report({ErrorKind::kCorruption, "kmalloc", base + off, c->name, c->size,
            "slab free list points at an object in use (use after free?)"});
  }
  head->lru.freelist = get_link(c, base + off);
  head->lru.inuse++;
  c->free_in_slabs.store(c->free_in_slabs.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  if (head->lru.inuse == head->lru.objects) {
    list_del(&c->partial, head);
    c->nr_partial--;
    list_add(&c->full, head);
    c->nr_full++;
  } else if (__builtin_expect(head->lru.freelist == kNoObject, 0)) {
    report({ErrorKind::kCorruption, "kmalloc", base, c->name, c->size,
            "slab free list ends before its free objects do (use after free?)"});
  }
  return base + off;
}

bool SlabAllocator::free_central_locked(KmemCache* c, Page* head, unsigned idx) {
  char* base = static_cast<char*>(phys_->page_address(head));
  bool was_full = head->lru.inuse == head->lru.objects;
  link_free_locked(c, head, base + std::size_t{idx} * c->size, idx * c->size);
  return settle_slab_locked(c, head, was_full, 1);
}

// Kept: min_partial a cache, and beyond them while every cache's kept empty slabs stay within
// empty_keep_bytes (read without the other caches' locks: a budget, not an invariant, which a
// slab a cache at once may pass). When other caches hold the budget, theirs go back to the
// page allocator first (try-locks only: c's is held): the cache a program frees now is the
// one whose slabs it is likely to want again, and slabs an earlier phase left would otherwise
// hold the budget until the purge round, which a busy program never reaches.
bool SlabAllocator::keep_empty_locked(KmemCache* c) {
  if (c->nr_empty < cfg_.min_partial) return true;
  const std::uint64_t bytes = std::uint64_t{kPageSize} << c->order;
  std::uint64_t kept = kept_empty_bytes_.load(std::memory_order_relaxed);
  if (kept + bytes <= cfg_.empty_keep_bytes) return true;
  if (kept <= kept_bytes_of(c) || shrink_empty(c, /*try_only=*/true) == 0) return false;
  return kept_empty_bytes_.load(std::memory_order_relaxed) + bytes <= cfg_.empty_keep_bytes;
}

// After `freed` objects went back to head: the cache's count, and the slab's list (full to
// partial; an empty one kept or given back: true).
bool SlabAllocator::settle_slab_locked(KmemCache* c, Page* head, bool was_full, unsigned freed) {
  c->free_in_slabs.store(c->free_in_slabs.load(std::memory_order_relaxed) + freed, std::memory_order_relaxed);
  if (was_full) {
    list_del(&c->full, head);
    c->nr_full--;
    list_add(&c->partial, head);
    c->nr_partial++;
  }
  if (head->lru.inuse == 0) {
    if (!keep_empty_locked(c)) {
      list_del(&c->partial, head);
      c->nr_partial--;
      discard_slab(c, head);
      return true;
    }
    empty_added(c);
  }
  return false;
}

bool SlabAllocator::free_slot_locked(KmemCache* c, Page* head, unsigned idx) {
  store_owner(owner_slot(c, head, idx), kOwnerFree);
  return free_claimed_slot_locked(c, head, idx);
}

bool SlabAllocator::free_claimed_slot_locked(KmemCache* c, Page* head, unsigned idx) {
  if (c->debug)
    debug_on_free(c, static_cast<char*>(phys_->page_address(head)) + std::size_t{idx} * c->size, "gc_process");
  if (c->tc_slot != 0xFF) return free_owned_slot(c, head, idx * c->size, nullptr, /*locked=*/true);
  return free_central_locked(c, head, idx);
}

// Frees of a cache without tc_slot: straight into the slab, or — in a debug cache — through the
// red-zone check, the poison and the quarantine. The owner byte is already cleared.
owner_t SlabAllocator::free_unbuffered(KmemCache* c, Page* head, unsigned idx, const void* p, owner_t owner,
                                       const char* action) {
  if (c->debug) {
    debug_on_free(c, const_cast<char*>(static_cast<const char*>(p)), action);
    if (c->debug & kDebugQuarantine) {
      quarantine_push(c, const_cast<void*>(p));
      return owner;
    }
  }
  LockGuard g(c->lock);
  free_central_locked(c, head, idx);
  return owner;
}

// --- debug caches ---------------------------------------------------------------------------

void SlabAllocator::debug_init_slot(const KmemCache* c, char* obj) {
  if (c->debug & kDebugPoison) {
    std::memset(obj, kPoisonFree, c->object_size - 1);
    obj[c->object_size - 1] = static_cast<char>(kPoisonEnd);
  }
  if (c->debug & kDebugRedzone) std::memset(obj + c->object_size, kRedInactive, c->fp_offset - c->object_size);
}

std::size_t SlabAllocator::asked_size(const KmemCache* c, const void* p) const {
  if ((c->debug & kDebugOrigSize) == 0) return c->object_size;
  std::uint32_t asked;
  std::memcpy(&asked, static_cast<const char*>(p) + c->fp_offset + 4, sizeof asked);
  return asked <= c->object_size ? asked : c->object_size;
}

// A freed object's poison, checked where it is taken again and where it leaves the quarantine
// (a slab given back whole would otherwise lose the evidence of a write after free).
void SlabAllocator::check_poison(const KmemCache* c, const char* obj, const char* action) {
  std::size_t bad = first_not(obj, c->object_size - 1, kPoisonFree);
  if (bad == c->object_size - 1 && static_cast<std::uint8_t>(obj[bad]) == kPoisonEnd) bad = c->object_size;
  if (bad != c->object_size) {
    StackText<128> why;
    why.str("object written after it was freed (use after free): poison changed at byte ").u(bad);
    report({ErrorKind::kCorruption, action, obj, c->name, c->object_size, why.data()});
  }
}

void SlabAllocator::debug_on_alloc(const KmemCache* c, char* obj, std::size_t asked) {
  if (c->debug & kDebugPoison) check_poison(c, obj, "kmalloc");
  if (c->debug & kDebugRedzone) {
    std::size_t rz = c->fp_offset - c->object_size;
    std::size_t bad = first_not(obj + c->object_size, rz, kRedInactive);
    if (bad != rz) {
      StackText<128> why;
      why.str("red zone of a free object overwritten at byte ")
          .u(c->object_size + bad)
          .str(" (overflow from the slot before?)");
      report({ErrorKind::kCorruption, "kmalloc", obj, c->name, c->object_size, why.data()});
    }
    if (asked == 0 || asked > c->object_size || (c->debug & kDebugOrigSize) == 0) asked = c->object_size;
    std::memset(obj + asked, kRedActive, c->fp_offset - asked);
  }
  if (c->debug & kDebugOrigSize) keep_asked(c, obj, asked);
}

// The size asked for, after the red zone, and its complement in the link word (unused while
// the slot is allocated): an overflow past the red zone that rewrites the size — with its
// own fill byte, or zeros — no longer passes as a smaller block (debug_on_free checks both).
void SlabAllocator::keep_asked(const KmemCache* c, char* obj, std::size_t asked) {
  auto a = static_cast<std::uint32_t>(asked);
  std::uint32_t check = ~a;
  std::memcpy(obj + c->fp_offset + 4, &a, sizeof a);
  std::memcpy(obj + c->fp_offset, &check, sizeof check);
}

void SlabAllocator::debug_on_free(const KmemCache* c, char* obj, const char* action) {
  if (c->debug & kDebugOrigSize) {
    std::uint32_t asked, check;
    std::memcpy(&asked, obj + c->fp_offset + 4, sizeof asked);
    std::memcpy(&check, obj + c->fp_offset, sizeof check);
    if (check != ~asked || asked > c->object_size) {
      report({ErrorKind::kCorruption, action, obj, c->name, c->object_size,
              "the size kept after the red zone was overwritten (buffer overflow past the red zone)"});
    }
  }
  if (c->debug & kDebugRedzone) {
    std::size_t asked = asked_size(c, obj);
    std::size_t rz = c->fp_offset - asked;
    std::size_t bad = first_not(obj + asked, rz, kRedActive);
    if (bad != rz) {
      StackText<160> why;
      why.str("red zone overwritten (buffer overflow): byte ").u(asked + bad).str(" of a block of ").u(asked);
      why.str(" bytes was written");
      report({ErrorKind::kCorruption, action, obj, c->name, asked, why.data()});
    }
  }
  debug_init_slot(c, obj);
}

bool SlabAllocator::resize_in_place(KmemCache* c, void* p, std::size_t new_size) {
  if (new_size > c->object_size) return false;
  if ((c->debug & kDebugOrigSize) == 0) return true;
  char* obj = static_cast<char*>(p);
  std::size_t old = asked_size(c, obj);
  // The bytes between the old and the new size become object (grow) or red zone (shrink).
  if (new_size < old) std::memset(obj + new_size, kRedActive, old - new_size);
  keep_asked(c, obj, new_size);
  return true;
}

void SlabAllocator::quarantine_push(KmemCache* c, void* p) {
  void* const p_in = p;  // poisoned just now (debug_on_free): no time for a write after free
  // Evicted objects are freed after q_lock_ is dropped: no cache lock nests inside it.
  void* evicted[16];
  unsigned n_evicted = 0;
  for (;;) {
    {
      LockGuard g(q_lock_);
      while (n_evicted < 16 && q_count_ != 0 &&
             (q_count_ == q_cap_ || q_bytes_ + c->size > cfg_.hardening.quarantine_bytes)) {
        void* old = q_ring_[q_head_];
        q_head_ = (q_head_ + 1) % q_cap_;
        __atomic_store_n(&q_count_, q_count_ - 1, __ATOMIC_RELAXED);
        KmemCache* oc = &caches_[phys_->compound_head(phys_->virt_to_page(old))->cache_id];
        __atomic_store_n(&q_bytes_, q_bytes_ - oc->size, __ATOMIC_RELAXED);
        evicted[n_evicted++] = old;
      }
      bool fits = q_count_ < q_cap_ && q_bytes_ + c->size <= cfg_.hardening.quarantine_bytes;
      if (fits) {
        q_ring_[(q_head_ + q_count_) % q_cap_] = p;
        __atomic_store_n(&q_count_, q_count_ + 1, __ATOMIC_RELAXED);
        __atomic_store_n(&q_bytes_, q_bytes_ + c->size, __ATOMIC_RELAXED);
        p = nullptr;
      } else if (q_count_ == 0) {
        // An object larger than the whole quarantine goes straight back.
        evicted[n_evicted++] = p;
        p = nullptr;
      }
    }
    for (unsigned i = 0; i < n_evicted; ++i) {
      Page* head = phys_->compound_head(phys_->virt_to_page(evicted[i]));
      KmemCache* oc = &caches_[head->cache_id];
      if ((oc->debug & kDebugPoison) && evicted[i] != p_in) check_poison(oc, static_cast<char*>(evicted[i]), "kfree");
      LockGuard g(oc->lock);
      free_central_locked(oc, head, slot_index(oc, head, evicted[i]));
    }
    n_evicted = 0;
    if (p == nullptr) return;
  }
}

void SlabAllocator::quarantine_flush() {
  if (q_ring_ == nullptr) return;
  for (;;) {
    void* batch[32];
    unsigned n = 0;
    {
      LockGuard g(q_lock_);
      while (n < 32 && q_count_ != 0) {
        void* old = q_ring_[q_head_];
        q_head_ = (q_head_ + 1) % q_cap_;
        KmemCache* oc = &caches_[phys_->compound_head(phys_->virt_to_page(old))->cache_id];
        __atomic_store_n(&q_count_, q_count_ - 1, __ATOMIC_RELAXED);
        __atomic_store_n(&q_bytes_, q_bytes_ - oc->size, __ATOMIC_RELAXED);
        batch[n++] = old;
      }
    }
    if (n == 0) return;
    for (unsigned i = 0; i < n; ++i) {
      Page* head = phys_->compound_head(phys_->virt_to_page(batch[i]));
      KmemCache* oc = &caches_[head->cache_id];
      if (oc->debug & kDebugPoison) check_poison(oc, static_cast<char*>(batch[i]), "kfree");
      LockGuard g(oc->lock);
      free_central_locked(oc, head, slot_index(oc, head, batch[i]));
    }
  }
}

// One object of c by the general paths (no locks held on entry or return): this thread's slab
// refilled, or the cache's partial list under its lock. Null: no memory.
void* SlabAllocator::take_slow(KmemCache* c, gfp_t gfp) {
  ThreadCache* tc = c->tc_slot != 0xFF ? thread_cache() : nullptr;
  if (tc == nullptr) {
    LockGuard g(c->lock);
    return alloc_central_locked(c, gfp);
  }
  if (!owned_refill(c, tc, gfp)) return nullptr;
  OwnedSlabs& o = tc->own[c->tc_slot];
  Page* head = o.cur;
  char* p = o.base + head->lru.freelist;
  head->lru.freelist = get_link(c, p);
  head->lru.inuse++;
  return p;
}

// The allocation slow path: this thread's slab of c has no free object (refill), the link
// it holds is bad (reported), this is the thread's first allocation, or c has no tc_slot.
void* SlabAllocator::alloc_slow(KmemCache* c, gfp_t gfp, owner_t owner, std::size_t asked) {
  // failslab (Linux's should_failslab): every allocation comes here while it is on (the
  // fast path reads alloc_tc_slot, 0xFF then), so every kmem_cache_alloc/kmalloc is a call.
  if (__builtin_expect(!(gfp & __GFP_NOFAIL) && fault_should_fail(FaultPoint::kSlab, c->object_size, c->name), 0))
    return nullptr;
  void* p = take_slow(c, gfp);
  if (p == nullptr && reclaim_quarantine()) p = take_slow(c, gfp);
  if (p == nullptr) return nullptr;
  if (c->debug) debug_on_alloc(c, static_cast<char*>(p), asked);
  mark_allocated(c, p, owner);
  // Zero what was asked for: in a red-zoned cache the bytes after it are red zone (the
  // engine fuzzer found kzalloc wiping them).
  if (gfp & __GFP_ZERO) std::memset(p, 0, (c->debug & kDebugOrigSize) ? asked_size(c, p) : c->object_size);
  return p;
}

bool SlabAllocator::lookup(const void* p, ObjectInfo* info) const {
  if (!phys_->owns(p)) return false;
  Page* page = phys_->virt_to_page(p);
  if (!page->is(PG_slab)) return false;
  Page* head = phys_->compound_head(page);
  if (!head->is(PG_head) || head->cache_id >= kMaxCaches) return false;
  KmemCache* c = const_cast<KmemCache*>(&caches_[head->cache_id]);
  if (!__atomic_load_n(&c->in_use, __ATOMIC_ACQUIRE)) return false;
  unsigned idx = slot_index(c, head, p);
  info->cache = c;
  info->slab = head;
  info->index = idx;
  if (idx >= c->objects) {
    info->owner = kOwnerFree;
    info->exact = false;
    return true;
  }
  info->owner = load_owner(owner_slot(c, head, idx));
  info->exact =
      static_cast<const char*>(p) == static_cast<char*>(phys_->page_address(head)) + std::size_t{idx} * c->size;
  return true;
}

// Every free of a slab object that the inline path (slab.h) did not finish: the checks that find
// every bad free, the owner byte's claim (a plain store, or the exchange that races the
// collector), then the slot back to its slab: this thread's own, another's (its remote list)
// or one owned by none (under the cache lock).
owner_t SlabAllocator::free_page_object_general(KmemCache* c, Page* page, const void* p, const char* action) {
  Page* head = phys_->compound_head(page);
  std::uint16_t cache_id = head->get_cache_id();
  if (__builtin_expect(!page->is(PG_slab) || !head->is(PG_head) || cache_id >= kMaxCaches, 0))
    return free_slow(c, page, p, action);
  KmemCache* sc = &caches_[cache_id];
  unsigned idx = slot_index(sc, head, p);
  const char* base = static_cast<const char*>(phys_->page_address(head));
  if (__builtin_expect((c != nullptr && c != sc) || idx >= sc->objects || p != base + std::size_t{idx} * sc->size, 0))
    return free_slow(c, page, p, action);
  owner_t* slot = owner_slot(sc, head, idx);
  owner_t owner = __atomic_load_n(slot, __ATOMIC_RELAXED);
  if (__builtin_expect(owner == kOwnerFree, 0)) return free_slow(c, page, p, action);
  ThreadCache* tc = sc->tc_slot != 0xFF ? thread_cache() : nullptr;
  if (__builtin_expect(owner == kOwnerKernel, 1)) {
    // The collector never takes the kernel's objects: a plain store suffices.
    __atomic_store_n(slot, kOwnerFree, __ATOMIC_RELAXED);
  } else if (!free_module_object_plain(tc, slot, owner)) {
    // A module's object that a collector pass may be reclaiming at this very moment (its
    // module is gone, or this thread cannot take part in the fence): claim it with an
    // exchange, as the collector does (claim_slot); the loser of the race finds it free —
    // here, a free of memory the protector already reclaimed.
    owner = __atomic_exchange_n(slot, kOwnerFree, __ATOMIC_ACQ_REL);
    if (__builtin_expect(owner == kOwnerFree, 0)) return free_slow(c, page, p, action);
  }
  if (sc->tc_slot != 0xFF) {
    free_owned_slot(sc, head, idx * sc->size, tc, /*locked=*/false);
    return owner;
  }
  return free_unbuffered(sc, head, idx, p, owner, action);
}

owner_t SlabAllocator::free(KmemCache* c, const void* p, const char* action) {
  if (!phys_->owns(p)) {
    report({ErrorKind::kForeignPointer, action, p, c ? c->name : nullptr, 0, "not inside this machine's memory"});
    return kOwnerFree;
  }
  return free_page_object(c, phys_->virt_to_page(p), p, action);
}

// Every free the fast path did not take: it names what is wrong. Returns kOwnerFree (refused).
owner_t SlabAllocator::free_slow(KmemCache* c, Page* page, const void* p, const char* action) {
  Page* head = phys_->compound_head(page);
  if (!page->is(PG_slab) || !head->is(PG_head) || head->cache_id >= kMaxCaches) {
    report({ErrorKind::kInvalidFree, action, p, c ? c->name : nullptr, 0, "not a slab object"});
    return kOwnerFree;
  }
  KmemCache* sc = &caches_[head->cache_id];
  if (c != nullptr && c != sc) {
    StackText<96> why;
    why.str("object belongs to ").str(sc->name);
    report({ErrorKind::kWrongCache, action, p, c->name, c->object_size, why.data()});
    return kOwnerFree;
  }
  unsigned idx = slot_index(sc, head, p);
  const char* base = static_cast<const char*>(phys_->page_address(head));
  if (idx >= sc->objects || p != base + std::size_t{idx} * sc->size) {
    report({ErrorKind::kInvalidFree, action, p, sc->name, sc->object_size, "pointer is not the start of an object"});
    return kOwnerFree;
  }
  report({ErrorKind::kDoubleFree, action, p, sc->name, sc->object_size, nullptr});
  return kOwnerFree;
}

bool SlabAllocator::set_owner(const void* p, owner_t owner) {
  ObjectInfo info;
  if (!lookup(p, &info) || !info.exact || info.owner == kOwnerFree) return false;
  // A compare-and-swap from the owner read, never a plain store: a pass may claim a gone
  // module's object (claim_slot) and free it between the read and the store, and the store
  // would then make a free slot live again, for a later kfree to free twice. Of the two
  // exactly one wins: the pass's claim finds another owner, or the swap finds the slot free.
  owner_t* slot = owner_slot(info.cache, info.slab, info.index);
  owner_t seen = info.owner;
  while (!__atomic_compare_exchange_n(slot, &seen, owner, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
    if (seen == kOwnerFree) return false;  // claimed (freed or reclaimed) meanwhile
  return true;
}

void SlabAllocator::set_fast_gen(bool slow) {
  __atomic_store_n(&fast_gen_, slow ? kNoHeapGen : heap_gen_, __ATOMIC_RELAXED);
}

void SlabAllocator::route_faults(bool slow) {
  LockGuard g(registry_lock_);
  for (auto& c : caches_) {
    if (__atomic_load_n(&c.in_use, __ATOMIC_ACQUIRE))
      __atomic_store_n(&c.alloc_tc_slot, slow ? std::uint8_t{0xFF} : c.tc_slot, __ATOMIC_RELAXED);
  }
  set_fast_gen(slow);
  if (route_observer_ != nullptr) route_observer_(slow);
}

void SlabAllocator::set_route_observer(RouteObserver fn) {
  LockGuard g(registry_lock_);
  route_observer_ = fn;
  if (fn != nullptr) fn(fault_enabled(FaultPoint::kSlab));
}

bool SlabAllocator::check_cache(KmemCache* c, TextSink* why) {
  LockGuard g(c->lock);
  std::uint64_t slabs = 0, free_objs = 0, empty = 0;
  pfn_t lists[2] = {c->partial, c->full};
  for (int which = 0; which < 2; ++which) {
    pfn_t prev = kNoPfn;
    for (pfn_t pfn = lists[which]; pfn != kNoPfn;) {
      Page* head = phys_->pfn_to_page(pfn);
      if (!head->is(PG_slab) || !head->is(PG_head) || head->cache_id != c->id || head->lru.prev != prev ||
          slab_state(head) != kSlabUnowned) {
        if (why) why->str(c->name).str(": slab ").u(pfn).str(" has a bad descriptor or link");
        return false;
      }
      char* base = static_cast<char*>(phys_->page_address(head));
      unsigned nfree = 0;
      for (std::uint32_t off = head->lru.freelist; off != kNoObject;) {
        if (off & kLazyLink) {  // the unthreaded run: every slot below the frontier is free
          off = lazy_frontier(off);
          if (off == 0 || off % c->size != 0 || off / c->size > c->objects) {
            if (why) why->str(c->name).str(": slab ").u(pfn).str(" unthreaded run below bad offset ").u(off);
            return false;
          }
          for (std::uint32_t i = 0; i < off / c->size; ++i, ++nfree) {
            if (load_owner(owner_slot(c, head, i)) != kOwnerFree) {
              if (why) why->str(c->name).str(": unthreaded slot ").u(i).str(" of slab ").u(pfn).str(" has an owner");
              return false;
            }
          }
          break;
        }
        if (off % c->size != 0 || off / c->size >= c->objects || nfree > c->objects) {
          if (why) why->str(c->name).str(": slab ").u(pfn).str(" free list broken at offset ").u(off);
          return false;
        }
        if (load_owner(owner_slot(c, head, off / c->size)) != kOwnerFree) {
          if (why) why->str(c->name).str(": free slot ").u(off / c->size).str(" of slab ").u(pfn).str(" has an owner");
          return false;
        }
        if (c->debug & (kDebugPoison | kDebugRedzone)) {
          const char* obj = base + off;
          bool poison_ok = (c->debug & kDebugPoison) == 0 ||
                           (first_not(obj, c->object_size - 1, kPoisonFree) == c->object_size - 1 &&
                            static_cast<std::uint8_t>(obj[c->object_size - 1]) == kPoisonEnd);
          bool red_ok = (c->debug & kDebugRedzone) == 0 ||
                        first_not(obj + c->object_size, c->fp_offset - c->object_size, kRedInactive) ==
                            c->fp_offset - c->object_size;
          if (!poison_ok || !red_ok) {
            if (why)
              why->str(c->name)
                  .str(": free slot ")
                  .u(off / c->size)
                  .str(" of slab ")
                  .u(pfn)
                  .str(poison_ok ? " has a damaged red zone" : " lost its poison (written after free)");
            return false;
          }
        }
        ++nfree;
        off = get_link(c, base + off);
      }
      if (nfree + head->lru.inuse != c->objects || head->lru.objects != c->objects) {
        if (why)
          why->str(c->name)
              .str(": slab ")
              .u(pfn)
              .str(" counts ")
              .u(head->lru.inuse)
              .str(" in use + ")
              .u(nfree)
              .str(" free != ")
              .u(c->objects);
        return false;
      }
      if (which == 1 && nfree != 0) {
        if (why) why->str(c->name).str(": slab ").u(pfn).str(" on the full list has free slots");
        return false;
      }
      if (which == 0 && nfree == 0) {
        if (why) why->str(c->name).str(": slab ").u(pfn).str(" on the partial list is full");
        return false;
      }
      unsigned npages = 1u << c->order;
      for (unsigned i = 1; i < npages; ++i) {
        if (!head[i].is(PG_tail) || head[i].tail_head() != pfn) {
          if (why) why->str(c->name).str(": tail ").u(i).str(" of slab ").u(pfn).str(" does not point to its head");
          return false;
        }
      }
      if (c->tc_slot != 0xFF && !owned_geometry_ok(c, head)) {
        if (why) why->str(c->name).str(": slab ").u(pfn).str(" holds a copy of its cache's geometry that differs");
        return false;
      }
      if (head->lru.inuse == 0) ++empty;
      free_objs += nfree;
      ++slabs;
      prev = pfn;
      pfn = head->lru.next;
    }
  }
  if (slabs + c->nr_owned != c->nr_slabs.load() || free_objs != c->free_in_slabs.load() || empty != c->nr_empty ||
      slabs != c->nr_partial + c->nr_full) {
    if (why)
      why->str(c->name)
          .str(": counters disagree with the slabs (slabs ")
          .u(slabs)
          .str(" vs ")
          .u(c->nr_slabs.load())
          .str(", free ")
          .u(free_objs)
          .str(" vs ")
          .u(c->free_in_slabs.load())
          .str(")");
    return false;
  }
  return true;
}

bool SlabAllocator::check_invariants(TextSink* why) {
  std::uint64_t kept = 0;
  for (unsigned i = 0; i < kMaxCaches; ++i) {
    KmemCache* c = &caches_[i];
    if (!__atomic_load_n(&c->in_use, __ATOMIC_ACQUIRE)) continue;
    if (!check_cache(c, why)) return false;
    LockGuard g(c->lock);
    kept += kept_bytes_of(c);
  }
  // Quiescent callers only (tests, fsck): the caches are summed one lock at a time.
  if (kept != kept_empty_bytes()) {
    if (why)
      why->str("slab: the caches keep ").u(kept).str(" bytes of empty slabs, the count says ").u(kept_empty_bytes());
    return false;
  }
  return true;
}

}  // namespace kmm

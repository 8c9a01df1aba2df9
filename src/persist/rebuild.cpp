// kmm/persist/rebuild.cpp — rebuild: everything derived, recomputed at every attach from
// what is authoritative. The essay is docs/PERSISTENCE.md; in short:
//
// Crash consistency by reconstruction, not by logging. What is authoritative lives in
// mem_map and in the slabs' owner bytes and is written in an order that keeps it meaningful
// at every instruction: a frame's role (PG_slab|PG_head + cache_id, PG_large|PG_head +
// nr_pages + owner, PG_vmalloc) is published by the head's flags, written last when a block
// is made and first when it is given back; an object is allocated exactly when its owner
// byte is non-zero, written after the object left its free list and cleared before it goes
// back. Everything else — buddy free lists and counters, slab free lists, in-use counts,
// partial/full lists and counters, thread caches, locks, the collector's pass state — is
// derived, and KernelImage::rebuild recomputes it from the authoritative part:
//   pass 0  frames outside the zone: boot memory reserved, beyond it no role;
//   pass 1  roles: a head whose tails do not all point back to it, a PG_large head with no
//           owner, a slab head of an unknown cache, an orphan tail — half-written by a crash
//           — is cleared (its frames become free); per-boot frames (thread caches, scan
//           bitmaps, page tables and frames of modelled processes) are given back;
//   pass 2  vmalloc: the area list is validated (records live, frame arrays live, frames
//           PG_vmalloc and claimed once); PG_vmalloc frames no area claims are freed;
//   pass 3  slabs: every valid slab is adopted by its cache, its free list rebuilt from its
//           owner bytes (0 = free); empty slabs are freed; orphan vmap_area records freed;
//   pass 4  buddy: every frame of the zone with no role is free; lists rebuilt.
// The parts' own pieces (BuddyZone::rebuild, SlabAllocator::rebuild_begin / adopt_slab,
// Vmalloc::revive) are defined here too: they are declared with their classes, and only an
// attach calls them.
//
// Depends on: kernel/ (and the layers below it), persist/attach.h. Never allocates.
// Invariant: after rebuild, every frame of the zone is free exactly when no block holds it
// (fsck checks it, as does Kernel::check_invariants).
#include <cstring>
#include <new>

#include "base/fault_inject.h"
#include "persist/attach.h"
#include "slab/thread_cache.h"

namespace kmm {
namespace {

// Marks a vmalloc frame claimed by a listed area while the list is validated (refcount).
constexpr std::uint32_t kVmallocClaim = 0xC1A1u;

void clear_frame(Page* p) {
  p->set_flags(0);
  p->set_order(0);
  p->owner = kOwnerFree;
  p->refcount = 0;
  p->cache_id = 0;
  p->lru.next = p->lru.prev = kNoPfn;
}

bool tails_point_back(PhysMem& ph, pfn_t head, pfn_t n, std::uint32_t kind) {
  for (pfn_t i = 1; i < n; ++i) {
    const Page* t = ph.pfn_to_page(head + i);
    if (t->get_flags() != (kind | PG_tail) || t->tail_head() != head) return false;
  }
  return true;
}

// The frames of the whole block whose head is p (a slab of a known cache, or a page-level
// block with an owner), every tail pointing back to it; 0 when the head is half-written.
pfn_t whole_block(PhysMem& ph, SlabAllocator& slab, Page* p, pfn_t pfn, pfn_t end) {
  std::uint32_t f = p->get_flags();
  if (f & PG_slab) {
    KmemCache* c = slab.cache(p->cache_id);
    if (c == nullptr) return 0;
    pfn_t n = pfn_t{1} << c->order;
    bool ok = p->get_order() == c->order && n <= end - pfn && (((pfn - ph.base_pfn()) & (n - 1)) == 0) &&
              ((f & PG_offslab_owners) != 0) == c->offslab_owners &&
              (f & ~std::uint32_t{PG_slab | PG_head | PG_offslab_owners}) == 0 && tails_point_back(ph, pfn, n, PG_slab);
    return ok ? n : 0;
  }
  pfn_t n = p->lru.nr_pages;
  bool ok = n >= 1 && n <= end - pfn && p->owner != kOwnerFree &&
            (f & ~std::uint32_t{PG_large | PG_head | PG_pages}) == 0 && tails_point_back(ph, pfn, n, PG_large);
  return ok ? n : 0;
}

}  // namespace

// --- the parts' pieces --------------------------------------------------------------------

void BuddyZone::rebuild(PhysMem* phys) {
  pfn_t s = start_, e = end_;
  std::uint64_t managed = managed_pages_;
  Watermarks w = wmark_;
  new (this) BuddyZone();  // vtable of this build, free lock, empty lists
  phys_ = phys;
  start_ = s;
  end_ = e;
  managed_pages_ = managed;
  wmark_ = w;
  pfn_t pfn = s;
  while (pfn < e) {
    if (phys_->pfn_to_page(pfn)->get_flags() != 0) {
      ++pfn;
      continue;
    }
    pfn_t run_end = pfn;
    while (run_end < e && phys_->pfn_to_page(run_end)->get_flags() == 0) ++run_end;
    while (pfn < run_end) {
      unsigned order = kMaxOrder;
      while (order > 0 && ((index(pfn) & ((pfn_t{1} << order) - 1)) != 0 || pfn + (pfn_t{1} << order) > run_end))
        --order;
      free_locked(pfn, order);
      pfn += pfn_t{1} << order;
    }
  }
}

void SlabAllocator::rebuild_begin() {
  new (&registry_lock_) SpinLock();
  new (&tc_list_lock_) SpinLock();
  tc_list_ = nullptr;
  slab_pages_.store(0, std::memory_order_relaxed);
  kept_empty_bytes_.store(0, std::memory_order_relaxed);  // settle_slab_locked counts them again
  for (auto& c : caches_) {
    new (&c.lock) SpinLock();
    c.partial = c.full = kNoPfn;
    c.nr_partial = c.nr_full = c.nr_empty = 0;
    c.nr_owned = 0;  // the last process's threads are gone: adopt_slab makes every slab owned by none
    c.nr_slabs.store(0, std::memory_order_relaxed);
    c.free_in_slabs.store(0, std::memory_order_relaxed);
  }
  for (auto& w : tc_ids_) w = 0;
  for (auto& h : remote_hint_) h = 0;
  if (cfg_.thread_caches) tc_register_heap(this, &heap_id_, &heap_gen_);
  fence_ok_ = cfg_.thread_caches && register_process_barrier();
  route_faults(fault_enabled(FaultPoint::kSlab));  // the file holds the last process's routing
}

unsigned SlabAllocator::adopt_slab(KmemCache* c, Page* head) {
  char* base = static_cast<char*>(phys_->page_address(head));
  unsigned inuse = 0;
  std::uint32_t next = kNoObject;
  for (unsigned i = c->objects; i-- > 0;) {
    if (__atomic_load_n(owner_slot(c, head, i), __ATOMIC_RELAXED) != kOwnerFree) {
      ++inuse;
      continue;
    }
    std::uint32_t off = i * c->size;
    set_link(c, base + off, next);  // the free link, encoded as the cache stores it
    next = off;
  }
  if (inuse == 0) return 0;
  // The free fast path's copy of the geometry (slab.h): derived from the cache, as the
  // cache's reciprocal is at attach, never trusted from the file.
  if (c->tc_slot != 0xFF) set_owned_geometry(c, head);
  // Owned by none: a thread of the last process may have owned it (its free and remote lists
  // are rebuilt above from the owner bytes, which are all that counts).
  __atomic_store_n(slab_state_word(head), kSlabUnowned, __ATOMIC_RELAXED);
  head->lru.freelist = next;
  head->lru.inuse = static_cast<std::uint16_t>(inuse);
  head->lru.objects = c->objects;
  c->nr_slabs.fetch_add(1, std::memory_order_relaxed);
  c->free_in_slabs.fetch_add(c->objects - inuse, std::memory_order_relaxed);
  slab_pages_.fetch_add(1u << c->order, std::memory_order_relaxed);
  if (inuse == c->objects) {
    list_add(&c->full, head);
    c->nr_full++;
  } else {
    list_add(&c->partial, head);
    c->nr_partial++;
  }
  return inuse;
}

std::uint64_t Vmalloc::revive() {
  Kmalloc* km = kmalloc_;
  KmemCache* ac = area_cache_;
  PhysMem* ph = phys_;
  std::uint64_t s = start_, e = end_;
  VmArea* first = head_;
  new (this) Vmalloc();  // vtable of this build, free lock
  kmalloc_ = km;
  area_cache_ = ac;
  phys_ = ph;
  start_ = s;
  end_ = e;
  head_ = first;
  std::uint64_t at = start_, used = 0, dropped = 0;
  VmArea** link = &head_;
  for (VmArea* a = head_; a != nullptr; a = a->next) {
    SlabAllocator::ObjectInfo info;
    bool ok = phys_->owns(a) && km->slab()->lookup(a, &info) && info.cache == ac && info.exact &&
              info.owner != kOwnerFree && a->addr >= at && a->addr < end_ &&
              a->size == (std::uint64_t{a->nr_pages} + 1) * kPageSize && a->size <= end_ - a->addr &&
              a->nr_pages != 0 && phys_->owns(a->pages) && km->owner_of(a->pages) != kOwnerFree &&
              km->ksize(a->pages) >= std::size_t{a->nr_pages} * sizeof(pfn_t);
    std::uint32_t marked = 0;
    for (; ok && marked < a->nr_pages; ++marked) {
      pfn_t pfn = a->pages[marked];
      if (!phys_->pfn_valid(pfn)) break;
      Page* p = phys_->pfn_to_page(pfn);
      if (p->get_flags() != PG_vmalloc || p->refcount == kVmallocClaim) break;
      p->refcount = kVmallocClaim;
    }
    if (!ok || marked != a->nr_pages) {
      for (std::uint32_t i = 0; i < marked; ++i) phys_->pfn_to_page(a->pages[i])->refcount = 1;
      *link = nullptr;  // keep the valid prefix; what follows cannot be trusted
      dropped = 1;
      break;
    }
    used += a->nr_pages;
    at = a->addr + a->size;
    link = &a->next;
  }
  used_pages_ = used;
  return dropped;
}

// --- the machine -------------------------------------------------------------------------

// Passes 0 and 1: every frame's role; returns the frames of kmalloc's large blocks.
std::uint64_t KernelImage::rebuild_roles(Kernel& k) {
  PhysMem& ph = k.phys_;
  AttachReport& rep = k.attach_;
  pfn_t start = k.zone_.start_pfn(), end = k.zone_.end_pfn();
  std::uint64_t large_pages = 0;
  // A half-written role is repaired by clearing the frame, leaving `flags` (free: 0).
  auto repair = [&rep](Page* p, std::uint32_t flags) {
    clear_frame(p);
    p->set_flags(flags);
    rep.repaired_frames++;
  };
  // Pass 0: frames outside the zone are boot memory (reserved) or beyond it (no role); the
  // collector walks them too, so a descriptor the file made up there is set right.
  for (pfn_t pfn = ph.base_pfn(); pfn < ph.online_end_pfn(); ++pfn) {
    if (pfn == start) pfn = end;
    if (pfn >= ph.online_end_pfn()) break;
    Page* p = ph.pfn_to_page(pfn);
    std::uint32_t want = pfn < start ? std::uint32_t{PG_reserved} : 0u;
    if (p->get_flags() != want || p->get_order() != 0) repair(p, want);
  }
  // Pass 1: roles.
  for (pfn_t pfn = start; pfn < end;) {
    Page* p = ph.pfn_to_page(pfn);
    std::uint32_t f = p->get_flags();
    if ((f & (PG_slab | PG_large)) && (f & PG_head)) {
      pfn_t n = whole_block(ph, k.slab_, p, pfn, end);
      if (n == 0) {
        repair(p, 0);
        ++pfn;
        continue;
      }
      if (f & PG_large) {
        rep.large_blocks++;
        if (!(f & PG_pages)) large_pages += n;
      }
      pfn += n;
      continue;
    }
    if (f == PG_vmalloc) {
      p->refcount = 1;
      ++pfn;
      continue;
    }
    if (f & PG_tail)
      rep.repaired_frames++;
    else if (f & (PG_reserved | PG_process | PG_pgtable))
      rep.dropped_frames++;
    clear_frame(p);
    ++pfn;
  }
  return large_pages;
}

// Pass 2: the vmalloc area list validated; frames no area claims are freed.
void KernelImage::rebuild_vmalloc(Kernel& k) {
  PhysMem& ph = k.phys_;
  AttachReport& rep = k.attach_;
  pfn_t start = k.zone_.start_pfn(), end = k.zone_.end_pfn();
  rep.bad_areas = k.vmalloc_.revive();
  for (const VmArea* a = k.vmalloc_.areas(); a != nullptr; a = a->next) rep.vmalloc_areas++;
  for (pfn_t pfn = start; pfn < end; ++pfn) {
    Page* p = ph.pfn_to_page(pfn);
    if (p->get_flags() != PG_vmalloc) continue;
    if (p->refcount == kVmallocClaim) {
      p->refcount = 1;
    } else {
      clear_frame(p);
      rep.orphan_vmalloc_frames++;
    }
  }
}

// Pass 3: every valid slab adopted by its cache; empty slabs and orphan area records freed.
void KernelImage::rebuild_slabs(Kernel& k) {
  PhysMem& ph = k.phys_;
  AttachReport& rep = k.attach_;
  pfn_t start = k.zone_.start_pfn(), end = k.zone_.end_pfn();
  k.slab_.rebuild_begin();
  KmemCache* area_cache = k.vmalloc_.area_cache();
  for (pfn_t pfn = start; pfn < end;) {
    Page* p = ph.pfn_to_page(pfn);
    std::uint32_t f = p->get_flags();
    if (!((f & PG_slab) && (f & PG_head))) {
      pfn += (f & PG_large) && (f & PG_head) ? p->lru.nr_pages : 1;
      continue;
    }
    KmemCache* c = k.slab_.cache(p->cache_id);
    pfn_t n = pfn_t{1} << c->order;
    if (c == area_cache) {
      // A vmap_area record that no listed area is: made or unlinked by a vmalloc/vfree cut
      // short. Its frames and frame array were handled by pass 2 / stay allocated (see docs).
      char* base = static_cast<char*>(ph.page_address(p));
      for (unsigned i = 0; i < c->objects; ++i) {
        owner_t* slot = k.slab_.owner_slot(c, p, i);
        if (*slot == kOwnerFree) continue;
        const void* obj = base + std::size_t{i} * c->size;
        bool listed = false;
        for (const VmArea* a = k.vmalloc_.areas(); a != nullptr && !listed; a = a->next) listed = a == obj;
        if (!listed) {
          __atomic_store_n(slot, kOwnerFree, __ATOMIC_RELAXED);
          rep.orphan_area_records++;
        }
      }
    }
    unsigned inuse = k.slab_.adopt_slab(c, p);
    if (inuse == 0) {
      for (pfn_t i = 0; i < n; ++i) clear_frame(p + i);
      rep.empty_slabs_freed++;
    } else {
      rep.slabs++;
      rep.objects += inuse;
    }
    pfn += n;
  }
}

void KernelImage::rebuild(Kernel& k) {
  std::uint64_t large_pages = rebuild_roles(k);
  rebuild_vmalloc(k);
  rebuild_slabs(k);
  // Pass 4: the buddy lists, from every frame of the zone with no role.
  k.zone_.rebuild(&k.phys_);
  k.slab_.set_owner_mask_orders();  // through the zone, an object of this build again
  k.kmalloc_.set_large_pages(large_pages);
  k.kmalloc_.reset_guard_cache();
}

}  // namespace kmm

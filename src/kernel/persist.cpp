// kmm/kernel/persist.cpp — persistent RAM: format, attach and rebuild, detach, the boot grace
// period, named persistent roots. The essay is docs/PERSISTENCE.md; in short:
//
// Crash consistency by reconstruction, not by logging. What is authoritative lives in
// mem_map and in the slabs' owner bytes and is written in an order that keeps it meaningful
// at every instruction: a frame's role (PG_slab|PG_head + cache_id, PG_large|PG_head +
// nr_pages + owner, PG_vmalloc) is published by the head's flags, written last when a block
// is made and first when it is given back; an object is allocated exactly when its owner
// byte is non-zero, written after the object left its free list and cleared before it goes
// back. Everything else — buddy free lists and counters, slab free lists, in-use counts,
// partial/full lists and counters, thread caches, locks, the collector's pass state — is
// derived, and rebuild() recomputes it at every attach from the authoritative part:
//   pass 1  roles: a head whose tails do not all point back to it, a PG_large head with no
//           owner, a slab head of an unknown cache, an orphan tail — half-written by a crash
//           — is cleared (its frames become free); per-boot frames (thread caches, scan
//           bitmaps, page tables and frames of modelled processes) are given back;
//   pass 2  vmalloc: the area list is validated (records live, frame arrays live, frames
//           PG_vmalloc and claimed once); PG_vmalloc frames no area claims are freed;
//   pass 3  slabs: every valid slab is adopted by its cache, its free list rebuilt from its
//           owner bytes (0 = free); empty slabs are freed; orphan vmap_area records freed;
//   pass 4  buddy: every frame of the zone with no role is free; lists rebuilt.
// Then modules that were Live become Dormant until loaded again or until the grace period
// ends (boot_complete()), and the collector is re-made with the named roots as its roots.
//
// Position: the file is always mapped at the address recorded at format, so the Kernel
// object's pointers (into RAM) stay valid; pointers out of RAM (the platform, function
// pointers, vtables of BuddyZone and Vmalloc, the log listener) are re-set here.
//
// Depends on: kernel/, pal/pal_file.h. Never allocates (heap files come from a static pool).
#include <time.h>

#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <new>

#include "base/fault_inject.h"
#include "base/text.h"
#include "kernel/kernel.h"
#include "pal/pal_file.h"
#include "slab/thread_cache.h"

namespace kmm {
namespace {

constexpr unsigned kMaxHeapFiles = 8;
FilePlatform g_files[kMaxHeapFiles];
bool g_file_used[kMaxHeapFiles];
SpinLock g_files_lock;
char g_err[320];

FilePlatform* file_acquire() {
  LockGuard g(g_files_lock);
  for (unsigned i = 0; i < kMaxHeapFiles; ++i) {
    if (!g_file_used[i]) {
      g_file_used[i] = true;
      return &g_files[i];
    }
  }
  return nullptr;
}

void file_release(FilePlatform* fp) {
  LockGuard g(g_files_lock);
  for (unsigned i = 0; i < kMaxHeapFiles; ++i)
    if (&g_files[i] == fp) g_file_used[i] = false;
}

const char* keep_error(const char* what) {
  std::snprintf(g_err, sizeof g_err, "%s", what);
  return g_err;
}

std::uint64_t mono_ns() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

constexpr std::uint32_t kVmallocClaim = 0xC1A1u;

// A bool read from a heap file holds 0 or 1 (any other byte is no bool: reading it as one is
// undefined). Read through memcpy, so the check itself reads bytes.
bool stored_bools_ok(std::initializer_list<const bool*> fields) {
  for (const bool* f : fields) {
    unsigned char b;
    std::memcpy(&b, f, 1);
    if (b > 1) return false;
  }
  return true;
}

bool hardening_bools_ok(const HardeningConfig& h) {
  return stored_bools_ok({&h.freelist_hardened, &h.redzone, &h.poison, &h.guard_pages});
}  // refcount mark while validating areas

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

}  // namespace

// The layout of everything a heap file holds that this build reads (struct sizes and
// limits): a file made by a build with another layout is refused, never misread.
std::uint64_t persist_layout_hash() {
  std::uint64_t v[] = {kHeapVersion,   sizeof(Kernel),     sizeof(Page),   sizeof(KmemCache),
                       sizeof(Module), sizeof(BootConfig), sizeof(VmArea), kMaxCaches,
                       kMaxModules,    kMaxPersistRoots,   sizeof(void*)};
  return fnv1a64(v, sizeof v);
}

// --- BuddyZone, SlabAllocator, Vmalloc, pieces of the rebuild -----------------------------

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

bool SlabAllocator::is_cache(const KmemCache* c) const {
  for (const auto& x : caches_)
    if (&x == c) return __atomic_load_n(&x.in_use, __ATOMIC_ACQUIRE);
  return false;
}

const char* SlabAllocator::reattach(PhysMem* phys, PageAllocator* zone) {
  phys_ = phys;
  zone_ = zone;
  // Runtime state, never the file's: whether this process has the barrier call is asked
  // again in rebuild_begin (a crafted byte here was once read as a bool: UBSan, fuzz heapimage).
  fence_ok_ = false;
  // The file's heap id and generation name another process's thread-cache registry: cleared
  // (generation 0: no thread cache) until rebuild_begin registers this heap.
  heap_id_ = 0;
  heap_gen_ = 0;
  set_owner_mask_orders();
  new (&q_lock_) SpinLock();
  if (!stored_bools_ok({&cfg_.thread_caches}) || !hardening_bools_ok(cfg_.hardening))
    return "the file's slab configuration holds a byte that is no bool";
  if (cfg_.hardening.debug_caches() || cfg_.hardening.guard_pages)
    return "the file's slab allocator has debug caches, which backing= never makes";
  q_ring_ = nullptr;
  q_pages_ = nullptr;
  q_cap_ = q_head_ = 0;
  q_count_ = q_bytes_ = 0;
  for (unsigned i = 0; i < kMaxCaches; ++i) {
    KmemCache& c = caches_[i];
    if (!stored_bools_ok({&c.in_use, &c.offslab_owners})) return "a cache descriptor holds a byte that is no bool";
    if (!c.in_use) continue;
    std::uint64_t slab_bytes = c.order <= kMaxOrder ? std::uint64_t{kPageSize} << c.order : 0;
    std::uint64_t owner_room = slab_bytes == 0 ? 0
                               : c.offslab_owners
                                   ? ((std::uint64_t{1} << c.order) - 1) * kTailOwnerBytes
                                   : slab_bytes - (c.owners_offset < slab_bytes ? c.owners_offset : slab_bytes);
    bool ok = c.id == i && std::memchr(c.name, 0, sizeof c.name) != nullptr && slab_bytes != 0 && c.size >= 8 &&
              c.object_size <= c.size && c.fp_offset <= c.size - sizeof(std::uint32_t) && c.objects != 0 &&
              std::uint64_t{c.objects} * c.size <= slab_bytes && c.objects <= owner_room &&
              (c.offslab_owners || c.owners_offset >= std::uint64_t{c.objects} * c.size) &&
              (c.tc_slot < kMaxTcSlots || c.tc_slot == 0xFF) &&
              (c.alloc_tc_slot < kMaxTcSlots || c.alloc_tc_slot == 0xFF) && c.tc_limit <= kMagazineCap && c.debug == 0;
    if (!ok) return "a cache descriptor does not describe slabs create() could make";
    c.reciprocal = static_cast<std::uint32_t>(((std::uint64_t{1} << 32) + c.size - 1) / c.size);
  }
  return nullptr;
}

const char* ModuleRegistry::check_stored() {
  for (Module& m : slots_) {
    if (!stored_bools_ok({&m.leaks_reported}) || std::memchr(m.name, 0, sizeof m.name) == nullptr ||
        static_cast<unsigned>(m.state) > static_cast<unsigned>(ModuleState::kDormant))
      return "a module slot of the heap file is malformed (name, state or flag): refused";
  }
  return nullptr;
}

const char* Kmalloc::reattach(SlabAllocator* slab, PhysMem* phys) {
  slab_ = slab;
  phys_ = phys;
  cfg_.guard_platform = nullptr;
  if (max_size_ > (kPageSize << kMaxOrder)) max_size_ = kPageSize << kMaxOrder;
  // A class must hold its size: a smaller cache there would hand out blocks too small.
  for (unsigned i = 0; i < kNrKmallocClasses; ++i)
    if (!slab->is_cache(classes_[i]) || classes_[i]->object_size < Kmalloc::class_size(i))
      return "a kmalloc size class is not a cache in use of its size";
  for (unsigned n = 0; n < sizeof small_index_; ++n) {
    unsigned c = 0;
    while (Kmalloc::class_size(c) < n * 8) ++c;
    small_index_[n] = static_cast<std::uint8_t>(c);
  }
  return nullptr;
}

const char* Vmalloc::reattach(Kmalloc* km, PhysMem* phys) {
  kmalloc_ = km;
  phys_ = phys;
  walk_freed_ = nullptr;
  if (!km->slab()->is_cache(area_cache_) || area_cache_->object_size < sizeof(VmArea))
    return "the vmalloc area cache is not a cache in use of its size";
  return nullptr;
}

void SlabAllocator::rebuild_begin() {
  new (&registry_lock_) SpinLock();
  new (&tc_list_lock_) SpinLock();
  tc_list_ = nullptr;
  slab_pages_.store(0, std::memory_order_relaxed);
  for (auto& c : caches_) {
    new (&c.lock) SpinLock();
    c.partial = c.full = kNoPfn;
    c.nr_partial = c.nr_full = c.nr_empty = 0;
    c.nr_slabs.store(0, std::memory_order_relaxed);
    c.free_in_slabs.store(0, std::memory_order_relaxed);
    // The depot's frame had no role flag: pass 1 of Kernel::rebuild freed it, and its
    // objects are free by their owner bytes (adopt_slab puts them on free lists).
    c.depot = nullptr;
    c.depot_batches = 0;
  }
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

// --- the kernel ------------------------------------------------------------------------

void Kernel::rebuild() {
  PhysMem& ph = phys_;
  pfn_t start = zone_.start_pfn(), end = zone_.end_pfn();
  std::uint64_t large_pages = 0;
  // Pass 0: frames outside the zone are boot memory (reserved) or beyond it (no role); the
  // collector walks them too, so a descriptor the file made up there is set right.
  for (pfn_t pfn = ph.base_pfn(); pfn < ph.online_end_pfn(); ++pfn) {
    if (pfn == start) pfn = end;
    if (pfn >= ph.online_end_pfn()) break;
    Page* p = ph.pfn_to_page(pfn);
    std::uint32_t want = pfn < start ? std::uint32_t{PG_reserved} : 0u;
    if (p->get_flags() == want && p->get_order() == 0) continue;
    clear_frame(p);
    p->set_flags(want);
    attach_.repaired_frames++;
  }
  // Pass 1: roles.
  for (pfn_t pfn = start; pfn < end;) {
    Page* p = ph.pfn_to_page(pfn);
    std::uint32_t f = p->get_flags();
    if ((f & PG_slab) && (f & PG_head)) {
      KmemCache* c = slab_.cache(p->cache_id);
      pfn_t n = c != nullptr ? pfn_t{1} << c->order : 1;
      bool ok = c != nullptr && p->get_order() == c->order && n <= end - pfn &&
                (((pfn - ph.base_pfn()) & (n - 1)) == 0) && ((f & PG_offslab_owners) != 0) == c->offslab_owners &&
                (f & ~std::uint32_t{PG_slab | PG_head | PG_offslab_owners}) == 0 &&
                tails_point_back(ph, pfn, n, PG_slab);
      if (ok) {
        pfn += n;
        continue;
      }
      clear_frame(p);
      attach_.repaired_frames++;
      ++pfn;
      continue;
    }
    if ((f & PG_large) && (f & PG_head)) {
      pfn_t n = p->lru.nr_pages;
      bool ok = n >= 1 && n <= end - pfn && p->owner != kOwnerFree &&
                (f & ~std::uint32_t{PG_large | PG_head | PG_pages}) == 0 && tails_point_back(ph, pfn, n, PG_large);
      if (ok) {
        attach_.large_blocks++;
        if (!(f & PG_pages)) large_pages += n;
        pfn += n;
        continue;
      }
      clear_frame(p);
      attach_.repaired_frames++;
      ++pfn;
      continue;
    }
    if (f == PG_vmalloc) {
      p->refcount = 1;
      ++pfn;
      continue;
    }
    if (f & PG_tail)
      attach_.repaired_frames++;
    else if (f & (PG_reserved | PG_process | PG_pgtable))
      attach_.dropped_frames++;
    clear_frame(p);
    ++pfn;
  }
  // Pass 2: vmalloc areas; frames no area claims are freed.
  attach_.bad_areas = vmalloc_.revive();
  for (const VmArea* a = vmalloc_.areas(); a != nullptr; a = a->next) attach_.vmalloc_areas++;
  for (pfn_t pfn = start; pfn < end; ++pfn) {
    Page* p = ph.pfn_to_page(pfn);
    if (p->get_flags() != PG_vmalloc) continue;
    if (p->refcount == kVmallocClaim) {
      p->refcount = 1;
    } else {
      clear_frame(p);
      attach_.orphan_vmalloc_frames++;
    }
  }
  // Pass 3: slabs.
  slab_.rebuild_begin();
  KmemCache* area_cache = vmalloc_.area_cache();
  for (pfn_t pfn = start; pfn < end;) {
    Page* p = ph.pfn_to_page(pfn);
    std::uint32_t f = p->get_flags();
    if (!((f & PG_slab) && (f & PG_head))) {
      pfn += (f & PG_large) && (f & PG_head) ? p->lru.nr_pages : 1;
      continue;
    }
    KmemCache* c = slab_.cache(p->cache_id);
    pfn_t n = pfn_t{1} << c->order;
    if (c == area_cache) {
      // A vmap_area record that no listed area is: made or unlinked by a vmalloc/vfree cut
      // short. Its frames and frame array were handled by pass 2 / stay allocated (see docs).
      char* base = static_cast<char*>(ph.page_address(p));
      for (unsigned i = 0; i < c->objects; ++i) {
        owner_t* slot = slab_.owner_slot(c, p, i);
        if (*slot == kOwnerFree) continue;
        const void* obj = base + std::size_t{i} * c->size;
        bool listed = false;
        for (const VmArea* a = vmalloc_.areas(); a != nullptr && !listed; a = a->next) listed = a == obj;
        if (!listed) {
          __atomic_store_n(slot, kOwnerFree, __ATOMIC_RELAXED);
          attach_.orphan_area_records++;
        }
      }
    }
    unsigned inuse = slab_.adopt_slab(c, p);
    if (inuse == 0) {
      for (pfn_t i = 0; i < n; ++i) clear_frame(p + i);
      attach_.empty_slabs_freed++;
    } else {
      attach_.slabs++;
      attach_.objects += inuse;
    }
    pfn += n;
  }
  // Pass 4: the buddy lists.
  zone_.rebuild(&phys_);
  kmalloc_.set_large_pages(large_pages);
  kmalloc_.reset_guard_cache();
}

void Kernel::persist_roots_register() {
  collector_.add_root(roots_, sizeof roots_);
}

Kernel* Kernel::boot_backed(const BootConfig& cfg, BootError* err) {
  if (cfg.page_alloc != PageAllocKind::kBuddy) {
    err->what = "backing= needs page_alloc=buddy (the range allocator is not rebuilt at attach)";
    return nullptr;
  }
  if (cfg.paper_table) {
    err->what = "backing= needs tracker=owner (the paper's table holds no persistent records)";
    return nullptr;
  }
  FilePlatform* fp = file_acquire();
  if (fp == nullptr) {
    err->what = "too many heap files open in this process";
    return nullptr;
  }
  FileOpenResult r = fp->open(cfg.backing, cfg.ram_bytes);
  if (r == FileOpenResult::kError) {
    err->what = keep_error(fp->error());
    file_release(fp);
    return nullptr;
  }
  if (r == FileOpenResult::kAttach) {
    Kernel* k = attach(fp, cfg, err);
    if (k == nullptr) {
      fp->close(false);
      file_release(fp);
    }
    return k;
  }
  // Format: an ordinary boot over the file's RAM, then the superblock says "ready".
  BootConfig c = cfg;
  c.platform = fp;
  c.online_bytes = 0;
  c.backing = nullptr;
  Kernel* k = boot(c, err);
  if (k == nullptr) {
    fp->close(false);
    file_release(fp);
    return nullptr;
  }
  k->backing_ = fp;
  k->persist_roots_register();
  k->attach_ = AttachReport{};
  k->attach_.boot_count = 1;
  fp->flush();
  Superblock sb = fp->superblock();
  sb.state = static_cast<std::uint32_t>(HeapState::kReady);
  sb.kernel_offset = static_cast<std::uint64_t>(reinterpret_cast<char*>(k) - fp->ram());
  sb.phys_offset = cfg.phys_offset;
  sb.layout = persist_layout_hash();
  sb.boot_count = 1;
  sb.clean = 0;
  if (!fp->write_superblock(sb)) {
    k->backing_ = nullptr;
    fp->close(false);
    file_release(fp);
    err->what = "could not write the heap file's superblock";
    return nullptr;
  }
  return k;
}

// The stored Kernel object beyond attach's first checks: the machine's shape (mem_map holds
// a descriptor for every frame; boot memory holds this object and the log ring; the zone
// lies after boot memory), the kinds backing= makes, and the pointers between its parts (re-
// set to this object's parts) and to caches (checked to be caches in use). null when usable.
const char* Kernel::check_stored(std::uint64_t kernel_offset) {
  const std::uint64_t frames = ram_size_ / kPageSize;
  const std::uint64_t boot_bytes = std::uint64_t{phys_.first_free_pfn() - phys_.base_pfn()} * kPageSize;
  if (static_cast<char*>(ram_) != phys_.base() || phys_.end_pfn() - phys_.base_pfn() != frames ||
      phys_.first_free_pfn() < phys_.base_pfn() || boot_bytes > ram_size_ || frames * sizeof(Page) > boot_bytes ||
      kernel_offset + sizeof(Kernel) > boot_bytes || zone_.start_pfn() > zone_.end_pfn())
    return "the Kernel object's RAM geometry is inconsistent (mem_map, boot memory, zone): refused";
  auto* ring = reinterpret_cast<char*>(log_ring_);
  if (log_size_ != kLogRingBytes || ring < static_cast<char*>(ram_) ||
      static_cast<std::uint64_t>(ring - static_cast<char*>(ram_)) > boot_bytes - kLogRingBytes)
    return "the Kernel object's log ring is outside boot memory: refused";
  if (!stored_bools_ok({&cfg_.paper_table, &cfg_.thread_caches, &cfg_.mmu}) || !hardening_bools_ok(cfg_.hardening))
    return "the Kernel object's configuration holds a byte that is no bool: refused";
  if (const char* why = modules_.check_stored()) return why;
  for (const PersistRoot& r : roots_)
    if (std::memchr(r.name, 0, sizeof r.name) == nullptr) return "a named root's name is not terminated: refused";
  if (cfg_.page_alloc != PageAllocKind::kBuddy || cfg_.paper_table || cfg_.hardening.debug_caches() ||
      cfg_.hardening.guard_pages)
    return "the Kernel object asks for options backing= never makes: refused";
  if (const char* why = slab_.reattach(&phys_, &zone_)) return why;
  if (const char* why = kmalloc_.reattach(&slab_, &phys_)) return why;
  if (const char* why = vmalloc_.reattach(&kmalloc_, &phys_)) return why;
  return nullptr;
}

Kernel* Kernel::attach(FilePlatform* fp, const BootConfig& cfg, BootError* err) {
  BootError dummy;
  if (err == nullptr) err = &dummy;
  const Superblock sb = fp->superblock();  // a copy: the write below replaces the current one
  if (sb.layout != persist_layout_hash()) {
    err->what = "the heap file was made by a kmm build with another layout (struct sizes differ): refused";
    return nullptr;
  }
  if (sb.kernel_offset % alignof(Kernel) != 0 || fp->ram_bytes() < sizeof(Kernel) ||
      sb.kernel_offset > fp->ram_bytes() - sizeof(Kernel)) {
    err->what = "the superblock's kernel offset is outside RAM";
    return nullptr;
  }
  // kernel_offset is page aligned (boot memory): through void* so 32-bit -Wcast-align agrees.
  auto* k = static_cast<Kernel*>(static_cast<void*>(fp->ram() + sb.kernel_offset));
  if (k->ram_ != fp->ram() || k->ram_size_ != fp->ram_bytes() || k->phys_.base() != fp->ram() ||
      k->phys_.size() != fp->ram_bytes() || reinterpret_cast<char*>(k->phys_.mem_map()) != fp->ram() ||
      k->pages_ != &k->zone_ || k->zone_.start_pfn() < k->phys_.first_free_pfn() ||
      k->zone_.end_pfn() > k->phys_.online_end_pfn() || k->phys_.online_end_pfn() > k->phys_.end_pfn()) {
    err->what = "the Kernel object in the heap file does not describe this file: refused";
    return nullptr;
  }
  // The rest of the object is checked too, before anything is written: a heap file is input
  // from outside, and its checksum only proves that the superblock is whole (docs/SECURITY.md).
  if (const char* why = k->check_stored(sb.kernel_offset)) {
    keep_error(why);
    err->what = g_err;
    return nullptr;
  }
  std::uint64_t t0 = mono_ns();
  if (!fp->read_only()) {
    // Not clean from here on: the superblock says so before the first store into RAM.
    Superblock next = sb;
    next.boot_count = sb.boot_count + 1;
    next.clean = 0;
    if (!fp->write_superblock(next)) {
      err->what = "could not write the heap file's superblock";
      return nullptr;
    }
  }
  std::uint64_t was_clean = sb.clean, boots = sb.boot_count;
  fp->reserve(static_cast<std::size_t>(fp->ram_bytes()), kPageSize);  // marks the RAM handed out
  k->platform_ = fp;
  k->backing_ = fp;
  k->cfg_.platform = nullptr;
  k->cfg_.backing = nullptr;
  // Runtime knobs come from this boot; the machine's shape (RAM, kmalloc policy...) from the file.
  k->cfg_.protector = cfg.protector;
  k->cfg_.gc_delay_ns = cfg.gc_delay_ns;
  k->cfg_.gc_slice_pages = cfg.gc_slice_pages;
  k->cfg_.cross_free = cfg.cross_free;
  k->cfg_.boot_grace_ns = cfg.boot_grace_ns;
  k->log_listener_ = nullptr;
  k->log_arg_ = nullptr;
  new (&k->grow_lock_) SpinLock();
  new (&k->log_lock_) SpinLock();
  k->attach_ = AttachReport{};
  k->attach_.boot_count = boots + 1;
  k->attach_.was_clean = was_clean != 0;
  k->rebuild();
  k->attach_.dormant_modules = k->modules_.suspend_live();
  new (&k->collector_) Collector();
  k->collector_.init(
      &k->modules_, &k->kmalloc_, k->cfg_.protector, k->cfg_.gc_delay_ns,
      [](void* arg, const char* line, std::size_t len) { static_cast<Kernel*>(arg)->log(line, len); }, k);
  k->collector_.set_slice_pages(k->cfg_.gc_slice_pages);
  k->collector_.add_space(&k->vmalloc_);
  k->persist_roots_register();
  // The collector's rate limit counts from this boot.
  k->collector_.external_pass_done(k->now_ns_);
  k->grace_pending_ = k->attach_.dormant_modules != 0;
  k->grace_deadline_ns_ = k->grace_pending_ && cfg.boot_grace_ns != 0 ? k->now_ns_ + cfg.boot_grace_ns : 0;
  k->attach_.rebuild_ns = mono_ns() - t0;
  fault_set_log(fault_log, k);
  return k;
}

void Kernel::detach() {
  slab_.drain_current_thread();
  slab_.drain_thread_caches();
  if (slab_.config().thread_caches) tc_unregister_heap(&slab_);
  FilePlatform* fp = backing_;
  fp->close(true);  // flush, superblock clean, unmap: `this` is gone after this line
  file_release(fp);
}

bool Kernel::flush() {
  return backing_ != nullptr && backing_->flush();
}

unsigned Kernel::boot_complete() {
  if (!grace_pending_) return 0;
  grace_pending_ = false;
  grace_deadline_ns_ = 0;
  unsigned n = modules_.expire_dormant(now_ns_);
  if (n != 0) {
    collector_.kick();
    StackText<200> line;
    line.ch('[').u(now_ns_ / 1000000000ull, 5).str(".000000] kmm: boot complete: ").u(n);
    line.str(n == 1 ? " module" : " modules")
        .str(" not loaded again; the protector (")
        .str(protector_mode_name(collector_.mode()));
    line.str(") takes what they own").nl();
    log(line.data(), line.size());
  }
  return n;
}

bool Kernel::root_set(const char* name, const void* p) {
  std::size_t len = str_len(name);
  if (len == 0 || len >= kPersistRootNameLen) return false;
  PersistRoot* free_entry = nullptr;
  for (auto& r : roots_) {
    if (r.name[0] != 0 && str_eq(r.name, name)) {
      __atomic_store_n(&r.value, reinterpret_cast<std::uintptr_t>(p), __ATOMIC_RELAXED);
      if (p == nullptr) __atomic_store_n(&r.name[0], '\0', __ATOMIC_RELAXED);
      return true;
    }
    if (r.name[0] == 0 && free_entry == nullptr) free_entry = &r;
  }
  if (p == nullptr) return true;
  if (free_entry == nullptr) return false;
  // Value and the tail of the name first; the first byte of the name publishes the entry.
  free_entry->value = reinterpret_cast<std::uintptr_t>(p);
  std::memset(free_entry->name + 1, 0, kPersistRootNameLen - 1);
  std::memcpy(free_entry->name + 1, name + 1, len - 1);
  __atomic_signal_fence(__ATOMIC_RELEASE);
  __atomic_store_n(&free_entry->name[0], name[0], __ATOMIC_RELAXED);
  return true;
}

void* Kernel::root_get(const char* name) const {
  for (const auto& r : roots_)
    if (r.name[0] != 0 && str_eq(r.name, name)) return reinterpret_cast<void*>(r.value);
  return nullptr;
}

}  // namespace kmm

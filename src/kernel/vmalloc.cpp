// kmm/kernel/vmalloc.cpp — first-fit area placement, frame backing, vmallocinfo.
#include "kernel/vmalloc.h"

#include "base/bits.h"
#include "base/text.h"

namespace kmm {

bool Vmalloc::init(Kmalloc* kmalloc, std::uint64_t start, std::uint64_t end) {
  kmalloc_ = kmalloc;
  area_cache_ = kmalloc->slab()->create("vmap_area", sizeof(VmArea), alignof(VmArea), SLAB_NOLEAKTRACE);
  phys_ = kmalloc->slab()->phys();
  start_ = start;
  end_ = end;
  head_ = nullptr;
  used_pages_ = 0;
  return area_cache_ != nullptr;
}

std::uint64_t Vmalloc::vmalloc(std::size_t size, owner_t owner) {
  if (size == 0 || size > end_ - start_) return 0;
  std::uint64_t nr_pages = pages_for(size);
  std::uint64_t span = (nr_pages + 1) * kPageSize;  // + guard page
  auto* area = static_cast<VmArea*>(kmalloc_->slab()->alloc(area_cache_, GFP_KERNEL, kOwnerKernel));
  if (area == nullptr) return 0;
  auto* pages = static_cast<pfn_t*>(
      kmalloc_->kmalloc(static_cast<std::size_t>(nr_pages * sizeof(pfn_t)), GFP_KERNEL, kOwnerKernel));
  if (pages == nullptr) {
    kmalloc_->slab()->free(area_cache_, area, "vfree");
    return 0;
  }
  std::uint64_t got = 0;
  PageAllocator* zone = kmalloc_->slab()->zone();
  for (; got < nr_pages; ++got) {
    Page* p = zone->alloc_pages(0, GFP_KERNEL);
    if (p == nullptr && kmalloc_->slab()->reclaim_quarantine()) p = zone->alloc_pages(0, GFP_KERNEL);
    if (p == nullptr) break;
    p->set_flags(PG_vmalloc);
    pages[got] = phys_->page_to_pfn(p);
  }
  if (got < nr_pages) {
    for (std::uint64_t i = 0; i < got; ++i) zone->free_pages(phys_->pfn_to_page(pages[i]), 0);
    kmalloc_->kfree(pages);
    kmalloc_->slab()->free(area_cache_, area, "vfree");
    return 0;
  }
  LockGuard g(lock_);
  // First fit in address order.
  std::uint64_t at = start_;
  VmArea** link = &head_;
  while (*link != nullptr && (*link)->addr < at + span) {
    at = (*link)->addr + (*link)->size;
    link = &(*link)->next;
  }
  if (at + span > end_ || at + span < at) {
    lock_.unlock();
    for (std::uint64_t i = 0; i < nr_pages; ++i) zone->free_pages(phys_->pfn_to_page(pages[i]), 0);
    kmalloc_->kfree(pages);
    kmalloc_->slab()->free(area_cache_, area, "vfree");
    lock_.lock();
    return 0;
  }
  area->addr = at;
  area->size = span;
  area->requested = size;
  area->nr_pages = static_cast<std::uint32_t>(nr_pages);
  area->owner = owner == kOwnerFree ? kOwnerKernel : owner;
  area->pages = pages;
  area->next = *link;
  *link = area;
  used_pages_ += nr_pages;
  __atomic_store_n(&changes_, changes_ + 1, __ATOMIC_RELEASE);
  return at;
}

void Vmalloc::release(VmArea* a) {
  PageAllocator* zone = kmalloc_->slab()->zone();
  for (std::uint32_t i = 0; i < a->nr_pages; ++i) zone->free_pages(phys_->pfn_to_page(a->pages[i]), 0);
  kmalloc_->kfree(a->pages);
  kmalloc_->slab()->free(area_cache_, a, "vfree");
}

bool Vmalloc::vfree(std::uint64_t addr) {
  VmArea* victim = nullptr;
  {
    LockGuard g(lock_);
    for (VmArea** link = &head_; *link != nullptr; link = &(*link)->next) {
      if ((*link)->addr == addr) {
        victim = *link;
        *link = victim->next;
        used_pages_ -= victim->nr_pages;
        __atomic_store_n(&changes_, changes_ + 1, __ATOMIC_RELEASE);
        break;
      }
    }
  }
  if (victim == nullptr) return false;
  release(victim);
  return true;
}

const VmArea* Vmalloc::find(std::uint64_t addr) const {
  LockGuard g(lock_);
  return find_locked(addr);
}

const VmArea* Vmalloc::find_locked(std::uint64_t addr) const {
  for (const VmArea* a = head_; a != nullptr; a = a->next) {
    if (addr >= a->addr && addr < a->addr + std::uint64_t{a->nr_pages} * kPageSize) return a;
  }
  return nullptr;
}

bool Vmalloc::set_owner(std::uint64_t addr, owner_t owner) {
  LockGuard g(lock_);
  for (VmArea* a = head_; a != nullptr; a = a->next) {
    if (a->addr == addr) {
      a->owner = owner;
      return true;
    }
  }
  return false;
}

std::uint64_t Vmalloc::largest_chunk() const {
  LockGuard g(lock_);
  std::uint64_t at = start_, best = 0;
  for (const VmArea* a = head_; a != nullptr; a = a->next) {
    if (a->addr - at > best) best = a->addr - at;
    at = a->addr + a->size;
  }
  if (end_ - at > best) best = end_ - at;
  return best;
}

void Vmalloc::print_info(TextSink& out, const ModuleRegistry& modules) const {
  LockGuard g(lock_);
  for (const VmArea* a = head_; a != nullptr; a = a->next) {
    out.str("0x").hex(a->addr, 16).str("-0x").hex(a->addr + a->size, 16).ch(' ').u(a->size, 8);
    out.ch(' ').str(modules.owner_name(a->owner)).str("+vmalloc pages=").u(a->nr_pages).str(" vmalloc").nl();
  }
}

bool Vmalloc::check_invariants(TextSink* why) const {
  LockGuard g(lock_);
  std::uint64_t at = start_, pages = 0;
  for (const VmArea* a = head_; a != nullptr; a = a->next) {
    if (a->addr < at || a->addr + a->size > end_ || a->size != (std::uint64_t{a->nr_pages} + 1) * kPageSize) {
      if (why) why->str("vmalloc: area 0x").hex(a->addr).str(" overlaps or leaves the vmalloc space");
      return false;
    }
    for (std::uint32_t i = 0; i < a->nr_pages; ++i) {
      if (!phys_->pfn_valid(a->pages[i]) || !phys_->pfn_to_page(a->pages[i])->is(PG_vmalloc)) {
        if (why) why->str("vmalloc: area 0x").hex(a->addr).str(" frame ").u(i).str(" is not a vmalloc frame");
        return false;
      }
    }
    pages += a->nr_pages;
    at = a->addr + a->size;
  }
  if (pages != used_pages_) {
    if (why) why->str("vmalloc: used pages ").u(used_pages_).str(" != areas' ").u(pages);
    return false;
  }
  return true;
}

void Vmalloc::for_each_block(Visit visit, void* arg) {
  // Under lock_: a thread's vfree may not free an area while the collector reads or scans it
  // (the soak found that use after free). The visitor may free the area it is given
  // (free_block): it is unlinked at once and released after the walk, outside the lock.
  {
    LockGuard g(lock_);
    walking_ = true;
    for (VmArea** link = &head_; *link != nullptr;) {
      VmArea* a = *link;
      visit(arg, phys_->pfn_to_virt(a->pages[0]), std::size_t{a->nr_pages} * kPageSize, a->owner, a);
      if (*link == a) link = &a->next;  // kept; else *link is already the next area
    }
    walking_ = false;
  }
  while (walk_freed_ != nullptr) {
    VmArea* a = walk_freed_;
    walk_freed_ = a->next;
    release(a);
  }
}

void Vmalloc::for_each_piece(void* handle, ScanPiece scan, void* arg) {
  auto* a = static_cast<VmArea*>(handle);
  std::uint64_t left = a->requested;
  for (std::uint32_t i = 0; i < a->nr_pages && left > 0; ++i) {
    std::uint64_t n = left < kPageSize ? left : kPageSize;
    scan(arg, phys_->pfn_to_virt(a->pages[i]), static_cast<std::size_t>(n));  // n <= kPageSize
    left -= n;
  }
}

void Vmalloc::free_block(void* handle) {
  auto* victim = static_cast<VmArea*>(handle);
  if (!walking_) {
    vfree(victim->addr);
    return;
  }
  // From for_each_block's visitor: lock_ is held by this thread.
  for (VmArea** link = &head_; *link != nullptr; link = &(*link)->next) {
    if (*link == victim) {
      *link = victim->next;
      used_pages_ -= victim->nr_pages;
      __atomic_store_n(&changes_, changes_ + 1, __ATOMIC_RELEASE);
      victim->next = walk_freed_;
      walk_freed_ = victim;
      return;
    }
  }
}

bool Vmalloc::find_block(std::uintptr_t word, void** key, owner_t* owner) {
  std::uint64_t w = word;
  if (w < start_ || w >= end_) return false;
  // The collector scanning an area (for_each_block) already holds lock_.
  const VmArea* a = walking_ ? find_locked(w) : find(w);
  if (a == nullptr) return false;
  *key = phys_->pfn_to_virt(a->pages[0]);
  *owner = a->owner;
  return true;
}

}  // namespace kmm

// kmm/kernel/machine_frames.cpp — FrameSource and VmallocPages over a booted machine.
// See machine_frames.h.
#include "kernel/machine_frames.h"

namespace kmm {

void* KernelFrameSource::phys_to_host(phys_addr_t pa) {
  const PhysMem& phys = kernel_->phys();
  return phys.phys_valid(pa) ? phys.phys_to_virt(pa) : nullptr;
}

bool KernelFrameSource::alloc_frames(unsigned order, phys_addr_t* pa, void** host) {
  if (order > kMaxOrder) return false;
  PhysMem& phys = kernel_->phys();
  const pfn_t n = pfn_t{1} << order;
  Page* p = kernel_->zone().alloc_pages(order, GFP_KERNEL);
  pfn_t pfn = p != nullptr ? phys.page_to_pfn(p) : 0;
  pfn_t real = pfn, total = 0;  // total != 0: an over-sized exact block starting at real
  if (p != nullptr && pfn % n != 0) {
    // Not aligned to its size (the range allocator, or RAM at an odd phys_offset): take
    // 2n - 1 frames, use the aligned n inside, and remember the block in the head's
    // descriptor so free_frames gives back exactly what was taken.
    kernel_->zone().free_pages(p, order);
    total = 2 * n - 1;
    p = kernel_->zone().alloc_pages_exact(total, GFP_KERNEL);
    if (p != nullptr) {
      real = phys.page_to_pfn(p);
      pfn = (real + n - 1) / n * n;
      for (pfn_t k = 0; k < total; ++k) {
        Page* f = phys.pfn_to_page(real + k);
        f->set_flags(f->get_flags() | flag_);
      }
    }
  }
  if (p == nullptr) {
    ++failures_;
    return false;
  }
  for (pfn_t k = 0; k < n; ++k) {
    Page* f = phys.pfn_to_page(pfn + k);
    f->set_flags(f->get_flags() | flag_);
  }
  Page* head = phys.pfn_to_page(pfn);
  head->lru.nr_pages = total;
  head->lru.next = real;
  *pa = PhysMem::pfn_to_phys(pfn);
  *host = phys.pfn_to_virt(pfn);
  frames_ += total != 0 ? total : n;
  return true;
}

void KernelFrameSource::free_frames(phys_addr_t pa, unsigned order) {
  PhysMem& phys = kernel_->phys();
  const pfn_t pfn = PhysMem::phys_to_pfn(pa);
  if (!phys.pfn_valid(pfn)) return;
  Page* head = phys.pfn_to_page(pfn);
  const pfn_t total = head->lru.nr_pages;
  const pfn_t first = total != 0 ? head->lru.next : pfn;
  const pfn_t count = total != 0 ? total : pfn_t{1} << order;
  for (pfn_t k = 0; k < count; ++k) {
    Page* f = phys.pfn_to_page(first + k);
    f->set_flags(f->get_flags() & ~flag_);
  }
  head->lru.nr_pages = 0;
  if (total != 0) {
    kernel_->zone().free_pages_exact(phys.pfn_to_page(first), total);
  } else {
    kernel_->zone().free_pages(head, order);
  }
  frames_ -= count;
}

bool KernelVmallocPages::frame_at(std::uint64_t va, phys_addr_t* pa) const {
  const VmArea* a = kernel_->view().vmalloc.find(va);
  if (a == nullptr || va < a->addr) return false;
  const std::uint64_t idx = (va - a->addr) >> kPageShift;
  if (idx >= a->nr_pages) return false;  // the guard page
  *pa = PhysMem::pfn_to_phys(a->pages[idx]);
  return true;
}

void KernelVmallocPages::for_each_page(PageFn fn, void* arg) const {
  for (const VmArea* a = kernel_->view().vmalloc.areas(); a != nullptr; a = a->next) {
    for (std::uint32_t i = 0; i < a->nr_pages; ++i) {
      fn(arg, a->addr + (std::uint64_t{i} << kPageShift), PhysMem::pfn_to_phys(a->pages[i]));
    }
  }
}

std::uint64_t KernelVmallocPages::generation() const {
  return kernel_->view().vmalloc.changes();
}

}  // namespace kmm

// kmm/kernel/machine_frames.h — the MMU model's view of a booted machine: frames for page
// tables and process pages from the kernel's page allocator, and the vmalloc areas as the
// page tables need them.
//
// KernelFrameSource implements vm::FrameSource over kernel.zone(): every frame it hands out
// is marked with one page flag (PG_pgtable for tables, so /proc/meminfo counts them as
// PageTables; PG_process for user pages, counted as AnonPages), and the flag is cleared
// before the frame goes back. Multi-frame blocks (the ARMv7 16 KB first-level table) come
// from alloc_pages(order), aligned to their size counted from the start of RAM.
// KernelVmallocPages implements vm::VmallocPages over the kernel's vmalloc areas (view().vmalloc).
//
// Depends on: kernel/kernel.h, vm/frame_source.h, vm/kernel_space.h (interfaces only).
// No heap. Invariant: frames() == frames handed out and not yet given back.
#pragma once

#include "kernel/kernel.h"
#include "vm/frame_source.h"
#include "vm/kernel_space.h"

namespace kmm {

class KernelFrameSource final : public vm::FrameSource {
 public:
  KernelFrameSource(Kernel* kernel, std::uint32_t page_flag) : kernel_(kernel), flag_(page_flag) {}
  bool alloc_frame(phys_addr_t* pa, void** host) override { return alloc_frames(0, pa, host); }
  void free_frame(phys_addr_t pa) override { free_frames(pa, 0); }
  void* phys_to_host(phys_addr_t pa) override;
  bool alloc_frames(unsigned order, phys_addr_t* pa, void** host) override;
  void free_frames(phys_addr_t pa, unsigned order) override;
  // Frames handed out and not given back.
  std::uint64_t frames() const { return frames_; }
  // Allocation failures (the allocator was empty).
  std::uint64_t failures() const { return failures_; }

 private:
  Kernel* kernel_;
  std::uint32_t flag_;
  std::uint64_t frames_ = 0;
  std::uint64_t failures_ = 0;
};

class KernelVmallocPages final : public vm::VmallocPages {
 public:
  explicit KernelVmallocPages(const Kernel* kernel) : kernel_(kernel) {}
  bool frame_at(std::uint64_t va, phys_addr_t* pa) const override;
  void for_each_page(PageFn fn, void* arg) const override;
  std::uint64_t generation() const override;

 private:
  const Kernel* kernel_;
};

}  // namespace kmm

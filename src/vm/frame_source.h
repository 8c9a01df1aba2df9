// kmm/vm/frame_source.h — where the page-table walker gets the frames its tables live in.
//
// The MMU model keeps its tables in frames of modelled physical memory, as a kernel does
// (swapper_pg_dir and every process's tables are RAM pages). The walker knows frames only
// through this interface: the machine implements it over its page allocator, tests over a
// plain aligned buffer.
//
// Contract:
//  - alloc_frame: one 4 KiB frame, 4 KiB aligned; its physical address in *pa and a host
//    pointer to its first byte in *host. False when memory is exhausted. The content need not
//    be zeroed (the walker zeroes every table frame it takes).
//  - alloc_frames(order): 2^order physically contiguous frames, aligned to 2^order frames
//    (the ARMv7 first-level table is 16 KiB, 16 KiB aligned: order 2). The default serves
//    only order 0; a source that cannot do more leaves ARMv7 page tables unavailable (init
//    fails with kNoMemory) but is fine for AArch64, whose tables are all single frames.
//  - phys_to_host: a host pointer to the byte at physical address pa, for any byte of a frame
//    handed out (and any RAM the source knows); null when pa is not backed. The walker reads
//    every descriptor through it, so a table pointer into nothing is reported as a walk
//    abort, not followed.
//  - free_frame / free_frames: give back what alloc_frame / alloc_frames(order) returned.
//
// Depends on: base/config.h. Not owned by the walker: the caller keeps the source alive for
// as long as any PageTable uses it.
#pragma once

#include "base/config.h"

namespace kmm::vm {

struct FrameSource {
  virtual bool alloc_frame(phys_addr_t* pa, void** host) = 0;
  virtual void free_frame(phys_addr_t pa) = 0;
  virtual void* phys_to_host(phys_addr_t pa) = 0;

  virtual bool alloc_frames(unsigned order, phys_addr_t* pa, void** host) {
    return order == 0 && alloc_frame(pa, host);
  }
  virtual void free_frames(phys_addr_t pa, unsigned order) {
    if (order == 0) free_frame(pa);
  }

 protected:
  ~FrameSource() = default;
};

}  // namespace kmm::vm

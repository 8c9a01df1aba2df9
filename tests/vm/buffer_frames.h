// tests/vm/buffer_frames.h — a FrameSource over a plain aligned buffer, for the tests of the
// kernel and user address spaces (the same idea as test_walk.cpp's): physical memory of
// `frames` frames at physical address `base`, first-fit, aligned runs of 2^order frames.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "vm/frame_source.h"

namespace kmm::vm::test {

class BufferFrames final : public FrameSource {
 public:
  BufferFrames(phys_addr_t base, std::size_t frames)
      : base_(base), used_(frames, false), mem_(static_cast<unsigned char*>(std::aligned_alloc(16384, frames * 4096))) {
    std::memset(mem_, 0xA5, frames * 4096);
  }
  ~BufferFrames() { std::free(mem_); }
  BufferFrames(const BufferFrames&) = delete;
  BufferFrames& operator=(const BufferFrames&) = delete;

  bool alloc_frame(phys_addr_t* pa, void** host) override { return alloc_frames(0, pa, host); }
  bool alloc_frames(unsigned order, phys_addr_t* pa, void** host) override {
    const std::size_t n = std::size_t{1} << order;
    if (limit_ >= 0 && in_use_ + n > static_cast<std::size_t>(limit_)) return false;
    for (std::size_t f = 0; f + n <= used_.size(); f += n) {
      bool free = true;
      for (std::size_t k = 0; k < n && free; ++k) free = !used_[f + k];
      if (!free) continue;
      for (std::size_t k = 0; k < n; ++k) used_[f + k] = true;
      in_use_ += n;
      *pa = base_ + f * 4096;
      *host = mem_ + f * 4096;
      return true;
    }
    return false;
  }
  void free_frame(phys_addr_t pa) override { free_frames(pa, 0); }
  void free_frames(phys_addr_t pa, unsigned order) override {
    const std::size_t f = static_cast<std::size_t>((pa - base_) / 4096);
    for (std::size_t k = 0; k < (std::size_t{1} << order); ++k) {
      EXPECT_TRUE(used_[f + k]) << "double free of frame " << f + k;
      used_[f + k] = false;
    }
    in_use_ -= std::size_t{1} << order;
  }
  void* phys_to_host(phys_addr_t pa) override {
    if (pa < base_ || pa >= base_ + used_.size() * 4096) return nullptr;
    return mem_ + (pa - base_);
  }
  std::size_t in_use() const { return in_use_; }
  void set_limit(long frames) { limit_ = frames; }
  unsigned char* host(phys_addr_t pa) { return mem_ + (pa - base_); }

 private:
  phys_addr_t base_;
  std::vector<bool> used_;
  unsigned char* mem_;
  std::size_t in_use_ = 0;
  long limit_ = -1;
};

}  // namespace kmm::vm::test

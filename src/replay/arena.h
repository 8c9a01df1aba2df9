// kmm/replay/arena.h — textbook first-fit and best-fit allocators over one arena, the baseline
// the replay compares kernel and uClinux policies against.
//
// How. The arena is one contiguous range of `capacity` bytes that grows like a brk heap:
// blocks are carved from [0, brk) and brk moves up when no free block fits (and back down
// when the block at the top is freed, as malloc trims its top). Each block has boundary tags
// (Knuth; CS:APP's malloc lab): a 4-byte header and a 4-byte footer holding the block size
// (a multiple of 8) with bit 0 set when the block is allocated. Payloads are 8-byte aligned;
// the minimum block is 16 bytes. A free of a block looks at the footer just below it and the
// header just above it and merges with free neighbours in O(1). The tags are real words in a
// host buffer of `capacity` bytes (lazily committed by the host).
// Free blocks are indexed outside the arena: an ordered set by address (first fit: the
// lowest-addressed block that fits, a scan) and a multiset by size (best fit: the smallest
// block that fits, a lookup; ties go to the lowest address).
// An aligned request (alignment > 8) asks for size + alignment - 8 bytes (no memalign).
//
// Invariants (check): blocks tile [prologue, brk) exactly; header == footer in every block;
// no two free blocks are adjacent; the block below brk is allocated; the indexes hold exactly
// the free blocks; free_bytes_ is their sum.
//
// Depends on: the C++ standard library (replay/ layer).
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace kmm::scenario {

class Arena {
 public:
  enum class Fit : std::uint8_t { kFirst, kBest };
  static constexpr std::uint64_t kAlign = 8;
  static constexpr std::uint64_t kTags = 8;  // header + footer
  static constexpr std::uint64_t kMinBlock = 16;
  static constexpr std::uint64_t kPrologue = 4;  // so that payloads (header + 4) are 8-aligned

  Arena(std::uint64_t capacity, Fit fit);

  // Payload offset (> 0), or 0 when the arena cannot hold the block. *block = block size.
  std::uint64_t alloc(std::uint64_t size, std::uint64_t* block);
  void free(std::uint64_t payload);
  // Grows in place when the next block is free or the block is at the top; otherwise
  // allocates, (notionally) copies, frees. 0 on failure (the old block stays).
  std::uint64_t realloc(std::uint64_t payload, std::uint64_t size, std::uint64_t* block);

  std::uint64_t capacity() const { return capacity_; }
  std::uint64_t brk() const { return brk_; }
  // Free bytes: the free blocks plus everything above brk.
  std::uint64_t free_total() const { return free_bytes_ + (capacity_ - brk_); }
  std::uint64_t largest_free() const;
  // One flag per `cell` bytes of the arena: true when an allocated block touches it.
  void used_cells(std::uint64_t cell, std::vector<bool>* out) const;
  std::uint64_t free_blocks() const { return by_addr_.size(); }
  bool check(std::string* why) const;

  // Block size for a request (tags, alignment, minimum).
  static std::uint64_t block_for(std::uint64_t size);

 private:
  std::uint32_t tag(std::uint64_t at) const;
  void set_tags(std::uint64_t block, std::uint64_t size, bool alloc);
  void add_free(std::uint64_t block, std::uint64_t size);
  void remove_free(std::uint64_t block, std::uint64_t size);
  // Takes `need` bytes at the start of free block `b` (size `have`); splits off the rest.
  void place(std::uint64_t b, std::uint64_t have, std::uint64_t need);

  std::uint64_t capacity_;
  Fit fit_;
  std::unique_ptr<std::uint32_t[]> words_;
  std::uint64_t brk_ = kPrologue;
  std::uint64_t free_bytes_ = 0;
  std::set<std::uint64_t> by_addr_;                            // free block offsets
  std::set<std::pair<std::uint64_t, std::uint64_t>> by_size_;  // (size, offset)
};

}  // namespace kmm::scenario

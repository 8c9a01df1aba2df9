// kmm/replay/arena.cpp — boundary-tag first-fit / best-fit (see arena.h).
// Depends on: replay/arena.h, the C++ standard library.
// Invariants: those of arena.h, checked by Arena::check after every operation in tests.
#include "replay/arena.h"

#include <fmt/format.h>

#include <algorithm>

namespace kmm::scenario {

Arena::Arena(std::uint64_t capacity, Fit fit)
    : capacity_(std::min<std::uint64_t>(capacity & ~(kAlign - 1), 0xfffffff8ull)),
      fit_(fit),
      words_(new std::uint32_t[capacity_ / 4 + 2]) {
  if (capacity_ < kPrologue) capacity_ = kPrologue;
}

std::uint64_t Arena::block_for(std::uint64_t size) {
  std::uint64_t b = (size + kTags + kAlign - 1) & ~(kAlign - 1);
  return b < kMinBlock ? kMinBlock : b;
}

std::uint32_t Arena::tag(std::uint64_t at) const {
  return words_[at / 4];
}

void Arena::set_tags(std::uint64_t block, std::uint64_t size, bool alloc) {
  std::uint32_t t = static_cast<std::uint32_t>(size) | (alloc ? 1u : 0u);
  words_[block / 4] = t;
  words_[(block + size - 4) / 4] = t;
}

void Arena::add_free(std::uint64_t block, std::uint64_t size) {
  set_tags(block, size, false);
  if (fit_ == Fit::kFirst)
    by_addr_.insert(block);
  else
    by_size_.insert({size, block});
  free_bytes_ += size;
}

void Arena::remove_free(std::uint64_t block, std::uint64_t size) {
  if (fit_ == Fit::kFirst)
    by_addr_.erase(block);
  else
    by_size_.erase({size, block});
  free_bytes_ -= size;
}

void Arena::place(std::uint64_t b, std::uint64_t have, std::uint64_t need) {
  remove_free(b, have);
  if (have - need >= kMinBlock) {
    set_tags(b, need, true);
    add_free(b + need, have - need);
  } else {
    set_tags(b, have, true);
  }
}

std::uint64_t Arena::alloc(std::uint64_t size, std::uint64_t* block) {
  if (size > capacity_) return 0;
  std::uint64_t need = block_for(size);
  std::uint64_t b = 0, have = 0;
  if (fit_ == Fit::kFirst) {
    for (std::uint64_t off : by_addr_) {
      std::uint64_t s = tag(off) & ~7u;
      if (s >= need) {
        b = off;
        have = s;
        break;
      }
    }
  } else {
    auto it = by_size_.lower_bound({need, 0});
    if (it != by_size_.end()) {
      have = it->first;
      b = it->second;
    }
  }
  if (have != 0) {
    place(b, have, need);
    *block = tag(b) & ~7u;
    return b + 4;
  }
  // Nothing fits: grow the top (the block below brk is never free: frees trim the top).
  if (need > capacity_ - brk_) return 0;
  b = brk_;
  brk_ += need;
  set_tags(b, need, true);
  *block = need;
  return b + 4;
}

void Arena::free(std::uint64_t payload) {
  std::uint64_t b = payload - 4;
  std::uint64_t size = tag(b) & ~7u;
  // Merge with the block below (its footer sits just before our header).
  if (b > kPrologue) {
    std::uint32_t below = tag(b - 4);
    if ((below & 1u) == 0) {
      std::uint64_t bs = below & ~7u;
      remove_free(b - bs, bs);
      b -= bs;
      size += bs;
    }
  }
  std::uint64_t end = b + size;
  if (end == brk_) {
    brk_ = b;  // trim the top
    return;
  }
  std::uint32_t above = tag(end);
  if ((above & 1u) == 0) {
    std::uint64_t as = above & ~7u;
    remove_free(end, as);
    size += as;
  }
  add_free(b, size);
}

std::uint64_t Arena::realloc(std::uint64_t payload, std::uint64_t size, std::uint64_t* block) {
  std::uint64_t b = payload - 4;
  std::uint64_t have = tag(b) & ~7u;
  std::uint64_t need = block_for(size);
  if (need <= have) {
    if (have - need >= kMinBlock) {
      // Shrink: give the tail back (merging it with a free block above, or trimming).
      set_tags(b, need, true);
      set_tags(b + need, have - need, true);
      free(b + need + 4);
    }
    *block = tag(b) & ~7u;
    return payload;
  }
  std::uint64_t end = b + have;
  if (end == brk_) {
    if (need - have > capacity_ - brk_) return 0;
    brk_ = b + need;
    set_tags(b, need, true);
    *block = need;
    return payload;
  }
  std::uint32_t above = tag(end);
  if ((above & 1u) == 0 && have + (above & ~7u) >= need) {
    std::uint64_t as = above & ~7u;
    remove_free(end, as);
    std::uint64_t total = have + as;
    if (total - need >= kMinBlock) {
      set_tags(b, need, true);
      add_free(b + need, total - need);
    } else {
      set_tags(b, total, true);
    }
    *block = tag(b) & ~7u;
    return payload;
  }
  std::uint64_t np = alloc(size, block);
  if (np == 0) return 0;
  free(payload);
  return np;
}

std::uint64_t Arena::largest_free() const {
  std::uint64_t best = capacity_ - brk_;
  if (fit_ == Fit::kBest) {
    if (!by_size_.empty()) best = std::max(best, by_size_.rbegin()->first);
  } else {
    for (std::uint64_t off : by_addr_) best = std::max<std::uint64_t>(best, tag(off) & ~7u);
  }
  return best;
}

void Arena::used_cells(std::uint64_t cell, std::vector<bool>* out) const {
  // One walk over the blocks: a cell is used when any allocated byte lies in it.
  out->assign((capacity_ + cell - 1) / cell, false);
  std::uint64_t b = kPrologue;
  while (b < brk_) {
    std::uint32_t t = tag(b);
    std::uint64_t s = t & ~7u;
    if ((t & 1u) != 0) {
      for (std::uint64_t c = b / cell; c <= (b + s - 1) / cell && c < out->size(); ++c) (*out)[c] = true;
    }
    b += s;
  }
}

bool Arena::check(std::string* why) const {
  std::uint64_t b = kPrologue, nfree = 0, bytes = 0;
  bool prev_free = false;
  while (b < brk_) {
    std::uint32_t h = tag(b);
    std::uint64_t s = h & ~7u;
    if (s < kMinBlock || b + s > brk_) {
      *why = fmt::format("block at {} has a bad size {}", b, s);
      return false;
    }
    if (tag(b + s - 4) != h) {
      *why = fmt::format("block at {}: header {:#x} != footer {:#x}", b, h, tag(b + s - 4));
      return false;
    }
    bool is_free = (h & 1u) == 0;
    if (is_free && prev_free) {
      *why = fmt::format("two adjacent free blocks at {}", b);
      return false;
    }
    if (is_free) {
      ++nfree;
      bytes += s;
      bool indexed = fit_ == Fit::kFirst ? by_addr_.count(b) == 1 : by_size_.count({s, b}) == 1;
      if (!indexed) {
        *why = fmt::format("free block at {} is not indexed", b);
        return false;
      }
    }
    prev_free = is_free;
    b += s;
  }
  if (b != brk_) {
    *why = "blocks do not end at brk";
    return false;
  }
  if (prev_free) {
    *why = "the block below brk is free (should have been trimmed)";
    return false;
  }
  std::uint64_t indexed = fit_ == Fit::kFirst ? by_addr_.size() : by_size_.size();
  if (nfree != indexed || bytes != free_bytes_) {
    *why = fmt::format("{} free blocks / {} bytes in the arena, index has {} / {}", nfree, bytes, indexed, free_bytes_);
    return false;
  }
  return true;
}

}  // namespace kmm::scenario

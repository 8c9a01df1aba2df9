// kmm/protect/paper_table.cpp — the 2004 table: first-free insert, linear erase.
#include "protect/paper_table.h"

#include <cstring>

namespace kmm {

void PaperTable::init(void* memory) {
  table_ = static_cast<PaperRecord*>(memory);
  std::memset(table_, 0, bytes_needed());
  in_use_ = high_water_ = 0;
  untracked_ = 0;
}

bool PaperTable::record(const void* p, owner_t owner, std::size_t size) {
  LockGuard g(lock_);
  for (unsigned i = 0; i < kRecords; ++i) {
    if (table_[i].ptr == nullptr) {
      table_[i] = PaperRecord{p, owner, size};
      ++in_use_;
      if (i >= high_water_) high_water_ = i + 1;
      return true;
    }
  }
  ++untracked_;
  return false;
}

bool PaperTable::erase(const void* p) {
  LockGuard g(lock_);
  for (unsigned i = 0; i < high_water_; ++i) {
    if (table_[i].ptr == p) {
      table_[i].ptr = nullptr;
      --in_use_;
      return true;
    }
  }
  return false;
}

unsigned PaperTable::collect(const bool dead[kMaxOwners], Visit fn, void* arg, bool clear) {
  LockGuard g(lock_);
  unsigned n = 0;
  for (unsigned i = 0; i < high_water_; ++i) {
    PaperRecord& r = table_[i];
    if (r.ptr != nullptr && dead[r.module & 0xFF]) {
      PaperRecord copy = r;
      if (clear) {
        r.ptr = nullptr;
        --in_use_;
      }
      ++n;
      fn(arg, copy.ptr, copy.size, static_cast<owner_t>(copy.module));
    }
  }
  return n;
}

}  // namespace kmm

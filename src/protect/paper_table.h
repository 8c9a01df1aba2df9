// kmm/protect/paper_table.h — the paper's own tracker, kept as a baseline to measure against.
//
// Baek, Park and Choi (2004) kept a fixed table of 10,000 records of 24 bytes (240 KB, sized
// for 1 GB of memory): kmalloc appends (pointer, module, size) in the first free record,
// kfree searches the table linearly for the pointer and clears it, and gc_process() walks the
// whole table looking for records of modules that are gone. When the table is full, further
// allocations go untracked — a leak the protector can no longer see. `tracker=paper-table`
// runs this beside kmm's owner bytes so both can be measured in the same run.
//
// Depends on: base/. The table memory is the caller's (the kernel's boot memory).
#pragma once

#include "base/spinlock.h"

namespace kmm {

struct PaperRecord {  // 24 bytes on a 64-bit host, as in the paper
  const void* ptr;
  std::uintptr_t module;  // the paper stored a module pointer; we store the owner id
  std::size_t size;
};

class PaperTable {
 public:
  static constexpr unsigned kRecords = 10000;
  static constexpr std::size_t bytes_needed() { return sizeof(PaperRecord) * kRecords; }

  void init(void* memory);
  // False when the table is full: the allocation goes untracked (counted).
  bool record(const void* p, owner_t owner, std::size_t size);
  // Linear search and clear; false when p has no record.
  bool erase(const void* p);
  // gc_process(): calls fn(arg, ptr, size, owner) and clears the record (unless !clear:
  // report mode counts leaks, frees nothing) for every record whose owner is dead; returns
  // how many.
  using Visit = void (*)(void* arg, const void* ptr, std::size_t size, owner_t owner);
  unsigned collect(const bool dead[kMaxOwners], Visit fn, void* arg, bool clear = true);

  unsigned in_use() const { return in_use_; }
  unsigned high_water() const { return high_water_; }
  std::uint64_t untracked() const { return untracked_; }

 private:
  PaperRecord* table_ = nullptr;
  unsigned in_use_ = 0;
  unsigned high_water_ = 0;  // records [0, high_water_) may be in use
  std::uint64_t untracked_ = 0;
  SpinLock lock_;
};

}  // namespace kmm

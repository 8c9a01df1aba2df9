// kmm/vm/tlb.h — a translation lookaside buffer model.
//
// How it works. The TLB caches leaf translations: an entry maps one naturally aligned block
// of 2^size_shift bytes (4 KB and 64 KB pages, 1 MB / 16 MB sections, 2 MB / 1 GB blocks) to
// a physical base, with the permissions the walk computed, tagged with an ASID unless it is
// global (nG == 0). Its geometry is configurable: `entries` in all, `ways` per set (0, or
// == entries, means fully associative). An entry of size 2^s lives in set (va >> s) % sets,
// so a lookup probes one set per page size currently cached (a bitmask says which), as a
// unified TLB with per-size indexing would. Replacement within a set: LRU (a use stamp per
// entry) or random (xorshift64*, seeded: the same seed gives the same victims).
//
// Flushes follow the ARM TLB maintenance operations: flush_all (TLBIALL), flush_asid
// (TLBIASID: non-global entries of one ASID), flush_va (TLBIMVA: entries covering the VA
// that are global or carry the ASID), flush_va_all_asids (TLBIMVAA).
//
// A lookup first checks a small hint table (the slot that last hit for this 4 KB page
// number), which plays the part of the hardware's parallel compare; see hint_.
//
// Counters: lookups, hits, misses, walks (count_walk(), called by whoever walks on a miss),
// fills, evictions (a valid entry replaced), flushes and entries flushed.
//
// Depends on: base/config.h, base/text.h, vm/vm_types.h. No allocation: entries are a fixed
// array inside the object. Invariants (check_invariants()): sets * ways == entries <=
// kMaxEntries, sets a power of two; every valid entry sits in the set its VA and size pick,
// its VA is aligned to its size; no two valid entries overlap in the same ASID context; the
// size mask has a bit for every size present.
#pragma once

#include "base/config.h"
#include "base/text.h"
#include "vm/vm_types.h"

namespace kmm::vm {

enum class TlbReplacement : std::uint8_t { kLru, kRandom };

struct TlbConfig {
  unsigned entries = 64;
  unsigned ways = 0;  // 0 or == entries: fully associative
  TlbReplacement replacement = TlbReplacement::kLru;
  std::uint64_t seed = 1;  // for kRandom
};

struct TlbEntry {
  std::uint64_t va = 0;  // base of the mapping, aligned to 2^size_shift
  phys_addr_t pa = 0;    // physical base of the mapping
  std::uint8_t size_shift = 12;
  std::uint8_t domain = 0;  // ARMv7: checked against DACR on a hit
  std::uint16_t asid = 0;
  bool global = true;
  Perms perms;
  // Maintained by the TLB.
  bool valid = false;
  std::uint64_t last_use = 0;

  std::uint64_t size() const { return std::uint64_t{1} << size_shift; }
  bool covers(std::uint64_t addr) const { return (addr >> size_shift) == (va >> size_shift); }
  phys_addr_t translate(std::uint64_t addr) const { return pa | (addr & (size() - 1)); }
};

struct TlbStats {
  std::uint64_t lookups = 0;
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t walks = 0;
  std::uint64_t fills = 0;
  std::uint64_t evictions = 0;
  std::uint64_t flushes = 0;
  std::uint64_t flushed_entries = 0;
};

class Tlb {
 public:
  static constexpr unsigned kMaxEntries = 512;

  Tlb() { configure(TlbConfig{}); }

  // Empties the TLB, resets the counters and takes the new geometry. False (and nothing
  // changed) when entries is 0 or above kMaxEntries, ways does not divide entries, or
  // entries / ways is not a power of two.
  bool configure(const TlbConfig& config);
  const TlbConfig& config() const { return config_; }
  unsigned sets() const { return sets_; }
  unsigned ways() const { return ways_; }

  // The entry translating va in the context of asid, or null. Counts a lookup and a hit or a
  // miss; a hit refreshes the entry's LRU stamp.
  const TlbEntry* lookup(std::uint64_t va, std::uint16_t asid);
  // The same without touching counters or stamps (for printing and tests).
  const TlbEntry* probe(std::uint64_t va, std::uint16_t asid) const;

  // Caches a translation. VA and PA are aligned down to the entry's size; entries it overlaps
  // in the same ASID context are dropped first. False when size_shift is not in 12..40.
  bool insert(const TlbEntry& entry);
  void count_walk() { ++stats_.walks; }

  // Each returns how many entries it invalidated.
  unsigned flush_all();
  unsigned flush_asid(std::uint16_t asid);
  unsigned flush_va(std::uint64_t va, std::uint16_t asid);
  unsigned flush_va_all_asids(std::uint64_t va);

  unsigned valid_entries() const;
  const TlbStats& stats() const { return stats_; }
  void reset_stats() { stats_ = TlbStats{}; }

  // "TLB: 64 entries, fully associative, LRU" then the counters and the hit rate.
  void print_stats(TextSink& out) const;
  // One line per valid entry: set, way, VA, PA, size, ASID or global, permissions.
  void print_entries(TextSink& out) const;

  bool check_invariants() const;

 private:
  unsigned set_of(std::uint64_t va, unsigned size_shift) const {
    return static_cast<unsigned>((va >> size_shift) & (sets_ - 1));
  }
  TlbEntry* find(std::uint64_t va, std::uint16_t asid);
  unsigned victim(unsigned set);
  std::uint64_t next_random();
  void recompute_size_mask();
  template <typename Hit>
  unsigned flush_if(Hit&& hit);
  unsigned invalidate(unsigned slot);

  TlbConfig config_;
  unsigned sets_ = 1;
  unsigned ways_ = 1;
  std::uint64_t size_mask_ = 0;  // bit s set: some valid entry has size_shift s
  std::uint64_t clock_ = 0;
  std::uint64_t rng_ = 1;
  // Where the last hit for a 4 KB page number was found, indexed by a hash of it: checked
  // first, and verified like any entry, so a stale hint costs one compare, never a wrong
  // answer. It stands in for the parallel compare of a real CAM, so that a hit costs a few
  // nanoseconds however large the fully associative TLB is.
  static constexpr unsigned kHints = 256;
  std::uint16_t hint_[kHints] = {};
  TlbStats stats_;
  TlbEntry slots_[kMaxEntries];
};

}  // namespace kmm::vm

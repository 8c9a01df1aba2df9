// kmm/vm/tlb.cpp — the TLB model: set-indexed lookup, LRU/random replacement, ARM-style
// flushes, counters. Depends on: tlb.h, base/bits.h.
#include "vm/tlb.h"

#include "base/bits.h"

namespace kmm::vm {

bool Tlb::configure(const TlbConfig& config) {
  if (config.entries == 0 || config.entries > kMaxEntries) return false;
  const unsigned ways = (config.ways == 0 || config.ways >= config.entries) ? config.entries : config.ways;
  if (config.entries % ways != 0) return false;
  const unsigned sets = config.entries / ways;
  if (!is_pow2(sets)) return false;
  config_ = config;
  ways_ = ways;
  sets_ = sets;
  for (TlbEntry& e : slots_) e = TlbEntry{};
  size_mask_ = 0;
  clock_ = 0;
  rng_ = config.seed != 0 ? config.seed : 0x9E3779B97F4A7C15ull;
  for (std::uint16_t& h : hint_) h = 0;
  stats_ = TlbStats{};
  return true;
}

namespace {

bool matches(const TlbEntry& e, std::uint64_t va, std::uint16_t asid) {
  return e.valid && e.covers(va) && (e.global || e.asid == asid);
}

}  // namespace

TlbEntry* Tlb::find(std::uint64_t va, std::uint16_t asid) {
  const unsigned h = static_cast<unsigned>(((va >> 12) * 0x9E3779B97F4A7C15ull) >> 56) % kHints;
  if (matches(slots_[hint_[h]], va, asid)) return &slots_[hint_[h]];
  std::uint64_t sizes = size_mask_;
  while (sizes != 0) {
    const unsigned shift = static_cast<unsigned>(__builtin_ctzll(sizes));
    sizes &= sizes - 1;
    const unsigned base = set_of(va, shift) * ways_;
    for (unsigned w = 0; w < ways_; ++w) {
      TlbEntry& e = slots_[base + w];
      if (e.size_shift == shift && matches(e, va, asid)) {
        hint_[h] = static_cast<std::uint16_t>(base + w);
        return &e;
      }
    }
  }
  return nullptr;
}

const TlbEntry* Tlb::probe(std::uint64_t va, std::uint16_t asid) const {
  for (unsigned k = 0; k < sets_ * ways_; ++k) {
    if (matches(slots_[k], va, asid)) return &slots_[k];
  }
  return nullptr;
}

const TlbEntry* Tlb::lookup(std::uint64_t va, std::uint16_t asid) {
  ++stats_.lookups;
  TlbEntry* e = find(va, asid);
  if (e == nullptr) {
    ++stats_.misses;
    return nullptr;
  }
  ++stats_.hits;
  e->last_use = ++clock_;
  return e;
}

std::uint64_t Tlb::next_random() {
  // xorshift64* (Vigna): deterministic for a given seed, no libc.
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return rng_ * 0x2545F4914F6CDD1Dull;
}

unsigned Tlb::victim(unsigned set) {
  const unsigned base = set * ways_;
  for (unsigned w = 0; w < ways_; ++w) {
    if (!slots_[base + w].valid) return base + w;
  }
  if (config_.replacement == TlbReplacement::kRandom) {
    return base + static_cast<unsigned>((next_random() >> 32) % ways_);
  }
  unsigned oldest = base;
  for (unsigned w = 1; w < ways_; ++w) {
    if (slots_[base + w].last_use < slots_[oldest].last_use) oldest = base + w;
  }
  return oldest;
}

unsigned Tlb::invalidate(unsigned slot) {
  if (!slots_[slot].valid) return 0;
  slots_[slot].valid = false;
  return 1;
}

void Tlb::recompute_size_mask() {
  size_mask_ = 0;
  for (unsigned k = 0; k < sets_ * ways_; ++k) {
    if (slots_[k].valid) size_mask_ |= std::uint64_t{1} << slots_[k].size_shift;
  }
}

bool Tlb::insert(const TlbEntry& entry) {
  if (entry.size_shift < 12 || entry.size_shift > 40) return false;
  TlbEntry e = entry;
  const std::uint64_t mask = e.size() - 1;
  e.va &= ~mask;
  e.pa &= ~static_cast<phys_addr_t>(mask);
  // Drop entries that overlap the new one in the same ASID context: a lookup must never
  // have two candidates (real hardware would raise a TLB conflict abort).
  bool dropped = false;
  for (unsigned k = 0; k < sets_ * ways_; ++k) {
    TlbEntry& old = slots_[k];
    if (!old.valid) continue;
    const std::uint64_t old_end = old.va + (old.size() - 1);
    const std::uint64_t new_end = e.va + mask;
    const bool overlap = old.va <= new_end && e.va <= old_end;
    if (overlap && (old.global || e.global || old.asid == e.asid)) {
      old.valid = false;
      dropped = true;
    }
  }
  if (dropped) recompute_size_mask();
  const unsigned slot = victim(set_of(e.va, e.size_shift));
  if (slots_[slot].valid) ++stats_.evictions;
  e.valid = true;
  e.last_use = ++clock_;
  slots_[slot] = e;
  size_mask_ |= std::uint64_t{1} << e.size_shift;
  ++stats_.fills;
  return true;
}

unsigned Tlb::flush_all() {
  unsigned n = 0;
  for (unsigned k = 0; k < sets_ * ways_; ++k) n += invalidate(k);
  size_mask_ = 0;
  ++stats_.flushes;
  stats_.flushed_entries += n;
  return n;
}

// The selective flushes: every entry `hit` selects is invalidated, then the size mask and the
// counters follow (one place for what each of the three ARM operations shares).
template <typename Hit>
unsigned Tlb::flush_if(Hit&& hit) {
  unsigned n = 0;
  for (unsigned k = 0; k < sets_ * ways_; ++k) {
    if (hit(slots_[k])) n += invalidate(k);
  }
  recompute_size_mask();
  ++stats_.flushes;
  stats_.flushed_entries += n;
  return n;
}

unsigned Tlb::flush_asid(std::uint16_t asid) {
  return flush_if([&](const TlbEntry& e) { return e.valid && !e.global && e.asid == asid; });
}

unsigned Tlb::flush_va(std::uint64_t va, std::uint16_t asid) {
  return flush_if([&](const TlbEntry& e) { return matches(e, va, asid); });
}

unsigned Tlb::flush_va_all_asids(std::uint64_t va) {
  return flush_if([&](const TlbEntry& e) { return e.valid && e.covers(va); });
}

unsigned Tlb::valid_entries() const {
  unsigned n = 0;
  for (unsigned k = 0; k < sets_ * ways_; ++k) n += slots_[k].valid ? 1u : 0u;
  return n;
}

namespace {

void perms_text(TextSink& out, const Perms& p) {
  out.ch(p.kernel_read ? 'r' : '-').ch(p.kernel_write ? 'w' : '-').ch(p.kernel_exec ? 'x' : '-');
  out.ch('/');
  out.ch(p.user_read ? 'r' : '-').ch(p.user_write ? 'w' : '-').ch(p.user_exec ? 'x' : '-');
}

}  // namespace

void Tlb::print_stats(TextSink& out) const {
  out.str("TLB: ").u(sets_ * ways_).str(" entries, ");
  if (sets_ == 1) {
    out.str("fully associative");
  } else {
    out.u(ways_).str("-way set associative (").u(sets_).str(" sets)");
  }
  out.str(config_.replacement == TlbReplacement::kLru ? ", LRU" : ", random");
  out.str(", ").u(valid_entries()).str(" valid").nl();
  out.left("lookups", 16).u(stats_.lookups, 12).nl();
  out.left("hits", 16).u(stats_.hits, 12);
  if (stats_.lookups != 0) {
    const std::uint64_t permille = stats_.hits * 1000 / stats_.lookups;
    out.str("  (").fixed(static_cast<std::int64_t>(permille), 1).str("%)");
  }
  out.nl();
  out.left("misses", 16).u(stats_.misses, 12).nl();
  out.left("walks", 16).u(stats_.walks, 12).nl();
  out.left("fills", 16).u(stats_.fills, 12).nl();
  out.left("evictions", 16).u(stats_.evictions, 12).nl();
  out.left("flushes", 16).u(stats_.flushes, 12).nl();
  out.left("flushed entries", 16).u(stats_.flushed_entries, 12).nl();
}

void Tlb::print_entries(TextSink& out) const {
  out.str("set way  VA                 PA                 size  ASID  k/u perms").nl();
  for (unsigned k = 0; k < sets_ * ways_; ++k) {
    const TlbEntry& e = slots_[k];
    if (!e.valid) continue;
    out.u(k / ways_, 3).ch(' ').u(k % ways_, 3).str("  0x").hex(e.va, 16).str(" 0x").hex(e.pa, 16);
    out.ch(' ');
    StackText<8> sz;
    mapping_size_text(sz, e.size_shift);
    out.left(sz.data(), 5).ch(' ');
    if (e.global) {
      out.left("G", 5);
    } else {
      out.u(e.asid, 5);
    }
    out.ch(' ');
    perms_text(out, e.perms);
    out.nl();
  }
}

bool Tlb::check_invariants() const {
  if (sets_ * ways_ != config_.entries || sets_ * ways_ > kMaxEntries || !is_pow2(sets_)) return false;
  std::uint64_t sizes = 0;
  for (unsigned k = 0; k < sets_ * ways_; ++k) {
    const TlbEntry& e = slots_[k];
    if (!e.valid) continue;
    if ((e.va & (e.size() - 1)) != 0) return false;
    if (set_of(e.va, e.size_shift) != k / ways_) return false;
    sizes |= std::uint64_t{1} << e.size_shift;
    for (unsigned j = k + 1; j < sets_ * ways_; ++j) {
      const TlbEntry& o = slots_[j];
      if (!o.valid) continue;
      const bool overlap = o.va <= e.va + (e.size() - 1) && e.va <= o.va + (o.size() - 1);
      if (overlap && (o.global || e.global || o.asid == e.asid)) return false;
    }
  }
  return (sizes & ~size_mask_) == 0;
}

}  // namespace kmm::vm

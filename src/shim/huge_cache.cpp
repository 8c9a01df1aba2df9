// kmm/shim/huge_cache.cpp — freed huge mappings kept for reuse (Scudo's secondary cache).
//
// A block over 4 MiB is a mapping of its own (huge.cpp). Unmapping it at free and mapping a
// new one at the next request costs two system calls and, worse, a page fault for every page
// the program touches again (~13 us a page here: 40 ms for 12 MiB). So a freed mapping waits
// here, its pages still resident, and the next huge request takes the best one:
//   - the smallest cached mapping at least as large, its excess tail unmapped;
//   - else the largest one, grown with mremap (its resident pages keep their frames, only the
//     new part faults in).
// At most kEntries mappings and kMaxBytes bytes wait; a put beyond either evicts the oldest.
// Memory must still go back to the OS when the program stops asking: entries older than the
// purge delay are unmapped by the purge tick (purge.cpp), and malloc_trim unmaps them all.
// Guarded and over-aligned blocks never come here (huge.cpp unmaps them as before).
//
// Depends on: shim.h, base/spinlock.h, POSIX mmap/munmap/mremap. Locking: one spinlock, a
// leaf: never held while huge.cpp's table lock is taken (huge_lock takes both for fork, the
// table's first). System calls run outside it.
// Invariants: every entry with bytes != 0 is a mapping of `bytes` bytes at `start`, owned by
// no one (not in huge.cpp's table); g_cached_bytes is the sum of the entries' bytes.
#include <sys/mman.h>

#include "shim/shim.h"

namespace kmm::shim {
namespace {

constexpr unsigned kEntries = 16;
constexpr std::size_t kMaxBytes = std::size_t{256} << 20;

struct CachedMapping {
  std::uintptr_t start;
  std::size_t bytes;  // 0: empty slot
  std::uint32_t freed_ms;
};

SpinLock g_cache_lock;
CachedMapping g_cache[kEntries];
std::size_t g_cached_bytes = 0;
std::uint32_t g_clock_ms = 0;  // the purge clock at the last tick (stamps of new entries)

void unmap(std::uintptr_t start, std::size_t bytes) {
  if (bytes != 0) ::munmap(reinterpret_cast<void*>(start), bytes);
}

CachedMapping take_locked(unsigned i) {
  CachedMapping m = g_cache[i];
  g_cache[i].bytes = 0;
  g_cached_bytes -= m.bytes;
  return m;
}

}  // namespace

void* huge_cache_take(std::size_t bytes, std::size_t* used) {
  CachedMapping m{};
  {
    LockGuard g(g_cache_lock);
    unsigned fit = kEntries, largest = kEntries;
    for (unsigned i = 0; i < kEntries; ++i) {
      std::size_t b = g_cache[i].bytes;
      if (b == 0) continue;
      if (b >= bytes && (fit == kEntries || b < g_cache[fit].bytes)) fit = i;
      if (largest == kEntries || b > g_cache[largest].bytes) largest = i;
    }
    unsigned pick = fit != kEntries ? fit : largest;
    if (pick == kEntries) return nullptr;
    m = take_locked(pick);
  }
  *used = m.bytes < bytes ? m.bytes : bytes;
  if (m.bytes > bytes) {
    unmap(m.start + bytes, m.bytes - bytes);  // the excess tail
  } else if (m.bytes < bytes) {
    void* q = ::mremap(reinterpret_cast<void*>(m.start), m.bytes, bytes, MREMAP_MAYMOVE);
    if (q == MAP_FAILED) {
      unmap(m.start, m.bytes);
      return nullptr;
    }
    m.start = reinterpret_cast<std::uintptr_t>(q);
  }
  return reinterpret_cast<void*>(m.start);
}

void huge_cache_put(void* start, std::size_t bytes) {
  CachedMapping out[kEntries];
  unsigned n_out = 0;
  bool kept = false;
  if (bytes <= kMaxBytes) {
    LockGuard g(g_cache_lock);
    // Make room: evict the oldest until one slot is free and the bytes fit.
    for (;;) {
      unsigned empty = kEntries, oldest = kEntries;
      for (unsigned i = 0; i < kEntries; ++i) {
        if (g_cache[i].bytes == 0) {
          if (empty == kEntries) empty = i;
        } else if (oldest == kEntries ||
                   static_cast<std::int32_t>(g_cache[i].freed_ms - g_cache[oldest].freed_ms) < 0) {
          oldest = i;
        }
      }
      if (empty != kEntries && g_cached_bytes + bytes <= kMaxBytes) {
        g_cache[empty] = {reinterpret_cast<std::uintptr_t>(start), bytes, g_clock_ms};
        g_cached_bytes += bytes;
        kept = true;
        break;
      }
      if (oldest == kEntries) break;
      out[n_out++] = take_locked(oldest);
    }
  }
  for (unsigned i = 0; i < n_out; ++i) unmap(out[i].start, out[i].bytes);
  if (!kept) unmap(reinterpret_cast<std::uintptr_t>(start), bytes);
}

std::uint64_t huge_cache_age(std::uint32_t now_ms, std::uint32_t max_age_ms) {
  CachedMapping out[kEntries];
  unsigned n_out = 0;
  {
    LockGuard g(g_cache_lock);
    g_clock_ms = now_ms;
    for (unsigned i = 0; i < kEntries; ++i)
      if (g_cache[i].bytes != 0 && now_ms - g_cache[i].freed_ms >= max_age_ms) out[n_out++] = take_locked(i);
  }
  std::uint64_t bytes = 0;
  for (unsigned i = 0; i < n_out; ++i) {
    bytes += out[i].bytes;
    unmap(out[i].start, out[i].bytes);
  }
  return bytes;
}

std::uint64_t huge_cache_bytes() {
  LockGuard g(g_cache_lock);
  return g_cached_bytes;
}

void huge_cache_lock() {
  g_cache_lock.lock();
}
void huge_cache_unlock() {
  g_cache_lock.unlock();
}

// The cached mappings (free memory: the root scan skips them); the caller holds the lock.
std::size_t huge_cache_spans(AddrSpan* out, std::size_t cap) {
  std::size_t n = 0;
  for (const CachedMapping& m : g_cache) {
    if (m.bytes == 0) continue;
    if (n < cap) out[n] = AddrSpan{m.start, m.start + m.bytes};
    ++n;
  }
  return n;
}

}  // namespace kmm::shim

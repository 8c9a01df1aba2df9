// kmm/shim/huge_cache.cpp — freed huge mappings kept for reuse (Scudo's secondary cache).
//
// A block over 4 MiB is a mapping of its own (huge.cpp). Unmapping it at free and mapping a
// new one at the next request costs two system calls and, worse, a page fault for every page
// the program touches again (~13 us a page here: 40 ms for 12 MiB). So a freed mapping waits
// here, its pages still resident, and the next huge request is made of what waits:
//   - the smallest cached mapping at least as large; its excess tail stays cached as a mapping
//     of its own when it is kMinSplit or more (a range of a mapping is a mapping: no system
//     call), else it is unmapped;
//   - else the largest one, grown with mremap, and the growth filled with the pages of the
//     next largest ones, moved into place by mremap(MREMAP_FIXED): page tables move, frames
//     stay, so only what no cached mapping covered faults in (a freed 32 MiB block and a freed
//     8 MiB one serve a 36 MiB request with no fault). A mapping's unused rest stays cached.
// At most kEntries mappings and kMaxBytes bytes wait; a put beyond either evicts the oldest.
// Memory must still go back to the OS when the program stops asking: entries older than the
// purge delay are unmapped by the purge tick (purge.cpp), and malloc_trim unmaps them all.
// Guarded blocks never come here (huge.cpp unmaps them at once); an over-aligned block's
// mapping is trimmed to the block at allocation, so it comes here as any other.
//
// Depends on: shim.h, base/spinlock.h, POSIX mmap/munmap/mremap. Locking: one spinlock, a
// leaf: never held while huge.cpp's table lock is taken (huge_lock takes both for fork, the
// table's first). System calls run outside it.
// Invariants: every entry with bytes != 0 is a mapping of `bytes` bytes at `start`, owned by
// no one (not in huge.cpp's table); g_cached_bytes is the sum of the entries' bytes.
#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "shim/shim.h"

namespace kmm::shim {
namespace {

// 32: splits and gathers leave more, smaller mappings than whole freed blocks did (bigchurn
// 1 thread, SCALE=4: 16 entries 140,414 faults and 0.43 s, 32 entries 81,730 and 0.30 s; 128
// entries 46,171 faults, but with 2 threads more moves cost more CPU than the faults saved).
constexpr unsigned kEntries = 32;
constexpr std::size_t kMaxBytes = std::size_t{256} << 20;
// A cached mapping's rest smaller than this is unmapped rather than kept: a huge request is
// over 4 MiB, so a small piece serves only as filling for another's growth.
constexpr std::size_t kMinSplit = std::size_t{1} << 20;

struct CachedMapping {
  std::uintptr_t start;
  std::size_t bytes;  // 0: empty slot
  std::uint32_t freed_ms;
};

SpinLock g_cache_lock;
CachedMapping g_cache[kEntries];
std::size_t g_cached_bytes = 0;
std::uint32_t g_clock_ms = 0;  // atomic: the purge clock at the last tick (stamps of new entries)

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
  CachedMapping got[kEntries];  // got[0] the base, then the pieces that fill its growth
  unsigned n = 0;
  std::size_t total = 0;
  CachedMapping rest{};  // a fit's tail that stays cached
  {
    LockGuard g(g_cache_lock);
    unsigned fit = kEntries;
    for (unsigned i = 0; i < kEntries; ++i) {
      std::size_t b = g_cache[i].bytes;
      if (b >= bytes && (fit == kEntries || b < g_cache[fit].bytes)) fit = i;
    }
    if (fit != kEntries) {
      CachedMapping& m = g_cache[fit];
      got[n++] = {m.start, bytes, m.freed_ms};
      total = bytes;
      if (m.bytes - bytes >= kMinSplit) {  // the tail stays, in the same slot
        m.start += bytes;
        m.bytes -= bytes;
        g_cached_bytes -= bytes;
      } else {
        rest = take_locked(fit);
        rest.start += bytes;
        rest.bytes -= bytes;  // unmapped below (0 bytes: nothing)
      }
    } else {
      // Largest first, until the request is covered or nothing waits.
      while (total < bytes) {
        unsigned largest = kEntries;
        for (unsigned i = 0; i < kEntries; ++i)
          if (g_cache[i].bytes != 0 && (largest == kEntries || g_cache[i].bytes > g_cache[largest].bytes)) largest = i;
        if (largest == kEntries) break;
        got[n] = take_locked(largest);
        total += got[n++].bytes;
      }
    }
  }
  if (n == 0) return nullptr;
  unmap(rest.start, rest.bytes);
  if (n == 1 && total == bytes) {
    *used = bytes;
    return reinterpret_cast<void*>(got[0].start);
  }
  // The destination: the base grown to the request (its new part fresh, unfaulted pages),
  // filled with the other pieces' pages. A mapping made so spans several kernel mappings
  // (VMAs of different origins), which mremap cannot grow whole: huge_remap then moves it.
  void* q = huge_remap(got[0].start, got[0].bytes, bytes, /*keep_data=*/false);
  if (q == MAP_FAILED) {
    for (unsigned i = 0; i < n; ++i)
      huge_cache_put(reinterpret_cast<void*>(got[i].start), got[i].bytes, got[i].freed_ms);
    return nullptr;
  }
  std::size_t filled = got[0].bytes;
  auto base = reinterpret_cast<std::uintptr_t>(q);
  for (unsigned i = 1; i < n; ++i) {
    CachedMapping& piece = got[i];
    std::size_t take = bytes - filled < piece.bytes ? bytes - filled : piece.bytes;
    if (take != 0) {
      // Freed bytes: what cannot move is dropped (the destination keeps fresh pages there).
      huge_move_pages(piece.start, take, base + filled, /*keep_data=*/false);
      filled += take;
      piece.start += take;
      piece.bytes -= take;
    }
    // What is left of it waits again, or goes if small.
    if (piece.bytes >= kMinSplit)
      huge_cache_put(reinterpret_cast<void*>(piece.start), piece.bytes, piece.freed_ms);
    else
      unmap(piece.start, piece.bytes);
  }
  *used = filled;  // [q, q + filled) may hold old bytes; the rest is fresh and reads as zero
  return q;
}

// Both leave errno as they found it when they succeed (huge_move_pages always does: pages
// moved or copied), as glibc's malloc and realloc leave it: the EFAULT of a remap across
// kernel mappings, before the fallback that succeeds, reached 10,539 successful mallocs of a
// review's loop.
void huge_move_pages(std::uintptr_t src, std::size_t len, std::uintptr_t dst, bool keep_data) {
  if (len == 0) return;
  struct KeepErrno {
    int saved = errno;
    ~KeepErrno() { errno = saved; }
  } keep;
  void* q =
      ::mremap(reinterpret_cast<void*>(src), len, len, MREMAP_MAYMOVE | MREMAP_FIXED, reinterpret_cast<void*>(dst));
  if (q != MAP_FAILED) return;
  // EFAULT: the range crosses from one kernel mapping into another. Halves until each part
  // lies in one (a few system calls per boundary, against a fault for every page a copy
  // would touch).
  if (errno == EFAULT && len > kPageSize) {
    std::size_t half = (len / 2) & ~(std::size_t{kPageSize} - 1);
    huge_move_pages(src, half, dst, keep_data);
    huge_move_pages(src + half, len - half, dst + half, keep_data);
    return;
  }
  // Anything else (ENOMEM: no room for the page tables): a copy, so no byte is lost.
  if (keep_data) std::memcpy(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), len);
  unmap(src, len);
}

void* huge_remap(std::uintptr_t start, std::size_t old_bytes, std::size_t new_bytes, bool keep_data) {
  const int saved = errno;
  void* q = ::mremap(reinterpret_cast<void*>(start), old_bytes, new_bytes, MREMAP_MAYMOVE);
  if (q != MAP_FAILED || errno != EFAULT || new_bytes <= old_bytes) return q;
  // EFAULT growing: the range spans several kernel mappings. A fresh mapping of the new size,
  // the old pages moved into it (resident pages keep their frames; nothing is touched).
  q = ::mmap(nullptr, new_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (q == MAP_FAILED) return q;
  huge_move_pages(start, old_bytes, reinterpret_cast<std::uintptr_t>(q), keep_data);
  errno = saved;
  return q;
}

void huge_cache_put(void* start, std::size_t bytes) {
  // Stamped now, not with the clock of the last purge round (g_clock_ms): that stamp was a
  // delay old whenever a round was due, and the round the same free runs (purge_tick_now)
  // unmapped the block at once (before stop 48: a 32 MiB block freed and taken again every
  // 0.6 s faulted all its 8,192 pages in every other time).
  huge_cache_put(start, bytes, coarse_ms());
}

void huge_cache_put(void* start, std::size_t bytes, std::uint32_t freed_ms) {
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
        g_cache[empty] = {reinterpret_cast<std::uintptr_t>(start), bytes, freed_ms};
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
    __atomic_store_n(&g_clock_ms, now_ms, __ATOMIC_RELAXED);
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

bool huge_cache_starts_at(std::uintptr_t a) {
  LockGuard g(g_cache_lock);
  for (const CachedMapping& m : g_cache)
    if (m.bytes != 0 && m.start == a) return true;
  return false;
}

bool huge_cache_overlaps(std::uintptr_t lo, std::uintptr_t hi) {
  LockGuard g(g_cache_lock);
  for (const CachedMapping& m : g_cache)
    if (m.bytes != 0 && lo < m.start + m.bytes && m.start < hi) return true;
  return false;
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

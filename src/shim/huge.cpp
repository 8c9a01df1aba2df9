// kmm/shim/huge.cpp — blocks over 4 MiB: direct anonymous mappings, found through a table.
//
// A request larger than the biggest buddy block (order 10, 4 MiB) is mapped on its own, as
// glibc maps its large chunks; on free the mapping waits in the huge cache (huge_cache.cpp)
// for the next request, and goes back to the OS after the purge delay. The mapping has no header: its start
// (page aligned, or aligned further for memalign) is recorded in an open-addressing hash
// table (linear probing, backward-shift deletion) that lives in its own lazily mapped,
// MAP_NORESERVE region — only touched table pages cost memory. Per-owner bytes and counts
// are kept so stats and the module views include these blocks.
//
// guard_pages (slab/hardening.h) covers these blocks too: the mapping is one page longer and
// that page is made PROT_NONE, so a linear overrun faults on its first byte past the block's
// pages; the slack between the size asked for and the page end is filled with kGuardFill and
// checked when the block is freed or resized (so is the guard page, when the host refused to
// protect it). malloc_usable_size of a guarded block is the size asked for, as for guarded
// page runs. A guarded block is resized by unprotecting the guard, mremap'ing block and
// guard together and protecting the new guard (mremap cannot move a range that spans two
// protections).
//
// Depends on: shim.h, base/ (reports, text, round_up), slab/hardening.h (the guard pattern
// and its check), POSIX
// mmap/mprotect/mremap. Locking: one spinlock (g_lock), taken after the
// plug-in table lock and before any kernel lock (see alloc.cpp's fork handlers).
// Invariants: every entry's key is the user pointer of a live mapping of `map_bytes` bytes
// starting at `map_start`; no two entries share a key; the table is never more than 3/4 full.
// A guarded entry's mapping ends with its guard page: [key, key + usable) is the block, the
// bytes up to the page end hold kGuardFill, then one guard page (PROT_NONE, or patterned when
// `guard_patterned`).
#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "base/bits.h"
#include "base/fault_inject.h"
#include "base/report.h"
#include "base/text.h"
#include "shim/shim.h"

namespace kmm::shim {
namespace {

struct Entry {
  std::uintptr_t key;        // user pointer; 0 = empty
  std::uintptr_t map_start;  // mapping start: key (an over-aligned block's mapping is trimmed to it)
  std::size_t map_bytes;
  std::size_t usable;  // bytes from key to the end of the mapping (guarded: the size asked for)
  owner_t owner;
  bool guarded;            // the mapping's last page is a guard page
  bool guard_patterned;    // ... filled with kGuardFill, not protected (the host refused)
  std::uint8_t marks = 0;  // the collector's mark bits (1: referenced, 2: scanned)
  bool doomed = false;     // reclaimed by the collector's sweep: unmapped after its walk
  std::uint32_t span = 0;  // its place in g_spans
};

// Every live entry's mapping, packed in g_spans[0 .. g_count) in no order (an entry knows its
// place; erase moves the last one into the hole): huge_overlaps answers "is this range kmm's?"
// in time of the live blocks, where the table would take all its kSlots slots.
struct Span {
  std::uintptr_t key, lo, hi;
};

constexpr std::size_t kSlots = std::size_t{1} << 16;
// The table, then g_sorted, then g_spans.
constexpr std::size_t kTableBytes = kSlots * (sizeof(Entry) + sizeof(Entry*) + sizeof(Span));
SpinLock g_lock;
Entry* g_table = nullptr;
// The collector's view (HugeSpace): entries sorted by key, built at the start of a mark, used
// only while the collector holds g_lock for a stopped world (g_walker_locked).
Entry** g_sorted = nullptr;
std::size_t g_nsorted = 0;
Span* g_spans = nullptr;
bool g_walker_locked = false;  // read and written by the thread holding g_lock only
std::size_t g_count = 0;
// Its own lines: a huge block's malloc and free write the kernel's tally, which had shared a line
// with g_kernel, g_ram_lo and g_ram_bytes, read by every malloc and free of every thread.
alignas(64) OwnerTally g_usage[kMaxOwners];

std::size_t slot_of(std::uintptr_t key) {
  return static_cast<std::size_t>((key >> 12) * 0x9E3779B97F4A7C15ull >> 48) & (kSlots - 1);
}

bool ensure_table() {
  if (g_table != nullptr) return true;
  void* t = ::mmap(nullptr, kTableBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (t == MAP_FAILED) return false;
  g_table = static_cast<Entry*>(t);
  g_sorted = static_cast<Entry**>(static_cast<void*>(g_table + kSlots));  // the index follows the table
  g_spans = static_cast<Span*>(static_cast<void*>(g_sorted + kSlots));
  return true;
}

Entry* find_locked(std::uintptr_t key) {
  if (g_table == nullptr || key == 0) return nullptr;
  for (std::size_t i = slot_of(key);; i = (i + 1) & (kSlots - 1)) {
    if (g_table[i].key == key) return &g_table[i];
    if (g_table[i].key == 0) return nullptr;
  }
}

void erase_locked(Entry* e) {
  std::size_t i = static_cast<std::size_t>(e - g_table);
  g_usage[e->owner].objects--;
  g_usage[e->owner].bytes -= e->map_bytes;
  // The last span into e's place, before the shift below moves entries (find_locked needs the
  // probe sequences whole).
  std::uint32_t last = static_cast<std::uint32_t>(g_count - 1);
  if (e->span != last) {
    g_spans[e->span] = g_spans[last];
    find_locked(g_spans[last].key)->span = e->span;
  }
  g_count--;
  // Backward-shift deletion keeps every probe sequence unbroken.
  for (std::size_t j = (i + 1) & (kSlots - 1);; j = (j + 1) & (kSlots - 1)) {
    if (g_table[j].key == 0) break;
    std::size_t home = slot_of(g_table[j].key);
    // Move j into the hole at i when its home is not within (i, j] cyclically.
    bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!between) {
      g_table[i] = g_table[j];
      i = j;
    }
  }
  g_table[i].key = 0;
}

bool insert_locked(const Entry& e) {
  if (!ensure_table() || g_count >= kSlots / 4 * 3) return false;
  std::size_t i = slot_of(e.key);
  while (g_table[i].key != 0) i = (i + 1) & (kSlots - 1);
  g_table[i] = e;
  g_table[i].span = static_cast<std::uint32_t>(g_count);
  g_spans[g_count] = Span{e.key, e.map_start, e.map_start + e.map_bytes};
  g_count++;
  g_usage[e.owner].objects++;
  g_usage[e.owner].bytes += e.map_bytes;
  return true;
}

// Turns the last page of a guarded entry's mapping into its guard and patterns the slack.
void arm_guard(Entry* e) {
  char* user = reinterpret_cast<char*>(e->key);
  std::size_t block = static_cast<std::size_t>(round_up(e->usable, kPageSize));
  std::memset(user + e->usable, kGuardFill, block - e->usable);
  char* guard = user + block;
  e->guard_patterned = ::mprotect(guard, kPageSize, PROT_NONE) != 0;
  if (e->guard_patterned) std::memset(guard, kGuardFill, kPageSize);
}

// Checks a guarded entry's slack (and patterned guard) and makes the guard page accessible
// again; damage is heap corruption, reported (and fatal) before the mapping is reused.
void disarm_guard(const Entry& e, const char* action) {
  char* user = reinterpret_cast<char*>(e.key);
  std::size_t block = static_cast<std::size_t>(round_up(e.usable, kPageSize));
  std::size_t checked = block + (e.guard_patterned ? kPageSize : 0) - e.usable;
  std::size_t bad = first_not(user + e.usable, checked, kGuardFill);
  if (bad != checked) {
    std::size_t i = e.usable + bad;
    StackText<160> why;
    why.str("huge block overrun: byte ")
        .u(i)
        .str(" of a block of ")
        .u(e.usable)
        .str(i < block ? " bytes was written (slack before the guard page)" : " bytes was written (its guard page)");
    report({ErrorKind::kCorruption, action, user, nullptr, e.usable, why.data()});
  }
  if (!e.guard_patterned && ::mprotect(user + block, kPageSize, PROT_READ | PROT_WRITE) != 0)
    fatal("kmm: cannot make a huge block's guard page accessible again (host out of mappings)");
}

}  // namespace

void huge_lock() {
  g_lock.lock();
  huge_cache_lock();
}
void huge_unlock() {
  huge_cache_unlock();
  g_lock.unlock();
}

void* huge_alloc(std::size_t size, std::size_t align, owner_t owner, bool zero) {
  if (align < kPageSize) align = kPageSize;
  bool guarded = g_opts.hardening.guard_pages;
  std::size_t block = static_cast<std::size_t>(round_up(size, kPageSize));
  if (block < size) return nullptr;
  std::size_t bytes = block + (guarded ? kPageSize : 0);  // the block and its guard page
  if (bytes < block) return nullptr;
  std::size_t span = bytes + (align > kPageSize ? align : 0);
  if (span < bytes) return nullptr;
  // fail_platform: a huge block is a platform mapping of its own (the caller sees ENOMEM).
  if (fault_should_fail(FaultPoint::kPlatform, span, "mmap")) return nullptr;
  // A mapping freed earlier, pages still resident, when neither a guard nor an alignment
  // asks for a fresh one.
  std::size_t used = 0;
  void* m = guarded || align > kPageSize ? nullptr : huge_cache_take(span, &used);
  // A reused mapping holds a freed block's bytes: calloc's block is cleared (a memset of
  // resident pages, far cheaper than giving them back and faulting them in again).
  if (m != nullptr && zero) std::memset(m, 0, used);
  if (m == nullptr) m = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  auto start = reinterpret_cast<std::uintptr_t>(m);
  std::uintptr_t user = (start + align - 1) & ~(std::uintptr_t{align} - 1);
  if (align > kPageSize) {
    // Trim to [user, user + bytes).
    if (user > start) ::munmap(m, user - start);
    std::uintptr_t end = start + span;
    if (end > user + bytes) ::munmap(reinterpret_cast<void*>(user + bytes), end - (user + bytes));
    start = user;
    span = bytes;
  }
  Entry e{user,  start, span, span - (user - start), owner == kOwnerFree ? kOwnerKernel : owner, guarded,
          false, 0,     false};
  if (guarded) {
    e.usable = size;
    arm_guard(&e);
  }
  bool ok;
  {
    LockGuard g(g_lock);
    ok = insert_locked(e);
  }
  if (!ok) {
    ::munmap(reinterpret_cast<void*>(start), span);
    return nullptr;
  }
  return reinterpret_cast<void*>(user);
}

bool huge_free(void* p, const char* action) {
  Entry gone;
  {
    LockGuard g(g_lock);
    Entry* e = find_locked(reinterpret_cast<std::uintptr_t>(p));
    if (e == nullptr) return false;
    gone = *e;
    erase_locked(e);
  }
  // munmap takes a range of mixed protections: only the check needs the guard disarmed.
  if (gone.guarded) disarm_guard(gone, action);
  // Cached only while the purge delay can give it back (purge_delay=off: unmapped at once).
  if (!gone.guarded && g_opts.purge_delay_ns != 0)
    huge_cache_put(reinterpret_cast<void*>(gone.map_start), gone.map_bytes);
  else
    ::munmap(reinterpret_cast<void*>(gone.map_start), gone.map_bytes);
  return true;
}

std::size_t huge_size(const void* p) {
  LockGuard g(g_lock);
  Entry* e = find_locked(reinterpret_cast<std::uintptr_t>(p));
  return e != nullptr ? e->usable : 0;
}

owner_t huge_owner(const void* p) {
  LockGuard g(g_lock);
  Entry* e = find_locked(reinterpret_cast<std::uintptr_t>(p));
  return e != nullptr ? e->owner : kOwnerFree;
}

bool huge_set_owner(const void* p, owner_t o) {
  LockGuard g(g_lock);
  Entry* e = find_locked(reinterpret_cast<std::uintptr_t>(p));
  if (e == nullptr) return false;
  if (o == kOwnerFree) o = kOwnerKernel;
  g_usage[e->owner].objects--;
  g_usage[e->owner].bytes -= e->map_bytes;
  e->owner = o;
  g_usage[o].objects++;
  g_usage[o].bytes += e->map_bytes;
  return true;
}

bool huge_overlaps(std::uintptr_t lo, std::uintptr_t hi) {
  {
    LockGuard g(g_lock);
    if (g_table != nullptr) {
      auto table = reinterpret_cast<std::uintptr_t>(g_table);
      if (lo < table + kTableBytes && table < hi) return true;
    }
    for (std::size_t i = 0; i < g_count; ++i)
      if (lo < g_spans[i].hi && g_spans[i].lo < hi) return true;
  }
  return huge_cache_overlaps(lo, hi);  // the cache's lock after the table's, never under it here
}

void* huge_resize(void* p, std::size_t size, const char* action, owner_t new_owner) {
  std::size_t block = static_cast<std::size_t>(round_up(size, kPageSize));
  if (block < size) return nullptr;
  LockGuard g(g_lock);
  Entry* e = find_locked(reinterpret_cast<std::uintptr_t>(p));
  if (e == nullptr) return nullptr;
  std::size_t bytes = block + (e->guarded ? kPageSize : 0);
  if (bytes < block) return nullptr;
  if (fault_should_fail(FaultPoint::kPlatform, bytes, "mremap")) return nullptr;
  if (e->guarded) disarm_guard(*e, action);
  // A block the huge cache made of several freed mappings spans several kernel mappings: huge_remap moves it.
  void* q = huge_remap(e->map_start, e->map_bytes, bytes, /*keep_data=*/true);
  if (q == MAP_FAILED) {
    if (e->guarded) arm_guard(e);  // the block stays where it was, guarded again
    return nullptr;
  }
  Entry n = *e;
  erase_locked(e);
  n.key = n.map_start = reinterpret_cast<std::uintptr_t>(q);
  if (new_owner != kOwnerFree) n.owner = new_owner;  // counted by erase and insert
  n.map_bytes = bytes;
  n.usable = n.guarded ? size : bytes;
  if (n.guarded) arm_guard(&n);
  insert_locked(n);  // cannot fail: one entry was just removed
  return q;
}

// --- the collector's view: huge blocks are an OwnedSpace (protect/collector.h) -----------------

namespace {

class HugeSpace final : public OwnedSpace {
 public:
  // Under g_lock (taken here, or already held by the collector for a stopped world). The
  // sweep's visitor may reclaim the entry it is given (free_block): it is marked doomed and
  // unmapped after the walk, so no entry moves while the walk runs.
  void for_each_block(Visit visit, void* arg) override {
    bool take = !g_walker_locked;
    if (take) g_lock.lock();
    bool any_doomed = false;
    if (g_table != nullptr) {
      for (std::size_t i = 0; i < kSlots; ++i) {
        Entry* e = &g_table[i];
        if (e->key == 0) continue;
        visit(arg, e, e->usable, e->owner, e);
        any_doomed = any_doomed || e->doomed;
      }
    }
    while (any_doomed) {
      any_doomed = false;
      for (std::size_t i = 0; i < kSlots; ++i) {
        Entry* e = &g_table[i];
        if (e->key == 0 || !e->doomed) continue;
        Entry gone = *e;
        erase_locked(e);  // backward shift may move a later doomed entry before i: go round again
        ::munmap(reinterpret_cast<void*>(gone.map_start), gone.map_bytes);
        any_doomed = true;
      }
    }
    if (take) g_lock.unlock();
  }
  void for_each_piece(void* handle, ScanPiece scan, void* arg) override {
    auto* e = static_cast<Entry*>(handle);
    scan(arg, reinterpret_cast<const void*>(e->key), e->usable);
  }
  void free_block(void* handle) override { static_cast<Entry*>(handle)->doomed = true; }
  bool find_block(std::uintptr_t word, void** key, owner_t* owner) override {
    if (!g_walker_locked || g_nsorted == 0) return false;
    if (word < g_sorted[0]->key || word >= hull_hi_) return false;
    std::size_t lo = 0, hi = g_nsorted;  // the last entry with key <= word
    while (hi - lo > 1) {
      std::size_t mid = (lo + hi) / 2;
      if (g_sorted[mid]->key <= word)
        lo = mid;
      else
        hi = mid;
    }
    Entry* e = g_sorted[lo];
    if (word >= e->key + e->usable) return false;
    *key = e;
    *owner = e->owner;
    return true;
  }
  void begin_mark() override {
    g_nsorted = 0;
    hull_hi_ = 0;
    if (!g_walker_locked || g_table == nullptr) return;
    for (std::size_t i = 0; i < kSlots; ++i) {
      Entry* e = &g_table[i];
      if (e->key == 0) continue;
      e->marks = 0;
      g_sorted[g_nsorted++] = e;
      if (e->key + e->usable > hull_hi_) hull_hi_ = e->key + e->usable;
    }
    std::sort(g_sorted, g_sorted + g_nsorted, [](const Entry* a, const Entry* b) { return a->key < b->key; });
  }
  void address_range(std::uintptr_t* lo, std::uintptr_t* hi) override {
    *lo = g_nsorted != 0 ? g_sorted[0]->key : 0;
    *hi = g_nsorted != 0 ? hull_hi_ : 0;
  }
  std::uintptr_t block_address(void* key) override { return static_cast<Entry*>(key)->key; }
  // After a snapshot mark, with the world running: the table may have changed since the copy
  // was made (entries moved, freed, new ones): marks are found again by address. A marked
  // address that now names another block only spares that block from one sweep.
  void import_marks(const std::uintptr_t* addrs, std::size_t n) override {
    LockGuard g(g_lock);
    if (g_table == nullptr) return;
    for (std::size_t i = 0; i < kSlots; ++i) g_table[i].marks = 0;
    for (std::size_t i = 0; i < n; ++i) {
      Entry* e = find_locked(addrs[i]);
      if (e != nullptr && e->key == addrs[i]) e->marks = 1;
    }
  }
  bool mark_bit(void* key, unsigned bit, bool set) override {
    auto* e = static_cast<Entry*>(key);
    auto m = static_cast<std::uint8_t>(1u << bit);
    bool was = (e->marks & m) != 0;
    if (set) e->marks = static_cast<std::uint8_t>(e->marks | m);
    return was;
  }

 private:
  std::uintptr_t hull_hi_ = 0;
};

HugeSpace g_space;

}  // namespace

OwnedSpace* huge_space() {
  return &g_space;
}

void huge_collector_lock() {
  huge_lock();  // the table, then the cache (a leaf): a parked thread holds neither
  g_walker_locked = true;
}

void huge_collector_unlock() {
  g_walker_locked = false;
  g_nsorted = 0;
  huge_unlock();
}

std::size_t huge_mapped_spans(AddrSpan* out, std::size_t cap) {
  // The huge cache's mappings first: freed blocks, free memory whatever they still hold.
  std::size_t n = huge_cache_spans(out, cap);
  if (g_table == nullptr) return n;
  auto add = [&](std::uintptr_t lo, std::uintptr_t hi) {
    if (n < cap) out[n] = AddrSpan{lo, hi};
    ++n;
  };
  add(reinterpret_cast<std::uintptr_t>(g_table), reinterpret_cast<std::uintptr_t>(g_table) + kTableBytes);
  for (std::size_t i = 0; i < kSlots; ++i)
    if (g_table[i].key != 0) add(g_table[i].map_start, g_table[i].map_start + g_table[i].map_bytes);
  return n;
}

void huge_usage(OwnerTally* out) {
  LockGuard g(g_lock);
  for (unsigned i = 0; i < kMaxOwners; ++i) {
    out[i].objects += g_usage[i].objects;
    out[i].bytes += g_usage[i].bytes;
  }
}

}  // namespace kmm::shim

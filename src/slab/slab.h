// kmm/slab/slab.h — SLUB-like object caches over the buddy allocator.
//
// A kmem_cache hands out objects of one size. Its memory comes in slabs: 2^order frames
// from the buddy allocator, cut into `objects` slots of `size` bytes. Free slots of a slab
// are linked through their first word (a 32-bit offset within the slab, kNoObject ends the
// list); the head page descriptor holds the list head, the in-use count and the capacity,
// and every later frame of the slab points back to the head (PG_tail), so any pointer finds
// its slab in O(1): virt_to_page(p), then compound_head.
//
// Owners. Every slot has one owner byte (0 = free, 1 = kernel, 2.. = a module; see
// protect/): the protector's "GC structure" of the paper, at one byte an object instead of
// the paper's 24. The owner vector lives at the end of the slab, or — when that would cost
// a slot (large objects: kmalloc-1k and up) — in the spare bytes of the slab's tail page
// descriptors, 16 a frame. Because the byte is 0 exactly when the slot is free (on the slab
// free list or in a per-thread cache), it doubles as the allocation bitmap: a second free
// of the same object finds 0 and is reported as a double free, in O(1), for every object.
//
// Thread-owned slabs (owned_slab.cpp; mimalloc's thread-local pages, SLUB's cpu slab): with
// thread caches on, every slab of a cache with a tc_slot that a thread allocates from is
// owned by that thread's ThreadCache, tagged in the slab's state word (see below). The owner
// pops the slab's free list and pushes its own frees onto it with no lock and no atomic; an
// object freed by any other thread (or by the collector) is pushed with one compare-and-swap
// onto the slab's remote list, which the owner takes back whole when its free list runs dry.
// A thread keeps its slabs of each cache on two lists of its own: `partial` (room, or so it
// believes; `cur`, the slab it allocates from, is one of them) and `full` (none; the state's
// kSlabFull bit set). A full slab goes back to partial only when a quarter of it is free
// (unfull_inuse): moved on every free, a slab of a program that frees at random (larson)
// went back and forth between the lists at every free and every allocation. A remote free
// onto a full slab whose remote list was empty sets a bit
// in the owner's remote hint word (remote_hint_, per thread id and cache slot), and the owner
// looks through its full list for slabs with remote frees before it takes a new slab. A slab
// that a local free empties (and that is not cur) stays on the thread's partial list while the
// thread keeps fewer than kKeptEmptySlabs such slabs, else goes back to the cache under the
// cache lock, as does every slab of a thread that exits (its remote list merged in first).
// The state word (head->lru.nr_pages, unused by slabs otherwise): bits 30..16 the owner's
// thread id (0: owned by none — on the cache's lists, under its lock), bit 31 kSlabFull,
// bits 15..0 the remote list's first offset (kRemoteNone: empty). Offsets fit 16 bits because
// only caches of slabs up to 64 KiB get a tc_slot. Ownership changes only under the cache lock
// (a slab taken from the cache, or given back); a free that finds owner 0 takes the lock.
// Slab lists (under kmem_cache::lock): `partial` holds slabs owned by no thread with free
// slots, `full` the others owned by none. A slab that becomes empty is given back to the buddy
// allocator unless the cache already keeps min_partial empty slabs. Counters: active = total -
// free in slabs owned by none (every slot of a thread-owned slab counts as active, as SLUB
// counts its per-cpu slabs); nr_owned counts the thread-owned slabs.
//
// Hardening (slab/hardening.h): with freelist_hardened the free links are stored encoded;
// red zones, poisoning and the quarantine make a cache a debug cache, which has no tc_slot
// (tc_slot 0xFF) so that every allocation and free passes the checks under the cache lock.
// A debug cache's slot is [object | red zone | metadata word: free link, size asked for].
// Objects in the quarantine are free (owner byte 0) but on no free list.
//
// Invariants (check_invariants): for each slab owned by none, inuse + |freelist| == objects,
// and its state is kSlabUnowned; for a thread-owned one, inuse + |freelist| + |remote| ==
// objects (checked when threads are quiet: drain first); every free
// slot has owner byte 0 and lies inside the slab at a multiple of size; slabs on `full` have
// no free slot; cache totals equal the sums over its slabs; in a debug cache every slot on a
// free list keeps its poison and its inactive red zone.
// Lock order: heap table -> thread-cache list -> registry -> kmem_cache::lock -> zone lock
// (docs/ARCHITECTURE.md, "Lock order", has the whole list).
// Depends on: base/, pal/ (the process barrier of fence_module_frees), phys/, page/.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstring>

#include "base/report.h"
#include "base/spinlock.h"
#include "page/buddy.h"
#include "slab/hardening.h"

namespace kmm {

class TextSink;
class SlabAllocator;

inline constexpr unsigned kMaxCaches = 96;
inline constexpr unsigned kCacheNameLen = 32;
inline constexpr unsigned kMaxTcSlots = 32;   // caches whose slabs threads own (remote_hint_ bits)
// An index of ThreadCache::own that no cache is given: its cur is the thread's no_slab for
// ever, so a pop from it always fails. The shim's and Kmalloc's class tables point the classes
// whose cache has no tc_slot at it (pop_slot_of), so that their fast paths need no test for them.
inline constexpr unsigned kNoTcSlot = kMaxTcSlots;
inline constexpr unsigned kMaxSlabOrder = 3;  // slub_max_order

enum CacheFlags : std::uint32_t {
  SLAB_HWCACHE_ALIGN = 1u << 0,
  SLAB_KMALLOC = 1u << 1,  // one of the kmalloc-N caches
  SLAB_PANIC = 1u << 2,
  SLAB_RECLAIM_ACCOUNT = 1u << 3,  // counted as SReclaimable
  SLAB_NOLEAKTRACE = 1u << 4,      // the collector's scan does not read these objects
};

// What a debug cache checks (KmemCache::debug; slab/hardening.h says why).
enum CacheDebug : std::uint8_t {
  kDebugRedzone = 1u << 0,     // red zone after the object (and after the size asked for)
  kDebugPoison = 1u << 1,      // freed objects hold the poison pattern
  kDebugQuarantine = 1u << 2,  // frees wait in the quarantine before the slot is reused
  kDebugOrigSize = 1u << 3,    // the size asked for is kept in the slot's metadata word
};

// Its first cache line holds what malloc's and free's fast paths read, and nothing that is
// written after create(): the lock, the lists and the counters live on the next lines, so
// a thread taking the lock does not take the line every other thread's fast path reads.
struct alignas(64) KmemCache {
  // --- read by the fast paths; written only by create() (and alloc_tc_slot by failslab) ---
  std::uint32_t size;           // slot stride
  std::uint32_t reciprocal;     // ceil(2^32 / size): slot index by multiply-shift
  std::uint32_t owners_offset;  // in-slab owner vector offset (when not off-slab)
  std::uint32_t fl_key;         // freelist_hardened: the cache's random key (0: links stored plain)
  std::uint16_t objects;        // slots per slab
  std::uint16_t unfull_inuse;   // a thread's full slab freed down to this many in use has room again
  std::uint8_t tc_slot;         // ThreadCache::own slot, or 0xFF: threads own no slab of it
  std::uint8_t alloc_tc_slot;   // what the alloc fast path reads: tc_slot, or 0xFF while failslab is on
  std::uint8_t order;           // slab = 2^order frames
  bool offslab_owners;
  std::uint32_t object_size;  // what the creator asked for (__GFP_ZERO clears this much)
  std::uint32_t fp_offset;    // free link's offset in a slot: 0, or the metadata word after the red zone
  std::uint32_t align;
  std::uint32_t flags;
  std::uint16_t id;    // index in the allocator's table; page->cache_id
  bool in_use;         // atomic: written under the registry lock, read by any thread
  std::uint8_t debug;  // CacheDebug bits; non-zero: a debug cache (no tc_slot)
  // objects, widened: the fast paths compare a 32-bit slot index with it in one instruction,
  // with no register to load it into (derived, as reciprocal is: set by size_cache and reattach).
  std::uint32_t objects32;
  // Owner colouring (owner_colour_mask_for): a slab's owner vector lies at owners_offset plus
  // (its slab number & this) cache lines (SlabAllocator::owners_offset_at). Derived from the
  // geometry, as reciprocal is: set by size_cache and reattach, never trusted from a file.
  std::uint8_t owner_colour_mask;
  // --- the slow paths' (under lock) ---
  alignas(64) char name[kCacheNameLen];
  SpinLock lock;
  pfn_t partial = kNoPfn;  // slabs with free slots
  pfn_t full = kNoPfn;     // slabs with none
  std::uint32_t nr_partial = 0, nr_full = 0, nr_empty = 0;
  std::uint32_t nr_owned = 0;  // slabs threads own (on no list of the cache)
  std::atomic<std::uint64_t> nr_slabs{0};
  std::atomic<std::uint64_t> free_in_slabs{0};
  std::atomic<std::uint64_t> alloc_calls{0};  // central refills + direct allocations

  std::uint64_t total_objects() const { return nr_slabs.load(std::memory_order_relaxed) * objects; }
  std::uint64_t active_objects() const { return total_objects() - free_in_slabs.load(std::memory_order_relaxed); }
};

// The index of ThreadCache::own that a class table keeps for c: its tc_slot, or kNoTcSlot.
inline std::uint8_t pop_slot_of(const KmemCache* c) {
  return static_cast<std::uint8_t>(c->tc_slot != 0xFF ? c->tc_slot : kNoTcSlot);
}

// --- thread-owned slabs (owned_slab.cpp; thread_cache.cpp has the registry) ------------
// A thread's full slab of `objects` slots goes back to its partial list once a quarter of it
// (at least one slot) is free: KmemCache::unfull_inuse.
inline std::uint16_t unfull_inuse_for(unsigned objects) {
  return static_cast<std::uint16_t>(objects - (objects / 4 > 1 ? objects / 4 : 1));
}

// --- owner colouring ----------------------------------------------------------------------
// Every slab of a cache kept its owner vector at the same offset, after its slots, and slabs
// are aligned to their size (64 KiB for a thread-owned one): the vectors of all a class's slabs
// fell into one set of every cache level whose set index lies within the slab — the first
// level's 4 KiB of sets, and the second's 64 KiB on many cores. A program with more slabs of a
// class than a set has ways lost the owner byte's line on nearly every free. cachegrind, larson
// at 1 thread (32 KiB and 1 MiB, 8-way): the free fast path's owner-byte load missed the first
// level 1.29 M times and the last 372 K times in 1.96 M frees, 70 % of the program's last-level
// read misses, for some hundred lines of owner bytes; perf put 44 % of free's samples on it.
// So each slab shifts its vector by (its slab number & the cache's mask) lines, as Linux's SLAB
// coloured its objects. The fast paths read the shifted offset from the slab's own geometry
// copy (OwnedSlabGeometry), so the colour costs them nothing; every other path asks
// SlabAllocator::owners_offset_at. A thread-owned cache keeps room for kOwnerColours (448 bytes
// of its 64 KiB slab: owned_objects_for); any other cache colours within what its slabs leave.
inline constexpr unsigned kOwnerColours = 8;
inline constexpr unsigned kOwnerColourBytes = 64;
// The colour mask of cache c from its geometry (order, objects, owners_offset): the most
// colours, a power of two up to kOwnerColours, that fit in what its slabs leave after their
// slots and owner vector (0 for off-slab owners). size_cache and reattach both derive it here.
inline std::uint8_t owner_colour_mask_for(const KmemCache* c) {
  if (c->offslab_owners) return 0;
  std::uint64_t leftover = (std::uint64_t{kPageSize} << c->order) - c->owners_offset - c->objects;
  unsigned n = 1;
  while (n < kOwnerColours && std::uint64_t{2 * n - 1} * kOwnerColourBytes <= leftover) n *= 2;
  return static_cast<std::uint8_t>(n - 1);
}
inline constexpr unsigned kMaxHeaps = 16;
// The generation of a heap with no thread caches (no slot ever holds it; slots start at 0).
inline constexpr std::uint64_t kNoHeapGen = ~std::uint64_t{0};
// Thread ids a heap hands out at once (1 .. kMaxTcIds - 1; 0 is "owned by none"). A thread
// beyond them allocates and frees under the cache locks, as a debug cache does.
inline constexpr unsigned kMaxTcIds = 4096;
// The slab state word (see the top of this file).
inline constexpr std::uint32_t kRemoteNone = 0xFFFF;
inline constexpr std::uint32_t kSlabFull = 1u << 31;
inline constexpr std::uint32_t kSlabUnowned = kRemoteNone;  // owner 0, no remote frees
// A free-list link (or head) with this bit set: "every slot below the frontier is free and
// not threaded yet" (owned slabs start so; extend_lazy threads a frame at a time, from the top
// of the slab down). Its other bits hold the frontier: the offset of the lowest slot threaded,
// the one whose link it is, so that malloc's prefetch of the next pop's line at the low 16
// bits of the link it pops (alloc_fast_owned) lands on the slot it was read from, in the
// cache, and never on an untouched frame (there a prefetch walks the page tables to a
// missing page on every call: a hot pair of 4 KiB objects, each the last of its frame's
// threaded list, took 41-47 ns a pair instead of ~10). A fresh slab's head names the end of
// its slots. Why downwards: an owned slab's owner bytes lie after its slots (size_cache), so
// its first objects share the owner bytes' frame, and a slab a thread takes for a few
// objects costs one frame, not two (one per size class each thread uses).
inline constexpr std::uint32_t kLazyLink = 1u << 31;
// The lazy link of the unthreaded slots below `frontier` (a multiple of the slot size, above
// 0: with nothing below, the link is kNoObject).
constexpr std::uint32_t lazy_link(std::uint32_t frontier) {
  return kLazyLink | frontier;
}
// The frontier a lazy link names.
constexpr std::uint32_t lazy_frontier(std::uint32_t link) {
  return link & ~kLazyLink;
}
static_assert(lazy_frontier(lazy_link(4096)) == 4096);
static_assert((lazy_link(8192) & 0xFFFF) == 8192, "a popped lazy link prefetches the slot it was read from");
// The in-use count (lru.inuse) of the slab a thread allocates from (its cur) carries this bit
// while it is cur (set_cur, owned_slab.cpp), so that the free fast path's room test is one
// compare: a slab that is not cur must go to the general path for its last object (it may
// give the slab back), cur keeps its last object's free on the fast path, and telling the two
// apart had cost the free a walk from the slab's cache to the thread's cur (four loads and ten
// instructions on every free of a slab's only object: a hot malloc/free pair). Owned slabs hold
// fewer than 2^13 objects (64 KiB of slots of at least 8 bytes: create aligns to 8), so the
// count never reaches the bit; a slab owned by none never has it, and owned_inuse gives the
// count without it.
inline constexpr std::uint16_t kInuseCur = 1u << 15;
inline unsigned owned_inuse(const Page* head) {
  return head->lru.inuse & ~unsigned{kInuseCur};
}
inline constexpr unsigned kSlabStateOwnerShift = 16;
inline constexpr std::uint32_t kSlabStateOwnerMask = 0x7FFFu << kSlabStateOwnerShift;
// The largest slab whose offsets fit the state's 16 bits: a cache of larger slabs gets no tc_slot.
inline constexpr std::uint32_t kMaxOwnedSlabBytes = 64u << 10;
static_assert(kMaxOwnedSlabBytes / 8 < kInuseCur, "an owned slab's object count stays below kInuseCur");
// Every cache with a tc_slot has slabs of this order (64 KiB, kMaxOwnedSlabBytes) with their
// owner bytes inside: a free finds the slab's head descriptor by masking the address when the
// RAM is aligned to it (owned_by_mask()), and the owner byte with no branch.
inline constexpr unsigned kOwnedSlabOrder = 4;
// Slabs a thread's frees empty stay with it, up to this many (4 MiB) across its caches, rather
// than go back to their cache at once: a program that frees its lists and builds them again
// (kmm-workloads `small`) then reuses its own slabs, lines still in its core's cache, with no
// cache lock; given back to the cache they went to whichever thread asked next, and with two
// threads every slab's lines moved between the cores (2 threads: 50 % more CPU than 1 for the
// same work). 16 slabs (1 MiB) held only part of `small`'s 3.6 MB of lists a thread, and the
// rest still crossed: `small 2 4`, interleaved, best of 5, 0.0955 s with 16, 0.0851 with 32,
// 0.0690 with 64, 0.0687 with 128, 0.0675 with 4096 (mimalloc 0.0631). A thread's kept slabs
// are still its memory for peak RSS; the purge round gives the calling thread's back
// (release_kept_empty_slabs), and a thread's exit all of them.
inline constexpr unsigned kKeptEmptySlabs = 64;
// A frame's address >> this is its descriptor's offset in mem_map (page-aligned addresses).
inline constexpr unsigned kPageToDescShift = kPageShift - 5;
static_assert(sizeof(Page) == 1u << 5);
static_assert((std::uint64_t{kPageSize} << kOwnedSlabOrder) == kMaxOwnedSlabBytes);
// The slots of a thread-owned slab of size-byte objects (size_cache): as many as fit beside
// their owner bytes, less the room for every owner colour (slab.h, owner colouring) where the
// slots then still end in the slab's last frame: a thread's first objects, threaded from the
// top, share the owner bytes' frame (kLazyLink). (16-byte objects would end a frame lower:
// theirs stay uncoloured, and their 3.8 KB owner vector spans 60 lines, 60 sets, anyway.)
inline std::uint32_t owned_objects_for(std::uint32_t size) {
  std::uint32_t coloured = (kMaxOwnedSlabBytes - (kOwnerColours - 1) * kOwnerColourBytes) / (size + 1u);
  if (coloured * size >= kMaxOwnedSlabBytes - kPageSize) return coloured;
  return kMaxOwnedSlabBytes / (size + 1u);
}

// A thread-owned slab's copy of its cache's geometry, in the descriptor of the slab's second
// frame (its tail.owners bytes: a slab whose owner bytes are inside it never uses them),
// written when the slab is made (new_slab) or adopted from persistent RAM (adopt_slab), never
// changed while the slab lives but for room_floor (below). mem_map puts a 64 KiB slab's head
// descriptor at a multiple of 512 bytes (set_owner_mask_orders), so the two descriptors share
// one cache line: the free fast path reads its slab's state, free list and geometry from that
// line and then the owner byte, and never the cache, whose line a program with many size
// classes keeps losing (larson at 1 thread: 277 K cache-line misses on it in 2 M frees,
// cachegrind), and whose address it would have to wait for before the owner byte's.
// room_floor is the free fast path's room test, kept by the slab's owner: a free with the
// slab's in-use count at or below it takes the general path. 1 while the slab is not set aside
// as full (its last object may give the slab back), KmemCache::unfull_inuse + 1 while it is
// (kSlabFull: the general path moves it back to partial). Only the owning thread writes it
// (set_room_floor, wherever it sets or clears kSlabFull on a slab of its own; disown and own
// put it back to 1) and only the owner's fast path reads it, after the state word said the
// slab is its: in a program that frees at random half the frees land on a slab set aside as
// full (larson), and the test is one load and one compare, with no branch on the full bit
// (that branch missed 915 K times in 2 M frees) and no arithmetic on the state word.
struct OwnedSlabGeometry {
  std::uint32_t reciprocal;     // KmemCache::reciprocal
  std::uint32_t objects;        // KmemCache::objects
  std::uint16_t owners_offset;  // KmemCache::owners_offset (inside a 64 KiB slab: below 2^16)
  std::uint16_t room_floor;     // 1, or KmemCache::unfull_inuse + 1 while set aside as full
  std::uint32_t fl_key;         // KmemCache::fl_key
};
static_assert(sizeof(OwnedSlabGeometry) == kTailOwnerBytes);

// OwnedSlabGeometry's last three fields as the one 64-bit word they make in memory (little
// endian, as every target kmm builds for): owners_offset in bits 0-15, room_floor in 16-31,
// fl_key in 32-63 (SlabAllocator::owned_layout_word reads it).
struct OwnedSlabLayoutWord {
  std::uint64_t bits;
  std::uint16_t owners_offset() const { return static_cast<std::uint16_t>(bits); }
  std::uint16_t room_floor() const { return static_cast<std::uint16_t>(bits >> 16); }
  std::uint32_t fl_key() const { return static_cast<std::uint32_t>(bits >> 32); }
};
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "OwnedSlabLayoutWord reads the fields little endian");
static_assert(offsetof(OwnedSlabGeometry, room_floor) == offsetof(OwnedSlabGeometry, owners_offset) + 2 &&
              offsetof(OwnedSlabGeometry, fl_key) == offsetof(OwnedSlabGeometry, owners_offset) + 4 &&
              offsetof(OwnedSlabGeometry, fl_key) + 4 == sizeof(OwnedSlabGeometry));

// The fast paths' slot test. For a byte offset off in a slab of a cache c, q = off *
// c->reciprocal (ceil(2^32 / size)) holds off / size in its high half, and its low half says
// whether off is a multiple of size, with no second multiply: off = k * size + r gives a low
// half of k * (reciprocal * size - 2^32) + r * reciprocal, which is below 2^16 when r == 0
// and at least reciprocal > 2^16 when not, for every cache whose slabs threads own (64 KiB:
// size and objects * size are below 2^16, so nothing carries into the high half). An offset
// beyond the slots gives a high half of at least `objects`.
inline bool owned_slot_start(std::uint64_t q) {
  return static_cast<std::uint32_t>(q) < (1u << 16);
}
static_assert(kMaxOwnedSlabBytes <= (1u << 16));

// What free_fast did: nothing (the general path decides), the free, or the free and the
// thread's kFreeTickInterval-th fast free since the last tick (ThreadHotWords::free_countdown).
enum FreeFastResult : int { kFreeFastNo = 0, kFreeFastDone = 1, kFreeFastTick = 2 };
inline constexpr std::int32_t kFreeTickInterval = 1024;

// One thread's slabs of one cache. Only the owning thread reads or writes it (and a drain,
// when every other thread is quiet).
struct OwnedSlabs {
  Page* cur;      // the slab allocations pop from; ThreadCache::no_slab when there is none
  char* base;     // cur's memory
  pfn_t partial;  // this thread's slabs with room, cur among them (linked through lru)
  pfn_t full;     // those found full (kSlabFull set)
};

// Where a cache's OwnedSlabs lie in a ThreadCache: the byte offset of own[slot] from own[0].
// The class tables of Kmalloc and the shim keep this, not the slot, so that a pop reaches its
// slab with one addressing mode from the thread cache's address (a slot had to be scaled by
// OwnedSlabs' 24 bytes first: two lea, on every malloc).
using own_off_t = std::uint16_t;
inline constexpr own_off_t own_offset(unsigned slot) {
  return static_cast<own_off_t>(slot * sizeof(OwnedSlabs));
}
static_assert((kNoTcSlot + 1) * sizeof(OwnedSlabs) <= 0xFFFF, "own_off_t holds every slot's offset");

struct ThreadCache {
  SlabAllocator* heap;
  ThreadCache* next;
  ThreadCache* prev;
  Page* pages;
  // 1 while this thread's kfree of a module's object is between reading the owner's gone
  // flag and clearing the owner byte (see free_page_object and fence_module_frees).
  std::uint32_t in_free;
  std::uint32_t id;  // the owner tag in its slabs' state words
  std::uint32_t owner_bits;  // id << kSlabStateOwnerShift: the state word's owner field, as free_fast compares it
  // Slabs on this thread's partial lists that are empty and not cur, kept for its next
  // allocations (at most kKeptEmptySlabs; owned_slab.cpp). Atomic: kmem_cache_destroy gives
  // back other threads' slabs of its cache (disown_slot) while they use their other caches.
  std::uint32_t kept_empty;
  Page no_slab;      // lru.freelist kNoObject: the cur of a slot with no slab yet
  // no_slab's "second frame", where a slab's geometry copy would be (alloc_fast_owned reads
  // cur's): all zero, so it holds no objects and every pop from no_slab fails its slot test.
  Page no_slab_geometry;
  OwnedSlabs own[kMaxTcSlots + 1];  // own[kNoTcSlot] is no cache's: its cur stays no_slab
};
static_assert(offsetof(ThreadCache, no_slab_geometry) == offsetof(ThreadCache, no_slab) + sizeof(Page));

#if KMM_HAVE_THREADS
// This thread's cache of each allocator, checked against the allocator's generation so a
// machine that shut down is never touched. __thread (not thread_local): plain data with no
// dynamic initialisation, so no TLS wrapper call on the fast path; initial-exec, because kmm
// may be the process's malloc, loaded at start.
struct TcTlsSlot {
  std::uint64_t gen;
  ThreadCache* tc;
  // tc->owner_bits, beside it: free's owner test compares the slab's state word with this,
  // so a local free reads no word of the ThreadCache at all (free_fast_at).
  std::uint32_t owner_bits;
};
extern __thread TcTlsSlot kmm_tc_slots[kMaxHeaps] __attribute__((tls_model("initial-exec")));
// The thread's words that malloc reads on every call, in one TLS block: a shared object (the
// preload) finds each TLS symbol's offset with a load from its GOT (initial-exec), so one
// symbol for both costs malloc one load, not two.
struct ThreadHotWords {
  // The slot this thread used last, of whichever heap: checked first, against the heap's
  // generation alone (generations are never reused in a process), so the common case — one
  // heap, the preload's — reads no heap id and indexes no array: 4 instructions, not 8.
  TcTlsSlot last;
  // The thread's current owner (kernel/kernel.h: current_owner; OwnerScope sets it).
  owner_t owner;
  // The fast frees' countdown to the caller's periodic work (kFreeFastTick, every
  // kFreeTickInterval-th fast free of the thread, whichever heap's: free_fast_done). Here,
  // not in the ThreadCache, so that a local free reads no word of its ThreadCache.
  std::int32_t free_countdown;
};
extern __thread ThreadHotWords kmm_thread_hot __attribute__((tls_model("initial-exec")));
#endif

// The slab configuration the preload runs (src/shim/alloc.cpp), which kmm-bench-kmalloc
// measures too: two empty slabs kept a cache, and beyond them 8 MiB of empty slabs for every
// cache together, until the purge round or the heap's growth takes them back.
inline constexpr unsigned kPreloadMinPartial = 2;
inline constexpr std::uint64_t kPreloadEmptyKeepBytes = std::uint64_t{8} << 20;

struct SlabConfig {
  bool thread_caches = false;     // thread-owned slabs (pcp) on
  unsigned min_partial = 0;       // empty slabs a cache keeps
  HardeningConfig hardening;      // slab/hardening.h
  std::uint64_t random_seed = 0;  // keys of freelist_hardened (the kernel draws it at boot)
  // Beyond each cache's min_partial, empty slabs the caches keep, all of them together (up to
  // this many bytes), until shrink_empty(): an emptied slab that is used again needs no new
  // free list, no buddy call (the shim's purge round and the heap's growth shrink; 0: an
  // emptied slab beyond min_partial goes at once). One budget for every cache, so that the
  // cache a program churns may keep much while the worst case stays this many bytes.
  std::uint64_t empty_keep_bytes = 0;
};

class SlabAllocator {
 public:
  void init(PageAllocator* zone, const SlabConfig& cfg);
  // Gives every slab back (and detaches per-thread caches). Caches must be empty or the
  // memory goes with the machine.
  void shutdown();

  // kmem_cache_create. Null (with a report) for a bad size or a full table.
  KmemCache* create(const char* name, std::size_t size, std::size_t align, std::uint32_t flags);
  // kmem_cache_destroy: refuses (reports kCacheNotEmpty, returns false) while objects live.
  bool destroy(KmemCache* c);

  // `asked` is the size the caller asked for (kmalloc), kept and red-zoned by debug caches;
  // 0 means the object size. The fast path never reads it.
  inline void* alloc(KmemCache* c, gfp_t gfp, owner_t owner, std::size_t asked = 0);
  // Its common case alone: a pop from this thread's slab of c, or null (nothing was changed;
  // alloc_slow decides). It calls nothing, so callers that keep their slow path apart (malloc)
  // save no registers.
  inline void* alloc_fast(KmemCache* c, gfp_t gfp, owner_t owner);
  // Its pop alone, with this thread's cache of this allocator in hand and no test of
  // alloc_tc_slot: for a caller whose slot is c's tc_slot or, for a cache with none, kNoTcSlot
  // (whose pop always fails; Kmalloc and the shim keep a copy beside their pointer to c, so
  // the pop indexes the thread's slabs without waiting for c's line), and which routes its
  // calls to alloc_slow itself while failslab is on: Kmalloc by thread_cache_if_fast, the
  // shim's malloc by route_faults' observer.
  static inline void* alloc_fast_owned(ThreadCache* tc, KmemCache* c, std::size_t slot, gfp_t gfp, owner_t owner) {
    return alloc_fast_owned_at(tc, c, own_offset(static_cast<unsigned>(slot)), gfp, owner);
  }
  // The same pop, its slot given as own_offset(slot) (the class tables' form).
  static inline void* alloc_fast_owned_at(ThreadCache* tc, KmemCache* c, std::size_t own_off, gfp_t gfp, owner_t owner);
  void* alloc_slow(KmemCache* c, gfp_t gfp, owner_t owner, std::size_t asked);
  // alloc_fast_owned's refusal when this thread's slab of c is spent: the refill, then the pop
  // again, without alloc_slow's path (owned_slab.cpp). For a caller that has checked what
  // alloc_fast_owned's callers check — tc is this thread's ready cache, c has a tc_slot,
  // failslab is off — and asks for GFP_KERNEL, unzeroed (the shim's malloc). Null when the
  // refill could not (out of memory, a corrupted free list): nothing was popped, and the
  // caller's general path decides and reports.
  __attribute__((noinline)) void* alloc_refilled(ThreadCache* tc, KmemCache* c, owner_t owner);
  // Frees p back to c (the cache is taken from p's slab when c is null). `action` names the
  // caller for reports. Returns the owner the object had, or kOwnerFree when refused.
  owner_t free(KmemCache* c, const void* p, const char* action);
  // The same when the caller has already found p's page descriptor (kfree): page is
  // virt_to_page(p) and p is inside this machine's memory.
  inline owner_t free_page_object(KmemCache* c, Page* page, const void* p, const char* action);
  // Its common case alone (see below): kFreeFastDone (or kFreeFastTick) when done,
  // kFreeFastNo when nothing was changed.
  // *freed is the owner the object had (kOwnerKernel, or a live module's id) when done.
  inline FreeFastResult free_fast(KmemCache* c, Page* page, const void* p, owner_t* freed);
  // The same when owned_by_mask() holds (the caller knows): the head found by masking p.
  inline FreeFastResult free_fast_masked(KmemCache* c, const void* p, owner_t* freed);
  // free_fast_masked for a caller whose every other case ends in one call (kfree): the
  // remote branch calls remote(tc, head, state_off, obj), where free_fast_masked calls
  // free_fast_remote, and returns what it returns; and the free is not counted towards the
  // tick (kFreeFastDone, never kFreeFastTick: the shim's purge tick counts its own frees). A
  // remote that finishes the free whatever happens (and says kFreeFastDone) leaves no call
  // returning into the caller's fast path, so that path saves no registers.
  // kCountTick: counted towards the tick after all (kFreeFastTick possible), for a caller that
  // runs the periodic work itself (the shim's free).
  template <bool kCountTick = false, typename Remote>
  __attribute__((always_inline)) inline FreeFastResult free_fast_masked_with(const void* p, owner_t* freed,
                                                                             Remote&& remote);
  // The remote branch's fast part (slab_fast.h): for free_fast_masked_with's remote functions.
  FreeFastResult free_fast_remote(ThreadCache* tc, Page* head, std::uint64_t state_off, char* obj);
  static inline FreeFastResult free_fast_done();
  // free_fast's refusals on a slab this thread owns that need the thread's slab lists: a
  // slab set aside as full, freed down to its threshold (back to partial), and the last object
  // of a slab that is not cur (kept empty, or given back). For a kernel-owned object of a slab
  // found by masking (owned_by_mask(), p inside this machine's memory): the fast path's checks
  // again, then free_local, without the general path's second lookup through p's descriptor
  // (owned_slab.cpp). kFreeFastDone / kFreeFastTick (counted as free_fast counts) when done,
  // kFreeFastNo — nothing changed — for everything else, which the general path decides.
  __attribute__((noinline)) FreeFastResult free_owned_refused(const void* p);
  // Every case of it (slab.cpp): module objects and the collector's race, remote frees, slabs
  // owned by no thread, a slab emptied, caches without tc_slot, and the bad frees (free_slow
  // names them).
  __attribute__((noinline)) owner_t free_page_object_general(KmemCache* c, Page* page, const void* p,
                                                             const char* action);

  // Classification of a pointer, for kfree/ksize and the protector (no side effects).
  struct ObjectInfo {
    KmemCache* cache;
    Page* slab;      // head descriptor
    unsigned index;  // slot
    owner_t owner;   // kOwnerFree if the slot is free
    bool exact;      // p is the start of the slot
  };
  // Fills info and returns true if p lies in a slab; false otherwise.
  bool lookup(const void* p, ObjectInfo* info) const;

  // The calling thread's kept empty slabs (kKeptEmptySlabs) go back to their caches.
  void release_kept_empty_slabs();
  // Gives every thread's slabs back to their caches, remote frees merged in (shutdown,
  // persistence, tests): every other thread must be quiet — their lists are read and
  // written unlocked.
  void drain_thread_caches();
  // Persistent RAM's clean detach: the heap's thread caches unregistered, every thread's slabs
  // back to their caches and every ThreadCache's frames back to the zone, so that the file's
  // stored counters agree with its mem_map (fsck of a clean heap finds nothing). As shutdown():
  // no thread may use the heap afterwards (their slots hold a stale generation).
  void release_thread_caches();
  // Empty slabs beyond min_partial go back to the page allocator (every cache but except,
  // under each lock in turn). Returns pages. try_only: a cache whose lock is busy is passed
  // over, for callers inside an allocation or holding a cache lock (except's, or the one
  // new_slab grows the heap under: Kernel::grow), where a try-lock cannot invert the order.
  std::uint64_t shrink_empty(const KmemCache* except = nullptr, bool try_only = false);
  // Every thread's slabs of one cache only (kmem_cache_destroy: no thread may be using c).
  void disown_cache_slabs(KmemCache* c);
  // This thread's slabs go back to their caches (under each cache lock).
  void drain_current_thread();
  // fork() support (Kernel::lock_all): takes the heap table, thread-cache list, registry and
  // every cache lock, in that order; unlock_all releases them (in the parent and the child).
  void lock_all();
  void unlock_all();

  // Protector support: visits every slab of every cache; see protect/.
  // The visitor runs with the cache lock held and may free objects with free_locked().
  template <typename Fn>
  void for_each_slab(KmemCache* c, Fn&& fn);
  // A slot that a free list may name: its owner byte says free (a pop that finds one in use
  // follows a link a write after free forged).
  bool slot_free(const KmemCache* c, Page* head, unsigned idx) const {
    return __atomic_load_n(owner_slot(c, head, idx), __ATOMIC_RELAXED) == kOwnerFree;
  }
  owner_t* owner_slot(const KmemCache* c, Page* head, unsigned idx) const {
    if (c->offslab_owners) return &head[1 + idx / kTailOwnerBytes].tail.owners[idx % kTailOwnerBytes];
    char* base = static_cast<char*>(phys_->page_address(head));
    return reinterpret_cast<owner_t*>(base + owners_offset_at(c, base)) + idx;
  }
  // The offset of the owner vector of c's slab at base (in-slab owners): owners_offset plus
  // the slab's colour (owner_colour_mask_for). The slab number counts from the RAM's start,
  // not its address, so a heap file's slabs keep their colours wherever it is mapped.
  std::uint32_t owners_offset_at(const KmemCache* c, const void* base) const {
    auto slab_no = static_cast<std::uint32_t>(
        static_cast<std::uintptr_t>(static_cast<const char*>(base) - phys_->base()) >> (kPageShift + c->order));
    return c->owners_offset + (slab_no & c->owner_colour_mask) * kOwnerColourBytes;
  }
  void* slab_base(const Page* head) const { return phys_->page_address(head); }
  // Frees slot idx of a slab whose cache lock the caller holds (the collector's path): into
  // the slab, or onto its remote list when a thread owns it. True when the slab went back to
  // the page allocator with it (head is no longer a slab).
  bool free_slot_locked(KmemCache* c, Page* head, unsigned idx);
  // The collector's claim on a gone module's object: the owner byte goes from `expected` to
  // free with an atomic exchange, exactly as kfree's path for module-owned objects does, so
  // of a kfree and a pass racing on one object exactly one frees it. False: not claimed (it
  // was freed, or changed owner, meanwhile). free_claimed_slot_locked then frees the slot.
  bool claim_slot(const KmemCache* c, Page* head, unsigned idx, owner_t expected) {
    return __atomic_compare_exchange_n(owner_slot(c, head, idx), &expected, kOwnerFree, false, __ATOMIC_ACQ_REL,
                                       __ATOMIC_RELAXED);
  }
  bool free_claimed_slot_locked(KmemCache* c, Page* head, unsigned idx);
  // Replaces the owner of a live object (ownership transfer); false if p is not live.
  bool set_owner(const void* p, owner_t owner);

  // --- hardening (slab/hardening.h) ---
  // The free link of a slot, stored (encode) and read back (decode). With freelist_hardened
  // the stored word is the offset XORed with the cache's key and bits of the slot's address.
  static std::uint32_t link_mask(const KmemCache* c, const void* slot) { return link_mask_of(c->fl_key, slot); }
  static std::uint32_t link_mask_of(std::uint32_t fl_key, const void* slot) {
    if (__builtin_expect(fl_key == 0, 1)) return 0;  // freelist_hardened off: the common case laid out straight
    auto a = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(slot) >> 3);
    return fl_key ^ __builtin_bswap32(a);
  }
  void set_link(const KmemCache* c, void* slot, std::uint32_t next) const {
    std::uint32_t v = next ^ link_mask(c, slot);
    std::memcpy(static_cast<char*>(slot) + c->fp_offset, &v, sizeof v);
  }
  std::uint32_t get_link(const KmemCache* c, const void* slot) const {
    std::uint32_t v;
    std::memcpy(&v, static_cast<const char*>(slot) + c->fp_offset, sizeof v);
    return v ^ link_mask(c, slot);
  }
  // The same for a cache with a tc_slot, whose link is at offset 0 (it is no debug cache:
  // fp_offset is 0, create() checks it), so the fast paths read no fp_offset.
  // With the cache's fl_key already in hand (the free fast path reads it before its stores).
  static void store_owned_link(std::uint32_t fl_key, void* slot, std::uint32_t next) {
    std::uint32_t v = next ^ link_mask_of(fl_key, slot);
    std::memcpy(slot, &v, sizeof v);
  }
  static void set_owned_link(const KmemCache* c, void* slot, std::uint32_t next) {
    store_owned_link(c->fl_key, slot, next);
  }
  static std::uint32_t get_owned_link(const KmemCache* c, const void* slot) { return load_owned_link(c->fl_key, slot); }
  static std::uint32_t load_owned_link(std::uint32_t fl_key, const void* slot) {
    std::uint32_t v;
    std::memcpy(&v, slot, sizeof v);
    return v ^ link_mask_of(fl_key, slot);
  }
  // Debug caches: the size a live object was asked for (its object size when not kept), and
  // resizing it in place (krealloc within the slot): false when new_size does not fit.
  std::size_t asked_size(const KmemCache* c, const void* p) const;
  bool resize_in_place(KmemCache* c, void* p, std::size_t new_size);
  // --- a module's objects freed while the collector may reclaim them -----------------------
  // The collector frees objects of gone modules only. Before a pass sweeps them it marks
  // their owners gone (mark_owners_gone) and calls fence_module_frees(): a process-wide
  // barrier (pal.h's membarrier) and then a wait until no thread is inside the window below.
  // A kfree of a module's object (free_module_object_plain) raises its thread's in_free,
  // reads the owner's gone flag and, if the module is live, clears the owner byte with a
  // plain store and lowers in_free: a thread that read "live" either finished before the
  // fence returned, or read after the barrier and saw "gone" — and a gone owner's object
  // is claimed by exchange. So the common free of a live module's object needs no locked
  // instruction (Linux's membarrier pairs a rare heavy side with a frequent light one the
  // same way). Without the barrier call (fence_ok_ false), every module object is exchanged.
  bool free_module_object_plain(ThreadCache* tc, owner_t* slot, owner_t owner) {
    if (tc == nullptr || !__atomic_load_n(&fence_ok_, __ATOMIC_RELAXED)) return false;
    const bool gone = enter_module_window(tc, owner);
    if (!gone) __atomic_store_n(slot, kOwnerFree, __ATOMIC_RELAXED);
    close_module_window(tc);
    return !gone;
  }
  // The window's two ends, tc's (fence_ok_ true): entering raises tc's in_free, then reads and
  // returns the owner's gone flag; closing lowers in_free (release: after the window's work).
  bool enter_module_window(ThreadCache* tc, owner_t owner) {
    __atomic_store_n(&tc->in_free, 1u, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);  // the fence's barrier orders this for the CPU
    return __atomic_load_n(&owner_gone_[owner], __ATOMIC_RELAXED) != 0;
  }
  // The window fence_module_frees waits out (the one free_module_object_plain opens), opened
  // for other work on a block of module `owner` that a pass must not meet halfway: growing a
  // page run in place, choosing the owner of a block realloc moves. Raises this thread's
  // in_free, then reads the owner's gone flag into *gone: a pass that begins later waits at its
  // fence until close_module_window; one that began before has set the flag. Returns what
  // close_module_window takes: the thread cache whose window is open or, for a thread with no
  // cache (past its exit hook, beyond kMaxTcIds, a heap without thread caches) or a process
  // with no barrier call, unfenced_window(): a count of such windows raised by a locked
  // read-modify-write before the flag is read (seq_cst on both sides, so the fence, which
  // stores the flags first, sees the count or the window sees the flag). Nothing in the
  // window may free a module's object (its own window would close this one early);
  // allocating and taking frames do not.
  ThreadCache* open_module_window(owner_t owner, bool* gone) {
    ThreadCache* tc = thread_cache();
    if (tc == nullptr || !__atomic_load_n(&fence_ok_, __ATOMIC_RELAXED)) {
      __atomic_fetch_add(&unfenced_windows_, 1u, __ATOMIC_SEQ_CST);
      *gone = __atomic_load_n(&owner_gone_[owner], __ATOMIC_SEQ_CST) != 0;
      return unfenced_window();
    }
    *gone = enter_module_window(tc, owner);
    return tc;
  }
  static void close_module_window(ThreadCache* tc) {
    if (tc == unfenced_window())
      __atomic_fetch_sub(&unfenced_windows_, 1u, __ATOMIC_RELEASE);
    else if (tc != nullptr)
      __atomic_store_n(&tc->in_free, 0u, __ATOMIC_RELEASE);
  }
  // open_module_window's window of a thread with no cache or no barrier call: no cache's
  // address (a function, not a pointer constant: reinterpret_cast makes no constant
  // initializer, and the preload's malloc runs before static constructors do).
  static ThreadCache* unfenced_window() { return reinterpret_cast<ThreadCache*>(std::uintptr_t{16}); }
  // Such windows open now, in every heap (fence_module_frees waits for none to be).
  static inline std::uint32_t unfenced_windows_ = 0;
  // In a fork's child, where only the forking thread runs: every other thread's window is
  // closed. One open at the fork (a realloc waiting inside it for a lock fork_prepare held,
  // a free preempted inside it) would never close there, and the child's next pass would
  // wait at its fence forever.
  void close_windows_after_fork();
  void mark_owners_gone(const bool* dead);  // dead[kMaxOwners]
  void set_owner_live(owner_t o) { __atomic_store_n(&owner_gone_[o], std::uint8_t{0}, __ATOMIC_RELAXED); }
  void fence_module_frees();
  bool module_free_fence() const { return __atomic_load_n(&fence_ok_, __ATOMIC_RELAXED); }

  // Objects and bytes waiting in the quarantine; flush gives every one back to its slab.
  std::uint64_t quarantine_objects() const { return __atomic_load_n(&q_count_, __ATOMIC_RELAXED); }
  std::uint64_t quarantine_bytes() const { return __atomic_load_n(&q_bytes_, __ATOMIC_RELAXED); }
  void quarantine_flush();
  // An allocation that found no memory calls this once, then tries once more when it returns
  // true: the quarantine's objects are free memory (their slabs may go back whole), and a
  // correct program must not fail for what it freed. Callers hold no cache lock (flushing
  // takes each object's cache lock), which is why this is not a hook of the page allocator:
  // alloc_central_locked asks the zone for a slab under its cache's lock.
  bool reclaim_quarantine() {
    if (quarantine_objects() == 0) return false;
    quarantine_flush();
    return true;
  }

  // A cache is published by its in_use flag (release in create, acquire here): any thread may
  // look caches up while another creates or destroys one.
  KmemCache* cache(unsigned id) {
    return id < kMaxCaches && __atomic_load_n(&caches_[id].in_use, __ATOMIC_ACQUIRE) ? &caches_[id] : nullptr;
  }
  unsigned nr_cache_ids() const { return kMaxCaches; }
  PageAllocator* zone() const { return zone_; }
  PhysMem* phys() const { return phys_; }
  const SlabConfig& config() const { return cfg_; }
  std::uint64_t slab_pages() const { return slab_pages_.load(std::memory_order_relaxed); }
  // Bytes of empty slabs the caches keep beyond their min_partial (SlabConfig::empty_keep_bytes).
  std::uint64_t kept_empty_bytes() const { return kept_empty_bytes_.load(std::memory_order_relaxed); }

  bool check_invariants(TextSink* why);
  bool check_cache(KmemCache* c, TextSink* why);

  // Persistent RAM (persist/rebuild.cpp; reattach and is_cache: persist/attach.cpp).
  // rebuild_begin: locks reset, every cache's lists and counters emptied, per-thread caches
  // dropped (and the heap registered anew). adopt_slab:
  // the slab at head (a valid PG_slab head of c) joins c with its free list rebuilt from its
  // owner bytes (0 = free); returns its objects in use (an empty slab is not adopted).
  void rebuild_begin();
  unsigned adopt_slab(KmemCache* c, Page* head);
  // Before either, at attach: the pointers into the Kernel object re-set (phys, zone), and
  // every cache in use checked against what create() can make (geometry within its slab,
  // owner bytes inside the slab or its tails, tc slots in range (and only for slabs whose
  // offsets fit the state word), no debug caches,
  // which backing= refuses): a heap file is input from outside. null, or what is wrong.
  // The zone's object is still the file's then (its vtable another process's): reattach calls
  // nothing through it, and attach calls set_owner_mask_orders once the zone is rebuilt.
  const char* reattach(PhysMem* phys, PageAllocator* zone);
  void set_owner_mask_orders();
  // c is a cache of this allocator in use (a pointer read from a heap file is checked so).
  bool is_cache(const KmemCache* c) const;

  // Per-thread cache plumbing (thread_cache.cpp).
  ThreadCache* thread_cache() {
#if KMM_HAVE_THREADS
    if (__builtin_expect(kmm_thread_hot.last.gen == heap_gen_, 1)) return kmm_thread_hot.last.tc;
    TcTlsSlot& s = kmm_tc_slots[heap_id_];
    if (s.gen == heap_gen_) {
      kmm_thread_hot.last = s;
      return s.tc;
    }
    return thread_cache_slow();
#else
    return nullptr;
#endif
  }
  ThreadCache* thread_cache_slow();
  // Whether this thread's cache of this heap is ready (the generation test alone), and after
  // that the cache and its owner bits, each read from TLS where it is used: free_fast_at holds
  // no register for the cache across the free. Never null when the generation matches: a
  // slot's gen is set only with its tc, and a heap with no thread caches has kNoHeapGen, which
  // no slot holds. Another heap's slot in kmm_thread_hot.last counts as not ready (the general
  // path sets it).
  bool thread_cache_ready() const {
#if KMM_HAVE_THREADS
    return kmm_thread_hot.last.gen == heap_gen_;
#else
    return false;
#endif
  }
  static ThreadCache* ready_thread_cache() {
#if KMM_HAVE_THREADS
    ThreadCache* tc = kmm_thread_hot.last.tc;
    if (tc == nullptr) __builtin_unreachable();  // after thread_cache_ready (above)
    return tc;
#else
    return nullptr;
#endif
  }
  static std::uint32_t ready_owner_bits() {
#if KMM_HAVE_THREADS
    return kmm_thread_hot.last.owner_bits;
#else
    return 0;
#endif
  }
  // This thread's cache when it has one already, else null (no call: the inline paths use it
  // and leave a thread's first use to their slow paths).
  ThreadCache* thread_cache_if_ready() {
    return __builtin_expect(thread_cache_ready(), 1) ? ready_thread_cache() : nullptr;
  }
  // thread_cache_if_ready for a caller that pops with alloc_fast_owned, no test of
  // alloc_tc_slot (Kmalloc::kmalloc, whose slot tables hold kNoTcSlot for a cache with no
  // tc_slot): null also while failslab is on (fast_gen_), so every call then takes the slow
  // path, where the injection point is.
  ThreadCache* thread_cache_if_fast() {
#if KMM_HAVE_THREADS
    if (__builtin_expect(kmm_thread_hot.last.gen == __atomic_load_n(&fast_gen_, __ATOMIC_RELAXED), 1)) {
      ThreadCache* tc = kmm_thread_hot.last.tc;
      if (tc == nullptr) __builtin_unreachable();  // fast_gen_ is heap_gen_ or kNoHeapGen
      return tc;
    }
    return nullptr;
#else
    return nullptr;
#endif
  }
  // Every slab tc owns goes back to its cache (thread exit, drains); disown_slot for one cache.
  void disown_thread_slabs(ThreadCache* tc);
  void disown_slot(KmemCache* c, ThreadCache* tc);
  void tc_detach(ThreadCache* tc);
  // shutdown(): gives every remaining ThreadCache's pages back to the zone.
  void tc_release_all();
  // Fault injection (base/fault_inject.h): with slow true every cache's alloc_tc_slot is 0xFF,
  // so allocations leave the inline fast path for alloc_slow, where failslab is checked;
  // false restores them. Called by failslab's change hook for every heap, and at attach. The
  // observer, when one is set, is called after the caches (under the registry lock) with the
  // same argument: a caller of alloc_fast_owned routes its own fast path there.
  void route_faults(bool slow);
  using RouteObserver = void (*)(bool slow);
  void set_route_observer(RouteObserver fn);
  std::uint32_t heap_id() const {
    return heap_id_;
  }
  std::uint64_t heap_gen() const {
    return heap_gen_;
  }

 private:
  friend struct ThreadCacheOps;
  void set_fast_gen(bool slow);  // fast_gen_: heap_gen_, or kNoHeapGen when slow (see there)
  // The slab order and layout of c; `owned`: threads will own its slabs (larger slabs).
  bool size_cache(KmemCache* c, bool owned);
  Page* new_slab(KmemCache* c, gfp_t gfp);
  void discard_slab(KmemCache* c, Page* head);
  // One object from the slabs owned by none, under c->lock (a new slab when none has room).
  void* alloc_central_locked(KmemCache* c, gfp_t gfp);
  // The partial list's first slab, a new one put there when it is empty; null: out of memory.
  // Under c->lock.
  Page* partial_slab_locked(KmemCache* c, gfp_t gfp);
  // head's free list is an unthreaded run (kLazyLink): the slots that start in the frame of its
  // highest slot are threaded (at least one), downwards, their last link the rest's lazy link.
  // Checked: a bad frontier is corruption.
  void extend_lazy(const KmemCache* c, Page* head);
  // --- thread-owned slabs (owned_slab.cpp) ---
  // tc's slab of c to allocate from with its free list not empty (remote frees taken back,
  // a full slab set aside, a slab of tc's with room or one from the cache made cur); false
  // when no memory is left for a new slab.
  bool owned_refill(KmemCache* c, ThreadCache* tc, gfp_t gfp);
  // The remote list of head (owned by the caller's thread) joins its free list; true when it
  // held anything.
  bool collect_remote(KmemCache* c, Page* head);
  // A slab of c (from the cache's partial list, or new) becomes tc's; null: out of memory.
  Page* take_slab(KmemCache* c, ThreadCache* tc, gfp_t gfp);
  // Under c->lock: head, owned by none, leaves the cache's lists and becomes tc's (own_locked:
  // the counters and the state word; adopt_locked also puts it on tc's lists, for a free).
  void own_locked(KmemCache* c, ThreadCache* tc, Page* head);
  void adopt_locked(KmemCache* c, ThreadCache* tc, Page* head);
  // Under c->lock: head (owned by a thread, on none of the cache's lists) becomes owned by
  // none, its remote frees merged, and joins the cache's lists (or the page allocator).
  void disown_locked(KmemCache* c, Page* head);
  // The slot at off of head (owner byte already cleared) back to its slab, whoever owns it:
  // this thread (tc; may be null), another (the remote list) or none (under the cache lock,
  // unless `locked`: the caller holds it). True when the slab went back to the page allocator.
  bool free_owned_slot(KmemCache* c, Page* head, std::uint32_t off, ThreadCache* tc, bool locked);
  // This thread's free into its own slab (state word in hand): a full slab moves back to the
  // partial list, an emptied one (not cur) goes back to the cache.
  void free_local(KmemCache* c, ThreadCache* tc, Page* head, std::uint32_t off, std::uint32_t state);
  static std::uint32_t slab_state(const Page* head) {
    return __atomic_load_n(&head->lru.nr_pages, __ATOMIC_ACQUIRE);
  }
  static std::uint32_t* slab_state_word(Page* head) {
    return &head->lru.nr_pages;
  }
  // A thread-owned slab's geometry (OwnedSlabGeometry), beside its head descriptor. Read by
  // field, with memcpy: the bytes are an array of the descriptor's, and each is one load.
  // (For a cache with a tc_slot: its owner bytes are inside its 64 KiB slabs, so
  // owners_offset fits the copy's 16 bits: kMaxOwnedSlabBytes <= 2^16, asserted above.)
  // owners_offset is this slab's own (owners_offset_at: its colour included).
  OwnedSlabGeometry owned_geometry_of(const KmemCache* c, const Page* head) const {
    return OwnedSlabGeometry{c->reciprocal, c->objects,
                             static_cast<std::uint16_t>(owners_offset_at(c, phys_->page_address(head))),
                             room_floor_for(c, false), c->fl_key};
  }
  void set_owned_geometry(const KmemCache* c, Page* head) const {
    OwnedSlabGeometry g = owned_geometry_of(c, head);
    std::memcpy(head[1].tail.owners, &g, sizeof g);
  }
  // The room floor of a slab of c set aside as full (full) or not (OwnedSlabGeometry).
  static std::uint16_t room_floor_for(const KmemCache* c, bool full) {
    return full ? static_cast<std::uint16_t>(c->unfull_inuse + 1) : std::uint16_t{1};
  }
  // The owner's room test for a slab of c it sets aside as full (full) or takes back.
  static void set_room_floor(const KmemCache* c, Page* head, bool full) {
    std::uint16_t floor = room_floor_for(c, full);
    std::memcpy(head[1].tail.owners + offsetof(OwnedSlabGeometry, room_floor), &floor, sizeof floor);
  }
  // A slab of c its owner had set aside as full, taken back: kSlabFull cleared, and the floor.
  static void clear_full(const KmemCache* c, Page* head) {
    __atomic_fetch_and(slab_state_word(head), ~kSlabFull, __ATOMIC_RELAXED);
    set_room_floor(c, head, false);
  }
  // T: the field's type (owners_offset and room_floor are 16 bits, the rest 32).
  template <typename T = std::uint32_t>
  static T owned_geometry(const Page* head, std::size_t field) {
    T v;
    std::memcpy(&v, head[1].tail.owners + field, sizeof v);
    return v;
  }
  // The geometry's second 8 bytes (owners_offset, room_floor, fl_key: OwnedSlabLayoutWord) in
  // one load: the fast paths are bound by their loads more than by their instructions (a
  // hot kmalloc/kfree pair issues some thirty), and a shift or a zero-extension from a
  // register costs no load.
  static OwnedSlabLayoutWord owned_layout_word(const Page* head) {
    return OwnedSlabLayoutWord{owned_geometry<std::uint64_t>(head, offsetof(OwnedSlabGeometry, owners_offset))};
  }
  // Frees into the slab under the cache lock, or through the debug checks and the quarantine.
  owner_t free_unbuffered(KmemCache* c, Page* head, unsigned idx, const void* p, owner_t owner, const char* action);
  void debug_init_slot(const KmemCache* c, char* obj);
  void debug_check_free_slot(const KmemCache* c, char* obj, const char* action);
  void debug_on_alloc(const KmemCache* c, char* obj, std::size_t asked);
  void debug_on_free(const KmemCache* c, char* obj, const char* action);
  void quarantine_push(KmemCache* c, void* p);
  void* take_slow(KmemCache* c, gfp_t gfp);
  static void keep_asked(const KmemCache* c, char* obj, std::size_t asked);
  static void check_poison(const KmemCache* c, const char* obj, const char* action);
  owner_t free_slow(KmemCache* c, Page* page, const void* p, const char* action);
  // The owner byte of p, a slot of a slab of c. When the slab's start follows from p's address
  // (owner_mask_orders_) and its owner vector is inside the slab, the byte is found by masking,
  // without reading p's page descriptors: malloc's fast path touches no mem_map line.
  owner_t* owner_slot_of(const KmemCache* c, const void* p) const {
    if (__builtin_expect(slab_found_by_mask(c) && !c->offslab_owners, 1)) {
      auto a = reinterpret_cast<std::uintptr_t>(p);
      std::uintptr_t mask = slab_mask(c);
      auto idx = static_cast<unsigned>((std::uint64_t{a & mask} * c->reciprocal) >> 32);
      auto* base = reinterpret_cast<char*>(a & ~mask);
      return reinterpret_cast<owner_t*>(base + owners_offset_at(c, base)) + idx;
    }
    Page* head = phys_->compound_head(phys_->virt_to_page(p));
    return owner_slot(c, head, slot_index(c, head, p));
  }
  // Sets the owner byte of a slot just taken (p in a slab of c).
  void mark_allocated(const KmemCache* c, void* p, owner_t owner) {
    __atomic_store_n(owner_slot_of(c, p), owner == kOwnerFree ? kOwnerKernel : owner, __ATOMIC_RELAXED);
  }
  // set_owner_mask_orders (public, above) sets owner_mask_orders_ from the zone and the
  // RAM's alignment (init, and at attach: the file's mapping may lie elsewhere).
  // A slab of c starts at its objects' addresses rounded down to its size (slab_mask(c)).
  bool slab_found_by_mask(const KmemCache* c) const {
    return c->order < owner_mask_orders_;
  }
  static std::uintptr_t slab_mask(const KmemCache* c) { return (std::uintptr_t{kPageSize} << c->order) - 1; }

 public:
  unsigned owner_mask_orders() const { return owner_mask_orders_; }  // tests
  // True when head's copy says what c says, its room_floor what its state says (check_cache;
  // tests).
  bool owned_geometry_ok(const KmemCache* c, const Page* head) const {
    OwnedSlabGeometry g = owned_geometry_of(c, head);  // no padding: the bytes are the fields
    std::uint32_t state = __atomic_load_n(&head->lru.nr_pages, __ATOMIC_RELAXED);
    g.room_floor = room_floor_for(c, (state & kSlabStateOwnerMask) != 0 && (state & kSlabFull));
    return std::memcmp(head[1].tail.owners, &g, sizeof g) == 0;
  }
  // Owned slabs (kOwnedSlabOrder, every cache with a tc_slot) start at addresses that are
  // multiples of their size, so free_fast finds a head by masking p (free_fast_masked).
  bool owned_by_mask() const {
    return kOwnedSlabOrder < owner_mask_orders_;
  }
  // p lies in this machine's RAM and owned_by_mask() holds: one compare for both (kfree's
  // first test), from the line free's fast path reads next (heap_gen_'s).
  bool in_masked_ram(const void* p) const {
    return reinterpret_cast<std::uintptr_t>(p) - masked_ram_lo_ < masked_ram_bytes_;
  }
  // That range, for a caller that keeps a copy it reads without this object (the shim's free:
  // g_ram_lo, g_ram_bytes). 0 bytes when !owned_by_mask().
  std::uintptr_t masked_ram_lo() const {
    return masked_ram_lo_;
  }
  std::uintptr_t masked_ram_bytes() const {
    return masked_ram_bytes_;
  }

 private:
  // A slab of c became empty on its partial list, or stopped being (taken, or discarded):
  // nr_empty and kept_empty_bytes_ together. c's lock held.
  void empty_added(KmemCache* c) {
    if (c->nr_empty++ >= cfg_.min_partial)
      kept_empty_bytes_.fetch_add(std::uint64_t{kPageSize} << c->order, std::memory_order_relaxed);
  }
  void empty_removed(KmemCache* c) {
    if (--c->nr_empty >= cfg_.min_partial)
      kept_empty_bytes_.fetch_sub(std::uint64_t{kPageSize} << c->order, std::memory_order_relaxed);
  }
  // c's share of kept_empty_bytes_: its empty slabs beyond min_partial. c's lock held.
  std::uint64_t kept_bytes_of(const KmemCache* c) const {
    return c->nr_empty > cfg_.min_partial ? std::uint64_t{c->nr_empty - cfg_.min_partial} << (kPageShift + c->order)
                                          : 0;
  }
  // Whether an emptied slab of c stays on its partial list (settle_slab_locked): min_partial,
  // then the budget of SlabConfig::empty_keep_bytes, which other caches give up to it.
  bool keep_empty_locked(KmemCache* c);
  // Slot idx back into a slab owned by none; true when the slab went to the page allocator.
  bool free_central_locked(KmemCache* c, Page* head, unsigned idx);
  // Links the free slot at byte offset off of head's slab (obj) onto its free list; the
  // counters and lists are settle_slab_locked's.
  void link_free_locked(const KmemCache* c, Page* head, void* obj, std::uint32_t off) const {
    set_link(c, obj, head->lru.freelist);
    head->lru.freelist = off;
    head->lru.inuse--;
  }
  bool settle_slab_locked(KmemCache* c, Page* head, bool was_full, unsigned freed);
  // free_fast's remote branch: free_fast_remote itself.
  auto call_free_fast_remote() {
    return [this](ThreadCache* tc, Page* head, std::uint64_t state_off, char* obj) {
      return free_fast_remote(tc, head, state_off, obj);
    };
  }
  // p's 64 KiB slab start: the owned slab that holds p, if one does (owned_by_mask()).
  static char* owned_slab_base(const void* p) {
    return reinterpret_cast<char*>(reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{kMaxOwnedSlabBytes - 1});
  }
  // The head descriptor of the owned slab at base (virt_to_page(base) in two instructions).
  Page* owned_head_at(const char* base) const {
    return reinterpret_cast<Page*>(owned_head_bias_ + (reinterpret_cast<std::uintptr_t>(base) >> kPageToDescShift));
  }
  // kCountTick: the free counts towards the tick (free_fast_done); remote: the remote
  // branch (free_fast_masked_with).
  template <bool kCountTick, typename Remote>
  __attribute__((always_inline)) inline FreeFastResult free_fast_at(KmemCache* c, Page* head, std::uint32_t head_flags,
                                                                    char* base, const void* p, owner_t* freed,
                                                                    Remote&& remote);
  // The head descriptor of the slab holding p (a slot of c): by masking when the slab's start
  // follows from p's address (owner_slot_of), else through p's descriptor.
  Page* slab_head_of(const KmemCache* c, const void* p) const {
    if (__builtin_expect(slab_found_by_mask(c), 1))
      return phys_->virt_to_page(reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(p) & ~slab_mask(c)));
    return phys_->compound_head(phys_->virt_to_page(p));
  }
  // A slab's head onto / off a list of slabs (a cache's, under its lock, or a thread's own),
  // linked by frame number through lru. Inline: the thread's refills and full-to-partial moves
  // make two each, and the calls were a quarter of their cost.
  void list_add(pfn_t* list, Page* head) {
    pfn_t pfn = phys_->page_to_pfn(head);
    head->lru.prev = kNoPfn;
    head->lru.next = *list;
    if (*list != kNoPfn) phys_->pfn_to_page(*list)->lru.prev = pfn;
    *list = pfn;
  }
  void list_del(pfn_t* list, Page* head) {
    if (head->lru.prev != kNoPfn) {
      phys_->pfn_to_page(head->lru.prev)->lru.next = head->lru.next;
    } else {
      *list = head->lru.next;
    }
    if (head->lru.next != kNoPfn) phys_->pfn_to_page(head->lru.next)->lru.prev = head->lru.prev;
    head->lru.next = head->lru.prev = kNoPfn;
  }
  unsigned slot_index(const KmemCache* c, const Page* head, const void* p) const {
    auto off =
        static_cast<std::uint64_t>(static_cast<const char*>(p) - static_cast<const char*>(phys_->page_address(head)));
    return static_cast<unsigned>((off * c->reciprocal) >> 32);
  }

  PhysMem* phys_ = nullptr;
  PageAllocator* zone_ = nullptr;
  SlabConfig cfg_;
  SpinLock registry_lock_;
  RouteObserver route_observer_ = nullptr;  // under registry_lock_
  KmemCache caches_[kMaxCaches];
  std::uint8_t tc_slots_used_ = 0;
  std::atomic<std::uint64_t> slab_pages_{0};
  // Per-thread caches of this allocator (thread_cache.cpp).
  SpinLock tc_list_lock_;
  ThreadCache* tc_list_ = nullptr;
  std::uint64_t tc_ids_[kMaxTcIds / 64] = {};  // thread ids in use (under tc_list_lock_; bit 0 always)
  // Per thread id, the tc_slots whose full slabs got a first remote free (owned_slab.cpp).
  std::uint32_t remote_hint_[kMaxTcIds] = {};
  // What every fast path reads and nothing writes after boot, on one line of its own, so that
  // a field added above cannot split it across two, and no counter written by the slow paths
  // shares it.
  alignas(64) std::uint64_t heap_gen_ = kNoHeapGen;
  // heap_gen_, or kNoHeapGen while failslab is on (route_faults) or with no thread caches:
  // what thread_cache_if_fast compares, so kmalloc's pop needs no test of its own for failslab.
  std::uint64_t fast_gen_ = kNoHeapGen;
  // With owned_by_mask(): mem_map's address less the RAM's start >> kPageToDescShift, so the
  // descriptor of a frame at address a (a multiple of the page size) is at this + (a >>
  // kPageToDescShift): free_fast's virt_to_page in two instructions (set_owner_mask_orders).
  std::uintptr_t owned_head_bias_ = 0;
  std::uint32_t heap_id_ = 0;
  bool fence_ok_ = false;  // the process barrier is available (pal.h)
  // Runtime state like fence_ok_: slabs of order < this start at an address that is a multiple
  // of their size (the zone's blocks are aligned, and so is the RAM); 0: none is known to.
  std::uint8_t owner_mask_orders_ = 0;
  // in_masked_ram's range: the RAM when owned_by_mask(), else empty (set_owner_mask_orders
  // writes the three together).
  std::uintptr_t masked_ram_lo_ = 0;
  std::uintptr_t masked_ram_bytes_ = 0;
  alignas(64) std::uint8_t owner_gone_[kMaxOwners];  // 1: the collector may reclaim this owner's objects
  // Quarantine: a ring of freed debug-cache objects, oldest at q_head_ (under q_lock_; a
  // cache lock is never taken while q_lock_ is held).
  SpinLock q_lock_;
  void** q_ring_ = nullptr;
  Page* q_pages_ = nullptr;
  unsigned q_order_ = 0;
  std::uint32_t q_cap_ = 0, q_head_ = 0;
  std::uint64_t q_count_ = 0, q_bytes_ = 0;
  // Bytes of the empty slabs beyond min_partial on every cache's partial list (empty_added and
  // empty_removed keep it, under the cache's lock; SlabConfig::empty_keep_bytes bounds it).
  // Last: the fields above that the fast paths read keep their offsets and lines.
  std::atomic<std::uint64_t> kept_empty_bytes_{0};
};

template <typename Fn>
void SlabAllocator::for_each_slab(KmemCache* c, Fn&& fn) {
  LockGuard g(c->lock);
  pfn_t lists[2] = {c->partial, c->full};
  for (pfn_t head_pfn : lists) {
    for (pfn_t pfn = head_pfn; pfn != kNoPfn;) {
      Page* head = phys_->pfn_to_page(pfn);
      pfn_t next = head->lru.next;
      fn(head);
      pfn = next;
    }
  }
}

// SlabAllocator::open_module_window for the length of a scope, for a block of `owner`. Not a
// module's block (the kernel's, a host program's): nothing to open, never gone.
//   ok():   the owner cannot be swept before the scope ends: not a module, or a module no pass
//           has begun to reclaim, with the window open.
//   gone(): a pass may be reclaiming the owner: a block realloc moves is then the caller's,
//           not a new block of the dead owner (Kmalloc::krealloc, the preload's resize).
// For work in place on one live block (a page run grown or resized, a debug object's size
// rewritten: Kmalloc::grow_large_in_place, resize_guarded, krealloc), open it on the block's
// owner byte instead: the owner is read once, the window opened with it, and ok() also needs
// the byte to hold that owner still once the window is open. A second read to open the window
// found kOwnerFree after a pass had claimed the block, no module, so the window let the work
// go on over a freed block (GrowInPlaceRacingTheReclaimOfAGoneModule lost a frame under TSan).
class ModuleWindow {
 public:
  ModuleWindow(SlabAllocator& a, owner_t owner) : owner_(owner) {
    if (owner >= kOwnerFirstModule) tc_ = a.open_module_window(owner, &gone_);
  }
  ModuleWindow(SlabAllocator& a, const owner_t* owner_byte)
      : ModuleWindow(a, __atomic_load_n(owner_byte, __ATOMIC_ACQUIRE)) {
    // Read again now that no pass can begin to claim it: a freed or claimed block fails here.
    live_ = owner_ != kOwnerFree && __atomic_load_n(owner_byte, __ATOMIC_ACQUIRE) == owner_;
  }
  ~ModuleWindow() { SlabAllocator::close_module_window(tc_); }
  ModuleWindow(const ModuleWindow&) = delete;
  ModuleWindow& operator=(const ModuleWindow&) = delete;
  // A module's window is always open (open_module_window), and only a module can be gone.
  bool ok() const { return live_ && !gone_; }
  bool gone() const { return gone_; }

 private:
  ThreadCache* tc_ = nullptr;
  owner_t owner_;
  bool gone_ = false;
  bool live_ = true;  // opened on an owner byte: it still held owner_, not kOwnerFree
};

}  // namespace kmm

#include "slab/slab_fast.h"  // IWYU pragma: export (the inline fast paths)

// kmm/slab/kmalloc.h — kmalloc and friends over the slab caches and the buddy allocator.
//
// Size classes are Linux's: kmalloc-8, -16, -32, -64, -96, -128, -192, -256, -512, -1k, -2k,
// -4k, -8k (KMALLOC_MAX_CACHE_SIZE = 2 pages). A request goes to the smallest class that
// holds it (1..8 -> 8, 65..96 -> 96, 129..192 -> 192, ...). Larger requests go straight to
// the page allocator, by policy:
//   pow2      a power-of-two block of pages (get_order), at most kmalloc_max (1 MiB by
//             default, the seed's stock uClinux kernel); larger requests fail;
//   kmalloc2  whole pages (alloc_pages_exact): 130 KiB takes 132 KiB, not 256 KiB.
// kmalloc(0) returns ZERO_SIZE_PTR, a distinct non-null pointer (16, as in Linux) that
// kfree accepts and ksize calls 0 bytes. Page-level blocks carry PG_large, their owner and
// their exact page count in the head descriptor.
//
// Hardening (slab/hardening.h): with guard pages, a page-level block is the pages the request
// needs (exact, under either policy) plus one guard frame after them (PG_guarded); ksize is
// then the size asked for, and the slack between it and the guard is checked on free; krealloc
// within the block's frames resizes it in place, the slack following the new size. In a
// debug cache ksize is the size asked for as well, so a caller that writes all of ksize()
// never touches a red zone.
//
// Guarded-run cache (Scudo's secondary cache): a guarded run freed with its guard frame
// protected is parked, guard still protected, for the next request of the same page count —
// protecting and unprotecting a frame are two mprotect calls (~7-10 us each on the test VM),
// which dominate a program that grows page-level blocks by realloc. At most kGuardCacheSlots
// runs and 1/32 of the managed frames (at most 2048: 8 MiB) wait; Kernel::idle
// gives back the runs that waited a whole idle period, a failed allocation gives back all
// (drain_guard_cache). A parked run stays a PG_large|PG_head|PG_guarded block whose owner is
// kOwnerFree (so a second kfree is a double free and every mem_map walker skips it), not
// counted in large_pages().
//
// Depends on: slab/slab.h, page/, pal/pal.h (guard pages).
#pragma once

#include "base/bits.h"
#include "pal/pal.h"
#include "slab/slab.h"

namespace kmm {

enum class KmallocPolicy : std::uint8_t { kPow2, kKmalloc2 };

inline void* const ZERO_SIZE_PTR = reinterpret_cast<void*>(16);
inline bool zero_or_null(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) <= 16;
}

inline constexpr unsigned kNrKmallocClasses = 13;
inline constexpr std::size_t kKmallocMaxCacheSize = 2 * kPageSize;

struct KmallocConfig {
  KmallocPolicy policy = KmallocPolicy::kPow2;
  std::uint64_t max_size = 0;  // 0: the policy's default (pow2: 1 MiB; kmalloc2: 4 MiB)
  // guard_pages: the platform that protects guard frames (null: guard pages off). A frame the
  // platform cannot protect (a static buffer; a host out of mappings) is patterned instead.
  Platform* guard_platform = nullptr;
};

class Kmalloc {
 public:
  bool init(SlabAllocator* slab, const KmallocConfig& cfg);
  // Persistent RAM (persist/attach.cpp), at attach: the pointers to the slab allocator and
  // mem_map re-set, the size classes checked to be caches in use, no guard platform (not
  // available with backing=). null, or what is wrong with the file's object.
  const char* reattach(SlabAllocator* slab, PhysMem* phys);

  // always_inline, as Linux's kmalloc is: left to GCC, a few instructions more in the pop
  // (freelist_hardened's owner check, on its own not-taken branch) made it call kmalloc from
  // kmm-bench-kmalloc's loop, and the hot pair went from 4.1 to 4.7 ns.
  __attribute__((always_inline)) void* kmalloc(std::size_t size, gfp_t gfp, owner_t owner) {
    // The class's cache and its tc_slot from two tables of ours, read at once: the pop finds
    // this thread's slab without first waiting for the cache's line (a hot pair's malloc had
    // four dependent loads before the free list's head: class index, cache, tc_slot, slab).
    // The pop alone here; everything else is kmalloc_after_fast's, called with kmalloc's own
    // arguments, so that this path keeps nothing alive for it (it saved three registers).
    if (__builtin_expect(size - 1 < kKmallocMaxCacheSize, 1)) {
      KmemCache* c;
      std::size_t own_off;
      if (size <= kSmallClassBytes) {
        std::size_t n = (size + 7) / 8;
        c = small_class_[n];
        own_off = small_own_[n];
      } else {
        unsigned i = large_class_index(size);
        c = classes_[i];
        own_off = class_own_[i];
      }
      if (ThreadCache* tc = slab_->thread_cache_if_fast())
        if (void* p = SlabAllocator::alloc_fast_owned_at(tc, c, own_off, gfp, owner)) return p;
    }
    return kmalloc_after_fast(size, gfp, owner);
  }
  void* kzalloc(std::size_t size, gfp_t gfp, owner_t owner) { return kmalloc(size, gfp | __GFP_ZERO, owner); }
  void* kcalloc(std::size_t n, std::size_t size, gfp_t gfp, owner_t owner);
  void* krealloc(void* p, std::size_t new_size, gfp_t gfp, owner_t owner);
  // Returns the owner the block had (kOwnerFree when refused or p was null/ZERO_SIZE_PTR).
  // The common call names no action: its fast path then keeps no register for one (the name
  // is made only where a slow path is called), and saves none of its own.
  owner_t kfree(const void* p) { return kfree_named(p, "kfree"); }
  owner_t kfree(const void* p, const char* action) { return kfree_named(p, action); }
  std::size_t ksize(const void* p) const;

  // What the block costs the free pool: slot size for slab objects, every page for large
  // blocks (0 for a pointer that is not a live block).
  std::size_t footprint(const void* p) const;
  // The owner of a live block's start; kOwnerFree for anything else (ksize_owner's owner).
  owner_t owner_of(const void* p) const;
  // The block's usable size and, in *owner, its owner, from one lookup (realloc wants both);
  // 0 and kOwnerFree for a pointer that is not a live block's start. (ksize alone also
  // answers for a pointer inside a page run's first frame.)
  std::size_t ksize_owner(const void* p, owner_t* owner) const;
  bool set_owner(const void* p, owner_t owner);

  // The kmalloc-N cache for 1 <= size <= 8192.
  KmemCache* cache_for(std::size_t size) const {
    if (__builtin_expect(size <= kSmallClassBytes, 1)) return small_class_[(size + 7) / 8];  // 0 falls through
    if (size > kKmallocMaxCacheSize) return nullptr;
    return classes_[large_class_index(size)];
  }
  KmemCache* class_cache(unsigned i) const { return classes_[i]; }
  static std::size_t class_size(unsigned i);
  const KmallocConfig& config() const { return cfg_; }
  SlabAllocator* slab() const { return slab_; }
  std::uint64_t max_size() const { return max_size_; }
  std::uint64_t large_pages() const { return large_pages_.load(std::memory_order_relaxed); }
  void set_large_pages(std::uint64_t n) {
    large_pages_.store(n, std::memory_order_relaxed);
  }  // persistent RAM: rebuilt at attach

  // Frees a page-level block (the collector's path; no report). Page must be a PG_large head.
  // A guarded block's slack and guard are checked first (damage is reported as corruption).
  void free_large(Page* head, const char* action = "gc_process");
  // A caller's free of a page-level block: its owner claimed first, so that of a collector
  // pass reclaiming it (claim_owner_if) and a second free exactly one frees it; the loser's
  // is reported as a double free. The owner it had, or kOwnerFree when refused.
  owner_t claim_and_free_large(Page* head, const void* p, const char* action);
  // Bytes of a page-level block the caller may use (its frames without the guard frame).
  static std::size_t large_usable_bytes(const Page* head) {
    std::size_t n = head->get_nr_pages();
    if (head->is(PG_guarded) && n != 0) --n;
    return n << kPageShift;
  }
  // Resizes a live guarded page-level block without moving it when `new_size` fits its
  // frames (the guard frame excluded): the old slack is checked (damage is reported as
  // corruption in `action`), the new slack patterned, ksize becomes new_size. False, and
  // nothing changed, for any other pointer or a size that does not fit, and for a module's
  // block that a pass may sweep meanwhile (as grow_large_in_place: ModuleWindow::ok).
  bool resize_guarded(void* p, std::size_t new_size, const char* action);
  // The size a live block answers for (ksize) becomes new_size in place, where the block keeps
  // the size asked for: an object of a debug cache (its red zone follows, SlabAllocator::
  // resize_in_place) or a guarded run (resize_guarded). So memalign's power-of-two block and a
  // realloc that shrinks in place are checked against the size asked for, not the room. False,
  // and nothing changed, for any other block, a size that does not fit, or a module's block
  // that a pass may sweep meanwhile (ModuleWindow).
  bool resize_asked(void* p, std::size_t new_size, const char* action) {
    return resize_asked_as(p, new_size, action) == AskedResize::kResized;
  }
  // resize_asked's answer with its reason: resized; a debug cache's object that must move
  // (it does not fit its slot, or a pass may sweep it); or a block that keeps no asked size.
  enum class AskedResize : std::uint8_t { kResized, kDebugObjectMoves, kNotKept };
  AskedResize resize_asked_as(void* p, std::size_t new_size, const char* action);
  // True while some block keeps its size asked for (debug caches or guard_pages): callers skip
  // resize_asked's lookup otherwise.
  bool keeps_asked_sizes() const { return cfg_.guard_platform != nullptr || slab_->config().hardening.debug_caches(); }
  // Grows a live unguarded page-level block (kmalloc's, not alloc_pages') to new_size without
  // moving it, when the frames right after it are free (PageAllocator::take_free_frames): its
  // new frames become its tails, then its length changes (persistent RAM: a crash between
  // leaves tails no head counts, which attach gives back). The new bytes are not zeroed.
  // False, and nothing changed, for any other pointer or when the frames are not free. With
  // `room` above new_size, the block grows to as many free frames as follow it up to room's
  // (realloc's headroom for the next steps: ksize says how far it went). A module's block
  // grows only while no pass may sweep it (ModuleWindow::ok): see the function.
  bool grow_large_in_place(void* p, std::size_t new_size, gfp_t gfp, std::size_t room = 0);
  // Gives the parked guarded runs back to the page allocator (all of them, or only those
  // that were already parked at the previous call when `aged_only`); returns the frames given.
  std::uint64_t drain_guard_cache(bool aged_only = false);
  std::uint64_t guard_cache_pages() const { return guard_cache_pages_.load(std::memory_order_relaxed); }
  std::uint64_t guard_cache_hits() const { return guard_cache_hits_.load(std::memory_order_relaxed); }
  SpinLock& guard_cache_lock() { return guard_cache_lock_; }  // Kernel::lock_all (fork)
  // Persistent RAM's attach: a free lock and an empty cache (guard_pages is refused with a
  // backing file, so nothing was parked; a crash inside fork may have left the lock taken).
  void reset_guard_cache() {
    guard_cache_lock_.unlock();  // free, whoever held it before the crash
    guard_cache_count_ = 0;
    guard_cache_pages_.store(0, std::memory_order_relaxed);
    guard_cache_hits_.store(0, std::memory_order_relaxed);
  }
  // Bytes a large request of `size` takes under the policy (0 when it must fail).
  std::uint64_t large_footprint(std::size_t size) const;

 private:
  // ksize's answers for a live slab object and a live page run's head (kmalloc.cpp).
  std::size_t slab_object_size(const SlabAllocator::ObjectInfo& info, const void* p) const;
  static std::size_t large_block_size(const Page* head);
  void* kmalloc_large(std::size_t size, gfp_t gfp, owner_t owner);
  void* kmalloc_large_once(std::size_t size, gfp_t gfp, owner_t owner);
  // Frames [from, to) of a page-level block become its tails (kmalloc_large, grow_large_in_place).
  void publish_large_tails(Page* head, std::uint64_t from, std::uint64_t to) const;
  void check_guard(Page* head, const char* action);
  void check_slack(Page* head, const char* action);
  void unprotect_guard(Page* head);
  bool park_guarded(Page* head, std::uint64_t npages);
  Page* take_guarded(std::uint64_t npages);
  // Sizes up to this have their class in small_class_ (kmalloc-192 is the last class of a
  // multiple of 8 apart; from 256 on the classes are powers of two).
  static constexpr std::size_t kSmallClassBytes = 192;
  // The class index of 193 <= size <= kKmallocMaxCacheSize: kmalloc-256 is index 7.
  static unsigned large_class_index(std::size_t size) {
    unsigned lg = ilog2(size - 1) + 1;  // ceil(log2(size)); size >= 193 so lg >= 8
    return 7 + (lg - 8);
  }
  // small_class_, small_own_ and class_own_ from classes_ (init, and reattach: the caches
  // keep their tc_slot in the file).
  void fill_class_tables();
  void* kmalloc_slow(std::size_t size, gfp_t gfp, owner_t owner);
  // kmalloc beyond its inline pop: the pop of a class above kSmallClassBytes, a refill, a
  // page-level block, size 0 (kmalloc.cpp).
  __attribute__((noinline)) void* kmalloc_after_fast(std::size_t size, gfp_t gfp, owner_t owner);
  __attribute__((always_inline)) owner_t kfree_named(const void* p, const char* action) {
    // A slab object of a thread-owned slab: its head by masking, with no load of p's own
    // descriptor (a line of mem_map the free would touch for nothing). Every other case ends
    // in one call in tail position — a remote free in kfree_remote, the rest in
    // kfree_after_fast, which runs every check again — so no call returns here and this path
    // saves no registers (it had four pushes and four pops, an eighth of a hot pair), and
    // kfree(p), whose action is a constant, keeps no register for it.
    if (__builtin_expect(slab_->in_masked_ram(p), 1)) {
      owner_t freed;
      auto remote = [this, action, &freed](ThreadCache* tc, Page* head, std::uint64_t state_off, char* obj) {
        freed = kfree_remote(tc, head, state_off, obj, action);
        return kFreeFastDone;
      };
      if (__builtin_expect(slab_->free_fast_masked_with(p, &freed, remote) != kFreeFastNo, 1)) return freed;
    }
    return kfree_after_fast(p, action);
  }
  owner_t kfree_slow(const void* p, const char* action);
  // kfree's cases beyond its fast path: obj of a slab another thread owns (free_fast_remote,
  // else the general path), and everything else (a slab object: the general path; the rest:
  // kfree_slow). Out of line, so that kfree calls them in tail position.
  __attribute__((noinline)) owner_t kfree_remote(ThreadCache* tc, Page* head, std::uint64_t state_off, char* obj,
                                                 const char* action);
  __attribute__((noinline)) owner_t kfree_after_fast(const void* p, const char* action);

  SlabAllocator* slab_ = nullptr;
  PhysMem* phys_ = nullptr;
  KmallocConfig cfg_;
  std::uint64_t max_size_ = 0;
  KmemCache* classes_[kNrKmallocClasses] = {};
  // (size + 7) / 8 -> the class of size, for size <= kSmallClassBytes, and where its cache's
  // slabs lie in a thread cache: own_offset of its tc_slot (of kNoTcSlot for a cache threads
  // own no slab of: its pop always fails); class_own_[i] is classes_[i]'s so.
  KmemCache* small_class_[kSmallClassBytes / 8 + 1] = {};
  own_off_t small_own_[kSmallClassBytes / 8 + 1] = {};
  own_off_t class_own_[kNrKmallocClasses] = {};
  std::atomic<std::uint64_t> large_pages_{0};

  struct ParkedRun {
    Page* head;  // its page count is head->get_nr_pages(), guard frame included
    bool aged;   // parked before the last drain_guard_cache(aged_only)
  };
  static constexpr unsigned kGuardCacheSlots = 32;
  SpinLock guard_cache_lock_;  // a leaf: nothing is taken under it
  ParkedRun guard_cache_[kGuardCacheSlots] = {};
  unsigned guard_cache_count_ = 0;                   // under guard_cache_lock_
  std::atomic<std::uint64_t> guard_cache_pages_{0};  // written under the lock
  std::atomic<std::uint64_t> guard_cache_hits_{0};
};

}  // namespace kmm

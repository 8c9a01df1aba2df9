// kmm/protect/collector.h — the idle-time collector: the paper's gc_process(), made safe.
//
// The paper's design (DIGEST 000, figure 2): when the CPU is idle, walk the record of every
// allocation; a record whose module is no longer loaded is a leak: free the block. Here the
// "record" is the owner byte of every slab object and the owner field of every page-level
// block, so a pass walks mem_map frame by frame: a slab head hands over its owner vector, a
// large block its head, a free block is stepped over whole.
//
// Modes (ProtectorMode):
//   off                  no pass ever runs: a module's leak stays until reboot (stock kernel);
//   report               a pass finds and reports the leaks of unloaded modules, frees none;
//   reclaim              the paper: blocks owned by unloaded modules are freed;
//   reclaim-unreachable  kmemleak's conservative scan first: every word of every live block of
//                        a live owner (and of registered roots) that points into a dead
//                        module's block marks it referenced, transitively; marked blocks are
//                        spared and reported as orphaned-but-referenced; the rest are freed.
//
// Rate limit and bounded pauses: a pass starts only when gc_delay has passed since the end of
// the previous one and some unloaded module may still own memory. A pass is cut into slices
// of at most `slice_pages` frames of work each, resumed at the next idle entry from a frame
// cursor — robust to slabs appearing and vanishing between slices — so a huge leak never
// causes a long pause.
//
// Each completed pass that found anything logs one line, in the paper's spirit:
//   [   12.000000] GCONLINUX activated: pass 1 reclaimed 1 object (4096 bytes): m_test 1/4096
//
// Depends on: slab/, protect/module.h, protect/protector_mode.h (the modes, the default delay).
#pragma once

#include "protect/module.h"
#include "protect/protector_mode.h"
#include "slab/kmalloc.h"

namespace kmm {

struct OwnerTally {
  std::uint64_t objects;
  std::uint64_t bytes;
};

// An allocator above the slab layer (vmalloc) whose blocks the collector must see too.
class OwnedSpace {
 public:
  // Calls visit(arg, key, bytes, owner, handle) for every live block. `key` is a host address
  // inside kmm's RAM that stands for the block (its first backing frame): the collector keeps
  // its mark bits there.
  using Visit = void (*)(void* arg, void* key, std::size_t bytes, owner_t owner, void* handle);
  virtual void for_each_block(Visit visit, void* arg) = 0;
  // Calls scan(arg, host_address, bytes) for each physically contiguous piece of the block.
  using ScanPiece = void (*)(void* arg, const void* addr, std::size_t bytes);
  virtual void for_each_piece(void* handle, ScanPiece scan, void* arg) = 0;
  virtual void free_block(void* handle) = 0;
  // The block a pointer-sized word refers to, if any (for the reachability scan).
  virtual bool find_block(std::uintptr_t word, void** key, owner_t* owner) = 0;
  // A space whose keys lie outside kmm's RAM (the preload shim's huge blocks) keeps the two
  // mark bits (0: referenced, 1: scanned) itself: begin_mark clears them when a pass starts
  // its mark; mark_bit tests a bit and, when `set`, sets it, returning its old value.
  virtual void begin_mark() {}
  // The words find_block can answer for lie in [*lo, *hi) (read after begin_mark): the scan
  // asks only about those, outside RAM. Default: every word.
  virtual void address_range(std::uintptr_t* lo, std::uintptr_t* hi) {
    *lo = 0;
    *hi = ~std::uintptr_t{0};
  }
  virtual bool mark_bit(void* key, unsigned bit, bool set) {
    (void)key, (void)bit, (void)set;
    return false;
  }
  // A snapshot mark (RootProvider::mark_in_snapshot) sets mark bits in a copy of the process:
  // the copy names each marked block of such a space by its address (block_address), and the
  // collector sets the marks again here (import_marks: the blocks whose address is in addrs,
  // every other mark cleared; the space takes its own lock, blocks may have come and gone).
  virtual std::uintptr_t block_address(void* key) { return reinterpret_cast<std::uintptr_t>(key); }
  virtual void import_marks(const std::uintptr_t* addrs, std::size_t n) { (void)addrs, (void)n; }

 protected:
  ~OwnedSpace() = default;
};

struct CollectorStats {
  std::uint64_t passes = 0;
  std::uint64_t reclaimed_objects = 0, reclaimed_bytes = 0;    // since boot
  std::uint64_t leak_objects = 0, leak_bytes = 0;              // found, still there
  std::uint64_t referenced_objects = 0, referenced_bytes = 0;  // spared by the scan
  std::uint64_t scanned_bytes = 0;                             // reachability scan, since boot
  std::uint64_t slices = 0;
  std::uint64_t world_stops = 0;          // marks run with the world stopped (RootProvider)
  std::uint64_t world_stop_failures = 0;  // passes that only reported: the world would not stop
  std::uint64_t snapshot_marks = 0;       // of world_stops: marked in a snapshot, world restarted at once
  std::uint64_t snapshot_failures = 0;    // snapshot marks that could not be trusted (marked again stopped)
};

using LogFn = void (*)(void* arg, const char* line, std::size_t len);

class Collector;

// The mutators and roots of a real process (the preload shim, src/shim/roots.cpp). With a
// provider set, the mark phases of a reclaim-unreachable pass run with the world stopped, in
// one go (not sliced): stop_world() parks every other thread, scan_roots() feeds the
// process's roots (data segments, stacks from their stack pointers, saved registers, TLS,
// anonymous mappings) to Collector::scan_root, the walk marks, then start_world(). A
// provider that cannot stop the world makes the pass report only. The modelled machine has
// no provider: its roots are registered (add_root) and its mark is sliced. A provider that
// can copy the process marks in the copy instead (below): the world is stopped only while
// the copy is made.
//
// Snapshot marks (optional). Marking 256 MB of heap takes tens of milliseconds; a provider
// that can copy the process (a fork: copy-on-write) lets the world restart as soon as the
// copy exists. The collector allocates its mark bitmap with map_shared (memory the copy
// writes and the process reads), and with the world stopped calls mark_in_snapshot(c, fn):
// the provider makes the copy, restarts the world, runs fn(c) in the copy — the roots and
// the whole mark, on memory frozen at the instant the world was stopped, which is exactly what
// a mark with the world stopped would have read — and returns when it has finished.
//   kUnsupported  no copy was made; the world is still stopped (the collector marks in place);
//   kFailed       the copy could not be trusted (it lacks memory the process has: MADV_DONTFORK,
//                 MADV_WIPEONFORK, or it died); the world runs again: the collector stops it
//                 again and marks in place;
//   kDone         the marks are in the shared bitmap and in the SnapshotResults.
struct SnapshotResults {
  std::uint64_t scanned_bytes;
  // Marked blocks of spaces whose keys lie outside RAM, by address (OwnedSpace::import_marks):
  // space i's are space_marks[space_end[i - 1] .. space_end[i]).
  static constexpr unsigned kMaxSpaces = 8;
  static constexpr unsigned kMaxSpaceMarks = 65536;
  std::uint32_t space_end[kMaxSpaces];
  std::uintptr_t space_marks[kMaxSpaceMarks];
};

class RootProvider {
 public:
  virtual bool stop_world() = 0;
  // False: the roots could not all be read (the pass then only reports).
  virtual bool scan_roots(Collector* c) = 0;
  virtual void start_world() = 0;
  enum class Snapshot : std::uint8_t { kUnsupported, kFailed, kDone };
  // Memory shared with the snapshot's copy (zeroed), or null: no snapshot marks.
  virtual void* map_shared(std::size_t bytes) {
    (void)bytes;
    return nullptr;
  }
  virtual void unmap_shared(void* p, std::size_t bytes) { (void)p, (void)bytes; }
  virtual Snapshot mark_in_snapshot(Collector* c, bool (*mark)(Collector* c)) {
    (void)c, (void)mark;
    return Snapshot::kUnsupported;
  }

 protected:
  ~RootProvider() = default;
};

class Collector {
 public:
  void init(ModuleRegistry* modules, Kmalloc* kmalloc, ProtectorMode mode, std::uint64_t gc_delay_ns, LogFn log,
            void* log_arg);
  void set_mode(ProtectorMode m) { mode_ = m; }
  ProtectorMode mode() const { return mode_; }
  void set_delay(std::uint64_t ns) { delay_ns_ = ns; }
  std::uint64_t delay_ns() const { return delay_ns_; }
  void set_slice_pages(std::uint32_t n) { slice_pages_ = n == 0 ? 1 : n; }
  void add_space(OwnedSpace* s);
  void set_root_provider(RootProvider* p) { provider_ = p; }
  // From RootProvider::scan_roots: every aligned word of [p, p + bytes) is a possible
  // reference. p must be readable (a provider copies foreign memory first).
  void scan_root(const void* p, std::size_t bytes) { scan_range(p, bytes); }
  // Registered roots: memory outside kmm's blocks that may point into them.
  bool add_root(const void* p, std::size_t bytes);
  void remove_root(const void* p);

  // True when a pass is under way, or one is due at `now_ns`.
  bool due(std::uint64_t now_ns) const;
  // One bounded slice of work; true when no pass is left under way.
  bool slice(std::uint64_t now_ns);
  // Slices until the current (or a due) pass is complete.
  void run_pass(std::uint64_t now_ns);
  bool in_pass() const { return phase_ != Phase::kIdle; }
  std::uint64_t next_due_ns() const { return add_saturating(last_end_ns_, delay_ns_); }

  const CollectorStats& stats() const { return stats_; }
  // What the last pass left of owner o's blocks: spared as still referenced (the scan), and
  // kept for any other reason (report mode, a pass that only reported, a block unsafe to take).
  OwnerTally last_referenced(owner_t o) const { return referenced_[o]; }
  OwnerTally last_kept(owner_t o) const { return kept_[o]; }
  std::uint64_t longest_slice_pages() const { return longest_slice_pages_; }
  // Forgets the rate limit (a pass may start at once); tests and `gc now`.
  // Any thread may kick (rmmod, the shim's dlclose) while the collector's thread reads it.
  void kick() { __atomic_store_n(&kicked_, true, __ATOMIC_RELAXED); }
  // fork() support (Kernel::lock_all): held while a slice runs, so outside the registry.
  SpinLock& fork_lock() { return lock_; }
  // A pass run outside the collector (tracker=paper-table) ended at now_ns: the rate limit
  // counts from here, as it does after the collector's own passes.
  void external_pass_done(std::uint64_t now_ns) {
    last_end_ns_ = now_ns;
    __atomic_store_n(&kicked_, false, __ATOMIC_RELAXED);
  }
  // The same for a pass that found `leaks` still there and reclaimed `reclaimed`: counted in
  // stats() as the collector's own passes are (gc.passes, leaks.*, reclaimed.*).
  void external_pass_done(std::uint64_t now_ns, const OwnerTally& leaks, const OwnerTally& reclaimed) {
    stats_.passes++;
    stats_.leak_objects = leaks.objects;
    stats_.leak_bytes = leaks.bytes;
    stats_.reclaimed_objects += reclaimed.objects;
    stats_.reclaimed_bytes += reclaimed.bytes;
    external_pass_done(now_ns);
  }

 private:
  enum class Phase : std::uint8_t { kIdle, kMarkLive, kMarkDead, kSweep };
  struct Root {
    const void* p;
    std::size_t bytes;
  };
  static constexpr unsigned kMaxRoots = 64;
  static constexpr unsigned kMaxSpaces = 4;
  static_assert(kMaxSpaces <= SnapshotResults::kMaxSpaces, "a snapshot's results name every space");
  static constexpr unsigned kMaxBitmapChunks = 64;

  void begin(std::uint64_t now_ns);
  // The mark of a provider's process, from a stopped world: in a snapshot when the provider
  // can make one, else in place (the world stays stopped until the mark ends, in slice()).
  void begin_stopped_mark();
  // In the snapshot's copy: the roots and the whole mark, then the results for the process.
  static bool snapshot_mark(Collector* self);
  void mark_to_fixed_point();
  bool export_space_marks(SnapshotResults* r);
  void import_snapshot();
  // Everything a mark starts from before the walk: the spaces' mark state and the address
  // range they answer for, and the registered roots.
  void prepare_mark();
  std::uint8_t* bitmap_byte(std::uint64_t bitno) const;
  void finish(std::uint64_t now_ns);
  // Processes frames [cursor, cursor + budget) of the current phase; returns frames done.
  std::uint32_t walk(std::uint32_t budget);
  void visit_slab(Page* head);
  void visit_large(Page* head);
  void visit_spaces();
  // Reachability: scan [p, p + bytes) for pointers into dead blocks.
  void scan_range(const void* p, std::size_t bytes);
  void mark_pointer(std::uintptr_t w);
  bool bitmap_alloc();
  void bitmap_free();
  bool test_and_set(const void* block, unsigned bit);
  bool test(const void* block, unsigned bit) const;
  // Mark bits of a space's block: in the bitmap when its key is in RAM, else the space's own.
  bool space_test_and_set(OwnedSpace* s, void* key, unsigned bit);
  bool space_test(OwnedSpace* s, void* key, unsigned bit);
  bool reclaiming() const {
    return mode_ == ProtectorMode::kReclaim || (mode_ == ProtectorMode::kReclaimUnreachable && scan_this_pass_);
  }
  void dead_block(void* addr, std::size_t bytes, owner_t owner, bool* freed, OwnedSpace* space = nullptr);

  ModuleRegistry* modules_ = nullptr;
  Kmalloc* kmalloc_ = nullptr;
  SlabAllocator* slab_ = nullptr;
  PhysMem* phys_ = nullptr;
  ProtectorMode mode_ = ProtectorMode::kOff;
  std::uint64_t delay_ns_ = 0;
  std::uint32_t slice_pages_ = 256;
  LogFn log_ = nullptr;
  void* log_arg_ = nullptr;

  Phase phase_ = Phase::kIdle;
  bool kicked_ = false;
  bool scan_this_pass_ = false;
  bool new_marks_ = false;
  bool world_stopped_ = false;  // the provider stopped the world for this pass's mark
  // Words outside RAM worth a look (the hull of the spaces' address ranges), for this mark.
  std::uintptr_t space_lo_ = 0, space_span_ = ~std::uintptr_t{0};
  RootProvider* provider_ = nullptr;
  pfn_t cursor_ = 0;
  std::uint64_t last_end_ns_ = 0;
  std::uint64_t pass_start_ns_ = 0;
  bool dead_[kMaxOwners] = {};
  OwnerTally freed_[kMaxOwners] = {};
  OwnerTally kept_[kMaxOwners] = {};
  OwnerTally referenced_[kMaxOwners] = {};
  Root roots_[kMaxRoots] = {};
  unsigned nr_roots_ = 0;
  OwnedSpace* spaces_[kMaxSpaces] = {};
  unsigned nr_spaces_ = 0;
  // Reachability bitmaps: 2 bits per 8-byte granule of RAM (marked, scanned), in chunks of
  // buddy pages held only during a pass.
  Page* chunks_[kMaxBitmapChunks] = {};
  // With a provider that marks in snapshots: one flat bitmap after the SnapshotResults, in
  // memory shared with the copy (map_shared), instead of the chunks.
  SnapshotResults* shared_ = nullptr;
  std::uint8_t* flat_ = nullptr;
  std::size_t shared_bytes_ = 0;
  unsigned chunk_order_ = 0;
  unsigned nr_chunks_ = 0;
  std::uint64_t bitmap_bytes_ = 0;  // RAM the bitmaps cover, from its base
  std::uint64_t longest_slice_pages_ = 0;
  CollectorStats stats_;
  SpinLock lock_;  // one collector at a time
};

}  // namespace kmm

// kmm/kernel/kernel.h — one machine's kernel: every layer booted over one physical memory.
//
// Kernel::boot() takes RAM from a platform (a host mapping, a caller's static buffer),
// builds mem_map in its first frames, places the Kernel object itself in boot memory right
// after it (so a machine is entirely inside its RAM, as a kernel is), gives the remaining
// frames to the buddy allocator, and brings up slab, kmalloc, vmalloc, the module registry
// and the protector. Nothing here calls malloc or new.
//
// Ownership. Every allocation API takes the owner explicitly or uses the calling thread's
// current owner (OwnerScope), kernel by default. Freeing checks who frees: with
// cross_free=report a module freeing another owner's block is reported and allowed; with
// cross_free=refuse it is reported and refused (isolation); allow says nothing.
//
// Time. The machine has its own clock: idle(ns) advances it and runs the idle loop — the
// collector's slices when a pass is due — as cpu_idle() ran gc_process() in the paper.
//
// Persistent RAM is the layer above (src/persist): it boots a machine over a heap file
// (persist_boot) and, at attach, checks and rebuilds the Kernel object in place (KernelImage,
// this class's one friend), then calls the same wire_parts() boot ends with. What stays here
// is what the machine itself does on persistent RAM: detach at shutdown (the file keeps the
// machine), flush points, and the end of the boot grace period on the machine's clock.
//
// Depends on: base/, pal/, phys/, page/, slab/, protect/ (the layers below). vm/ is not
// included here; only machine_frames.h, the MMU model's view of a machine, includes it
// (kmm_kernel links kmm_vm). Lock order: docs/ARCHITECTURE.md.
#pragma once

#include "kernel/vmalloc.h"
#include "page/range.h"
#include "pal/pal.h"
#include "protect/collector.h"
#include "protect/module.h"
#include "protect/paper_table.h"

namespace kmm {

enum class CrossFree : std::uint8_t { kAllow, kReport, kRefuse };
enum class PageAllocKind : std::uint8_t { kBuddy, kRange };
// Placement rule of the range allocator (page_alloc=range): which requests go top-down.
//   kSeed:   requests of 2 KB or less from the top of memory down, larger ones bottom up
//            (as document 002 describes kmalloc2);
//   kSource: requests of 2 pages or less bottom up, larger ones top down (as uClinux's
//            page_alloc2 source does it).
// At the page level a "2 KB or less" kmalloc is a slab page of one of the kmalloc-8 ..
// kmalloc-2k caches, so kSeed counts as small every request no larger than those caches'
// slabs (boot sets the threshold from them; see docs/NOMMU.md); kSource's is 2 pages.
enum class RangeDirection : std::uint8_t { kSeed, kSource, kBottomUp };
enum class PtFormat : std::uint8_t { kArmv7, kAarch64 };

struct BootConfig {
  std::uint64_t ram_bytes = 192ull << 20;
  // Growable RAM (memory hotplug): only online_bytes are usable at boot, and the page
  // allocator brings grow_bytes more online whenever it runs dry, up to ram_bytes. 0: all of
  // RAM is online at boot (the modelled machines). The real allocator reserves a large
  // ram_bytes of address space and grows into it.
  std::uint64_t online_bytes = 0;
  std::uint64_t grow_bytes = 4ull << 20;
  phys_addr_t phys_offset = 0;
  Platform* platform = nullptr;      // null: anonymous host mapping
  // With platform null: mem_map's own descriptors are left unwritten (PhysMem::init's
  // fresh_zero; the preload sets it, the modelled machines show those frames as reserved).
  bool lazy_boot_frames = false;
  std::uint64_t reserved_bytes = 0;  // boot reservation target (kernel image + mem_map + ...)
  KmallocPolicy kmalloc = KmallocPolicy::kPow2;
  std::uint64_t kmalloc_max = 0;  // 0: the policy's default
  ProtectorMode protector = ProtectorMode::kOff;
  std::uint64_t gc_delay_ns = kDefaultGcDelayNs;  // protect/protector_mode.h
  std::uint32_t gc_slice_pages = 256;
  bool paper_table = false;  // tracker=paper-table
  bool thread_caches = false;
  unsigned min_partial = 0;
  std::uint64_t slab_empty_keep_bytes = 0;  // SlabConfig::empty_keep_bytes (the shim's; 0 in the model)
  std::uint64_t min_free_kbytes = 0;  // 0: Linux's formula; ~0: watermarks off
  CrossFree cross_free = CrossFree::kAllow;
  std::uint64_t page_offset = 0xC0000000ull;
  std::uint64_t vmalloc_bytes = 240ull << 20;  // the vmalloc space above the direct map
  // The machine model (scenario/, replay/, vm/, nommu/ read these; the allocator core does not).
  bool mmu = true;
  PtFormat pt = PtFormat::kArmv7;
  unsigned tlb_entries = 64;
  unsigned tlb_ways = 0;  // 0: fully associative
  PageAllocKind page_alloc = PageAllocKind::kBuddy;
  RangeDirection range_direction = RangeDirection::kSeed;
  std::uint32_t region_record_bytes = 0;  // NOMMU per-mmap record size; 0: the model's default
  // Persistent RAM (src/persist, docs/PERSISTENCE.md): RAM is this file, formatted when new
  // or empty, attached to (and rebuilt) when it holds a machine. Null: volatile RAM. Only
  // persist_boot (persist/heap_file.h) boots with it; Kernel::boot refuses it.
  const char* backing = nullptr;
  // Hardening (slab/hardening.h): freelist_hardened, redzone, poison, guard_pages,
  // quarantine. All off by default; only freelist_hardened is allowed with `backing`.
  HardeningConfig hardening;
  // After an attach, modules that were loaded stay dormant for this long on the machine's
  // clock (or until boot_complete()); then what the ones not loaded again own is collected
  // under the protector's mode. 0: only boot_complete() ends the grace period.
  std::uint64_t boot_grace_ns = 0;
};

class FilePlatform;
inline constexpr unsigned kMaxPersistRoots = 32;
inline constexpr unsigned kPersistRootNameLen = 24;
// A named persistent root (Kernel::root_set/get, persist/roots.cpp): kept in the Kernel
// object, so inside RAM, and registered as a collector root on persistent RAM, so what it
// points to is reachable across reboots.
struct PersistRoot {
  char name[kPersistRootNameLen];
  std::uintptr_t value;
};
// What the last attach found and rebuilt (printed by `boot backing=` and `kmm fsck`).
struct AttachReport {
  std::uint64_t boot_count = 0;
  bool was_clean = false;
  std::uint64_t repaired_frames = 0;  // half-written roles dropped (orphan tails, bad heads)
  std::uint64_t dropped_frames = 0;   // per-boot frames given back (thread caches, process models, scan bitmaps)
  std::uint64_t slabs = 0, objects = 0, empty_slabs_freed = 0;
  std::uint64_t large_blocks = 0, vmalloc_areas = 0;
  std::uint64_t orphan_vmalloc_frames = 0, orphan_area_records = 0;
  std::uint64_t bad_areas = 0;
  unsigned dormant_modules = 0;
  std::uint64_t rebuild_ns = 0;
};

struct BootError {
  const char* what = nullptr;
};

// A read-only view of one machine's parts (Kernel::view()): what code that only reads a
// part takes, instead of a const getter per part. Valid while the machine is.
struct MachineView {
  const BootConfig& config;
  const PhysMem& phys;
  const PageAllocator& zone;  // buddy, or the range allocator on page_alloc=range
  const SlabAllocator& slab;
  const Kmalloc& kmalloc;
  const ModuleRegistry& modules;
  const Collector& collector;
  const Vmalloc& vmalloc;
};

class Kernel {
 public:
  // Boots a machine; null with *err set when it cannot (RAM too small, host out of memory,
  // cfg.backing set: a heap file is booted by persist_boot, src/persist/heap_file.h).
  static Kernel* boot(const BootConfig& cfg, BootError* err);
  // Gives the machine's memory back to the platform; the Kernel object goes with it.
  void shutdown();

  // --- allocation (owner kOwnerFree = the thread's current owner) ---
  void* kmalloc(std::size_t size, gfp_t gfp = GFP_KERNEL, owner_t owner = kOwnerFree);
  void* kzalloc(std::size_t size, gfp_t gfp = GFP_KERNEL, owner_t owner = kOwnerFree);
  void* kcalloc(std::size_t n, std::size_t size, gfp_t gfp = GFP_KERNEL, owner_t owner = kOwnerFree);
  void* krealloc(void* p, std::size_t size, gfp_t gfp = GFP_KERNEL, owner_t by = kOwnerFree);
  // False when refused (bad pointer, or isolation).
  bool kfree(const void* p, owner_t by = kOwnerFree);
  std::size_t ksize(const void* p) const { return kmalloc_.ksize(p); }

  KmemCache* kmem_cache_create(const char* name, std::size_t size, std::size_t align = 0, std::uint32_t flags = 0);
  bool kmem_cache_destroy(KmemCache* c) { return slab_.destroy(c); }
  void* kmem_cache_alloc(KmemCache* c, gfp_t gfp = GFP_KERNEL, owner_t owner = kOwnerFree);
  bool kmem_cache_free(KmemCache* c, const void* p, owner_t by = kOwnerFree);

  // Page-level blocks owned like kmalloc's (a module's alloc_pages).
  void* alloc_pages(unsigned order, gfp_t gfp = GFP_KERNEL, owner_t owner = kOwnerFree);
  bool free_pages(const void* p, owner_t by = kOwnerFree);

  std::uint64_t vmalloc(std::size_t size, owner_t owner = kOwnerFree);
  bool vfree(std::uint64_t addr, owner_t by = kOwnerFree);

  // Hands a block to another owner (kmm_transfer); false if p is not a live block.
  bool transfer(const void* p, owner_t to);
  bool transfer_vmalloc(std::uint64_t addr, owner_t to);
  owner_t owner_of(const void* p) const { return kmalloc_.owner_of(p); }
  std::size_t ksize_owner(const void* p, owner_t* owner) const { return kmalloc_.ksize_owner(p, owner); }
  // What a block costs the free pool (slot or pages, records included).
  std::size_t footprint(const void* p) const { return kmalloc_.footprint(p); }

  // --- modules ---
  ModuleError insmod(const char* name, std::uint64_t core_size = 16384, owner_t* owner = nullptr);
  ModuleError rmmod(const char* name);
  owner_t module_owner(const char* name) const { return modules_.find_live(name); }

  // --- time and the idle loop ---
  // Read by any thread (insmod, log lines) while idle() advances it on another: atomic.
  std::uint64_t now_ns() const { return __atomic_load_n(&now_ns_, __ATOMIC_RELAXED); }
  // Advances the clock by ns, running the idle loop (and the collector when due).
  void idle(std::uint64_t ns);
  void set_protector(ProtectorMode m) { collector_.set_mode(m); }
  void set_cross_free(CrossFree c) { cfg_.cross_free = c; }

  // Per-owner usage: objects and bytes (slot or page sizes) of every live block, by a walk
  // of mem_map and the vmalloc areas. out[] has kMaxOwners entries.
  void usage(OwnerTally* out) const;
  // The same for one cache (out has kMaxOwners entries); large blocks when c is null.
  void cache_usage(const KmemCache* c, OwnerTally* out) const;

  // Kernel log (dmesg): a ring in boot memory; an optional listener sees each line.
  void log(const char* line, std::size_t len);
  using LogListener = void (*)(void* arg, const char* line, std::size_t len);
  void set_log_listener(LogListener fn, void* arg) {
    log_listener_ = fn;
    log_arg_ = arg;
  }
  // Copies the ring into out.
  void dmesg(TextSink& out) const;
  // The same bytes, one at a time, oldest first (the JSON view escapes them).
  template <typename F>
  void for_each_log_char(F&& f) const {
    std::size_t n = log_head_ < log_size_ ? log_head_ : log_size_;
    for (std::size_t i = log_head_ - n; i < log_head_; ++i) f(log_ring_[i % log_size_]);
  }

  bool check_invariants(TextSink* why);

  // --- the parts ---
  // Read-only: the view of every part (MachineView above).
  MachineView view() const { return {cfg_, phys_, *pages_, slab_, kmalloc_, modules_, collector_, vmalloc_}; }
  // A part to drive (the layers above: /proc, the scenario language, the replay, the shim,
  // the tools). The const slab() and kmalloc_layer() are the shim's (shim/stats.cpp) until
  // it reads view(); config() is view().config for the many callers that read only it.
  const BootConfig& config() const { return cfg_; }
  PhysMem& phys() { return phys_; }
  // The machine's page allocator (buddy, or the range allocator on page_alloc=range).
  PageAllocator& zone() { return *pages_; }
  BuddyZone& buddy() { return zone_; }
  SlabAllocator& slab() { return slab_; }
  const SlabAllocator& slab() const { return slab_; }
  Kmalloc& kmalloc_layer() { return kmalloc_; }
  const Kmalloc& kmalloc_layer() const { return kmalloc_; }
  ModuleRegistry& modules() { return modules_; }
  Collector& collector() { return collector_; }
  Vmalloc& vmalloc_space() { return vmalloc_; }
  PaperTable* paper_table() { return cfg_.paper_table ? &paper_ : nullptr; }
  // Modelled kernel virtual address of a host pointer into RAM (the direct map).
  std::uint64_t kva(const void* p) const {
    return cfg_.page_offset + static_cast<std::uint64_t>(phys_.virt_to_phys(p) - phys_.phys_offset());
  }
  void* kva_to_host(std::uint64_t va) const;  // null when va is not in the direct map
  // Allocation calls of this API that returned null (genuine or injected; see fault_inject.h).
  std::uint64_t failed_allocations() const { return failed_allocs_.load(std::memory_order_relaxed); }
  // Free page reporting (page/buddy.h): gives the frames of free blocks of order >= min_order,
  // free for at least min_age_ms of the zone's clock (buddy().set_clock_ms), back to the host
  // through the platform's purge, up to max_pages. Returns the pages given back: 0 on the
  // range allocator, on a platform that cannot (a file, a static buffer), or while another
  // call is running. The machine's figures do not change: the frames stay free in the model.
  std::uint64_t purge_free(unsigned min_order, std::uint32_t min_age_ms, std::uint64_t max_pages);
  // The whole pages of this object that hold only zeros go back to the host through the
  // platform's purge (they read as zero when next touched); returns how many. The object is
  // 19 pages, most of them tables a program rarely fills (96 cache slots, 253 modules, 4096
  // threads' remote hints, the collector's tallies), all written by the constructor: the
  // preload calls this once it has made its caches, and about half go back. 0 on a platform
  // that cannot purge (a file, a static buffer). Call it before other threads can see the
  // machine: a page is read, then purged.
  std::size_t release_zero_pages();

  // --- persistent RAM (booted, attached and rebuilt by src/persist) ---
  bool persistent() const { return backing_ != nullptr; }
  FilePlatform* backing_file() const { return backing_; }
  // Ends the boot grace period an attach began (persist/attach.cpp) now: dormant modules
  // become Gone and the collector may take what they own (it is kicked). Returns how many
  // modules were dormant. idle() calls it when the grace period's deadline passes.
  unsigned boot_complete();
  // Named persistent roots (defined in persist/roots.cpp: link kmm_persist). set with
  // p == null removes the name; false when the table is full or the name does not fit.
  bool root_set(const char* name, const void* p);
  void* root_get(const char* name) const;
  // A flush point: every store so far reaches the file (msync). False on volatile RAM.
  bool flush();
  const AttachReport& attach_report() const { return attach_; }
  // fork() support (the preload shim's pthread_atfork handlers): lock_all takes every lock of
  // the machine in kmm's lock order — collector, registry, slab (heap table, thread-cache
  // list, cache registry, each cache), grow, the zone's report lock, zone, log, kmalloc's
  // guarded-run cache (a leaf)
  // — so no lock is held mid-update when the process forks; unlock_all releases them, in the
  // parent and in the child.
  void lock_all();
  void unlock_all();

 private:
  friend class KernelImage;  // src/persist: checks, re-points and rebuilds a stored Kernel
  Kernel() = default;
  // One pass of the paper's gc_process() over its table (tracker=paper-table; idle()).
  void paper_pass();
  // Boot, once RAM, mem_map and this object are in place: the parts over the machine's
  // frames, bottom up (page allocator, slab, kmalloc, the registry, vmalloc). null, or why
  // RAM is too small. Attach rebuilds the parts instead (persist/rebuild.cpp).
  const char* init_parts();
  // The wiring boot and attach share, run once every part holds its data (fresh from init at
  // boot, the file's, checked and rebuilt, at attach): the collector over the registry,
  // kmalloc and the vmalloc space, logging to this machine's log; FAULT_INJECTION lines to
  // this machine's log too.
  void wire_parts();
  // kGrow: brings at least enough frames online for a block of `order` (false: RAM
  // exhausted); kReclaim: gives back the caches' kept empty slabs (false: none were kept).
  // The zone calls it when it runs dry, and after it hands out a block the purge round gave
  // back to the OS (BuddyZone::GrowFn).
  bool grow(unsigned order, BuddyZone::GrowStep step);
  // shutdown() on persistent RAM: thread caches drained, the file closed clean and given
  // back to its pool; the machine stays in the file.
  void detach();
  owner_t resolve(owner_t o) const;
  void tally_blocks(bool slabs, const KmemCache* only, bool large, OwnerTally* out) const;
  bool check_free(const void* p, owner_t by, const char* action);
  void track(const void* p, owner_t owner, std::size_t size);
  void untrack(const void* p);
  void count_failure() { failed_allocs_.fetch_add(1, std::memory_order_relaxed); }
  // The clock moves only in idle(); stored atomically because fault_log() reads it from any thread.
  void set_clock(std::uint64_t t) { __atomic_store_n(&now_ns_, t, __ATOMIC_RELAXED); }
  // FAULT_INJECTION lines go to this machine's log (fault_set_log); shutdown removes it.
  static void fault_log(void* arg, const char* line, std::size_t len);

  BootConfig cfg_;
  void* ram_ = nullptr;
  std::size_t ram_size_ = 0;
  Platform* platform_ = nullptr;
  PhysMem phys_;
  BuddyZone zone_;
  RangeAllocator range_;  // used instead of zone_ on page_alloc=range
  PageAllocator* pages_ = nullptr;
  SlabAllocator slab_;
  Kmalloc kmalloc_;
  ModuleRegistry modules_;
  Collector collector_;
  Vmalloc vmalloc_;
  PaperTable paper_;
  std::uint64_t now_ns_ = 0;
  std::atomic<std::uint64_t> failed_allocs_{0};
  SpinLock grow_lock_;
  static constexpr std::size_t kLogRingBytes = 64 * 1024;  // in boot memory
  char* log_ring_ = nullptr;
  std::size_t log_size_ = 0;
  std::size_t log_head_ = 0;  // total bytes ever written
  LogListener log_listener_ = nullptr;
  SpinLock log_lock_;  // innermost: log() is called with cache and zone locks held
  void* log_arg_ = nullptr;
  // Persistent RAM: the file (null: volatile), the named roots, the grace period.
  FilePlatform* backing_ = nullptr;
  PersistRoot roots_[kMaxPersistRoots] = {};
  bool grace_pending_ = false;
  std::uint64_t grace_deadline_ns_ = 0;
  AttachReport attach_;
};

// The calling thread's current owner (a module's code sets it while it runs). Inline: malloc
// reads it on every call.
#if KMM_HAVE_THREADS
inline owner_t& current_owner_word() {
  return kmm_thread_hot.owner;  // beside the thread's cache slot (slab.h: ThreadHotWords)
}
#else
extern owner_t t_current_owner;
inline owner_t& current_owner_word() {
  return t_current_owner;
}
#endif
inline owner_t current_owner() {
  return current_owner_word();
}
class OwnerScope {
 public:
  explicit OwnerScope(owner_t o);
  ~OwnerScope();
  OwnerScope(const OwnerScope&) = delete;
  OwnerScope& operator=(const OwnerScope&) = delete;

 private:
  owner_t saved_;
};

}  // namespace kmm

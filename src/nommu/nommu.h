// kmm/nommu/nommu.h — process memory without an MMU (uClinux), document 002.
//
// What it does. On a NOMMU machine a process has no virtual memory: every block it uses is
// physically contiguous memory taken from the system's free pool, and brk cannot grow a heap
// in place. Each process here owns a list of vm_region records, one per mmap: an mmap is a
// kmalloc of the data plus a region record from the `vm_region` slab cache (Linux's
// vm_region_jar), pushed at the head of the process's list, as uClinux's do_mmap did.
// Three malloc strategies sit on top, chosen per process at spawn:
//   simple   uClibc's malloc-simple: every malloc is an mmap, every free an munmap. free and
//            realloc find the block's region by walking the process's list (linear: the
//            seed's "free and realloc slow down as the list grows"), or, with
//            NommuConfig::indexed, through a hash of region addresses (constant time).
//   smalloc  uC-libc's libsmalloc: takes chunks of chunk_bytes from the kernel (one mmap
//            each) and suballocates them, first fit, 4-byte headers, 8-byte granules; a chunk
//            that becomes empty is given back; requests above half a chunk get their own mmap.
//   heap     a fixed heap per process, one mmap of heap_bytes at spawn; brk moves inside it
//            and an ordinary first-fit malloc runs over [heap, brk); full is full.
// (brk, a heap that grows, needs an MMU: spawn refuses it here.)
//
// The per-allocation cost of simple (the seed's "about 56 bytes"): the data's kmalloc slot
// rounding, plus the record. A 10-byte malloc takes a kmalloc-16 slot (6 bytes rounding, 1
// owner byte) and a 48-byte vm_region record (48 + 1 owner byte): 10 + 56 = 66 bytes.
// region_record_bytes sets the record size (0: 48, Linux's struct vm_region on 32-bit ARM,
// 44 bytes, in an 8-byte granule; never less than this model's own record).
//
// Accounting. process_bytes(pid) is everything the process takes from the pool: data and
// chunk/heap blocks at their kmalloc footprint (slot or pages) plus their records.
// mmap_copy_bytes() is the kmalloc'd bytes behind all mmaps (Linux's MmapCopy, meminfo).
//
// Core rules: no malloc/new, no exceptions, no RTTI. The Nommu object is the caller's (a
// fixed process table inside it); everything else comes from the Kernel's allocators.
// Invariants (check_invariants): each process's region list is consistent both ways, every
// record names its process, counts and byte totals equal the sums over the lists, every data
// block is live with ksize >= its size, the index holds exactly the live regions in the right
// buckets, and each chunk/heap arena's blocks tile [4, end) with valid headers.
// Not thread-safe: one caller at a time (the scenario interpreter, a test, a benchmark).
// Depends on: kernel/ (Kmalloc, slab caches, the page allocator for fragmentation figures).
#pragma once

#include "kernel/kernel.h"

namespace kmm {

class TextSink;

enum class MallocKind : std::uint8_t { kSimple, kSmalloc, kHeap, kBrk };
const char* malloc_kind_name(MallocKind k);

enum class NommuError : std::uint8_t {
  kOk,
  kNoMemory,       // not enough free memory in all
  kMissingMemory,  // enough free memory in all, no contiguous block big enough
  kTooLarge,       // larger than the kernel allocator can ever serve (pow2: 1 MiB)
  kHeapFull,       // a fixed heap has no room
  kNoProcess,
  kTableFull,
  kExists,
  kBadPointer,  // not a live block of any process
  kNotYours,    // a live block of another process
  kNeedsMmu,    // malloc=brk on a NOMMU machine
  kBadArgument,
};
const char* nommu_error_text(NommuError e);

inline constexpr unsigned kMaxProcesses = 64;
inline constexpr unsigned kProcNameLen = 24;
inline constexpr std::uint32_t kDefaultRegionRecord = 48;
inline constexpr std::size_t kDefaultHeapBytes = 128 * 1024;

struct NommuConfig {
  std::uint32_t region_record_bytes = 0;  // 0: kDefaultRegionRecord
  bool indexed = false;                   // hash lookup for free/realloc (simple)
  std::uint32_t smalloc_chunk = 4096;     // bytes per smalloc chunk
};

enum class RegionKind : std::uint8_t { kData, kChunk, kHeap };

// The region record (Linux's vm_region plus the process list node).
struct VmRegion {
  VmRegion* next;  // process list, newest first
  VmRegion* prev;
  VmRegion* hnext;    // index bucket chain
  void* data;         // the kmalloc'd block
  std::size_t size;   // bytes mmapped
  std::uint32_t end;  // chunk/heap: end of the formatted blocks (brk for a heap)
  std::uint16_t pid;
  RegionKind kind;
};

struct NommuProcess {
  char name[kProcNameLen];
  bool live;
  MallocKind kind;
  VmRegion* regions;
  VmRegion* heap;  // kHeap: the heap region
  std::uint64_t nr_regions;
  std::uint64_t bytes;  // data/chunk/heap footprints + record footprints
  std::uint64_t mallocs, frees;
};

// Why the last failed allocation failed, in numbers (for "missing memory: ..." lines).
struct NommuFailure {
  NommuError error = NommuError::kOk;
  std::uint64_t asked = 0;    // bytes asked of the pool (kmalloc footprint) or of the heap
  std::uint64_t free = 0;     // free bytes (pool, or the heap's)
  std::uint64_t largest = 0;  // largest contiguous free block (pool, or the heap's)
};

struct ArenaStats {
  std::uint64_t used = 0, free = 0, largest = 0, blocks = 0;
};

class Nommu {
 public:
  // False when the record cache cannot be made.
  bool init(Kernel* k, const NommuConfig& cfg = NommuConfig{});
  // Every process exits, the record cache and the index go back to the kernel.
  void shutdown();

  // Returns the pid (1..kMaxProcesses) or 0 with *err.
  int spawn(const char* name, MallocKind kind, std::size_t heap_bytes, NommuError* err);
  NommuError exit(int pid);
  int find(const char* name) const;
  const NommuProcess* process(int pid) const;

  void* malloc(int pid, std::size_t size, NommuError* err);
  NommuError free(int pid, void* p);
  // realloc(p, 0) frees and returns null; on failure the old block stays (as in C).
  void* realloc(int pid, void* p, std::size_t size, NommuError* err);
  // The syscalls under the strategies.
  void* mmap(int pid, std::size_t len, NommuError* err) { return map_region(pid, len, RegionKind::kData, err); }
  NommuError munmap(int pid, void* p);

  std::uint64_t process_bytes(int pid) const;
  // Usable bytes of block p of process pid (0 when not one), and what it takes from the pool
  // (simple: kmalloc footprint + record; smalloc/heap: the block with its header).
  std::size_t usable(int pid, const void* p) const;
  std::size_t footprint(int pid, const void* p) const;
  // The process whose memory holds p (0: none).
  int owner_of(const void* p) const;
  // A heap's state: bytes used/free inside [heap, brk) and the room above brk.
  ArenaStats heap_stats(int pid) const;

  // Switches free/realloc lookup between the list walk and the index (built from the lists).
  void set_indexed(bool on);

  std::uint64_t mmap_copy_bytes() const { return mmap_bytes_; }
  std::uint64_t nr_regions() const { return total_regions_; }
  const NommuFailure& last_failure() const { return failure_; }
  // Region records visited by the last lookup (free/realloc), for the cost measurements.
  std::uint64_t last_lookup_steps() const { return lookup_steps_; }
  const NommuConfig& config() const { return cfg_; }
  std::uint32_t record_bytes() const { return record_bytes_; }
  Kernel* kernel() const { return k_; }

  bool check_invariants(TextSink* why) const;

 private:
  NommuProcess* proc(int pid);
  const NommuProcess* proc(int pid) const;
  void* map_region(int pid, std::size_t len, RegionKind kind, NommuError* err);
  VmRegion* new_region(int pid, std::size_t len, RegionKind kind, NommuError* err);
  void drop_region(VmRegion* r);
  VmRegion* find_region(const NommuProcess* p, int pid, const void* data);  // exact start, counts steps
  VmRegion* region_containing(const NommuProcess* p, const void* addr) const;
  std::uint64_t region_cost(const VmRegion* r) const;
  void fail(NommuError e, std::uint64_t asked);
  void classify_pool_failure(std::size_t bytes);
  // Index.
  std::size_t bucket(const void* data) const;
  void index_add(VmRegion* r);
  void index_del(VmRegion* r);
  void index_grow();
  void index_resize(std::size_t buckets);  // a new table of `buckets`, rebuilt from the lists

  void* small_alloc(int pid, NommuProcess* p, std::size_t size, NommuError* err);
  NommuError small_free(NommuProcess* p, VmRegion* r, void* ptr);

  Kernel* k_ = nullptr;
  NommuConfig cfg_;
  KmemCache* records_ = nullptr;
  std::uint32_t record_bytes_ = 0;
  NommuProcess procs_[kMaxProcesses] = {};
  VmRegion** buckets_ = nullptr;
  std::size_t nr_buckets_ = 0;
  std::uint64_t indexed_ = 0;
  std::uint64_t total_regions_ = 0;
  std::uint64_t mmap_bytes_ = 0;
  std::uint64_t lookup_steps_ = 0;
  NommuFailure failure_;
};

}  // namespace kmm

// kmm/nommu/nommu.cpp — vm_region lists, malloc-simple, smalloc, fixed heaps (see nommu.h).
#include "nommu/nommu.h"

#include <cstring>

#include "base/bits.h"
#include "base/text.h"
#include "nommu/mmap_copy.h"

namespace kmm {
namespace {

// --- arenas: the blocks inside a smalloc chunk or a fixed heap ---
// Blocks tile [4, end): a 4-byte header (size | used bit) then the payload, sizes multiples
// of 8, so every payload is 8-aligned when the arena is. `limit` is the highest end allowed.
constexpr std::uint32_t kUsed = 1;
constexpr std::uint32_t kArenaStart = 4;

std::uint32_t hdr(const char* m, std::uint32_t o) {
  std::uint32_t h;
  std::memcpy(&h, m + o, sizeof h);
  return h;
}
void set_hdr(char* m, std::uint32_t o, std::uint32_t h) {
  std::memcpy(m + o, &h, sizeof h);
}
std::uint32_t bsize(std::uint32_t h) {
  return h & ~std::uint32_t{7};
}

std::uint32_t arena_limit(std::size_t cap) {
  if (cap < 16) return kArenaStart;
  return static_cast<std::uint32_t>(kArenaStart + ((cap - 8) / 8) * 8);
}

// A block's bytes with its header, rounded to 8. An arena is at most 4 GiB (32-bit offsets):
// a request beyond that needs "more than any arena", not a sum that wraps to a few bytes.
std::uint64_t block_need(std::size_t n) {
  const std::uint64_t n64 = n;  // (a shift, not a compare with 2^32: size_t is 32 bits on ARM)
  if ((n64 >> 32) != 0) return ~std::uint64_t{7};
  return (n64 + 4 + 7) & ~std::uint64_t{7};
}

// What a request needs, for messages: block_need, or past 4 GiB (block_need's "more than any
// arena") the size with its header, saturated, not the marker's 2^64 - 8.
std::uint64_t block_asked(std::size_t n) {
  const std::uint64_t n64 = n;
  if ((n64 >> 32) == 0) return block_need(n);
  return n64 > ~std::uint64_t{0} - 4 ? ~std::uint64_t{0} : n64 + 4;
}

// First fit; grows `end` towards `limit` when nothing fits. Returns the block's offset, or 0.
std::uint32_t arena_alloc(char* m, std::uint32_t* end, std::uint32_t limit, std::size_t n) {
  std::uint64_t need64 = block_need(n);
  if (need64 > limit) return 0;
  std::uint32_t need = static_cast<std::uint32_t>(need64);
  std::uint32_t last_free = 0;
  for (std::uint32_t o = kArenaStart; o < *end;) {
    std::uint32_t h = hdr(m, o), s = bsize(h);
    if (!(h & kUsed) && s >= need) {
      if (s - need >= 8) {
        set_hdr(m, o + need, s - need);
        set_hdr(m, o, need | kUsed);
      } else {
        set_hdr(m, o, s | kUsed);
      }
      return o;
    }
    last_free = (h & kUsed) ? 0 : o;
    o += s;
  }
  // Grow: extend a free last block, or add one at the end.
  std::uint32_t at = last_free != 0 ? last_free : *end;
  if (static_cast<std::uint64_t>(at) + need > limit) return 0;
  set_hdr(m, at, need | kUsed);
  *end = at + need;
  return at;
}

// True when o is the start of a used block.
bool arena_is_block(const char* m, std::uint32_t end, std::uint32_t o) {
  for (std::uint32_t q = kArenaStart; q < end; q += bsize(hdr(m, q))) {
    if (q == o) return (hdr(m, q) & kUsed) != 0;
    if (q > o) return false;
  }
  return false;
}

// Frees the block at o, merges free neighbours; `trim`: a free last block lowers end (brk).
void arena_free(char* m, std::uint32_t* end, std::uint32_t o, bool trim) {
  set_hdr(m, o, bsize(hdr(m, o)));
  std::uint32_t run = 0;  // start of the current free run
  std::uint32_t last = 0;
  for (std::uint32_t q = kArenaStart; q < *end;) {
    std::uint32_t h = hdr(m, q), s = bsize(h);
    if (h & kUsed) {
      run = 0;
    } else if (run != 0) {
      set_hdr(m, run, bsize(hdr(m, run)) + s);
    } else {
      run = q;
    }
    last = run;
    q += s;
  }
  if (trim && last != 0) *end = last;
}

ArenaStats arena_stats(const char* m, std::uint32_t end, std::uint32_t limit) {
  ArenaStats st;
  for (std::uint32_t q = kArenaStart; q < end; q += bsize(hdr(m, q))) {
    std::uint32_t h = hdr(m, q), s = bsize(h);
    if (h & kUsed) {
      st.used += s;
      ++st.blocks;
    } else {
      st.free += s;
      if (s > st.largest) st.largest = s;
    }
  }
  if (limit > end) {
    st.free += limit - end;
    if (limit - end > st.largest) st.largest = limit - end;
  }
  return st;
}

bool arena_check(const char* m, std::uint32_t end, std::uint32_t limit, TextSink* why) {
  if (end > limit || (end - kArenaStart) % 8 != 0) {
    if (why) why->str("nommu: arena end ").u(end).str(" beyond limit ").u(limit);
    return false;
  }
  bool prev_free = false;
  std::uint32_t q = kArenaStart;
  while (q < end) {
    std::uint32_t h = hdr(m, q), s = bsize(h);
    if (s < 8 || (h & 6) != 0 || q + s > end) {
      if (why) why->str("nommu: bad block header 0x").hex(h).str(" at ").u(q);
      return false;
    }
    bool is_free = (h & kUsed) == 0;
    if (is_free && prev_free) {
      if (why) why->str("nommu: two free blocks side by side at ").u(q);
      return false;
    }
    prev_free = is_free;
    q += s;
  }
  return q == end;
}

}  // namespace

const char* malloc_kind_name(MallocKind k) {
  switch (k) {
    case MallocKind::kSimple:
      return "simple";
    case MallocKind::kSmalloc:
      return "smalloc";
    case MallocKind::kHeap:
      return "heap";
    case MallocKind::kBrk:
      return "brk";
  }
  return "?";
}

const char* nommu_error_text(NommuError e) {
  switch (e) {
    case NommuError::kOk:
      return "ok";
    case NommuError::kNoMemory:
      return "out of memory";
    case NommuError::kMissingMemory:
      return "missing memory";
    case NommuError::kTooLarge:
      return "larger than the kernel allocator serves";
    case NommuError::kHeapFull:
      return "the fixed heap is full";
    case NommuError::kNoProcess:
      return "no such process";
    case NommuError::kTableFull:
      return "process table full";
    case NommuError::kExists:
      return "a process of that name exists";
    case NommuError::kBadPointer:
      return "not a live block";
    case NommuError::kNotYours:
      return "the block belongs to another process";
    case NommuError::kNeedsMmu:
      return "malloc=brk needs an MMU: a NOMMU heap cannot grow in place (use heap=SIZE)";
    case NommuError::kBadArgument:
      return "bad argument";
  }
  return "?";
}

bool Nommu::init(Kernel* k, const NommuConfig& cfg) {
  k_ = k;
  cfg_ = cfg;
  std::uint32_t want = cfg.region_record_bytes != 0 ? cfg.region_record_bytes : kDefaultRegionRecord;
  if (want < sizeof(VmRegion)) want = sizeof(VmRegion);
  record_bytes_ = (want + 7) & ~std::uint32_t{7};
  if (cfg_.smalloc_chunk < 64) cfg_.smalloc_chunk = 64;
  for (auto& p : procs_) p = NommuProcess{};
  buckets_ = nullptr;
  nr_buckets_ = 0;
  indexed_ = total_regions_ = mmap_bytes_ = lookup_steps_ = 0;
  failure_ = NommuFailure{};
  records_ = k->kmem_cache_create("vm_region", record_bytes_, 8, 0);
  if (records_ == nullptr) return false;
  mmap_copy_register(k_, &mmap_bytes_);
  return true;
}

void Nommu::shutdown() {
  if (k_ == nullptr) return;
  for (unsigned i = 0; i < kMaxProcesses; ++i)
    if (procs_[i].live) exit(static_cast<int>(i + 1));
  if (buckets_ != nullptr) k_->kfree(buckets_, kOwnerKernel);
  buckets_ = nullptr;
  nr_buckets_ = 0;
  if (records_ != nullptr) k_->kmem_cache_destroy(records_);
  records_ = nullptr;
  mmap_copy_unregister(k_);
  k_ = nullptr;
}

NommuProcess* Nommu::proc(int pid) {
  if (pid < 1 || pid > static_cast<int>(kMaxProcesses) || !procs_[pid - 1].live) return nullptr;
  return &procs_[pid - 1];
}
const NommuProcess* Nommu::proc(int pid) const {
  return const_cast<Nommu*>(this)->proc(pid);
}
const NommuProcess* Nommu::process(int pid) const {
  return proc(pid);
}

int Nommu::find(const char* name) const {
  for (unsigned i = 0; i < kMaxProcesses; ++i)
    if (procs_[i].live && str_eq(procs_[i].name, name)) return static_cast<int>(i + 1);
  return 0;
}

void Nommu::fail(NommuError e, std::uint64_t asked) {
  failure_.error = e;
  failure_.asked = asked;
  failure_.free = k_->zone().free_pages() * kPageSize;
  failure_.largest = k_->zone().largest_free_block() * kPageSize;
}

// A kmalloc of `bytes` failed: was it size, missing memory (fragmentation) or no memory?
void Nommu::classify_pool_failure(std::size_t bytes) {
  const Kmalloc& km = k_->kmalloc_layer();
  std::uint64_t asked;
  if (KmemCache* c = km.cache_for(bytes)) {
    asked = kPageSize << c->order;  // a new slab
  } else {
    asked = km.large_footprint(bytes);
    if (asked == 0) {
      fail(NommuError::kTooLarge, bytes);
      return;
    }
  }
  std::uint64_t free_b = k_->zone().free_pages() * kPageSize;
  std::uint64_t largest = k_->zone().largest_free_block() * kPageSize;
  fail(largest < asked && free_b >= asked ? NommuError::kMissingMemory : NommuError::kNoMemory, asked);
}

std::uint64_t Nommu::region_cost(const VmRegion* r) const {
  return k_->footprint(r->data) + k_->footprint(r);
}

// --- the index: a hash of region data addresses, chained through VmRegion::hnext ---
std::size_t Nommu::bucket(const void* data) const {
  auto a = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(data)) >> 3;
  return static_cast<std::size_t>((a * 0x9E3779B97F4A7C15ull) >> 20) & (nr_buckets_ - 1);
}

void Nommu::index_grow() {
  index_resize(nr_buckets_ == 0 ? 64 : nr_buckets_ * 2);
}

void Nommu::index_resize(std::size_t n) {
  auto** nb = static_cast<VmRegion**>(k_->kzalloc(n * sizeof(VmRegion*), GFP_KERNEL, kOwnerKernel));
  if (nb == nullptr) return;  // keep the old table: longer chains, still correct
  if (buckets_ != nullptr) k_->kfree(buckets_, kOwnerKernel);
  buckets_ = nb;
  nr_buckets_ = n;
  indexed_ = 0;
  // Rebuild from the lists (also picks up regions made while no table could be had).
  for (auto& p : procs_) {
    if (!p.live) continue;
    for (VmRegion* r = p.regions; r != nullptr; r = r->next) {
      if (r->kind != RegionKind::kData) continue;
      std::size_t b = bucket(r->data);
      r->hnext = buckets_[b];
      buckets_[b] = r;
      ++indexed_;
    }
  }
}

void Nommu::set_indexed(bool on) {
  if (on == cfg_.indexed) return;
  cfg_.indexed = on;
  if (on) {
    index_grow();
    return;
  }
  if (buckets_ != nullptr) k_->kfree(buckets_, kOwnerKernel);
  buckets_ = nullptr;
  nr_buckets_ = 0;
  indexed_ = 0;
}

void Nommu::index_add(VmRegion* r) {
  if (!cfg_.indexed) return;
  if (nr_buckets_ == 0 || indexed_ >= 2 * nr_buckets_) {
    index_grow();  // the rebuild already took r in (it is on its list)
    if (nr_buckets_ != 0 && indexed_ != 0 && buckets_[bucket(r->data)] != nullptr) {
      for (VmRegion* q = buckets_[bucket(r->data)]; q != nullptr; q = q->hnext)
        if (q == r) return;
    }
  }
  if (nr_buckets_ == 0) return;  // no table at all: lookups fall back to the list
  std::size_t b = bucket(r->data);
  r->hnext = buckets_[b];
  buckets_[b] = r;
  ++indexed_;
}

void Nommu::index_del(VmRegion* r) {
  if (!cfg_.indexed || nr_buckets_ == 0) return;
  VmRegion** at = &buckets_[bucket(r->data)];
  while (*at != nullptr && *at != r) at = &(*at)->hnext;
  if (*at == r) {
    *at = r->hnext;
    --indexed_;
  }
  r->hnext = nullptr;
  // Emptied (every process that filled it has exited): back to the first size, so the
  // kernel memory a burst of regions took comes back with them.
  if (indexed_ == 0 && nr_buckets_ > 64) index_resize(64);
}

// --- regions: the mmap/munmap of uClinux ---
VmRegion* Nommu::new_region(int pid, std::size_t len, RegionKind kind, NommuError* err) {
  NommuProcess* p = proc(pid);
  if (p == nullptr) {
    *err = NommuError::kNoProcess;
    return nullptr;
  }
  if (len == 0) len = 1;
  // Beyond kmalloc's largest block: the process's request is refused (classify says why),
  // not passed on for kmalloc to report as a caller's size overflow.
  void* data = len <= k_->kmalloc_layer().max_size() ? k_->kmalloc(len, GFP_KERNEL, kOwnerKernel) : nullptr;
  if (data == nullptr) {
    classify_pool_failure(len);
    *err = failure_.error;
    return nullptr;
  }
  auto* r = static_cast<VmRegion*>(k_->kmem_cache_alloc(records_, GFP_KERNEL, kOwnerKernel));
  if (r == nullptr) {
    k_->kfree(data, kOwnerKernel);
    classify_pool_failure(record_bytes_);
    *err = failure_.error;
    return nullptr;
  }
  r->data = data;
  r->size = len;
  r->end = 0;
  r->pid = static_cast<std::uint16_t>(pid);
  r->kind = kind;
  r->hnext = nullptr;
  // uClinux pushes at the head: allocation is O(1), lookups walk from the newest.
  r->prev = nullptr;
  r->next = p->regions;
  if (p->regions != nullptr) p->regions->prev = r;
  p->regions = r;
  p->nr_regions++;
  total_regions_++;
  p->bytes += region_cost(r);
  mmap_bytes_ += k_->ksize(data);
  if (kind == RegionKind::kData) index_add(r);
  *err = NommuError::kOk;
  return r;
}

void* Nommu::map_region(int pid, std::size_t len, RegionKind kind, NommuError* err) {
  VmRegion* r = new_region(pid, len, kind, err);
  return r != nullptr ? r->data : nullptr;
}

void Nommu::drop_region(VmRegion* r) {
  NommuProcess* p = &procs_[r->pid - 1];
  if (r->prev != nullptr)
    r->prev->next = r->next;
  else
    p->regions = r->next;
  if (r->next != nullptr) r->next->prev = r->prev;
  // Off its list first: an index emptied by this removal is rebuilt from the lists.
  if (r->kind == RegionKind::kData) index_del(r);
  p->nr_regions--;
  total_regions_--;
  p->bytes -= region_cost(r);
  mmap_bytes_ -= k_->ksize(r->data);
  if (p->heap == r) p->heap = nullptr;
  k_->kfree(r->data, kOwnerKernel);
  k_->kmem_cache_free(records_, r, kOwnerKernel);
}

VmRegion* Nommu::find_region(const NommuProcess* p, int pid, const void* data) {
  lookup_steps_ = 0;
  if (cfg_.indexed && nr_buckets_ != 0) {
    for (VmRegion* r = buckets_[bucket(data)]; r != nullptr; r = r->hnext) {
      ++lookup_steps_;
      if (r->data == data) return r->pid == pid && r->kind == RegionKind::kData ? r : nullptr;
    }
    return nullptr;
  }
  for (VmRegion* r = p->regions; r != nullptr; r = r->next) {
    ++lookup_steps_;
    if (r->data == data) return r->kind == RegionKind::kData ? r : nullptr;
  }
  return nullptr;
}

VmRegion* Nommu::region_containing(const NommuProcess* p, const void* addr) const {
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  for (VmRegion* r = p->regions; r != nullptr; r = r->next) {
    auto b = reinterpret_cast<std::uintptr_t>(r->data);
    if (a >= b && a - b < r->size) return r;
  }
  return nullptr;
}

NommuError Nommu::munmap(int pid, void* data) {
  NommuProcess* p = proc(pid);
  if (p == nullptr) return NommuError::kNoProcess;
  VmRegion* r = find_region(p, pid, data);
  if (r == nullptr)
    return owner_of(data) != 0 && owner_of(data) != pid ? NommuError::kNotYours : NommuError::kBadPointer;
  drop_region(r);
  return NommuError::kOk;
}

// --- processes ---
int Nommu::spawn(const char* name, MallocKind kind, std::size_t heap_bytes, NommuError* err) {
  if (kind == MallocKind::kBrk) {
    *err = NommuError::kNeedsMmu;
    return 0;
  }
  if (name == nullptr || name[0] == '\0' || str_len(name) >= kProcNameLen) {
    *err = NommuError::kBadArgument;
    return 0;
  }
  if (find(name) != 0) {
    *err = NommuError::kExists;
    return 0;
  }
  unsigned slot = 0;
  while (slot < kMaxProcesses && procs_[slot].live) ++slot;
  if (slot == kMaxProcesses) {
    *err = NommuError::kTableFull;
    return 0;
  }
  NommuProcess& p = procs_[slot];
  p = NommuProcess{};
  str_copy(p.name, sizeof p.name, name);
  p.live = true;
  p.kind = kind;
  int pid = static_cast<int>(slot + 1);
  if (kind == MallocKind::kHeap) {
    if (heap_bytes == 0) heap_bytes = kDefaultHeapBytes;
    VmRegion* r = new_region(pid, heap_bytes, RegionKind::kHeap, err);
    if (r == nullptr) {
      p.live = false;
      return 0;
    }
    r->end = kArenaStart;  // brk at the start: an empty heap
    p.heap = r;
  }
  *err = NommuError::kOk;
  return pid;
}

NommuError Nommu::exit(int pid) {
  NommuProcess* p = proc(pid);
  if (p == nullptr) return NommuError::kNoProcess;
  while (p->regions != nullptr) drop_region(p->regions);
  p->live = false;
  return NommuError::kOk;
}

// --- malloc strategies ---
void* Nommu::small_alloc(int pid, NommuProcess* p, std::size_t size, NommuError* err) {
  if (p->kind == MallocKind::kHeap) {
    VmRegion* h = p->heap;
    std::uint32_t limit = arena_limit(h->size);
    std::uint32_t o = arena_alloc(static_cast<char*>(h->data), &h->end, limit, size);
    if (o == 0) {
      ArenaStats st = arena_stats(static_cast<char*>(h->data), h->end, limit);
      failure_.error = NommuError::kHeapFull;
      failure_.asked = block_asked(size);
      failure_.free = st.free;
      failure_.largest = st.largest;
      *err = NommuError::kHeapFull;
      return nullptr;
    }
    *err = NommuError::kOk;
    return static_cast<char*>(h->data) + o + 4;
  }
  // smalloc: first fit over the chunks, then a new chunk.
  std::uint32_t limit = arena_limit(cfg_.smalloc_chunk);
  for (VmRegion* r = p->regions; r != nullptr; r = r->next) {
    if (r->kind != RegionKind::kChunk) continue;
    std::uint32_t o = arena_alloc(static_cast<char*>(r->data), &r->end, limit, size);
    if (o != 0) {
      *err = NommuError::kOk;
      return static_cast<char*>(r->data) + o + 4;
    }
  }
  VmRegion* r = new_region(pid, cfg_.smalloc_chunk, RegionKind::kChunk, err);
  if (r == nullptr) return nullptr;
  r->end = limit;
  set_hdr(static_cast<char*>(r->data), kArenaStart, limit - kArenaStart);
  std::uint32_t o = arena_alloc(static_cast<char*>(r->data), &r->end, limit, size);
  *err = NommuError::kOk;
  return static_cast<char*>(r->data) + o + 4;
}

void* Nommu::malloc(int pid, std::size_t size, NommuError* err) {
  NommuProcess* p = proc(pid);
  if (p == nullptr) {
    *err = NommuError::kNoProcess;
    return nullptr;
  }
  void* out;
  bool small =
      p->kind == MallocKind::kHeap ||
      (p->kind == MallocKind::kSmalloc && block_need(size) <= (arena_limit(cfg_.smalloc_chunk) - kArenaStart) / 2);
  if (small) {
    out = small_alloc(pid, p, size, err);
  } else {
    out = map_region(pid, size, RegionKind::kData, err);
  }
  if (out != nullptr) p->mallocs++;
  return out;
}

NommuError Nommu::small_free(NommuProcess* p, VmRegion* r, void* ptr) {
  char* m = static_cast<char*>(r->data);
  auto off = static_cast<std::uint64_t>(static_cast<char*>(ptr) - m);
  if (off < kArenaStart + 4 || off - 4 > r->end || !arena_is_block(m, r->end, static_cast<std::uint32_t>(off - 4)))
    return NommuError::kBadPointer;
  bool heap = r->kind == RegionKind::kHeap;
  arena_free(m, &r->end, static_cast<std::uint32_t>(off - 4), heap);
  if (!heap) {
    std::uint32_t limit = arena_limit(cfg_.smalloc_chunk);
    if (bsize(hdr(m, kArenaStart)) == limit - kArenaStart && !(hdr(m, kArenaStart) & kUsed))
      drop_region(r);  // empty chunk
  }
  (void)p;
  return NommuError::kOk;
}

NommuError Nommu::free(int pid, void* ptr) {
  NommuProcess* p = proc(pid);
  if (p == nullptr) return NommuError::kNoProcess;
  if (ptr == nullptr) return NommuError::kOk;
  NommuError e;
  if (VmRegion* r = find_region(p, pid, ptr)) {
    drop_region(r);
    e = NommuError::kOk;
  } else if (VmRegion* c = p->kind != MallocKind::kSimple ? region_containing(p, ptr) : nullptr) {
    e = small_free(p, c, ptr);
  } else {
    int o = owner_of(ptr);
    e = o != 0 && o != pid ? NommuError::kNotYours : NommuError::kBadPointer;
  }
  if (e == NommuError::kOk) p->frees++;
  return e;
}

std::size_t Nommu::usable(int pid, const void* ptr) const {
  const NommuProcess* p = proc(pid);
  if (p == nullptr || ptr == nullptr) return 0;
  VmRegion* r = region_containing(p, ptr);
  if (r == nullptr) return 0;
  if (r->kind == RegionKind::kData) return r->data == ptr ? k_->ksize(ptr) : 0;
  const char* m = static_cast<const char*>(r->data);
  auto off = static_cast<std::uint64_t>(static_cast<const char*>(ptr) - m);
  if (off < kArenaStart + 4 || !arena_is_block(m, r->end, static_cast<std::uint32_t>(off - 4))) return 0;
  return bsize(hdr(m, static_cast<std::uint32_t>(off - 4))) - 4;
}

std::size_t Nommu::footprint(int pid, const void* ptr) const {
  const NommuProcess* p = proc(pid);
  if (p == nullptr || ptr == nullptr) return 0;
  VmRegion* r = region_containing(p, ptr);
  if (r == nullptr) return 0;
  if (r->kind == RegionKind::kData) return r->data == ptr ? static_cast<std::size_t>(region_cost(r)) : 0;
  std::size_t u = usable(pid, ptr);
  return u == 0 ? 0 : u + 4;
}

void* Nommu::realloc(int pid, void* ptr, std::size_t size, NommuError* err) {
  NommuProcess* p = proc(pid);
  if (p == nullptr) {
    *err = NommuError::kNoProcess;
    return nullptr;
  }
  if (ptr == nullptr) return malloc(pid, size, err);
  if (size == 0) {
    *err = free(pid, ptr);
    return nullptr;
  }
  // Find the block (simple: the same list walk or index lookup as free).
  std::size_t have;
  if (VmRegion* r = find_region(p, pid, ptr)) {
    have = k_->ksize(r->data);
    if (size <= have) {
      // Fits where it is: the region now maps `size` bytes.
      std::uint64_t before = region_cost(r);
      r->size = size;
      p->bytes = p->bytes - before + region_cost(r);
      *err = NommuError::kOk;
      return ptr;
    }
  } else {
    have = usable(pid, ptr);
    if (have == 0) {
      int o = owner_of(ptr);
      *err = o != 0 && o != pid ? NommuError::kNotYours : NommuError::kBadPointer;
      return nullptr;
    }
    if (size <= have) {
      *err = NommuError::kOk;
      return ptr;
    }
  }
  // No MMU: nothing can grow in place past its block. Allocate, copy, free.
  void* q = malloc(pid, size, err);
  if (q == nullptr) return nullptr;
  std::memcpy(q, ptr, have < size ? have : size);
  NommuError fe = free(pid, ptr);
  if (fe == NommuError::kOk) p->frees--;  // a realloc is not a free
  p->mallocs--;
  *err = NommuError::kOk;
  return q;
}

std::uint64_t Nommu::process_bytes(int pid) const {
  const NommuProcess* p = proc(pid);
  return p != nullptr ? p->bytes : 0;
}

int Nommu::owner_of(const void* ptr) const {
  for (unsigned i = 0; i < kMaxProcesses; ++i)
    if (procs_[i].live && region_containing(&procs_[i], ptr) != nullptr) return static_cast<int>(i + 1);
  return 0;
}

ArenaStats Nommu::heap_stats(int pid) const {
  const NommuProcess* p = proc(pid);
  if (p == nullptr || p->heap == nullptr) return ArenaStats{};
  return arena_stats(static_cast<const char*>(p->heap->data), p->heap->end, arena_limit(p->heap->size));
}

bool Nommu::check_invariants(TextSink* why) const {
  std::uint64_t regions = 0, mmap_bytes = 0, data_regions = 0;
  for (unsigned i = 0; i < kMaxProcesses; ++i) {
    const NommuProcess& p = procs_[i];
    if (!p.live) continue;
    std::uint64_t n = 0, bytes = 0;
    const VmRegion* prev = nullptr;
    bool saw_heap = false;
    for (const VmRegion* r = p.regions; r != nullptr; r = r->next) {
      if (r->prev != prev) {
        if (why) why->str("nommu: ").str(p.name).str(": broken back link in the region list");
        return false;
      }
      if (r->pid != i + 1) {
        if (why) why->str("nommu: ").str(p.name).str(": a region names pid ").u(r->pid);
        return false;
      }
      if (k_->ksize(r->data) < r->size) {
        if (why)
          why->str("nommu: ")
              .str(p.name)
              .str(": region of ")
              .u(r->size)
              .str(" bytes over a block of ")
              .u(k_->ksize(r->data));
        return false;
      }
      if (r->kind == RegionKind::kHeap) {
        if (r != p.heap) {
          if (why) why->str("nommu: ").str(p.name).str(": a heap region that is not the process's heap");
          return false;
        }
        saw_heap = true;
      }
      if (r->kind != RegionKind::kData &&
          !arena_check(static_cast<const char*>(r->data), r->end, arena_limit(r->size), why))
        return false;
      if (r->kind == RegionKind::kData) ++data_regions;
      bytes += region_cost(r);
      mmap_bytes += k_->ksize(r->data);
      if (++n > total_regions_) {
        if (why) why->str("nommu: ").str(p.name).str(": cycle in the region list");
        return false;
      }
      prev = r;
    }
    if ((p.heap != nullptr) != saw_heap || (p.kind == MallocKind::kHeap && p.heap == nullptr)) {
      if (why) why->str("nommu: ").str(p.name).str(": heap pointer and region list disagree");
      return false;
    }
    if (n != p.nr_regions || bytes != p.bytes) {
      if (why)
        why->str("nommu: ")
            .str(p.name)
            .str(": list holds ")
            .u(n)
            .str(" regions / ")
            .u(bytes)
            .str(" bytes, counters say ")
            .u(p.nr_regions)
            .str(" / ")
            .u(p.bytes);
      return false;
    }
    regions += n;
  }
  if (regions != total_regions_ || mmap_bytes != mmap_bytes_) {
    if (why)
      why->str("nommu: totals: ")
          .u(regions)
          .str(" regions / ")
          .u(mmap_bytes)
          .str(" mmap bytes, counters say ")
          .u(total_regions_)
          .str(" / ")
          .u(mmap_bytes_);
    return false;
  }
  if (cfg_.indexed && nr_buckets_ != 0) {
    std::uint64_t in = 0;
    for (std::size_t b = 0; b < nr_buckets_; ++b) {
      for (const VmRegion* r = buckets_[b]; r != nullptr; r = r->hnext) {
        if (bucket(r->data) != b || r->kind != RegionKind::kData) {
          if (why) why->str("nommu: index: region in the wrong bucket ").u(b);
          return false;
        }
        if (++in > total_regions_) {
          if (why) why->str("nommu: index: cycle");
          return false;
        }
      }
    }
    if (in != indexed_ || in != data_regions) {
      if (why) why->str("nommu: index holds ").u(in).str(" regions, ").u(data_regions).str(" data regions live");
      return false;
    }
  }
  return true;
}

}  // namespace kmm

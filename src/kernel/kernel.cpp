// kmm/kernel/kernel.cpp — boot and the wiring it shares with attach, the allocation API with
// ownership, the idle loop, dmesg, detach and the end of the grace period (persistent RAM).
// Depends on: what kernel.h does; pal/pal_file.h off bare metal (detach, flush).
#include "kernel/kernel.h"

#include <cstring>
#include <new>
#if !KMM_FREESTANDING
#include <sys/random.h>
#endif

#include "base/bits.h"
#include "base/fault_inject.h"
#include "base/report.h"
#include "base/text.h"
#if !KMM_FREESTANDING
#include "pal/pal_file.h"
#endif

namespace kmm {

#if !KMM_HAVE_THREADS
owner_t t_current_owner = kOwnerKernel;  // with threads: kmm_thread_hot.owner (slab/thread_cache.cpp)
#endif

namespace {

constexpr std::uint64_t kVmallocOffset = 8ull << 20;    // Linux's VMALLOC_OFFSET
constexpr std::uint64_t kVmallocEnd32 = 0xFF800000ull;  // ARM's VMALLOC_END

// The seed of freelist_hardened's per-cache keys: the host's randomness where there is an OS
// (getrandom), else the RAM's address mixed with a stack address (ASLR gives some entropy).
std::uint64_t boot_random_seed(const void* ram) {
  std::uint64_t seed = 0;
#if !KMM_FREESTANDING
  if (::getrandom(&seed, sizeof seed, GRND_NONBLOCK) == static_cast<ssize_t>(sizeof seed)) return seed;
#endif
  int here = 0;
  seed = reinterpret_cast<std::uintptr_t>(ram) * 0x9E3779B97F4A7C15ull ^ reinterpret_cast<std::uintptr_t>(&here);
  return seed;
}

void collector_log(void* arg, const char* line, std::size_t len) {
  static_cast<Kernel*>(arg)->log(line, len);
}

}  // namespace

OwnerScope::OwnerScope(owner_t o) : saved_(current_owner()) {
  current_owner_word() = o == kOwnerFree ? kOwnerKernel : o;
}
OwnerScope::~OwnerScope() {
  current_owner_word() = saved_;
}

namespace {
// What is wrong with a machine of size bytes of RAM (whole pages) that cfg describes, before
// anything is reserved: null when it can boot.
const char* boot_layout_error(const BootConfig& cfg, std::uint64_t size) {
  if (size < 64 * kPageSize) {
    return "RAM too small: a machine needs at least 256K";
  }
  // The slab caches serve every size up to 8K whatever the limit: a smaller one would apply to
  // large kmallocs only (kmalloc_max=1 let kmalloc(100) through and refused 64K "over 1 byte").
  if (cfg.kmalloc_max != 0 && cfg.kmalloc_max < kKmallocMaxCacheSize) {
    return "kmalloc_max below 8K: the slab caches serve up to 8K (0: the policy's default)";
  }
  if ((cfg.phys_offset & (kPageSize - 1)) != 0) {
    return "phys_offset must be a multiple of 4K";
  }
  // Frames are numbered in 32 bits (pfn_t), their end too: RAM ends below 2^44 (16 TiB)
  // physical, or the numbers of its frames, and every address derived from them, are cut.
  // One largest block (4 MiB) of numbers more stays free above it, so that the page
  // allocators' "does a block of order k fit" sums, pfn + 2^k, never wrap (a review booted RAM
  // ending a frame below 2^44: the buddy's init freed a block past the end, then wrapped to
  // frame 0 and wrote outside mem_map).
  constexpr std::uint64_t kPhysEnd = (std::uint64_t{1} << (32 + kPageShift)) - (std::uint64_t{kPageSize} << kMaxOrder);
  if (cfg.phys_offset >= kPhysEnd || size > kPhysEnd - cfg.phys_offset) {
    return "phys_offset + ram passes 2^44 - 4M (16 TiB): frame numbers are 32 bits";
  }
  // The direct map, the 8M gap and the vmalloc space after it end below 2^64: their addresses
  // would wrap to the bottom (a review booted page_offset=0xFFFFFFFFFF000000 and got a vmalloc
  // range starting at 0).
  std::uint64_t kernel_space_end = 0;
  if (__builtin_add_overflow(cfg.page_offset, size, &kernel_space_end) ||
      __builtin_add_overflow(kernel_space_end, kVmallocOffset, &kernel_space_end) ||
      __builtin_add_overflow(kernel_space_end, cfg.vmalloc_bytes, &kernel_space_end)) {
    return "the direct map and the vmalloc space above page_offset pass the top of the address space: "
           "lower page_offset";
  }
  if (cfg.page_offset < (std::uint64_t{1} << 32)) {
    if (cfg.page_offset + size > (std::uint64_t{1} << 32) || cfg.page_offset + size > kVmallocEnd32 - kVmallocOffset) {
      return "RAM does not fit in the kernel space above page_offset (no highmem in kmm): lower page_offset or ram";
    }
  }
  if (size != static_cast<std::size_t>(size)) {
    return "RAM larger than this host's address space";
  }
  return nullptr;
}

}  // namespace

Kernel* Kernel::boot(const BootConfig& cfg, BootError* err) {
  BootError dummy;
  if (err == nullptr) err = &dummy;
  if (cfg.backing != nullptr) {
    // A machine on a heap file is formatted or attached by the layer above (src/persist),
    // which boots over the file's platform with backing cleared.
    err->what = "backing= is booted by persist_boot (src/persist/heap_file.h), not Kernel::boot";
    return nullptr;
  }
#if KMM_FREESTANDING
  Platform* pal = cfg.platform;
  if (pal == nullptr) {
    err->what = "no platform: a freestanding build needs a static buffer";
    return nullptr;
  }
#else
  Platform* pal = cfg.platform != nullptr ? cfg.platform : &mmap_platform();
#endif
  std::uint64_t size = cfg.ram_bytes & ~std::uint64_t{kPageSize - 1};
  if (const char* why = boot_layout_error(cfg, size)) {
    err->what = why;
    return nullptr;
  }
  // Aligned to the largest buddy block, so that buddy blocks are aligned in host addresses.
  std::size_t align = size >= (kPageSize << kMaxOrder) ? kPageSize << kMaxOrder : kPageSize;
  void* ram = pal->reserve(static_cast<std::size_t>(size), align);
  if (ram == nullptr && align != kPageSize) ram = pal->reserve(static_cast<std::size_t>(size), kPageSize);
  if (ram == nullptr) {
    err->what = "the platform could not reserve the RAM";
    return nullptr;
  }
  std::uint64_t online = cfg.online_bytes == 0 || cfg.online_bytes >= size ? size : cfg.online_bytes;
  std::uint64_t map_bytes = round_up(pages_for(size) * sizeof(Page), kPageSize);
  if (online < map_bytes + (64 << kPageShift)) online = map_bytes + (64 << kPageShift);
  if (online > size) online = size;
  online = round_up(online, kPageSize);
  if (!pal->commit(ram, static_cast<std::size_t>(online))) {
    pal->release(ram, static_cast<std::size_t>(size));
    err->what = "the platform could not commit the RAM";
    return nullptr;
  }
  PhysMem phys;
  // A fresh anonymous mapping of the host reads as zero (the default platform's reserve).
  bool fresh_zero = cfg.lazy_boot_frames && cfg.platform == nullptr;
  if (!phys.init(ram, static_cast<std::size_t>(size), cfg.phys_offset, static_cast<std::size_t>(online), fresh_zero)) {
    pal->release(ram, static_cast<std::size_t>(size));
    err->what = "RAM too small to hold its own mem_map";
    return nullptr;
  }
  void* self = phys.memblock_alloc(sizeof(Kernel));
  char* ring = static_cast<char*>(phys.memblock_alloc(kLogRingBytes));
  void* table = cfg.paper_table ? phys.memblock_alloc(PaperTable::bytes_needed()) : nullptr;
  std::uint64_t reserved_now = std::uint64_t{phys.reserved_pages()} << kPageShift;
  if (self == nullptr || ring == nullptr || (cfg.paper_table && table == nullptr) ||
      (cfg.reserved_bytes > reserved_now &&
       // Larger than RAM fails as it should, rather than wrapping into size_t on 32-bit.
       (cfg.reserved_bytes - reserved_now > size ||
        phys.memblock_alloc(static_cast<std::size_t>(cfg.reserved_bytes - reserved_now)) == nullptr)) ||
      phys.first_free_pfn() + 16 >= phys.end_pfn()) {
    pal->release(ram, static_cast<std::size_t>(size));
    err->what = "RAM too small for the kernel's boot memory";
    return nullptr;
  }
  Kernel* k = new (self) Kernel();
  k->cfg_ = cfg;
  k->ram_ = ram;
  k->ram_size_ = static_cast<std::size_t>(size);
  k->platform_ = pal;
  k->phys_ = phys;
  k->log_ring_ = ring;
  k->log_size_ = kLogRingBytes;
  if (table != nullptr) k->paper_.init(table);
  if (const char* why = k->init_parts()) {
    k->shutdown();
    err->what = why;
    return nullptr;
  }
  k->wire_parts();
  return k;
}

const char* Kernel::init_parts() {
  const BootConfig& cfg = cfg_;
  if (cfg.page_alloc == PageAllocKind::kRange) {
    // uClinux's page_alloc2 (page/range.h) over the online frames; it does not grow.
    RangePlacement rule = cfg.range_direction == RangeDirection::kSeed     ? RangePlacement::kSmallTopDown
                          : cfg.range_direction == RangeDirection::kSource ? RangePlacement::kSmallBottomUp
                                                                           : RangePlacement::kBottomUp;
    range_.init(&phys_, phys_.first_free_pfn(), phys_.online_end_pfn(), cfg.min_free_kbytes, rule,
                cfg.range_direction == RangeDirection::kSource ? 2 : 1);
    pages_ = &range_;
  } else {
    // The preload's RAM (a fresh anonymous mapping, purged with MADV_DONTNEED): its free
    // frames that were never touched or were purged read as zero (calloc skips their clear).
    zone_.set_reported_reads_zero(phys_.fresh_zero());
    zone_.init(&phys_, phys_.first_free_pfn(), phys_.online_end_pfn(), cfg.min_free_kbytes);
    if (phys_.online_end_pfn() < phys_.end_pfn()) {
      zone_.set_grow([](void* arg, unsigned order,
                        BuddyZone::GrowStep step) { return static_cast<Kernel*>(arg)->grow(order, step); },
                     this);
    }
    pages_ = &zone_;
  }
  slab_.init(pages_, SlabConfig{cfg.thread_caches, cfg.min_partial, cfg.hardening, boot_random_seed(ram_),
                                cfg.slab_empty_keep_bytes});
  if (!kmalloc_.init(&slab_,
                     KmallocConfig{cfg.kmalloc, cfg.kmalloc_max, cfg.hardening.guard_pages ? platform_ : nullptr}))
    return "RAM too small for the kmalloc caches";
  if (cfg.page_alloc == PageAllocKind::kRange && cfg.range_direction == RangeDirection::kSeed) {
    // The seed's "2 KB or less" at the page level: the slabs of kmalloc-8 .. kmalloc-2k.
    std::uint64_t small = 1;
    for (unsigned i = 0; i < kNrKmallocClasses && Kmalloc::class_size(i) <= 2048; ++i) {
      std::uint64_t n = std::uint64_t{1} << kmalloc_.class_cache(i)->order;
      if (n > small) small = n;
    }
    range_.set_small_pages(small);
  }
  modules_.init();
  std::uint64_t vstart = cfg.page_offset + ram_size_ + kVmallocOffset;
  std::uint64_t vend = vstart + cfg.vmalloc_bytes;
  if (cfg.page_offset < (std::uint64_t{1} << 32) && vend > kVmallocEnd32) vend = kVmallocEnd32;
  if (!vmalloc_.init(&kmalloc_, vstart, vend)) return "RAM too small for the vmalloc records";
  return nullptr;
}

void Kernel::wire_parts() {
  new (&collector_) Collector();  // at attach: the file's pass state is not this process's
  collector_.init(&modules_, &kmalloc_, cfg_.protector, cfg_.gc_delay_ns, collector_log, this);
  collector_.set_slice_pages(cfg_.gc_slice_pages);
  collector_.add_space(&vmalloc_);
  fault_set_log(fault_log, this);
}

void Kernel::fault_log(void* arg, const char* line, std::size_t len) {
  auto* k = static_cast<Kernel*>(arg);
  // Any thread may fail an allocation while the idle thread moves the clock.
  std::uint64_t now = __atomic_load_n(&k->now_ns_, __ATOMIC_RELAXED);
  StackText<32> stamp;
  stamp.ch('[').u(now / 1000000000ull, 5).ch('.');
  std::uint64_t us = (now / 1000) % 1000000;
  for (std::uint64_t d = 100000; d != 0; d /= 10) stamp.ch(static_cast<char>('0' + (us / d) % 10));
  stamp.str("] ");
  StackText<320> out;
  out.str(stamp.data()).str(line, len);
  k->log(out.data(), out.size());
}

bool Kernel::grow(unsigned order, BuddyZone::GrowStep step) {
  // The empty slabs caches keep (slab_empty_keep_bytes) are memory the machine holds resident:
  // given back before the platform is asked for more, or a block given back to the OS is
  // faulted in again, so that keeping them never grows the heap. Only tried: the caller may
  // hold a cache lock (new_slab under it), and a busy cache is passed over.
  if (step == BuddyZone::GrowStep::kReclaim)
    return slab_.kept_empty_bytes() != 0 && slab_.shrink_empty(nullptr, /*try_only=*/true) != 0;
  LockGuard g(grow_lock_);
  std::uint64_t want = cfg_.grow_bytes < (kPageSize << order) * 2 ? (kPageSize << order) * 2 : cfg_.grow_bytes;
  pfn_t got = 0;
  pfn_t first = phys_.online_end_pfn();
  if (first >= phys_.end_pfn()) return false;
  pfn_t n = static_cast<pfn_t>(pages_for(want));
  if (n > phys_.end_pfn() - first) n = phys_.end_pfn() - first;
  // The fail_platform point: the one platform call a booted machine makes (memory hotplug).
  if (fault_should_fail(FaultPoint::kPlatform, std::size_t{n} << kPageShift, "commit")) return false;
  if (!platform_->commit(phys_.pfn_to_virt(first), std::size_t{n} << kPageShift)) return false;
  phys_.online_more(n, &got);
  if (got == 0) return false;
  zone_.add_frames(first + got);
  return true;
}

void Kernel::lock_all() {
  collector_.fork_lock().lock();
  modules_.fork_lock().lock();
  slab_.lock_all();
  grow_lock_.lock();
  zone_.report_fork_lock().lock();
  zone_.fork_lock().lock();
  log_lock_.lock();
  kmalloc_.guard_cache_lock().lock();  // a leaf: taken under any of the above
}

void Kernel::unlock_all() {
  kmalloc_.guard_cache_lock().unlock();
  log_lock_.unlock();
  zone_.fork_lock().unlock();
  zone_.report_fork_lock().unlock();
  grow_lock_.unlock();
  slab_.unlock_all();
  modules_.fork_lock().unlock();
  collector_.fork_lock().unlock();
}

std::size_t Kernel::release_zero_pages() {
  if (platform_ == nullptr) return 0;
  auto first = static_cast<std::uintptr_t>(round_up(reinterpret_cast<std::uintptr_t>(this), kPageSize));
  auto end = (reinterpret_cast<std::uintptr_t>(this) + sizeof(Kernel)) & ~std::uintptr_t{kPageSize - 1};
  std::size_t released = 0;
  for (std::uintptr_t page = first; page < end; page += kPageSize) {
    const auto* word = reinterpret_cast<const unsigned char*>(page);
    bool zero = true;
    for (std::size_t i = 0; i < kPageSize && zero; i += sizeof(std::uint64_t)) {
      std::uint64_t w;
      std::memcpy(&w, word + i, sizeof w);
      zero = w == 0;
    }
    if (!zero) continue;
    if (!platform_->purge(reinterpret_cast<void*>(page), kPageSize)) break;  // cannot: none will
    ++released;
  }
  return released;
}

std::uint64_t Kernel::purge_free(unsigned min_order, std::uint32_t min_age_ms, std::uint64_t max_pages) {
  if (pages_ != &zone_ || platform_ == nullptr) return 0;
  auto sink = [](void* pal, void* addr, std::size_t bytes) { return static_cast<Platform*>(pal)->purge(addr, bytes); };
  return zone_.report_free(min_order, min_age_ms, max_pages, sink, platform_);
}

#if !KMM_FREESTANDING
void Kernel::detach() {
  slab_.release_thread_caches();  // slabs and ThreadCache frames back: the counters agree
  FilePlatform* fp = backing_;
  fp->close(true);  // flush, superblock clean, unmap: `this` is gone after this line
  heap_file_release(fp);
}
#endif

bool Kernel::flush() {
#if KMM_FREESTANDING
  return false;
#else
  return backing_ != nullptr && backing_->flush();
#endif
}

unsigned Kernel::boot_complete() {
  if (!grace_pending_) return 0;
  grace_pending_ = false;
  grace_deadline_ns_ = 0;
  unsigned n = modules_.expire_dormant(now_ns_);
  if (n != 0) {
    collector_.kick();
    StackText<200> line;
    line.ch('[').u(now_ns_ / 1000000000ull, 5).str(".000000] kmm: boot complete: ").u(n);
    line.str(n == 1 ? " module" : " modules")
        .str(" not loaded again; the protector (")
        .str(protector_mode_name(collector_.mode()));
    line.str(") takes what they own").nl();
    log(line.data(), line.size());
  }
  return n;
}

void Kernel::shutdown() {
  fault_clear_log(this);
#if !KMM_FREESTANDING
  if (backing_ != nullptr) {  // persistent RAM: the machine stays in its file
    detach();
    return;
  }
#endif
  slab_.shutdown();
  Platform* pal = platform_;
  void* ram = ram_;
  std::size_t size = ram_size_;
  this->~Kernel();
  pal->release(ram, size);
}

owner_t Kernel::resolve(owner_t o) const {
  return o == kOwnerFree ? current_owner() : o;
}

void Kernel::track(const void* p, owner_t owner, std::size_t size) {
  if (cfg_.paper_table && p != nullptr && !zero_or_null(p) && owner >= kOwnerFirstModule) paper_.record(p, owner, size);
}

void Kernel::untrack(const void* p) {
  if (cfg_.paper_table && !zero_or_null(p)) paper_.erase(p);
}

void* Kernel::kmalloc(std::size_t size, gfp_t gfp, owner_t owner) {
  owner = resolve(owner);
  void* p = kmalloc_.kmalloc(size, gfp, owner);
  if (p == nullptr) count_failure();
  track(p, owner, size);
  return p;
}

void* Kernel::kzalloc(std::size_t size, gfp_t gfp, owner_t owner) {
  return kmalloc(size, gfp | __GFP_ZERO, owner);
}

void* Kernel::kcalloc(std::size_t n, std::size_t size, gfp_t gfp, owner_t owner) {
  owner = resolve(owner);
  void* p = kmalloc_.kcalloc(n, size, gfp, owner);
  if (p == nullptr) count_failure();
  track(p, owner, n * size);
  return p;
}

bool Kernel::check_free(const void* p, owner_t by, const char* action) {
  if (cfg_.cross_free == CrossFree::kAllow || by == kOwnerKernel || zero_or_null(p)) return true;
  owner_t owner = kmalloc_.owner_of(p);
  if (owner == kOwnerFree || owner == by) return true;
  StackText<160> why;
  why.str(modules_.owner_name(by)).str(" frees a block owned by ").str(modules_.owner_name(owner));
  if (cfg_.cross_free == CrossFree::kReport) {
    StackText<256> line;
    line.str("kmm: warning: ").str(action).str(": ").str(why.data()).nl();
    log(line.data(), line.size());
    return true;
  }
  why.str("; refused (cross_free=refuse)");
  report({ErrorKind::kOwnerMismatch, action, p, nullptr, kmalloc_.ksize(p), why.data()});
  return false;
}

void* Kernel::krealloc(void* p, std::size_t size, gfp_t gfp, owner_t by) {
  by = resolve(by);
  if (!check_free(p, by, "krealloc")) return nullptr;
  untrack(p);
  void* q = kmalloc_.krealloc(p, size, gfp, by);
  if (q == nullptr && size != 0) {
    count_failure();
    track(p, kmalloc_.owner_of(p), kmalloc_.ksize(p));
  } else {
    track(q, kmalloc_.owner_of(q), size);
  }
  return q;
}

bool Kernel::kfree(const void* p, owner_t by) {
  by = resolve(by);
  if (!check_free(p, by, "kfree")) return false;
  if (zero_or_null(p)) return true;
  untrack(p);
  return kmalloc_.kfree(p) != kOwnerFree;
}

KmemCache* Kernel::kmem_cache_create(const char* name, std::size_t size, std::size_t align, std::uint32_t flags) {
  return slab_.create(name, size, align, flags);
}

void* Kernel::kmem_cache_alloc(KmemCache* c, gfp_t gfp, owner_t owner) {
  owner = resolve(owner);
  void* p = slab_.alloc(c, gfp, owner);
  if (p == nullptr) count_failure();
  track(p, owner, c->object_size);
  return p;
}

bool Kernel::kmem_cache_free(KmemCache* c, const void* p, owner_t by) {
  by = resolve(by);
  if (!check_free(p, by, "kmem_cache_free")) return false;
  untrack(p);
  return slab_.free(c, p, "kmem_cache_free") != kOwnerFree;
}

void* Kernel::alloc_pages(unsigned order, gfp_t gfp, owner_t owner) {
  owner = resolve(owner);
  if (order > kMaxOrder) {
    report({ErrorKind::kBadArgument, "alloc_pages", nullptr, nullptr, kPageSize << (order > 30 ? 30 : order),
            "order above MAX_ORDER"});
    return nullptr;
  }
  Page* head = pages_->alloc_pages(order, gfp);
  if (head == nullptr && slab_.reclaim_quarantine()) head = pages_->alloc_pages(order, gfp);
  if (head == nullptr) {
    count_failure();
    return nullptr;
  }
  pfn_t pfn = phys_.page_to_pfn(head);
  // Owner, size and tails before the head's flags (persistent RAM, docs/PERSISTENCE.md).
  head->set_owner(owner);
  head->set_nr_pages(1u << order);
  for (unsigned i = 1; i < (1u << order); ++i) {
    head[i].set_tail_head(pfn);
    head[i].publish_flags(PG_large | PG_tail);  // after its head (Page::tail_head)
  }
  head->publish_flags(PG_large | PG_head | PG_pages);
  void* p = phys_.page_address(head);
  track(p, owner, kPageSize << order);
  return p;
}

bool Kernel::free_pages(const void* p, owner_t by) {
  by = resolve(by);
  if (!phys_.owns(p)) {
    report({ErrorKind::kForeignPointer, "free_pages", p, nullptr, 0, "not inside this machine's memory"});
    return false;
  }
  Page* page = phys_.virt_to_page(p);
  if (!page->is(PG_pages) || !page->is(PG_head) || phys_.page_address(page) != p) {
    // A free frame is a double free whether or not it heads its free block: a block freed
    // merges with its free buddy, and only the merged block's head is PG_buddy.
    const bool free = pages_->frame_is_free(phys_.page_to_pfn(page));
    report({free ? ErrorKind::kDoubleFree : ErrorKind::kInvalidFree, "free_pages", p, nullptr, 0,
            free ? "the pages are already free" : "not the start of an alloc_pages block"});
    return false;
  }
  if (!check_free(p, by, "free_pages")) return false;
  // Claimed before it is freed, as kfree's blocks are: without the claim a pass reclaiming a
  // gone module's block and this free could both pass their checks and free the run twice.
  untrack(p);
  return kmalloc_.claim_and_free_large(page, p, "free_pages") != kOwnerFree;
}

std::uint64_t Kernel::vmalloc(std::size_t size, owner_t owner) {
  std::uint64_t va = vmalloc_.vmalloc(size, resolve(owner));
  if (va == 0) count_failure();
  return va;
}

bool Kernel::vfree(std::uint64_t addr, owner_t by) {
  by = resolve(by);
  const VmArea* a = vmalloc_.find(addr);
  if (a == nullptr || a->addr != addr) {
    report({ErrorKind::kInvalidFree, "vfree", reinterpret_cast<const void*>(static_cast<std::uintptr_t>(addr)), nullptr,
            0, "not the start of a vmalloc area"});
    return false;
  }
  if (cfg_.cross_free != CrossFree::kAllow && by != kOwnerKernel && a->owner != by) {
    StackText<160> why;
    why.str(modules_.owner_name(by)).str(" frees a vmalloc area owned by ").str(modules_.owner_name(a->owner));
    if (cfg_.cross_free == CrossFree::kReport) {  // as check_free says it for the other frees
      StackText<256> line;
      line.str("kmm: warning: vfree: ").str(why.data()).nl();
      log(line.data(), line.size());
    } else {
      report({ErrorKind::kOwnerMismatch, "vfree", reinterpret_cast<const void*>(static_cast<std::uintptr_t>(addr)),
              nullptr, a->nr_pages * kPageSize, why.data()});
      return false;
    }
  }
  return vmalloc_.vfree(addr);
}

bool Kernel::transfer(const void* p, owner_t to) {
  if (kmalloc_.owner_of(p) == kOwnerFree) return false;
  if (!kmalloc_.set_owner(p, to == kOwnerFree ? kOwnerKernel : to)) return false;
  if (cfg_.paper_table) {
    std::size_t n = kmalloc_.ksize(p);
    paper_.erase(p);
    track(p, to, n);
  }
  return true;
}

bool Kernel::transfer_vmalloc(std::uint64_t addr, owner_t to) {
  return vmalloc_.set_owner(addr, to == kOwnerFree ? kOwnerKernel : to);
}

ModuleError Kernel::insmod(const char* name, std::uint64_t core_size, owner_t* owner) {
  owner_t o = kOwnerFree;
  ModuleError e = modules_.load(name, core_size, now_ns(), &o);
  // A live owner's objects are never reclaimed: their frees need no exchange (slab.h).
  if (e == ModuleError::kOk) slab_.set_owner_live(o);
  if (owner != nullptr) *owner = o;
  return e;
}

ModuleError Kernel::rmmod(const char* name) {
  owner_t o;
  return modules_.unload(name, now_ns(), &o);
}

namespace {
struct PaperGc {
  Kernel* k;
  bool reclaim;  // free each record's block, or only count it
  std::uint64_t objects, bytes;
  static void visit(void* arg, const void* p, std::size_t, owner_t) {
    auto* g = static_cast<PaperGc*>(arg);
    g->objects++;
    g->bytes += g->k->kmalloc_layer().footprint(p);
    if (g->reclaim) g->k->kmalloc_layer().kfree(p, "gc_process");
  }
};
}  // namespace

// The paper's gc_process() over its table of records: frees every record of a gone module in
// reclaim mode. The table has no reachability scan, so reclaim-unreachable frees nothing
// here, as report does: both count and log what is left (freeing in report mode, or a block
// still referenced, was the review's use after free). Counted in the collector's stats.
void Kernel::paper_pass() {
  bool dead[kMaxOwners];
  modules_.dead_owners(dead);
  const bool reclaim = collector_.mode() == ProtectorMode::kReclaim;
  PaperGc gc{this, reclaim, 0, 0};
  paper_.collect(dead, &PaperGc::visit, &gc, /*clear=*/reclaim);
  StackText<240> line;
  line.ch('[').u(now_ns_ / 1000000000ull, 5).str(".000000] GCONLINUX activated: paper-table pass ");
  line.str(reclaim ? "reclaimed " : "found ").u(gc.objects).str(" objects (").u(gc.bytes).str(" bytes)");
  if (!reclaim) {
    line.str(collector_.mode() == ProtectorMode::kReclaimUnreachable
                 ? " left by unloaded modules: kept (the paper's table has no reachability scan)"
                 : " left by unloaded modules: kept (report)");
  }
  line.nl();
  if (gc.objects != 0) log(line.data(), line.size());
  const OwnerTally found{gc.objects, gc.bytes};
  const OwnerTally none{};
  collector_.external_pass_done(now_ns_, reclaim ? none : found, reclaim ? found : none);
  if (!reclaim) return;
  // Release only owners that hold nothing now: blocks the full table never recorded
  // still carry the id, and a reused id would charge them to the next module.
  OwnerTally left[kMaxOwners];
  usage(left);
  for (unsigned o = 0; o < kMaxOwners; ++o)
    if (dead[o] && left[o].objects == 0) modules_.release(static_cast<owner_t>(o));
}

void Kernel::idle(std::uint64_t ns) {
  // The clock stops at its top (585 years of ns) rather than wrap into the past.
  std::uint64_t end = add_saturating(now_ns_, ns);
  if (grace_pending_ && grace_deadline_ns_ != 0 && end >= grace_deadline_ns_) {
    // Persistent RAM: the boot grace period ends inside this idle period.
    if (now_ns_ < grace_deadline_ns_) set_clock(grace_deadline_ns_);
    boot_complete();  // only an attach (persistent RAM) sets a grace period
  }
  slab_.drain_current_thread();
  kmalloc_.drain_guard_cache(/*aged_only=*/true);  // runs parked since the last idle go back
  if (cfg_.paper_table) {
    // The paper's gc_process(): at most one walk of the table per gc_delay.
    while (collector_.mode() != ProtectorMode::kOff && modules_.nr_gone() != 0) {
      std::uint64_t due = collector_.due(now_ns_) ? now_ns_ : collector_.next_due_ns();  // due() honours kick()
      if (due > end) break;
      if (due > now_ns_) set_clock(due);
      paper_pass();
      break;
    }
    set_clock(end);
    return;
  }
  while (now_ns_ <= end) {
    if (collector_.due(now_ns_)) {
      collector_.run_pass(now_ns_);
      if (collector_.next_due_ns() <= now_ns_) break;  // gc_delay=0: one pass per idle
      continue;
    }
    if (collector_.mode() == ProtectorMode::kOff || modules_.nr_gone() == 0) break;
    std::uint64_t next = collector_.next_due_ns();
    if (next > end) break;
    set_clock(next > now_ns_ ? next : now_ns_);
  }
  set_clock(end);
}

// One walk of mem_map tallying live blocks by owner: slab objects when `slabs` (only those of
// `only` when it is set), page-level blocks when `large`.
void Kernel::tally_blocks(bool slabs, const KmemCache* only, bool large, OwnerTally* out) const {
  for (pfn_t pfn = phys_.base_pfn(); pfn < phys_.online_end_pfn();) {
    Page* page = phys_.pfn_to_page(pfn);
    pfn_t step = 1;
    if (page->is(PG_slab) && page->is(PG_head)) {
      step = pfn_t{1} << page->get_order();
      const KmemCache* c = const_cast<SlabAllocator&>(slab_).cache(page->get_cache_id());
      if (slabs && c != nullptr && (only == nullptr || only == c)) {
        for (unsigned i = 0; i < c->objects; ++i) {
          owner_t o = __atomic_load_n(slab_.owner_slot(c, page, i), __ATOMIC_RELAXED);
          if (o == kOwnerFree) continue;
          out[o].objects++;
          out[o].bytes += c->size;
        }
      }
    } else if (page->is(PG_large) && page->is(PG_head)) {
      step = page->get_nr_pages();
      if (large) {
        out[page->get_owner()].objects++;
        out[page->get_owner()].bytes += std::uint64_t{step} << kPageShift;
      }
    } else if (page->is(PG_buddy)) {
      step = pfn_t{1} << page->get_order();
    }
    pfn += step == 0 ? 1 : step;
  }
}

void Kernel::usage(OwnerTally* out) const {
  std::memset(out, 0, sizeof(OwnerTally) * kMaxOwners);
  tally_blocks(true, nullptr, true, out);
  for (const VmArea* a = vmalloc_.areas(); a != nullptr; a = a->next) {
    out[a->owner].objects++;
    out[a->owner].bytes += std::uint64_t{a->nr_pages} << kPageShift;
  }
}

void Kernel::cache_usage(const KmemCache* c, OwnerTally* out) const {
  std::memset(out, 0, sizeof(OwnerTally) * kMaxOwners);
  // A cache's objects, or (c null) the page-level blocks alone.
  tally_blocks(c != nullptr, c, c == nullptr, out);
}

void* Kernel::kva_to_host(std::uint64_t va) const {
  if (va < cfg_.page_offset || va - cfg_.page_offset >= phys_.size()) return nullptr;
  return phys_.base() + (va - cfg_.page_offset);
}

void Kernel::log(const char* line, std::size_t len) {
  {
    LockGuard g(log_lock_);  // threads log at once (FAULT_INJECTION lines, the collector)
    for (std::size_t i = 0; i < len; ++i) log_ring_[(log_head_ + i) % log_size_] = line[i];
    log_head_ += len;
  }
  if (log_listener_ != nullptr) log_listener_(log_arg_, line, len);
}

void Kernel::dmesg(TextSink& out) const {
  for_each_log_char([&out](char c) { out.ch(c); });
}

bool Kernel::check_invariants(TextSink* why) {
  if (!pages_->check_invariants(why)) return false;
  if (!slab_.check_invariants(why)) return false;
  if (!vmalloc_.check_invariants(why)) return false;
  // Every frame is accounted for: free in the buddy lists, or one of the roles.
  std::uint64_t free_frames = 0;
  for (pfn_t pfn = pages_->start_pfn(); pfn < pages_->end_pfn(); ++pfn)
    free_frames += pages_->frame_is_free(pfn) ? 1 : 0;
  if (free_frames != pages_->free_pages()) {
    if (why)
      why->str("kernel: mem_map shows ")
          .u(free_frames)
          .str(" free frames, the page allocator counts ")
          .u(pages_->free_pages());
    return false;
  }
  return true;
}

}  // namespace kmm

// kmm/persist/attach.cpp — attach: check the stored Kernel object and its parts' stored
// configuration, re-set the pointers, rebuild, start the grace period, wire. See attach.h;
// the essay is docs/PERSISTENCE.md.
//
// Position: the file is always mapped at the address recorded at format, so the Kernel
// object's pointers into RAM stay valid; pointers out of RAM (the platform, function
// pointers, the vtables of BuddyZone and Vmalloc, the log listener) are re-set here.
//
// Depends on: kernel/, pal/pal_file.h, persist/heap_file.h (the layout hash). Never
// allocates. Invariant: nothing is written to the file before stored() accepted it.
#include "persist/attach.h"

#include <time.h>

#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <new>

#include "persist/heap_file.h"

namespace kmm {
namespace {

char g_err[320];

std::uint64_t mono_ns() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// A bool read from a heap file holds 0 or 1 (any other byte is no bool: reading it as one is
// undefined). Read through memcpy, so the check itself reads bytes.
bool stored_bools_ok(std::initializer_list<const bool*> fields) {
  for (const bool* f : fields) {
    unsigned char b;
    std::memcpy(&b, f, 1);
    if (b > 1) return false;
  }
  return true;
}

bool hardening_bools_ok(const HardeningConfig& h) {
  return stored_bools_ok({&h.freelist_hardened, &h.redzone, &h.poison, &h.guard_pages});
}

}  // namespace

const char* persist_keep_error(const char* what) {
  std::snprintf(g_err, sizeof g_err, "%s", what);
  return g_err;
}

// --- the parts' stored configuration: checked, pointers between parts re-set -------------

bool SlabAllocator::is_cache(const KmemCache* c) const {
  for (const auto& x : caches_)
    if (&x == c) return __atomic_load_n(&x.in_use, __ATOMIC_ACQUIRE);
  return false;
}

const char* SlabAllocator::reattach(PhysMem* phys, PageAllocator* zone) {
  phys_ = phys;
  zone_ = zone;
  // Runtime state, never the file's: whether this process has the barrier call is asked
  // again in rebuild_begin (a crafted byte here was once read as a bool: UBSan, fuzz heapimage).
  fence_ok_ = false;
  // The file's heap id and generation name another process's thread-cache registry: cleared
  // (kNoHeapGen: no thread cache) until rebuild_begin registers this heap.
  heap_id_ = 0;
  heap_gen_ = kNoHeapGen;
  set_fast_gen(true);  // kNoHeapGen too, until route_faults in rebuild_begin
  // Slab starts from descriptors until the zone, whose virtual aligned_blocks() decides the
  // masks, is an object of this process again (KernelImage::rebuild calls
  // set_owner_mask_orders then): a call through its stored vtable jumped into another
  // process's text (a segfault at every attach of a file made by another process).
  owner_mask_orders_ = 0;
  masked_ram_bytes_ = 0;
  // The routing observer is a function of the process that stored it (the shim's malloc):
  // rebuild_begin's route_faults would call the file's pointer, one a crafted file chooses
  // (a SEGV calling through a pointer the heap-image fuzzer wrote). This process sets its own.
  route_observer_ = nullptr;
  new (&q_lock_) SpinLock();
  if (!stored_bools_ok({&cfg_.thread_caches}) || !hardening_bools_ok(cfg_.hardening))
    return "the file's slab configuration holds a byte that is no bool";
  if (cfg_.hardening.debug_caches() || cfg_.hardening.guard_pages)
    return "the file's slab allocator has debug caches, which backing= never makes";
  q_ring_ = nullptr;
  q_pages_ = nullptr;
  q_cap_ = q_head_ = 0;
  q_count_ = q_bytes_ = 0;
  for (unsigned i = 0; i < kMaxCaches; ++i) {
    KmemCache& c = caches_[i];
    if (!stored_bools_ok({&c.in_use, &c.offslab_owners})) return "a cache descriptor holds a byte that is no bool";
    if (!c.in_use) continue;
    std::uint64_t slab_bytes = c.order <= kMaxOrder ? std::uint64_t{kPageSize} << c.order : 0;
    std::uint64_t owner_room = slab_bytes == 0 ? 0
                               : c.offslab_owners
                                   ? ((std::uint64_t{1} << c.order) - 1) * kTailOwnerBytes
                                   : slab_bytes - (c.owners_offset < slab_bytes ? c.owners_offset : slab_bytes);
    bool ok = c.id == i && std::memchr(c.name, 0, sizeof c.name) != nullptr && slab_bytes != 0 && c.size >= 8 &&
              c.object_size <= c.size && c.fp_offset <= c.size - sizeof(std::uint32_t) && c.objects != 0 &&
              std::uint64_t{c.objects} * c.size <= slab_bytes && c.objects <= owner_room &&
              (c.offslab_owners || c.owners_offset >= std::uint64_t{c.objects} * c.size) &&
              (c.tc_slot < kMaxTcSlots || c.tc_slot == 0xFF) &&
              (c.alloc_tc_slot < kMaxTcSlots || c.alloc_tc_slot == 0xFF) &&
              (c.tc_slot == 0xFF || (c.order == kOwnedSlabOrder && !c.offslab_owners)) && c.debug == 0;
    if (!ok) return "a cache descriptor does not describe slabs create() could make";
    c.reciprocal = static_cast<std::uint32_t>(((std::uint64_t{1} << 32) + c.size - 1) / c.size);
    c.unfull_inuse = unfull_inuse_for(c.objects);  // derived, as the reciprocal is: not trusted from the file
    c.objects32 = c.objects;
    c.owner_colour_mask = owner_colour_mask_for(&c);  // derived, as in size_cache
  }
  // The thread-cache slots (after the loop above, which checked that every in_use is a bool):
  // create() hands out tc_slots_used_++, so every cache's slot lies below it and no two caches
  // share one. A file whose count was lowered attached clean, and the next cache created took
  // a slot in use: its 1000-byte objects came out of kmalloc-8's slabs (a crafted byte, stop
  // 48's review).
  if (tc_slots_used_ > kMaxTcSlots) return "the slab allocator's thread-cache slot count is out of range";
  std::uint32_t slots_seen = 0;  // kMaxTcSlots bits
  static_assert(kMaxTcSlots <= 32, "slots_seen is 32 bits");
  for (unsigned i = 0; i < kMaxCaches; ++i) {
    const KmemCache& c = caches_[i];
    if (!c.in_use || c.tc_slot == 0xFF) continue;
    if (c.tc_slot >= tc_slots_used_ || (slots_seen >> c.tc_slot & 1) != 0 ||
        (c.alloc_tc_slot != c.tc_slot && c.alloc_tc_slot != 0xFF))
      return "two caches share a thread-cache slot, or one lies beyond the slots handed out";
    slots_seen |= std::uint32_t{1} << c.tc_slot;
  }
  return nullptr;
}

const char* ModuleRegistry::check_stored() {
  for (Module& m : slots_) {
    if (!stored_bools_ok({&m.leaks_reported}) || std::memchr(m.name, 0, sizeof m.name) == nullptr ||
        static_cast<unsigned>(m.state) > static_cast<unsigned>(ModuleState::kDormant))
      return "a module slot of the heap file is malformed (name, state or flag): refused";
  }
  return nullptr;
}

const char* Kmalloc::reattach(SlabAllocator* slab, PhysMem* phys) {
  slab_ = slab;
  phys_ = phys;
  cfg_.guard_platform = nullptr;
  if (max_size_ > (kPageSize << kMaxOrder)) max_size_ = kPageSize << kMaxOrder;
  // A class must hold its size: a smaller cache there would hand out blocks too small.
  for (unsigned i = 0; i < kNrKmallocClasses; ++i)
    if (!slab->is_cache(classes_[i]) || classes_[i]->object_size < Kmalloc::class_size(i))
      return "a kmalloc size class is not a cache in use of its size";
  fill_class_tables();
  return nullptr;
}

const char* Vmalloc::reattach(Kmalloc* km, PhysMem* phys) {
  kmalloc_ = km;
  phys_ = phys;
  walk_freed_ = nullptr;
  if (!km->slab()->is_cache(area_cache_) || area_cache_->object_size < sizeof(VmArea))
    return "the vmalloc area cache is not a cache in use of its size";
  return nullptr;
}

// --- the stored Kernel object ------------------------------------------------------------

Kernel* KernelImage::stored(FilePlatform* fp, const Superblock& sb, const char** why) {
  if (sb.layout != persist_layout_hash()) {
    *why = "the heap file was made by a kmm build with another layout (struct sizes differ): refused";
    return nullptr;
  }
  if (sb.kernel_offset % alignof(Kernel) != 0 || fp->ram_bytes() < sizeof(Kernel) ||
      sb.kernel_offset > fp->ram_bytes() - sizeof(Kernel)) {
    *why = "the superblock's kernel offset is outside RAM";
    return nullptr;
  }
  // kernel_offset is page aligned (boot memory): through void* so 32-bit -Wcast-align agrees.
  auto* k = static_cast<Kernel*>(static_cast<void*>(fp->ram() + sb.kernel_offset));
  if (k->ram_ != fp->ram() || k->ram_size_ != fp->ram_bytes() || k->phys_.base() != fp->ram() ||
      k->phys_.size() != fp->ram_bytes() || reinterpret_cast<char*>(k->phys_.mem_map()) != fp->ram() ||
      k->pages_ != &k->zone_ || k->zone_.start_pfn() < k->phys_.first_free_pfn() ||
      k->zone_.end_pfn() > k->phys_.online_end_pfn() || k->phys_.online_end_pfn() > k->phys_.end_pfn()) {
    *why = "the Kernel object in the heap file does not describe this file: refused";
    return nullptr;
  }
  *why = check(*k, sb.kernel_offset);
  return *why == nullptr ? k : nullptr;
}

// The stored Kernel object beyond stored()'s first checks: the machine's shape (mem_map holds
// a descriptor for every frame; boot memory holds this object and the log ring; the zone
// lies after boot memory), the kinds backing= makes, and the pointers between its parts (re-
// set to this object's parts) and to caches (checked to be caches in use). null when usable.
const char* KernelImage::check(Kernel& k, std::uint64_t kernel_offset) {
  const std::uint64_t frames = k.ram_size_ / kPageSize;
  const PhysMem& ph = k.phys_;
  const std::uint64_t boot_bytes = std::uint64_t{ph.first_free_pfn() - ph.base_pfn()} * kPageSize;
  if (static_cast<char*>(k.ram_) != ph.base() || ph.end_pfn() - ph.base_pfn() != frames ||
      ph.first_free_pfn() < ph.base_pfn() || boot_bytes > k.ram_size_ || frames * sizeof(Page) > boot_bytes ||
      kernel_offset + sizeof(Kernel) > boot_bytes || k.zone_.start_pfn() > k.zone_.end_pfn())
    return "the Kernel object's RAM geometry is inconsistent (mem_map, boot memory, zone): refused";
  auto* ring = reinterpret_cast<char*>(k.log_ring_);
  if (k.log_size_ != Kernel::kLogRingBytes || ring < static_cast<char*>(k.ram_) ||
      static_cast<std::uint64_t>(ring - static_cast<char*>(k.ram_)) > boot_bytes - Kernel::kLogRingBytes)
    return "the Kernel object's log ring is outside boot memory: refused";
  const BootConfig& cfg = k.cfg_;
  if (!stored_bools_ok({&cfg.paper_table, &cfg.thread_caches, &cfg.mmu}) || !hardening_bools_ok(cfg.hardening))
    return "the Kernel object's configuration holds a byte that is no bool: refused";
  if (const char* why = k.modules_.check_stored()) return why;
  for (const PersistRoot& r : k.roots_)
    if (std::memchr(r.name, 0, sizeof r.name) == nullptr) return "a named root's name is not terminated: refused";
  if (cfg.page_alloc != PageAllocKind::kBuddy || cfg.paper_table || cfg.hardening.debug_caches() ||
      cfg.hardening.guard_pages)
    return "the Kernel object asks for options backing= never makes: refused";
  if (const char* why = k.slab_.reattach(&k.phys_, &k.zone_)) return why;
  if (const char* why = k.kmalloc_.reattach(&k.slab_, &k.phys_)) return why;
  if (const char* why = k.vmalloc_.reattach(&k.kmalloc_, &k.phys_)) return why;
  return nullptr;
}

// What points out of RAM is this process's; runtime knobs come from this boot, the machine's
// shape (RAM, kmalloc policy...) from the file.
void KernelImage::repoint(Kernel& k, FilePlatform* fp, const BootConfig& cfg) {
  k.platform_ = fp;
  k.backing_ = fp;
  k.cfg_.platform = nullptr;
  k.cfg_.backing = nullptr;
  k.cfg_.protector = cfg.protector;
  k.cfg_.gc_delay_ns = cfg.gc_delay_ns;
  k.cfg_.gc_slice_pages = cfg.gc_slice_pages;
  k.cfg_.cross_free = cfg.cross_free;
  k.cfg_.boot_grace_ns = cfg.boot_grace_ns;
  k.log_listener_ = nullptr;
  k.log_arg_ = nullptr;
  new (&k.grow_lock_) SpinLock();
  new (&k.log_lock_) SpinLock();
}

Kernel* KernelImage::attach(FilePlatform* fp, const BootConfig& cfg, BootError* err) {
  BootError dummy;
  if (err == nullptr) err = &dummy;
  const Superblock sb = fp->superblock();  // a copy: the write below replaces the current one
  const char* why = nullptr;
  Kernel* k = stored(fp, sb, &why);
  if (k == nullptr) {
    err->what = why;
    return nullptr;
  }
  std::uint64_t t0 = mono_ns();
  if (!fp->read_only()) {
    // Not clean from here on: the superblock says so before the first store into RAM.
    Superblock next = sb;
    next.boot_count = sb.boot_count + 1;
    next.clean = 0;
    if (!fp->write_superblock(next)) {
      err->what = "could not write the heap file's superblock";
      return nullptr;
    }
  }
  fp->reserve(static_cast<std::size_t>(fp->ram_bytes()), kPageSize);  // marks the RAM handed out
  repoint(*k, fp, cfg);
  k->attach_ = AttachReport{};
  k->attach_.boot_count = sb.boot_count + 1;
  k->attach_.was_clean = sb.clean != 0;
  rebuild(*k);
  // The grace period: modules that were Live are dormant until loaded again, or until
  // Kernel::boot_complete (by hand, or on the machine's clock at the deadline).
  k->attach_.dormant_modules = k->modules_.suspend_live();
  k->wire_parts();
  register_roots(*k);
  // The collector's rate limit counts from this boot.
  k->collector_.external_pass_done(k->now_ns_);
  k->grace_pending_ = k->attach_.dormant_modules != 0;
  k->grace_deadline_ns_ = k->grace_pending_ && cfg.boot_grace_ns != 0 ? k->now_ns_ + cfg.boot_grace_ns : 0;
  k->attach_.rebuild_ns = mono_ns() - t0;
  if (fp->readable_by_others()) {
    static constexpr char kReadable[] =
        "kmm-persist: the heap file is readable by other users: it holds the program's data and host "
        "addresses (chmod go-r it; kmm makes its heaps 0600)\n";
    k->log(kReadable, sizeof kReadable - 1);
  }
  return k;
}

void KernelImage::formatted(Kernel& k, FilePlatform* fp) {
  k.backing_ = fp;
  register_roots(k);
  k.attach_ = AttachReport{};
  k.attach_.boot_count = 1;
}

}  // namespace kmm

// kmm/vm/kernel_space.cpp — swapper_pg_dir, the direct map, the lazy vmalloc sync.
// See kernel_space.h for how it works and its invariants.
#include "vm/kernel_space.h"

namespace kmm::vm {
namespace {

constexpr std::uint64_t k4K = 4096;
constexpr std::uint64_t k4G = std::uint64_t{1} << 32;

MapAttrs kernel_data_attrs() {
  MapAttrs a;
  a.user = false;
  a.writable = true;
  a.executable = false;
  a.global = true;
  a.mem = MemType::kNormal;
  return a;
}

}  // namespace

std::uint64_t next_span(Format f, std::uint64_t va, unsigned fault_level) {
  unsigned shift = 12;
  if (f == Format::kArmv7Short) {
    shift = fault_level <= 1 ? 20 : 12;
  } else if (fault_level <= 3) {
    shift = 39 - 9 * fault_level;
  }
  const std::uint64_t next = (va | ((std::uint64_t{1} << shift) - 1)) + 1;
  return next <= va ? ~std::uint64_t{0} : next;
}

VmError KernelSpace::init(FrameSource* frames, const KernelSpaceConfig& config) {
  destroy();
  const KernelSpaceConfig& c = config;
  if (c.ram_bytes == 0 || c.ram_bytes % k4K != 0 || c.page_offset % k4K != 0 || c.phys_offset % k4K != 0 ||
      c.vmalloc_start % k4K != 0 || c.vmalloc_end % k4K != 0) {
    return VmError::kUnaligned;
  }
  if (c.vmalloc_end < c.vmalloc_start) return VmError::kOutOfRange;
  PageTableConfig ptc;
  ptc.format = c.format;
  if (c.format == Format::kArmv7Short) {
    if (c.page_offset % (16u << 20) != 0) return VmError::kUnaligned;
    if (c.page_offset >= k4G || c.ram_bytes > k4G - c.page_offset || c.phys_offset >= k4G ||
        c.ram_bytes > k4G - c.phys_offset || c.vmalloc_end > k4G ||
        (c.vmalloc_start < c.vmalloc_end && c.vmalloc_start < c.page_offset + c.ram_bytes)) {
      return VmError::kOutOfRange;
    }
    ptc.ttbcr_n = 0;
    ptc.use_supersections = false;  // Linux maps lowmem with 1 MB sections
  } else {
    if (c.page_offset % k4K != 0) return VmError::kUnaligned;
    if (c.page_offset < kAarch64PageOffset || c.ram_bytes - 1 > ~std::uint64_t{0} - c.page_offset ||
        c.phys_offset + c.ram_bytes > (std::uint64_t{1} << 48) ||
        (c.vmalloc_start < c.vmalloc_end && c.vmalloc_start < c.page_offset + c.ram_bytes)) {
      return VmError::kOutOfRange;
    }
  }
  VmError e = pt_.init(frames, ptc);
  if (e != VmError::kOk) return e;
  config_ = c;
  e = pt_.map(c.page_offset, c.phys_offset, c.ram_bytes, kernel_data_attrs());
  if (e != VmError::kOk) {
    pt_.destroy();
    return e;
  }
  generation_ = 1;
  areas_generation_ = 0;
  synced_once_ = false;
  return VmError::kOk;
}

void KernelSpace::destroy() {
  pt_.destroy();
  generation_ = 0;
  synced_once_ = false;
}

std::uint64_t KernelSpace::kernel_base() const {
  return config_.format == Format::kArmv7Short ? config_.page_offset : kAarch64PageOffset;
}

bool KernelSpace::in_direct_map(std::uint64_t va) const {
  return initialised() && va >= config_.page_offset && va - config_.page_offset < config_.ram_bytes;
}

bool KernelSpace::virt_to_phys(std::uint64_t va, phys_addr_t* pa) const {
  if (!in_direct_map(va)) return false;
  *pa = va - config_.page_offset + config_.phys_offset;
  return true;
}

bool KernelSpace::phys_to_virt(phys_addr_t pa, std::uint64_t* va) const {
  if (!initialised() || pa < config_.phys_offset || pa - config_.phys_offset >= config_.ram_bytes) {
    return false;
  }
  *va = pa - config_.phys_offset + config_.page_offset;
  return true;
}

void KernelSpace::map_one(void* arg, std::uint64_t va, phys_addr_t pa) {
  auto* self = static_cast<KernelSpace*>(arg);
  if (va < self->config_.vmalloc_start || va >= self->config_.vmalloc_end) return;
  const Walk w = self->pt_.translate(va, AccessType::kRead, Privilege::kKernel);
  if (w.ok() && w.size_shift == 12 && w.leaf_base == pa) return;
  const VmError e = self->pt_.map(va, pa, k4K, kernel_data_attrs());
  if (e != VmError::kOk) {
    self->sync_error_ = e;
    return;
  }
  ++self->generation_;
  if (self->sync_stats_ != nullptr) ++self->sync_stats_->mapped;
}

VmError KernelSpace::sync_vmalloc(const VmallocPages& areas, Tlb* tlb, SyncStats* stats) {
  if (!initialised()) return VmError::kNotInitialised;
  const std::uint64_t gen = areas.generation();
  if (synced_once_ && gen == areas_generation_) return VmError::kOk;
  // Pass 1: unmap every page no live area holds (or holds with another frame).
  std::uint64_t va = config_.vmalloc_start;
  while (va < config_.vmalloc_end) {
    const Walk w = pt_.translate(va, AccessType::kRead, Privilege::kKernel);
    if (!w.ok()) {
      va = w.fault == FaultKind::kTranslation ? next_span(config_.format, va, w.fault_level) : va + k4K;
      continue;
    }
    const std::uint64_t size = std::uint64_t{1} << w.size_shift;
    phys_addr_t want = 0;
    if (!areas.frame_at(va, &want) || want != w.leaf_base || size != k4K) {
      if (pt_.unmap(va & ~(size - 1), size) == VmError::kOk) {
        ++generation_;
        if (stats != nullptr) stats->unmapped += size / k4K;
        if (tlb != nullptr) tlb->flush_va_all_asids(va);
      }
    }
    va = (va & ~(size - 1)) + size;
  }
  // Pass 2: map every page the areas hold.
  sync_stats_ = stats;
  sync_error_ = VmError::kOk;
  areas.for_each_page(map_one, this);
  sync_stats_ = nullptr;
  if (sync_error_ != VmError::kOk) return sync_error_;
  areas_generation_ = gen;
  synced_once_ = true;
  return VmError::kOk;
}

namespace {

struct LeafCheck {
  const KernelSpace* ks;
  bool ok = true;
  std::uint64_t bad_va = 0;
};

void check_leaf(void* arg, const Leaf& leaf) {
  auto* c = static_cast<LeafCheck*>(arg);
  const std::uint64_t last = leaf.va + ((std::uint64_t{1} << leaf.size_shift) - 1);
  if ((c->ks->in_direct_map(leaf.va) && c->ks->in_direct_map(last)) ||
      (c->ks->in_vmalloc(leaf.va) && c->ks->in_vmalloc(last))) {
    return;
  }
  if (c->ok) c->bad_va = leaf.va;
  c->ok = false;
}

}  // namespace

bool KernelSpace::check_invariants(TextSink* why) const {
  auto fail = [why](const char* msg, std::uint64_t v) {
    if (why != nullptr) why->str("kernel space: ").str(msg).str(" 0x").hex(v);
    return false;
  };
  if (!initialised()) return fail("not initialised", 0);
  for (std::uint64_t off = 0; off < config_.ram_bytes; off += k4K) {
    const Walk w = pt_.translate(config_.page_offset + off, AccessType::kRead, Privilege::kKernel);
    if (!w.ok() || w.pa != config_.phys_offset + off) {
      return fail("direct map does not translate", config_.page_offset + off);
    }
  }
  LeafCheck c{this};
  pt_.visit(check_leaf, &c);
  if (!c.ok) return fail("leaf outside the direct map and vmalloc area at", c.bad_va);
  return true;
}

namespace {
struct VmallocCheck {
  const KernelSpace* ks;
  const PageTable* pt;
  const VmallocPages* areas;
  bool ok = true;
  std::uint64_t bad_va = 0;
  const char* what = nullptr;
  void fail(std::uint64_t va, const char* why) {
    if (ok) {
      bad_va = va;
      what = why;
    }
    ok = false;
  }
};
}  // namespace

bool KernelSpace::check_vmalloc(const VmallocPages& areas, TextSink* why) const {
  if (!initialised()) return true;
  VmallocCheck c{this, &pt_, &areas};
  // Every leaf of the vmalloc space: a 4K page an area holds (not one freed and left mapped),
  // on that area's frame.
  pt_.visit(
      [](void* arg, const Leaf& leaf) {
        auto* check = static_cast<VmallocCheck*>(arg);
        if (!check->ks->in_vmalloc(leaf.va)) return;  // the direct map
        phys_addr_t want = 0;
        if (!check->areas->frame_at(leaf.va, &want))
          check->fail(leaf.va, "is mapped but no area holds it");
        else if (leaf.size_shift != 12 || leaf.pa != want)
          check->fail(leaf.va, "maps another frame than its area's");
      },
      &c);
  // Every page the areas hold: mapped, to its frame.
  areas.for_each_page(
      [](void* arg, std::uint64_t va, phys_addr_t pa) {
        auto* check = static_cast<VmallocCheck*>(arg);
        const Walk w = check->pt->translate(va, AccessType::kRead, Privilege::kKernel);
        if (!w.ok() || w.pa != pa) check->fail(va, "of an area is not mapped to its frame");
      },
      &c);
  if (!c.ok && why != nullptr) why->str("kernel space: vmalloc page 0x").hex(c.bad_va).ch(' ').str(c.what);
  return c.ok;
}

}  // namespace kmm::vm

// kmm/vm/walk.cpp — PageTable: map/unmap over tables in modelled frames, the hardware walk,
// the walk printer, and translation through a TLB. Depends on: walk.h and the descriptor
// codecs. Every descriptor is read and written through the FrameSource, as memory.
#include "vm/walk.h"

#include <cstring>

#include "vm/aarch64_desc.h"
#include "vm/armv7_desc.h"

namespace kmm::vm {
namespace {

constexpr std::uint64_t k4K = 4096;
constexpr std::uint64_t k4G = std::uint64_t{1} << 32;

constexpr bool aligned(std::uint64_t v, std::uint64_t a) {
  return (v & (a - 1)) == 0;
}

}  // namespace

const char* vm_error_name(VmError e) {
  switch (e) {
    case VmError::kOk:
      return "ok";
    case VmError::kBadConfig:
      return "bad page-table configuration";
    case VmError::kNotInitialised:
      return "page table not initialised";
    case VmError::kUnaligned:
      return "address or size not page aligned";
    case VmError::kOutOfRange:
      return "address out of range";
    case VmError::kAlreadyMapped:
      return "range already mapped";
    case VmError::kSplitsBlock:
      return "range splits a section/block mapping";
    case VmError::kNoMemory:
      return "out of memory for page tables";
    case VmError::kCorruptTable:
      return "corrupt page table";
  }
  return "?";
}

const char* fault_name(FaultKind f) {
  switch (f) {
    case FaultKind::kNone:
      return "none";
    case FaultKind::kTranslation:
      return "translation fault";
    case FaultKind::kAccessFlag:
      return "access flag fault";
    case FaultKind::kDomain:
      return "domain fault";
    case FaultKind::kPermission:
      return "permission fault";
    case FaultKind::kWalkAbort:
      return "external abort on table walk";
  }
  return "?";
}

TlbEntry Walk::tlb_entry(std::uint16_t asid) const {
  TlbEntry e;
  e.size_shift = size_shift;
  e.va = va & ~((std::uint64_t{1} << size_shift) - 1);
  e.pa = leaf_base;
  e.asid = asid;
  e.global = global;
  e.perms = perms;
  e.domain = domain;
  return e;
}

// ---------------------------------------------------------------------------------------
// Memory access and table frames.

bool PageTable::read_desc(phys_addr_t pa, std::uint64_t* value) const {
  const void* host = frames_->phys_to_host(pa);
  if (host == nullptr) return false;
  if (config_.format == Format::kArmv7Short) {
    std::uint32_t v = 0;
    std::memcpy(&v, host, sizeof v);
    *value = v;
  } else {
    std::memcpy(value, host, sizeof *value);
  }
  return true;
}

bool PageTable::write_desc(phys_addr_t pa, std::uint64_t value) {
  void* host = frames_->phys_to_host(pa);
  if (host == nullptr) return false;
  if (config_.format == Format::kArmv7Short) {
    const auto v = static_cast<std::uint32_t>(value);
    std::memcpy(host, &v, sizeof v);
  } else {
    std::memcpy(host, &value, sizeof value);
  }
  return true;
}

VmError PageTable::alloc_table(unsigned order, phys_addr_t* pa) {
  void* host = nullptr;
  phys_addr_t base = 0;
  const bool ok = order == 0 ? frames_->alloc_frame(&base, &host) : frames_->alloc_frames(order, &base, &host);
  if (!ok) return VmError::kNoMemory;
  const std::uint64_t bytes = k4K << order;
  // ARMv7 table descriptors and TTBRs hold 32-bit physical addresses.
  if (config_.format == Format::kArmv7Short && base + bytes > k4G) {
    if (order == 0) {
      frames_->free_frame(base);
    } else {
      frames_->free_frames(base, order);
    }
    return VmError::kOutOfRange;
  }
  for (std::uint64_t off = 0; off < bytes; off += k4K) {
    void* frame = frames_->phys_to_host(base + off);
    if (frame != nullptr) std::memset(frame, 0, k4K);
  }
  table_frames_ += std::uint64_t{1} << order;
  *pa = base;
  return VmError::kOk;
}

void PageTable::free_table(phys_addr_t pa, unsigned order) {
  if (order == 0) {
    frames_->free_frame(pa);
  } else {
    frames_->free_frames(pa, order);
  }
  table_frames_ -= std::uint64_t{1} << order;
}

bool PageTable::table_empty(phys_addr_t table, unsigned entries) const {
  const unsigned width = config_.format == Format::kArmv7Short ? 4 : 8;
  for (unsigned k = 0; k < entries; ++k) {
    std::uint64_t v = 0;
    if (!read_desc(table + phys_addr_t{k} * width, &v)) return false;
    if (v != 0) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Set-up and tear-down.

VmError PageTable::init(FrameSource* frames, const PageTableConfig& config) {
  if (initialised()) destroy();
  if (frames == nullptr) return VmError::kBadConfig;
  const bool armv7 = config.format == Format::kArmv7Short;
  if (armv7 && config.ttbcr_n > 7) return VmError::kBadConfig;
  if (config.armv7_shared_l1_first < armv7::kL1Entries &&
      (!armv7 || config.ttbcr_n != 0 || config.armv7_shared_l1_first % 4 != 0)) {
    return VmError::kBadConfig;
  }
  const bool has_ttbr1 = !armv7 || config.ttbcr_n > 0;
  if (config.shared_ttbr1 != kNoTable && !has_ttbr1) return VmError::kBadConfig;
  if (config.shared_ttbr1 != kNoTable && !aligned(config.shared_ttbr1, armv7 ? armv7::kL1TableBytes : k4K)) {
    return VmError::kBadConfig;
  }
  frames_ = frames;
  config_ = config;
  table_frames_ = 0;
  root_[0] = root_[1] = kNoTable;
  owns_root_[0] = owns_root_[1] = false;
  // ARMv7 TTBR0 table: 16 KB >> N, so order 2, 1, then 0 (a 4 KB frame, partly used).
  root_order_[0] = armv7 ? (config.ttbcr_n >= 2 ? 0u : 2u - config.ttbcr_n) : 0u;
  root_order_[1] = armv7 ? 2u : 0u;
  VmError e = alloc_table(root_order_[0], &root_[0]);
  if (e == VmError::kOk) {
    owns_root_[0] = true;
    if (has_ttbr1 && config.shared_ttbr1 != kNoTable) {
      root_[1] = config.shared_ttbr1;
    } else if (has_ttbr1) {
      e = alloc_table(root_order_[1], &root_[1]);
      owns_root_[1] = e == VmError::kOk;
    }
  }
  if (e != VmError::kOk) destroy();
  return e;
}

void PageTable::free_aarch64_tree(phys_addr_t table, unsigned level) {
  if (level < 3) {
    for (unsigned k = 0; k < aarch64::kEntries; ++k) {
      std::uint64_t v = 0;
      if (!read_desc(table + phys_addr_t{k} * 8, &v)) continue;
      const aarch64::Desc d = aarch64::decode(level, v);
      if (d.kind == aarch64::Kind::kTable) free_aarch64_tree(d.addr, level + 1);
    }
  }
  free_table(table, 0);
}

void PageTable::destroy() {
  if (!initialised()) return;
  if (config_.format == Format::kArmv7Short) {
    // Second-level tables, four to a frame: free each frame once, at its first table.
    for (unsigned t = 0; t < 2; ++t) {
      if (!owns_root_[t]) continue;
      const unsigned n = config_.ttbcr_n;
      const unsigned first = t == 0 ? 0 : (armv7::kL1Entries >> n);
      unsigned last = t == 0 ? (armv7::kL1Entries >> n) : armv7::kL1Entries;
      if (t == 0 && config_.armv7_shared_l1_first < last) last = config_.armv7_shared_l1_first;
      for (unsigned idx = first; idx < last; idx += 4) {
        for (unsigned k = 0; k < 4; ++k) {
          std::uint64_t v = 0;
          if (!read_desc(root_[t] + phys_addr_t{idx + k} * 4, &v)) continue;
          const armv7::Desc d = armv7::decode_l1(static_cast<std::uint32_t>(v));
          if (d.kind == armv7::Kind::kTable) {
            free_table(d.addr & ~phys_addr_t{0xFFF}, 0);
            break;
          }
        }
      }
    }
  }
  for (unsigned t = 0; t < 2; ++t) {
    if (!owns_root_[t]) continue;
    if (config_.format == Format::kAarch64Gran4k) {
      free_aarch64_tree(root_[t], 0);
    } else {
      free_table(root_[t], root_order_[t]);
    }
  }
  root_[0] = root_[1] = kNoTable;
  owns_root_[0] = owns_root_[1] = false;
  frames_ = nullptr;
}

bool PageTable::range_ok(std::uint64_t va, std::uint64_t size) const {
  if (size == 0) return false;
  if (config_.format == Format::kArmv7Short) return va < k4G && size <= k4G - va;
  const int t = aarch64::ttbr_for(va);
  if (t < 0) return false;
  const std::uint64_t region_end_minus_1 = t == 0 ? (std::uint64_t{1} << 48) - 1 : ~std::uint64_t{0};
  return size - 1 <= region_end_minus_1 - va;
}

bool PageTable::touches_shared(std::uint64_t va, std::uint64_t size) const {
  if (config_.format != Format::kArmv7Short || config_.armv7_shared_l1_first >= armv7::kL1Entries) {
    return false;
  }
  return ((va + size - 1) >> 20) >= config_.armv7_shared_l1_first;
}

VmError PageTable::copy_l1_entries(const PageTable& from) {
  if (!initialised() || !from.initialised()) return VmError::kNotInitialised;
  if (config_.format != Format::kArmv7Short || from.format() != Format::kArmv7Short ||
      config_.armv7_shared_l1_first >= armv7::kL1Entries || from.config().ttbcr_n != 0) {
    return VmError::kBadConfig;
  }
  for (unsigned idx = config_.armv7_shared_l1_first; idx < armv7::kL1Entries; ++idx) {
    std::uint64_t v = 0;
    if (!from.read_desc(from.root_[0] + phys_addr_t{idx} * 4, &v)) return VmError::kCorruptTable;
    if (!write_desc(root_[0] + phys_addr_t{idx} * 4, v)) return VmError::kCorruptTable;
  }
  return VmError::kOk;
}

// ---------------------------------------------------------------------------------------
// map / unmap, shared front ends.

VmError PageTable::map(std::uint64_t va, phys_addr_t pa, std::uint64_t size, const MapAttrs& a) {
  if (!initialised()) return VmError::kNotInitialised;
  if (!aligned(va, k4K) || !aligned(pa, k4K) || !aligned(size, k4K)) return VmError::kUnaligned;
  if (!range_ok(va, size) || touches_shared(va, size)) return VmError::kOutOfRange;
  if (pa + size < pa) return VmError::kOutOfRange;
  if (a.domain > 15) return VmError::kBadConfig;
  std::uint64_t done = 0;
  const VmError e =
      config_.format == Format::kArmv7Short ? map_armv7(va, pa, size, a, &done) : map_aarch64(va, pa, size, a, &done);
  if (e != VmError::kOk) {
    // Roll back what was written, and any table made empty-handed for the failing piece.
    if (done != 0) (void)unmap(va, done);
    if (config_.format == Format::kArmv7Short) {
      armv7_collapse_l2(static_cast<std::uint32_t>(va + done));
    } else {
      aarch64_collapse(va + done, 3);
    }
  }
  return e;
}

VmError PageTable::unmap(std::uint64_t va, std::uint64_t size) {
  if (!initialised()) return VmError::kNotInitialised;
  if (!aligned(va, k4K) || !aligned(size, k4K)) return VmError::kUnaligned;
  if (!range_ok(va, size) || touches_shared(va, size)) return VmError::kOutOfRange;
  const bool armv7 = config_.format == Format::kArmv7Short;
  VmError e = armv7 ? unmap_armv7(va, size, true) : unmap_aarch64(va, size, true);
  if (e != VmError::kOk) return e;
  return armv7 ? unmap_armv7(va, size, false) : unmap_aarch64(va, size, false);
}

// ---------------------------------------------------------------------------------------
// ARMv7 short-descriptor.

phys_addr_t PageTable::armv7_l1_addr(std::uint32_t va) const {
  const unsigned n = config_.ttbcr_n;
  const unsigned t = armv7::ttbr_for(va, n);
  return armv7::l1_desc_addr(static_cast<std::uint32_t>(root_[t]), n, t, va);
}

VmError PageTable::armv7_l2_table(std::uint32_t va, const MapAttrs& a, phys_addr_t* table) {
  // The four first-level entries 4k..4k+3 share one frame of four 1 KB tables.
  const std::uint32_t group_va = va & ~((4u << 20) - 1);
  phys_addr_t frame = kNoTable;
  for (std::uint32_t k = 0; k < 4 && frame == kNoTable; ++k) {
    std::uint64_t v = 0;
    if (!read_desc(armv7_l1_addr(group_va + (k << 20)), &v)) return VmError::kCorruptTable;
    const armv7::Desc d = armv7::decode_l1(static_cast<std::uint32_t>(v));
    if (d.kind == armv7::Kind::kTable) frame = d.addr & ~phys_addr_t{0xFFF};
  }
  if (frame == kNoTable) {
    const VmError e = alloc_table(0, &frame);
    if (e != VmError::kOk) return e;
  }
  *table = frame + ((va >> 20) & 3u) * armv7::kL2TableBytes;
  armv7::Desc d;
  d.kind = armv7::Kind::kTable;
  d.addr = *table;
  d.domain = a.domain;
  // Small pages have no PXN bit: a user table carries it for all of them (Linux's
  // PMD_PXNTABLE), so the kernel never executes user memory, as sections already say.
  d.pxn = a.user;
  std::uint32_t v = 0;
  if (!armv7::encode_l1(d, &v) || !write_desc(armv7_l1_addr(va), v)) return VmError::kCorruptTable;
  return VmError::kOk;
}

void PageTable::armv7_collapse_l2(std::uint32_t va) {
  const phys_addr_t l1 = armv7_l1_addr(va);
  std::uint64_t v = 0;
  if (!read_desc(l1, &v)) return;
  const armv7::Desc d = armv7::decode_l1(static_cast<std::uint32_t>(v));
  if (d.kind != armv7::Kind::kTable || !table_empty(d.addr, armv7::kL2Entries)) return;
  (void)write_desc(l1, 0);
  const phys_addr_t frame = d.addr & ~phys_addr_t{0xFFF};
  const std::uint32_t group_va = va & ~((4u << 20) - 1);
  for (std::uint32_t k = 0; k < 4; ++k) {
    std::uint64_t s = 0;
    if (!read_desc(armv7_l1_addr(group_va + (k << 20)), &s)) return;
    const armv7::Desc sd = armv7::decode_l1(static_cast<std::uint32_t>(s));
    if (sd.kind == armv7::Kind::kTable && (sd.addr & ~phys_addr_t{0xFFF}) == frame) return;
  }
  free_table(frame, 0);
}

VmError PageTable::map_armv7(std::uint64_t va, phys_addr_t pa, std::uint64_t size, const MapAttrs& a,
                             std::uint64_t* done) {
  using armv7::Kind;
  while (*done < size) {
    const auto cur = static_cast<std::uint32_t>(va + *done);
    const phys_addr_t cur_pa = pa + *done;
    const std::uint64_t left = size - *done;
    const phys_addr_t l1 = armv7_l1_addr(cur);
    std::uint64_t v1 = 0;
    if (!read_desc(l1, &v1)) return VmError::kCorruptTable;
    const armv7::Desc d1 = armv7::decode_l1(static_cast<std::uint32_t>(v1));

    // 16 MB supersection: 16 identical first-level entries, all free now.
    if (d1.kind == Kind::kFault && config_.use_supersections && aligned(cur, armv7::kSuperSectionSize) &&
        aligned(cur_pa, armv7::kSuperSectionSize) && left >= armv7::kSuperSectionSize && a.domain == 0) {
      bool all_free = true;
      for (std::uint32_t k = 1; k < 16 && all_free; ++k) {
        std::uint64_t v = 0;
        if (!read_desc(armv7_l1_addr(cur + (k << 20)), &v)) return VmError::kCorruptTable;
        all_free = armv7::decode_l1(static_cast<std::uint32_t>(v)).kind == Kind::kFault;
      }
      std::uint32_t enc = 0;
      if (all_free) {
        if (!armv7::encode_l1(armv7::leaf_desc(Kind::kSupersection, cur_pa, a), &enc)) {
          return VmError::kOutOfRange;
        }
        for (std::uint32_t k = 0; k < 16; ++k) {
          if (!write_desc(armv7_l1_addr(cur + (k << 20)), enc)) return VmError::kCorruptTable;
        }
        *done += armv7::kSuperSectionSize;
        continue;
      }
    }
    // 1 MB section.
    if (d1.kind == Kind::kFault && config_.use_sections && aligned(cur, armv7::kSectionSize) &&
        aligned(cur_pa, armv7::kSectionSize) && left >= armv7::kSectionSize) {
      std::uint32_t enc = 0;
      if (!armv7::encode_l1(armv7::leaf_desc(Kind::kSection, cur_pa, a), &enc)) {
        return VmError::kOutOfRange;
      }
      if (!write_desc(l1, enc)) return VmError::kCorruptTable;
      *done += armv7::kSectionSize;
      continue;
    }
    // Otherwise pages, in a second-level table.
    phys_addr_t l2_table = 0;
    if (d1.kind == Kind::kTable) {
      l2_table = d1.addr;
    } else if (d1.kind == Kind::kFault) {
      const VmError e = armv7_l2_table(cur, a, &l2_table);
      if (e != VmError::kOk) return e;
    } else if (d1.kind == Kind::kReserved) {
      return VmError::kCorruptTable;
    } else {
      return VmError::kAlreadyMapped;
    }
    const phys_addr_t l2 = l2_table + phys_addr_t{armv7::l2_index(cur)} * 4;
    std::uint64_t v2 = 0;
    if (!read_desc(l2, &v2)) return VmError::kCorruptTable;
    if (armv7::decode_l2(static_cast<std::uint32_t>(v2)).kind != Kind::kFault) {
      return VmError::kAlreadyMapped;
    }
    // 64 KB large page: 16 identical second-level entries, all free now.
    if (config_.use_large_pages && aligned(cur, armv7::kLargePageSize) && aligned(cur_pa, armv7::kLargePageSize) &&
        left >= armv7::kLargePageSize) {
      bool all_free = true;
      for (unsigned k = 1; k < 16 && all_free; ++k) {
        std::uint64_t v = 0;
        if (!read_desc(l2 + k * 4, &v)) return VmError::kCorruptTable;
        all_free = v == 0 || armv7::decode_l2(static_cast<std::uint32_t>(v)).kind == Kind::kFault;
      }
      if (all_free) {
        std::uint32_t enc = 0;
        if (!armv7::encode_l2(armv7::leaf_desc(Kind::kLargePage, cur_pa, a), &enc)) {
          return VmError::kOutOfRange;
        }
        for (unsigned k = 0; k < 16; ++k) {
          if (!write_desc(l2 + k * 4, enc)) return VmError::kCorruptTable;
        }
        *done += armv7::kLargePageSize;
        continue;
      }
    }
    std::uint32_t enc = 0;
    if (!armv7::encode_l2(armv7::leaf_desc(Kind::kSmallPage, cur_pa, a), &enc)) {
      return VmError::kOutOfRange;
    }
    if (!write_desc(l2, enc)) return VmError::kCorruptTable;
    *done += armv7::kSmallPageSize;
  }
  return VmError::kOk;
}

VmError PageTable::unmap_armv7(std::uint64_t va, std::uint64_t size, bool check_only) {
  using armv7::Kind;
  std::uint64_t off = 0;
  // A block [base, base+bytes) may be removed only if it lies wholly inside the range.
  auto inside = [&](std::uint64_t base, std::uint64_t bytes) { return base >= va && base - va + bytes <= size; };
  while (off < size) {
    const auto cur = static_cast<std::uint32_t>(va + off);
    const phys_addr_t l1 = armv7_l1_addr(cur);
    std::uint64_t v1 = 0;
    if (!read_desc(l1, &v1)) return VmError::kCorruptTable;
    const armv7::Desc d1 = armv7::decode_l1(static_cast<std::uint32_t>(v1));
    std::uint64_t next = 0;  // VA after this step
    switch (d1.kind) {
      case Kind::kFault:
        next = (std::uint64_t{cur} | (armv7::kSectionSize - 1)) + 1;
        break;
      case Kind::kReserved:
        return VmError::kCorruptTable;
      case Kind::kSection:
      case Kind::kSupersection: {
        const std::uint64_t bytes = d1.kind == Kind::kSection ? armv7::kSectionSize : armv7::kSuperSectionSize;
        const std::uint64_t base = cur & ~(bytes - 1);
        if (!inside(base, bytes)) return VmError::kSplitsBlock;
        if (!check_only) {
          for (std::uint64_t k = 0; k < bytes; k += armv7::kSectionSize) {
            (void)write_desc(armv7_l1_addr(static_cast<std::uint32_t>(base + k)), 0);
          }
        }
        next = base + bytes;
        break;
      }
      default: {  // a second-level table
        const phys_addr_t l2 = d1.addr + phys_addr_t{armv7::l2_index(cur)} * 4;
        std::uint64_t v2 = 0;
        if (!read_desc(l2, &v2)) return VmError::kCorruptTable;
        const armv7::Desc d2 = armv7::decode_l2(static_cast<std::uint32_t>(v2));
        if (d2.kind == Kind::kFault) {
          next = std::uint64_t{cur} + armv7::kSmallPageSize;
        } else if (d2.kind == Kind::kSmallPage) {
          if (!check_only) (void)write_desc(l2, 0);
          next = std::uint64_t{cur} + armv7::kSmallPageSize;
        } else {
          const std::uint64_t base = cur & ~(armv7::kLargePageSize - 1);
          if (!inside(base, armv7::kLargePageSize)) return VmError::kSplitsBlock;
          if (!check_only) {
            const phys_addr_t first = d1.addr + phys_addr_t{armv7::l2_index(static_cast<std::uint32_t>(base))} * 4;
            for (unsigned k = 0; k < 16; ++k) (void)write_desc(first + k * 4, 0);
          }
          next = base + armv7::kLargePageSize;
        }
        // Leaving this second-level table (or the range): give it back if now empty.
        if (!check_only && (aligned(next, armv7::kSectionSize) || next - va >= size)) {
          armv7_collapse_l2(cur);
        }
        break;
      }
    }
    off = next - va;
  }
  return VmError::kOk;
}

namespace {

// One leaf of a walk, as the visitors get it (every format fills the same fields).
Leaf make_leaf(std::uint64_t va, phys_addr_t pa, unsigned size_shift, unsigned level, std::uint8_t kind,
               std::uint64_t desc, Perms perms, bool global) {
  Leaf leaf;
  leaf.va = va;
  leaf.pa = pa;
  leaf.size_shift = static_cast<std::uint8_t>(size_shift);
  leaf.level = static_cast<std::uint8_t>(level);
  leaf.kind = kind;
  leaf.desc = desc;
  leaf.perms = perms;
  leaf.global = global;
  return leaf;
}

// DACR field for the domain: 00 no access, 01 client, 10 reserved, 11 manager.
FaultKind armv7_domain_check(std::uint32_t dacr, unsigned domain, const Perms& perms, AccessType access,
                             Privilege priv) {
  switch ((dacr >> (2 * domain)) & 3u) {
    case 1:
      return perms.allows(access, priv) ? FaultKind::kNone : FaultKind::kPermission;
    case 3:
      return FaultKind::kNone;
    default:
      return FaultKind::kDomain;
  }
}

}  // namespace

void PageTable::translate_armv7(Walk* w) const {
  using armv7::Kind;
  if (w->va >= k4G) {
    w->fault = FaultKind::kTranslation;
    w->fault_level = 1;
    w->why = "VA above 32 bits";
    return;
  }
  const auto va = static_cast<std::uint32_t>(w->va);
  const unsigned n = config_.ttbcr_n;
  const unsigned t = armv7::ttbr_for(va, n);
  w->ttbr = static_cast<std::int8_t>(t);
  w->root = root_[t];
  const phys_addr_t l1 = armv7_l1_addr(va);
  WalkStep& s1 = w->steps[w->nsteps++];
  s1.level = 1;
  s1.table = l1 & ~phys_addr_t{armv7::l1_table_bytes(n, t) - 1};
  s1.index = static_cast<std::uint32_t>((l1 - s1.table) / 4);
  s1.desc_addr = l1;
  if (!read_desc(l1, &s1.desc)) {
    w->fault = FaultKind::kWalkAbort;
    w->fault_level = 1;
    w->why = "first-level descriptor address not in RAM";
    return;
  }
  armv7::Desc leaf = armv7::decode_l1(static_cast<std::uint32_t>(s1.desc));
  s1.kind = static_cast<std::uint8_t>(leaf.kind);
  std::uint64_t leaf_desc = s1.desc;
  unsigned level = 1;
  w->domain = leaf.domain;
  if (leaf.kind == Kind::kFault || leaf.kind == Kind::kReserved) {
    w->fault = FaultKind::kTranslation;
    w->fault_level = 1;
    w->fault_desc = s1.desc;
    w->why = leaf.kind == Kind::kFault ? "first-level descriptor is a fault entry" : "reserved first-level descriptor";
    return;
  }
  if (leaf.kind == Kind::kTable) {
    level = 2;
    const phys_addr_t l2 = armv7::l2_desc_addr(static_cast<std::uint32_t>(s1.desc), va);
    WalkStep& s2 = w->steps[w->nsteps++];
    s2.level = 2;
    s2.table = leaf.addr;
    s2.index = armv7::l2_index(va);
    s2.desc_addr = l2;
    if (!read_desc(l2, &s2.desc)) {
      w->fault = FaultKind::kWalkAbort;
      w->fault_level = 2;
      w->fault_desc = s1.desc;
      w->why = "second-level table not in RAM";
      return;
    }
    const bool table_pxn = leaf.pxn;  // applies to every page of the table
    leaf = armv7::decode_l2(static_cast<std::uint32_t>(s2.desc));
    leaf.pxn = table_pxn;
    s2.kind = static_cast<std::uint8_t>(leaf.kind);
    leaf_desc = s2.desc;
    if (leaf.kind == Kind::kFault) {
      w->fault = FaultKind::kTranslation;
      w->fault_level = 2;
      w->fault_desc = s2.desc;
      w->why = "second-level descriptor is a fault entry";
      return;
    }
  }
  switch (leaf.kind) {
    case Kind::kSupersection:
      w->size_shift = 24;
      break;
    case Kind::kSection:
      w->size_shift = 20;
      break;
    case Kind::kLargePage:
      w->size_shift = 16;
      break;
    default:
      w->size_shift = 12;
      break;
  }
  w->leaf_base = leaf.addr;
  w->perms = armv7::leaf_perms(leaf);
  w->global = !leaf.ng;
  const FaultKind f = armv7_domain_check(config_.dacr, w->domain, w->perms, w->access, w->priv);
  if (f != FaultKind::kNone) {
    w->fault = f;
    w->fault_level = static_cast<std::uint8_t>(level);
    w->fault_desc = leaf_desc;
    w->why = f == FaultKind::kDomain ? "DACR gives no access to the domain" : "AP/XN/PXN forbid this access";
    return;
  }
  w->pa = leaf.addr | (w->va & ((std::uint64_t{1} << w->size_shift) - 1));
}

// ---------------------------------------------------------------------------------------
// AArch64, 4 KB granule.

VmError PageTable::map_aarch64(std::uint64_t va, phys_addr_t pa, std::uint64_t size, const MapAttrs& a,
                               std::uint64_t* done) {
  using aarch64::Kind;
  while (*done < size) {
    const std::uint64_t cur = va + *done;
    const phys_addr_t cur_pa = pa + *done;
    const std::uint64_t left = size - *done;
    phys_addr_t table = root_[aarch64::ttbr_for(cur)];
    for (unsigned level = 0; level < aarch64::kLevels; ++level) {
      const phys_addr_t slot = table + phys_addr_t{aarch64::index(cur, level)} * 8;
      std::uint64_t v = 0;
      if (!read_desc(slot, &v)) return VmError::kCorruptTable;
      const aarch64::Desc d = aarch64::decode(level, v);
      if (d.kind == Kind::kTable) {
        table = d.addr;
        continue;
      }
      if (d.kind == Kind::kBlock || d.kind == Kind::kPage) return VmError::kAlreadyMapped;
      if (d.kind == Kind::kReserved) return VmError::kCorruptTable;
      const std::uint64_t bytes = aarch64::level_size(level);
      const bool allowed =
          level == 3 || (level == 2 && config_.use_sections) || (level == 1 && config_.use_gigabyte_blocks);
      if (allowed && aligned(cur, bytes) && aligned(cur_pa, bytes) && left >= bytes) {
        std::uint64_t enc = 0;
        if (!aarch64::encode(level, aarch64::leaf_desc(level, cur_pa, a), &enc)) {
          return VmError::kOutOfRange;
        }
        if (!write_desc(slot, enc)) return VmError::kCorruptTable;
        *done += bytes;
        break;
      }
      phys_addr_t next = 0;
      const VmError e = alloc_table(0, &next);
      if (e != VmError::kOk) return e;
      std::uint64_t enc = 0;
      if (!aarch64::encode(level, aarch64::table_desc(next), &enc) || !write_desc(slot, enc)) {
        free_table(next, 0);
        return VmError::kOutOfRange;
      }
      table = next;
    }
  }
  return VmError::kOk;
}

void PageTable::aarch64_collapse(std::uint64_t va, unsigned leaf_level) {
  if (aarch64::ttbr_for(va) < 0) return;
  // Find the chain of tables down to the deepest one that exists.
  phys_addr_t slot_of[aarch64::kLevels] = {};   // descriptor pointing at the table of level k
  phys_addr_t table_of[aarch64::kLevels] = {};  // table of level k
  table_of[0] = root_[aarch64::ttbr_for(va)];
  unsigned deepest = 0;
  for (unsigned level = 0; level < leaf_level && level + 1 < aarch64::kLevels; ++level) {
    const phys_addr_t slot = table_of[level] + phys_addr_t{aarch64::index(va, level)} * 8;
    std::uint64_t v = 0;
    if (!read_desc(slot, &v)) return;
    const aarch64::Desc d = aarch64::decode(level, v);
    if (d.kind != aarch64::Kind::kTable) break;
    slot_of[level + 1] = slot;
    table_of[level + 1] = d.addr;
    deepest = level + 1;
  }
  // Give back empty tables bottom-up; a root is never given back.
  for (unsigned level = deepest; level > 0; --level) {
    if (!table_empty(table_of[level], aarch64::kEntries)) return;
    (void)write_desc(slot_of[level], 0);
    free_table(table_of[level], 0);
  }
}

VmError PageTable::unmap_aarch64(std::uint64_t va, std::uint64_t size, bool check_only) {
  using aarch64::Kind;
  std::uint64_t off = 0;
  while (off < size) {
    const std::uint64_t cur = va + off;
    phys_addr_t table = root_[aarch64::ttbr_for(cur)];
    std::uint64_t step = 0;  // bytes to advance from cur's block base
    std::uint64_t base = cur;
    for (unsigned level = 0; level < aarch64::kLevels; ++level) {
      const phys_addr_t slot = table + phys_addr_t{aarch64::index(cur, level)} * 8;
      std::uint64_t v = 0;
      if (!read_desc(slot, &v)) return VmError::kCorruptTable;
      const aarch64::Desc d = aarch64::decode(level, v);
      const std::uint64_t bytes = aarch64::level_size(level);
      if (d.kind == Kind::kTable) {
        table = d.addr;
        continue;
      }
      if (d.kind == Kind::kReserved) return VmError::kCorruptTable;
      base = cur & ~(bytes - 1);
      step = bytes;
      if (d.kind == Kind::kInvalid) break;  // a hole: skip the rest of this entry's span
      if (base < va || base - va + bytes > size) return VmError::kSplitsBlock;
      if (!check_only) (void)write_desc(slot, 0);
      break;
    }
    const std::uint64_t next_off = base - va + step;  // base may precede va for a hole
    if (!check_only) {
      const std::uint64_t next = va + next_off;
      if (aligned(next, aarch64::level_size(2)) || next_off >= size) aarch64_collapse(cur, 3);
    }
    off = next_off;
  }
  return VmError::kOk;
}

void PageTable::translate_aarch64(Walk* w) const {
  using aarch64::Kind;
  const int t = aarch64::ttbr_for(w->va);
  if (t < 0) {
    w->fault = FaultKind::kTranslation;
    w->fault_level = 0;
    w->why = "VA[63:48] neither all zeros (TTBR0) nor all ones (TTBR1)";
    return;
  }
  w->ttbr = static_cast<std::int8_t>(t);
  w->root = root_[t];
  phys_addr_t table = root_[t];
  aarch64::TableLimits limits;
  for (unsigned level = 0; level < aarch64::kLevels; ++level) {
    WalkStep& s = w->steps[w->nsteps++];
    s.level = static_cast<std::uint8_t>(level);
    s.table = table;
    s.index = aarch64::index(w->va, level);
    s.desc_addr = table + phys_addr_t{s.index} * 8;
    if (!read_desc(s.desc_addr, &s.desc)) {
      w->fault = FaultKind::kWalkAbort;
      w->fault_level = static_cast<std::uint8_t>(level);
      w->why = "table not in RAM";
      return;
    }
    const aarch64::Desc d = aarch64::decode(level, s.desc);
    s.kind = static_cast<std::uint8_t>(d.kind);
    if (d.kind == Kind::kTable) {
      limits.add(d);
      table = d.addr;
      continue;
    }
    if (d.kind == Kind::kInvalid || d.kind == Kind::kReserved) {
      w->fault = FaultKind::kTranslation;
      w->fault_level = static_cast<std::uint8_t>(level);
      w->fault_desc = s.desc;
      w->why = d.kind == Kind::kInvalid ? "invalid descriptor" : d.why;
      return;
    }
    w->size_shift = static_cast<std::uint8_t>(aarch64::level_shift(level));
    w->leaf_base = d.addr;
    w->perms = aarch64::leaf_perms(d, limits);
    w->global = !d.ng;
    if (!d.af) {
      w->fault = FaultKind::kAccessFlag;
      w->fault_level = static_cast<std::uint8_t>(level);
      w->fault_desc = s.desc;
      w->why = "AF == 0 (first access not yet recorded)";
      return;
    }
    if (!w->perms.allows(w->access, w->priv)) {
      w->fault = FaultKind::kPermission;
      w->fault_level = static_cast<std::uint8_t>(level);
      w->fault_desc = s.desc;
      w->why = "AP/PXN/UXN (or the tables' limits) forbid this access";
      return;
    }
    w->pa = d.addr | (w->va & ((std::uint64_t{1} << w->size_shift) - 1));
    return;
  }
}

// ---------------------------------------------------------------------------------------
// translate, visit, print.

Walk PageTable::translate(std::uint64_t va, AccessType access, Privilege priv) const {
  Walk w;
  w.format = config_.format;
  w.va = va;
  w.access = access;
  w.priv = priv;
  w.ttbcr_n = config_.ttbcr_n;
  if (!initialised()) {
    w.fault = FaultKind::kTranslation;
    w.why = "no page tables";
    return w;
  }
  if (config_.format == Format::kArmv7Short) {
    translate_armv7(&w);
  } else {
    translate_aarch64(&w);
  }
  return w;
}

void PageTable::visit_aarch64(phys_addr_t table, unsigned level, std::uint64_t va_base, LeafVisitor fn,
                              void* arg) const {
  aarch64::TableLimits none;
  for (unsigned k = 0; k < aarch64::kEntries; ++k) {
    std::uint64_t v = 0;
    if (!read_desc(table + phys_addr_t{k} * 8, &v)) return;
    const aarch64::Desc d = aarch64::decode(level, v);
    const std::uint64_t va = va_base + (std::uint64_t{k} << aarch64::level_shift(level));
    if (d.kind == aarch64::Kind::kTable) {
      visit_aarch64(d.addr, level + 1, va, fn, arg);
    } else if (d.kind == aarch64::Kind::kBlock || d.kind == aarch64::Kind::kPage) {
      fn(arg, make_leaf(va, d.addr, aarch64::level_shift(level), level, static_cast<std::uint8_t>(d.kind), v,
                        aarch64::leaf_perms(d, none), !d.ng));
    }
  }
}

void PageTable::visit(LeafVisitor fn, void* arg) const {
  if (!initialised() || fn == nullptr) return;
  if (config_.format == Format::kAarch64Gran4k) {
    visit_aarch64(root_[0], 0, 0, fn, arg);
    visit_aarch64(root_[1], 0, 0xFFFF000000000000ull, fn, arg);
    return;
  }
  using armv7::Kind;
  std::uint64_t va = 0;
  while (va < k4G) {
    const auto cur = static_cast<std::uint32_t>(va);
    std::uint64_t v1 = 0;
    if (!read_desc(armv7_l1_addr(cur), &v1)) return;
    const armv7::Desc d1 = armv7::decode_l1(static_cast<std::uint32_t>(v1));
    if (d1.kind == Kind::kSection || d1.kind == Kind::kSupersection) {
      const Leaf leaf =
          make_leaf(d1.kind == Kind::kSection ? va : va & ~(armv7::kSuperSectionSize - 1), d1.addr,
                    d1.kind == Kind::kSection ? 20 : 24, 1, static_cast<std::uint8_t>(d1.kind), v1,
                    armv7::leaf_perms(d1), !d1.ng);
      fn(arg, leaf);
      va = leaf.va + (std::uint64_t{1} << leaf.size_shift);
      continue;
    }
    if (d1.kind == Kind::kTable) {
      for (unsigned k = 0; k < armv7::kL2Entries;) {
        std::uint64_t v2 = 0;
        if (!read_desc(d1.addr + phys_addr_t{k} * 4, &v2)) return;
        armv7::Desc d2 = armv7::decode_l2(static_cast<std::uint32_t>(v2));
        d2.pxn = d1.pxn;  // the table's PXN applies to its pages (translate_armv7)
        if (d2.kind == Kind::kFault) {
          ++k;
          continue;
        }
        fn(arg, make_leaf(va + (std::uint64_t{k} << 12), d2.addr, d2.kind == Kind::kLargePage ? 16 : 12, 2,
                          static_cast<std::uint8_t>(d2.kind), v2, armv7::leaf_perms(d2), !d2.ng));
        k += d2.kind == Kind::kLargePage ? 16 - (k & 15) : 1;
      }
    }
    va += armv7::kSectionSize;
  }
}

namespace {

void describe_step(Format f, const WalkStep& s, TextSink& out) {
  if (f == Format::kArmv7Short) {
    if (s.level == 1) {
      armv7::describe_l1(static_cast<std::uint32_t>(s.desc), out);
    } else {
      armv7::describe_l2(static_cast<std::uint32_t>(s.desc), out);
    }
  } else {
    aarch64::describe(s.level, s.desc, out);
  }
}

void priv_access(const Walk& w, TextSink& out) {
  out.str(w.priv == Privilege::kUser ? "user " : "kernel ").str(access_name(w.access));
}

}  // namespace

void print_walk(const Walk& w, TextSink& out) {
  const bool armv7 = w.format == Format::kArmv7Short;
  const unsigned va_digits = armv7 ? 8 : 16;
  const unsigned pa_digits = armv7 ? 8 : 12;
  const unsigned desc_digits = armv7 ? 8 : 16;
  out.str("translate 0x").hex(w.va, va_digits).str(" (");
  priv_access(w, out);
  out.str(") on ").str(armv7 ? "ARMv7 short-descriptor" : "AArch64 4K granule");
  if (w.tlb_hit) {
    out.nl().str("  TLB hit: page 0x").hex(w.va & ~((std::uint64_t{1} << w.size_shift) - 1), va_digits);
    out.str(" -> 0x").hex(w.leaf_base, pa_digits).str(w.global ? " (global)" : " (ASID)");
  } else if (w.ttbr >= 0) {
    out.str(", TTBR").u(static_cast<std::uint64_t>(w.ttbr)).str(" = 0x").hex(w.root, pa_digits);
    if (armv7) out.str(" (TTBCR.N=").u(w.ttbcr_n).ch(')');
  }
  out.nl();
  for (unsigned k = 0; k < w.nsteps; ++k) {
    const WalkStep& s = w.steps[k];
    out.str("  L").u(s.level).str(": table 0x").hex(s.table, pa_digits);
    out.str(" index 0x").hex(s.index, 3);
    out.str("  desc @0x").hex(s.desc_addr, pa_digits).str(" = 0x").hex(s.desc, desc_digits);
    out.str("  ");
    describe_step(w.format, s, out);
    out.nl();
  }
  if (w.ok()) {
    out.str("  => PA 0x").hex(w.pa, pa_digits).str("  PFN 0x").hex(w.pa >> 12);
    out.str(" offset 0x").hex(w.pa & 0xFFF, 3);
    out.str("  (");
    mapping_size_text(out, w.size_shift);
    out.str(" mapping at 0x").hex(w.leaf_base, pa_digits).str(")").nl();
    return;
  }
  out.str("  => ").str(fault_name(w.fault)).str(" at level ").u(w.fault_level);
  if (w.fault_desc != 0 || w.nsteps != 0) out.str(", descriptor 0x").hex(w.fault_desc, desc_digits);
  if (w.why != nullptr) out.str(": ").str(w.why);
  out.nl();
}

namespace {
// A TLB hit still passes the permission check (and, on ARMv7, the domain's).
bool tlb_entry_allows(const PageTable& pt, const TlbEntry& e, AccessType access, Privilege priv) {
  if (pt.format() == Format::kArmv7Short)
    return armv7_domain_check(pt.config().dacr, e.domain, e.perms, access, priv) == FaultKind::kNone;
  return e.perms.allows(access, priv);
}
}  // namespace

Walk translate_cached(const PageTable& pt, Tlb& tlb, std::uint64_t va, AccessType access, Privilege priv,
                      std::uint16_t asid) {
  // One named result for both paths (NRVO): the hit path fills it in place.
  Walk w;
  const TlbEntry* e = tlb.lookup(va, asid);
  if (e != nullptr) {
    if (tlb_entry_allows(pt, *e, access, priv)) {
      w.format = pt.format();
      w.va = va;
      w.access = access;
      w.priv = priv;
      w.ttbcr_n = pt.config().ttbcr_n;
      w.tlb_hit = true;
      w.size_shift = e->size_shift;
      w.leaf_base = e->pa;
      w.perms = e->perms;
      w.global = e->global;
      w.domain = e->domain;
      w.pa = e->translate(va);
      return w;
    }
  }
  tlb.count_walk();
  w = pt.translate(va, access, priv);
  if (w.ok()) (void)tlb.insert(w.tlb_entry(asid));
  return w;
}

FaultKind translate_pa(const PageTable& pt, Tlb& tlb, std::uint64_t va, AccessType access, Privilege priv,
                       std::uint16_t asid, phys_addr_t* pa) {
  const TlbEntry* e = tlb.lookup(va, asid);
  if (e != nullptr) {
    if (tlb_entry_allows(pt, *e, access, priv)) {
      *pa = e->translate(va);
      return FaultKind::kNone;
    }
  }
  tlb.count_walk();
  const Walk w = pt.translate(va, access, priv);
  if (!w.ok()) return w.fault;
  (void)tlb.insert(w.tlb_entry(asid));
  *pa = w.pa;
  return FaultKind::kNone;
}

}  // namespace kmm::vm

// kmm/vm/address_space.cpp — VMAs, demand paging, protection faults, exit.
// See address_space.h for how it works and its invariants.
#include "vm/address_space.h"

#include <cstring>

namespace kmm::vm {
namespace {

constexpr std::uint64_t k4K = 4096;

std::uint64_t page_up(std::uint64_t v) {
  return (v + k4K - 1) & ~(k4K - 1);
}

MapAttrs user_attrs(std::uint8_t prot) {
  MapAttrs a;
  a.user = true;
  a.writable = (prot & kProtWrite) != 0;
  a.executable = (prot & kProtExec) != 0;
  a.global = false;
  a.mem = MemType::kNormal;
  return a;
}

}  // namespace

const char* mm_error_name(MmError e) {
  switch (e) {
    case MmError::kOk:
      return "ok";
    case MmError::kBadArgs:
      return "size 0 or not page aligned";
    case MmError::kOutOfRange:
      return "outside user space";
    case MmError::kOverlap:
      return "overlaps an existing mapping";
    case MmError::kNoSpace:
      return "no free range of address space is large enough";
    case MmError::kTooManyVmas:
      return "too many mappings";
    case MmError::kNoVma:
      return "not inside one mapping";
    case MmError::kNoMemory:
      return "out of memory for page tables";
    case MmError::kNotInitialised:
      return "no address space";
  }
  return "?";
}

AddressLayout default_layout(const KernelSpaceConfig& k) {
  AddressLayout l;
  if (k.format == Format::kArmv7Short) {
    l.task_size = k.page_offset - (16u << 20);
  } else {
    l.task_size = std::uint64_t{1} << 48;
  }
  l.text_start = 0x00010000;
  l.brk_start = l.text_start + 0x100000;
  l.mmap_base = l.task_size - (128u << 20);
  return l;
}

MmError AddressSpace::init(FrameSource* tables, FrameSource* data, KernelSpace* kernel, std::uint16_t asid) {
  destroy(nullptr);
  if (tables == nullptr || data == nullptr || kernel == nullptr || !kernel->initialised()) {
    return MmError::kNotInitialised;
  }
  const KernelSpaceConfig& kc = kernel->config();
  PageTableConfig ptc;
  ptc.format = kc.format;
  if (kc.format == Format::kArmv7Short) {
    ptc.ttbcr_n = 0;
    ptc.armv7_shared_l1_first = static_cast<unsigned>(kc.page_offset >> 20);
  } else {
    ptc.shared_ttbr1 = kernel->pgd().root(1);
  }
  if (pt_.init(tables, ptc) != VmError::kOk) return MmError::kNoMemory;
  data_ = data;
  kernel_ = kernel;
  asid_ = asid;
  kernel_gen_ = 0;
  layout_ = default_layout(kc);
  brk_ = layout_.brk_start;
  data_frames_ = 0;
  faults_ = 0;
  nr_vmas_ = 0;
  sync_kernel();
  std::uint64_t at = 0;
  MmError e = mmap(layout_.text_size, kProtRead | kProtExec, VmaKind::kText, layout_.text_start, &at);
  if (e == MmError::kOk) {
    e = mmap(layout_.stack_size, kProtRead | kProtWrite, VmaKind::kStack, layout_.task_size - layout_.stack_size, &at);
  }
  if (e != MmError::kOk) destroy(nullptr);
  return e;
}

void AddressSpace::destroy(Tlb* tlb) {
  if (!initialised()) return;
  for (unsigned i = 0; i < nr_vmas_; ++i) release_range(vmas_[i].start, vmas_[i].end, nullptr);
  nr_vmas_ = 0;
  pt_.destroy();
  if (tlb != nullptr) tlb->flush_asid(asid_);
  data_ = nullptr;
  kernel_ = nullptr;
}

void AddressSpace::sync_kernel() {
  if (kernel_ == nullptr || pt_.format() != Format::kArmv7Short) return;
  if (kernel_gen_ == kernel_->generation()) return;
  if (pt_.copy_l1_entries(kernel_->pgd()) == VmError::kOk) kernel_gen_ = kernel_->generation();
}

const Vma* AddressSpace::find_vma(std::uint64_t va) const {
  for (unsigned i = 0; i < nr_vmas_; ++i) {
    if (vmas_[i].contains(va)) return &vmas_[i];
    if (vmas_[i].start > va) break;
  }
  return nullptr;
}

MmError AddressSpace::insert_vma(const Vma& v) {
  if (nr_vmas_ == kMaxVmas) return MmError::kTooManyVmas;
  unsigned i = 0;
  while (i < nr_vmas_ && vmas_[i].start < v.start) ++i;
  for (unsigned k = nr_vmas_; k > i; --k) vmas_[k] = vmas_[k - 1];
  vmas_[i] = v;
  ++nr_vmas_;
  return MmError::kOk;
}

void AddressSpace::remove_vma(unsigned i) {
  for (unsigned k = i; k + 1 < nr_vmas_; ++k) vmas_[k] = vmas_[k + 1];
  --nr_vmas_;
}

MmError AddressSpace::mmap(std::uint64_t size, std::uint8_t prot, VmaKind kind, std::uint64_t fixed,
                           std::uint64_t* addr) {
  if (!initialised()) return MmError::kNotInitialised;
  if (size == 0 || size > layout_.task_size || fixed % k4K != 0) return MmError::kBadArgs;
  size = page_up(size);
  Vma v;
  v.prot = prot;
  v.kind = kind;
  if (fixed != 0) {
    if (fixed < layout_.mmap_min_addr || fixed > layout_.task_size - size) return MmError::kOutOfRange;
    for (unsigned i = 0; i < nr_vmas_; ++i) {
      if (vmas_[i].start < fixed + size && fixed < vmas_[i].end) return MmError::kOverlap;
    }
    v.start = fixed;
  } else {
    // Top down: the highest gap below mmap_base that holds size bytes.
    bool found = false;
    for (unsigned g = nr_vmas_ + 1; g-- > 0 && !found;) {
      const std::uint64_t lo = g == 0 ? layout_.mmap_min_addr : vmas_[g - 1].end;
      std::uint64_t hi = g == nr_vmas_ ? layout_.task_size : vmas_[g].start;
      if (hi > layout_.mmap_base) hi = layout_.mmap_base;
      if (hi > lo && hi - lo >= size) {
        v.start = hi - size;
        found = true;
      }
    }
    if (!found) return MmError::kNoSpace;
  }
  v.end = v.start + size;
  const MmError e = insert_vma(v);
  if (e == MmError::kOk) *addr = v.start;
  return e;
}

void AddressSpace::release_range(std::uint64_t start, std::uint64_t end, Tlb* tlb) {
  std::uint64_t va = start;
  while (va < end) {
    const Walk w = pt_.translate(va, AccessType::kRead, Privilege::kKernel);
    if (!w.ok()) {
      va = w.fault == FaultKind::kTranslation ? next_span(pt_.format(), va, w.fault_level) : va + k4K;
      continue;
    }
    if (pt_.unmap(va, k4K) == VmError::kOk) {
      data_->free_frame(w.leaf_base);
      --data_frames_;
      if (tlb != nullptr) tlb->flush_va(va, asid_);
    }
    va += k4K;
  }
}

MmError AddressSpace::munmap(std::uint64_t addr, std::uint64_t size, Tlb* tlb) {
  if (!initialised()) return MmError::kNotInitialised;
  if (size == 0 || addr % k4K != 0) return MmError::kBadArgs;
  size = page_up(size);
  unsigned i = 0;
  while (i < nr_vmas_ && !vmas_[i].contains(addr)) ++i;
  if (i == nr_vmas_ || size > vmas_[i].end - addr) return MmError::kNoVma;
  const Vma v = vmas_[i];
  const std::uint64_t end = addr + size;
  if (addr > v.start && end < v.end && nr_vmas_ == kMaxVmas) return MmError::kTooManyVmas;
  release_range(addr, end, tlb);
  if (addr == v.start && end == v.end) {
    remove_vma(i);
  } else if (addr == v.start) {
    vmas_[i].start = end;
  } else if (end == v.end) {
    vmas_[i].end = addr;
  } else {
    vmas_[i].end = addr;
    Vma tail = v;
    tail.start = end;
    (void)insert_vma(tail);
  }
  return MmError::kOk;
}

MmError AddressSpace::brk(std::uint64_t new_brk, Tlb* tlb) {
  if (!initialised()) return MmError::kNotInitialised;
  // Above TASK_SIZE before rounding: page_up of a value within a page of 2^64 wraps to 0,
  // and the shrink path then released everything below the heap (review).
  if (new_brk < layout_.brk_start || new_brk > layout_.task_size) return MmError::kOutOfRange;
  const std::uint64_t old_end = page_up(brk_);
  const std::uint64_t new_end = page_up(new_brk);
  unsigned heap = nr_vmas_;
  for (unsigned i = 0; i < nr_vmas_; ++i) {
    if (vmas_[i].kind == VmaKind::kHeap) heap = i;
  }
  if (new_end > old_end) {
    for (unsigned i = 0; i < nr_vmas_; ++i) {
      if (i != heap && vmas_[i].start < new_end && old_end < vmas_[i].end) return MmError::kOverlap;
    }
    if (new_end > layout_.task_size) return MmError::kOutOfRange;
    if (heap == nr_vmas_) {
      Vma v;
      v.start = layout_.brk_start;
      v.end = new_end;
      v.prot = kProtRead | kProtWrite;
      v.kind = VmaKind::kHeap;
      const MmError e = insert_vma(v);
      if (e != MmError::kOk) return e;
    } else {
      vmas_[heap].end = new_end;
    }
  } else if (new_end < old_end && heap != nr_vmas_) {
    release_range(new_end, old_end, tlb);
    if (new_end == layout_.brk_start) {
      remove_vma(heap);
    } else {
      vmas_[heap].end = new_end;
    }
  }
  brk_ = new_brk;
  return MmError::kOk;
}

AccessResult AddressSpace::access(std::uint64_t va, AccessType acc, Privilege priv, Tlb& tlb) {
  AccessResult r;
  if (!initialised()) {
    r.outcome = AccessOutcome::kFault;
    r.why = "no address space";
    return r;
  }
  sync_kernel();
  r.walk = translate_cached(pt_, tlb, va, acc, priv, asid_);
  if (r.walk.ok()) return r;
  r.fault = r.walk;
  if (va >= layout_.task_size) {
    r.outcome = AccessOutcome::kFault;
    r.why = priv == Privilege::kUser ? "user access to kernel space" : "kernel access outside every mapping";
    if (priv == Privilege::kUser && va < kernel_->kernel_base()) r.why = "user access above TASK_SIZE";
    return r;
  }
  const Vma* v = find_vma(va);
  if (v == nullptr) {
    r.outcome = AccessOutcome::kSegvNoVma;
    r.why = "no VMA covers the address";
    return r;
  }
  if (acc == AccessType::kWrite && (v->prot & kProtWrite) == 0) {
    r.outcome = AccessOutcome::kSegvProt;
    r.why = "write to a read-only mapping";
    return r;
  }
  if (acc == AccessType::kExec && (v->prot & kProtExec) == 0) {
    r.outcome = AccessOutcome::kSegvProt;
    r.why = "execute of a non-executable (XN) mapping";
    return r;
  }
  if (acc == AccessType::kRead && (v->prot & (kProtRead | kProtWrite | kProtExec)) == 0) {
    r.outcome = AccessOutcome::kSegvProt;
    r.why = "read of a PROT_NONE mapping";
    return r;
  }
  if (r.fault.fault != FaultKind::kTranslation) {
    r.outcome = AccessOutcome::kFault;
    r.why = "the page is mapped but the hardware refuses this access";
    return r;
  }
  // Demand paging: a zeroed frame, mapped with the VMA's permissions.
  phys_addr_t pa = 0;
  void* host = nullptr;
  if (!data_->alloc_frame(&pa, &host)) {
    r.outcome = AccessOutcome::kNoMemory;
    r.why = "no free frame for the page";
    return r;
  }
  if (host != nullptr) std::memset(host, 0, k4K);
  if (pt_.map(va & ~(k4K - 1), pa, k4K, user_attrs(v->prot)) != VmError::kOk) {
    data_->free_frame(pa);
    r.outcome = AccessOutcome::kNoMemory;
    r.why = "no free frame for a page table";
    return r;
  }
  ++data_frames_;
  ++faults_;
  r.frame = pa;
  r.walk = translate_cached(pt_, tlb, va, acc, priv, asid_);
  r.outcome = r.walk.ok() ? AccessOutcome::kDemandPaged : AccessOutcome::kFault;
  if (!r.walk.ok()) r.why = "the new page still faults";
  return r;
}

namespace {

struct UserLeafCheck {
  const AddressSpace* as;
  std::uint64_t leaves = 0;
  const char* bad = nullptr;
  std::uint64_t bad_va = 0;
};

void check_user_leaf(void* arg, const Leaf& leaf) {
  auto* c = static_cast<UserLeafCheck*>(arg);
  if (leaf.va >= c->as->layout().task_size) return;
  ++c->leaves;
  const Vma* v = c->as->find_vma(leaf.va);
  const char* bad = nullptr;
  if (leaf.size_shift != 12) {
    bad = "user leaf larger than a page";
  } else if (v == nullptr) {
    bad = "user page outside every VMA";
  } else if ((leaf.perms.user_write && (v->prot & kProtWrite) == 0) ||
             (leaf.perms.user_exec && (v->prot & kProtExec) == 0)) {
    bad = "user page with more permission than its VMA";
  }
  if (bad != nullptr && c->bad == nullptr) {
    c->bad = bad;
    c->bad_va = leaf.va;
  }
}

}  // namespace

bool AddressSpace::check_invariants(TextSink* why) const {
  auto fail = [why](const char* msg, std::uint64_t v) {
    if (why != nullptr) why->str("address space: ").str(msg).str(" 0x").hex(v);
    return false;
  };
  if (!initialised()) return true;
  for (unsigned i = 0; i < nr_vmas_; ++i) {
    const Vma& v = vmas_[i];
    if (v.start >= v.end || v.start % k4K != 0 || v.end % k4K != 0) return fail("bad VMA", v.start);
    if (v.start < layout_.mmap_min_addr || v.end > layout_.task_size) return fail("VMA outside user space", v.start);
    if (i > 0 && vmas_[i - 1].end > v.start) return fail("VMAs overlap or unsorted at", v.start);
  }
  UserLeafCheck c{this};
  pt_.visit(check_user_leaf, &c);
  if (c.bad != nullptr) return fail(c.bad, c.bad_va);
  if (c.leaves != data_frames_) return fail("mapped pages != data frames:", c.leaves);
  return true;
}

}  // namespace kmm::vm

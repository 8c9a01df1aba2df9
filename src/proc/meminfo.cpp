// kmm/proc/meminfo.cpp — /proc/meminfo: Linux 4.19's fields in Linux's order.
#include "base/text.h"
#include "nommu/mmap_copy.h"
#include "proc/proc.h"

namespace kmm {

void slab_kb(Kernel& k, std::uint64_t* reclaimable, std::uint64_t* unreclaimable) {
  std::uint64_t rec = 0, unrec = 0;
  for (unsigned id = 0; id < k.slab().nr_cache_ids(); ++id) {
    KmemCache* c = k.slab().cache(id);
    if (c == nullptr) continue;
    std::uint64_t kb = c->nr_slabs.load(std::memory_order_relaxed) * ((kPageSize << c->order) / 1024);
    if (c->flags & SLAB_RECLAIM_ACCOUNT)
      rec += kb;
    else
      unrec += kb;
  }
  *reclaimable = rec;
  *unreclaimable = unrec;
}

unsigned meminfo_fields(Kernel& k, MeminfoField* f) {
  constexpr std::uint64_t kPageKb = kPageSize / 1024;
  unsigned n = 0;
  auto add = [&](const char* name, std::uint64_t v, bool kb = true) { f[n++] = MeminfoField{name, v, kb}; };
  const PageAllocator& z = k.zone();
  std::uint64_t total = z.managed_pages() * kPageKb;
  std::uint64_t free = z.free_pages() * kPageKb;
  std::uint64_t srec, sunrec;
  slab_kb(k, &srec, &sunrec);
  // si_mem_available(): free less the high watermark, plus the reclaimable slab that can go,
  // summed signed and only then clamped at 0, as Linux does (free below the watermark is
  // made up by reclaimable slab before anything reads as available).
  auto reserve = static_cast<std::int64_t>(z.watermarks().high * kPageKb);
  std::uint64_t low = z.watermarks().low * kPageKb;
  std::uint64_t rec_half = srec / 2 < low ? srec / 2 : low;
  std::int64_t avail_signed = static_cast<std::int64_t>(free) - reserve + static_cast<std::int64_t>(srec - rec_half);
  // guard_pages: parked guarded runs are given back on demand (Kmalloc::drain_guard_cache).
  avail_signed += static_cast<std::int64_t>(k.kmalloc_layer().guard_cache_pages() * kPageKb);
  std::uint64_t avail = avail_signed > 0 ? static_cast<std::uint64_t>(avail_signed) : 0;
  std::uint64_t anon = 0, pagetables = 0;
  for (pfn_t pfn = k.phys().base_pfn(); pfn < k.phys().online_end_pfn(); ++pfn) {
    const Page* p = k.phys().pfn_to_page(pfn);
    if (p->is(PG_process)) ++anon;
    if (p->is(PG_pgtable)) ++pagetables;
  }
  // NOMMU Linux defines VMALLOC_TOTAL as 0: no space of its own (vmalloc takes pages the
  // direct map already maps).
  std::uint64_t vtotal = k.config().mmu ? (k.vmalloc_space().end() - k.vmalloc_space().start()) / 1024 : 0;
  add("MemTotal", total);
  add("MemFree", free);
  add("MemAvailable", avail);
  add("Buffers", 0);
  add("Cached", 0);
  add("SwapCached", 0);
  add("Active", anon * kPageKb);
  add("Inactive", 0);
  add("Active(anon)", anon * kPageKb);
  add("Inactive(anon)", 0);
  add("Active(file)", 0);
  add("Inactive(file)", 0);
  add("Unevictable", 0);
  add("Mlocked", 0);
  // NOMMU (mm/nommu.c): memory allocated to back mmaps, where Linux prints it (after
  // LowFree, which kmm does not print: no highmem).
  if (!k.config().mmu) add("MmapCopy", mmap_copy_bytes(&k) / 1024);
  add("SwapTotal", 0);
  add("SwapFree", 0);
  add("Dirty", 0);
  add("Writeback", 0);
  add("AnonPages", anon * kPageKb);
  add("Mapped", 0);
  add("Shmem", 0);
  add("Slab", srec + sunrec);
  add("SReclaimable", srec);
  add("SUnreclaim", sunrec);
  add("KernelStack", 0);
  add("PageTables", pagetables * kPageKb);
  add("NFS_Unstable", 0);
  add("Bounce", 0);
  add("WritebackTmp", 0);
  add("CommitLimit", total / 2);
  add("Committed_AS", anon * kPageKb);
  add("VmallocTotal", vtotal);
  add("VmallocUsed", k.vmalloc_space().used_bytes() / 1024);
  add("VmallocChunk", 0);
  add("Percpu", 0);  // since 4.16; the model has no per-CPU allocator
  add("HardwareCorrupted", 0);
  add("AnonHugePages", 0);
  add("ShmemHugePages", 0);
  add("ShmemPmdMapped", 0);
  add("HugePages_Total", 0, false);
  add("HugePages_Free", 0, false);
  add("HugePages_Rsvd", 0, false);
  add("HugePages_Surp", 0, false);
  add("Hugepagesize", 2048);
  add("Hugetlb", 0);
  return n;
}

bool meminfo_value(Kernel& k, const char* name, std::uint64_t* kb) {
  MeminfoField f[kMaxMeminfoFields];
  unsigned n = meminfo_fields(k, f);
  for (unsigned i = 0; i < n; ++i) {
    if (str_eq(f[i].name, name)) {
      *kb = f[i].value;
      return true;
    }
  }
  return false;
}

void print_meminfo(Kernel& k, TextSink& out) {
  MeminfoField f[kMaxMeminfoFields];
  unsigned n = meminfo_fields(k, f);
  for (unsigned i = 0; i < n; ++i) {
    // show_val_kb(): the label and its colon padded to 16 columns, the value in 8.
    StackText<32> label;
    label.str(f[i].name).ch(':');
    // Values end at column 24; a longer label keeps one space (Linux's
    // "HardwareCorrupted: %5lu kB").
    unsigned pad = label.size() < 16 ? 16 : static_cast<unsigned>(label.size()) + 1;
    out.left(label.data(), pad).u(f[i].value, 24 - pad);
    if (f[i].kb) out.str(" kB");
    out.nl();
  }
}

}  // namespace kmm

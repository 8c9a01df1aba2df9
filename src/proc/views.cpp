// kmm/proc/views.cpp — buddyinfo, slabinfo, modules, allocinfo, vmallocinfo, kmemleak,
// extfrag, and the path dispatcher.
#include "base/fault_inject.h"
#include "base/text.h"
#include "proc/proc.h"

namespace kmm {

void print_buddyinfo(Kernel& k, TextSink& out) {
  std::uint64_t nr[kNrOrders];
  k.zone().free_blocks(nr);
  out.str("Node 0, zone ");
  out.repeat(' ', 2).str("Normal").ch(' ');  // "%8s": "  Normal"
  for (unsigned o = 0; o < kNrOrders; ++o) out.u(nr[o], 6).ch(' ');
  out.nl();
}

void print_slabinfo(Kernel& k, TextSink& out) {
  out.str("slabinfo - version: 2.1\n");
  out.str("# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>");
  out.str(" : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n");
  // SLUB lists caches newest first.
  for (unsigned id = k.slab().nr_cache_ids(); id-- > 0;) {
    KmemCache* c = k.slab().cache(id);
    if (c == nullptr) continue;
    std::uint64_t slabs = c->nr_slabs.load(std::memory_order_relaxed);
    out.left(c->name, 17).ch(' ').u(c->active_objects(), 6).ch(' ').u(c->total_objects(), 6).ch(' ');
    out.u(c->size, 6).ch(' ').u(c->objects, 4).ch(' ').u(1u << c->order, 4);
    out.str(" : tunables ").u(0, 4).ch(' ').u(0, 4).ch(' ').u(0, 4);
    out.str(" : slabdata ").u(slabs, 6).ch(' ').u(slabs, 6).ch(' ').u(0, 6).nl();
  }
}

// Linux's columns: name, size, use count, users, state, address. The use count is the
// threads inside the module's scopes (ModuleRegistry::hold); an unloaded module that still has
// some is "Unloading", as a module whose exit waits for its users.
void print_modules(Kernel& k, TextSink& out) {
  for (unsigned o = kOwnerFirstModule; o < kOwnerUntracked; ++o) {
    const Module* m = k.modules().module(static_cast<owner_t>(o));
    if (m == nullptr) continue;
    unsigned holds = k.modules().holds(static_cast<owner_t>(o));
    bool unloading = m->state == ModuleState::kGone && holds != 0;
    if (m->state != ModuleState::kLive && !unloading) continue;
    out.str(m->name).ch(' ').u(m->core_size).ch(' ').u(holds);
    out.str(unloading ? " - Unloading 0x" : " - Live 0x").hex(m->address, 8).nl();
  }
}

void print_allocinfo(Kernel& k, TextSink& out) {
  out.str("allocinfo - version: 1.0\n");
  out.str("#     <size>  <calls> <tag info>\n");
  OwnerTally t[kMaxOwners];
  for (unsigned id = 0; id < k.slab().nr_cache_ids(); ++id) {
    KmemCache* c = k.slab().cache(id);
    if (c == nullptr) continue;
    k.cache_usage(c, t);
    for (unsigned o = 1; o < kMaxOwners; ++o) {
      if (t[o].objects == 0) continue;
      out.u(t[o].bytes, 12)
          .ch(' ')
          .u(t[o].objects, 8)
          .str(" mm/slub.c:0 [")
          .str(k.modules().owner_name(static_cast<owner_t>(o)));
      out.str("] func:").str(c->flags & SLAB_KMALLOC ? "kmalloc" : "kmem_cache_alloc").ch(' ').str(c->name).nl();
    }
  }
  k.cache_usage(nullptr, t);
  for (unsigned o = 1; o < kMaxOwners; ++o) {
    if (t[o].objects == 0) continue;
    out.u(t[o].bytes, 12)
        .ch(' ')
        .u(t[o].objects, 8)
        .str(" mm/page_alloc.c:0 [")
        .str(k.modules().owner_name(static_cast<owner_t>(o)));
    out.str("] func:alloc_pages").nl();
  }
  OwnerTally v[kMaxOwners] = {};
  for (const VmArea* a = k.vmalloc_space().areas(); a != nullptr; a = a->next) {
    v[a->owner].objects++;
    v[a->owner].bytes += std::uint64_t{a->nr_pages} << kPageShift;
  }
  for (unsigned o = 1; o < kMaxOwners; ++o) {
    if (v[o].objects == 0) continue;
    out.u(v[o].bytes, 12)
        .ch(' ')
        .u(v[o].objects, 8)
        .str(" mm/vmalloc.c:0 [")
        .str(k.modules().owner_name(static_cast<owner_t>(o)));
    out.str("] func:vmalloc").nl();
  }
}

void print_vmallocinfo(Kernel& k, TextSink& out) {
  k.vmalloc_space().print_info(out, k.modules());
}

namespace {

void hex_dump(TextSink& out, const unsigned char* bytes, std::size_t n) {
  out.str("  hex dump (first ").u(n).str(" bytes):\n");
  for (std::size_t row = 0; row < n; row += 16) {
    out.str("    ");
    std::size_t end = row + 16 < n ? row + 16 : n;
    for (std::size_t i = row; i < end; ++i) out.hex(bytes[i], 2).ch(' ');
    for (std::size_t i = end; i < row + 16; ++i) out.str("   ");
    out.ch(' ');
    for (std::size_t i = row; i < end; ++i)
      out.ch(bytes[i] >= 0x20 && bytes[i] < 0x7f ? static_cast<char>(bytes[i]) : '.');
    out.nl();
  }
}

void leak_entry(Kernel& k, TextSink& out, std::uint64_t addr, std::size_t size, const unsigned char* data, owner_t o,
                const char* site) {
  const Module* m = k.modules().module(o);
  // "still referenced" only where the last pass's scan spared every block of o it left: a pass
  // that only reported (no memory for the scan, a world that would not stop) scanned nothing.
  const bool referenced = k.collector().last_referenced(o).objects != 0;
  const bool kept = k.collector().last_kept(o).objects != 0;
  out.str(!referenced ? "unreferenced object 0x"
          : kept      ? "orphaned object (kept; some of its module's still referenced) 0x"
                      : "orphaned object (still referenced) 0x")
      .hex(addr, 8);
  out.str(" (size ").u(size).str("):\n");
  std::uint64_t age_ms = m != nullptr ? (k.now_ns() - m->load_ns) / 1000000 : 0;
  out.str("  comm \"").str(k.modules().owner_name(o)).str("\", pid 0, jiffies ").u(m ? m->load_ns / 10000000 : 0);
  out.str(" (age ").fixed(static_cast<std::int64_t>(age_ms), 3).str("s)\n");
  hex_dump(out, data, size < 32 ? size : 32);
  out.str("  backtrace:\n    [<").hex(addr, 8).str(">] ").str(site).str(" [").str(k.modules().owner_name(o)).str("]\n");
}

}  // namespace

void print_kmemleak(Kernel& k, TextSink& out) {
  bool dead[kMaxOwners];
  k.modules().dead_owners(dead);
  for (unsigned o = 0; o < kMaxOwners; ++o) {
    const Module* m = k.modules().module(static_cast<owner_t>(o));
    if (dead[o] && (m == nullptr || !m->leaks_reported)) dead[o] = false;  // not found by a pass yet
  }
  PhysMem& phys = k.phys();
  for (pfn_t pfn = phys.base_pfn(); pfn < phys.online_end_pfn();) {
    Page* page = phys.pfn_to_page(pfn);
    pfn_t step = 1;
    if (page->is(PG_slab) && page->is(PG_head)) {
      step = pfn_t{1} << page->get_order();
      KmemCache* c = k.slab().cache(page->cache_id);
      if (c != nullptr) {
        char* base = static_cast<char*>(phys.page_address(page));
        for (unsigned i = 0; i < c->objects; ++i) {
          owner_t o = *k.slab().owner_slot(c, page, i);
          if (o == kOwnerFree || !dead[o]) continue;
          char* obj = base + std::size_t{i} * c->size;
          leak_entry(k, out, k.kva(obj), c->object_size, reinterpret_cast<unsigned char*>(obj), o, c->name);
        }
      }
    } else if (page->is(PG_large) && page->is(PG_head)) {
      step = page->lru.nr_pages;
      if (dead[page->owner]) {
        void* p = phys.page_address(page);
        leak_entry(k, out, k.kva(p), Kmalloc::large_usable_bytes(page), static_cast<unsigned char*>(p), page->owner,
                   page->is(PG_pages) ? "alloc_pages" : "kmalloc_large");
      }
    } else if (page->is(PG_buddy)) {
      step = pfn_t{1} << page->get_order();
    }
    pfn += step == 0 ? 1 : step;
  }
  for (const VmArea* a = k.vmalloc_space().areas(); a != nullptr; a = a->next) {
    if (!dead[a->owner]) continue;
    leak_entry(k, out, a->addr, static_cast<std::size_t>(a->requested) /* a vmalloc size_t */,
               static_cast<unsigned char*>(phys.pfn_to_virt(a->pages[0])), a->owner, "vmalloc");
  }
}

void print_extfrag(Kernel& k, TextSink& out, bool unusable) {
  out.str("Node 0, zone   Normal ");
  std::uint64_t nr[kNrOrders];
  k.zone().free_blocks(nr);
  for (unsigned o = 0; o < kNrOrders; ++o) {
    int v = unusable ? unusable_index(nr, o) : fragmentation_index(nr, o);
    out.fixed(v, 3).ch(' ');
  }
  out.nl();
}

namespace {
const char* const kPaths[] = {"/proc/meminfo",
                              "/proc/buddyinfo",
                              "/proc/slabinfo",
                              "/proc/modules",
                              "/proc/allocinfo",
                              "/proc/vmallocinfo",
                              "/sys/kernel/debug/kmemleak",
                              "/sys/kernel/debug/extfrag/extfrag_index",
                              "/sys/kernel/debug/extfrag/unusable_index",
                              "/proc/dmesg",
                              "/sys/kernel/debug/failslab",
                              "/sys/kernel/debug/fail_page_alloc",
                              "/sys/kernel/debug/fail_platform",
                              nullptr};
}

const char* const* proc_paths() {
  return kPaths;
}

bool proc_read(Kernel& k, const char* path, TextSink& out) {
  std::size_t n = str_len(path);
  if (n > 5 && str_eq(path + n - 5, ".json")) {
    char base[96];
    if (n - 5 >= sizeof base) return false;
    for (std::size_t i = 0; i < n - 5; ++i) base[i] = path[i];
    base[n - 5] = '\0';
    return proc_json(k, base, out);
  }
  if (str_eq(path, "/proc/meminfo"))
    print_meminfo(k, out);
  else if (str_eq(path, "/proc/buddyinfo"))
    print_buddyinfo(k, out);
  else if (str_eq(path, "/proc/slabinfo"))
    print_slabinfo(k, out);
  else if (str_eq(path, "/proc/modules"))
    print_modules(k, out);
  else if (str_eq(path, "/proc/allocinfo"))
    print_allocinfo(k, out);
  else if (str_eq(path, "/proc/vmallocinfo"))
    print_vmallocinfo(k, out);
  else if (str_eq(path, "/sys/kernel/debug/kmemleak"))
    print_kmemleak(k, out);
  else if (str_eq(path, "/sys/kernel/debug/extfrag/extfrag_index"))
    print_extfrag(k, out, false);
  else if (str_eq(path, "/sys/kernel/debug/extfrag/unusable_index"))
    print_extfrag(k, out, true);
  else if (str_eq(path, "/proc/dmesg"))
    k.dmesg(out);
  // Fault injection (base/fault_inject.h): the attributes Linux keeps as one file each in
  // /sys/kernel/debug/failslab/, one per line, with the calls seen and failures injected.
  else if (str_eq(path, "/sys/kernel/debug/failslab"))
    fault_print(FaultPoint::kSlab, out);
  else if (str_eq(path, "/sys/kernel/debug/fail_page_alloc"))
    fault_print(FaultPoint::kPage, out);
  else if (str_eq(path, "/sys/kernel/debug/fail_platform"))
    fault_print(FaultPoint::kPlatform, out);
  else
    return false;
  return true;
}

}  // namespace kmm

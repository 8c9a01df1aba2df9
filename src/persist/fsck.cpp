// kmm/persist/fsck.cpp — `kmm fsck FILE`: the offline check of a heap file.
// What it checks and why is in persist/fsck.h; how attach checks and rebuilds, in
// persist/attach.cpp and persist/rebuild.cpp.
// Depends on: persist/attach.h, kernel/, pal/pal_file.h. Never allocates. Invariant kept: the
// file is opened read-only and mapped MAP_PRIVATE; nothing reaches it.
#include "persist/fsck.h"

#include "base/text.h"
#include "pal/pal_file.h"
#include "persist/attach.h"

namespace kmm {
namespace {

struct Findings {
  Findings(TextSink& o, unsigned m) : out(o), max_lines(m) {}
  TextSink& out;
  unsigned max_lines;
  std::uint64_t n = 0;
  TextSink& add() {
    ++n;
    if (n <= max_lines) return out.str("  inconsistency: ");
    return scratch;
  }
  char buf[256] = {};
  TextSink scratch{buf, sizeof buf};
};

struct Counters {
  std::uint64_t nr_free[kNrOrders];
  std::uint64_t free_pages;
  std::uint64_t slabs[kMaxCaches], free_objs[kMaxCaches];
  std::uint64_t vmalloc_bytes;
  std::uint64_t large_pages;
};

void snapshot(Kernel& k, Counters* c) {
  for (unsigned o = 0; o < kNrOrders; ++o) c->nr_free[o] = k.buddy().nr_free(o);
  c->free_pages = k.buddy().free_pages();
  for (unsigned i = 0; i < kMaxCaches; ++i) {
    KmemCache* kc = k.slab().cache(i);
    c->slabs[i] = kc ? kc->nr_slabs.load() : 0;
    c->free_objs[i] = kc ? kc->free_in_slabs.load() : 0;
  }
  c->vmalloc_bytes = k.vmalloc_space().used_bytes();
  c->large_pages = k.kmalloc_layer().large_pages();
}

bool owner_ok(const Kernel& k, owner_t o) {
  return o == kOwnerKernel || o == kOwnerUntracked || (o >= kOwnerFirstModule && k.view().modules.module(o) != nullptr);
}

// On a cleanly detached heap, the stored counters (before) equal the rebuilt ones (after).
void compare_counters(Kernel& k, const Counters& before, const Counters& after, Findings& f) {
  for (unsigned o = 0; o < kNrOrders; ++o)
    if (before.nr_free[o] != after.nr_free[o])
      f.add()
          .str("buddy: stored nr_free[")
          .u(o)
          .str("] = ")
          .u(before.nr_free[o])
          .str(", mem_map says ")
          .u(after.nr_free[o])
          .nl();
  if (before.free_pages != after.free_pages)
    f.add().str("buddy: stored free_pages ").u(before.free_pages).str(", mem_map says ").u(after.free_pages).nl();
  for (unsigned i = 0; i < kMaxCaches; ++i) {
    if (before.slabs[i] != after.slabs[i] || before.free_objs[i] != after.free_objs[i]) {
      KmemCache* kc = k.slab().cache(i);
      TextSink& line = f.add();  // past max_lines, a scratch line
      line.str(kc ? kc->name : "?").str(": stored ").u(before.slabs[i]).str(" slabs/").u(before.free_objs[i]);
      line.str(" free objects, the slabs say ").u(after.slabs[i]).str("/").u(after.free_objs[i]).nl();
    }
  }
  if (before.vmalloc_bytes != after.vmalloc_bytes)
    f.add()
        .str("vmalloc: stored ")
        .u(before.vmalloc_bytes)
        .str(" bytes used, the areas say ")
        .u(after.vmalloc_bytes)
        .nl();
  if (before.large_pages != after.large_pages)
    f.add().str("kmalloc: stored ").u(before.large_pages).str(" large pages, mem_map says ").u(after.large_pages).nl();
}

// Every frame of the zone: free exactly when no block holds it, tails with heads, owners
// that are modules; boot memory reserved. Returns the frames checked.
std::uint64_t check_frames(Kernel& k, Findings& f) {
  std::uint64_t frames = 0;
  PhysMem& ph = k.phys();
  PageAllocator& z = k.zone();
  for (pfn_t pfn = ph.base_pfn(); pfn < z.start_pfn(); ++pfn) {
    if (!ph.pfn_to_page(pfn)->is(PG_reserved)) f.add().str("frame ").u(pfn).str(" in boot memory is not reserved").nl();
  }
  for (pfn_t pfn = z.start_pfn(); pfn < z.end_pfn(); ++pfn) {
    ++frames;
    Page* p = ph.pfn_to_page(pfn);
    std::uint32_t fl = p->get_flags();
    bool allocated = (fl & (PG_slab | PG_large | PG_vmalloc)) != 0;
    bool is_free = z.frame_is_free(pfn);
    if (allocated && is_free) f.add().str("frame ").u(pfn).str(" is both free and allocated").nl();
    if (!allocated && !is_free) f.add().str("frame ").u(pfn).str(" is neither free nor held by a block").nl();
    pfn_t tail_head = p->tail_head();
    if ((fl & PG_tail) && (!ph.pfn_valid(tail_head) || !ph.pfn_to_page(tail_head)->is(PG_head)))
      f.add().str("frame ").u(pfn).str(" is a tail without a head").nl();
    if ((fl & PG_large) && (fl & PG_head) && !owner_ok(k, p->owner))
      f.add().str("large block at frame ").u(pfn).str(" owned by module slot ").u(p->owner).str(", which is free").nl();
    if ((fl & PG_slab) && (fl & PG_head)) {
      KmemCache* c = k.slab().cache(p->cache_id);
      if (c == nullptr) {
        f.add().str("slab at frame ").u(pfn).str(" of unknown cache ").u(p->cache_id).nl();
        continue;
      }
      for (unsigned i = 0; i < c->objects; ++i) {
        owner_t o = *k.slab().owner_slot(c, p, i);
        if (o != kOwnerFree && !owner_ok(k, o))
          f.add()
              .str(c->name)
              .str(": object ")
              .u(i)
              .str(" of slab ")
              .u(pfn)
              .str(" owned by module slot ")
              .u(o)
              .str(", which is free")
              .nl();
      }
    }
  }
  return frames;
}

// Owners of vmalloc areas are modules; named roots point at live blocks.
void check_owners(Kernel& k, Findings& f) {
  PhysMem& ph = k.phys();
  for (const VmArea* v = k.vmalloc_space().areas(); v != nullptr; v = v->next)
    if (!owner_ok(k, v->owner)) f.add().str("vmalloc area 0x").hex(v->addr).str(" owned by a free module slot").nl();
  const PersistRoot* roots = KernelImage::roots(k);
  for (const PersistRoot* rt = roots; rt != roots + kMaxPersistRoots; ++rt) {
    if (rt->name[0] == 0 || rt->value == 0) continue;
    const void* p = reinterpret_cast<const void*>(rt->value);
    if (ph.owns(p) && k.kmalloc_layer().owner_of(p) == kOwnerFree)
      f.add().str("root '").str(rt->name).str("' points at a block that is not live").nl();
  }
}

}  // namespace

FsckResult persist_fsck(const char* path, TextSink& out, unsigned max_lines) {
  FsckResult res;
  static FilePlatform fp;  // one check at a time per process (kmm fsck, the crash harness)
  FileOpenResult r = fp.open(path, 0, /*read_only=*/true);
  if (r != FileOpenResult::kAttach) {
    out.str("kmm fsck: unusable: ").str(fp.error()).nl();
    return res;
  }
  const Superblock& sb = fp.superblock();
  out.str("kmm fsck: ").str(path).str(": KMMHEAP1 version ").u(sb.version).str(", superblock seq ").u(sb.seq);
  out.str(" (")
      .u(fp.valid_slots())
      .str(" of 2 copies valid), RAM ")
      .u(sb.ram_bytes >> 10)
      .str("K at 0x")
      .hex(sb.map_addr);
  out.str(", boot ")
      .u(sb.boot_count)
      .str(sb.clean ? ", detached cleanly" : ", not detached cleanly (crash or power loss)")
      .nl();
  // The stored counters are read through the Kernel object, checked as attach checks it,
  // before the rebuild replaces them; on a clean heap the two must agree.
  const char* unusable = nullptr;
  Kernel* stored = KernelImage::stored(&fp, sb, &unusable);
  Kernel* k = nullptr;
  BootError err{unusable};
  Counters before{};
  if (stored != nullptr) {
    BootConfig cfg = stored->config();
    cfg.platform = nullptr;
    cfg.backing = nullptr;
    snapshot(*stored, &before);
    k = KernelImage::attach(&fp, cfg, &err);
  }
  if (k == nullptr) {
    out.str("kmm fsck: unusable: ").str(err.what).nl();
    fp.close(false);
    return res;
  }
  Findings f(out, max_lines);
  const AttachReport& a = k->attach_report();
  res.attach = a;
  res.repairs = a.repaired_frames + a.orphan_vmalloc_frames + a.orphan_area_records;
  if (a.bad_areas != 0) f.add().str("the vmalloc area list holds an invalid area (list cut there at attach)").nl();
  if (sb.clean) {
    if (res.repairs != 0)
      f.add().str("detached cleanly, yet ").u(res.repairs).str(" half-written roles or orphans").nl();
    Counters after{};
    snapshot(*k, &after);
    compare_counters(*k, before, after, f);
  }
  StackText<512> why;
  if (!k->check_invariants(&why)) f.add().str("after rebuild: ").str(why.data()).nl();
  res.frames = check_frames(*k, f);
  check_owners(*k, f);
  if (f.n > max_lines) out.str("  ... and ").u(f.n - max_lines).str(" more").nl();
  out.str("kmm fsck: ").u(res.frames).str(" frames, ").u(a.slabs).str(" slabs, ").u(a.objects).str(" objects, ");
  out.u(a.large_blocks)
      .str(" large blocks, ")
      .u(a.vmalloc_areas)
      .str(" vmalloc areas; attach would repair ")
      .u(res.repairs);
  out.str(" half-written roles/orphans and give back ").u(a.dropped_frames).str(" per-boot frames").nl();
  out.str("kmm fsck: ")
      .str(f.n == 0 ? "clean" : "INCONSISTENT")
      .str(" (")
      .u(f.n)
      .str(f.n == 1 ? " inconsistency)" : " inconsistencies)")
      .nl();
  res.inconsistencies = f.n;
  res.status = f.n == 0 ? 0 : 1;
  k->shutdown();  // read-only: unmaps, writes nothing
  return res;
}

}  // namespace kmm

// kmm/persist/heap_file.cpp — persist_boot: open a heap file, format it or attach to the
// machine in it; the layout hash. See heap_file.h.
// Depends on: persist/attach.h, kernel/, pal/pal_file.h. Never allocates. Invariants: a file
// taken from the pool goes back to it on every failure (give_up), closed without being
// marked clean; a new file's superblock says ready only after the booted machine is whole.
#include "persist/heap_file.h"

#include "pal/pal_file.h"
#include "persist/attach.h"

namespace kmm {

std::uint64_t persist_layout_hash() {
  std::uint64_t v[] = {kHeapVersion,   sizeof(Kernel),     sizeof(Page),   sizeof(KmemCache),
                       sizeof(Module), sizeof(BootConfig), sizeof(VmArea), kMaxCaches,
                       kMaxModules,    kMaxPersistRoots,   sizeof(void*)};
  return fnv1a64(v, sizeof v);
}

namespace {

// The file goes back to its pool, unchanged (not marked clean), and the boot fails with why.
Kernel* give_up(FilePlatform* fp, BootError* err, const char* why) {
  fp->close(false);
  heap_file_release(fp);
  if (why != nullptr) err->what = why;
  return nullptr;
}

// A new or empty file: an ordinary boot over the file's RAM, then the superblock says ready.
Kernel* format(FilePlatform* fp, const BootConfig& cfg, BootError* err) {
  BootConfig c = cfg;
  c.platform = fp;
  c.online_bytes = 0;
  c.backing = nullptr;
  Kernel* k = Kernel::boot(c, err);
  if (k == nullptr) return give_up(fp, err, nullptr);
  KernelImage::formatted(*k, fp);
  fp->flush();
  Superblock sb = fp->superblock();
  sb.state = static_cast<std::uint32_t>(HeapState::kReady);
  sb.kernel_offset = static_cast<std::uint64_t>(reinterpret_cast<char*>(k) - fp->ram());
  sb.phys_offset = cfg.phys_offset;
  sb.layout = persist_layout_hash();
  sb.boot_count = 1;
  sb.clean = 0;
  if (!fp->write_superblock(sb)) {
    KernelImage::forget_file(*k);
    return give_up(fp, err, "could not write the heap file's superblock");
  }
  return k;
}

}  // namespace

Kernel* persist_boot(const BootConfig& cfg, BootError* err) {
  BootError dummy;
  if (err == nullptr) err = &dummy;
  if (cfg.backing == nullptr) return Kernel::boot(cfg, err);
  if (cfg.hardening.debug_caches() || cfg.hardening.guard_pages) {
    // A persistent heap keeps its slab layout and block frames across boots; red zones,
    // poison, quarantine and guard frames would change both between one boot and the next.
    err->what = "redzone, poison, quarantine and guard_pages are not available with backing= (freelist_hardened is)";
    return nullptr;
  }
  if (cfg.platform != nullptr) {  // the caller's platform wins: volatile RAM, as before
    BootConfig c = cfg;
    c.backing = nullptr;
    return Kernel::boot(c, err);
  }
  if (cfg.page_alloc != PageAllocKind::kBuddy) {
    err->what = "backing= needs page_alloc=buddy (the range allocator is not rebuilt at attach)";
    return nullptr;
  }
  if (cfg.paper_table) {
    err->what = "backing= needs tracker=owner (the paper's table holds no persistent records)";
    return nullptr;
  }
  FilePlatform* fp = heap_file_acquire();
  if (fp == nullptr) {
    err->what = "too many heap files open in this process";
    return nullptr;
  }
  FileOpenResult r = fp->open(cfg.backing, cfg.ram_bytes);
  if (r == FileOpenResult::kError) {
    err->what = persist_keep_error(fp->error());  // the file's message dies with it
    return give_up(fp, err, nullptr);
  }
  if (r == FileOpenResult::kFormat) return format(fp, cfg, err);
  Kernel* k = KernelImage::attach(fp, cfg, err);
  return k != nullptr ? k : give_up(fp, err, nullptr);
}

}  // namespace kmm

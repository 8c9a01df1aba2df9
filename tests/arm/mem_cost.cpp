// tests/arm/mem_cost.cpp — what kmm's own metadata costs on a small machine (issue 4,
// docs/SIZE.md): boots a 4 MB and a 16 MB machine over a static buffer and measures mem_map,
// the per-page descriptor, the rest of the boot reservation, and, after a kmalloc workload
// that fills half of the free memory with mixed sizes, the slab owner vectors (the
// protector's one byte per object) and the other slab slack. Prints a Markdown table; run on
// the host (64-bit) and under qemu-arm (32-bit) by ctest, and by scripts/arm-mem-cost.sh.
// Exit status 1 when mem_map takes more than 1.6 % of RAM.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "kernel/kernel.h"
#include "pal/pal.h"

namespace {

alignas(4096) unsigned char g_ram[16u << 20];

double pct(std::uint64_t part, std::uint64_t whole) {
  return 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

bool measure(std::uint64_t ram) {
  kmm::StaticPlatform platform(g_ram, sizeof g_ram);
  kmm::BootConfig cfg;
  cfg.ram_bytes = ram;
  cfg.platform = &platform;
  cfg.protector = kmm::ProtectorMode::kReclaim;
  kmm::BootError err;
  kmm::Kernel* k = kmm::Kernel::boot(cfg, &err);
  if (k == nullptr) {
    std::printf("boot failed: %s\n", err.what);
    return false;
  }
  const kmm::PhysMem& phys = k->phys();
  const std::uint64_t mem_map = phys.mem_map_bytes();
  const std::uint64_t reserved = std::uint64_t{phys.reserved_pages()} << kmm::kPageShift;

  // The workload: a module kmallocs sizes 8..2048 in turn until half the free pages are gone.
  kmm::owner_t drv = 0;
  k->insmod("drv", 16384, &drv);
  const std::uint64_t free0 = k->zone().free_pages();
  static const std::size_t kSizes[] = {8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024, 2048};
  std::uint64_t objects = 0;
  for (unsigned i = 0; k->zone().free_pages() > free0 / 2; ++i) {
    if (k->kmalloc(kSizes[i % (sizeof kSizes / sizeof kSizes[0])], kmm::GFP_KERNEL, drv) == nullptr) break;
    ++objects;
  }
  std::uint64_t slab_bytes = 0, owner_bytes = 0, payload = 0, slots = 0;
  kmm::SlabAllocator& slab = k->slab();
  for (unsigned id = 0; id < slab.nr_cache_ids(); ++id) {
    const kmm::KmemCache* c = slab.cache(id);
    if (c == nullptr) continue;
    const std::uint64_t nr = c->nr_slabs.load();
    slab_bytes += nr * (kmm::kPageSize << c->order);
    owner_bytes += nr * c->objects;  // one owner byte per slot, in the slab or in its tail pages
    slots += nr * c->objects * c->size;
    payload += c->active_objects() * c->object_size;
  }
  const std::uint64_t slack = slab_bytes - owner_bytes - slots;
  std::printf(
      "| %llu MB | %u-bit | %zu B | %llu B (%.2f %%) | %llu B (%.2f %%) | %zu B | %llu in %llu kB of slabs | %llu B "
      "(%.2f %%) | %llu B (%.2f %%) | %zu B |\n",
      static_cast<unsigned long long>(ram >> 20), static_cast<unsigned>(sizeof(void*) * 8), sizeof(kmm::Page),
      static_cast<unsigned long long>(mem_map), pct(mem_map, ram), static_cast<unsigned long long>(reserved),
      pct(reserved, ram), sizeof(kmm::Kernel), static_cast<unsigned long long>(objects),
      static_cast<unsigned long long>(slab_bytes >> 10), static_cast<unsigned long long>(owner_bytes),
      pct(owner_bytes, ram), static_cast<unsigned long long>(slack), pct(slack, ram), sizeof(kmm::ModuleRegistry));
  (void)payload;
  const bool ok = pct(mem_map, ram) <= 1.6;
  k->shutdown();
  return ok;
}

}  // namespace

int main() {
  std::printf(
      "| RAM | build | struct Page | mem_map | boot reservation | sizeof(Kernel) | workload objects | owner bytes "
      "(protector) | other slab slack | module table |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  bool ok = measure(4u << 20);
  ok = measure(16u << 20) && ok;
  return ok ? 0 : 1;
}

// kmm/fuzz/fuzz_engine.cpp — libFuzzer harness: the engine driven by input bytes read as a
// sequence of operations (issue 10a), every invariant checked after each.
//
// Operations: kmalloc, kzalloc, kfree, krealloc, kmem_cache create/alloc/free/destroy,
// alloc_pages/free_pages, vmalloc/vfree, insmod, rmmod, transfer, idle (collector passes),
// protector mode changes. Only pointers the harness holds are freed, so every report is a
// bug: the report hook traps. A machine of 2 MiB keeps out-of-memory paths in reach. The
// last byte may switch hardening options on (slab/hardening.h): then red zones, poison, the
// quarantine and guard frames must never report damage the harness did not do.
#include <cstdint>
#include <cstring>

#include "base/report.h"
#include "base/text.h"
#include "kernel/kernel.h"

using namespace kmm;

namespace {

constexpr unsigned kSlots = 64;

struct Input {
  const std::uint8_t* p;
  std::size_t n;
  std::uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = v << 8 | byte();
    return v;
  }
};

void trap_on_report(const ErrorReport& r, void*) {
  // The harness never misuses the API; a refused request (size overflow, busy cache) is the
  // only report it may cause.
  if (r.kind != ErrorKind::kSizeOverflow && r.kind != ErrorKind::kCacheNotEmpty && r.kind != ErrorKind::kBadArgument)
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  set_report_hook(trap_on_report, nullptr);
  BootConfig cfg;
  cfg.ram_bytes = 2u << 20;
  cfg.gc_delay_ns = 1000;
  cfg.gc_slice_pages = 64;
  cfg.protector = ProtectorMode::kReclaimUnreachable;
  // The input's last byte, when its top bit is set, picks hardening options (so the debug
  // caches' paths are fuzzed too, and an input without it runs as before): bit 0
  // freelist_hardened, 1 redzone, 2 poison, 3 a 16 KiB quarantine, 4 guard pages.
  if (std::uint8_t h = size != 0 ? data[size - 1] : 0; h & 0x80) {
    cfg.hardening.freelist_hardened = h & 0x01;
    cfg.hardening.redzone = h & 0x02;
    cfg.hardening.poison = h & 0x04;
    cfg.hardening.quarantine_bytes = h & 0x08 ? 16u << 10 : 0;
    cfg.hardening.guard_pages = h & 0x10;
  }
  Kernel* k = Kernel::boot(cfg, nullptr);
  if (k == nullptr) __builtin_trap();
  Input in{data, size};
  void* blocks[kSlots] = {};
  std::uint64_t vm_areas[kSlots] = {};
  void* pages[kSlots] = {};
  owner_t block_seen[kSlots] = {};  // each block's owner after the last op (see below)
  owner_t page_seen[kSlots] = {};
  KmemCache* caches[4] = {};
  owner_t owners[4] = {kOwnerKernel, kOwnerKernel, kOwnerKernel, kOwnerKernel};
  const char* names[4] = {"mod_a", "mod_b", "mod_c", "mod_d"};
  StackText<512> why;
  while (in.n > 0) {
    std::uint8_t op = in.byte();
    unsigned slot = in.byte() % kSlots;
    owner_t who = owners[in.byte() % 4];
    switch (op % 14) {
      case 0:
      case 1: {
        if (blocks[slot]) break;
        std::size_t sz = in.u32() % (op % 2 ? 9000 : 300000);
        blocks[slot] = op % 2 ? k->kzalloc(sz, GFP_KERNEL, who) : k->kmalloc(sz, GFP_KERNEL, who);
        if (blocks[slot] == ZERO_SIZE_PTR) blocks[slot] = nullptr;
        if (blocks[slot] && op % 2) {
          const auto* q = static_cast<const std::uint8_t*>(blocks[slot]);
          for (std::size_t i = 0; i < sz; ++i)
            if (q[i] != 0) __builtin_trap();
        }
        break;
      }
      case 2:
        if (blocks[slot] && k->owner_of(blocks[slot]) != kOwnerFree) k->kfree(blocks[slot]);
        blocks[slot] = nullptr;
        break;
      case 3:
        if (blocks[slot] && k->owner_of(blocks[slot]) != kOwnerFree) {
          void* q = k->krealloc(blocks[slot], in.u32() % 20000, GFP_KERNEL, kOwnerKernel);
          if (q != nullptr) blocks[slot] = q == ZERO_SIZE_PTR ? nullptr : q;
        }
        break;
      case 4: {
        unsigned c = slot % 4;
        if (caches[c] == nullptr) {
          char name[16] = "fuzz-c0";
          name[6] = static_cast<char>('0' + c);
          caches[c] = k->kmem_cache_create(name, 1 + in.u32() % 3000, 0, 0);
        } else if (k->kmem_cache_destroy(caches[c])) {
          caches[c] = nullptr;
        }
        break;
      }
      case 5:
        if (!blocks[slot] && caches[slot % 4]) blocks[slot] = k->kmem_cache_alloc(caches[slot % 4], GFP_KERNEL, who);
        break;
      case 6:
        if (!pages[slot])
          pages[slot] = k->alloc_pages(in.byte() % 6, GFP_KERNEL, who);
        else {
          if (k->owner_of(pages[slot]) != kOwnerFree) k->free_pages(pages[slot]);
          pages[slot] = nullptr;
        }
        break;
      case 7:
        if (!vm_areas[slot])
          vm_areas[slot] = k->vmalloc(1 + in.u32() % 200000, who);
        else {
          // Still a live area's start (as owner_of says of a block): the collector may have
          // reclaimed it, and a newer area may now cover its address (reclaimed-vmalloc-reused).
          const VmArea* a = k->vmalloc_space().find(vm_areas[slot]);
          if (a != nullptr && a->addr == vm_areas[slot]) k->vfree(vm_areas[slot]);
          vm_areas[slot] = 0;
        }
        break;
      case 8: {
        unsigned m = slot % 4;
        owner_t o;
        if (k->insmod(names[m], 4096, &o) == ModuleError::kOk) owners[m] = o;
        break;
      }
      case 9: {
        unsigned m = slot % 4;
        if (k->rmmod(names[m]) == ModuleError::kOk) owners[m] = kOwnerKernel;
        break;
      }
      case 10:
        k->idle(in.byte() * 1000ull);
        break;
      case 11:
        if (blocks[slot] && k->owner_of(blocks[slot]) != kOwnerFree) k->transfer(blocks[slot], who);
        break;
      case 12:
        k->set_protector(static_cast<ProtectorMode>(in.byte() % 4));
        break;
      case 13:
        if (blocks[slot] && blocks[(slot + 1) % kSlots] && k->ksize(blocks[slot]) >= sizeof(void*))
          std::memcpy(blocks[slot], &blocks[(slot + 1) % kSlots], sizeof(void*));
        break;
    }
    // Blocks the collector reclaimed are gone: forget them at once. owner_of saying free is
    // not enough once another op has run: the frame may be reused, by another owner, and a
    // later free of the stale pointer is then the harness's misuse, which kmm reports (the
    // engine fuzzer's CI failure: free_pages of a module's reclaimed page, reused meanwhile).
    // A slot's owner changes legitimately only by the op on that slot (allocation, krealloc,
    // kmem_cache_alloc, transfer, alloc_pages); any other change, or free, means reclaimed.
    const unsigned kind = op % 14;
    for (unsigned s = 0; s < kSlots; ++s) {
      bool block_op = s == slot && (kind <= 1 || kind == 3 || kind == 5 || kind == 11);
      if (blocks[s] != nullptr) {
        owner_t o = k->owner_of(blocks[s]);
        if (o == kOwnerFree || (!block_op && o != block_seen[s]))
          blocks[s] = nullptr;
        else
          block_seen[s] = o;
      }
      if (pages[s] != nullptr) {
        owner_t o = k->owner_of(pages[s]);
        if (o == kOwnerFree || (!(s == slot && kind == 6) && o != page_seen[s]))
          pages[s] = nullptr;
        else
          page_seen[s] = o;
      }
    }
    if (!k->check_invariants(&why)) {
      write_report_text(why.data(), why.size());
      __builtin_trap();
    }
  }
  k->shutdown();
  set_report_hook(nullptr, nullptr);
  return 0;
}

// tests/arm/pt_agree.cpp — the modelled ARMv7 page tables and the real 32-bit build agree
// (issue 4, part 3). One fixed scenario through vm/ (the MMU model kmm's scenarios use):
// build an ARMv7 short-descriptor table in frames of a static buffer standing for physical
// memory, map a 16 MB supersection, 1 MB sections, 64 KB large pages and 4 KB pages (kernel
// and user, read-only and read-write), translate a list of addresses (hits, permission
// faults, translation faults), try to unmap pieces of blocks (refused) and translate again, dump
// the table (ptdump) and count its table frames. Everything printed is a modelled
// address or descriptor, never a host pointer, so the host (64-bit) build and the armhf build
// under qemu-arm must print the same bytes; scripts/arm-agree.sh runs both and compares
// (`make test-arm` calls it).
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "base/text.h"
#include "vm/frame_source.h"
#include "vm/ptdump.h"
#include "vm/walk.h"

namespace {

using namespace kmm;
using namespace kmm::vm;

constexpr phys_addr_t kFramesBase = 0x80000000u;  // where the table frames "are"
constexpr std::size_t kFrames = 256;
alignas(16384) unsigned char g_frames[kFrames * 4096];

// First fit over a bitmap; frames are zeroed by the walker, not here (filled with 0xA5).
class StaticFrames final : public FrameSource {
 public:
  StaticFrames() { std::memset(g_frames, 0xA5, sizeof g_frames); }
  bool alloc_frame(phys_addr_t* pa, void** host) override { return alloc_frames(0, pa, host); }
  bool alloc_frames(unsigned order, phys_addr_t* pa, void** host) override {
    const std::size_t n = std::size_t{1} << order;
    for (std::size_t f = 0; f + n <= kFrames; f += n) {
      bool free = true;
      for (std::size_t k = 0; k < n && free; ++k) free = !used_[f + k];
      if (!free) continue;
      for (std::size_t k = 0; k < n; ++k) used_[f + k] = true;
      *pa = kFramesBase + f * 4096;
      *host = g_frames + f * 4096;
      return true;
    }
    return false;
  }
  void free_frame(phys_addr_t pa) override { free_frames(pa, 0); }
  void free_frames(phys_addr_t pa, unsigned order) override {
    const std::size_t f = static_cast<std::size_t>((pa - kFramesBase) / 4096);
    for (std::size_t k = 0; k < (std::size_t{1} << order); ++k) used_[f + k] = false;
  }
  void* phys_to_host(phys_addr_t pa) override {
    if (pa < kFramesBase || pa - kFramesBase >= sizeof g_frames) return nullptr;
    return g_frames + static_cast<std::size_t>(pa - kFramesBase);
  }

 private:
  bool used_[kFrames] = {};
};

StackText<8192> g_out;
void flush() {
  std::fwrite(g_out.data(), 1, g_out.size(), stdout);
  g_out.clear();
}

void step(const char* what, VmError e) {
  g_out.str(what).str(": ").str(vm_error_name(e)).nl();
  flush();
}

void walk(const PageTable& pt, std::uint64_t va, AccessType access, Privilege priv) {
  g_out.str("translate 0x")
      .hex(va, 8)
      .str(access == AccessType::kWrite ? " write" : " read")
      .str(priv == Privilege::kUser ? " user" : " kernel")
      .nl();
  print_walk(pt.translate(va, access, priv), g_out);
  flush();
}

void dump(const PageTable& pt, std::uint64_t from, std::uint64_t to) {
  g_out.str("ptdump 0x").hex(from, 8).str("..0x").hex(to, 8).nl();
  ptdump(pt, from, to, nullptr, 0, g_out);
  flush();
}

}  // namespace

int main() {
  StaticFrames frames;
  PageTable pt;
  PageTableConfig cfg;
  cfg.format = Format::kArmv7Short;
  step("init armv7 short-descriptor", pt.init(&frames, cfg));
  MapAttrs krw;
  MapAttrs urw;
  urw.user = true;
  MapAttrs uro = urw;
  uro.writable = false;
  MapAttrs uxn = urw;
  uxn.executable = true;
  uxn.global = false;

  step("map kernel 0xC0000000 -> 0x00000000, 16M (supersection)", pt.map(0xC0000000u, 0x0u, 16u << 20, krw));
  step("map kernel 0xC1000000 -> 0x01000000, 3M (sections)", pt.map(0xC1000000u, 0x01000000u, 3u << 20, krw));
  step("map user 0x00010000 -> 0x02010000, 64K+8K rw", pt.map(0x00010000u, 0x02010000u, 72u << 10, urw));
  step("map user 0x00400000 -> 0x02400000, 128K ro", pt.map(0x00400000u, 0x02400000u, 128u << 10, uro));
  step("map user 0x00800000 -> 0x03000000, 12K exec, not global", pt.map(0x00800000u, 0x03000000u, 12u << 10, uxn));
  step("map again 0x00010000 (overlap)", pt.map(0x00010000u, 0x05000000u, 4096, urw));
  step("map unaligned 0x00020800", pt.map(0x00020800u, 0x05000000u, 4096, urw));

  const std::uint64_t vas[] = {0xC0000000u, 0xC0ABCDEFu, 0xC1234567u, 0xC2FFFFFFu, 0xC3000000u,
                               0x00010010u, 0x0001F123u, 0x00021FFFu, 0x00022000u, 0x00400123u,
                               0x00801004u, 0x00803000u, 0xFFFF0000u};
  for (std::uint64_t va : vas) {
    walk(pt, va, AccessType::kRead, Privilege::kKernel);
    walk(pt, va, AccessType::kWrite, Privilege::kUser);
  }

  step("unmap 0xC0100000, 1M (inside the supersection: refused)", pt.unmap(0xC0100000u, 1u << 20));
  step("unmap 0x00011000, 4K (inside the large page: refused)", pt.unmap(0x00011000u, 4096));
  walk(pt, 0xC0100000u, AccessType::kRead, Privilege::kKernel);
  walk(pt, 0xC0200000u, AccessType::kRead, Privilege::kKernel);
  walk(pt, 0x00011000u, AccessType::kRead, Privilege::kUser);
  walk(pt, 0x00012000u, AccessType::kRead, Privilege::kUser);

  dump(pt, 0, 0x01000000u);
  dump(pt, 0xC0000000u, 0xC4000000u);
  g_out.str("table frames ").u(pt.table_frames()).nl();
  flush();
  pt.destroy();
  return 0;
}

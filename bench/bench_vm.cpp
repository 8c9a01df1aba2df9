// bench/bench_vm.cpp — the MMU model's speed (issue 5, "Speed"): a translation that hits the
// TLB, a full table walk on a miss (ARMv7 2 levels, AArch64 4 levels), and demand-paging a
// 64 MB user region (16384 page faults, each a walk, a zeroed frame from the buddy
// allocator and a map). Tables live in frames of a booted machine (KernelFrameSource).
// Targets: hit <= 5 ns, 4-level walk <= 40 ns. Results: docs/BENCHMARKS.md.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernel/kernel.h"
#include "kernel/machine_frames.h"
#include "vm/address_space.h"
#include "vm/kernel_space.h"
#include "vm/walk.h"

namespace {

using namespace kmm;
using namespace kmm::vm;

struct Machine {
  explicit Machine(Format f, std::uint64_t ram = 256ull << 20) {
    BootConfig c;
    c.ram_bytes = ram;
    c.pt = f == Format::kArmv7Short ? PtFormat::kArmv7 : PtFormat::kAarch64;
    c.page_offset = f == Format::kArmv7Short ? 0xC0000000ull : kAarch64PageOffset;
    BootError e;
    k = Kernel::boot(c, &e);
    tables = new KernelFrameSource(k, PG_pgtable);
    data = new KernelFrameSource(k, PG_process);
    KernelSpaceConfig kc;
    kc.format = f;
    kc.page_offset = c.page_offset;
    kc.phys_offset = k->phys().phys_offset();
    kc.ram_bytes = k->phys().size();
    kc.vmalloc_start = k->vmalloc_space().start();
    kc.vmalloc_end = k->vmalloc_space().end();
    ks.init(tables, kc);
  }
  ~Machine() {
    ks.destroy();
    delete tables;
    delete data;
    k->shutdown();
  }
  Kernel* k = nullptr;
  KernelFrameSource* tables = nullptr;
  KernelFrameSource* data = nullptr;
  KernelSpace ks;
};

Format fmt_of(const benchmark::State& s) {
  return s.range(0) == 0 ? Format::kArmv7Short : Format::kAarch64Gran4k;
}
const char* fmt_label(Format f) {
  return f == Format::kArmv7Short ? "armv7" : "aarch64";
}

// A user region of `pages` 4K pages, all faulted in.
struct Process {
  Process(Machine& m, std::uint64_t pages) {
    as.init(m.tables, m.data, &m.ks, 1);
    as.mmap(pages * 4096, kProtRead | kProtWrite, VmaKind::kAnon, 0x00400000, &base);
    for (std::uint64_t i = 0; i < pages; ++i) as.access(base + i * 4096, AccessType::kWrite, Privilege::kUser, tlb);
  }
  ~Process() { as.destroy(&tlb); }
  AddressSpace as;
  Tlb tlb;
  std::uint64_t base = 0;
};

// TLB hit: the same page again and again (the hint slot finds it at once).
void BM_TlbHit(benchmark::State& state) {
  Machine m(fmt_of(state));
  Process p(m, 16);
  phys_addr_t pa = 0;
  std::uint64_t va = p.base + 0x3012;
  translate_pa(p.as.pgd(), p.tlb, va, AccessType::kRead, Privilege::kUser, 1, &pa);
  for (auto _ : state) {
    FaultKind f = translate_pa(p.as.pgd(), p.tlb, va, AccessType::kRead, Privilege::kUser, 1, &pa);
    benchmark::DoNotOptimize(f);
    benchmark::DoNotOptimize(pa);
  }
  state.SetLabel(fmt_label(fmt_of(state)));
}

// TLB hits spread over the 64 entries of a full TLB (LRU stamps updated on every hit).
void BM_TlbHit64Pages(benchmark::State& state) {
  Machine m(fmt_of(state));
  Process p(m, 64);
  phys_addr_t pa = 0;
  unsigned i = 0;
  for (auto _ : state) {
    FaultKind f =
        translate_pa(p.as.pgd(), p.tlb, p.base + (i++ & 63) * 4096, AccessType::kRead, Privilege::kUser, 1, &pa);
    benchmark::DoNotOptimize(f);
    benchmark::DoNotOptimize(pa);
  }
  state.SetLabel(fmt_label(fmt_of(state)));
}

// The table walk alone (what a TLB miss costs): PageTable::translate with its walk record,
// over 4096 pages in a pseudo-random order (tables spread over several frames).
void BM_Walk(benchmark::State& state) {
  Machine m(fmt_of(state));
  Process p(m, 4096);
  std::vector<std::uint64_t> order(4096);
  std::uint64_t x = 12345;
  for (auto& v : order) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    v = p.base + ((x >> 33) % 4096) * 4096 + 0x12;
  }
  unsigned i = 0;
  for (auto _ : state) {
    Walk w = p.as.pgd().translate(order[i++ & 4095], AccessType::kRead, Privilege::kUser);
    benchmark::DoNotOptimize(w.pa);
  }
  state.SetLabel(fmt_of(state) == Format::kArmv7Short ? "armv7, 2 levels" : "aarch64, 4 levels");
}

// A miss through the TLB front end: lookup, walk, insert (the TLB is 64 entries and the
// 4096 pages never fit, so nearly every access misses).
void BM_TlbMissWalkFill(benchmark::State& state) {
  Machine m(fmt_of(state));
  Process p(m, 4096);
  phys_addr_t pa = 0;
  std::uint64_t x = 99;
  for (auto _ : state) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    FaultKind f = translate_pa(p.as.pgd(), p.tlb, p.base + ((x >> 33) % 4096) * 4096, AccessType::kRead,
                               Privilege::kUser, 1, &pa);
    benchmark::DoNotOptimize(f);
  }
  state.counters["hit_rate"] = static_cast<double>(p.tlb.stats().hits) / static_cast<double>(p.tlb.stats().lookups);
  state.SetLabel(fmt_label(fmt_of(state)));
}

// Demand paging a 64 MB region: mmap, touch every page once (16384 faults), exit.
// range(1) == 1: warm, the machine's RAM was touched once before (by the same run, untimed),
// so the host's own page faults on its fresh mapping are not counted; 0: cold, they are.
void BM_DemandPage64M(benchmark::State& state) {
  Machine m(fmt_of(state));
  const std::uint64_t pages = (64ull << 20) / 4096;
  if (state.range(1) == 1) {
    AddressSpace as;
    Tlb tlb;
    std::uint64_t base = 0;
    as.init(m.tables, m.data, &m.ks, 1);
    as.mmap(pages * 4096, kProtRead | kProtWrite, VmaKind::kAnon, 0, &base);
    for (std::uint64_t i = 0; i < pages; ++i) as.access(base + i * 4096, AccessType::kWrite, Privilege::kUser, tlb);
    as.destroy(&tlb);
  }
  for (auto _ : state) {
    AddressSpace as;
    Tlb tlb;
    std::uint64_t base = 0;
    as.init(m.tables, m.data, &m.ks, 1);
    as.mmap(pages * 4096, kProtRead | kProtWrite, VmaKind::kAnon, 0, &base);
    for (std::uint64_t i = 0; i < pages; ++i) as.access(base + i * 4096, AccessType::kWrite, Privilege::kUser, tlb);
    if (as.faults() != pages) state.SkipWithError("not every page faulted");
    state.PauseTiming();
    as.destroy(&tlb);
    state.ResumeTiming();
  }
  state.counters["ns_per_fault"] = benchmark::Counter(
      static_cast<double>(pages), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetLabel(std::string(fmt_label(fmt_of(state))) + (state.range(1) == 1 ? ", warm host RAM" : ", cold host RAM"));
}

}  // namespace

BENCHMARK(BM_TlbHit)->Arg(0)->Arg(1);
BENCHMARK(BM_TlbHit64Pages)->Arg(0)->Arg(1);
BENCHMARK(BM_Walk)->Arg(0)->Arg(1);
BENCHMARK(BM_TlbMissWalkFill)->Arg(0)->Arg(1);
BENCHMARK(BM_DemandPage64M)->Args({0, 0})->Args({0, 1})->Args({1, 1})->Iterations(3)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();

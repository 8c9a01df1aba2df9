// kmm/shim/mallinfo.cpp — glibc's heap-report calls answered with kmm's figures: mallinfo,
// mallinfo2, malloc_stats and malloc_info.
//
// The figures: arena = RAM frames online (the heap kmm has committed), fordblks = free frames
// in the page allocator, uordblks = bytes of live blocks (the per-owner walk of mem_map that
// the exit stats use), hblks/hblkhd = live huge (mmap) blocks and their bytes. keepcost,
// smblks, fsmblks and ordblks have no kmm meaning and are 0 (ordblks: 1 arena). mallinfo
// saturates each field at INT_MAX as glibc's does since 2.35 (its ints wrap otherwise).
// malloc_stats prints kmm's own stats (print_stats) to stderr, where glibc prints its own;
// malloc_info writes glibc's XML layout (version 1, one heap) and accepts only options 0.
//
// Depends on: shim.h, kernel/, POSIX stdio for malloc_info's FILE*.
// Invariant: the tally arrays are used only under g_info_lock; nothing here allocates while
// holding it (the XML is written to the FILE after the lock is dropped).
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "base/spinlock.h"
#include "shim/shim.h"

#define KMM_EXPORT extern "C" __attribute__((visibility("default")))

namespace kmm::shim {
namespace {

SpinLock g_info_lock;
OwnerTally g_ram_tally[kMaxOwners];
OwnerTally g_huge_tally[kMaxOwners];

struct HeapFigures {
  std::uint64_t arena = 0;       // bytes of RAM online
  std::uint64_t free = 0;        // free bytes in the page allocator
  std::uint64_t in_use = 0;      // bytes of live blocks in RAM
  std::uint64_t blocks = 0;      // live blocks in RAM
  std::uint64_t huge_bytes = 0;  // bytes of live huge blocks
  std::uint64_t huge_blocks = 0;
};

}  // namespace

void mallinfo_fork_lock() {
  g_info_lock.lock();
}
void mallinfo_fork_unlock() {
  g_info_lock.unlock();
}

namespace {
HeapFigures figures() {
  HeapFigures f;
  Kernel* k = kernel();
  if (k == nullptr) return f;
  g_info_lock.lock();
  std::memset(g_ram_tally, 0, sizeof g_ram_tally);
  std::memset(g_huge_tally, 0, sizeof g_huge_tally);
  k->usage(g_ram_tally);
  huge_usage(g_huge_tally);
  for (unsigned o = 0; o < kMaxOwners; ++o) {
    f.in_use += g_ram_tally[o].bytes;
    f.blocks += g_ram_tally[o].objects;
    f.huge_bytes += g_huge_tally[o].bytes;
    f.huge_blocks += g_huge_tally[o].objects;
  }
  g_info_lock.unlock();
  const PhysMem& pm = k->phys();
  std::uint64_t online = pm.online_end_pfn() - (pm.end_pfn() - pm.nr_pages());
  f.arena = online * kPageSize;
  f.free = k->zone().free_pages() * kPageSize;
  return f;
}

// mallinfo2's fields are size_t: on a 32-bit target a 64-bit figure saturates rather than wraps.
std::size_t clamp_size(std::uint64_t v) {
  return v > static_cast<std::uint64_t>(SIZE_MAX) ? SIZE_MAX : static_cast<std::size_t>(v);
}

int clamp_int(std::uint64_t v) {
  return v > static_cast<std::uint64_t>(INT_MAX) ? INT_MAX : static_cast<int>(v);
}

}  // namespace
}  // namespace kmm::shim

using namespace kmm;
using namespace kmm::shim;

KMM_EXPORT struct mallinfo2 mallinfo2() noexcept {
  HeapFigures f = figures();
  struct mallinfo2 m;
  std::memset(&m, 0, sizeof m);
  m.arena = clamp_size(f.arena);
  m.ordblks = 1;
  m.hblks = clamp_size(f.huge_blocks);
  m.hblkhd = clamp_size(f.huge_bytes);
  m.uordblks = clamp_size(f.in_use);
  m.fordblks = clamp_size(f.free);
  return m;
}

KMM_EXPORT struct mallinfo mallinfo() noexcept {
  struct mallinfo2 w = mallinfo2();
  struct mallinfo m;
  std::memset(&m, 0, sizeof m);
  m.arena = clamp_int(w.arena);
  m.ordblks = clamp_int(w.ordblks);
  m.hblks = clamp_int(w.hblks);
  m.hblkhd = clamp_int(w.hblkhd);
  m.uordblks = clamp_int(w.uordblks);
  m.fordblks = clamp_int(w.fordblks);
  return m;
}

KMM_EXPORT void malloc_stats() noexcept {
  print_stats(STDERR_FILENO);
}

KMM_EXPORT int malloc_info(int options, FILE* fp) noexcept {
  if (options != 0) {
    errno = EINVAL;
    return -1;
  }
  HeapFigures f = figures();
  unsigned long long system = f.arena + f.huge_bytes;
  std::fprintf(fp,
               "<malloc version=\"1\">\n"
               "<heap nr=\"0\">\n"
               "<sizes>\n"
               "</sizes>\n"
               "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
               "<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n"
               "<system type=\"current\" size=\"%llu\"/>\n"
               "<system type=\"max\" size=\"%llu\"/>\n"
               "<aspace type=\"total\" size=\"%llu\"/>\n"
               "<aspace type=\"mprotect\" size=\"%llu\"/>\n"
               "</heap>\n"
               "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
               "<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n"
               "<total type=\"mmap\" count=\"%llu\" size=\"%llu\"/>\n"
               "<system type=\"current\" size=\"%llu\"/>\n"
               "<system type=\"max\" size=\"%llu\"/>\n"
               "<aspace type=\"total\" size=\"%llu\"/>\n"
               "<aspace type=\"mprotect\" size=\"%llu\"/>\n"
               "</malloc>\n",
               1ull, static_cast<unsigned long long>(f.free), static_cast<unsigned long long>(f.arena),
               static_cast<unsigned long long>(f.arena), static_cast<unsigned long long>(f.arena),
               static_cast<unsigned long long>(f.arena), 1ull, static_cast<unsigned long long>(f.free),
               static_cast<unsigned long long>(f.huge_blocks), static_cast<unsigned long long>(f.huge_bytes), system,
               system, system, system);
  return 0;
}

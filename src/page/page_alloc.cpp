// kmm/page/page_alloc.cpp — fragmentation indices over any page allocator's free blocks, and the
// common end of both allocators' alloc_pages_exact.
#include "page/page_alloc.h"

#include <cstring>

namespace kmm {
namespace {

std::uint64_t isqrt(std::uint64_t x) {
  std::uint64_t r = 0;
  for (std::uint64_t bit = std::uint64_t{1} << 62; bit != 0; bit >>= 2) {
    if (x >= r + bit) {
      x -= r + bit;
      r = (r >> 1) + bit;
    } else {
      r >>= 1;
    }
  }
  return r;
}

struct ContigInfo {
  std::uint64_t free_pages = 0, free_blocks_total = 0, free_blocks_suitable = 0;
};
// mm/vmstat.c fill_contig_page_info().
ContigInfo contig_info(const std::uint64_t nr[kNrOrders], unsigned order) {
  ContigInfo info;
  for (unsigned k = 0; k < kNrOrders; ++k) {
    info.free_blocks_total += nr[k];
    info.free_pages += nr[k] << k;
    if (k >= order) info.free_blocks_suitable += nr[k] << (k - order);
  }
  return info;
}
}  // namespace

Page* finish_exact_alloc(PhysMem* phys, Page* p, std::uint64_t count, gfp_t gfp, std::atomic<std::uint64_t>* failures) {
  if (p == nullptr) {
    failures->fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  if (gfp & __GFP_ZERO)
    std::memset(phys->page_address(p), 0,
                static_cast<std::size_t>(count << kPageShift));  // count frames of RAM: fits size_t
  return p;
}

Watermarks linux_watermarks(std::uint64_t managed_pages, std::uint64_t min_free_kbytes) {
  std::uint64_t managed_kb = managed_pages * (kPageSize / 1024);
  std::uint64_t min_kb = min_free_kbytes;
  if (min_kb == 0) {
    min_kb = isqrt(managed_kb * 16);
    if (min_kb < 128) min_kb = 128;
    if (min_kb > 65536) min_kb = 65536;
  }
  if (min_free_kbytes == ~std::uint64_t{0}) min_kb = 0;  // watermarks off
  std::uint64_t min_pages = min_kb / (kPageSize / 1024);
  // Never reserve more than a quarter of a tiny machine.
  if (min_pages > managed_pages / 4) min_pages = managed_pages / 4;
  return Watermarks{min_pages, min_pages + min_pages / 4, min_pages + min_pages / 2};
}

int fragmentation_index(const std::uint64_t nr[kNrOrders], unsigned order) {
  ContigInfo info = contig_info(nr, order);
  if (info.free_blocks_total == 0) return 0;
  if (info.free_blocks_suitable != 0) return -1000;
  std::uint64_t requested = std::uint64_t{1} << order;
  return static_cast<int>(1000 - (1000 + info.free_pages * 1000 / requested) / info.free_blocks_total);
}

int unusable_index(const std::uint64_t nr[kNrOrders], unsigned order) {
  ContigInfo info = contig_info(nr, order);
  if (info.free_pages == 0) return 1000;  // Linux: no free memory counts as all unusable
  return static_cast<int>((info.free_pages - (info.free_blocks_suitable << order)) * 1000 / info.free_pages);
}

void count_run_blocks(pfn_t base, pfn_t pfn, std::uint64_t count, std::uint64_t out[kNrOrders]) {
  pfn_t end = pfn + static_cast<pfn_t>(count);
  while (pfn < end) {
    unsigned k = 0;
    while (k < kMaxOrder && ((pfn - base) & ((pfn_t{1} << (k + 1)) - 1)) == 0 && pfn + (pfn_t{2} << k) <= end) ++k;
    out[k]++;
    pfn += pfn_t{1} << k;
  }
}

}  // namespace kmm

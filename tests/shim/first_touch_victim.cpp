/* tests/shim/first_touch_victim.cpp — a program whose malloc is kmm (it links libkmm-preload.so):
 * a thread that takes a slab of a size class for a few objects makes one frame of it
 * resident, not two (slab.h, kLazyLink: an owned slab is threaded from its top down, where
 * its owner bytes are, so its first objects share their frame).
 *
 * A new thread (its slabs are fresh: at start no thread has died and given slabs back)
 * allocates three blocks of each of twelve sizes from 16 B to 1 KiB, writes them, and counts
 * with mincore the resident frames of the 64 KiB slab (kMaxOwnedSlabBytes, aligned) each block
 * lies in. Exit 0 when every slab has exactly one; the lines printed say what was seen. Before
 * the change that threads slabs downwards, every slab had two (its first frame, for the
 * objects, and its last, for the owner bytes). Exit 77 (skipped) where transparent huge pages
 * are "always": a first touch may then bring in a whole 2 MiB page, and frames say nothing. */
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace {

constexpr std::uintptr_t kSlabBytes = 64u << 10;
constexpr std::size_t kSizes[] = {16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024};
constexpr int kPerSize = 3;
constexpr int kNrSizes = sizeof kSizes / sizeof kSizes[0];

void* g_blocks[kNrSizes][kPerSize];
int g_failures = 0;

// Resident frames of the slab-aligned 64 KiB around p; -1 when mincore fails.
int resident_frames(const void* p) {
  auto base = reinterpret_cast<std::uintptr_t>(p) & ~(kSlabBytes - 1);
  const long page = sysconf(_SC_PAGESIZE);
  unsigned char vec[kSlabBytes / 4096];
  if (page != 4096 || mincore(reinterpret_cast<void*>(base), kSlabBytes, vec) != 0) return -1;
  int n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

void* take_slabs(void*) {
  for (int s = 0; s < kNrSizes; ++s) {
    for (int i = 0; i < kPerSize; ++i) {
      g_blocks[s][i] = std::malloc(kSizes[s]);
      if (g_blocks[s][i] != nullptr) std::memset(g_blocks[s][i], 0x5a, kSizes[s]);
    }
  }
  for (int s = 0; s < kNrSizes; ++s) {
    int frames = g_blocks[s][0] != nullptr ? resident_frames(g_blocks[s][0]) : -1;
    bool same_slab = true;
    for (int i = 1; i < kPerSize; ++i) {
      same_slab = same_slab && g_blocks[s][i] != nullptr &&
                  (reinterpret_cast<std::uintptr_t>(g_blocks[s][i]) & ~(kSlabBytes - 1)) ==
                      (reinterpret_cast<std::uintptr_t>(g_blocks[s][0]) & ~(kSlabBytes - 1));
    }
    bool ok = frames == 1 && same_slab;
    std::printf("first_touch: %4zu B: %d of 16 frames of its slab resident%s%s\n", kSizes[s], frames,
                same_slab ? "" : " (blocks in several slabs)", ok ? "" : "  <- want 1");
    g_failures += ok ? 0 : 1;
  }
  for (auto& row : g_blocks)
    for (void* p : row) std::free(p);
  return nullptr;
}

// Whether the kernel backs anonymous memory with huge pages unasked ("[always]").
bool thp_always() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  return std::getline(f, line) && line.find("[always]") != std::string::npos;
}

}  // namespace

int main() {
  if (thp_always()) {
    std::printf("first_touch: skipped: transparent huge pages are \"always\" here\n");
    return 77;
  }
  pthread_t t;
  if (pthread_create(&t, nullptr, take_slabs, nullptr) != 0 || pthread_join(t, nullptr) != 0) {
    std::printf("first_touch: no thread\n");
    return 1;
  }
  std::printf("first_touch: %d of %d size classes with more than one frame resident\n", g_failures, kNrSizes);
  return g_failures == 0 ? 0 : 1;
}

// tests/shim/test_purge.cpp — the shim gives free memory back to the OS (src/shim/purge.cpp):
// malloc_trim(0) at once, and the purge delay (1 s by default) without any call but ordinary
// frees. Resident memory is read from /proc/self/statm, as a user would measure it. This
// program links libkmm-preload.so: kmm is its malloc (gtest's allocations included).
#include <malloc.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "../common/opaque.h"
#include "../common/resident.h"
#include "kmm/kmm.h"

namespace {

using kmm::test::keep;
using kmm::test::opaque;
using kmm::test::rss_bytes;

constexpr std::size_t kMiB = 1u << 20;

// A burst a program might make: 48 MiB in 256 KiB page runs and 16 MiB in 256-byte slab
// objects, every byte written (so every frame is resident).
struct Burst {
  std::vector<void*> blocks;
  void make() {
    blocks.reserve(48 * 4 + 16 * 4096);
    for (int i = 0; i < 48 * 4; ++i) blocks.push_back(keep(std::malloc(opaque(256 * 1024))));
    for (int i = 0; i < 16 * 4096; ++i) blocks.push_back(keep(std::malloc(opaque(256))));
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      ASSERT_NE(blocks[i], nullptr);
      std::memset(blocks[i], 0x5a, i < 48 * 4 ? 256 * 1024 : 256);
    }
  }
  void release() {
    for (void* p : blocks) std::free(p);
    blocks.clear();
    blocks.shrink_to_fit();
  }
};

TEST(Purge, MallocTrimGivesFreeMemoryBack) {
  ASSERT_TRUE(kmm_active());
  Burst b;
  b.make();
  std::uint64_t full = rss_bytes();
  b.release();
  std::uint64_t freed = rss_bytes();
  // Freed, the frames are still resident: the buddy allocator keeps them.
  EXPECT_GT(freed + 16 * kMiB, full) << "full " << full << " freed " << freed;
  EXPECT_EQ(malloc_trim(0), 1);
  std::uint64_t trimmed = rss_bytes();
  EXPECT_LT(trimmed + 56 * kMiB, full) << "full " << full << " trimmed " << trimmed;
  // The memory is usable again: new blocks read and write as before (kmm promises no zeros
  // for malloc; calloc must still zero).
  Burst again;
  again.make();
  auto* z = static_cast<unsigned char*>(keep(std::calloc(opaque(300 * 1024), 1)));
  ASSERT_NE(z, nullptr);
  for (std::size_t i = 0; i < 300 * 1024; ++i) ASSERT_EQ(z[i], 0) << i;
  std::free(z);
  again.release();
  EXPECT_EQ(malloc_trim(0), 1);  // the second burst's frames, resident again, go back too
}

TEST(Purge, FreedMemoryGoesBackAfterThePurgeDelay) {
  ASSERT_TRUE(kmm_active());
  malloc_trim(0);  // start from a trimmed heap
  Burst b;
  b.make();
  std::uint64_t full = rss_bytes();
  b.release();
  // Frees keep coming (a program at work) but the burst's memory is not reused: within the
  // delay nothing is given back, after it (two rounds at most: up to 2 s) it is.
  auto churn = [] {
    for (int i = 0; i < 4096; ++i) std::free(keep(std::malloc(opaque(64))));
  };
  churn();
  EXPECT_GT(rss_bytes() + 16 * kMiB, full) << "given back before the delay";
  std::uint64_t now = rss_bytes();
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(6) && now + 56 * kMiB > full) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    churn();
    now = rss_bytes();
  }
  EXPECT_LT(now + 56 * kMiB, full) << "full " << full << " after 6 s of churn " << now;
}

// The empty slabs a burst of small blocks leaves behind (kept for the next burst of their size,
// within the shared budget) are used for other blocks before the heap grows, and before blocks
// the purge round gave back to the OS are faulted in again (Kernel::grow, GrowStep::kReclaim):
// a burst of page runs after it fits in the memory the program already holds. After the tests
// above the zone holds purged blocks, so both cases are covered (run alone, only the first).
TEST(Purge, KeptEmptySlabsAreUsedBeforeTheHeapGrows) {
  ASSERT_TRUE(kmm_active());
  malloc_trim(0);
  std::vector<void*> small;
  small.reserve(16 * 256);
  for (int i = 0; i < 16 * 256; ++i) {  // 16 MiB of 4 KiB blocks: thread-owned slabs
    void* p = keep(std::malloc(opaque(4096)));
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x5a, 4096);
    small.push_back(p);
  }
  for (void* p : small) std::free(p);
  const std::uint64_t held = rss_bytes();
  std::vector<void*> runs;
  for (int i = 0; i < 14 * 4; ++i) {  // 14 MiB of 256 KiB page runs
    void* p = keep(std::malloc(opaque(256 * 1024)));
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x6b, 256 * 1024);
    runs.push_back(p);
  }
  const std::uint64_t after = rss_bytes();
  // The budget's 8 MiB of empty slabs come back to the page allocator when it runs dry or
  // hands out a purged block; without that, the runs fault in 6.4-6.7 MiB more.
  EXPECT_LT(after, held + 3 * kMiB) << "held " << held << " after " << after;
  for (void* p : runs) std::free(p);
}

// calloc of a page run (8 KiB .. 4 MiB) whose frames read as zero already (never touched, or
// given back by the purge) clears nothing: it costs no resident memory until the program
// writes it, as glibc's calloc of fresh memory does. Before stop 48 every such calloc cleared
// the run, faulting in every page (1 MiB: 256 faults, 1 MiB of RSS). Whatever the path, every
// byte reads zero: fresh, purged, and a run freed dirty and taken again (cleared).
TEST(Purge, CallocOfFramesThatReadZeroTouchesNone) {
  malloc_trim(0);  // every free frame given back: what the heap takes next reads zero
  std::uint64_t before = rss_bytes();
  auto* a = static_cast<unsigned char*>(keep(std::calloc(1, opaque(kMiB))));
  ASSERT_NE(a, nullptr);
  std::uint64_t after = rss_bytes();
  EXPECT_LT(after, before + 256 * 1024) << "calloc of 1 MiB made " << (after - before) / 1024 << " KiB resident";
  for (std::size_t i = 0; i < kMiB; i += 512) ASSERT_EQ(a[i], 0) << i;
  std::memset(a, 0x5a, kMiB);
  std::free(a);
  auto* b = static_cast<unsigned char*>(keep(std::calloc(1, opaque(kMiB))));  // dirty frames, likely a's
  ASSERT_NE(b, nullptr);
  for (std::size_t i = 0; i < kMiB; ++i) ASSERT_EQ(b[i], 0) << i;
  std::memset(b, 0x5a, kMiB);
  std::free(b);
  malloc_trim(0);  // purged: zero again without a clear
  auto* c = static_cast<unsigned char*>(keep(std::calloc(4, opaque(64 * 1024))));
  ASSERT_NE(c, nullptr);
  for (std::size_t i = 0; i < 256 * 1024; ++i) ASSERT_EQ(c[i], 0) << i;
  std::free(c);
}

}  // namespace

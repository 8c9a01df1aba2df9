// The preload shim under guard_pages: this program links libkmm-preload.so and runs with
// KMM_OPTIONS=guard_pages=on (tests/shim/CMakeLists.txt). Huge blocks (src/shim/huge.cpp,
// over 4 MiB) are followed by a PROT_NONE page and their slack is patterned: an overrun past
// the pages faults at once, one into the slack is reported at free and at realloc, and the
// malloc family keeps glibc's semantics on them (usable size, zeroing, alignment, realloc
// growing and shrinking through mremap). Page runs (8 KiB .. 4 MiB, src/shim/alloc.cpp's
// resize over Kmalloc::resize_guarded) keep the size asked for through realloc: growth within
// the frames stays in place, growth past them moves to a run whose slack starts at the new
// size, not at the room the shim leaves for the next growth.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "../common/fault_probe.h"
#include "../common/opaque.h"
#include "kmm/kmm.h"

namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t kHuge = (std::size_t{5} << 20) + 123;  // over 4 MiB, not page-aligned

using kmm::test::keep;    // the compiler may drop a malloc whose result is unused, or a pair
using kmm::test::opaque;  // a size it cannot see, so the call is made as written
// A store the compiler cannot drop as dead (it is followed by free or realloc).
void poke(char* p, std::size_t i) {
  *static_cast<volatile char*>(p + i) = 1;
}
std::size_t page_round(std::size_t n) {
  return (n + kPage - 1) & ~(kPage - 1);
}

TEST(HugeGuard, OptionIsOn) {
  // The death tests below mean nothing if the options did not reach the shim: ask the heap
  // what it runs with (its kmalloc layer's guard platform), not the environment.
  ASSERT_EQ(kmm_active(), 1) << "kmm is not this process's malloc";
  kmm_hardening h{};
  ASSERT_EQ(kmm_hardening_options(&h), 0);
  EXPECT_EQ(h.guard_pages, 1);
  // Only guard_pages was asked for (tests/shim/CMakeLists.txt): the others stay off.
  EXPECT_EQ(h.freelist_hardened, 0);
  EXPECT_EQ(h.redzone, 0);
  EXPECT_EQ(h.poison, 0);
  EXPECT_EQ(h.quarantine_bytes, 0u);
}

TEST(HugeGuard, UsableSizeIsTheSizeAskedAndAllOfItIsWritable) {
  auto* p = static_cast<char*>(malloc(opaque(kHuge)));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(malloc_usable_size(p), kHuge);
  std::memset(p, 0x5a, kHuge);  // every usable byte: no false alarm at free
  free(p);
}

TEST(HugeGuard, CallocIsZeroAndAlignedBlocksAreGuardedToo) {
  auto* z = static_cast<unsigned char*>(calloc(opaque(kHuge), 1));
  ASSERT_NE(z, nullptr);
  for (std::size_t i = 0; i < kHuge; i += 4093) ASSERT_EQ(z[i], 0u) << i;
  EXPECT_EQ(z[kHuge - 1], 0u);
  free(z);
  void* a = nullptr;
  ASSERT_EQ(posix_memalign(&a, std::size_t{1} << 21, opaque(kHuge)), 0);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % (std::size_t{1} << 21), 0u);
  EXPECT_EQ(malloc_usable_size(a), kHuge);
  std::memset(a, 1, kHuge);
  free(a);
}

TEST(HugeGuard, ReallocGrowsAndShrinksKeepingContentsAndGuard) {
  auto* p = static_cast<unsigned char*>(malloc(opaque(kHuge)));
  ASSERT_NE(p, nullptr);
  for (std::size_t i = 0; i < kHuge; ++i) p[i] = static_cast<unsigned char>(i * 7);
  std::size_t sizes[] = {(std::size_t{9} << 20) + 1, (std::size_t{6} << 20) + 77, std::size_t{1} << 20, 4000};
  std::size_t kept = kHuge;
  for (std::size_t n : sizes) {
    p = static_cast<unsigned char*>(realloc(p, opaque(n)));
    ASSERT_NE(p, nullptr);
    if (n < kept) kept = n;
    for (std::size_t i = 0; i < kept; i += 511) ASSERT_EQ(p[i], static_cast<unsigned char>(i * 7)) << n << " " << i;
    if (n > (std::size_t{4} << 20)) {
      EXPECT_EQ(malloc_usable_size(p), n);
      std::memset(p + kept, 0x11, n - kept);  // the grown part is writable up to the size asked
      for (std::size_t i = kept; i < n; ++i) p[i] = static_cast<unsigned char>(i * 7);
      kept = n;
    }
  }
  free(p);
}

TEST(PageRunGuard, ReallocKeepsTheSizeAskedAndGrowsInPlaceWithinTheFrames) {
  auto* p = static_cast<unsigned char*>(malloc(opaque(9000)));  // 3 frames + guard
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(malloc_usable_size(p), 9000u);
  for (std::size_t i = 0; i < 9000; ++i) p[i] = static_cast<unsigned char>(i);
  auto* q = static_cast<unsigned char*>(realloc(p, opaque(12000)));
  ASSERT_EQ(q, p) << "12000 bytes still fit the 3 frames";
  EXPECT_EQ(malloc_usable_size(p), 12000u);
  std::memset(p + 9000, 3, 3000);
  // Past the frames: a new run, with room for growth, but usable is what was asked.
  q = static_cast<unsigned char*>(realloc(p, opaque(13000)));
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(malloc_usable_size(q), 13000u);
  for (std::size_t i = 0; i < 9000; ++i) ASSERT_EQ(q[i], static_cast<unsigned char>(i)) << i;
  std::memset(q + 12000, 4, 1000);
  // The room left (24000 bytes asked of the page allocator, twice the 12000 it had: 6 frames)
  // takes the next growth.
  auto* r = static_cast<unsigned char*>(realloc(q, opaque(16000)));
  EXPECT_EQ(r, q);
  EXPECT_EQ(malloc_usable_size(r), 16000u);
  std::memset(r, 5, 16000);
  free(r);
}

TEST(PageRunGuardDeathTest, AnOverrunPastTheSizeAReallocAskedForIsReported) {
  EXPECT_DEATH(
      {
        auto* p = keep(static_cast<char*>(malloc(opaque(12000))));
        p = keep(static_cast<char*>(realloc(p, opaque(13000))));  // moved, with room for growth
        poke(p, 13000);
        free(p);
      },
      "heap corruption in free.*large block overrun: byte 13000 of a block of 13000 bytes");
}

// A run within a page of 4 MiB would need a frame past the largest buddy block for its guard:
// such blocks are guarded mappings instead (the reviewer's malloc(4194000) was an unguarded
// run whose usable size was 4 MiB, and a write past it reached the next block).
TEST(PageRunGuard, BlocksWithinAPageOf4MiBAreGuardedToo) {
  for (std::size_t n : {std::size_t{4194000}, std::size_t{4} << 20, (std::size_t{4} << 20) - kPage + 1}) {
    auto* p = static_cast<char*>(malloc(opaque(n)));
    ASSERT_NE(p, nullptr) << n;
    EXPECT_EQ(malloc_usable_size(p), n);
    std::memset(p, 7, n);
    free(p);
  }
}

TEST(PageRunGuardDeathTest, AWritePastABlockOf4MiBFaults) {
  EXPECT_EXIT(
      {
        const std::size_t n = std::size_t{4} << 20;
        auto* p = keep(static_cast<char*>(malloc(opaque(n))));
        if (p == nullptr) kmm::test::allocation_failed("malloc(4 MiB)");
        kmm::test::expect_fault_at(p + n);
        poke(p, n);
        _exit(0);
      },
      testing::KilledBySignal(SIGSEGV), kmm::test::kFaultAtExpectedAddress);
}

// memalign's block is a power of two (its alignment comes from that); the size asked for is
// what it answers for, and what a write past is measured against.
TEST(PageRunGuard, AnAlignedRunKeepsTheSizeAskedFor) {
  void* a = nullptr;
  ASSERT_EQ(posix_memalign(&a, 16384, opaque(10000)), 0);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % 16384, 0u);
  EXPECT_EQ(malloc_usable_size(a), 10000u);
  std::memset(a, 1, 10000);
  free(a);
}

TEST(PageRunGuardDeathTest, AWritePastTheSizeAnAlignedRunWasAskedForIsReported) {
  EXPECT_DEATH(
      {
        void* a = nullptr;
        if (posix_memalign(&a, 16384, opaque(10000)) != 0) kmm::test::allocation_failed("posix_memalign");
        poke(keep(static_cast<char*>(a)), 10000);
        free(a);
      },
      "heap corruption in free.*large block overrun: byte 10000 of a block of 10000 bytes");
}

TEST(HugeGuardDeathTest, WriteOnePagePastTheBlockFaults) {
  EXPECT_EXIT(
      {
        auto* p = keep(static_cast<char*>(malloc(opaque(kHuge))));
        if (p == nullptr) kmm::test::allocation_failed("malloc(kHuge)");
        kmm::test::expect_fault_at(p + page_round(kHuge));
        poke(p, page_round(kHuge));  // the guard page
        _exit(0);
      },
      testing::KilledBySignal(SIGSEGV), kmm::test::kFaultAtExpectedAddress);
}

TEST(HugeGuardDeathTest, WriteIntoTheSlackIsReportedAtFree) {
  EXPECT_DEATH(
      {
        auto* p = keep(static_cast<char*>(malloc(opaque(kHuge))));
        poke(p, kHuge);  // one byte past the size asked for, before the guard page
        free(p);
      },
      "heap corruption in free.*huge block overrun: byte 5243003 of a block of 5243003 bytes was written \\(slack");
}

TEST(HugeGuardDeathTest, WriteIntoTheSlackIsReportedAtRealloc) {
  EXPECT_DEATH(
      {
        auto* p = keep(static_cast<char*>(malloc(opaque(kHuge))));
        poke(p, page_round(kHuge) - 1);
        p = static_cast<char*>(realloc(p, opaque(std::size_t{8} << 20)));
        keep(p);
      },
      "heap corruption in realloc.*huge block overrun: byte 5246975");
}

TEST(HugeGuardDeathTest, GrownBlockIsGuardedAtItsNewEnd) {
  EXPECT_EXIT(
      {
        auto* p = keep(static_cast<char*>(malloc(opaque(kHuge))));
        if (p == nullptr) kmm::test::allocation_failed("malloc(kHuge)");
        std::size_t n = (std::size_t{7} << 20) + 5;
        p = keep(static_cast<char*>(realloc(p, opaque(n))));
        if (p == nullptr) kmm::test::allocation_failed("realloc to 7 MiB + 5");
        poke(p, n - 1);
        kmm::test::expect_fault_at(p + page_round(n));
        poke(p, page_round(n));
        _exit(0);
      },
      testing::KilledBySignal(SIGSEGV), kmm::test::kFaultAtExpectedAddress);
}

}  // namespace

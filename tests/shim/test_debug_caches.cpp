// The preload shim with debug caches (KMM_OPTIONS=redzone=on:quarantine=512M:ram=64M, from
// tests/shim/CMakeLists.txt): what the slab tests prove on a modelled machine, in a real
// process whose malloc is kmm.
// - memalign's block is a power of two, but its red zone starts at the size asked for;
// - a realloc that shrinks in place moves the red zone down with the size;
// - an overflow past the red zone that rewrites the size kept after it is still caught;
// - the quarantine asked for (512M) is cut to a quarter of ram, and a program that fills
//   ram, frees half and asks for it again gets it: the quarantine is emptied, not NULL
//   returned (the reviewer's churn got NULL with 59 MB waiting in it).
#include <malloc.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../common/fault_probe.h"
#include "../common/opaque.h"
#include "kmm/kmm.h"

namespace {

using kmm::test::keep;
using kmm::test::opaque;

void poke(char* p, std::size_t i, char v = 1) {
  *static_cast<volatile char*>(p + i) = v;
}

TEST(DebugCaches, OptionsAreOnAndTheQuarantineIsAQuarterOfRam) {
  ASSERT_EQ(kmm_active(), 1) << "kmm is not this process's malloc";
  kmm_hardening h{};
  ASSERT_EQ(kmm_hardening_options(&h), 0);
  EXPECT_EQ(h.redzone, 1);
  EXPECT_GT(h.quarantine_bytes, 0u);
  EXPECT_LE(h.quarantine_bytes, std::uint64_t{16} << 20) << "512M asked, ram=64M";
}

TEST(DebugCaches, AMemalignBlockAndAShrunkBlockAnswerForTheSizeAskedFor) {
  auto* a = static_cast<char*>(memalign(64, opaque(100)));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % 64, 0u);
  EXPECT_EQ(malloc_usable_size(a), 100u);
  std::memset(a, 1, 100);
  free(a);
  auto* p = static_cast<char*>(malloc(opaque(100)));
  ASSERT_NE(p, nullptr);
  std::memset(p, 2, 100);
  auto* q = static_cast<char*>(realloc(p, opaque(75)));
  ASSERT_EQ(q, p) << "a shrink by less than half stays in place";
  EXPECT_EQ(malloc_usable_size(q), 75u);
  for (int i = 0; i < 75; ++i) ASSERT_EQ(q[i], 2) << i;
  q = static_cast<char*>(realloc(q, opaque(100)));  // back up, within the slot: in place again
  ASSERT_EQ(q, p);
  EXPECT_EQ(malloc_usable_size(q), 100u);
  std::memset(q, 3, 100);
  free(q);
}

TEST(DebugCachesDeathTest, AWritePastTheSizeMemalignWasAskedForIsReported) {
  EXPECT_DEATH(
      {
        auto* a = keep(static_cast<char*>(memalign(64, opaque(100))));
        poke(a, 100);
        free(a);
      },
      "heap corruption in free.*red zone overwritten \\(buffer overflow\\): byte 100 of a block of 100");
}

TEST(DebugCachesDeathTest, AWritePastTheSizeAShrinkingReallocAskedForIsReported) {
  EXPECT_DEATH(
      {
        auto* p = keep(static_cast<char*>(malloc(opaque(100))));
        p = keep(static_cast<char*>(realloc(p, opaque(75))));
        poke(p, 75);
        free(p);
      },
      "heap corruption in free.*red zone overwritten \\(buffer overflow\\): byte 75 of a block of 75");
}

TEST(DebugCachesDeathTest, AnOverflowThatRewritesTheKeptSizeIsReported) {
  // Past the 8-byte red zone with the red zone's own fill (0xcc), then zeros: the size kept
  // after it would read as another block's (0xcccccccc, or 0) and hide the overflow.
  for (char fill : {static_cast<char>(0xcc), char{0}}) {
    EXPECT_DEATH(
        {
          auto* p = keep(static_cast<char*>(malloc(opaque(96))));
          for (std::size_t i = 96; i < 96 + 16; ++i) poke(p, i, fill);
          free(p);
        },
        "heap corruption in free.*the size kept after the red zone was overwritten");
  }
}

TEST(DebugCaches, MemoryFreedIntoTheQuarantineIsGivenAgainWhenRamRunsOut) {
  constexpr std::size_t kBlock = 3000;
  std::vector<char*> live;
  live.reserve(std::size_t{64} << 20 >> 11);
  while (char* p = static_cast<char*>(malloc(opaque(kBlock)))) {
    live.push_back(p);
    if (live.size() == live.capacity()) break;
  }
  ASSERT_GT(live.size(), 1000u);
  const std::size_t half = live.size() / 2;
  for (std::size_t i = 0; i < half; ++i) free(live[i]);
  std::size_t got = 0;
  for (std::size_t i = 0; i < half; ++i) {
    live[i] = static_cast<char*>(malloc(opaque(kBlock)));
    if (live[i] != nullptr) ++got;
  }
  for (char* p : live) free(p);
  EXPECT_EQ(got, half) << "freed blocks waited in the quarantine while malloc returned NULL";
}

}  // namespace

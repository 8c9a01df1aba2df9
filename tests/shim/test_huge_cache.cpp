// tests/shim/test_huge_cache.cpp — freed blocks over 4 MiB wait in the huge cache
// (src/shim/huge_cache.cpp): the next request reuses the mapping with its pages resident (no
// page faults: counted with getrusage), smaller requests split it (the rest waits on), larger
// ones are made of several freed mappings moved together, grown by fresh pages for the rest;
// malloc_trim and the purge delay unmap what waits; a double free of a cached block is still
// reported. This program links libkmm-preload.so (kmm is its malloc).
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "../common/opaque.h"
#include "../common/resident.h"
#include "kmm/kmm.h"

namespace {

using kmm::test::keep;
using kmm::test::minor_faults;
using kmm::test::opaque;
using kmm::test::rss_bytes;

constexpr std::size_t kMiB = 1u << 20;

void write_every_page(void* p, std::size_t n) {
  auto* c = static_cast<volatile unsigned char*>(p);
  for (std::size_t off = 0; off < n; off += 4096) c[off] = static_cast<unsigned char>(off >> 12);
}

TEST(HugeCache, FreedMappingIsReusedWithoutFaults) {
  ASSERT_TRUE(kmm_active());
  malloc_trim(0);
  void* a = keep(std::malloc(opaque(12 * kMiB)));
  ASSERT_NE(a, nullptr);
  write_every_page(a, 12 * kMiB);
  std::free(a);
  long before = minor_faults();
  void* b = keep(std::malloc(opaque(12 * kMiB)));
  ASSERT_NE(b, nullptr);
  write_every_page(b, 12 * kMiB);
  long faults = minor_faults() - before;
  EXPECT_EQ(b, a);
  EXPECT_LT(faults, 64) << "3072 pages: a fresh mapping faults each one in";
  // Smaller: the same mapping's start; its 6 MiB tail waits in the cache as a mapping of its
  // own and serves the next request, again with no fault.
  std::free(b);
  void* c = keep(std::malloc(opaque(6 * kMiB)));
  ASSERT_EQ(c, a);
  EXPECT_EQ(malloc_usable_size(c), 6 * kMiB);
  before = minor_faults();
  void* tail = keep(std::malloc(opaque(6 * kMiB)));
  ASSERT_EQ(tail, static_cast<char*>(a) + 6 * kMiB);
  write_every_page(tail, 6 * kMiB);
  EXPECT_LT(minor_faults() - before, 64);
  // Larger than anything cached: the two 6 MiB mappings, moved together by mremap, make the
  // first 12 MiB of a 20 MiB block; only the 8 MiB no freed mapping covered fault in.
  std::free(c);
  std::free(tail);
  auto* d = static_cast<unsigned char*>(keep(std::malloc(opaque(20 * kMiB))));
  ASSERT_NE(d, nullptr);
  EXPECT_GE(malloc_usable_size(d), 20 * kMiB);
  before = minor_faults();
  write_every_page(d, 20 * kMiB);
  long grown = minor_faults() - before;
  EXPECT_GE(grown, 8 * 256 - 64);
  EXPECT_LT(grown, 8 * 256 + 64) << "12 MiB of the block were resident pages of freed mappings";
  std::free(d);
}

// A block made of several freed mappings spans several kernel mappings, which mremap cannot
// grow whole: realloc moves it a mapping at a time into a larger one. Its bytes survive, its
// pages are not faulted in again, and it can be made again from what realloc left.
TEST(HugeCache, ReallocOfABlockMadeOfSeveralMappingsKeepsItsBytesAndPages) {
  ASSERT_TRUE(kmm_active());
  malloc_trim(0);
  void* a = keep(std::malloc(opaque(8 * kMiB)));
  void* b = keep(std::malloc(opaque(6 * kMiB)));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  write_every_page(a, 8 * kMiB);
  write_every_page(b, 6 * kMiB);
  std::free(a);
  std::free(b);
  auto* c = static_cast<unsigned char*>(keep(std::malloc(opaque(14 * kMiB))));
  ASSERT_NE(c, nullptr);
  long before = minor_faults();
  for (std::size_t i = 0; i < 14 * kMiB; i += 512) c[i] = static_cast<unsigned char>(i * 7 >> 9);
  EXPECT_LT(minor_faults() - before, 64) << "made of the two freed mappings' resident pages";
  before = minor_faults();
  auto* d = static_cast<unsigned char*>(std::realloc(c, opaque(30 * kMiB)));
  ASSERT_NE(d, nullptr);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < 14 * kMiB; i += 512) wrong += d[i] != static_cast<unsigned char>(i * 7 >> 9);
  EXPECT_EQ(wrong, 0u);
  EXPECT_LT(minor_faults() - before, 64) << "moved, not copied: no page of the old block faults";
  write_every_page(d + 14 * kMiB, 16 * kMiB);
  // Shrinking such a block works too.
  auto* e = static_cast<unsigned char*>(std::realloc(d, opaque(9 * kMiB)));
  ASSERT_NE(e, nullptr);
  wrong = 0;
  for (std::size_t i = 0; i < 9 * kMiB; i += 512) wrong += e[i] != static_cast<unsigned char>(i * 7 >> 9);
  EXPECT_EQ(wrong, 0u);
  std::free(e);
}

// A block made of several freed mappings: its remap fails with EFAULT before the fallback
// succeeds. Successful calls leave errno as it was (glibc's do; the review's loop saw 10,539
// successful mallocs set it to EFAULT).
TEST(HugeCache, SuccessfulCallsLeaveErrnoAlone) {
  ASSERT_TRUE(kmm_active());
  malloc_trim(0);
  void* a = keep(std::malloc(opaque(6 * kMiB)));
  void* b = keep(std::malloc(opaque(6 * kMiB)));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  write_every_page(a, 6 * kMiB);
  write_every_page(b, 6 * kMiB);
  std::free(a);
  std::free(b);
  void* c = keep(std::malloc(opaque(11 * kMiB)));
  ASSERT_NE(c, nullptr);
  write_every_page(c, 11 * kMiB);
  std::free(c);
  errno = 0;
  void* d = keep(std::malloc(opaque(20 * kMiB)));
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(errno, 0) << "malloc";
  errno = 0;
  void* e = std::realloc(d, opaque(40 * kMiB));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(errno, 0) << "realloc";
  std::free(e);
}

// calloc over 4 MiB once counted on a fresh mapping being zero: a reused one handed a freed
// block's bytes to calloc. Same size, smaller (trimmed) and larger (grown) reuse, each checked
// to be a reuse, each read back byte by byte.
std::size_t nonzero_bytes(const void* p, std::size_t n) {
  auto* c = static_cast<const volatile unsigned char*>(p);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) bad += c[i] != 0;
  return bad;
}

TEST(HugeCache, CallocOfAReusedMappingReadsZero) {
  ASSERT_TRUE(kmm_active());
  malloc_trim(0);
  for (std::size_t second : {12 * kMiB, 7 * kMiB, 20 * kMiB}) {
    void* a = keep(std::malloc(opaque(12 * kMiB)));
    ASSERT_NE(a, nullptr);
    // Through a volatile pointer: a memset right before free is a dead store to the compiler.
    auto* fill = static_cast<volatile unsigned char*>(a);
    for (std::size_t i = 0; i < 12 * kMiB; i += 8) fill[i] = 0x5a;
    std::free(a);
    void* b = keep(std::calloc(1, opaque(second)));
    ASSERT_NE(b, nullptr);
    if (second <= 12 * kMiB) {
      EXPECT_EQ(b, a) << "the freed mapping is reused";
    }
    EXPECT_EQ(nonzero_bytes(b, second), 0u) << "calloc of " << second / kMiB << " MiB after a free of 12 MiB";
    std::free(b);
    malloc_trim(0);
  }
}

TEST(HugeCache, MallocTrimUnmapsWhatWaits) {
  malloc_trim(0);
  void* a = keep(std::malloc(opaque(32 * kMiB)));
  ASSERT_NE(a, nullptr);
  write_every_page(a, 32 * kMiB);
  std::uint64_t live = rss_bytes();
  std::free(a);
  EXPECT_GT(rss_bytes() + 4 * kMiB, live) << "cached: still resident";
  EXPECT_EQ(malloc_trim(0), 1);
  EXPECT_LT(rss_bytes() + 28 * kMiB, live);
}

TEST(HugeCache, PurgeDelayUnmapsWhatWaits) {
  malloc_trim(0);
  void* a = keep(std::malloc(opaque(32 * kMiB)));
  ASSERT_NE(a, nullptr);
  write_every_page(a, 32 * kMiB);
  std::uint64_t live = rss_bytes();
  std::free(a);
  // The default delay is 1 s; frees go on meanwhile (each huge free ticks at once). The first
  // 5 MiB block splits the cached 32 MiB; its 27 MiB tail keeps the time the 32 MiB block was
  // freed and must go; the 5 MiB the loop takes and frees every 200 ms waits on, as it should.
  std::uint64_t now = rss_bytes();
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(5) && now + 24 * kMiB > live) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::free(keep(std::malloc(opaque(5 * kMiB))));
    now = rss_bytes();
  }
  EXPECT_LT(now + 24 * kMiB, live);
}

// A block freed and taken again well within the purge delay (1 s) waits in the cache every
// time: it is stamped when it is freed. Before stop 48 it carried the clock of the last purge
// round, a delay old whenever a round was due, and the round its own free ran unmapped it at
// once: every second or third reuse faulted all 8,192 pages in again.
TEST(HugeCache, ABlockTakenAgainWithinTheDelayIsNeverUnmapped) {
  malloc_trim(0);
  long refaults = 0;
  for (int round = 0; round < 8; ++round) {
    long before = minor_faults();
    void* a = keep(std::malloc(opaque(32 * kMiB)));
    ASSERT_NE(a, nullptr);
    write_every_page(a, 32 * kMiB);
    if (round > 0) refaults += minor_faults() - before;
    std::free(a);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  EXPECT_LT(refaults, 7 * 64) << "7 reuses of a cached 32 MiB block (8,192 pages each)";
}

TEST(HugeCacheDeathTest, DoubleFreeOfACachedBlockIsReported) {
  EXPECT_DEATH(
      {
        void* volatile alias = keep(std::malloc(opaque(8 * kMiB)));
        std::free(alias);
        std::free(alias);  // its mapping waits in the cache: it is no block of anyone's
      },
      "double free in free: .*a huge block freed before");
}

// realloc of a freed huge block says what free says (before stop 48: "not allocated by kmm").
TEST(HugeCacheDeathTest, ReallocOfACachedBlockIsADoubleFree) {
  EXPECT_DEATH(
      {
        void* volatile alias = keep(std::malloc(opaque(8 * kMiB)));
        std::free(alias);
        keep(std::realloc(alias, opaque(9 * kMiB)));
      },
      "double free in realloc: .*a huge block freed before");
}

}  // namespace

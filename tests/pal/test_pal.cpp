// tests/pal/test_pal.cpp — the platform contract on both backends: MmapPlatform reserve
// (alignment honoured), commit, decommit (contents lost: zero after recommit), protect
// (read-only faults on write), release; StaticPlatform carving, alignment, exhaustion (null),
// release of the last piece, commit/protect limited to the buffer.
#include <signal.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "../common/fault_probe.h"
#include "pal/pal.h"

namespace kmm {
namespace {

std::uintptr_t addr(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p);
}

TEST(MmapPlatform, ReserveHonoursAlignment) {
  Platform& plat = mmap_platform();
  EXPECT_STREQ(plat.name(), "mmap");
  for (std::size_t align : {std::size_t{4096}, std::size_t{64} << 10, std::size_t{2} << 20, std::size_t{16} << 20}) {
    void* p = plat.reserve(std::size_t{1} << 20, align);
    ASSERT_NE(p, nullptr) << align;
    EXPECT_EQ(addr(p) % align, 0u) << align;
    plat.release(p, std::size_t{1} << 20);
  }
  // An alignment below a page is raised to a page.
  void* q = plat.reserve(8192, 16);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(addr(q) % kPageSize, 0u);
  plat.release(q, 8192);
  EXPECT_EQ(plat.reserve(0, 4096), nullptr);
}

TEST(MmapPlatform, CommitDecommitRoundTrip) {
  Platform& plat = mmap_platform();
  constexpr std::size_t kSize = 256 * 1024;
  auto* p = static_cast<unsigned char*>(plat.reserve(kSize, 1 << 20));
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(plat.commit(p, kSize));
  for (std::size_t i = 0; i < kSize; i += 512) EXPECT_EQ(p[i], 0) << "fresh commit reads zero";
  std::memset(p, 0xA5, kSize);
  EXPECT_EQ(p[kSize - 1], 0xA5);
  // Decommit the middle 64 KiB, commit it again: it reads zero, the rest keeps its bytes.
  ASSERT_TRUE(plat.decommit(p + 64 * 1024, 64 * 1024));
  ASSERT_TRUE(plat.commit(p + 64 * 1024, 64 * 1024));
  for (std::size_t i = 64 * 1024; i < 128 * 1024; ++i) ASSERT_EQ(p[i], 0) << i;
  EXPECT_EQ(p[64 * 1024 - 1], 0xA5);
  EXPECT_EQ(p[128 * 1024], 0xA5);
  p[70000] = 7;
  EXPECT_EQ(p[70000], 7);
  plat.release(p, kSize);
}

TEST(MmapPlatform, ProtectRoundTrip) {
  Platform& plat = mmap_platform();
  auto* p = static_cast<unsigned char*>(plat.reserve(2 * kPageSize, kPageSize));
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(plat.commit(p, 2 * kPageSize));
  p[10] = 42;
  ASSERT_TRUE(plat.protect(p, kPageSize, Prot::kRead));
  EXPECT_EQ(p[10], 42) << "read-only memory keeps its contents";
  ASSERT_TRUE(plat.protect(p, kPageSize, Prot::kReadWrite));
  p[10] = 43;
  EXPECT_EQ(p[10], 43);
  plat.release(p, 2 * kPageSize);
}

TEST(MmapPlatformDeathTest, WriteToReadOnlyFaults) {
  Platform& plat = mmap_platform();
  auto* p = static_cast<volatile unsigned char*>(plat.reserve(kPageSize, kPageSize));
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(plat.commit(const_cast<unsigned char*>(p), kPageSize));
  ASSERT_TRUE(plat.protect(const_cast<unsigned char*>(p), kPageSize, Prot::kRead));
  // The fault must be the write to p, nothing else (fault_probe.h): the read before it, of
  // a read-only page, must not fault.
  EXPECT_EXIT(
      {
        if (p[0] != 0) std::exit(0);  // fresh memory reads 0; exiting cleanly fails the test
        test::expect_fault_at(p);
        p[0] = 1;
      },
      testing::KilledBySignal(SIGSEGV), test::kFaultAtExpectedAddress);
  ASSERT_TRUE(plat.protect(const_cast<unsigned char*>(p), kPageSize, Prot::kNone));
  EXPECT_EXIT(
      {
        test::expect_fault_at(p);
        (void)p[0];
      },
      testing::KilledBySignal(SIGSEGV), test::kFaultAtExpectedAddress);
  plat.release(const_cast<unsigned char*>(p), kPageSize);
}

TEST(MmapPlatform, ReserveHugeFailsWithNull) {
  // More address space than any 64-bit host has (or a wrap-around on 32-bit): null, no crash.
  void* p = mmap_platform().reserve(~std::size_t{0} - 4096, 4096);
  EXPECT_EQ(p, nullptr);
}

alignas(65536) unsigned char g_buffer[64 * 1024];  // 64 KiB aligned: the carving below is exact

TEST(StaticPlatform, CarvesAlignedPiecesUntilExhausted) {
  StaticPlatform plat(g_buffer, sizeof g_buffer);
  EXPECT_STREQ(plat.name(), "static");
  EXPECT_EQ(plat.used(), 0u);
  void* a = plat.reserve(100, 16);  // alignment raised to a page
  EXPECT_EQ(a, g_buffer);
  EXPECT_EQ(plat.used(), 100u);
  void* b = plat.reserve(4096, 8192);
  EXPECT_EQ(b, g_buffer + 8192);
  EXPECT_EQ(plat.used(), 8192u + 4096);
  void* c = plat.reserve(4096, 4096);
  EXPECT_EQ(c, g_buffer + 12288);
  // 64 KiB - 16 KiB left: 48 KiB fits exactly, then nothing more.
  EXPECT_EQ(plat.reserve(48 * 1024 + 1, 4096), nullptr);
  void* d = plat.reserve(48 * 1024, 4096);
  EXPECT_EQ(d, g_buffer + 16384);
  EXPECT_EQ(plat.used(), sizeof g_buffer);
  EXPECT_EQ(plat.reserve(1, 4096), nullptr);
  EXPECT_EQ(plat.reserve(0, 4096), nullptr);
}

TEST(StaticPlatform, AlignmentBeyondBufferFails) {
  StaticPlatform plat(g_buffer + 4096, sizeof g_buffer - 4096);
  void* p = plat.reserve(4096, std::size_t{1} << 20);
  // The first 1 MiB boundary at or after the buffer start is outside a 60 KiB buffer unless the
  // buffer itself happens to start on one.
  if (addr(g_buffer + 4096) % (std::size_t{1} << 20) != 0) {
    EXPECT_EQ(p, nullptr);
    EXPECT_EQ(plat.used(), 0u) << "a failed reserve takes nothing";
  }
}

TEST(StaticPlatform, ReleaseOfLastPieceGivesItBack) {
  StaticPlatform plat(g_buffer, sizeof g_buffer);
  void* a = plat.reserve(8192, 4096);
  void* b = plat.reserve(8192, 4096);
  ASSERT_NE(b, nullptr);
  plat.release(a, 8192);  // not the last piece: kept
  EXPECT_EQ(plat.used(), 16384u);
  plat.release(b, 8192);
  EXPECT_EQ(plat.used(), 8192u);
  EXPECT_EQ(plat.reserve(8192, 4096), b) << "the released piece is handed out again";
}

TEST(StaticPlatform, CommitAndProtectInsideOnly) {
  StaticPlatform plat(g_buffer, sizeof g_buffer);
  void* a = plat.reserve(8192, 4096);
  EXPECT_TRUE(plat.commit(a, 8192));
  EXPECT_TRUE(plat.decommit(a, 8192));
  EXPECT_TRUE(plat.protect(a, 8192, Prot::kReadWrite));
  EXPECT_FALSE(plat.protect(a, 8192, Prot::kRead)) << "a static buffer cannot be made read-only";
  EXPECT_FALSE(plat.protect(a, 8192, Prot::kNone));
  EXPECT_FALSE(plat.commit(g_buffer + sizeof g_buffer - 4096, 8192)) << "runs past the buffer";
  EXPECT_FALSE(plat.commit(reinterpret_cast<void*>(addr(g_buffer) - 4096), 4096));
  EXPECT_TRUE(plat.commit(g_buffer, sizeof g_buffer));
  std::memset(a, 0x5A, 8192);
  EXPECT_EQ(static_cast<unsigned char*>(a)[8191], 0x5A);
}

}  // namespace
}  // namespace kmm

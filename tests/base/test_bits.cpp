// tests/base/test_bits.cpp — bit tricks (is_pow2, round_up_pow2, round_up, ilog2, get_order,
// pages_for, mul_overflows) and the SpinLock (mutual exclusion across threads, try_lock).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

#include "base/bits.h"
#include "base/spinlock.h"

namespace kmm {
namespace {

static_assert(kPageSize == 4096 && (std::size_t{1} << kPageShift) == kPageSize);

TEST(Bits, Pow2) {
  EXPECT_FALSE(is_pow2(0));
  EXPECT_TRUE(is_pow2(1));
  EXPECT_TRUE(is_pow2(4096));
  EXPECT_FALSE(is_pow2(4097));
  EXPECT_TRUE(is_pow2(std::uint64_t{1} << 63));
  EXPECT_EQ(round_up_pow2(0), 1u);
  EXPECT_EQ(round_up_pow2(1), 1u);
  EXPECT_EQ(round_up_pow2(3), 4u);
  EXPECT_EQ(round_up_pow2(12000), 16384u);
  EXPECT_EQ(round_up_pow2(16384), 16384u);
}

TEST(Bits, RoundUpAndLog) {
  EXPECT_EQ(round_up(0, 8), 0u);
  EXPECT_EQ(round_up(1, 8), 8u);
  EXPECT_EQ(round_up(40, 8), 40u);
  EXPECT_EQ(round_up(41, 64), 64u);
  EXPECT_EQ(round_up(100, 24), 120u);
  EXPECT_EQ(ilog2(0), 0u);
  EXPECT_EQ(ilog2(1), 0u);
  EXPECT_EQ(ilog2(4095), 11u);
  EXPECT_EQ(ilog2(4096), 12u);
  EXPECT_EQ(ilog2(~std::uint64_t{0}), 63u);
}

TEST(Bits, GetOrderMatchesLinux) {
  EXPECT_EQ(get_order(0), 0u);
  EXPECT_EQ(get_order(1), 0u);
  EXPECT_EQ(get_order(4096), 0u);
  EXPECT_EQ(get_order(4097), 1u);
  EXPECT_EQ(get_order(8192), 1u);
  EXPECT_EQ(get_order(12000), 2u);       // 16 KiB
  EXPECT_EQ(get_order(33 * 1024), 4u);   // 64 KiB
  EXPECT_EQ(get_order(130 * 1024), 6u);  // 256 KiB
  EXPECT_EQ(get_order(1u << 20), 8u);
  EXPECT_EQ(get_order((4u << 20) + 1), 11u);
  EXPECT_EQ(pages_for(0), 0u);
  EXPECT_EQ(pages_for(1), 1u);
  EXPECT_EQ(pages_for(130 * 1024), 33u);
}

TEST(Bits, MulOverflows) {
  std::size_t out = 0;
  EXPECT_FALSE(mul_overflows(1000, 24, &out));
  EXPECT_EQ(out, 24000u);
  EXPECT_TRUE(mul_overflows(std::numeric_limits<std::size_t>::max() / 2 + 1, 2, &out));
  EXPECT_FALSE(mul_overflows(0, std::numeric_limits<std::size_t>::max(), &out));
  EXPECT_EQ(out, 0u);
}

TEST(SpinLock, TryLockAndUnlock) {
  SpinLock l;
  EXPECT_FALSE(l.is_locked());
  EXPECT_TRUE(l.try_lock());
  EXPECT_TRUE(l.is_locked());
  EXPECT_FALSE(l.try_lock());
  l.unlock();
  EXPECT_FALSE(l.is_locked());
  {
    LockGuard g(l);
    EXPECT_TRUE(l.is_locked());
  }
  EXPECT_FALSE(l.is_locked());
}

TEST(SpinLock, MutualExclusion) {
  SpinLock l;
  std::uint64_t counter = 0;  // plain: only the lock protects it
  constexpr int kThreads = 4, kIters = 20000;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&] {
      for (int k = 0; k < kIters; ++k) {
        LockGuard g(l);
        ++counter;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(counter, std::uint64_t{kThreads} * kIters);
}

}  // namespace
}  // namespace kmm

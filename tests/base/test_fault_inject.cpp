// tests/base/test_fault_inject.cpp — the fault-injection points (base/fault_inject.h): rate
// parsing, interval, probability (deterministic per seed), times, space, counters, the
// verbose line, the change hook, and counters that many threads hit at once.
#include "base/fault_inject.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "base/text.h"

namespace kmm {
namespace {

struct FaultInject : ::testing::Test {
  void SetUp() override {
    fault_disable_all();
    fault_set_log(&FaultInject::capture, this);
  }
  void TearDown() override {
    fault_disable_all();
    fault_clear_log(this);
  }
  static void capture(void* arg, const char* line, std::size_t len) {
    static_cast<FaultInject*>(arg)->log.append(line, len);
  }
  std::string log;
};

FaultConfig every(std::uint64_t n) {
  FaultConfig c;
  c.interval = n;
  c.probability_ppm = 1'000'000;
  return c;
}

TEST_F(FaultInject, OffNeverFails) {
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(fault_should_fail(FaultPoint::kSlab, 64, "x"));
  EXPECT_EQ(fault_calls(FaultPoint::kSlab), 0u);  // not even counted while off
}

TEST_F(FaultInject, EveryNthCallFails) {
  fault_configure(FaultPoint::kSlab, every(4));
  std::vector<int> failed;
  for (int i = 1; i <= 12; ++i)
    if (fault_should_fail(FaultPoint::kSlab, 64, "kmalloc-64")) failed.push_back(i);
  EXPECT_EQ(failed, (std::vector<int>{4, 8, 12}));
  EXPECT_EQ(fault_calls(FaultPoint::kSlab), 12u);
  EXPECT_EQ(fault_failures(FaultPoint::kSlab), 3u);
  // The other points are untouched.
  EXPECT_FALSE(fault_should_fail(FaultPoint::kPage, 4096, nullptr));
  EXPECT_EQ(fault_calls(FaultPoint::kPage), 0u);
}

TEST_F(FaultInject, TimesLimitsFailures) {
  FaultConfig c = every(1);
  c.times = 2;
  fault_configure(FaultPoint::kPage, c);
  int n = 0;
  for (int i = 0; i < 10; ++i) n += fault_should_fail(FaultPoint::kPage, 4096, nullptr) ? 1 : 0;
  EXPECT_EQ(n, 2);
  EXPECT_EQ(fault_attr(FaultPoint::kPage).times.load(), 0);
  fault_reset_counters(FaultPoint::kPage);  // the budget comes back
  EXPECT_TRUE(fault_should_fail(FaultPoint::kPage, 4096, nullptr));
}

TEST_F(FaultInject, TimesZeroIsOff) {
  FaultConfig c = every(1);
  c.times = 0;
  fault_configure(FaultPoint::kPage, c);
  EXPECT_FALSE(fault_enabled(FaultPoint::kPage));
}

TEST_F(FaultInject, SpaceLetsBytesThroughFirst) {
  FaultConfig c = every(1);
  c.space = 10000;
  fault_configure(FaultPoint::kSlab, c);
  int passed = 0;
  while (!fault_should_fail(FaultPoint::kSlab, 4096, nullptr)) ++passed;
  EXPECT_EQ(passed, 2);  // 10000 > 4096, 5904 > 4096, then 1808 <= 4096: fails
}

TEST_F(FaultInject, ProbabilityIsDeterministicPerSeed) {
  auto run = [](std::uint64_t seed) {
    FaultConfig c;
    c.probability_ppm = 100'000;  // 10 %
    c.seed = seed;
    fault_configure(FaultPoint::kSlab, c);
    std::string pattern;
    for (int i = 0; i < 10000; ++i) pattern += fault_should_fail(FaultPoint::kSlab, 8, nullptr) ? '1' : '0';
    return pattern;
  };
  std::string a = run(7), b = run(7), c = run(8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  auto ones = static_cast<long>(std::count(a.begin(), a.end(), '1'));
  EXPECT_GT(ones, 850);  // 10 % of 10000, give or take
  EXPECT_LT(ones, 1150);
}

TEST_F(FaultInject, IntervalAndProbabilityCombineAsInLinux) {
  FaultConfig c;
  c.interval = 10;
  c.probability_ppm = 500'000;
  fault_configure(FaultPoint::kPlatform, c);
  int fails = 0;
  for (int i = 1; i <= 10000; ++i) {
    bool f = fault_should_fail(FaultPoint::kPlatform, 1, nullptr);
    if (f) {
      EXPECT_EQ(i % 10, 0);
    }
    fails += f ? 1 : 0;
  }
  EXPECT_GT(fails, 400);
  EXPECT_LT(fails, 600);
}

TEST_F(FaultInject, VerboseLineNamesThePoint) {
  fault_configure(FaultPoint::kSlab, every(2));
  fault_should_fail(FaultPoint::kSlab, 64, "kmalloc-64");
  EXPECT_EQ(log, "");
  fault_should_fail(FaultPoint::kSlab, 64, "kmalloc-64");
  EXPECT_NE(log.find("FAULT_INJECTION: forcing a failure. name failslab, interval 2"), std::string::npos) << log;
  EXPECT_NE(log.find("(kmalloc-64, 64 bytes)"), std::string::npos) << log;
  log.clear();
  FaultConfig quiet = every(1);
  quiet.verbose = 0;
  fault_configure(FaultPoint::kSlab, quiet);
  EXPECT_TRUE(fault_should_fail(FaultPoint::kSlab, 64, "kmalloc-64"));
  EXPECT_EQ(log, "");
}

TEST_F(FaultInject, ChangeHookSeesOnAndOff) {
  static std::vector<int> seen;
  seen.clear();
  fault_set_change_hook(FaultPoint::kPlatform, [](FaultPoint, bool on) { seen.push_back(on ? 1 : 0); });
  fault_configure(FaultPoint::kPlatform, every(3));
  fault_disable(FaultPoint::kPlatform);
  fault_resume(FaultPoint::kPlatform);
  fault_set_change_hook(FaultPoint::kPlatform, nullptr);
  EXPECT_EQ(seen, (std::vector<int>{1, 0, 1}));
}

TEST_F(FaultInject, PrintShowsAttributesAndCounters) {
  FaultConfig c = every(100);
  c.times = 5;
  c.seed = 42;
  fault_configure(FaultPoint::kPage, c);
  for (int i = 0; i < 250; ++i) fault_should_fail(FaultPoint::kPage, 4096, nullptr);
  StackText<512> out;
  fault_print(FaultPoint::kPage, out);
  std::string s = out.data();
  EXPECT_NE(s.find("name fail_page_alloc\nenabled 1\ninterval 100\nprobability 100.0000%\ntimes 3\n"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("seed 42\n"), std::string::npos) << s;
  EXPECT_NE(s.find("calls 250\nfailures 2\n"), std::string::npos) << s;
}

TEST(FaultParse, Rates) {
  std::uint64_t interval = 0;
  std::uint32_t ppm = 0;
  auto ok = [&](const char* s) { return fault_parse_rate(s, std::char_traits<char>::length(s), &interval, &ppm); };
  ASSERT_TRUE(ok("100"));
  EXPECT_EQ(interval, 100u);
  EXPECT_EQ(ppm, 1'000'000u);
  ASSERT_TRUE(ok("5%"));
  EXPECT_EQ(interval, 1u);
  EXPECT_EQ(ppm, 50'000u);
  ASSERT_TRUE(ok("0.5%"));  // 5 per mille
  EXPECT_EQ(ppm, 5'000u);
  ASSERT_TRUE(ok("0.0001%"));
  EXPECT_EQ(ppm, 1u);
  ASSERT_TRUE(ok("100%"));
  EXPECT_EQ(ppm, 1'000'000u);
  for (const char* bad : {"", "0", "%", "0%", "101%", "1.%", ".5%", "1.00001%", "x", "5 %", "-3", "12a", "1e3"})
    EXPECT_FALSE(ok(bad)) << bad;
}

TEST(FaultParse, PointNames) {
  FaultPoint p;
  EXPECT_TRUE(fault_point_from_name("slab", 4, &p));
  EXPECT_EQ(p, FaultPoint::kSlab);
  EXPECT_TRUE(fault_point_from_name("fail_page_alloc", 15, &p));
  EXPECT_EQ(p, FaultPoint::kPage);
  EXPECT_TRUE(fault_point_from_name("platform", 8, &p));
  EXPECT_EQ(p, FaultPoint::kPlatform);
  EXPECT_FALSE(fault_point_from_name("pages", 5, &p));
  EXPECT_FALSE(fault_point_from_name("sla", 3, &p));
}

// Many threads on one point: every Nth call of the whole process fails, exactly.
TEST_F(FaultInject, CountersAreExactAcrossThreads) {
  FaultConfig c = every(7);
  c.verbose = 0;
  fault_configure(FaultPoint::kSlab, c);
  std::atomic<unsigned> fails{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 7000; ++i)
        if (fault_should_fail(FaultPoint::kSlab, 8, nullptr)) fails.fetch_add(1);
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(fault_calls(FaultPoint::kSlab), 28000u);
  EXPECT_EQ(fails.load(), 4000u);
  EXPECT_EQ(fault_failures(FaultPoint::kSlab), 4000u);
}

}  // namespace
}  // namespace kmm

// tests/base/test_units.cpp — the one parser of sizes and durations (base/units.h), which the
// scenario language, KMM_OPTIONS and `kmm exec` share: every suffix in both cases, hex, the
// largest value that fits and the first that does not (digits and after the multiplication),
// garbage, the empty text, and that a refused text leaves the result alone.
// Depends on: base/units.h only.
#include <gtest/gtest.h>

#include <cstring>

#include "base/units.h"

namespace kmm {
namespace {

bool size_of(const char* s, std::uint64_t* out) {
  return parse_size(s, std::strlen(s), out);
}
bool ns_of(const char* s, std::uint64_t* out) {
  return parse_duration_ns(s, std::strlen(s), out);
}

TEST(UnitsSize, EverySuffix) {
  struct Case {
    const char* text;
    std::uint64_t bytes;
  } cases[] = {
      {"0", 0},
      {"123", 123},
      {"64K", 64u << 10},
      {"64k", 64u << 10},
      {"4KB", 4096},
      {"4kb", 4096},
      {"4Kb", 4096},
      {"192M", 192ull << 20},
      {"192m", 192ull << 20},
      {"2MB", 2ull << 20},
      {"1G", 1ull << 30},
      {"1g", 1ull << 30},
      {"3GB", 3ull << 30},
      {"0K", 0},
      {"0x1000", 0x1000},
      {"0XC0000000", 0xC0000000ull},
      {"0xdeadBEEF", 0xdeadbeefull},
      {"0xffff000000000000", 0xffff000000000000ull},
  };
  for (const Case& c : cases) {
    std::uint64_t v = 7;
    EXPECT_TRUE(size_of(c.text, &v)) << c.text;
    EXPECT_EQ(v, c.bytes) << c.text;
  }
}

TEST(UnitsSize, Overflow) {
  std::uint64_t v = 0;
  EXPECT_TRUE(size_of("18446744073709551615", &v));
  EXPECT_EQ(v, ~std::uint64_t{0});
  EXPECT_TRUE(size_of("0xffffffffffffffff", &v));
  EXPECT_EQ(v, ~std::uint64_t{0});
  EXPECT_TRUE(size_of("17179869183G", &v));  // 2^34 - 1 G: the largest that fits
  EXPECT_EQ(v, (~std::uint64_t{0} >> 30) << 30);
  v = 77;
  EXPECT_FALSE(size_of("18446744073709551616", &v));  // 2^64
  EXPECT_FALSE(size_of("99999999999999999999999", &v));
  EXPECT_FALSE(size_of("0x10000000000000000", &v));  // 17 hex digits
  EXPECT_FALSE(size_of("17179869184G", &v));         // 2^34 G = 2^64
  EXPECT_FALSE(size_of("18014398509481984K", &v));   // 2^54 K = 2^64
  EXPECT_FALSE(size_of("17592186044416M", &v));      // 2^44 M = 2^64
  EXPECT_EQ(v, 77u) << "a refused text must not write the result";
}

TEST(UnitsSize, GarbageAndEmpty) {
  std::uint64_t v = 77;
  EXPECT_FALSE(parse_size("", 0, &v));
  for (const char* bad : {"K", "12X", "1.5M", "-1", "+1", "10KK", "10 K", " 10", "10 ", "4B", "0x", "0xg1", "0x10K",
                          "1KBB", "lots", "1e3", "0b101"})
    EXPECT_FALSE(size_of(bad, &v)) << bad;
  EXPECT_EQ(v, 77u);
  // n bounds the text: no terminator is read.
  EXPECT_TRUE(parse_size("64K", 2, &v));
  EXPECT_EQ(v, 64u);
  EXPECT_FALSE(parse_size("64K", 0, &v));
}

TEST(UnitsDuration, EveryUnit) {
  struct Case {
    const char* text;
    std::uint64_t ns;
  } cases[] = {
      {"0", 0},
      {"0s", 0},
      {"7", 7'000'000'000ull},  // a bare number is seconds
      {"5s", 5'000'000'000ull},
      {"250ms", 250'000'000ull},
      {"100us", 100'000ull},
      {"10ns", 10},
      {"2m", 120'000'000'000ull},
      {"1min", 60'000'000'000ull},
      {"18446744073709551615ns", ~std::uint64_t{0}},
  };
  for (const Case& c : cases) {
    std::uint64_t v = 7;
    EXPECT_TRUE(ns_of(c.text, &v)) << c.text;
    EXPECT_EQ(v, c.ns) << c.text;
  }
}

TEST(UnitsDuration, Overflow) {
  std::uint64_t v = 0;
  EXPECT_TRUE(ns_of("18446744073s", &v));  // floor(2^64 / 1e9) s: the largest that fits
  EXPECT_EQ(v, 18'446'744'073'000'000'000ull);
  EXPECT_TRUE(ns_of("307445734min", &v));
  v = 77;
  EXPECT_FALSE(ns_of("18446744074s", &v));
  EXPECT_FALSE(ns_of("18446744074", &v));  // a bare number is seconds
  EXPECT_FALSE(ns_of("307445735min", &v));
  EXPECT_FALSE(ns_of("30000000000m", &v));
  EXPECT_FALSE(ns_of("18446744073709552ms", &v));
  EXPECT_FALSE(ns_of("18446744073709552us", &v));
  EXPECT_FALSE(ns_of("18446744073709551616ns", &v));  // 2^64
  EXPECT_FALSE(ns_of("99999999999999999999s", &v));
  EXPECT_EQ(v, 77u) << "a refused text must not write the result";
}

TEST(UnitsDuration, GarbageAndEmpty) {
  std::uint64_t v = 77;
  EXPECT_FALSE(parse_duration_ns("", 0, &v));
  for (const char* bad : {"s", "ms", "min", "5 s", "5h", "5S", "5MS", "1.5s", "-1s", "+1s", "5sec", "5mins", "5mi",
                          "5x", " 5s", "5s ", "0x10s", "soon"})
    EXPECT_FALSE(ns_of(bad, &v)) << bad;
  EXPECT_EQ(v, 77u);
  EXPECT_TRUE(parse_duration_ns("5ms", 2, &v));  // n bounds the text: "5m"
  EXPECT_EQ(v, 300'000'000'000ull);
}

TEST(UnitsSwitch, OnOffAndNothingElse) {
  bool v = false;
  for (const char* on : {"1", "on", "yes", "true"}) {
    v = false;
    EXPECT_TRUE(parse_switch(on, std::strlen(on), &v)) << on;
    EXPECT_TRUE(v) << on;
  }
  for (const char* off : {"0", "off", "no", "false"}) {
    v = true;
    EXPECT_TRUE(parse_switch(off, std::strlen(off), &v)) << off;
    EXPECT_FALSE(v) << off;
  }
  for (const char* bad : {"", "2", "On", "yess", "tru", "offf", " 1"}) {
    v = true;
    EXPECT_FALSE(parse_switch(bad, std::strlen(bad), &v)) << '"' << bad << '"';
    EXPECT_TRUE(v) << "left untouched";
  }
  EXPECT_TRUE(parse_switch("onward", 2, &v)) << "exactly s[0, n)";
}

}  // namespace
}  // namespace kmm

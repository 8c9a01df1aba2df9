// tests/base/test_options.cpp — parse_size (K/M/G suffixes, optional B, malformed and
// overflowing input) and parse_options (visitor sees each key=value; unknown keys and items
// without '=' are counted and warned about; empty items skipped).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../common/report_capture.h"
#include "base/options.h"
#include "base/text.h"

namespace kmm {
namespace {

bool size_of(const char* s, std::uint64_t* out) {
  return parse_size(s, str_len(s), out);
}

TEST(ParseSize, Plain) {
  std::uint64_t v = 1;
  EXPECT_TRUE(size_of("0", &v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(size_of("123", &v));
  EXPECT_EQ(v, 123u);
  EXPECT_TRUE(size_of("18446744073709551615", &v));
  EXPECT_EQ(v, 18446744073709551615ull);
}

TEST(ParseSize, Suffixes) {
  std::uint64_t v = 0;
  EXPECT_TRUE(size_of("64K", &v));
  EXPECT_EQ(v, 64u * 1024);
  EXPECT_TRUE(size_of("64k", &v));
  EXPECT_EQ(v, 64u * 1024);
  EXPECT_TRUE(size_of("192M", &v));
  EXPECT_EQ(v, 192ull << 20);
  EXPECT_TRUE(size_of("1G", &v));
  EXPECT_EQ(v, 1ull << 30);
  EXPECT_TRUE(size_of("4KB", &v));
  EXPECT_EQ(v, 4096u);
  EXPECT_TRUE(size_of("2mb", &v));
  EXPECT_EQ(v, 2ull << 20);
}

TEST(ParseSize, Malformed) {
  std::uint64_t v = 77;
  EXPECT_FALSE(parse_size("", 0, &v));
  EXPECT_FALSE(size_of("K", &v));
  EXPECT_FALSE(size_of("12X", &v));
  EXPECT_FALSE(size_of("1.5M", &v));
  EXPECT_FALSE(size_of("-1", &v));
  EXPECT_FALSE(size_of("10KK", &v));
  EXPECT_FALSE(size_of("10 K", &v));
  EXPECT_FALSE(size_of("18446744073709551616", &v));  // 2^64
  EXPECT_FALSE(size_of("17179869184G", &v));          // 2^34 G = 2^64
  EXPECT_EQ(v, 77u) << "a failed parse must not write the result";
  // n bounds the text: "64K" read as its first two characters.
  EXPECT_TRUE(parse_size("64K", 2, &v));
  EXPECT_EQ(v, 64u);
}

struct Seen {
  std::vector<std::pair<std::string, std::string>> items;
  std::uint64_t ram = 0;
};

bool visitor(const OptionView& o, void* arg) {
  auto* seen = static_cast<Seen*>(arg);
  seen->items.emplace_back(std::string(o.key, o.key_len), std::string(o.value, o.value_len));
  if (o.key_is("ram")) return o.value_size(&seen->ram);
  return o.key_is("policy") || o.key_is("on_error") || o.key_is("empty");
}

TEST(ParseOptions, KnownKeys) {
  test::ReportCapture cap;
  Seen seen;
  EXPECT_EQ(parse_options("ram=192M:policy=kmalloc2:on_error=report", visitor, &seen), 0u);
  ASSERT_EQ(seen.items.size(), 3u);
  EXPECT_EQ(seen.items[0].first, "ram");
  EXPECT_EQ(seen.items[1].second, "kmalloc2");
  EXPECT_EQ(seen.items[2].first, "on_error");
  EXPECT_EQ(seen.ram, 192ull << 20);
  EXPECT_EQ(cap.text(), "");
}

TEST(ParseOptions, UnknownAndMalformedCounted) {
  test::ReportCapture cap;
  Seen seen;
  unsigned bad = parse_options("ram=64K:bogus=1:novalue:policy=pow2:ram=12Q", visitor, &seen);
  EXPECT_EQ(bad, 3u);  // bogus (unknown), novalue (no '='), ram=12Q (malformed size)
  EXPECT_EQ(seen.items.size(), 4u) << "an item without '=' is not offered to the visitor";
  EXPECT_NE(cap.text().find("unknown option: bogus=1"), std::string::npos) << cap.text();
  EXPECT_NE(cap.text().find("malformed option (want key=value): novalue"), std::string::npos) << cap.text();
  EXPECT_NE(cap.text().find("unknown option: ram=12Q"), std::string::npos) << cap.text();
  EXPECT_EQ(cap.count(), 0u) << "option warnings are not error reports";
}

TEST(ParseOptions, EmptyItemsAndValues) {
  test::ReportCapture cap;
  Seen seen;
  EXPECT_EQ(parse_options("::empty=::", visitor, &seen), 0u);
  ASSERT_EQ(seen.items.size(), 1u);
  EXPECT_EQ(seen.items[0].first, "empty");
  EXPECT_EQ(seen.items[0].second, "");
  EXPECT_EQ(parse_options("", visitor, &seen), 0u);
  EXPECT_EQ(parse_options(nullptr, visitor, &seen), 0u);
  EXPECT_EQ(seen.items.size(), 1u);
}

TEST(OptionView, KeyAndValueCompare) {
  const char* text = "policy=pow2";
  OptionView o{text, 6, text + 7, 4};
  EXPECT_TRUE(o.key_is("policy"));
  EXPECT_FALSE(o.key_is("polic"));
  EXPECT_FALSE(o.key_is("policyx"));
  EXPECT_TRUE(o.value_is("pow2"));
  EXPECT_FALSE(o.value_is("pow"));
}

}  // namespace
}  // namespace kmm

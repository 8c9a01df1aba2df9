// tests/base/test_text.cpp — TextSink: decimal widths, signed values, hex, pointers, fixed
// point, left alignment, truncation into a small buffer (with wanted() still counting), and
// the string helpers str_len / str_eq / str_copy.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "base/text.h"

namespace kmm {
namespace {

std::string S(const TextSink& t) {
  return std::string(t.data(), t.size());
}

TEST(TextSink, UnsignedWidths) {
  StackText<64> t;
  t.u(0).ch('|').u(42, 5).ch('|').u(123456, 3).ch('|').u(std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(S(t), "0|   42|123456|18446744073709551615");
  EXPECT_FALSE(t.truncated());
  EXPECT_EQ(t.wanted(), t.size());
}

TEST(TextSink, SignedWidths) {
  StackText<96> t;
  t.i(-7, 4).ch('|').i(7, 4).ch('|').i(0).ch('|').i(std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(S(t), "  -7|   7|0|-9223372036854775808");
}

TEST(TextSink, Hex) {
  StackText<64> t;
  t.hex(0).ch(' ').hex(0xabc).ch(' ').hex(0x1f, 4).ch(' ').hex(0xdeadbeefcafef00dULL);
  EXPECT_EQ(S(t), "0 abc 001f deadbeefcafef00d");
}

TEST(TextSink, Pointer) {
  StackText<64> t;
  t.ptr(reinterpret_cast<const void*>(std::uintptr_t{0x1040}));
  std::string want = "0x" + std::string(sizeof(void*) * 2 - 4, '0') + "1040";
  EXPECT_EQ(S(t), want);
  t.clear();
  t.ptr(nullptr);
  EXPECT_EQ(S(t), "0x" + std::string(sizeof(void*) * 2, '0'));
}

TEST(TextSink, Fixed) {
  StackText<128> t;
  t.fixed(1234, 3).ch(' ').fixed(5, 3).ch(' ').fixed(-5, 1).ch(' ').fixed(42, 0).ch(' ').fixed(100, 2);
  EXPECT_EQ(S(t), "1.234 0.005 -0.5 42 1.00");
}

TEST(TextSink, FixedMostNegative) {
  StackText<64> t;
  t.fixed(std::numeric_limits<std::int64_t>::min(), 3);
  EXPECT_EQ(S(t), "-9223372036854775.808");
}

TEST(TextSink, LeftAndRepeat) {
  StackText<64> t;
  t.left("ab", 5).ch('|').left("toolong", 3).ch('|').repeat('-', 3).ch('|').repeat('x', 0);
  EXPECT_EQ(S(t), "ab   |toolong|---|");
}

TEST(TextSink, TruncatesAndKeepsCounting) {
  char buf[8];
  TextSink t(buf, sizeof buf);
  t.str("hello, ").u(12345);
  EXPECT_TRUE(t.truncated());
  EXPECT_EQ(t.wanted(), 12u);
  EXPECT_EQ(t.size(), 7u);
  EXPECT_EQ(std::string(buf), "hello, ");  // 7 bytes and the terminator
  t.clear();
  EXPECT_FALSE(t.truncated());
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(buf[0], '\0');
}

TEST(TextSink, ExactFitIsNotTruncated) {
  char buf[4];
  TextSink t(buf, sizeof buf);
  t.str("abc");
  EXPECT_FALSE(t.truncated());
  EXPECT_EQ(std::string(buf), "abc");
  t.ch('d');
  EXPECT_TRUE(t.truncated());
  EXPECT_EQ(std::string(buf), "abc");
  EXPECT_EQ(t.wanted(), 4u);
}

TEST(TextSink, ZeroCapacityNeverWrites) {
  char guard[2] = {'G', 'G'};
  TextSink t(guard, 0);
  t.str("abc").u(5);
  EXPECT_EQ(guard[0], 'G');
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.wanted(), 4u);
  EXPECT_TRUE(t.truncated());
}

TEST(TextSink, StrWithLengthAndNull) {
  StackText<32> t;
  t.str("abcdef", 3).ch('/').str(nullptr);
  EXPECT_EQ(S(t), "abc/(null)");
}

TEST(StringHelpers, LenEqCopy) {
  EXPECT_EQ(str_len(""), 0u);
  EXPECT_EQ(str_len("kmalloc-64"), 10u);
  EXPECT_TRUE(str_eq("abc", "abc"));
  EXPECT_FALSE(str_eq("abc", "abd"));
  EXPECT_FALSE(str_eq("abc", "ab"));
  EXPECT_FALSE(str_eq("", "a"));
  char dst[5];
  EXPECT_TRUE(str_copy(dst, sizeof dst, "abcd"));
  EXPECT_EQ(std::string(dst), "abcd");
  EXPECT_FALSE(str_copy(dst, sizeof dst, "abcdef"));
  EXPECT_EQ(std::string(dst), "abcd");
  EXPECT_FALSE(str_copy(dst, 0, "x"));
}

}  // namespace
}  // namespace kmm

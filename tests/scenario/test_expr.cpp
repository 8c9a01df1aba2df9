// tests/scenario/test_expr.cpp — scenario expressions: numbers (K/M/G, hex), precedence,
// comparisons, && and ||, $variables, value paths with '-' and '(...)', errors (unknown
// $var, unknown value, division by zero, bad syntax), and durations.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>

#include "scenario/expr.h"

namespace kmm::scenario {
namespace {

// Values a resolver knows, and the paths it was asked for.
struct Fake {
  std::map<std::string, std::int64_t> values;
  std::string asked;
  Resolver resolver() {
    return [this](const std::string& path, std::string* error) -> std::optional<std::int64_t> {
      asked += path + ";";
      auto it = values.find(path);
      if (it == values.end()) {
        *error = "no value " + path;
        return std::nullopt;
      }
      return it->second;
    };
  }
};

std::int64_t eval_ok(const std::string& text, const std::map<std::string, std::int64_t>& vars = {}) {
  Fake f;
  ExprResult r = evaluate(text, vars, f.resolver());
  EXPECT_TRUE(r.ok) << text << ": " << r.error;
  return r.value;
}

std::string eval_error(const std::string& text, const std::map<std::string, std::int64_t>& vars = {}) {
  Fake f;
  ExprResult r = evaluate(text, vars, f.resolver());
  EXPECT_FALSE(r.ok) << text << " gave " << r.value;
  return r.error;
}

TEST(ParseNumber, SuffixesAndHex) {
  std::int64_t v = 0;
  ASSERT_TRUE(parse_number("123", &v));
  EXPECT_EQ(v, 123);
  ASSERT_TRUE(parse_number("64K", &v));
  EXPECT_EQ(v, 65536);
  ASSERT_TRUE(parse_number("192M", &v));
  EXPECT_EQ(v, 192 * 1024 * 1024);
  ASSERT_TRUE(parse_number("1G", &v));
  EXPECT_EQ(v, 1 << 30);
  ASSERT_TRUE(parse_number("4k", &v));
  EXPECT_EQ(v, 4096);
  ASSERT_TRUE(parse_number("4932KB", &v));
  EXPECT_EQ(v, 4932 * 1024);
  ASSERT_TRUE(parse_number("0x1000", &v));
  EXPECT_EQ(v, 4096);
  ASSERT_TRUE(parse_number("0XC0000000", &v));
  EXPECT_EQ(v, 0xC0000000ll);
  ASSERT_TRUE(parse_number("0xdeadBEEF", &v));
  EXPECT_EQ(v, 0xdeadbeefll);
  for (const char* bad : {"", "x", "12Q", "1KK", "0x", "0xg", "-1", "1.5M", " 1", "99999999999999999999",
                          "0x10000000000000000", "9223372036854775808", "17179869184G"}) {
    EXPECT_FALSE(parse_number(bad, &v)) << bad;
  }
  ASSERT_TRUE(parse_number("9223372036854775807", &v));
  EXPECT_EQ(v, INT64_MAX);
}

TEST(ParseDuration, Units) {
  std::uint64_t ns = 0;
  ASSERT_TRUE(parse_duration_ns("5s", &ns));
  EXPECT_EQ(ns, 5'000'000'000u);
  ASSERT_TRUE(parse_duration_ns("250ms", &ns));
  EXPECT_EQ(ns, 250'000'000u);
  ASSERT_TRUE(parse_duration_ns("100us", &ns));
  EXPECT_EQ(ns, 100'000u);
  ASSERT_TRUE(parse_duration_ns("10ns", &ns));
  EXPECT_EQ(ns, 10u);
  ASSERT_TRUE(parse_duration_ns("2m", &ns));
  EXPECT_EQ(ns, 120'000'000'000u);
  ASSERT_TRUE(parse_duration_ns("2min", &ns));
  EXPECT_EQ(ns, 120'000'000'000u);
  ASSERT_TRUE(parse_duration_ns("3", &ns));
  EXPECT_EQ(ns, 3'000'000'000u) << "a bare number is seconds";
  ASSERT_TRUE(parse_duration_ns("0s", &ns));
  EXPECT_EQ(ns, 0u);
  for (const char* bad : {"", "s", "5 s", "5h", "1.5s", "-1s", "99999999999999999999s", "30000000000m"})
    EXPECT_FALSE(parse_duration_ns(bad, &ns)) << bad;
}

TEST(Expr, NumbersAndArithmetic) {
  EXPECT_EQ(eval_ok("42"), 42);
  EXPECT_EQ(eval_ok("4096 + 4096 + 64K + 128"), 8192 + 65536 + 128);
  EXPECT_EQ(eval_ok("0x10 * 2"), 32);
  EXPECT_EQ(eval_ok("1M / 4K"), 256);
  EXPECT_EQ(eval_ok("17 % 5"), 2);
  EXPECT_EQ(eval_ok("10 - 3 - 2"), 5) << "left associative";
  EXPECT_EQ(eval_ok("100 / 10 / 5"), 2);
  EXPECT_EQ(eval_ok("-5 + 2"), -3);
  EXPECT_EQ(eval_ok("--5"), 5);
  EXPECT_EQ(eval_ok("  7  "), 7);
}

TEST(Expr, Precedence) {
  EXPECT_EQ(eval_ok("2 + 3 * 4"), 14);
  EXPECT_EQ(eval_ok("(2 + 3) * 4"), 20);
  EXPECT_EQ(eval_ok("2 * 3 + 4 * 5"), 26);
  EXPECT_EQ(eval_ok("1 + 2 == 3"), 1) << "comparison binds looser than +";
  EXPECT_EQ(eval_ok("1 < 2 && 3 < 2 || 1"), 1) << "&& binds tighter than ||";
  EXPECT_EQ(eval_ok("0 || 1 && 0"), 0);
  EXPECT_EQ(eval_ok("!0 + 1"), 2);
  EXPECT_EQ(eval_ok("-(2 + 3) * 2"), -10);
}

TEST(Expr, Comparisons) {
  EXPECT_EQ(eval_ok("3 == 3"), 1);
  EXPECT_EQ(eval_ok("3 != 3"), 0);
  EXPECT_EQ(eval_ok("3 < 4"), 1);
  EXPECT_EQ(eval_ok("4 <= 4"), 1);
  EXPECT_EQ(eval_ok("5 > 4"), 1);
  EXPECT_EQ(eval_ok("4 >= 5"), 0);
  EXPECT_EQ(eval_ok("1 && 2"), 1);
  EXPECT_EQ(eval_ok("1 && 0"), 0);
  EXPECT_EQ(eval_ok("0 || 0"), 0);
  EXPECT_EQ(eval_ok("0 || 7"), 1);
  EXPECT_EQ(eval_ok("!5"), 0);
}

TEST(Expr, TraceOfComparisons) {
  Fake f;
  ExprResult r = evaluate("1 + 1 == 3 && 4 > 2", {}, f.resolver());
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.value, 0);
  EXPECT_EQ(r.trace, "2 == 3, 4 > 2");
}

TEST(Expr, Variables) {
  std::map<std::string, std::int64_t> vars{{"before", 1000}, {"after_insmod", 900}, {"x2", 2}};
  EXPECT_EQ(eval_ok("$before - $after_insmod", vars), 100);
  EXPECT_EQ(eval_ok("$before == 1000 && $x2 * 2 == 4", vars), 1);
  std::string e = eval_error("$nope + 1", vars);
  EXPECT_NE(e.find("$nope"), std::string::npos) << e;
  EXPECT_NE(e.find("let"), std::string::npos) << e;
  EXPECT_NE(eval_error("$ + 1", vars).find("'$' without a name"), std::string::npos);
}

TEST(Expr, ValuePaths) {
  Fake f;
  f.values = {{"slabinfo.kmalloc-32.active_objs", 7},
              {"meminfo.Active(anon)", 12},
              {"meminfo.MemFree", 1000},
              {"module.m_test.bytes", 4096},
              {"ksize.buf-0", 64}};
  auto run = [&](const std::string& text) {
    ExprResult r = evaluate(text, {}, f.resolver());
    EXPECT_TRUE(r.ok) << text << ": " << r.error;
    return r.value;
  };
  EXPECT_EQ(run("slabinfo.kmalloc-32.active_objs + 1"), 8);
  // '-' between letters/digits belongs to the path (kmalloc-32): subtraction needs spaces.
  ExprResult joined = evaluate("slabinfo.kmalloc-32.active_objs-1", {}, f.resolver());
  EXPECT_FALSE(joined.ok);
  EXPECT_NE(f.asked.find("slabinfo.kmalloc-32.active_objs-1;"), std::string::npos) << f.asked;
  EXPECT_EQ(run("slabinfo.kmalloc-32.active_objs - 1"), 6);
  EXPECT_EQ(run("meminfo.Active(anon) * 2"), 24);
  EXPECT_EQ(run("(meminfo.Active(anon))"), 12) << "a path's parentheses do not eat the group's";
  EXPECT_EQ(run("meminfo.MemFree - 1000"), 0) << "' - ' with spaces is subtraction";
  EXPECT_EQ(run("module.m_test.bytes == 4096"), 1);
  EXPECT_EQ(run("ksize.buf-0"), 64);
  Fake g;
  ExprResult r = evaluate("meminfo.NoSuch > 0", {}, g.resolver());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "no value meminfo.NoSuch") << "the resolver's message is passed on";
}

TEST(Expr, Errors) {
  EXPECT_EQ(eval_error("1 / 0"), "division by zero");
  EXPECT_EQ(eval_error("5 % (2 - 2)"), "division by zero");
  EXPECT_NE(eval_error("1 +").find("ends too early"), std::string::npos);
  EXPECT_NE(eval_error("(1 + 2").find("missing ')'"), std::string::npos);
  EXPECT_NE(eval_error("1 2").find("unexpected"), std::string::npos);
  EXPECT_NE(eval_error("12Q").find("bad number"), std::string::npos);
  EXPECT_NE(eval_error("1 = 1").find("unexpected"), std::string::npos);
  EXPECT_NE(eval_error("1 & 1").find("unexpected"), std::string::npos);
  EXPECT_NE(eval_error("@").find("unexpected '@'"), std::string::npos);
  EXPECT_EQ(eval_error("9223372036854775807 + 1"), "integer overflow");
  EXPECT_EQ(eval_error("4G * 4G * 4G"), "integer overflow");
  EXPECT_EQ(eval_error(""), "expression ends too early");
}

TEST(Expr, TheSmallestValueOverflowsWhereItHasNoAnswer) {
  // INT64_MIN is reached by arithmetic only (a literal of 2^63 is a bad number). Dividing it
  // by -1 trapped the process (SIGFPE), % -1 too; negating it was undefined.
  const std::map<std::string, std::int64_t> m{{"m", INT64_MIN}};
  EXPECT_EQ(eval_ok("0 - 9223372036854775807 - 1"), INT64_MIN);
  EXPECT_EQ(eval_error("$m / (0 - 1)", m), "integer overflow");
  EXPECT_EQ(eval_ok("$m % (0 - 1)", m), 0);
  EXPECT_EQ(eval_error("-$m", m), "integer overflow");
  EXPECT_EQ(eval_error("0 - $m", m), "integer overflow");
  EXPECT_EQ(eval_ok("7 / (0 - 1)"), -7);
  EXPECT_EQ(eval_ok("-7 % 3"), -1);
  EXPECT_EQ(eval_ok("--7"), 7);
}

TEST(Expr, NestingIsBoundedNotAStackOverflow) {
  // 20,000 parentheses (or 3,000,000 '!') ran the evaluator off its stack (SIGSEGV).
  EXPECT_EQ(eval_ok(std::string(150, '(') + "1" + std::string(150, ')')), 1);
  EXPECT_EQ(eval_ok(std::string(150, '-') + "1"), 1);
  const std::string deep = std::string(20000, '(') + "1" + std::string(20000, ')');
  EXPECT_NE(eval_error(deep).find("nested too deeply"), std::string::npos);
  EXPECT_NE(eval_error(std::string(3000000, '!') + "0").find("nested too deeply"), std::string::npos);
}

}  // namespace
}  // namespace kmm::scenario

// tests/shim/test_options_table.cpp — the KMM_OPTIONS table (shim/options_table.h) and the
// parser that reads it (shim/options.h): every row's default parses and leaves Options as
// constructed, every key the shim took before the table still works, each value kind's
// parser accepts what help says and refuses garbage, an unknown key and a bad value are
// warned about exactly as before, and no name is listed twice; docs/PRELOAD.md's table of
// keys lists exactly the table's visible keys (issue 18: the docs agree with the one table).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <set>
#include <string>

#include "base/options.h"
#include "base/report.h"
#include "base/units.h"
#include "protect/protector_mode.h"
#include "shim/options.h"
#include "shim/options_table.h"

namespace kmm::shim {
namespace {

OptionView view(const char* key, const char* value) {
  return {key, std::strlen(key), value, std::strlen(value)};
}

// Report text goes here while a test captures it (base/report.h's writer).
std::string g_captured;
void capture(const char* text, std::size_t len) {
  g_captured.append(text, len);
}
struct CaptureWarnings {
  CaptureWarnings() {
    g_captured.clear();
    set_report_writer(&capture);
  }
  ~CaptureWarnings() { set_report_writer(nullptr); }
};

void expect_defaults(const Options& o) {
  const Options d;
  EXPECT_EQ(o.protect, d.protect);
  EXPECT_EQ(o.gc_delay_ns, d.gc_delay_ns);
  EXPECT_EQ(o.purge_delay_ns, d.purge_delay_ns);
  EXPECT_EQ(o.stats, d.stats);
  EXPECT_STREQ(o.stats_path, d.stats_path);
  EXPECT_EQ(o.on_error_report, d.on_error_report);
  EXPECT_EQ(o.thread_cache, d.thread_cache);
  EXPECT_EQ(o.live, d.live);
  EXPECT_EQ(o.ram, d.ram);
  EXPECT_EQ(o.hardening.freelist_hardened, d.hardening.freelist_hardened);
  EXPECT_EQ(o.hardening.redzone, d.hardening.redzone);
  EXPECT_EQ(o.hardening.poison, d.hardening.poison);
  EXPECT_EQ(o.hardening.guard_pages, d.hardening.guard_pages);
  EXPECT_EQ(o.hardening.quarantine_bytes, d.hardening.quarantine_bytes);
  for (unsigned i = 0; i < kNrFaultPoints; ++i) {
    EXPECT_EQ(o.fault_on[i], d.fault_on[i]) << i;
    EXPECT_EQ(o.fault[i].interval, d.fault[i].interval) << i;
    EXPECT_EQ(o.fault[i].probability_ppm, d.fault[i].probability_ppm) << i;
    EXPECT_EQ(o.fault[i].times, d.fault[i].times) << i;
    EXPECT_EQ(o.fault[i].space, d.fault[i].space) << i;
    EXPECT_EQ(o.fault[i].seed, d.fault[i].seed) << i;
    EXPECT_EQ(o.fault[i].verbose, d.fault[i].verbose) << i;
  }
}

TEST(OptionsTable, EveryRowParsesItsDefaultAndTheDefaultIsOptionsDefault) {
  ASSERT_GT(option_row_count(), 0u);
  Options all;
  for (std::size_t i = 0; i < option_row_count(); ++i) {
    const OptionRow& r = option_rows()[i];
    Options one;
    EXPECT_EQ(apply_option(&one, view(r.name, r.default_value)), OptionApply::kApplied) << r.name;
    expect_defaults(one);
    EXPECT_EQ(apply_option(&all, view(r.name, r.default_value)), OptionApply::kApplied) << r.name;
  }
  expect_defaults(all);
}

TEST(OptionsTable, NamesAreUniqueAndEveryRowIsDescribed) {
  std::set<std::string> seen;
  for (std::size_t i = 0; i < option_row_count(); ++i) {
    const OptionRow& r = option_rows()[i];
    EXPECT_TRUE(seen.insert(r.name).second) << "duplicate key " << r.name;
    EXPECT_GT(std::strlen(r.syntax), 0u) << r.name;
    EXPECT_GT(std::strlen(r.meaning), 0u) << r.name;
    EXPECT_EQ(find_option_row(r.name, std::strlen(r.name)), &r) << r.name;
  }
  // A prefix or an extension of a key is not the key.
  EXPECT_EQ(find_option_row("prot", 4), nullptr);
  EXPECT_EQ(find_option_row("protectx", 8), nullptr);
  EXPECT_EQ(find_option_row("protect", 7)->key, OptionKey::kProtect);
}

TEST(OptionsTable, EveryKeyTheShimTookBeforeTheTableIsARow) {
  for (const char* k : {"protect",
                        "gc_delay",
                        "purge_delay",
                        "stats",
                        "on_error",
                        "thread_cache",
                        "live",
                        "ram",
                        "freelist_hardened",
                        "redzone",
                        "poison",
                        "quarantine",
                        "guard_pages",
                        "fail_slab",
                        "fail_page",
                        "fail_platform",
                        "fail_seed",
                        "fail_times",
                        "fail_space",
                        "fail_verbose",
                        "fail_failslab",
                        "fail_fail_page_alloc",
                        "fail_fail_platform"})
    EXPECT_NE(find_option_row(k, std::strlen(k)), nullptr) << k;
}

// What each kind's syntax promises, against the parser.
TEST(OptionsTable, EachKindParsesWhatHelpSaysAndRefusesGarbage) {
  struct Sample {
    OptionKind kind;
    const char* good[4];
    const char* bad[3];
  };
  const Sample samples[] = {
      {OptionKind::kBool, {"on", "off", "1", "0"}, {"maybe", "", "2"}},
      {OptionKind::kDuration, {"5s", "250ms", "1min", "7"}, {"5x", "", "99999999999s"}},
      {OptionKind::kSize, {"0", "64M", "0x4000000", "1G"}, {"1Q", "", "K"}},  // ram= wants 0 or 64M+
      {OptionKind::kFaultRate, {"10", "0.5%", "100%", "off"}, {"0", "101%", "x"}},
  };
  unsigned rows_checked = 0;
  for (std::size_t i = 0; i < option_row_count(); ++i) {
    const OptionRow& r = option_rows()[i];
    for (const Sample& s : samples) {
      if (s.kind != r.kind) continue;
      ++rows_checked;
      for (const char* g : s.good) {
        Options o;
        EXPECT_EQ(apply_option(&o, view(r.name, g)), OptionApply::kApplied) << r.name << "=" << g;
      }
      for (const char* b : s.bad) {
        Options o;
        EXPECT_EQ(apply_option(&o, view(r.name, b)), OptionApply::kBadValue) << r.name << "=" << b;
      }
    }
  }
  EXPECT_GE(rows_checked, 12u);
}

TEST(OptionsTable, RamBelowWhatTheHeapBootsOverIsABadValue) {
  // With ram=32M the heap did not boot and every allocation of the program failed, with no
  // word about the option (review): a bad value now, warned about, the default kept.
  Options o;
  EXPECT_EQ(apply_option(&o, view("ram", "32M")), OptionApply::kBadValue);
  EXPECT_EQ(o.ram, 0u);
  EXPECT_EQ(apply_option(&o, view("ram", "64M")), OptionApply::kApplied);
  EXPECT_EQ(o.ram, std::uint64_t{64} << 20);
  EXPECT_EQ(apply_option(&o, view("ram", "0")), OptionApply::kApplied);
  EXPECT_EQ(o.ram, 0u);
}

TEST(OptionsTable, ValuesLandInTheirFields) {
  Options o;
  EXPECT_EQ(apply_option(&o, view("protect", "reclaim")), OptionApply::kApplied);
  EXPECT_EQ(o.protect, ProtectorMode::kReclaim);
  EXPECT_EQ(apply_option(&o, view("gc_delay", "250ms")), OptionApply::kApplied);
  EXPECT_EQ(o.gc_delay_ns, 250'000'000u);
  EXPECT_EQ(apply_option(&o, view("purge_delay", "off")), OptionApply::kApplied);
  EXPECT_EQ(o.purge_delay_ns, 0u);
  EXPECT_EQ(apply_option(&o, view("stats", "/tmp/x.stats")), OptionApply::kApplied);
  EXPECT_TRUE(o.stats);
  EXPECT_STREQ(o.stats_path, "/tmp/x.stats");
  EXPECT_EQ(apply_option(&o, view("on_error", "report")), OptionApply::kApplied);
  EXPECT_TRUE(o.on_error_report);
  EXPECT_EQ(apply_option(&o, view("ram", "64M")), OptionApply::kApplied);
  EXPECT_EQ(o.ram, 64u << 20);
  EXPECT_EQ(apply_option(&o, view("quarantine", "1M")), OptionApply::kApplied);
  EXPECT_EQ(o.hardening.quarantine_bytes, 1u << 20);
  EXPECT_EQ(apply_option(&o, view("guard_pages", "on")), OptionApply::kApplied);
  EXPECT_TRUE(o.hardening.guard_pages);
  EXPECT_EQ(apply_option(&o, view("fail_platform", "2")), OptionApply::kApplied);
  EXPECT_TRUE(o.fault_on[static_cast<unsigned>(FaultPoint::kPlatform)]);
  EXPECT_EQ(o.fault[static_cast<unsigned>(FaultPoint::kPlatform)].interval, 2u);
  EXPECT_EQ(apply_option(&o, view("fail_failslab", "3")), OptionApply::kApplied);  // the alias
  EXPECT_EQ(o.fault[static_cast<unsigned>(FaultPoint::kSlab)].interval, 3u);
  EXPECT_EQ(apply_option(&o, view("fail_times", "-1")), OptionApply::kApplied);
  EXPECT_EQ(apply_option(&o, view("fail_times", "-2")), OptionApply::kBadValue);
  EXPECT_EQ(apply_option(&o, view("fail_seed", "7")), OptionApply::kApplied);
  for (const FaultConfig& c : o.fault) EXPECT_EQ(c.seed, 7u);
  EXPECT_EQ(apply_option(&o, view("purge_delay", "0")), OptionApply::kBadValue);
  EXPECT_EQ(o.purge_delay_ns, 0u);  // as the off above left it: a bad value changes nothing
}

// A stats path longer than the field is refused, not cut to a path the user never named
// (before stop 48 a 300-character path wrote a file named by its first 255).
TEST(OptionsTable, AStatsPathTooLongIsABadValueNotACutPath) {
  Options o;
  std::string path = "/tmp/" + std::string(sizeof o.stats_path, 'd') + "/x.stats";
  EXPECT_EQ(apply_option(&o, view("stats", path.c_str())), OptionApply::kBadValue);
  EXPECT_FALSE(o.stats);
  EXPECT_STREQ(o.stats_path, "");
  std::string longest = "/" + std::string(sizeof o.stats_path - 2, 'e');
  EXPECT_EQ(apply_option(&o, view("stats", longest.c_str())), OptionApply::kApplied);
  EXPECT_EQ(std::string(o.stats_path), longest);
}

// KMM_OPTIONS reads sizes and durations with the scenario language's parser (base/units.h):
// what a scenario's boot line takes, KMM_OPTIONS takes too. gc_delay=1min was warned about
// ("bad value") and ignored before; now it sets the delay, with no warning.
TEST(OptionsTable, GcDelayTakesWhatTheScenarioLanguageTakes) {
  Options o;
  unsigned bad;
  {
    CaptureWarnings c;
    bad = parse_options("gc_delay=1min", visit_option, &o);
  }
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(g_captured, "");
  EXPECT_EQ(o.gc_delay_ns, 60'000'000'000u);
  for (const char* v : {"2m", "5s", "250ms", "100us", "10ns", "3"}) {
    Options p;
    std::uint64_t want = 0;
    ASSERT_TRUE(parse_duration_ns(v, std::strlen(v), &want)) << v;
    EXPECT_EQ(apply_option(&p, view("gc_delay", v)), OptionApply::kApplied) << v;
    EXPECT_EQ(p.gc_delay_ns, want) << v;
    EXPECT_EQ(apply_option(&p, view("purge_delay", v)), OptionApply::kApplied) << v;
    EXPECT_EQ(p.purge_delay_ns, want) << v;
  }
  // Overflow is refused now (it wrapped before): the delay stays as it was.
  Options q;
  EXPECT_EQ(apply_option(&q, view("gc_delay", "18446744074s")), OptionApply::kBadValue);
  EXPECT_EQ(q.gc_delay_ns, kDefaultGcDelayNs);
  EXPECT_EQ(apply_option(&q, view("ram", "0x40000000")), OptionApply::kApplied);
  EXPECT_EQ(q.ram, 1u << 30);
}

// The defaults the table shows are the ones the protector defines (protect/protector_mode.h).
TEST(OptionsTable, DefaultsComeFromTheProtector) {
  const OptionRow* gc = find_option_row("gc_delay", 8);
  ASSERT_NE(gc, nullptr);
  std::uint64_t ns = 0;
  ASSERT_TRUE(parse_duration_ns(gc->default_value, std::strlen(gc->default_value), &ns));
  EXPECT_EQ(ns, kDefaultGcDelayNs);
  EXPECT_EQ(Options{}.gc_delay_ns, kDefaultGcDelayNs);
  const OptionRow* protect = find_option_row("protect", 7);
  ASSERT_NE(protect, nullptr);
  EXPECT_STREQ(protect->syntax, kProtectorModeSyntax);
  for (const char* name : kProtectorModeNames) {
    Options p;
    EXPECT_EQ(apply_option(&p, view("protect", name)), OptionApply::kApplied) << name;
    EXPECT_STREQ(protector_mode_name(p.protect), name);
  }
}

TEST(OptionsTable, UnknownKeyAndBadValueAreWarnedAboutAsBefore) {
  Options o;
  unsigned bad;
  {
    CaptureWarnings c;
    bad = parse_options("bogus=1:protect=reclaim:gc_delay=5x:nokey", visit_option, &o);
  }
  EXPECT_EQ(bad, 2u);  // the unknown key and the item without '='
  EXPECT_EQ(g_captured,
            "kmm: warning: unknown option: bogus=1\n"
            "kmm: warning: bad value for option gc_delay: 5x (want DURATION; kmm help options)\n"
            "kmm: warning: malformed option (want key=value): nokey\n");
  EXPECT_EQ(o.protect, ProtectorMode::kReclaim);
  EXPECT_EQ(o.gc_delay_ns, Options{}.gc_delay_ns);
  EXPECT_EQ(apply_option(&o, view("bogus", "1")), OptionApply::kUnknownKey);
}

// docs/PRELOAD.md's KMM_OPTIONS table (the one after the header row "| key | values | default
// |") names, in its first cell, every visible row of the table and no key the table lacks.
TEST(OptionsTable, PreloadDocListsExactlyTheTable) {
  std::ifstream doc(KMM_SOURCE_DIR "/docs/PRELOAD.md");
  ASSERT_TRUE(doc) << "docs/PRELOAD.md not found under " KMM_SOURCE_DIR;
  std::set<std::string> documented;
  std::string line;
  bool in_table = false;
  while (std::getline(doc, line)) {
    if (!in_table) {
      in_table = line.rfind("| key | values | default |", 0) == 0;
      continue;
    }
    if (line.rfind("|---", 0) == 0) continue;
    if (line.rfind("| ", 0) != 0) break;  // the table ends
    std::string first = line.substr(2, line.find(" |", 2) - 2);
    for (std::size_t at = first.find('`'); at != std::string::npos; at = first.find('`', at)) {
      std::size_t end = first.find('`', at + 1);
      ASSERT_NE(end, std::string::npos) << line;
      documented.insert(first.substr(at + 1, end - at - 1));
      at = end + 1;
    }
  }
  ASSERT_FALSE(documented.empty()) << "no KMM_OPTIONS table in docs/PRELOAD.md";
  std::set<std::string> visible;
  for (std::size_t i = 0; i < option_row_count(); ++i)
    if (!option_rows()[i].hidden) visible.insert(option_rows()[i].name);
  for (const std::string& k : visible) EXPECT_TRUE(documented.count(k)) << k << ": in the table, not in PRELOAD.md";
  for (const std::string& k : documented) EXPECT_TRUE(visible.count(k)) << k << ": in PRELOAD.md, not in the table";
}

}  // namespace
}  // namespace kmm::shim

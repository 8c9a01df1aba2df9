// Tests of replay/replay and replay/arena: every policy on a tiny handmade trace with the figures
// worked out by hand, the arena's boundary tags, failures under a small RAM, the output
// formats, the shipped real traces through every policy (invariants checked along the way),
// and `kmm trace` end to end on a test program with threads, fork, allocation before main,
// aligned and C++ allocations.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/fault_inject.h"
#include "replay/arena.h"
#include "replay/replay.h"
#include "replay/trace.h"

using namespace kmm::scenario;

namespace {

Trace parse(const std::string& text) {
  std::istringstream in(text);
  std::string err;
  auto t = read_trace(in, "hand.rep", {}, &err);
  EXPECT_TRUE(t) << err;
  return t ? *t : Trace{};
}

// 100 B, 3000 B, 20000 B; free the 3000; grow the 100 to 200; free the 20000.
const char* kTiny = "0\n3\n6\n1\na 0 100\na 1 3000\na 2 20000\nf 1\nr 0 200\nf 2\n";

ReplayResult run(const std::string& policy, const Trace& t, std::uint64_t ram = 1 << 20) {
  ReplayConfig cfg;
  cfg.ram_bytes = ram;
  cfg.check = true;
  cfg.timeline_points = 100;
  ReplayResult r = replay(t, policy, cfg);
  EXPECT_EQ(r.error, "") << policy;
  return r;
}

}  // namespace

TEST(Arena, BoundaryTagsByHand) {
  Arena a(1 << 20, Arena::Fit::kFirst);
  std::string why;
  std::uint64_t b0, b1, b2;
  // Blocks: 100 + 8 tags -> 112; 3000 -> 3008; 20000 -> 20008. Payloads at prologue + 4.
  std::uint64_t p0 = a.alloc(100, &b0), p1 = a.alloc(3000, &b1), p2 = a.alloc(20000, &b2);
  EXPECT_EQ(p0, 8u);
  EXPECT_EQ(b0, 112u);
  EXPECT_EQ(p1, 8u + 112);
  EXPECT_EQ(b1, 3008u);
  EXPECT_EQ(b2, 20008u);
  EXPECT_EQ(a.brk(), 4u + 112 + 3008 + 20008);
  ASSERT_TRUE(a.check(&why)) << why;
  a.free(p1);  // a hole of 3008 between two live blocks
  EXPECT_EQ(a.free_blocks(), 1u);
  EXPECT_EQ(a.free_total(), (1u << 20) - a.brk() + 3008);
  ASSERT_TRUE(a.check(&why)) << why;
  std::uint64_t nb;
  EXPECT_EQ(a.realloc(p0, 200, &nb), p0);  // grows into the hole: 208, the rest stays free
  EXPECT_EQ(nb, 208u);
  ASSERT_TRUE(a.check(&why)) << why;
  a.free(p2);  // merges with the hole below and trims the top
  EXPECT_EQ(a.brk(), 4u + 208);
  EXPECT_EQ(a.free_blocks(), 0u);
  ASSERT_TRUE(a.check(&why)) << why;
  EXPECT_EQ(Arena::block_for(0), 16u);
  EXPECT_EQ(Arena::block_for(9), 24u);
}

TEST(Arena, FirstFitVersusBestFit) {
  // Holes of 64 and 32 bytes (blocks 72 and 40), then a request for 24 (block 32): first fit
  // takes the lower hole (the 72 one, split), best fit the 40 one (the smaller that fits).
  for (Arena::Fit fit : {Arena::Fit::kFirst, Arena::Fit::kBest}) {
    Arena a(1 << 16, fit);
    std::uint64_t b;
    std::uint64_t h1 = a.alloc(64, &b);
    a.alloc(8, &b);
    std::uint64_t h2 = a.alloc(32, &b);
    a.alloc(8, &b);
    a.free(h1);
    a.free(h2);
    std::uint64_t p = a.alloc(24, &b);
    EXPECT_EQ(p, fit == Arena::Fit::kFirst ? h1 : h2);
    std::string why;
    EXPECT_TRUE(a.check(&why)) << why;
  }
}

TEST(Replay, TinyTraceTextbookArenas) {
  Trace t = parse(kTiny);
  for (const char* p : {"first-fit", "best-fit"}) {
    ReplayResult r = run(p, t);
    // Peak after the third allocation: 112 + 3008 + 20008 = 23128 bytes of arena.
    EXPECT_EQ(r.peak_footprint, 23128u) << p;
    EXPECT_EQ(r.peak_live, 23100u);
    EXPECT_EQ(r.internal_at_peak, 28u);  // 12 + 8 + 8 bytes of tags and padding
    EXPECT_EQ(r.external_at_peak, 0u);
    EXPECT_DOUBLE_EQ(r.utilization, 23100.0 / 23128.0);
    // Overheads: 12, 8, 8 and the realloc's 208 - 200 = 8 -> 36 / 4.
    EXPECT_DOUBLE_EQ(r.overhead_per_alloc, 9.0);
    EXPECT_EQ(r.end_footprint, 208u);
    EXPECT_EQ(r.end_free, r.capacity - 208);
    EXPECT_EQ(r.end_largest, r.capacity - 208);
    EXPECT_EQ(r.failures, 0u);
    EXPECT_EQ(r.allocs, 4u);
  }
}

TEST(Replay, TinyTraceBuddy) {
  Trace t = parse(kTiny);
  ReplayResult r = run("buddy", t);
  // 100 -> one page, 3000 -> one page, 20000 -> order 3 (8 pages): 10 pages at the peak.
  EXPECT_EQ(r.peak_footprint, 10u * 4096);
  EXPECT_EQ(r.internal_at_peak, 40960u - 23100);
  EXPECT_EQ(r.external_at_peak, 0u);
  // (4096-100) + (4096-3000) + (32768-20000) + (4096-200, the realloc stays in its page) = 21756
  EXPECT_DOUBLE_EQ(r.overhead_per_alloc, 21756.0 / 4);
  EXPECT_EQ(r.end_footprint, 4096u);
}

TEST(Replay, HeaderIdCountDoesNotSizeMemory) {
  // A header may claim 2^31 ids for a two-line trace: the replay sizes its table by the ids
  // the ops use (before, this asked for 2^31 slots: 48 GiB).
  Trace t = parse(kTiny);
  t.num_ids = 1u << 31;
  for (const char* policy : {"slab", "buddy", "first-fit"}) {
    ReplayResult r = run(policy, t);
    EXPECT_EQ(r.ops, 6u) << policy;
  }
}

TEST(Replay, SparseIdsReplayLikeDenseOnes) {
  // Any id below the header's count is valid, up to 2^31 - 1: the slot table follows the ids
  // in use (a table indexed by id asked for 2^31 slots here and threw std::bad_alloc).
  Trace sparse = parse(
      "0\n2147483648\n6\n1\na 2147483647 100\na 5 3000\na 1000000000 20000\nf 5\nr 2147483647 200\n"
      "f 1000000000\n");
  Trace dense = parse(kTiny);
  for (const char* policy : {"first-fit", "slab", "buddy"}) {
    ReplayResult a = run(policy, dense), b = run(policy, sparse);
    EXPECT_EQ(b.ops, 6u) << policy;
    EXPECT_EQ(b.peak_footprint, a.peak_footprint) << policy;
    EXPECT_EQ(b.end_footprint, a.end_footprint) << policy;
    EXPECT_EQ(b.allocs, a.allocs) << policy;
    EXPECT_DOUBLE_EQ(b.overhead_per_alloc, a.overhead_per_alloc) << policy;
  }
}

TEST(Replay, TinyTraceKmallocPolicies) {
  Trace t = parse(kTiny);
  // slab and pow2 (100 -> 128, 3000 -> 4096, 20000 -> 32768 either way): the kmalloc-128 slab
  // is one page, the kmalloc-4k slab 8 pages (order 3), the 20000-byte block 8 pages (order
  // 3); the realloc to 200 then opens a kmalloc-256 slab (one page) while the freed 3000's
  // slab is kept empty (min_partial): 1 + 8 + 8 + 1 = 18 pages at the peak. At the end: the
  // empty 128 and 4k slabs (kept) and the 256 slab: 1 + 8 + 1 = 10 pages.
  for (const char* p : {"slab", "pow2"}) {
    ReplayResult r = run(p, t);
    EXPECT_EQ(r.peak_footprint, 18u * 4096) << p;
    EXPECT_EQ(r.end_footprint, 10u * 4096) << p;
  }
  // kmalloc2: the 20000 bytes take exactly 5 pages, not 8: 1 + 8 + 5 + 1 = 15 pages.
  for (const char* p : {"kmalloc2", "kmalloc2-source"}) {
    ReplayResult r = run(p, t);
    EXPECT_EQ(r.peak_footprint, 15u * 4096) << p;
    EXPECT_EQ(r.end_footprint, 10u * 4096) << p;
    EXPECT_LT(r.overhead_per_alloc, run("slab", t).overhead_per_alloc);
  }
  // malloc-simple: kmalloc2's blocks plus the region records' slab (and its index): more.
  ReplayResult simple = run("simple", t);
  EXPECT_GT(simple.peak_footprint, 15u * 4096);
  // A fixed heap: one block of 5/4 * peak live + 64K, page-rounded, taken at spawn.
  ReplayResult heap = run("heap", t);
  EXPECT_GE(heap.peak_footprint, 23100u + 23100 / 4 + 65536);
  EXPECT_EQ(heap.end_footprint, heap.peak_footprint);
  EXPECT_GT(run("smalloc", t).peak_footprint, 0u);
}

TEST(Replay, FirstFailureUnderSmallRam) {
  // 256K of RAM; 60 blocks of 3000 then one of 300000: the big one cannot fit anywhere.
  std::string text = "0\n61\n61\n1\n";
  for (int i = 0; i < 60; ++i) text += "a " + std::to_string(i) + " 3000\n";
  text += "a 60 300000\n";
  Trace t = parse(text);
  for (const std::string& p : replay_policies()) {
    ReplayConfig cfg;
    cfg.ram_bytes = 256 << 10;
    ReplayResult r = replay(t, p, cfg);
    if (!r.error.empty()) {
      ADD_FAILURE() << p << ": " << r.error;
      continue;
    }
    ASSERT_TRUE(r.failed) << p << " peak " << r.peak_footprint << " capacity " << r.capacity;
    EXPECT_GE(r.failures, 1u) << p;
    if (r.fail_op == 60) {
      EXPECT_EQ(r.fail_size, 300000u) << p;
      EXPECT_LT(r.fail_largest, 300000u) << p;
    }
    EXPECT_LE(r.fail_largest, r.fail_free) << p;
  }
}

TEST(Replay, UnknownPolicyAndOutputs) {
  Trace t = parse(kTiny);
  EXPECT_FALSE(replay_policy_known("tlsf"));
  ReplayResult bad = replay(t, "tlsf", {});
  EXPECT_NE(bad.error.find("unknown policy"), std::string::npos);
  std::vector<ReplayResult> rs = {run("buddy", t), run("best-fit", t)};
  std::ostringstream table, csv, json, tl, svg;
  ReplayConfig cfg;
  print_replay_table(table, t, cfg, rs);
  print_replay_csv(csv, rs);
  print_replay_json(json, t, cfg, rs);
  write_timeline_csv(tl, rs);
  write_timeline_svg(svg, t, rs);
  EXPECT_NE(table.str().find("best-fit"), std::string::npos);
  EXPECT_EQ(csv.str().rfind("policy,error,ops", 0), 0u);
  EXPECT_NE(csv.str().find("buddy,,6,4,0,"), std::string::npos);
  EXPECT_NE(json.str().find("\"peak_footprint\": 40960"), std::string::npos);
  EXPECT_EQ(tl.str().rfind("policy,op,footprint,live,largest_free\n", 0), 0u);
  EXPECT_NE(tl.str().find("best-fit,5,208,200,"), std::string::npos);
  EXPECT_NE(svg.str().find("<svg"), std::string::npos);
  EXPECT_NE(svg.str().find("</svg>"), std::string::npos);
  EXPECT_EQ(rs[0].map.front(), '|');
}

TEST(Replay, JsonOfNamesThatAreNotUtf8IsWrittenNotThrown) {
  // A trace's file name and its lenient problems (which quote the bad line) are bytes, not
  // UTF-8: nlohmann's dump threw type_error 316, and kmm aborted.
  Trace t = parse(kTiny);
  t.name = "bad-\xff\xfe.rep";
  t.problems.push_back("line 6: bad op '\xff\xfe'");
  std::vector<ReplayResult> rs = {run("buddy", t)};
  std::ostringstream json;
  ReplayConfig cfg;
  EXPECT_NO_THROW(print_replay_json(json, t, cfg, rs));
  EXPECT_NE(json.str().find("\"peak_footprint\""), std::string::npos) << json.str();
  EXPECT_NE(json.str().find("bad-\xef\xbf\xbd"), std::string::npos) << "U+FFFD in place of the bad bytes";
}

// ---- what a failure says ----
TEST(Replay, LenientFirstFailureIsTheFilesOperationNumber) {
  // The op was the index among the operations kept: 1 here, where the file's op is 2.
  std::istringstream in("0\n3\n3\n1\nq 0 8\na 1 8\na 2 1099511627776\n");
  TraceReadOptions lenient;
  lenient.lenient = true;
  std::string err;
  auto t = read_trace(in, "lenient.rep", lenient, &err);
  ASSERT_TRUE(t) << err;
  ReplayResult r = run("slab", *t, 4 << 20);
  ASSERT_TRUE(r.failed);
  EXPECT_EQ(r.fail_op, 2u);
}

TEST(Replay, OperationsOnAFailedIdAreSkipped) {
  // replay.h says so; a realloc of the failed id was replayed as a fresh allocation (8 bytes
  // live that the program never had in this replay).
  Trace t = parse("0\n1\n3\n1\na 0 1099511627776\nr 0 8\nf 0\n");
  for (const char* policy : {"slab", "first-fit", "buddy"}) {
    ReplayResult r = run(policy, t, 4 << 20);
    EXPECT_EQ(r.failures, 1u) << policy;
    EXPECT_EQ(r.allocs, 1u) << policy;
    EXPECT_EQ(r.fail_op, 0u) << policy;
    EXPECT_EQ(r.peak_live, 0u) << policy;
    EXPECT_EQ(r.end_footprint, 0u) << policy;
  }
}

TEST(Replay, FirstFailureSaysItsKindAndTheExactSize) {
  // "1024.0K asked" for 1048577 bytes read as an out-of-memory failure; it is above pow2's
  // 1 MiB cap. Each failure now says which of three it is.
  Trace over_cap = parse("0\n1\n1\n1\na 0 1048577\n");
  ReplayResult cap = run("pow2", over_cap, 16 << 20);
  ASSERT_TRUE(cap.failed);
  EXPECT_EQ(cap.fail_kind, FailKind::kAboveLimit);
  std::ostringstream table;
  print_replay_table(table, over_cap, ReplayConfig{}, {cap});
  EXPECT_NE(table.str().find("op 0: 1048577 B asked"), std::string::npos) << table.str();
  EXPECT_NE(table.str().find("above the policy's limit"), std::string::npos) << table.str();

  Trace too_big = parse("0\n1\n1\n1\na 0 3000000\n");  // under slab's 4 MiB cap, over the RAM
  ReplayResult oom = run("slab", too_big, 1 << 20);
  ASSERT_TRUE(oom.failed);
  EXPECT_EQ(oom.fail_kind, FailKind::kOutOfMemory);
  std::ostringstream csv, json;
  print_replay_csv(csv, {oom});
  print_replay_json(json, too_big, ReplayConfig{}, {oom});
  EXPECT_NE(csv.str().find(",first_fail_kind\n"), std::string::npos) << csv.str();
  EXPECT_NE(csv.str().find(",out of memory\n"), std::string::npos) << csv.str();
  EXPECT_NE(json.str().find("\"kind\": \"out of memory\""), std::string::npos) << json.str();

  // Every other page of the machine freed: half the memory is free, no two pages together.
  std::uint64_t pages = run("buddy", parse(kTiny), 1 << 20).capacity / 4096;
  std::string text = fmt::format("0\n{}\n{}\n1\n", pages + 1, pages + pages / 2 + 1);
  for (std::uint64_t i = 0; i < pages; ++i) text += fmt::format("a {} 4096\n", i);
  for (std::uint64_t i = 0; i < pages; i += 2) text += fmt::format("f {}\n", i);
  text += fmt::format("a {} 8192\n", pages);
  Trace holes = parse(text);
  ReplayResult frag = run("buddy", holes, 1 << 20);
  ASSERT_TRUE(frag.failed);
  EXPECT_EQ(frag.fail_op, holes.ops.size() - 1);
  EXPECT_EQ(frag.fail_kind, FailKind::kMissingMemory);
}

TEST(Replay, SvgOfNamesThatAreNotUtf8OrHoldControlsIsWellFormed) {
  // The file name went into the SVG as it was: a 0xff byte and a ^A made it unreadable XML.
  Trace t = parse(kTiny);
  t.name = "bad\xffname\x01<&>.rep";
  std::vector<ReplayResult> rs = {run("buddy", t)};
  std::ostringstream svg;
  write_timeline_svg(svg, t, rs);
  const std::string s = svg.str();
  EXPECT_NE(s.find("bad\xef\xbf\xbdname\xef\xbf\xbd&lt;&amp;&gt;.rep"), std::string::npos);
  EXPECT_EQ(markup_text("a\"b'c\xc3\xa9\xe2\x82"), "a&quot;b&#39;c\xc3\xa9\xef\xbf\xbd");
  for (char c : s) EXPECT_TRUE(static_cast<unsigned char>(c) >= 0x20 || c == '\n' || c == '\t') << int(c);
}

// ---- the shipped traces through every policy ----
class ShippedTrace : public testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(ShippedTrace, ReplaysWithInvariants) {
  auto [file, policy] = GetParam();
  std::string err;
  auto t = read_trace_file(std::string(KMM_TRACES_DIR) + "/" + file, {}, &err);
  ASSERT_TRUE(t) << err;
  ReplayConfig cfg;
  cfg.ram_bytes = 256ull << 20;
  cfg.check = true;  // allocator invariants at every sample
  cfg.timeline_points = 20;
  ReplayResult r = replay(*t, policy, cfg);
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(r.ops, t->ops.size());
  EXPECT_EQ(r.failures, 0u) << "first failure at op " << r.fail_op;
  EXPECT_EQ(r.peak_live, t->peak_live_bytes);
  EXPECT_GE(r.peak_footprint, r.peak_live);
  EXPECT_LE(r.utilization, 1.0);
  EXPECT_LE(r.internal_at_peak + r.external_at_peak, r.peak_footprint);
  EXPECT_LE(r.end_largest, r.end_free);
  EXPECT_LE(r.end_free, cfg.ram_bytes);
}

INSTANTIATE_TEST_SUITE_P(Traces, ShippedTrace,
                         testing::Combine(testing::Values("python3-imports.rep.gz", "sqlite3-script.rep.gz",
                                                          "git-log.rep.gz", "zebra-startup.rep.gz"),
                                          testing::ValuesIn(replay_policies())),
                         [](const auto& param_info) {
                           const auto& pr = param_info.param;
                           std::string s = std::get<0>(pr).substr(0, std::get<0>(pr).find('.')) + "_" + std::get<1>(pr);
                           for (char& c : s)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return s;
                         });

// ---- fault injection (--fail-slab / --fail-page) ----
// A shipped trace with failslab failing every 50th call and fail_page_alloc 2 % of calls:
// the operations that failed are counted apart from genuine out-of-memory (none at 256M),
// the allocator's invariants hold at every sample, each policy sees the same schedule (two
// runs agree), and the CSV/JSON carry the counts.
TEST(Replay, FaultInjectionIsReportedApartFromOutOfMemory) {
  std::string err;
  auto t = read_trace_file(std::string(KMM_TRACES_DIR) + "/sqlite3-script.rep.gz", {}, &err);
  ASSERT_TRUE(t) << err;
  ReplayConfig cfg;
  cfg.ram_bytes = 256ull << 20;
  cfg.check = true;
  cfg.timeline_points = 50;
  kmm::FaultConfig slab;
  slab.interval = 50;
  slab.probability_ppm = 1'000'000;
  slab.verbose = 0;
  kmm::FaultConfig page;
  page.probability_ppm = 20'000;
  page.seed = 5;
  page.verbose = 0;
  cfg.fault[0] = slab;
  cfg.fault[1] = page;
  cfg.fault_on[0] = cfg.fault_on[1] = true;
  std::vector<ReplayResult> rs;
  for (const char* policy : {"slab", "kmalloc2", "simple", "first-fit"}) {
    ReplayResult r = replay(*t, policy, cfg);
    ReplayResult again = replay(*t, policy, cfg);
    EXPECT_EQ(r.error, "") << policy;
    EXPECT_EQ(r.failures, 0u) << policy << ": injected failures counted as out of memory";
    EXPECT_FALSE(r.failed) << policy;
    EXPECT_TRUE(r.injecting);
    EXPECT_EQ(r.injected_ops, again.injected_ops) << policy;
    EXPECT_EQ(r.fault_failures[0], again.fault_failures[0]) << policy;
    EXPECT_EQ(r.fault_failures[1], again.fault_failures[1]) << policy;
    if (std::string(policy) == "first-fit") {
      EXPECT_EQ(r.fault_calls[0] + r.fault_calls[1], 0u);  // a textbook arena never asks kmm
      EXPECT_EQ(r.injected_ops, 0u);
    } else {
      EXPECT_GT(r.injected_ops, 0u) << policy;
      EXPECT_GE(r.fault_failures[0] + r.fault_failures[1], r.injected_ops) << policy;
    }
    rs.push_back(r);
  }
  EXPECT_FALSE(kmm::fault_enabled(kmm::FaultPoint::kSlab));  // off after each policy
  std::ostringstream csv, json, table;
  print_replay_csv(csv, rs);
  print_replay_json(json, *t, cfg, rs);
  print_replay_table(table, *t, cfg, rs);
  EXPECT_NE(csv.str().find(",injected_ops,failslab_calls,failslab_failures,fail_page_alloc_calls,"), std::string::npos);
  EXPECT_NE(json.str().find("\"fault_injection\""), std::string::npos);
  EXPECT_NE(json.str().find("\"injected_ops\""), std::string::npos);
  EXPECT_NE(table.str().find("fault injection (failures injected / calls seen"), std::string::npos) << table.str();
}

// ---- kmm trace end to end ----
#if defined(KMM_BIN) && defined(KMM_VICTIM)
TEST(TraceEndToEnd, ThreadsForkBeforeMainAlignedAndNew) {
#ifdef KMM_SANITIZED
  // The victim is built with the sanitizer too, and a sanitizer's own malloc interceptors in
  // the executable take precedence over any preloaded recorder: nothing would be recorded.
  GTEST_SKIP() << "the recorder cannot interpose malloc in a sanitizer-instrumented program";
#endif
  std::string dir = testing::TempDir() + "kmm-e2e-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  std::string out = dir + "/victim.rep";
  std::string cmd =
      std::string(KMM_BIN) + " trace -o " + out + " --with-callers -- " + KMM_VICTIM + " 2>" + dir + "/log";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::string err;
  auto t = read_trace_file(out, {}, &err);
  ASSERT_TRUE(t) << err;
  auto has = [&](OpKind k, std::uint64_t size) {
    for (const TraceOp& op : t->ops)
      if (op.kind == k && op.size == size) return true;
    return false;
  };
  EXPECT_TRUE(has(OpKind::kAlloc, 1234567));  // before main (a static constructor)
  EXPECT_TRUE(has(OpKind::kAlloc, 1001));     // malloc
  EXPECT_TRUE(has(OpKind::kAlloc, 200));      // calloc(10, 20)
  EXPECT_TRUE(has(OpKind::kRealloc, 5003));   // realloc
  EXPECT_TRUE(has(OpKind::kAlloc, 40));       // new int[10]
  EXPECT_TRUE(has(OpKind::kAlloc, 333));      // the threads' blocks
  bool aligned = false;
  std::uint32_t max_tid = 0;
  for (const TraceOp& op : t->ops) {
    if (op.size == 256 && op.align_log2 == 6) aligned = true;  // posix_memalign(64, 256)
    max_tid = std::max(max_tid, op.tid);
  }
  EXPECT_TRUE(aligned);
  EXPECT_GE(max_tid, 5u);  // main + 4 threads
  EXPECT_GE(t->modules.size(), 2u);
  bool victim_module = false;
  for (const std::string& m : t->modules) victim_module |= m.find("kmm-trace-victim") != std::string::npos;
  EXPECT_TRUE(victim_module);
  // The forked child wrote its own trace: victim.rep.PID, with its 777-byte block.
  bool child = false;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind("victim.rep.", 0) != 0) continue;
    auto c = read_trace_file(e.path().string(), {}, &err);
    ASSERT_TRUE(c) << err;
    for (const TraceOp& op : c->ops) child |= op.kind == OpKind::kAlloc && op.size == 777;
  }
  EXPECT_TRUE(child);
  // The recording replays.
  ReplayResult r = replay(*t, "slab", ReplayConfig{});
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.failures, 0u);
  std::filesystem::remove_all(dir);
}

TEST(TraceEndToEnd, BinTrue) {
  std::string out = testing::TempDir() + "kmm-true-" + std::to_string(getpid()) + ".rep.gz";
  std::string cmd = std::string(KMM_BIN) + " trace -o " + out + " -- /bin/true 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::string err;
  auto t = read_trace_file(out, {}, &err);
  ASSERT_TRUE(t) << err;
  std::remove(out.c_str());
  // A failing program's status comes back.
  cmd = std::string(KMM_BIN) + " trace -o " + out + " -- /bin/false 2>/dev/null";
  int st = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(st), 1);
  std::remove(out.c_str());
}

TEST(TraceEndToEnd, TheRecorderChangesNothingAProgramCanSee) {
  // Each mode of the victim behaves as it does without the recorder: errno (was EBADF after
  // the program closed its fds, EEXIST at main after an exec), a signal handler that
  // allocates (deadlocked on the recorder's lock), a file-size limit (SIGXFSZ killed the
  // program), an impossible new (aborted instead of throwing bad_alloc).
#ifdef KMM_SANITIZED
  GTEST_SKIP() << "the recorder cannot interpose malloc in a sanitizer-instrumented program";
#endif
  std::string dir = testing::TempDir() + "kmm-manners-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::pair<const char*, const char*> modes[] = {
      {"errno", "errno kept"}, {"signals", "signals done"}, {"fsize", "fsize done"}, {"badalloc", "caught bad_alloc"}};
  for (auto [mode, want] : modes) {
    std::string out = dir + "/" + mode + ".rep", log = dir + "/" + mode + ".log";
    std::string cmd = "timeout 120 " + std::string(KMM_BIN) + " trace -o " + out + " -- " + KMM_VICTIM + " " + mode +
                      " >" + log + " 2>&1";
    int st = std::system(cmd.c_str());
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(WEXITSTATUS(st), 0) << mode << ":\n" << text;
    EXPECT_NE(text.find(want), std::string::npos) << mode << ":\n" << text;
  }
  std::filesystem::remove_all(dir);
}

TEST(TraceEndToEnd, BlocksAllocatedBeforeAnExecAreRecorded) {
#ifdef KMM_SANITIZED
  GTEST_SKIP() << "the recorder cannot interpose malloc in a sanitizer-instrumented program";
#endif
  // execv, and the varargs calls execl, execlp and execle (which gather an argv and go the
  // same way).
  for (const char* mode : {"exec", "execl", "execlp", "execle"}) {
    std::string dir = testing::TempDir() + "kmm-" + mode + "-" + std::to_string(getpid());
    std::filesystem::create_directories(dir);
    std::string out = dir + "/exec.rep";
    std::string cmd = std::string(KMM_BIN) + " trace -o " + out + " -- " + KMM_VICTIM + " " + mode + " >/dev/null 2>&1";
    ASSERT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 0) << mode;
    // The image before the exec is OUTPUT.PID; its 100 blocks of 4242 bytes were lost in the
    // buffer the exec threw away.
    std::size_t found = 0;
    for (const auto& f : std::filesystem::directory_iterator(dir)) {
      std::string err;
      auto t = read_trace_file(f.path().string(), {}, &err);
      if (!t) continue;
      for (const TraceOp& op : t->ops) found += op.kind == OpKind::kAlloc && op.size == 4242 ? 1 : 0;
    }
    EXPECT_EQ(found, 100u) << mode;
    std::filesystem::remove_all(dir);
  }
}

TEST(TraceEndToEnd, ReplayFailsWhenAPolicyCannotRun) {
  // A machine that cannot boot (100G of RAM in a 32-bit kernel space) is no result: exit 1,
  // not 0 beside an "n/a" row.
  const std::string trace = std::string(KMM_TRACES_DIR) + "/sqlite3-script.rep.gz";
  std::string cmd = std::string(KMM_BIN) + " replay --policy buddy --ram 4M " + trace + " >/dev/null 2>&1";
  EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 0);
  cmd = std::string(KMM_BIN) + " replay --policy buddy --ram 100G " + trace + " >/dev/null 2>&1";
  EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 1);
}

TEST(TraceEndToEnd, AnOutputThatCannotBeWrittenLosesNothing) {
  // -o in a directory that does not exist: the program ran, the conversion failed and the
  // raw recording was deleted with it. The output is checked before the program starts;
  // a conversion that fails still keeps the recording and says where.
  std::string dir = testing::TempDir() + "kmm-unwritable-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  std::string marker = dir + "/ran", log = dir + "/log";
  std::string cmd =
      std::string(KMM_BIN) + " trace -o " + dir + "/no-such-dir/x.rep -- sh -c 'touch " + marker + "' 2>" + log;
  EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 2);
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the program ran although its trace could not be written";
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("no-such-dir/x.rep: cannot write"), std::string::npos) << text;
  // The output's directory goes away while the program runs.
  std::string gone = dir + "/gone";
  std::filesystem::create_directories(gone);
  cmd = std::string(KMM_BIN) + " trace -o " + gone + "/x.rep -- sh -c 'rm -r " + gone + "' 2>" + log;
  EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 2);
  std::ifstream in2(log);
  text.assign((std::istreambuf_iterator<char>(in2)), std::istreambuf_iterator<char>());
  std::size_t at = text.find("the raw recording is kept in ");
  ASSERT_NE(at, std::string::npos) << text;
  std::string kept = text.substr(at + 29, text.find_first_of(" \n", at + 29) - at - 29);
  EXPECT_TRUE(std::filesystem::is_directory(kept)) << kept;
  bool raw = false;
  for (const auto& e : std::filesystem::directory_iterator(kept))
    raw |= e.path().filename().string().rfind("raw.", 0) == 0;
  EXPECT_TRUE(raw) << kept;
  std::filesystem::remove_all(kept);
  std::filesystem::remove_all(dir);
}
#endif

// Tests of replay/trace: the malloc-lab reader and kmm's superset — good input (classic traces,
// the trailer, comments, .gz), every kind of malformed input with FILE:LINE, lenient mode,
// and the writer's round trip.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>

#include "replay/trace.h"

using namespace kmm::scenario;

namespace {

std::optional<Trace> parse(const std::string& text, std::string* err, bool lenient = false) {
  std::istringstream in(text);
  TraceReadOptions o;
  o.lenient = lenient;
  return read_trace(in, "t.rep", o, err);
}

// Expects a strict failure whose message starts with "t.rep:LINE: " and contains `what`.
void expect_error(const std::string& text, int line, const std::string& what) {
  std::string err;
  auto t = parse(text, &err);
  EXPECT_FALSE(t.has_value()) << text;
  std::string prefix = "t.rep:" + std::to_string(line) + ": ";
  EXPECT_EQ(err.rfind(prefix, 0), 0u) << "got: " << err;
  EXPECT_NE(err.find(what), std::string::npos) << "got: " << err;
}

}  // namespace

TEST(Trace, ClassicMallocLab) {
  // The shape of CS:APP's short1-bal.rep.
  std::string err;
  auto t = parse("20000\n3\n6\n1\na 0 2040\na 1 2040\nf 1\na 2 48\nr 0 4072\nf 0\n", &err);
  ASSERT_TRUE(t) << err;
  EXPECT_EQ(t->heap_hint, 20000u);
  EXPECT_EQ(t->num_ids, 3u);
  EXPECT_EQ(t->weight, 1u);
  ASSERT_EQ(t->ops.size(), 6u);
  EXPECT_EQ(t->ops[0].kind, OpKind::kAlloc);
  EXPECT_EQ(t->ops[0].size, 2040u);
  EXPECT_EQ(t->ops[2].kind, OpKind::kFree);
  EXPECT_EQ(t->ops[2].id, 1u);
  EXPECT_EQ(t->ops[4].kind, OpKind::kRealloc);
  EXPECT_EQ(t->ops[4].size, 4072u);
  EXPECT_EQ(t->allocs, 3u);
  EXPECT_EQ(t->frees, 2u);
  EXPECT_EQ(t->reallocs, 1u);
  // live: 2040, 4080, 2040, 2088, 4120 (r 0: 2040 -> 4072), 48
  EXPECT_EQ(t->peak_live_bytes, 4120u);
  EXPECT_FALSE(t->extended);
}

TEST(Trace, CommentsBlankLinesCrlfAndIdReuse) {
  std::string err;
  auto t = parse("# a comment\r\n100\r\n1\r\n\r\n4\r\n1\r\na 0 8\r\n# between\r\nf 0\r\na 0 16\r\nf 0\r\n", &err);
  ASSERT_TRUE(t) << err;
  EXPECT_EQ(t->ops.size(), 4u);
}

TEST(Trace, TrailerAttributes) {
  std::string err;
  auto t = parse(
      "0\n2\n4\n1\na 0 10\na 1 100\nf 0\nf 1\n"
      "#kmm-trace 1\nmodule 1 libc.so.6\nmodule 2 python3\n"
      "x 0 tid=1 mod=2 t=0\nx 1 align=64 mod=1\nx 3 tid=2 t=900\n",
      &err);
  ASSERT_TRUE(t) << err;
  EXPECT_TRUE(t->extended);
  ASSERT_EQ(t->modules.size(), 3u);
  EXPECT_EQ(t->modules[2], "python3");
  EXPECT_EQ(t->ops[0].tid, 1u);
  EXPECT_EQ(t->ops[0].module, 2u);
  EXPECT_EQ(t->ops[0].align_log2, 0u);
  EXPECT_EQ(t->ops[1].module, 1u);
  EXPECT_EQ(t->ops[1].align_log2, 6u);  // 64
  EXPECT_EQ(t->ops[2].tid, 1u);         // holds until changed
  EXPECT_EQ(t->ops[2].align_log2, 0u);  // alignment is per operation
  EXPECT_EQ(t->ops[3].tid, 2u);
  ASSERT_EQ(t->clock.size(), 2u);
  EXPECT_EQ(t->clock[1], std::make_pair(std::uint64_t{3}, std::uint64_t{900}));
}

TEST(Trace, WriterRoundTrip) {
  std::string err;
  std::string text =
      "0\n2\n4\n1\na 0 10\na 1 100\nr 1 300\nf 0\n#kmm-trace 1\nmodule 1 m\nx 0 t=5 tid=1 mod=1\nx 1 align=32\n";
  auto t = parse(text, &err);
  ASSERT_TRUE(t) << err;
  std::ostringstream out;
  t->heap_hint = 0;  // recomputed: the peak live payload
  write_trace(out, *t);
  auto u = parse(out.str(), &err);
  ASSERT_TRUE(u) << err << "\n" << out.str();
  EXPECT_EQ(u->heap_hint, 310u);
  ASSERT_EQ(u->ops.size(), t->ops.size());
  for (std::size_t i = 0; i < u->ops.size(); ++i) {
    EXPECT_EQ(u->ops[i].kind, t->ops[i].kind);
    EXPECT_EQ(u->ops[i].id, t->ops[i].id);
    EXPECT_EQ(u->ops[i].size, t->ops[i].size);
    EXPECT_EQ(u->ops[i].tid, t->ops[i].tid);
    EXPECT_EQ(u->ops[i].module, t->ops[i].module);
    EXPECT_EQ(u->ops[i].align_log2, t->ops[i].align_log2);
  }
  EXPECT_EQ(u->modules, t->modules);
  EXPECT_EQ(u->clock, t->clock);
}

TEST(Trace, MalformedHeader) {
  expect_error("", 0, "truncated trace: the header ends before the suggested heap size");
  expect_error("100\n2\n", 2, "header ends before the number of operations");
  expect_error("100\nten\n", 2, "bad header line: expected the number of ids");
  expect_error("100\n1 2\n", 2, "bad header line");
  expect_error("1\n99999999999\n1\n1\n", 4, "absurd number of ids");
}

TEST(Trace, MalformedOperations) {
  const std::string h = "0\n4\n3\n1\n";  // lines 1..4
  expect_error(h + "a 0 10\nq 1\nf 0\n", 6, "unknown operation 'q'");
  expect_error(h + "a 0\n", 5, "'a' takes an id and a size");
  expect_error(h + "a 0 10 7\n", 5, "'a' takes an id and a size");
  expect_error(h + "a x 10\n", 5, "bad id 'x'");
  expect_error(h + "a 0 -5\n", 5, "bad size '-5'");
  expect_error(h + "a 0 12abc\n", 5, "bad size '12abc'");
  expect_error(h + "a 9 10\n", 5, "id 9 is not below the header's number of ids 4");
  expect_error(h + "a 0 2000000000000\n", 5, "absurd size 2000000000000");
  expect_error(h + "a 0 99999999999999999999999\n", 5, "bad size");
  expect_error(h + "f 1\n", 5, "free of unknown id 1 (never allocated)");
  expect_error(h + "a 1 8\nf 1\nf 1\n", 7, "already freed (double free)");
  expect_error(h + "r 2 10\n", 5, "realloc of id 2, which was never allocated");
  expect_error(h + "a 2 8\nf 2\nr 2 10\n", 7, "realloc of id 2, which is already freed");
  expect_error(h + "a 0 8\na 0 8\n", 6, "allocated again while it is live");
  expect_error(h + "f\n", 5, "'f' takes one id");
}

TEST(Trace, TruncatedAndTooLong) {
  expect_error("0\n2\n3\n1\na 0 10\nf 0\n", 6, "truncated trace: the header says 3 operations, the file ends after 2");
  expect_error("0\n2\n1\n1\na 0 10\nf 0\n", 6, "more operations than the header's 1");
}

TEST(Trace, MalformedTrailer) {
  const std::string ops = "0\n1\n2\n1\na 0 10\nf 0\n";
  expect_error(ops + "#kmm-trace 2\n", 7, "unsupported kmm trace version");
  expect_error(ops + "#kmm-trace 1\nx 5 tid=1\n", 8, "x names operation 5, but the trace has 2");
  expect_error(ops + "#kmm-trace 1\nx 0 mod=1\n", 8, "module 1 is not declared");
  expect_error(ops + "#kmm-trace 1\nx 0 colour=3\n", 8, "unknown attribute 'colour'");
  expect_error(ops + "#kmm-trace 1\nx 0 align=48\n", 8, "bad alignment 48");
  expect_error(ops + "#kmm-trace 1\nx 1 tid=1\nx 0 tid=2\n", 9, "out of order");
  expect_error(ops + "#kmm-trace 1\nmodule 2 foo\n", 8, "module 2 out of order");
  expect_error(ops + "#kmm-trace 1\nwhat\n", 8, "unknown trailer line");
}

TEST(Trace, LenientSkipsAndCounts) {
  std::string err;
  auto t = parse("0\n3\n6\n1\na 0 10\nf 2\nzz\na 1 20\nr 0 5000000000000\nf 0\n#kmm-trace 1\nx 3 tid=4\n", &err, true);
  ASSERT_TRUE(t) << err;
  EXPECT_EQ(t->skipped, 3u);
  ASSERT_EQ(t->problems.size(), 3u);
  EXPECT_EQ(t->problems[0], "t.rep:6: free of unknown id 2 (never allocated)");
  EXPECT_EQ(t->problems[1].rfind("t.rep:7: unknown operation 'zz'", 0), 0u);
  EXPECT_EQ(t->problems[2].rfind("t.rep:9: absurd size", 0), 0u);
  ASSERT_EQ(t->ops.size(), 3u);  // a 0, a 1, f 0
  EXPECT_EQ(t->ops[1].id, 1u);
  EXPECT_EQ(t->ops[1].tid, 4u);  // x 3 is the file's 4th operation: a 1 20
  // Lenient still stops on what cannot be skipped: a truncated file.
  auto u = parse("0\n3\n6\n1\na 0 10\n", &err, true);
  EXPECT_FALSE(u);
  EXPECT_NE(err.find("truncated"), std::string::npos);
}

// Found with the trace fuzzer (fuzz/fuzz_trace.cpp, issue 10c): the reader sized its per-id
// tables from the header (a byte and 8 bytes per id: 18 GiB for a 20-byte file announcing
// 2^31 ids), reserved room for the header's number of operations (up to 2^26: 2 GiB), and
// the writer sized a table by the largest id. Memory now follows the file.
namespace {
std::uint64_t max_rss_kb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<std::uint64_t>(ru.ru_maxrss);
}
}  // namespace

TEST(Trace, HeaderClaimsDoNotSizeMemory) {
  std::uint64_t before = max_rss_kb();
  std::string err;
  // 2^31 ids (the most the reader accepts), the highest id used, through the writer and back.
  auto t = parse("0\n2147483648\n3\n1\na 2147483647 8\nr 2147483647 4096\nf 2147483647\n", &err);
  ASSERT_TRUE(t) << err;
  EXPECT_EQ(t->num_ids, 2147483648u);
  EXPECT_EQ(t->peak_live_bytes, 4096u);
  std::ostringstream out;
  write_trace(out, *t);
  auto u = parse(out.str(), &err);
  ASSERT_TRUE(u) << err;
  ASSERT_EQ(u->ops.size(), 3u);
  EXPECT_EQ(u->ops[1].id, 2147483647u);
  EXPECT_EQ(u->ops[1].size, 4096u);
  // A header announcing 2^26 operations over an empty body: a clean error, at once.
  expect_error("0\n0\n67108864\n1\n", 4, "truncated trace: the header says 67108864 operations, the file ends after 0");
  EXPECT_LT(max_rss_kb() - before, std::uint64_t{64} << 10) << "KiB of peak RSS added by reading tiny traces";
}

TEST(Trace, ReadsFilesPlainAndGzip) {
  std::string text = "0\n1\n2\n1\na 0 10\nf 0\n";
  std::string plain = testing::TempDir() + "kmm_trace_plain.rep";
  std::string gz = testing::TempDir() + "kmm_trace_gz.rep.gz";
  {
    FILE* f = std::fopen(plain.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(text.c_str(), f);
    std::fclose(f);
    gzFile g = gzopen(gz.c_str(), "wb");
    ASSERT_NE(g, nullptr);
    gzwrite(g, text.data(), static_cast<unsigned>(text.size()));
    gzclose(g);
  }
  std::string err;
  auto a = read_trace_file(plain, {}, &err);
  ASSERT_TRUE(a) << err;
  auto b = read_trace_file(gz, {}, &err);
  ASSERT_TRUE(b) << err;
  EXPECT_EQ(b->ops.size(), 2u);
  EXPECT_EQ(b->name, gz);
  auto c = read_trace_file(testing::TempDir() + "does-not-exist.rep", {}, &err);
  EXPECT_FALSE(c);
  EXPECT_NE(err.find("cannot open"), std::string::npos);
  std::remove(plain.c_str());
  std::remove(gz.c_str());
}

TEST(Trace, AGzipFileThatInflatesFarPastItsSizeIsRefused) {
  // 8 MiB of comment lines compress to a few KiB: the text is bounded by 64 times the file
  // (here with a floor of 1 MiB instead of 256 MiB), not read into memory whole (a 1.5 MB
  // file of 1.5 GB took 2.1 GB of RSS, then std::bad_alloc under a ulimit).
  std::string gz = testing::TempDir() + "kmm_trace_bomb.rep.gz";
  {
    gzFile g = gzopen(gz.c_str(), "wb9");
    ASSERT_NE(g, nullptr);
    const std::string head = "0\n1\n1\n1\n";
    gzwrite(g, head.data(), static_cast<unsigned>(head.size()));
    const std::string comments(std::size_t{1} << 20, '#');
    for (int i = 0; i < 8; ++i) gzwrite(g, comments.data(), static_cast<unsigned>(comments.size()));
    gzwrite(g, "\na 0 8\n", 7);
    gzclose(g);
  }
  TraceReadOptions opt;
  opt.min_text_limit = std::uint64_t{1} << 20;
  std::string err;
  EXPECT_FALSE(read_trace_file(gz, opt, &err));
  EXPECT_NE(err.find("gzip bomb"), std::string::npos) << err;
  std::remove(gz.c_str());
}

// ---- damaged files: a gzip stream cut short or followed by junk, a trailer where operations
// should be, error messages that quote what they saw ----
namespace {

// Temporary files carry the process id: ctest -j runs this file's tests as processes at
// once, and a name two of them shared was removed under the other (a gzip read back empty).
std::string temp_name(const std::string& name) {
  return testing::TempDir() + std::to_string(::getpid()) + "_" + name;
}

std::string gzip_of(const std::string& text) {
  std::string path = temp_name("kmm_trace_gzip_of.gz");
  gzFile g = gzopen(path.c_str(), "wb9");
  EXPECT_NE(g, nullptr);
  gzwrite(g, text.data(), static_cast<unsigned>(text.size()));
  gzclose(g);
  std::ifstream in(path, std::ios::binary);
  std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::remove(path.c_str());
  return bytes;
}

std::string write_temp(const std::string& name, const std::string& bytes) {
  std::string path = temp_name(name);
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  return path;
}

// A trace of 20000 operations whose sizes do not repeat much (its gzip is tens of KiB).
std::string big_trace() {
  std::string text = "0\n100\n20000\n1\n";
  std::uint64_t x = 12345;
  for (int i = 0; i < 10000; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    text += "a " + std::to_string(i % 100) + " " + std::to_string((x >> 33) % 100000) + "\nf " +
            std::to_string(i % 100) + "\n";
  }
  return text + "#kmm-trace 1\nx 0 tid=1\nx 19999 tid=2\n";
}

}  // namespace

TEST(Trace, ATruncatedGzipFileIsRefused) {
  // gzread gave the data before the cut, then 0 as at a clean end: a trace cut inside its
  // trailer (or just its CRC) read as a whole one, and a cut inside the operations was
  // reported as a bad line.
  const std::string gz = gzip_of(big_trace());
  ASSERT_GT(gz.size(), 2000u);
  std::string err;
  const std::string whole = write_temp("kmm_trace_whole.rep.gz", gz);
  auto t = read_trace_file(whole, {}, &err);
  ASSERT_TRUE(t) << err;
  EXPECT_EQ(t->ops.size(), 20000u);
  const std::size_t cuts[] = {gz.size() - 4, gz.size() - 8, gz.size() - 30, gz.size() / 2, 20};
  for (std::size_t cut : cuts) {
    const std::string path = write_temp("kmm_trace_cut.rep.gz", gz.substr(0, cut));
    EXPECT_FALSE(read_trace_file(path, {}, &err)) << "cut at " << cut;
    EXPECT_EQ(err, path + ": the gzip stream is truncated") << "cut at " << cut;
    TraceReadOptions lenient;
    lenient.lenient = true;
    EXPECT_FALSE(read_trace_file(path, lenient, &err)) << "lenient, cut at " << cut;
    std::remove(path.c_str());
  }
  std::remove(whole.c_str());
}

TEST(Trace, JunkOrASecondMemberAfterTheGzipStreamIsRefused) {
  // zlib skips junk after a gzip member without a word, and reads a second member as more of
  // the same text: neither is a trace kmm wrote.
  const std::string gz = gzip_of("0\n1\n2\n1\na 0 10\nf 0\n");
  std::string err;
  const std::string junk = write_temp("kmm_trace_junk.rep.gz", gz + "junk after the stream\n");
  EXPECT_FALSE(read_trace_file(junk, {}, &err));
  EXPECT_NE(err.find(junk + ": 22 bytes of junk after the gzip stream"), std::string::npos) << err;
  const std::string two = write_temp("kmm_trace_two.rep.gz", gz + gzip_of("a 0 10\n"));
  EXPECT_FALSE(read_trace_file(two, {}, &err));
  EXPECT_NE(err.find(two + ": a second gzip stream follows the first"), std::string::npos) << err;
  std::remove(junk.c_str());
  std::remove(two.c_str());
}

TEST(Trace, ATrailerBeforeTheLastOperationIsATruncatedTrace) {
  // The trailer line is not a comment there: with --lenient, the x lines were skipped as bad
  // operations and a trace with fewer operations than its header replayed.
  const std::string text = "0\n2\n5\n1\na 0 8\na 1 8\nf 0\n#kmm-trace 1\nx 0 tid=1\nx 1 tid=2\n";
  expect_error(text, 8, "truncated trace: the header says 5 operations, the trailer starts after 3");
  std::string err;
  EXPECT_FALSE(parse(text, &err, true));
  EXPECT_NE(err.find("truncated trace: the header says 5 operations, the trailer starts after 3"), std::string::npos)
      << err;
}

TEST(Trace, LenientKeepsTheFileOperationNumbers) {
  std::string err;
  auto t = parse("0\n3\n5\n1\nq 0 8\na 1 8\nzz\nzz\na 2 16\n", &err, true);
  ASSERT_TRUE(t) << err;
  ASSERT_EQ(t->ops.size(), 2u);
  EXPECT_EQ(file_op_number(*t, 0), 1u);
  EXPECT_EQ(file_op_number(*t, 1), 4u);
  auto u = parse("0\n3\n2\n1\na 1 8\na 2 16\n", &err);
  ASSERT_TRUE(u) << err;
  EXPECT_EQ(file_op_number(*u, 1), 1u);
}

TEST(Trace, MessagesQuoteAShortPrintablePiece) {
  // A 5 MB line was quoted whole (5 MB on stderr), an ELF file's bytes went to the terminal.
  std::string err;
  bool skippable = true;
  const std::string elf = std::string("\x7f") + "ELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x3e\x00";
  std::istringstream in(elf + "\n");
  EXPECT_FALSE(read_trace(in, "t.rep", {}, &err, &skippable));
  EXPECT_NE(err.find("bad header line"), std::string::npos) << err;
  EXPECT_NE(err.find("\\x7fELF\\x02"), std::string::npos) << err;
  EXPECT_FALSE(skippable) << "--lenient cannot skip a header";
  for (char c : err) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "raw byte " << int(static_cast<unsigned char>(c));
  std::istringstream lines("0\n1\n1\n1\n" + std::string(5 << 20, 'x') + "\n");
  EXPECT_FALSE(read_trace(lines, "t.rep", {}, &err, &skippable));
  EXPECT_LT(err.size(), 200u);
  EXPECT_NE(err.find("xxxx...' (5242880 bytes)"), std::string::npos) << err;
  EXPECT_TRUE(skippable);
  expect_error("0\n1\n1\n1\na \x01\xff 8\n", 5, "bad id '\\x01\\xff'");
}

TEST(Trace, FilesThatCannotBeReadSayWhy) {
  std::string err;
  EXPECT_FALSE(read_trace_file(testing::TempDir() + "does-not-exist.rep", {}, &err));
  EXPECT_NE(err.find("cannot open: No such file or directory"), std::string::npos) << err;
  EXPECT_FALSE(read_trace_file("/dev/zero", {}, &err));
  EXPECT_EQ(err, "/dev/zero: a device, not a trace file") << err;
  EXPECT_FALSE(read_trace_file(testing::TempDir(), {}, &err));
  EXPECT_NE(err.find("a directory, not a trace file"), std::string::npos) << err;
}

TEST(Trace, TheTrailerIsCheckedAsStrictlyAsTheOperations) {
  const std::string ops = "0\n2\n3\n1\na 0 8\na 1 8\nf 0\n";
  expect_error(ops + "#kmm-trace 1 garbage\n", 8, "junk after '#kmm-trace 1'");
  expect_error(ops + "#kmm-trace 1\nx 0 tid=1 tid=7\n", 9, "'tid' given twice");
  expect_error(ops + "#kmm-trace 1\nx 0 align=2\n", 9, "bad alignment 2 (a power of two above 8");
  expect_error(ops + "#kmm-trace 1\nx 0 align=8\n", 9, "bad alignment 8 (a power of two above 8");
  expect_error(ops + "#kmm-trace 1\nx 2 align=64\n", 9, "align= on operation 2, a free");
  expect_error(ops + "#kmm-trace 1\nx 0 t=5\nx 1 t=3\n", 10, "time 3 is before the previous 5");
  std::string err;
  EXPECT_TRUE(parse(ops + "#kmm-trace 1\nx 0 t=5 align=16\nx 1 t=5 tid=2\n", &err)) << err;
}

// tests/replay/test_convert.cpp — `kmm trace`'s conversion of raw recordings into traces
// (replay/convert.h): a raw file is input like any other (a crashed recorder, a file another
// user planted in the recording directory), and what it writes must read back. Each case is
// a raw record the trace reader refused after convert wrote it: a size of 2^50, alignments of
// 2^40 and 2^70 (a shift of 70: undefined), a module never declared, an empty module name or
// one with a vertical tab, a clock that jumps by 2^63; and a partial record at the end.
// Outputs are never written through a link or into anything but a regular file, and a raw
// file of another user is not read (the test chowns one: it skips when not root).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "replay/convert.h"
#include "replay/raw_event.h"
#include "replay/trace.h"

namespace kmm::scenario {
namespace {

kmm_raw_event ev(std::uint8_t op, std::uint64_t ptr, std::uint64_t size, std::uint64_t t, std::uint8_t align = 0,
                 std::uint16_t module = 0) {
  kmm_raw_event e{};
  e.op = op;
  e.align_log2 = align;
  e.module = module;
  e.tid = 7;
  e.ptr = ptr;
  e.size = size;
  e.result = op == KMM_RAW_REALLOC ? ptr + 0x1000 : 0;
  e.time_ns = t;
  return e;
}

void put(std::string* raw, const kmm_raw_event& e) {
  raw->append(reinterpret_cast<const char*>(&e), sizeof e);
}

// A MODULE record and its name in 40-byte chunks after it.
void put_module(std::string* raw, std::uint16_t index, const std::string& name) {
  kmm_raw_event e{};
  e.op = KMM_RAW_MODULE;
  e.module = index;
  e.size = name.size();
  put(raw, e);
  std::string chunk = name;
  chunk.resize((name.size() + sizeof e - 1) / sizeof e * sizeof e, '\0');
  raw->append(chunk);
}

TEST(Convert, DamagedRecordsAreMendedAndTheTraceReadsBack) {
  char tmpl[] = "/tmp/kmm-convert-test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::string raw;
  put_module(&raw, 1, "");           // empty name
  put_module(&raw, 2, "bad\vname");  // a vertical tab: one word to the writer, two to the reader
  put(&raw, ev(KMM_RAW_ALLOC, 0x1000, 64, 100));
  put(&raw, ev(KMM_RAW_ALLOC, 0x2000, 64, 200, 0, 3));                        // module 3: never declared
  put(&raw, ev(KMM_RAW_ALLOC, 0x3000, 64, 300, 40));                          // alignment 2^40
  put(&raw, ev(KMM_RAW_ALLOC, 0x4000, 64, 400, 70));                          // alignment 2^70
  put(&raw, ev(KMM_RAW_ALLOC, 0x5000, std::uint64_t{1} << 50, 500));          // 1 PiB
  put(&raw, ev(KMM_RAW_REALLOC, 0x1000, 128, std::uint64_t{1} << 63, 0, 1));  // a clock jump
  for (std::uint64_t i = 0; i < 2100; ++i)  // past two clock ticks (one every 1024 ops)
    put(&raw, ev(i % 2 == 0 ? KMM_RAW_ALLOC : KMM_RAW_FREE, 0x100000 + (i / 2) * 64, 32, 1000 - i, 0, 2));
  raw.append(20, '\x01');  // a partial record: the recorder died mid-write
  const std::string raw_path = dir + "/raw.100.0";
  FILE* f = std::fopen(raw_path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(raw.data(), 1, raw.size(), f);
  std::fclose(f);

  const std::string out = dir + "/out.rep";
  std::string error, summary;
  std::vector<std::string> files = convert_raw_dir(dir, out, 100, &error, &summary);
  ASSERT_EQ(files.size(), 1u) << error;
  EXPECT_NE(summary.find("4 damaged records mended or dropped, 20 bytes of a partial record"), std::string::npos)
      << summary;
  std::string read_error;
  auto t = read_trace_file(out, {}, &read_error);
  ASSERT_TRUE(t) << "convert wrote a trace its reader refuses: " << read_error;
  EXPECT_EQ(t->modules.size(), 3u);
  EXPECT_EQ(t->modules[1], "_");
  EXPECT_EQ(t->modules[2], "bad_name");
  for (const TraceOp& op : t->ops) {
    EXPECT_LE(op.size, kMaxTraceSize);
    EXPECT_LE(op.align_log2, 30u);
  }
  for (std::size_t i = 1; i < t->clock.size(); ++i) EXPECT_LE(t->clock[i - 1].second, t->clock[i].second) << i;
  std::remove(raw_path.c_str());
  std::remove(out.c_str());
  rmdir(dir.c_str());
}

namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/kmm-convert-test.XXXXXX";
  EXPECT_NE(mkdtemp(tmpl), nullptr);
  return tmpl;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

void remove_dir(const std::string& dir) {
  std::string cmd = "rm -rf '" + dir + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
}

}  // namespace

TEST(Convert, AFileNotReadDoesNotTakeTheMainTracesName) {
  // The first file in order (the first process's last image) was refused, a link planted
  // as raw.PID.9: the main name went with it, OUTPUT was never written and kmm said 0.
  const std::string dir = temp_dir();
  std::string raw;
  put(&raw, ev(KMM_RAW_ALLOC, 0x1000, 64, 100));
  write_bytes(dir + "/raw.100.0", raw);
  ASSERT_EQ(symlink("/etc/hostname", (dir + "/raw.100.9").c_str()), 0);
  std::string error, summary;
  std::vector<std::string> files = convert_raw_dir(dir, dir + "/out.rep", 100, &error, &summary);
  ASSERT_EQ(files.size(), 1u) << error << summary;
  EXPECT_EQ(files[0], dir + "/out.rep");
  std::string read_error;
  auto t = read_trace_file(dir + "/out.rep", {}, &read_error);
  ASSERT_TRUE(t) << read_error;
  EXPECT_EQ(t->ops.size(), 1u);
  remove_dir(dir);
}

TEST(Convert, OnlyExactRawFileNamesAreRead) {
  // sscanf("raw.%d.%d") took raw.77.01 for raw.77.1 (both written to OUTPUT.77.1, one lost)
  // and raw.77.1junk for raw.77.1.
  const std::string dir = temp_dir();
  std::string a, b;
  put(&a, ev(KMM_RAW_ALLOC, 0x1000, 111, 100));
  put(&b, ev(KMM_RAW_ALLOC, 0x1000, 222, 100));
  write_bytes(dir + "/raw.100.0", a);
  write_bytes(dir + "/raw.77.1", b);
  for (const char* odd : {"raw.77.01", "raw.077.1", "raw.77.1junk", "raw.77.-1", "raw.77.", "raw.99999999999.1"})
    write_bytes(dir + "/" + odd, a);
  std::string error, summary;
  std::vector<std::string> files = convert_raw_dir(dir, dir + "/out.rep", 100, &error, &summary);
  ASSERT_EQ(files.size(), 2u) << error << summary;
  EXPECT_EQ(files[1], dir + "/out.rep.77.1");
  std::string read_error;
  auto t = read_trace_file(files[1], {}, &read_error);
  ASSERT_TRUE(t) << read_error;
  ASSERT_EQ(t->ops.size(), 1u);
  EXPECT_EQ(t->ops[0].size, 222u);
  remove_dir(dir);
}

TEST(Convert, AModuleNameLongerThan4KIsSkippedWhole) {
  // The skip was computed from the name cut to 4096 bytes: the rest of the name was read as
  // records (a phantom 'a 0 12345').
  const std::string dir = temp_dir();
  std::string raw;
  std::string name(10000, 'm');
  kmm_raw_event fake = ev(KMM_RAW_ALLOC, 0x9000, 12345, 1);
  std::memcpy(&name[4400], &fake, sizeof fake);  // a record's bytes inside the name
  put_module(&raw, 1, name);
  put(&raw, ev(KMM_RAW_ALLOC, 0x1000, 64, 100, 0, 1));
  kmm_raw_event odd = ev(KMM_RAW_ALLOC, 0x2000, 64, 100);
  odd.op = 200;  // no such record type
  put(&raw, odd);
  write_bytes(dir + "/raw.100.0", raw);
  std::string error, summary;
  std::vector<std::string> files = convert_raw_dir(dir, dir + "/out.rep", 100, &error, &summary);
  ASSERT_EQ(files.size(), 1u) << error;
  EXPECT_NE(summary.find("1 damaged records mended or dropped"), std::string::npos) << summary;
  std::string read_error;
  auto t = read_trace_file(files[0], {}, &read_error);
  ASSERT_TRUE(t) << read_error;
  ASSERT_EQ(t->ops.size(), 1u);
  EXPECT_EQ(t->ops[0].size, 64u);
  ASSERT_EQ(t->modules.size(), 2u);
  EXPECT_EQ(t->modules[1], std::string(4096, 'm'));
  remove_dir(dir);
}

TEST(Convert, AnOutputIsNeverWrittenThroughALinkOrIntoAFifo) {
  // OUTPUT.PID names come from the recording: a link planted under one (in /tmp, with
  // fs.protected_symlinks=0) had the file it named truncated and overwritten.
  for (const char* out : {"out.rep", "out.rep.gz"}) {
    const std::string dir = temp_dir();
    std::string raw;
    put(&raw, ev(KMM_RAW_ALLOC, 0x1000, 64, 100));
    write_bytes(dir + "/raw.100.0", raw);
    write_bytes(dir + "/victim", "precious\n");
    ASSERT_EQ(symlink((dir + "/victim").c_str(), (dir + "/" + out).c_str()), 0);
    std::string error, summary;
    EXPECT_TRUE(convert_raw_dir(dir, dir + "/" + out, 100, &error, &summary).empty()) << out;
    EXPECT_NE(error.find("a symbolic link: not written through"), std::string::npos) << error;
    std::FILE* f = std::fopen((dir + "/victim").c_str(), "rb");
    ASSERT_NE(f, nullptr);
    char buf[64] = {};
    EXPECT_EQ(std::fread(buf, 1, sizeof buf - 1, f), 9u);
    std::fclose(f);
    EXPECT_STREQ(buf, "precious\n") << out;
    // A fifo: refused at once, not a conversion blocked until someone reads it.
    ASSERT_EQ(unlink((dir + "/" + out).c_str()), 0);
    ASSERT_EQ(mkfifo((dir + "/" + out).c_str(), 0600), 0);
    error.clear();
    EXPECT_TRUE(convert_raw_dir(dir, dir + "/" + out, 100, &error, &summary).empty()) << out;
    EXPECT_NE(error.find("not a regular file"), std::string::npos) << error;
    remove_dir(dir);
  }
}

TEST(Convert, ARawFileOfAnotherUserIsNotReadAndIsNamed) {
  // Another user's planted raw.PID.SEQ chose output names beside OUTPUT (and its records
  // became the trace). Root's files and the reader's own are read.
  if (geteuid() != 0) GTEST_SKIP() << "needs root: makes a raw file owned by uid 65534 (nobody)";
  const std::string dir = temp_dir();
  std::string own, planted;
  put(&own, ev(KMM_RAW_ALLOC, 0x1000, 111, 100));
  put(&planted, ev(KMM_RAW_ALLOC, 0x1000, 222, 100));
  write_bytes(dir + "/raw.100.0", own);
  write_bytes(dir + "/raw.4242.0", planted);
  ASSERT_EQ(chown((dir + "/raw.4242.0").c_str(), 65534, 65534), 0);
  std::string error, summary;
  std::vector<std::string> files = convert_raw_dir(dir, dir + "/out.rep", 100, &error, &summary);
  ASSERT_EQ(files.size(), 1u) << error << summary;
  EXPECT_EQ(files[0], dir + "/out.rep");
  EXPECT_NE(summary.find(dir + "/raw.4242.0: owned by uid 65534, neither you nor root: not read"), std::string::npos)
      << summary;
  struct stat st;
  EXPECT_NE(stat((dir + "/out.rep.4242").c_str(), &st), 0) << "a planted file chose an output name";
  remove_dir(dir);
}

}  // namespace
}  // namespace kmm::scenario

// The shim's answers to glibc's heap reports (src/shim/mallinfo.cpp), with kmm as the
// process's malloc: mallinfo/mallinfo2 follow live blocks, malloc_info writes glibc's XML
// layout, malloc_stats prints kmm's stats to stderr.
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "../common/opaque.h"
#include "kmm/kmm.h"

namespace {

using kmm::test::opaque;

TEST(Mallinfo, FollowsLiveBlocks) {
  ASSERT_EQ(kmm_active(), 1);
  struct mallinfo2 before = mallinfo2();
  EXPECT_GT(before.arena, 0u);
  EXPECT_LE(before.fordblks, before.arena);
  void* big = malloc(opaque(1u << 20));  // a page run in RAM
  ASSERT_NE(big, nullptr);
  std::memset(big, 1, 1u << 20);
  struct mallinfo2 during = mallinfo2();
  EXPECT_GE(during.uordblks, before.uordblks + (1u << 20));
  void* huge = malloc(opaque(8u << 20));  // a huge block (mmap)
  ASSERT_NE(huge, nullptr);
  struct mallinfo2 with_huge = mallinfo2();
  EXPECT_GE(with_huge.hblks, before.hblks + 1);
  EXPECT_GE(with_huge.hblkhd, before.hblkhd + (8u << 20));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo old = mallinfo();  // deprecated in glibc 2.33, still called by programs
#pragma GCC diagnostic pop
  EXPECT_GE(static_cast<std::size_t>(old.hblkhd), std::size_t{8} << 20);
  EXPECT_GT(old.arena, 0);
  free(huge);
  free(big);
  struct mallinfo2 after = mallinfo2();
  EXPECT_LT(after.uordblks, during.uordblks);
  EXPECT_EQ(after.hblks, before.hblks);
}

TEST(Mallinfo, MallocInfoWritesGlibcXml) {
  char* text = nullptr;
  std::size_t len = 0;
  FILE* f = open_memstream(&text, &len);
  ASSERT_NE(f, nullptr);
  void* huge = malloc(opaque(6u << 20));
  ASSERT_NE(huge, nullptr);
  ASSERT_EQ(malloc_info(0, f), 0);
  fclose(f);
  std::string xml(text, len);
  free(text);
  free(huge);
  EXPECT_EQ(xml.rfind("<malloc version=\"1\">\n<heap nr=\"0\">\n", 0), 0u) << xml;
  EXPECT_NE(xml.find("<total type=\"mmap\" count=\""), std::string::npos) << xml;
  EXPECT_EQ(xml.find("<total type=\"mmap\" count=\"0\""), std::string::npos) << xml;  // the huge block
  EXPECT_NE(xml.find("<system type=\"current\" size=\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("</heap>"), std::string::npos);
  EXPECT_EQ(xml.substr(xml.size() - 10), "</malloc>\n");

  FILE* g = tmpfile();
  ASSERT_NE(g, nullptr);
  errno = 0;
  EXPECT_EQ(malloc_info(1, g), -1);  // glibc: options must be 0
  EXPECT_EQ(errno, EINVAL);
  fclose(g);
}

TEST(Mallinfo, MallocStatsPrintsKmmStats) {
  testing::internal::CaptureStderr();
  malloc_stats();
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("=== kmm stats: pid "), std::string::npos) << out;
  EXPECT_NE(out.find("MemFree"), std::string::npos) << out;
}

// A fork while another thread is inside a report call (which holds its lock across a walk of
// the whole heap): the child's own reports must not wait for a thread it does not have. Before
// stop 48 the fork handlers left the report calls' locks out, and the child's first
// mallinfo2 spun for ever (this test: the child killed by its alarm in round 0).
TEST(Mallinfo, AForkedChildReportsWhileAnotherThreadWasReporting) {
  ASSERT_GE(kmm_module_load("fork_report_mod"), 2);
  std::atomic<bool> stop{false};
  std::thread reporter([&stop] {
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    for (unsigned i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      struct mallinfo2 mi = mallinfo2();
      opaque(mi.uordblks);
      kmm_usage u{};
      kmm_module_usage("fork_report_mod", &u);
      if (i % 8 == 0) kmm_stats_print(null);
    }
    close(null);
  });
  for (int round = 0; round < 20; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      alarm(20);  // a child that hangs dies of SIGALRM
      struct mallinfo2 mi = mallinfo2();
      kmm_usage u{};
      kmm_module_usage("fork_report_mod", &u);
      int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
      kmm_stats_print(null);
      _exit(mi.arena > 0 ? 0 : 3);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "round " << round << ": child " << (WIFSIGNALED(status) ? "killed by signal " : "exit status ")
        << (WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  }
  stop = true;
  reporter.join();
}

}  // namespace

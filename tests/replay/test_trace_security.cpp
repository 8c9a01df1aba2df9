// tests/replay/test_trace_security.cpp — the recorder (tools/trace/recorder.cpp) and
// `kmm trace` against other users (docs/SECURITY.md): a setuid program's recorder ignores
// the caller's KMM_TRACE_DIR; a reopen never follows a link swapped in for the raw file; the
// recording directory cannot be listed and its raw files are private; a file-size limit
// keeps whole records only and counts the rest as lost exactly.
// The setuid test needs root (it runs a setuid-root copy as uid 65534) and skips otherwise,
// saying why; so it does on a nosuid mount or where the setuid bit has no effect.
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../common/temp_dir.h"
#include "replay/raw_event.h"

#if defined(KMM_BIN) && defined(KMM_VICTIM) && defined(KMM_TRACE_LIB) && defined(KMM_LINKED_VICTIM)
namespace {

constexpr uid_t kOtherUid = 65534;  // nobody

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh directory under /tmp, 0755 (others may traverse it), removed after the test.
class TraceSecurity : public kmm::test::TempDirTest {
 protected:
  TraceSecurity() : TempDirTest("kmm-trace-security") {}

  // Runs the shell command line `cmd` with stdout and stderr into a file; its exit status
  // and what it printed.
  std::pair<int, std::string> sh(const std::string& cmd) {
    const std::string log = path("log");
    int st = std::system(("timeout 120 " + cmd + " >" + log + " 2>&1").c_str());
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(log)};
  }

  // The victim with the recorder preloaded, recording into `rec` (not through kmm trace:
  // the raw files stay for the test to read).
  std::pair<int, std::string> recorded(const std::string& rec, const std::string& args) {
    return sh("env KMM_TRACE_DIR=" + rec + " LD_PRELOAD=" + KMM_TRACE_LIB + " " + KMM_VICTIM + " " + args);
  }

  std::vector<std::filesystem::path> raw_files(const std::string& rec) {
    std::vector<std::filesystem::path> out;
    for (const auto& e : std::filesystem::directory_iterator(rec))
      if (e.path().filename().string().rfind("raw.", 0) == 0) out.push_back(e.path());
    return out;
  }
};

// The victim is built with the sanitizer too in a sanitized build, and the sanitizer's own
// malloc interceptors in the executable take precedence over the preloaded recorder: nothing
// it does reaches the recorder (as tests/replay/test_replay.cpp's TraceEndToEnd says).
#ifdef KMM_SANITIZED
#define SKIP_WHEN_SANITIZED() GTEST_SKIP() << "the recorder cannot interpose malloc in a sanitizer-instrumented program"
#else
#define SKIP_WHEN_SANITIZED() static_cast<void>(0)
#endif

TEST_F(TraceSecurity, AReopenDoesNotFollowALinkSwappedForTheRawFile) {
  SKIP_WHEN_SANITIZED();
  // The program closes every fd (a daemon) after the raw file was replaced by a link to a
  // file of the recorder's user: the reopen by name followed it and appended the records.
  const std::string rec = path("rec"), target = path("target");
  std::filesystem::create_directories(rec);
  { std::ofstream(target) << "secret\n"; }
  auto [rc, out] = recorded(rec, "swap " + target);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("swap done"), std::string::npos) << out;
  // (Its size, not its bytes: the records appended would fill the failure message.)
  EXPECT_EQ(std::filesystem::file_size(target), 7u) << "the recorder wrote through a link swapped in for its raw file";
  EXPECT_NE(out.find("events were lost"), std::string::npos) << "records not stored must be counted:\n" << out;
}

TEST_F(TraceSecurity, ARawFileIsPrivateAndTheRecordingDirectoryCannotBeListed) {
  // Raw files were 0644 in a 01777 directory: any user could list and read another's heap
  // addresses. Now 0600 in 01733 (others may still add their files: daemons drop privileges).
  auto [rc, out] = sh(std::string(KMM_BIN) + " trace -o " + path("perms.rep") + " -- " + KMM_VICTIM + " perms");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("dir=1733 raw=600"), std::string::npos) << out;
  // Created by the recorder directly as well (a umask of 0 does not widen it).
  const std::string rec = path("rec");
  std::filesystem::create_directories(rec);
  auto [rc2, out2] = sh("sh -c 'umask 0; exec env KMM_TRACE_DIR=" + rec + " LD_PRELOAD=" + KMM_TRACE_LIB + " " +
                        KMM_VICTIM + " errno'");
  ASSERT_EQ(rc2, 0) << out2;
  auto files = raw_files(rec);
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) {
    struct stat st;
    ASSERT_EQ(stat(f.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u) << f;
  }
}

TEST_F(TraceSecurity, ASetuidProgramRecordsNothingWhereItsCallerAsks) {
  // A setuid-root program with the recorder linked in, run by uid 65534 with KMM_TRACE_DIR
  // naming a root-only directory: it created root's files there.
  if (geteuid() != 0) GTEST_SKIP() << "needs root: runs a setuid-root copy of the victim as uid 65534 (nobody)";
  if (on_nosuid_mount()) GTEST_SKIP() << dir_ << " is on a nosuid mount: a setuid bit cannot take effect there";
  const std::string prog = path("victim-setuid"), rec = path("root-only");
  std::filesystem::copy_file(KMM_LINKED_VICTIM, prog);
  ASSERT_EQ(chown(prog.c_str(), 0, 0), 0);
  ASSERT_EQ(chmod(prog.c_str(), 04755), 0);
  ASSERT_EQ(mkdir(rec.c_str(), 0700), 0);
  auto run_as = [&](uid_t uid) {
    const std::string log = path("log." + std::to_string(uid));
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0);
    pid_t pid = fork();
    if (pid == 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      if (uid != 0 && (setgroups(0, nullptr) != 0 || setgid(uid) != 0 || setuid(uid) != 0)) _exit(126);
      const std::string env = "KMM_TRACE_DIR=" + rec;
      char* argv[] = {const_cast<char*>(prog.c_str()), const_cast<char*>("secure"), nullptr};
      char* envp[] = {const_cast<char*>(env.c_str()), nullptr};
      execve(argv[0], argv, envp);
      _exit(127);
    }
    close(fd);
    int st = 0;
    waitpid(pid, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << slurp(log);
    return slurp(log);
  };
  // Control: root's own run (not secure) records there, privately.
  std::string own = run_as(0);
  ASSERT_NE(own.find("secure=0"), std::string::npos) << own;
  auto files = raw_files(rec);
  ASSERT_EQ(files.size(), 1u) << "the control run recorded nothing: " << own;
  struct stat st;
  ASSERT_EQ(stat(files[0].c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  std::filesystem::remove(files[0]);

  std::string other = run_as(kOtherUid);
  if (other.find("euid=0") == std::string::npos)
    GTEST_SKIP() << "the setuid bit had no effect here (no_new_privs?): " << other;
  EXPECT_NE(other.find("secure=1"), std::string::npos) << other;
  EXPECT_TRUE(raw_files(rec).empty()) << "a setuid-root program recorded where its caller asked";
}

TEST_F(TraceSecurity, AFileSizeLimitKeepsWholeRecordsAndCountsTheRestExactly) {
  SKIP_WHEN_SANITIZED();
  // A short write left part of a record (every later record misaligned) and counted all
  // 2048 records of the flush as lost although some were stored.
  const std::string whole = path("whole"), cut = path("cut");
  std::filesystem::create_directories(whole);
  std::filesystem::create_directories(cut);
  auto [rc, out] = recorded(whole, "fsize 0");  // no limit: every record, the reference
  ASSERT_EQ(rc, 0) << out;
  auto files = raw_files(whole);
  ASSERT_EQ(files.size(), 1u);
  const std::uintmax_t all = std::filesystem::file_size(files[0]);
  ASSERT_EQ(all % sizeof(kmm_raw_event), 0u);
  const std::uintmax_t total = all / sizeof(kmm_raw_event);

  auto [rc2, out2] = recorded(cut, "fsize 100007");  // not a multiple of 40
  ASSERT_EQ(rc2, 0) << out2;
  files = raw_files(cut);
  ASSERT_EQ(files.size(), 1u);
  const std::uintmax_t kept = std::filesystem::file_size(files[0]);
  EXPECT_EQ(kept % sizeof(kmm_raw_event), 0u) << kept << " bytes: a partial record was left";
  EXPECT_LE(kept, 100007u);
  std::size_t at = out2.find("kmm-trace: ");
  ASSERT_NE(at, std::string::npos) << out2;
  const std::uintmax_t lost = std::strtoull(out2.c_str() + at + 11, nullptr, 10);
  EXPECT_EQ(kept / sizeof(kmm_raw_event) + lost, total) << out2;
}

}  // namespace
#endif

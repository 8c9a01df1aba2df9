// kmm/tests/shim/test_security.cpp — the drop-in malloc facing other users (docs/SECURITY.md):
// secure-execution mode (a setuid-root program run by another user ignores KMM_OPTIONS), stats
// files that are never followed, truncated or written when planted by someone else, and the
// live stat server (same user or root only; a squatter on its name is detected by `kmm stat`;
// a silent or vanishing client neither blocks exit nor kills the process).
//
// The victim is tests/shim/security_victim.cpp (KMM_SECURITY_VICTIM); `kmm` is KMM_BINARY.
// Two-user tests run the victim or a client as uid/gid 65534 (nobody) from a forked child and
// need root: they skip, saying why, otherwise. The setuid test also skips when the setuid bit
// cannot take effect (a nosuid mount, no_new_privs).
//
// Depends on: GoogleTest, POSIX. Invariant: every child is waited for with a bound (a hang is
// a failure that names what hung, not a stuck ctest).
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../common/temp_dir.h"

namespace {

constexpr uid_t kOtherUid = 65534;  // nobody
constexpr int kWaitSeconds = 60;    // a liveness bound, not a timing assertion

struct Child {
  pid_t pid = -1;
  int to_stdin = -1;     // write end of the child's stdin
  int from_output = -1;  // read end of the child's stdout and stderr
};

// Starts argv with exactly env; as uid (and gid) `uid` unless it is 0; after reading one byte
// from gate_fd when it is not -1.
Child spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, uid_t uid = 0,
            int gate_fd = -1) {
  std::vector<char*> av, ev;
  for (const auto& s : argv) av.push_back(const_cast<char*>(s.c_str()));
  av.push_back(nullptr);
  for (const auto& s : env) ev.push_back(const_cast<char*>(s.c_str()));
  ev.push_back(nullptr);
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    if (gate_fd >= 0) {
      char c;
      if (read(gate_fd, &c, 1) != 1) _exit(125);
    }
    if (uid != 0 && (setgroups(0, nullptr) != 0 || setgid(uid) != 0 || setuid(uid) != 0)) _exit(126);
    execve(av[0], av.data(), ev.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  return {pid, in[1], out[0]};
}

// Reads one line (without the newline) from fd: what came within the bound.
std::string read_line(int fd) {
  std::string s;
  char c;
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, kWaitSeconds * 1000) != 1 || read(fd, &c, 1) != 1 || c == '\n') break;
    s += c;
  }
  return s;
}

// Everything until EOF, or what came within the bound.
std::string read_all(int fd) {
  std::string s;
  char buf[4096];
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, kWaitSeconds * 1000) != 1) break;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    s.append(buf, static_cast<std::size_t>(n));
  }
  return s;
}

// The child's wait status, or -1 (after killing it) when it has not exited within the bound.
int wait_bounded(pid_t pid) {
  for (int i = 0; i < kWaitSeconds * 100; ++i) {
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return st;
    if (r < 0) return -2;
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

struct RunResult {
  int status = -1;  // wait status; -1: did not exit within the bound
  std::string output;
};

RunResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env, uid_t uid = 0) {
  Child c = spawn(argv, env, uid);
  close(c.to_stdin);
  RunResult r;
  r.output = read_all(c.from_output);
  close(c.from_output);
  r.status = wait_bounded(c.pid);
  return r;
}

bool exited_zero(int st) {
  return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void put(const std::string& path, const std::string& text, mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  ASSERT_EQ(chmod(path.c_str(), mode), 0);
}

// A fresh directory that uid 65534 can traverse (on the root file system, not a nosuid tmpfs
// when /tmp is one: the build tree's folder is tried after /tmp).
class SecurityTest : public kmm::test::TempDirTest {
 protected:
  SecurityTest() : TempDirTest("kmm-security") {}
  static bool root() { return geteuid() == 0; }
  static std::vector<std::string> env_with(const std::string& options) { return {"KMM_OPTIONS=" + options}; }
};

#define SKIP_UNLESS_ROOT() \
  if (!root())             \
  GTEST_SKIP()             \
      << "needs root: a two-user test (it acts as uid 65534, nobody, through setuid, chown or a setuid-root copy)"

// --- secure execution ---------------------------------------------------------------------

TEST_F(SecurityTest, SetuidProgramRunByAnotherUserIgnoresKmmOptions) {
  SKIP_UNLESS_ROOT();
  if (on_nosuid_mount()) GTEST_SKIP() << dir_ << " is on a nosuid mount: a setuid bit cannot take effect there";
  std::string prog = path("victim-setuid");
  std::filesystem::copy_file(KMM_SECURITY_VICTIM, prog);
  ASSERT_EQ(chown(prog.c_str(), 0, 0), 0);
  ASSERT_EQ(chmod(prog.c_str(), 04755), 0);
  std::string secret = path("root-only");
  put(secret, "secret\n", 0600);
  auto env = env_with("stats=" + secret + ":live=1");

  // Control: run by root itself (not secure), the same options do write the file and serve.
  RunResult own = run({prog, "probe"}, env);
  ASSERT_TRUE(exited_zero(own.status)) << own.output;
  EXPECT_NE(own.output.find("secure=0 socket=yes kmm=1"), std::string::npos) << own.output;
  ASSERT_NE(slurp(secret).find("=== kmm stats"), std::string::npos) << "the control run wrote no stats";
  put(secret, "secret\n", 0600);

  RunResult other = run({prog, "probe"}, env, kOtherUid);
  ASSERT_TRUE(exited_zero(other.status)) << other.output;
  if (other.output.find("euid=0 ") == std::string::npos)
    GTEST_SKIP() << "the setuid bit had no effect here (no_new_privs?): " << other.output;
  EXPECT_NE(other.output.find("secure=1 socket=no kmm=1"), std::string::npos) << other.output;
  EXPECT_EQ(slurp(secret), "secret\n") << "a setuid-root program wrote kmm's stats where its caller asked";
  struct stat st;
  ASSERT_EQ(stat(secret.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

// --- stats files --------------------------------------------------------------------------

TEST_F(SecurityTest, NewStatsFileIsPrivate) {
  std::string f = path("stats-new");
  mode_t old = umask(0);
  RunResult r = run({KMM_SECURITY_VICTIM, "probe"}, env_with("stats=" + f));
  umask(old);
  ASSERT_TRUE(exited_zero(r.status)) << r.output;
  struct stat st;
  ASSERT_EQ(lstat(f.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_NE(slurp(f).find("=== kmm stats"), std::string::npos);
}

TEST_F(SecurityTest, ARelativeStatsFileIsWhereTheProgramStartedNotWhereItEnds) {
  const std::string name = "kmm-stats-rel-" + std::to_string(getpid());
  const std::string elsewhere = path("elsewhere");
  ASSERT_EQ(mkdir(elsewhere.c_str(), 0700), 0);
  RunResult r = run({KMM_SECURITY_VICTIM, "chdir", elsewhere}, env_with("stats=" + name));
  ASSERT_TRUE(exited_zero(r.status)) << r.output;
  EXPECT_NE(slurp(name).find("=== kmm stats"), std::string::npos) << "not in the starting directory";
  EXPECT_NE(access((elsewhere + "/" + name).c_str(), F_OK), 0) << "written where the program moved to";
  unlink(name.c_str());
  rmdir(elsewhere.c_str());
}

TEST_F(SecurityTest, OwnStatsFileIsAppendedNotTruncated) {
  std::string f = path("stats-own");
  put(f, "before\n", 0644);
  RunResult r = run({KMM_SECURITY_VICTIM, "probe"}, env_with("stats=" + f));
  ASSERT_TRUE(exited_zero(r.status)) << r.output;
  std::string text = slurp(f);
  EXPECT_EQ(text.rfind("before\n", 0), 0u) << "the existing content was not kept";
  EXPECT_NE(text.find("=== kmm stats"), std::string::npos);
}

TEST_F(SecurityTest, StatsFileThroughPlantedSymlinkIsRefused) {
  std::string target = path("target"), link = path("link"), dangling = path("dangling");
  put(target, "secret\n", 0600);
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  RunResult r = run({KMM_SECURITY_VICTIM, "probe"}, env_with("stats=" + link));
  ASSERT_TRUE(exited_zero(r.status)) << r.output;
  EXPECT_EQ(slurp(target), "secret\n");
  EXPECT_NE(r.output.find("kmm: warning: stats file " + link + " refused: it is a symbolic link"), std::string::npos)
      << r.output;
  // A link to a name that does not exist yet: nothing is created at its target.
  std::string created = path("would-be-created");
  ASSERT_EQ(symlink(created.c_str(), dangling.c_str()), 0);
  r = run({KMM_SECURITY_VICTIM, "probe"}, env_with("stats=" + dangling));
  ASSERT_TRUE(exited_zero(r.status)) << r.output;
  EXPECT_FALSE(std::filesystem::exists(created));
  EXPECT_NE(r.output.find("refused: it is a symbolic link"), std::string::npos) << r.output;
}

TEST_F(SecurityTest, StatsFileOwnedByAnotherUserIsRefused) {
  SKIP_UNLESS_ROOT();  // a file of another user's, in a folder we can write: root makes it
  std::string f = path("theirs");
  put(f, "theirs\n", 0666);
  ASSERT_EQ(chown(f.c_str(), kOtherUid, kOtherUid), 0);
  RunResult r = run({KMM_SECURITY_VICTIM, "probe"}, env_with("stats=" + f));
  ASSERT_TRUE(exited_zero(r.status)) << r.output;
  EXPECT_EQ(slurp(f), "theirs\n");
  EXPECT_NE(r.output.find("refused: owned by another user"), std::string::npos) << r.output;
}

TEST_F(SecurityTest, StatsFileWithAnotherHardLinkIsRefused) {
  // A hard link planted at the stats path to another of the user's files (where
  // protected_hardlinks is off) would have the stats appended to that file.
  std::string own = path("own-file"), planted = path("planted-link");
  put(own, "precious\n", 0600);
  ASSERT_EQ(link(own.c_str(), planted.c_str()), 0);
  RunResult r = run({KMM_SECURITY_VICTIM, "probe"}, env_with("stats=" + planted));
  ASSERT_TRUE(exited_zero(r.status)) << r.output;
  EXPECT_EQ(slurp(own), "precious\n");
  EXPECT_NE(r.output.find("refused: it has other hard links"), std::string::npos) << r.output;
}

TEST_F(SecurityTest, StatsFileThatIsAFifoIsRefusedWithoutBlocking) {
  std::string f = path("fifo");
  ASSERT_EQ(mkfifo(f.c_str(), 0600), 0);
  RunResult r = run({KMM_SECURITY_VICTIM, "probe"}, env_with("stats=" + f));
  ASSERT_NE(r.status, -1) << "the program hung at exit opening a fifo as its stats file";
  ASSERT_TRUE(exited_zero(r.status)) << r.output;
  // With no reader the open fails (ENXIO) before the type is even checked: either way refused.
  EXPECT_NE(r.output.find("kmm: warning: stats file " + f + " refused"), std::string::npos) << r.output;
}

// --- the live stat server -----------------------------------------------------------------

int connect_stat_socket(pid_t pid) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string name = "kmm-stat-" + std::to_string(pid);
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// A victim serving live stats as root, after `ready`.
struct Server {
  Child c;
  explicit Server(const std::vector<std::string>& env, int modules = 8, int gate_fd = -1) {
    c = spawn({KMM_SECURITY_VICTIM, "serve", std::to_string(modules)}, env, 0, gate_fd);
  }
  // Closes its stdin: it exits; its wait status (-1: did not exit within the bound).
  int finish() {
    close(c.to_stdin);
    int st = wait_bounded(c.pid);
    close(c.from_output);
    return st;
  }
};

TEST_F(SecurityTest, StatServerAnswersOnlyItsUserOrRoot) {
  SKIP_UNLESS_ROOT();
  Server s(env_with("live=1"));
  ASSERT_EQ(read_line(s.c.from_output), "ready");
  std::string pid = std::to_string(s.c.pid);
  RunResult mine = run({KMM_BINARY, "stat", pid}, {});
  EXPECT_TRUE(exited_zero(mine.status)) << mine.output;
  EXPECT_NE(mine.output.find("=== kmm stats: pid " + pid), std::string::npos) << mine.output;
  RunResult other = run({KMM_BINARY, "stat", pid}, {}, kOtherUid);
  EXPECT_TRUE(other.status >= 0 && WIFEXITED(other.status) && WEXITSTATUS(other.status) == 1) << other.output;
  EXPECT_EQ(other.output.find("=== kmm stats"), std::string::npos) << "another user read the stats:\n" << other.output;
  EXPECT_NE(other.output.find("refused: uid 65534 may not read the stats of pid " + pid), std::string::npos)
      << other.output;
  EXPECT_TRUE(exited_zero(s.finish()));
}

TEST_F(SecurityTest, ADaemonThatDroppedRootServesRootOnlyAndIsNoImpostor) {
  // The process serves from its start as root, then drops to nobody. The client took the
  // listener's uid (root) against the process's (nobody) for an impostor and printed nothing;
  // the server answered nobody, whom the kernel keeps from the no longer dumpable process.
  // A module's name that holds escape sequences reaches the terminal escaped.
  SKIP_UNLESS_ROOT();
  Child c = spawn({KMM_SECURITY_VICTIM, "dropserve", std::to_string(kOtherUid)}, env_with("live=1"), 0, -1);
  ASSERT_EQ(read_line(c.from_output), "ready");
  std::string pid = std::to_string(c.pid);
  RunResult root = run({KMM_BINARY, "stat", pid}, {});
  EXPECT_TRUE(exited_zero(root.status)) << root.output;
  EXPECT_NE(root.output.find("=== kmm stats: pid " + pid), std::string::npos) << root.output;
  EXPECT_EQ(root.output.find('\x1b'), std::string::npos) << "an escape sequence reached the terminal";
  EXPECT_NE(root.output.find("title\\x1b]0;owned\\x07\\x1b[2J"), std::string::npos) << root.output;
  RunResult nobody = run({KMM_BINARY, "stat", pid}, {}, kOtherUid);
  EXPECT_TRUE(nobody.status >= 0 && WIFEXITED(nobody.status) && WEXITSTATUS(nobody.status) == 1) << nobody.output;
  EXPECT_EQ(nobody.output.find("=== kmm stats"), std::string::npos) << "nobody read a non-dumpable process's stats";
  EXPECT_NE(nobody.output.find("root only once the process is not dumpable"), std::string::npos) << nobody.output;
  close(c.to_stdin);
  EXPECT_TRUE(exited_zero(wait_bounded(c.pid)));
  close(c.from_output);
}

TEST_F(SecurityTest, AFakeStatServerCannotFloodOrDrawOnTheTerminal) {
  // A process serving its own name may send anything: 4 MiB with escape sequences went to the
  // terminal whole (retitled, cleared and recoloured it), and kmm stat exited 0.
  Child c = spawn({KMM_SECURITY_VICTIM, "flood"}, {}, 0, -1);
  ASSERT_EQ(read_line(c.from_output), "ready");
  RunResult r = run({KMM_BINARY, "stat", std::to_string(c.pid)}, {});
  EXPECT_TRUE(r.status >= 0 && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 1) << r.output.substr(0, 200);
  EXPECT_EQ(r.output.find('\x1b'), std::string::npos) << "an escape sequence reached the terminal";
  EXPECT_LT(r.output.size(), std::size_t{5} << 20) << "printed without a bound";
  EXPECT_NE(r.output.find("not a kmm stats answer"), std::string::npos) << r.output.substr(r.output.size() - 200);
  EXPECT_TRUE(exited_zero(wait_bounded(c.pid)));
  close(c.to_stdin);
  close(c.from_output);
}

TEST_F(SecurityTest, AProgramThatClosesEveryFdKeepsItsOwnSocketsConnections) {
  // live=1: the stat server's socket is an fd of the program's. A daemon closes every fd and
  // listens on a socket of its own, which gets the number back: the server spun on accept's
  // EBADF (a core's worth of CPU) and then accepted the program's clients (2 of 4 runs).
  RunResult r = run({KMM_SECURITY_VICTIM, "closeall"}, env_with("live=1"));
  EXPECT_TRUE(exited_zero(r.status)) << r.output;
  EXPECT_NE(r.output.find("served=3 of 3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("live stats stopped"), std::string::npos) << r.output;
}

TEST_F(SecurityTest, StatClientDetectsASquatterAndTheProcessRunsOn) {
  SKIP_UNLESS_ROOT();
  int gate[2], ready[2];
  ASSERT_EQ(pipe2(gate, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
  Server s(env_with("live=1"), 8, gate[0]);  // waits at the gate: its pid is known, its socket not yet made
  close(gate[0]);
  pid_t squatter = fork();
  if (squatter == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(kOtherUid) != 0 || setuid(kOtherUid) != 0) _exit(126);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    char name[64];
    int n = snprintf(name, sizeof name, "kmm-stat-%d", static_cast<int>(s.c.pid));
    std::memcpy(addr.sun_path + 1, name, static_cast<std::size_t>(n));
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + static_cast<std::size_t>(n));
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd, 4) != 0) _exit(125);
    char r = 'r';
    if (write(ready[1], &r, 1) != 1) _exit(124);
    for (;;) {
      int c = accept(fd, nullptr, nullptr);
      if (c < 0) continue;
      char fake[128];
      int m = snprintf(fake, sizeof fake, "=== kmm stats: pid %d ===\nFAKE FIGURES\n", static_cast<int>(s.c.pid));
      if (write(c, fake, static_cast<std::size_t>(m)) < 0) _exit(123);
      close(c);
    }
  }
  close(ready[1]);
  char r = 0;
  ASSERT_EQ(read(ready[0], &r, 1), 1) << "the squatter could not bind";
  close(ready[0]);
  ASSERT_EQ(write(gate[1], "g", 1), 1);
  close(gate[1]);
  std::string first = read_line(s.c.from_output);
  EXPECT_NE(first.find("kmm: warning: live stats off: @kmm-stat-" + std::to_string(s.c.pid) + " is already bound"),
            std::string::npos)
      << first;
  EXPECT_EQ(read_line(s.c.from_output), "ready") << "the process did not run on with its name squatted";
  RunResult client = run({KMM_BINARY, "stat", std::to_string(s.c.pid)}, {});
  EXPECT_TRUE(client.status >= 0 && WIFEXITED(client.status) && WEXITSTATUS(client.status) == 2) << client.output;
  EXPECT_NE(client.output.find("an impostor holds the name"), std::string::npos) << client.output;
  EXPECT_EQ(client.output.find("FAKE FIGURES"), std::string::npos) << client.output;
  kill(squatter, SIGKILL);
  waitpid(squatter, nullptr, 0);
  EXPECT_TRUE(exited_zero(s.finish()));
}

TEST_F(SecurityTest, SilentClientDoesNotBlockExit) {
  // The stats of 250 modules are larger than the server's socket buffer: a client that never
  // reads leaves the server thread waiting in send(), which must hold no lock that exit (the
  // stats file written at exit) needs.
  std::string f = path("exit-stats");
  Server s(env_with("live=1:stats=" + f), 250);
  ASSERT_EQ(read_line(s.c.from_output), "ready");
  int client = connect_stat_socket(s.c.pid);
  ASSERT_GE(client, 0);
  pollfd pfd{client, POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, kWaitSeconds * 1000), 1) << "the server sent nothing";
  int st = s.finish();
  EXPECT_NE(st, -1) << "the process did not exit while a client was connected and silent";
  EXPECT_TRUE(exited_zero(st));
  EXPECT_NE(slurp(f).find("=== kmm stats"), std::string::npos);
  // The server had more to send than fits in the buffer (else this test proves nothing).
  std::string got = read_all(client);
  close(client);
  std::string all = slurp(f);
  EXPECT_LT(got.size(), all.size()) << "the stats fitted in the socket buffer: the server never waited";
}

TEST_F(SecurityTest, ClientThatHangsUpDoesNotKillTheProcess) {
  Server s(env_with("live=1"), 250);
  ASSERT_EQ(read_line(s.c.from_output), "ready");
  int client = connect_stat_socket(s.c.pid);
  ASSERT_GE(client, 0);
  close(client);  // before the server sends: its send fails with EPIPE, which must not be SIGPIPE
  RunResult again = run({KMM_BINARY, "stat", std::to_string(s.c.pid)}, {});
  EXPECT_TRUE(exited_zero(again.status)) << again.output;
  int st = s.finish();
  EXPECT_FALSE(st >= 0 && WIFSIGNALED(st)) << "killed by signal " << WTERMSIG(st);
  EXPECT_TRUE(exited_zero(st));
}

}  // namespace

// kmm/tools/kmm/exec_commands.cpp — `kmm exec` and `kmm stat` (see exec_commands.h).
#include "exec_commands.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string_view>

#include "kernel/boot_settings.h"
#include "shim/options.h"

namespace kmm::tools {
namespace {

std::string preload_path(const char* argv0) {
  if (const char* env = getenv("KMM_PRELOAD_LIB"); env != nullptr && *env != '\0') return env;
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  std::string exe = n > 0 ? std::string(self, static_cast<std::size_t>(n)) : std::string(argv0);
  std::string dir = exe.substr(0, exe.find_last_of('/') == std::string::npos ? 0 : exe.find_last_of('/'));
  if (dir.empty()) dir = ".";
  std::string lib = dir + "/../lib/libkmm-preload.so";
  char real[PATH_MAX];
  if (realpath(lib.c_str(), real) != nullptr) lib = real;
  return lib;
}

// A stats answer is at most the server's buffer (512 KiB); more is not a kmm server's.
constexpr std::size_t kMaxStatAnswer = std::size_t{1} << 20;

// Bytes of a stats answer as they may reach a terminal: control characters but newline and
// tab as \xNN, so that a server (or a plug-in's file name it prints) cannot send escape
// sequences to the terminal of whoever runs kmm stat (root, often).
std::string printable(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string o;
  o.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
      o += "\\x";
      o += kHex[c >> 4];
      o += kHex[c & 15];
    } else {
      o += ch;
    }
  }
  return o;
}

// The uids of process pid (/proc/PID/status "Uid:": real, effective, saved, filesystem);
// false when there is no such process.
bool process_uids(int pid, unsigned uids[4]) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Uid:", 0) != 0) continue;
    std::istringstream fields(line.substr(4));
    for (int i = 0; i < 4; ++i)
      if (!(fields >> uids[i])) return false;
    return true;
  }
  return false;
}

// Whether KMM_OPTIONS's parser (shim/options.h, the row of key) takes value: a flag is checked
// exactly as the shim will read the KMM_OPTIONS item it becomes.
bool takes_option(const char* key, const std::string& value) {
  shim::Options scratch;
  OptionView o{key, std::strlen(key), value.data(), value.size()};
  return shim::apply_option(&scratch, o) == shim::OptionApply::kApplied;
}

}  // namespace

CLI::App* add_exec(CLI::App& app, ExecArgs* a) {
  auto* sub = app.add_subcommand("exec", "Run a program on kmm's allocator (LD_PRELOAD libkmm-preload.so)");
  sub->add_flag("--stats", a->stats, "print kmm's stats (modules, slabinfo, buddyinfo, meminfo) at exit");
  // The flags of settings KMM_OPTIONS has: help from their rows (kernel/boot_settings.h).
  sub->add_option(
         "--protect", a->protect,
         std::string(kBootSettingProtector.process_help) + "; default " + kBootSettingProtector.process_default)
      ->check(CLI::IsMember(std::vector<std::string>(std::begin(kProtectorModeNames), std::end(kProtectorModeNames))));
  sub->add_option("--gc-delay", a->gc_delay,
                  std::string(kBootSettingGcDelay.process_help) + ": N[ns|us|ms|s|m|min], e.g. 500ms; default " +
                      kBootSettingGcDelay.process_default);
  sub->add_flag("--no-live", a->no_live,
                "do not serve `kmm stat PID` (its thread makes the program multithreaded from the start: "
                "unshare -U and other user-namespace tools need --no-live)");
  // Everything from the program's name on is the program's, options included (`kmm exec ls
  // -l`; `kmm exec ./prog --stats` gives --stats to prog, not to kmm): those words never reach
  // CLI11 (take_exec_command), and this positional is listed for --help only.
  sub->add_option("command", a->help_command, "program and arguments, passed on untouched ([--] PROGRAM ARGS...)");
  return sub;
}

int take_exec_command(int argc, char** argv, ExecArgs* a) {
  if (argc < 2 || std::strcmp(argv[1], "exec") != 0) return argc;
  for (int i = 2; i < argc; ++i) {
    const char* w = argv[i];
    if (std::strcmp(w, "--") == 0) {
      a->command.assign(argv + i + 1, argv + argc);
      return i;
    }
    if (w[0] != '-' || w[1] == '\0') {  // the program's name: it and all after it are the program's
      a->command.assign(argv + i, argv + argc);
      return i;
    }
    // kmm's own option; the two that take a value may have it in the next word.
    if ((std::strcmp(w, "--protect") == 0 || std::strcmp(w, "--gc-delay") == 0) && i + 1 < argc) ++i;
  }
  return argc;
}

int run_exec(const ExecArgs& a, const char* argv0) {
  if (a.command.empty()) {
    std::cerr << "kmm exec: no program to run (kmm exec [OPTIONS] [--] PROGRAM [ARGS...])\n";
    return 2;
  }
  if (!a.gc_delay.empty() && !takes_option(kBootSettingGcDelay.options_key, a.gc_delay)) {
    std::cerr << "kmm exec: bad --gc-delay '" << a.gc_delay
              << "' (a duration: N[ns|us|ms|s|m|min], a bare N is seconds; e.g. 500ms, 5s, 1min)\n";
    return 2;
  }
  std::string lib = preload_path(argv0);
  if (access(lib.c_str(), R_OK) != 0) {
    std::cerr << "kmm exec: " << lib << " is missing (build the kmm-preload target, or set KMM_PRELOAD_LIB)\n";
    return 127;
  }
  std::string opts = "protect=" + a.protect;
  if (a.stats) opts += ":stats=1";
  if (!a.no_live) opts += ":live=1";
  if (!a.gc_delay.empty()) opts += ":gc_delay=" + a.gc_delay;
  if (const char* old = getenv("KMM_OPTIONS"); old != nullptr && *old != '\0') opts = opts + ":" + old;
  setenv("KMM_OPTIONS", opts.c_str(), 1);
  const char* old = getenv("LD_PRELOAD");
  std::string pre = old != nullptr && *old != '\0' ? lib + ":" + old : lib;
  setenv("LD_PRELOAD", pre.c_str(), 1);
  std::vector<char*> args;
  for (const auto& s : a.command) args.push_back(const_cast<char*>(s.c_str()));
  args.push_back(nullptr);
  execvp(args[0], args.data());
  std::cerr << "kmm exec: " << a.command[0] << ": " << std::strerror(errno) << "\n";
  return 127;
}

CLI::App* add_stat(CLI::App& app, int* pid) {
  auto* sub = app.add_subcommand("stat", "Print the live kmm stats of a process running under kmm exec");
  sub->add_option("pid", *pid, "process id")->required();
  return sub;
}

int run_stat(int pid) {
  unsigned uids[4];
  if (pid <= 0 || !process_uids(pid, uids)) {
    std::cerr << "kmm stat: no process " << pid << "\n";
    return 1;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    std::perror("kmm stat: socket");
    return 1;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string name = "kmm-stat-" + std::to_string(pid);
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    std::cerr << "kmm stat: process " << pid
              << " does not serve kmm stats (run it under kmm exec, or with KMM_OPTIONS=live=1 and the preload)\n";
    close(fd);
    return 1;
  }
  // Abstract socket names are anyone's to bind: the server must be process pid itself (the
  // pid the kernel recorded when it listened). Its uid then may differ from the process's now
  // (a daemon that dropped privileges after it started serving): still the process itself.
  ucred cred{};
  socklen_t cred_len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0) {
    std::perror("kmm stat: SO_PEERCRED");
    close(fd);
    return 1;
  }
  if (cred.pid != pid) {
    std::cerr << "kmm stat: @" << name << " is served by pid " << cred.pid << " (uid " << cred.uid
              << "), not by process " << pid << " (uid " << uids[1]
              << "): an impostor holds the name; its answer is not printed\n";
    close(fd);
    return 2;
  }
  timeval tv{};
  tv.tv_sec = 10;  // a server that stops sending is not waited for forever
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  static const char kRefused[] = "kmm: refused:";
  char buf[65536];
  std::size_t total = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      std::cerr << "kmm stat: process " << pid << " stopped sending (timed out after 10 s)\n";
      close(fd);
      return 1;
    }
    if (n <= 0) break;
    if (total == 0 && static_cast<std::size_t>(n) >= sizeof kRefused - 1 &&
        std::memcmp(buf, kRefused, sizeof kRefused - 1) == 0) {
      std::cerr << "kmm stat: " << printable(std::string_view(buf, static_cast<std::size_t>(n)));
      close(fd);
      return 1;
    }
    total += static_cast<std::size_t>(n);
    if (total > kMaxStatAnswer) {
      std::cerr << "\nkmm stat: process " << pid << " sent more than " << kMaxStatAnswer
                << " bytes: not a kmm stats answer; the rest is not printed\n";
      close(fd);
      return 1;
    }
    std::cout << printable(std::string_view(buf, static_cast<std::size_t>(n)));
  }
  close(fd);
  if (total == 0) {
    std::cerr << "kmm stat: process " << pid << " sent nothing\n";
    return 1;
  }
  return 0;
}

}  // namespace kmm::tools

// kmm/tools/kmm/trace_commands.cpp — `kmm trace` (run the program with the recorder
// preloaded, then convert: replay/convert.h) and `kmm replay` (replay/replay.h).
// Depends on: replay/, report/run_report.h, scenario/fault_commands.h (fault rates),
// base/units.h (sizes: the one parser), kernel/boot_settings.h (--ram's default), CLI11,
// POSIX (fork, exec, waitpid). Invariant: no trace logic here, only arguments and files.
#include "trace_commands.h"

#include <dirent.h>
#include <fmt/format.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <unordered_map>

#include "base/units.h"
#include "kernel/boot_settings.h"
#include "replay/convert.h"
#include "replay/raw_event.h"
#include "replay/replay.h"
#include "replay/trace.h"
#include "report/run_report.h"
#include "scenario/fault_commands.h"

namespace kmm::tools {
namespace {

// A size as every reader of one takes it (base/units.h: K/M/G, 0x hex, no overflow).
bool parse_size(const std::string& s, std::uint64_t* out) {
  return kmm::parse_size(s.data(), s.size(), out);
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::string lib_path(const char* argv0) {
  if (const char* env = getenv("KMM_TRACE_LIB")) return env;
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  std::string self = n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : std::string(argv0);
  std::string dir = self.substr(0, self.rfind('/'));
  return dir + "/../lib/libkmm-trace.so";
}

// Why `path` cannot be written as the trace, or "" when it can: checked before the program
// runs (a run can take hours, and its recording would have nowhere to go). The file is not
// created: only its directory and, when it exists, the file itself are checked.
// A symbolic link or any other file that is not regular is refused, as the conversion
// refuses it (replay/convert.cpp: outputs are never written through a link).
std::string unwritable(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return "a directory";
    if (S_ISLNK(st.st_mode)) return "a symbolic link: not written through";
    if (!S_ISREG(st.st_mode)) return "not a regular file";
    return access(path.c_str(), W_OK) == 0 ? "" : std::strerror(errno);
  }
  if (errno != ENOENT) return std::strerror(errno);
  std::size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (stat(dir.c_str(), &st) != 0) return fmt::format("its directory {}: {}", dir, std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return fmt::format("{} is not a directory", dir);
  if (access(dir.c_str(), W_OK | X_OK) != 0) return fmt::format("its directory {}: {}", dir, std::strerror(errno));
  return "";
}

// The program `kmm trace` runs, for the handler that passes SIGTERM and SIGHUP on to it.
volatile pid_t g_traced_child = 0;

}  // namespace

CLI::App* add_trace(CLI::App& app, TraceArgs* a) {
  auto* c =
      app.add_subcommand("trace", "Record a program's allocations: kmm trace -o FILE [--with-callers] -- CMD [ARGS]");
  c->add_option("-o,--output", a->output, "trace file to write (.gz: compressed)")->required();
  c->add_flag("--with-callers", a->with_callers, "record the shared object that called (the module)");
  c->add_option("command", a->command, "the program and its arguments (after --)")->required();
  return c;
}

int run_trace(const TraceArgs& a, const char* argv0) {
  std::string lib = lib_path(argv0);
  if (access(lib.c_str(), R_OK) != 0) {
    std::cerr << "kmm trace: the recorder " << lib
              << " is missing (build the kmm-trace target, or set KMM_TRACE_LIB)\n";
    return 2;
  }
  if (std::string why = unwritable(a.output); !why.empty()) {
    std::cerr << "kmm trace: " << a.output << ": cannot write (" << why << "): the program was not started\n";
    return 2;
  }
  char real[PATH_MAX];
  if (realpath(lib.c_str(), real) != nullptr) lib = real;
  char tmpl[] = "/tmp/kmm-trace.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::cerr << "kmm trace: cannot create a temporary directory: " << std::strerror(errno) << "\n";
    return 2;
  }
  std::string dir = tmpl;
  // Daemons drop privileges (zebra runs as frr): any user may add its file (sticky, as
  // /tmp), but only its owner may list it (01733, not 01777: the raw files, 0600 themselves,
  // hold the program's heap addresses). Files of other users are skipped when converting.
  chmod(dir.c_str(), 01733);
  pid_t pid = fork();
  if (pid < 0) {
    std::cerr << "kmm trace: fork: " << std::strerror(errno) << "\n";
    return 2;
  }
  if (pid == 0) {
    const char* old = getenv("LD_PRELOAD");
    std::string pre = old != nullptr && *old != '\0' ? lib + ":" + old : lib;
    setenv("LD_PRELOAD", pre.c_str(), 1);
    setenv(KMM_TRACE_DIR_ENV, dir.c_str(), 1);
    if (a.with_callers)
      setenv(KMM_TRACE_CALLERS_ENV, "1", 1);
    else
      unsetenv(KMM_TRACE_CALLERS_ENV);
    std::vector<char*> args;
    for (const std::string& s : a.command) args.push_back(const_cast<char*>(s.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "kmm trace: cannot run %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  // While the program runs, a Ctrl-C or Ctrl-\ is the program's (it gets the terminal's
  // signal too) and kmm waits for it to end, then converts; a SIGTERM or SIGHUP sent to kmm
  // alone is passed on. Either way the trace is written and the raw files are removed (kept
  // when the trace could not be written), and no program is left running without its
  // recorder's reader.
  g_traced_child = pid;
  struct sigaction forward {};
  forward.sa_handler = [](int sig) { kill(g_traced_child, sig); };
  sigemptyset(&forward.sa_mask);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  struct sigaction old_int, old_quit, old_term, old_hup;
  sigaction(SIGINT, &ignore, &old_int);
  sigaction(SIGQUIT, &ignore, &old_quit);
  sigaction(SIGTERM, &forward, &old_term);
  sigaction(SIGHUP, &forward, &old_hup);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGQUIT, &old_quit, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  sigaction(SIGHUP, &old_hup, nullptr);
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::string error, summary;
  std::vector<std::string> files = scenario::convert_raw_dir(dir, a.output, pid, &error, &summary);
  if (!error.empty()) {
    // The recording is all there is of the run: kept where it is (raw_event.h says its form).
    std::cerr << summary << "kmm trace: " << error << "\nkmm trace: the raw recording is kept in " << dir
              << " (raw_event.h records, one file per process image)\n";
    return rc != 0 ? rc : 2;
  }
  // Remove the raw files and the directory.
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* ent = readdir(d))
      if (std::strncmp(ent->d_name, "raw.", 4) == 0) unlink((dir + "/" + ent->d_name).c_str());
    closedir(d);
  }
  rmdir(dir.c_str());
  if (files.empty()) {
    std::cerr << "kmm trace: nothing was recorded (did the program start?)\n";
    return rc != 0 ? rc : 2;
  }
  std::cerr << summary;
  return rc;
}

CLI::App* add_replay(CLI::App& app, ReplayArgs* a) {
  auto* c = app.add_subcommand("replay", "Replay an allocation trace through allocator policies");
  c->add_option("trace", a->trace, "trace file (malloc-lab format or kmm's superset; .gz allowed)")->required();
  c->add_option(
      "--policy", a->policies, "comma-separated policies, or all: " + [] {
        std::string s;
        for (const auto& p : scenario::replay_policies()) s += (s.empty() ? "" : ",") + p;
        return s;
      }());
  c->add_option("--ram", a->ram,
                std::string("RAM of the modelled machine (K/M/G), default ") + kBootSettingRam.machine_default);
  c->add_option("--mmu", a->mmu, "on or off (default off: a NOMMU board)");
  c->add_flag("--json", a->json, "print JSON");
  c->add_flag("--csv", a->csv, "print CSV");
  c->add_option("--timeline", a->timeline, "write footprint/live/largest-free samples to FILE.csv");
  c->add_option("--svg", a->svg, "write the timeline charts and final maps to FILE.svg");
  c->add_option(
      "--report", a->report,
      "write a self-contained HTML report (table and charts) to this file (named as given: no .html is added)");
  c->add_flag("--lenient", a->lenient, "skip (and count) bad trace lines instead of stopping");
  c->add_flag("--check", a->check, "check the allocator's invariants at every timeline sample");
  c->add_option("--fail-slab", a->fail_slab,
                "fault injection: fail every Nth slab allocation (N), or a random P% of them");
  c->add_option("--fail-page", a->fail_page, "fault injection: fail every Nth page allocation, or P% of them");
  c->add_option("--fail-platform", a->fail_platform, "fault injection: fail every Nth platform commit, or P% of them");
  c->add_option("--fail-seed", a->fail_seed, "seed of the P% draws (default 0; a run repeats for a seed)");
  c->add_option("--fail-times", a->fail_times,
                "at most N injected failures per point and policy (default -1: no limit)");
  c->add_option("--fail-space", a->fail_space, "bytes each point lets through before failing (K/M/G)");
  return c;
}

int run_replay(const ReplayArgs& a) {
  scenario::ReplayConfig cfg;
  if (!parse_size(a.ram, &cfg.ram_bytes)) {
    std::cerr << "kmm replay: bad --ram '" << a.ram << "' (e.g. 4M, 192M)\n";
    return 2;
  }
  if (a.mmu != "on" && a.mmu != "off") {
    std::cerr << "kmm replay: --mmu takes on or off, not '" << a.mmu << "'\n";
    return 2;
  }
  if (a.json && a.csv) {
    std::cerr << "kmm replay: --json and --csv exclude each other\n";
    return 2;
  }
  cfg.mmu = a.mmu == "on";
  cfg.check = a.check;
  {
    std::uint64_t space = 0;
    if (!a.fail_space.empty() && !parse_size(a.fail_space, &space)) {
      std::cerr << "kmm replay: bad --fail-space '" << a.fail_space << "' (e.g. 64K)\n";
      return 2;
    }
    if (a.fail_times < -1) {
      std::cerr << "kmm replay: --fail-times takes N >= 0, or -1 for no limit\n";
      return 2;
    }
    const std::string* rates[kNrFaultPoints] = {&a.fail_slab, &a.fail_page, &a.fail_platform};
    const char* names[kNrFaultPoints] = {"--fail-slab", "--fail-page", "--fail-platform"};
    for (unsigned k = 0; k < kNrFaultPoints; ++k) {
      if (rates[k]->empty()) continue;
      FaultConfig& f = cfg.fault[k];
      std::string why;
      if (!scenario::parse_fault_rate(*rates[k], &f, &why)) {
        std::cerr << "kmm replay: " << names[k] << ": " << why << "\n";
        return 2;
      }
      f.seed = a.fail_seed;
      f.times = a.fail_times;
      f.space = space;
      cfg.fault_on[k] = true;
    }
  }
  std::vector<std::string> policies = a.policies == "all" ? scenario::replay_policies() : split_commas(a.policies);
  for (const std::string& p : policies) {
    if (!scenario::replay_policy_known(p)) {
      std::cerr << "kmm replay: unknown policy '" << p << "' (known: ";
      for (const auto& k : scenario::replay_policies()) std::cerr << k << " ";
      std::cerr << "or all)\n";
      return 2;
    }
  }
  if (policies.empty()) {
    std::cerr << "kmm replay: no policy given\n";
    return 2;
  }
  std::string error;
  scenario::TraceReadOptions ro;
  ro.lenient = a.lenient;
  bool skippable = false;
  std::optional<scenario::Trace> t = scenario::read_trace_file(a.trace, ro, &error, &skippable);
  if (!t) {
    std::cerr << "kmm replay: " << error << "\n";
    // Only where it would help: a bad line, not a header, a truncation or an unreadable file.
    if (!a.lenient && skippable) std::cerr << "(--lenient skips bad lines and counts them)\n";
    return 2;
  }
  for (const std::string& p : t->problems) std::cerr << p << " (skipped)\n";
  if (t->skipped > t->problems.size())
    std::cerr << "... " << t->skipped - t->problems.size() << " more bad lines skipped\n";
  // A progress bar on stderr while stdout is a terminal (a long trace takes seconds a policy);
  // nothing when the output goes to a file or a pipe.
  if (isatty(STDOUT_FILENO) && isatty(STDERR_FILENO)) {
    cfg.progress = [](void*, const char* policy, std::size_t done, std::size_t total) {
      constexpr int kWidth = 40;
      int filled = total == 0 ? kWidth : static_cast<int>(done * kWidth / total);
      std::fprintf(stderr, "\r%-16s [%.*s%*s] %3d%%", policy, filled, "########################################",
                   kWidth - filled, "", total == 0 ? 100 : static_cast<int>(done * 100 / total));
      if (done == total) std::fprintf(stderr, "\r%*s\r", kWidth + 26, "");
      std::fflush(stderr);
    };
  }
  std::vector<scenario::ReplayResult> results;
  for (const std::string& p : policies) results.push_back(scenario::replay(*t, p, cfg));
  if (a.json)
    scenario::print_replay_json(std::cout, *t, cfg, results);
  else if (a.csv)
    scenario::print_replay_csv(std::cout, results);
  else {
    scenario::print_replay_table(std::cout, *t, cfg, results);
    std::cout << "\nfinal physical maps (X used, - free):\n";
    for (const auto& r : results)
      if (!r.map.empty()) std::cout << fmt::format("{:<16} {}K/char {}\n", r.policy, r.map_scale / 1024, r.map);
  }
  if (!a.timeline.empty()) {
    std::ofstream out(a.timeline);
    scenario::write_timeline_csv(out, results);
    if (!out) {
      std::cerr << a.timeline << ": cannot write\n";
      return 2;
    }
  }
  if (!a.svg.empty()) {
    std::ofstream out(a.svg);
    scenario::write_timeline_svg(out, *t, results);
    if (!out) {
      std::cerr << a.svg << ": cannot write\n";
      return 2;
    }
  }
  if (!a.report.empty()) {
    std::ofstream out(a.report);
    scenario::write_replay_report(out, *t, cfg, results);
    if (!out) {
      std::cerr << a.report << ": cannot write\n";
      return 2;
    }
  }
  // A policy that could not run (its machine did not boot: --ram 100G) or broke an invariant
  // (--check) is no result: the exit status says so (a trace that runs out of memory is one).
  int rc = 0;
  for (const scenario::ReplayResult& r : results) {
    if (r.error.empty()) continue;
    std::cerr << "kmm replay: " << r.policy << ": " << r.error << "\n";
    rc = 1;
  }
  return rc;
}

}  // namespace kmm::tools

// kmm/tools/trace/trace_commands.cpp — `kmm trace` (run, record, convert) and `kmm replay`.
//
// Conversion of a raw file (raw_event.h) into a trace: each live pointer maps to an id;
// ids are reused after their block is freed (the lowest free id first), so num_ids is the
// peak number of live blocks, not the number of allocations. Oddities of real programs are
// absorbed and counted, never fatal:
//   - free of a pointer the recording never saw allocated (a forked child freeing its
//     parent's block, a block from before the recorder started): dropped;
//   - realloc of such a pointer: recorded as an allocation of the new size;
//   - an allocation returning a pointer that is still live (its free went around the
//     recorder): the old id is freed first;
//   - failed calls (null results) are dropped.
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

#include "raw_event.h"
#include "sim/fault_commands.h"
#include "sim/replay.h"
#include "sim/run_report.h"
#include "sim/trace.h"

namespace kmm::tools {
namespace {

bool parse_size(const std::string& s, std::uint64_t* out) {
  if (s.empty()) return false;
  std::size_t i = 0;
  std::uint64_t v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    v = v * 10 + static_cast<std::uint64_t>(s[i] - '0');
    if (v > (std::uint64_t{1} << 44)) return false;
    ++i;
  }
  if (i == 0) return false;
  std::string suf = s.substr(i);
  if (suf.empty() || suf == "B")
    *out = v;
  else if (suf == "K" || suf == "k" || suf == "KB")
    *out = v << 10;
  else if (suf == "M" || suf == "MB")
    *out = v << 20;
  else if (suf == "G" || suf == "GB")
    *out = v << 30;
  else
    return false;
  return true;
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

bool write_file(const std::string& path, const std::string& text, std::string* error) {
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
    gzFile f = gzopen(path.c_str(), "wb9");
    if (f == nullptr) {
      *error = path + ": cannot write";
      return false;
    }
    bool ok =
        text.empty() || gzwrite(f, text.data(), static_cast<unsigned>(text.size())) == static_cast<int>(text.size());
    ok = gzclose(f) == Z_OK && ok;
    if (!ok) *error = path + ": write error";
    return ok;
  }
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) {
    *error = path + ": cannot write";
    return false;
  }
  return true;
}

struct ConvertStats {
  std::uint64_t events = 0, unknown_frees = 0, unknown_reallocs = 0, implicit_frees = 0, failed = 0;
  bool forked = false;
};

sim::Trace convert_raw(const std::string& path, ConvertStats* st) {
  sim::Trace t;
  t.modules.push_back("?");
  std::ifstream in(path, std::ios::binary);
  std::unordered_map<std::uint64_t, std::uint32_t> live;
  std::vector<std::uint32_t> free_ids;  // a min-heap of reusable ids
  std::uint32_t next_id = 0;
  std::uint64_t t0 = 0;
  bool have_t0 = false;
  auto new_id = [&] {
    if (free_ids.empty()) return next_id++;
    std::pop_heap(free_ids.begin(), free_ids.end(), std::greater<>());
    std::uint32_t id = free_ids.back();
    free_ids.pop_back();
    return id;
  };
  auto release = [&](std::uint32_t id) {
    free_ids.push_back(id);
    std::push_heap(free_ids.begin(), free_ids.end(), std::greater<>());
  };
  auto push = [&](sim::OpKind k, std::uint32_t id, std::uint64_t size, const kmm_raw_event& e) {
    sim::TraceOp op{};
    op.kind = k;
    op.id = id;
    op.size = size;
    op.tid = e.tid;
    op.module = e.module;
    op.align_log2 = k == sim::OpKind::kFree ? 0 : e.align_log2;
    if (!have_t0) {
      t0 = e.time_ns;
      have_t0 = true;
    }
    if (t.ops.size() % 1024 == 0) t.clock.emplace_back(t.ops.size(), e.time_ns - std::min(t0, e.time_ns));
    t.ops.push_back(op);
  };
  kmm_raw_event e;
  while (in.read(reinterpret_cast<char*>(&e), sizeof e)) {
    ++st->events;
    switch (e.op) {
      case KMM_RAW_MODULE: {
        std::string name(static_cast<std::size_t>(std::min<std::uint64_t>(e.size, 4096)), '\0');
        std::size_t chunks = (name.size() + sizeof e - 1) / sizeof e;
        std::string raw(chunks * sizeof e, '\0');
        in.read(raw.data(), static_cast<std::streamsize>(raw.size()));
        name.assign(raw.data(), name.size());
        for (char& c : name)
          if (c == ' ' || c == '\t' || c == '\n' || c == '\r') c = '_';
        if (t.modules.size() <= e.module) t.modules.resize(e.module + 1u, "?");
        t.modules[e.module] = name;
        break;
      }
      case KMM_RAW_FORK:
        st->forked = true;
        break;
      case KMM_RAW_ALLOC: {
        if (e.ptr == 0) {
          ++st->failed;
          break;
        }
        auto it = live.find(e.ptr);
        if (it != live.end()) {
          ++st->implicit_frees;
          push(sim::OpKind::kFree, it->second, 0, e);
          release(it->second);
          live.erase(it);
        }
        std::uint32_t id = new_id();
        live.emplace(e.ptr, id);
        push(sim::OpKind::kAlloc, id, e.size, e);
        break;
      }
      case KMM_RAW_FREE: {
        auto it = live.find(e.ptr);
        if (it == live.end()) {
          ++st->unknown_frees;
          break;
        }
        push(sim::OpKind::kFree, it->second, 0, e);
        release(it->second);
        live.erase(it);
        break;
      }
      case KMM_RAW_REALLOC: {
        auto it = live.find(e.ptr);
        if (e.result == 0) {
          if (e.size == 0 && it != live.end()) {  // realloc(p, 0) freed p
            push(sim::OpKind::kFree, it->second, 0, e);
            release(it->second);
            live.erase(it);
          } else {
            ++st->failed;
          }
          break;
        }
        if (it == live.end()) {
          ++st->unknown_reallocs;
          auto clash = live.find(e.result);
          if (clash != live.end()) {
            ++st->implicit_frees;
            push(sim::OpKind::kFree, clash->second, 0, e);
            release(clash->second);
            live.erase(clash);
          }
          std::uint32_t id = new_id();
          live.emplace(e.result, id);
          push(sim::OpKind::kAlloc, id, e.size, e);
          break;
        }
        std::uint32_t id = it->second;
        live.erase(it);
        auto clash = live.find(e.result);
        if (clash != live.end()) {
          ++st->implicit_frees;
          push(sim::OpKind::kFree, clash->second, 0, e);
          release(clash->second);
          live.erase(clash);
        }
        live.emplace(e.result, id);
        push(sim::OpKind::kRealloc, id, e.size, e);
        break;
      }
      default:
        break;  // an unknown record: skip it
    }
  }
  t.num_ids = next_id;
  // The main thread's id is the pid: make thread ids small and stable (1 = the first).
  std::unordered_map<std::uint32_t, std::uint32_t> tids;
  for (sim::TraceOp& op : t.ops) {
    auto [it, added] = tids.emplace(op.tid, static_cast<std::uint32_t>(tids.size() + 1));
    op.tid = it->second;
  }
  return t;
}

std::string lib_path(const char* argv0) {
  if (const char* env = getenv("KMM_TRACE_LIB")) return env;
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  std::string self = n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : std::string(argv0);
  std::string dir = self.substr(0, self.rfind('/'));
  return dir + "/../lib/libkmm-trace.so";
}

}  // namespace

std::vector<std::string> convert_raw_dir(const std::string& dir, const std::string& output, int first_pid,
                                         std::string* error, std::string* summary) {
  struct Raw {
    int pid, seq;
    std::string path;
  };
  std::vector<Raw> raws;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    *error = dir + ": cannot open the recording directory";
    return {};
  }
  while (dirent* ent = readdir(d)) {
    int pid = 0, seq = 0;
    if (std::sscanf(ent->d_name, "raw.%d.%d", &pid, &seq) == 2) raws.push_back({pid, seq, dir + "/" + ent->d_name});
  }
  closedir(d);
  // The main trace is the last image of the first process: the program named on the
  // command line, after any wrappers (a shell script, a pyenv shim) exec'd it.
  std::sort(raws.begin(), raws.end(), [&](const Raw& a, const Raw& b) {
    bool am = a.pid == first_pid, bm = b.pid == first_pid;
    if (am != bm) return am;
    if (am) return a.seq > b.seq;
    return a.pid != b.pid ? a.pid < b.pid : a.seq < b.seq;
  });
  std::size_t shown = 0, empty = 0;
  std::vector<std::string> written;
  bool gz = output.size() > 3 && output.compare(output.size() - 3, 3, ".gz") == 0;
  std::string stem = gz ? output.substr(0, output.size() - 3) : output;
  for (std::size_t i = 0; i < raws.size(); ++i) {
    const Raw& r = raws[i];
    ConvertStats st;
    sim::Trace t = convert_raw(r.path, &st);
    std::string name = i == 0 ? output
                              : stem + "." + std::to_string(r.pid) + (r.seq != 0 ? "." + std::to_string(r.seq) : "") +
                                    (gz ? ".gz" : "");
    if (i != 0 && t.ops.empty()) {
      ++empty;  // a wrapper image that allocated nothing before its exec
      continue;
    }
    std::ostringstream text;
    write_trace(text, t);
    if (st.unknown_frees + st.unknown_reallocs + st.implicit_frees != 0 || st.forked) {
      // Comments after the trailer: every reader skips them.
      if (!t.extended && t.modules.size() <= 1 && t.clock.empty()) text << "#kmm-trace 1\n";
      text << fmt::format(
          "# {} frees and {} reallocs of blocks the recording never saw allocated were {}; {} implicit frees\n",
          st.unknown_frees, st.unknown_reallocs, st.forked ? "inherited from the parent (fork)" : "dropped",
          st.implicit_frees);
    }
    if (!write_file(name, text.str(), error)) return {};
    written.push_back(name);
    if (++shown > 8) continue;
    *summary += fmt::format(
        "{}: {} ops ({} a, {} f, {} r) from pid {}{}, {} ids, peak live {} bytes{}\n", name, t.ops.size(),
        std::count_if(t.ops.begin(), t.ops.end(), [](const sim::TraceOp& o) { return o.kind == sim::OpKind::kAlloc; }),
        std::count_if(t.ops.begin(), t.ops.end(), [](const sim::TraceOp& o) { return o.kind == sim::OpKind::kFree; }),
        std::count_if(t.ops.begin(), t.ops.end(),
                      [](const sim::TraceOp& o) { return o.kind == sim::OpKind::kRealloc; }),
        r.pid, r.seq != 0 ? fmt::format(" (image {})", r.seq) : "", t.num_ids,
        [&] {
          std::uint64_t live = 0, peak = 0;
          std::vector<std::uint64_t> sz(t.num_ids, 0);
          for (const sim::TraceOp& o : t.ops) {
            live -= sz[o.id];
            sz[o.id] = o.kind == sim::OpKind::kFree ? 0 : o.size;
            live += sz[o.id];
            peak = std::max(peak, live);
          }
          return peak;
        }(),
        st.unknown_frees != 0 ? fmt::format(", {} unknown frees dropped", st.unknown_frees) : "");
  }
  if (shown > 8) *summary += fmt::format("... and {} more trace files\n", shown - 8);
  if (empty != 0) *summary += fmt::format("({} process images allocated nothing: no file)\n", empty);
  return written;
}

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
  char real[PATH_MAX];
  if (realpath(lib.c_str(), real) != nullptr) lib = real;
  char tmpl[] = "/tmp/kmm-trace.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::cerr << "kmm trace: cannot create a temporary directory: " << std::strerror(errno) << "\n";
    return 2;
  }
  std::string dir = tmpl;
  // Daemons drop privileges (zebra runs as frr): any user may add its file (sticky, as /tmp).
  chmod(dir.c_str(), 01777);
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
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::string error, summary;
  std::vector<std::string> files = convert_raw_dir(dir, a.output, pid, &error, &summary);
  // Remove the raw files and the directory.
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* ent = readdir(d))
      if (std::strncmp(ent->d_name, "raw.", 4) == 0) unlink((dir + "/" + ent->d_name).c_str());
    closedir(d);
  }
  rmdir(dir.c_str());
  if (files.empty()) {
    std::cerr << "kmm trace: " << (error.empty() ? "nothing was recorded (did the program start?)" : error) << "\n";
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
        for (const auto& p : sim::replay_policies()) s += (s.empty() ? "" : ",") + p;
        return s;
      }());
  c->add_option("--ram", a->ram, "RAM of the modelled machine (K/M/G), default 192M");
  c->add_option("--mmu", a->mmu, "on or off (default off: a NOMMU board)");
  c->add_flag("--json", a->json, "print JSON");
  c->add_flag("--csv", a->csv, "print CSV");
  c->add_option("--timeline", a->timeline, "write footprint/live/largest-free samples to FILE.csv");
  c->add_option("--svg", a->svg, "write the timeline charts and final maps to FILE.svg");
  c->add_option("--report", a->report, "write a self-contained HTML report (table and charts) to FILE.html");
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
  sim::ReplayConfig cfg;
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
      if (!sim::parse_fault_rate(*rates[k], &f, &why)) {
        std::cerr << "kmm replay: " << names[k] << ": " << why << "\n";
        return 2;
      }
      f.seed = a.fail_seed;
      f.times = a.fail_times;
      f.space = space;
      cfg.fault_on[k] = true;
    }
  }
  std::vector<std::string> policies = a.policies == "all" ? sim::replay_policies() : split_commas(a.policies);
  for (const std::string& p : policies) {
    if (!sim::replay_policy_known(p)) {
      std::cerr << "kmm replay: unknown policy '" << p << "' (known: ";
      for (const auto& k : sim::replay_policies()) std::cerr << k << " ";
      std::cerr << "or all)\n";
      return 2;
    }
  }
  if (policies.empty()) {
    std::cerr << "kmm replay: no policy given\n";
    return 2;
  }
  std::string error;
  sim::TraceReadOptions ro;
  ro.lenient = a.lenient;
  std::optional<sim::Trace> t = sim::read_trace_file(a.trace, ro, &error);
  if (!t) {
    std::cerr << error << "\n";
    if (!a.lenient) std::cerr << "(--lenient skips bad lines and counts them)\n";
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
  std::vector<sim::ReplayResult> results;
  for (const std::string& p : policies) results.push_back(sim::replay(*t, p, cfg));
  if (a.json)
    sim::print_replay_json(std::cout, *t, cfg, results);
  else if (a.csv)
    sim::print_replay_csv(std::cout, results);
  else {
    sim::print_replay_table(std::cout, *t, cfg, results);
    std::cout << "\nfinal physical maps (X used, - free):\n";
    for (const auto& r : results)
      if (!r.map.empty()) std::cout << fmt::format("{:<16} {}K/char {}\n", r.policy, r.map_scale / 1024, r.map);
  }
  if (!a.timeline.empty()) {
    std::ofstream out(a.timeline);
    sim::write_timeline_csv(out, results);
    if (!out) {
      std::cerr << a.timeline << ": cannot write\n";
      return 2;
    }
  }
  if (!a.svg.empty()) {
    std::ofstream out(a.svg);
    sim::write_timeline_svg(out, *t, results);
    if (!out) {
      std::cerr << a.svg << ": cannot write\n";
      return 2;
    }
  }
  if (!a.report.empty()) {
    std::ofstream out(a.report);
    sim::write_replay_report(out, *t, cfg, results);
    if (!out) {
      std::cerr << a.report << ": cannot write\n";
      return 2;
    }
  }
  return 0;
}

}  // namespace kmm::tools

// kmm/scenario/fault_commands.cpp — the scenario's `fail` command and values; see fault_commands.h.
// Family fault of the command table: its one row (`fail`, runs with or without a machine) is here.
// Depends on: base/fault_inject.h, base/options.h, scenario/ (command table, interpreter), fmt.
// Invariants: fault points are process-wide: a Scenario disarms them all when it ends.
#include "scenario/fault_commands.h"

#include <fmt/format.h>

#include <map>

#include "base/options.h"
#include "base/text.h"
#include "scenario/command_table.h"
#include "scenario/scenario.h"
#include "scenario/script_args.h"

namespace kmm::scenario {
namespace {

// "usage: fail ..." (scenario/command_table.h).
std::string usage() {
  return command_usage("fail");
}

bool point_arg(const std::string& s, FaultPoint* p) {
  return fault_point_from_name(s.data(), s.size(), p);
}

bool parse_u64(const std::string& s, std::uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

void print_point(FaultPoint p, std::ostream& out) {
  char buf[512];
  TextSink sink(buf, sizeof buf);
  fault_print(p, sink);
  out << sink.data();
}

}  // namespace

bool parse_fault_rate(const std::string& text, FaultConfig* cfg, std::string* error) {
  std::uint64_t interval = 1;
  std::uint32_t ppm = 0;
  if (!fault_parse_rate(text.data(), text.size(), &interval, &ppm)) {
    *error = "bad failure rate '" + text + "' (want N for every Nth call, or P% with 0 < P <= 100, e.g. 0.5%)";
    return false;
  }
  cfg->interval = interval;
  cfg->probability_ppm = ppm;
  return true;
}

std::uint64_t fault_injected_total() {
  std::uint64_t n = 0;
  for (unsigned i = 0; i < kNrFaultPoints; ++i) n += fault_failures(static_cast<FaultPoint>(i));
  return n;
}

std::optional<bool> fault_command(const std::vector<std::string>& a, std::ostream& out, std::string* error) {
  if (a.empty() || a[0] != "fail") return std::nullopt;
  if (a.size() == 1 || (a.size() == 2 && a[1] == "show")) {
    for (unsigned i = 0; i < kNrFaultPoints; ++i) print_point(static_cast<FaultPoint>(i), out);
    return true;
  }
  if (a[1] == "off") {
    if (a.size() == 2 || (a.size() == 3 && a[2] == "all")) {
      fault_disable_all();
      out << "fault injection off\n";
      return true;
    }
    FaultPoint p;
    if (a.size() != 3 || !point_arg(a[2], &p)) {
      *error = a.size() == 3 ? "no injection point '" + a[2] + "' (slab, page or platform)" : usage();
      return false;
    }
    fault_disable(p);
    out << fmt::format("{} off: {} calls, {} failures injected\n", fault_point_name(p), fault_calls(p),
                       fault_failures(p));
    return true;
  }
  FaultPoint p;
  if (!point_arg(a[1], &p)) {
    *error = "no injection point '" + a[1] + "' (slab, page or platform); " + usage();
    return false;
  }
  std::map<std::string, std::string> opt;
  std::string bad;
  if (!parse_options(a, 2, &opt, &bad)) {
    *error = "bad fail option '" + bad + "' (want key=value); " + usage();
    return false;
  }
  FaultConfig cfg;
  bool rate = false;
  for (auto& [key, v] : opt) {
    if (key == "every" || key == "probability") {
      if (rate) {
        *error = "give one of every= and probability=";
        return false;
      }
      rate = true;
      if (key == "every" && (v.empty() || v.back() == '%')) {
        *error = "bad every='" + v + "' (want a count N >= 1: every Nth call fails)";
        return false;
      }
      if (key == "probability" && (v.empty() || v.back() != '%')) {
        *error = "bad probability='" + v + "' (want a percentage, e.g. probability=5% or 0.1%)";
        return false;
      }
      if (!parse_fault_rate(v, &cfg, error)) return false;
    } else if (key == "times") {
      std::int64_t t;
      if (!fault_parse_int(v.data(), v.size(), &t) || t < -1) {
        *error = "bad times='" + v + "' (want N >= 0, or -1 for no limit)";
        return false;
      }
      cfg.times = t;
    } else if (key == "space") {
      std::uint64_t sp;
      if (!parse_size(v.data(), v.size(), &sp)) {
        *error = "bad space='" + v + "' (want a size, e.g. 64K)";
        return false;
      }
      cfg.space = sp;
    } else if (key == "seed") {
      if (!parse_u64(v, &cfg.seed)) {
        *error = "bad seed='" + v + "' (want a decimal number)";
        return false;
      }
    } else if (key == "verbose") {
      if (v != "0" && v != "1" && v != "2") {
        *error = "bad verbose='" + v + "' (want 0, 1 or 2)";
        return false;
      }
      cfg.verbose = static_cast<unsigned>(v[0] - '0');
    } else {
      *error = "unknown fail option '" + key + "'; " + usage();
      return false;
    }
  }
  if (!rate) {
    *error = std::string("fail ") + a[1] + " needs every=N or probability=P%";
    return false;
  }
  fault_configure(p, cfg);
  out << fmt::format("{} on: fails ", fault_point_name(p));
  if (cfg.probability_ppm >= 1'000'000)
    out << fmt::format("1 call in {}", cfg.interval);
  else
    out << fmt::format("{}.{:04}% of calls (seed {})", cfg.probability_ppm / 10000, cfg.probability_ppm % 10000,
                       cfg.seed);
  out << fmt::format(", times {}, space {}, verbose {}\n", cfg.times, cfg.space, cfg.verbose);
  return true;
}

// The `fail` command: process-wide, so it runs with or without a machine.
LineStatus Scenario::cmd_fail(const CommandCall& c) {
  std::string error;
  const bool ok = fault_command(c.a, out_, &error).value_or(false);  // a[0] is "fail": never nullopt
  return ok ? LineStatus::kOk : script_error(c.where, error);
}

std::span<const CommandRow> CommandTables::fault() {
  using F = CommandFamily;
  static constexpr CommandRow kRows[] = {
      {"fail",
       "fail slab|page|platform every=N|probability=P% [times=N] [space=SIZE] [seed=S] [verbose=0|1]"
       " | fail off [slab|page|platform] | fail",
       "fault injection (Linux's failslab, fail_page_alloc): fail every Nth or a random P% of allocations; "
       "off; or show each point",
       F::kFault, &Scenario::cmd_fail, CommandWhen::kAnyTime},
  };
  return kRows;
}

std::optional<std::int64_t> fault_value(const std::string& rest, std::string* error) {
  if (rest == "injected") return static_cast<std::int64_t>(fault_injected_total());
  auto d = rest.find('.');
  std::string point = rest.substr(0, d), field = d == std::string::npos ? "" : rest.substr(d + 1);
  FaultPoint p;
  if (!point_arg(point, &p)) {
    *error = "fail values are fail.injected and fail.slab|page|platform.calls|failures, not 'fail." + rest + "'";
    return std::nullopt;
  }
  if (field == "calls") return static_cast<std::int64_t>(fault_calls(p));
  if (field == "failures") return static_cast<std::int64_t>(fault_failures(p));
  if (field == "enabled") return fault_enabled(p) ? 1 : 0;
  *error = "fail." + point + " has calls, failures and enabled, not '" + field + "'";
  return std::nullopt;
}

FaultPause::FaultPause() {
  for (unsigned i = 0; i < kNrFaultPoints; ++i) {
    auto p = static_cast<FaultPoint>(i);
    was_[i] = fault_enabled(p);
    if (was_[i]) fault_disable(p);
  }
}

FaultPause::~FaultPause() {
  for (unsigned i = 0; i < kNrFaultPoints; ++i)
    if (was_[i]) fault_resume(static_cast<FaultPoint>(i));
}

}  // namespace kmm::scenario

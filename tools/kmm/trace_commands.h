// kmm/tools/kmm/trace_commands.h — the `kmm trace` and `kmm replay` subcommands.
//
//   kmm trace -o FILE [--with-callers] -- CMD [ARGS]
//       runs CMD with libkmm-trace.so preloaded, then turns the raw records into FILE (the
//       text format of docs/TRACE_FORMAT.md; FILE.gz is written compressed). Processes the
//       program forks or executes get their own files, FILE.PID (see docs/TRACE_FORMAT.md).
//       Exit status: the program's.
//   kmm replay TRACE --policy P[,P...|all] [--ram SIZE] [--mmu on|off] [--json|--csv]
//              [--timeline FILE.csv] [--svg FILE.svg] [--lenient] [--check]
//              [--fail-slab N|P%] [--fail-page N|P%] [--fail-platform N|P%]
//              [--fail-seed S] [--fail-times N] [--fail-space SIZE]   fault injection
//       exit 0 replayed, 2 the trace or the arguments are wrong (FILE:LINE: on stderr).
//
// Depends on: replay/ (trace.h, replay.h, convert.h), kernel/boot_settings.h (--ram's
// default), base/units.h (sizes: the one parser), CLI11, POSIX (fork, exec, waitpid).
// Invariant: arguments only; the format, conversion and replay are src/replay's.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "kernel/boot_settings.h"

namespace kmm::tools {

struct ReplayArgs {
  std::string trace;
  std::string policies = "all";
  std::string ram = kBootSettingRam.machine_default;  // a modelled machine's (kernel/boot_settings.h)
  std::string mmu = "off";
  bool json = false, csv = false, lenient = false, check = false;
  std::string timeline, svg, report;
  // Fault injection (base/fault_inject.h): N fails every Nth call, P% a random share.
  std::string fail_slab, fail_page, fail_platform, fail_space;
  std::uint64_t fail_seed = 0;
  std::int64_t fail_times = -1;
};

struct TraceArgs {
  std::string output;
  bool with_callers = false;
  std::vector<std::string> command;
};

CLI::App* add_replay(CLI::App& app, ReplayArgs* a);
CLI::App* add_trace(CLI::App& app, TraceArgs* a);
int run_replay(const ReplayArgs& a);
int run_trace(const TraceArgs& a, const char* argv0);

}  // namespace kmm::tools

// kmm/tools/kmm/exec_commands.h — `kmm exec` and `kmm stat`: real programs on kmm's allocator.
//
//   kmm exec [--stats] [--protect=off|report|reclaim|reclaim-unreachable] [--gc-delay=D]
//            [--no-live] -- CMD [ARGS]
//       runs CMD with LD_PRELOAD=<dir of kmm>/../lib/libkmm-preload.so (or $KMM_PRELOAD_LIB)
//       and KMM_OPTIONS built from the flags (appended to any KMM_OPTIONS already set); the
//       exit status is the program's (exec replaces kmm). A --gc-delay that KMM_OPTIONS would
//       refuse is refused here (checked by the shim's own parser, shim/options.h, through the
//       row of gc_delay): a message, exit 2, nothing run. The flags' help lines are the rows'
//       of kernel/boot_settings.h, which the scenario `boot` line and KMM_OPTIONS show too.
//   kmm stat PID
//       prints the live stats of a process running on kmm with live stats on (kmm exec turns
//       them on; KMM_OPTIONS=live=1 otherwise): it connects to the abstract unix socket
//       "@kmm-stat-PID" the shim listens on (docs/PRELOAD.md), after checking that the
//       server is process PID with its uid (SO_PEERCRED): else "an impostor", exit 2.
//
// Depends on: CLI11, POSIX (execvp, sockets), kernel/boot_settings.h (the flags' help and
// --protect's default),
// shim/options.h (KMM_OPTIONS's parser), protect/protector_mode.h (the mode names and the
// shim's default mode).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "kernel/boot_settings.h"
#include "protect/protector_mode.h"

namespace kmm::tools {

struct ExecArgs {
  bool stats = false;
  bool no_live = false;
  std::string protect = kBootSettingProtector.process_default;  // KMM_OPTIONS's default
  std::string gc_delay;
  std::vector<std::string> command;       // the program and its arguments (take_exec_command)
  std::vector<std::string> help_command;  // never filled: the positional --help lists
};

// `kmm exec`'s words from the program's name on (after an optional `--`) are the program's,
// options included: they go to a->command and are cut from argv before CLI11 parses it (it
// took `kmm exec ./prog --stats`'s --stats as kmm's, and refused `kmm exec ls -l`'s -l).
// Returns the argc CLI11 is to see (argc itself when argv is not `kmm exec ...`).
int take_exec_command(int argc, char** argv, ExecArgs* a);

CLI::App* add_exec(CLI::App& app, ExecArgs* a);
int run_exec(const ExecArgs& a, const char* argv0);

CLI::App* add_stat(CLI::App& app, int* pid);
int run_stat(int pid);

}  // namespace kmm::tools

// kmm — the command-line program (CONTRACT: build/bin/kmm; see DESIGN.md "Command line").
//   kmm demo                 the paper's experiment, stock and protected side by side
//   kmm run FILE.kms...      scenarios; exit 0 all expects held, 1 one failed, 2 script wrong
//            [--report FILE.html]  also an HTML report of the run (report/run_report.h)
//   kmm shell                the same commands at a prompt
//   kmm translate VADDR [--boot OPTIONS] [--access read|write|exec] [--mode kernel|user]
//                            walk an address through a freshly booted machine's page tables
//   kmm fsck FILE            check a persistent heap file offline: 0 clean, 1 inconsistent, 2 unusable
//   kmm replay TRACE --policy P[,P...] [--ram SIZE] [--mmu on|off] [--json|--csv]
//              [--timeline FILE.csv] [--svg FILE.svg] [--report FILE.html] [--lenient]   replay a trace
//   kmm trace -o FILE [--with-callers] -- CMD [ARGS]   record a program's allocations
//   kmm exec [--stats] [--protect=MODE] -- CMD [ARGS]   run a program on kmm's allocator
//   kmm stat PID             live stats of a program running under kmm exec
//   kmm help [TOPIC] [--man]  cli, options (KMM_OPTIONS), scenario, boot, a command; --man: the man page
//   kmm --version            "kmm 0.1.0" (CMakeLists.txt's project version)
// Depends on: scenario/, replay/, report/, CLI11.
#include <CLI/CLI.hpp>

#include <unistd.h>
#include <fstream>
#include <iostream>
#include <sstream>

#include "trace_commands.h"
#include "exec_commands.h"
#include "help.h"
#include "demo.h"
#include "scenario/persist_commands.h"
#include "report/run_report.h"
#include "scenario/scenario.h"

int main(int argc, char** argv) {
  CLI::App app{"kmm — a Linux-style kernel memory manager with a kernel memory protector"};
  app.require_subcommand(1);

  auto* demo = app.add_subcommand("demo", "Run the paper's experiment: stock and protected kernels side by side");

  std::vector<std::string> files;
  bool quiet = false;
  auto* run = app.add_subcommand("run", "Run scenario scripts (.kms)");
  run->add_option("files", files, "scenario files ('-' for standard input)")->required();
  run->add_flag("-q,--quiet", quiet, "do not echo commands");
  std::string run_report;
  run->add_option("--report", run_report,
                  "write a self-contained HTML report of the run to this file (named as given: no .html is added)");

  auto* shell = app.add_subcommand(
      "shell",
      "Type scenario commands at a prompt (help: where the commands are; exit, quit or end of input ends it: "
      "status 1 when an expect failed, else 0)");

  // kmm translate: one address walked on a freshly booted machine (the scenario command
  // `translate` from the command line).
  std::string tr_addr, tr_boot = "ram=192M", tr_access = "read", tr_mode = "kernel";
  auto* translate =
      app.add_subcommand("translate", "Walk a virtual address through a booted machine's kernel page tables");
  translate->add_option("vaddr", tr_addr, "virtual address, e.g. 0xC0403012")->required();
  translate->add_option("--boot", tr_boot, "boot options, as in a scenario's boot line (default: ram=192M)");
  translate->add_option("--access", tr_access, "read, write or exec (default read)")
      ->check(CLI::IsMember({"read", "write", "exec"}));
  translate->add_option("--mode", tr_mode, "the CPU mode: kernel or user (default kernel)")
      ->check(CLI::IsMember({"kernel", "user"}));

  std::string fsck_file;
  auto* fsck =
      app.add_subcommand("fsck", "Check a persistent heap file offline (exit 0 clean, 1 inconsistent, 2 unusable)");
  fsck->add_option("file", fsck_file, "heap file (boot backing=FILE)")->required();

  kmm::tools::ReplayArgs replay_args;
  auto* replay = kmm::tools::add_replay(app, &replay_args);
  kmm::tools::TraceArgs trace_args;
  auto* trace = kmm::tools::add_trace(app, &trace_args);

  kmm::tools::ExecArgs exec_args;
  auto* exec = kmm::tools::add_exec(app, &exec_args);
  int stat_pid = 0;
  auto* stat = kmm::tools::add_stat(app, &stat_pid);
  kmm::tools::HelpArgs help_args;
  auto* help = kmm::tools::add_help(app, &help_args);  // last: it lists the others
  // The one version: CMakeLists.txt's project(VERSION), as the man page's header shows it.
  app.set_version_flag("--version", std::string("kmm ") + KMM_VERSION, "print kmm's version and exit");
  if (int rc = kmm::tools::check_command_word(app, argc, argv, std::cerr); rc >= 0) return rc;

  try {
    app.parse(kmm::tools::take_exec_command(argc, argv, &exec_args), argv);
  } catch (const CLI::ParseError& e) {
    // CLI11's own codes (104-114) would read as a program's status under `kmm exec`: a
    // wrong command line is exit 2, as a wrong script line is; --help and --version are 0.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (help->parsed()) return kmm::tools::run_help(app, help_args, std::cout, std::cerr);
  if (exec->parsed()) return kmm::tools::run_exec(exec_args, argv[0]);
  if (stat->parsed()) return kmm::tools::run_stat(stat_pid);
  if (replay->parsed()) return kmm::tools::run_replay(replay_args);
  if (trace->parsed()) return kmm::tools::run_trace(trace_args, argv[0]);

  if (demo->parsed()) return kmm::scenario::run_paper_demo(std::cout);
  if (translate->parsed()) {
    kmm::scenario::Scenario sc(std::cout, std::cerr);
    sc.set_echo(false);
    std::istringstream script("boot " + tr_boot + "\ntranslate kernel " + tr_addr + " " + tr_access + " " + tr_mode +
                              "\n");
    int rc = sc.run_script(script, "kmm translate");
    // A fault is an answer, not an error: exit 0 unless the arguments were wrong.
    return rc == 2 ? 2 : 0;
  }
  if (fsck->parsed()) return kmm::scenario::run_fsck(fsck_file, std::cout);
  if (run->parsed()) {
    kmm::scenario::RunRecorder recorder;
    // The report is written whatever the scripts' outcome (a failed expect is worth a look).
    auto write_report = [&](int rc) {
      if (run_report.empty()) return rc;
      std::ofstream out(run_report);
      std::string title;
      for (const auto& f : files) title += (title.empty() ? "" : " ") + f;
      recorder.write_html(out, title);
      if (!out) {
        std::cerr << run_report << ": cannot write\n";
        return 2;
      }
      return rc;
    };
    int worst = 0;
    for (const auto& f : files) {
      kmm::scenario::Scenario sc(std::cout, std::cerr);
      sc.set_echo(!quiet);
      if (!run_report.empty()) sc.set_observer(&recorder);
      int rc;
      if (f == "-") {
        rc = sc.run_script(std::cin, "<stdin>");
      } else {
        std::ifstream in(f);
        if (!in) {
          std::cerr << f << ": error: cannot open\n";
          return write_report(2);
        }
        rc = sc.run_script(in, f);
      }
      std::cout.flush();
      if (rc == 2) return write_report(2);
      if (rc > worst) worst = rc;
    }
    return write_report(worst);
  }
  if (shell->parsed()) {
    kmm::scenario::Scenario sc(std::cout, std::cerr);
    return sc.run_shell(std::cin, isatty(0) != 0);
  }
  return 0;
}

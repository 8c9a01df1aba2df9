// kmm/tools/kmm/help.h — `kmm help [TOPIC]` and `kmm help --man`: the command line, KMM_OPTIONS
// and the scenario language, printed from the tables the code itself uses.
//
//   kmm help                 the topics
//   kmm help cli             every subcommand with its arguments and options (the CLI11 app)
//   kmm help options         the KMM_OPTIONS keys (shim/options_table.h)
//   kmm help scenario        the scenario commands by family (scenario/command_table.h)
//   kmm help SUBCOMMAND      that subcommand's own help (CLI11's)
//   kmm help --man           a man page (roff, section 1) of all three: build/share/man/man1/kmm.1
// An unknown topic exits 2, naming it.
//
// Depends on: CLI11, shim/options_table.h, scenario/command_table.h.
// Invariant: nothing here lists a command, option or key by hand: each comes from its table,
// so help cannot say what the program does not do.
#pragma once

#include <CLI/CLI.hpp>

#include <iosfwd>
#include <string>

namespace kmm::tools {

struct HelpArgs {
  std::string topic;
  bool man = false;
};

CLI::App* add_help(CLI::App& app, HelpArgs* a);
// app: the whole program's, with every subcommand added. Returns the exit status.
int run_help(const CLI::App& app, const HelpArgs& a, std::ostream& out, std::ostream& err);
// argv[1] when it is a word that names no subcommand (`kmm rnu x.kms`): prints "kmm: unknown
// command 'WORD'" and the commands on err and returns 2; else -1 (CLI11 parses the line).
// CLI11 alone said only "A subcommand is required", which named neither.
int check_command_word(const CLI::App& app, int argc, char** argv, std::ostream& err);

}  // namespace kmm::tools

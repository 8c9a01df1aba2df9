// kmm/tools/kmm/help.cpp — `kmm help` (help.h): plain-text topics and the roff man page, both
// built from the same four sources (the CLI11 app, the KMM_OPTIONS table, the scenario
// command table, the scenario boot-option table). One Doc model is filled from them and
// printed two ways.
#include "help.h"

#include <cctype>
#include <ostream>
#include <vector>

#include "scenario/boot_options.h"
#include "scenario/command_table.h"
#include "shim/options_table.h"

#ifndef KMM_VERSION
#define KMM_VERSION "0"
#endif

namespace kmm::tools {
namespace {

// --- the sources ------------------------------------------------------------------------------

struct Item {
  std::string tag;   // what the reader types: "--ram SIZE", "run FILES...", "protect=off|report"
  std::string text;  // one line
};

struct Section {
  std::string title;
  std::vector<Item> items;
};

std::vector<const CLI::App*> subcommands(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App*) { return true; });
}

// "FILES..." for a positional, "-o,--output TEXT" for an option, "--json" for a flag.
std::string option_tag(const CLI::Option* o) {
  if (!o->nonpositional()) {
    std::string n = o->get_name(true);
    for (char& c : n) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (o->get_items_expected_max() > 1) n += "...";
    return o->get_required() ? n : "[" + n + "]";
  }
  std::string n = o->get_name(false, true);
  if (o->get_expected_max() != 0) {
    std::string type = o->get_type_name();
    n += " " + (type.empty() ? std::string("VALUE") : type);
  }
  return n;
}

// The subcommand's synopsis: "replay TRACE [options]".
std::string synopsis(const CLI::App* sub) {
  std::string s = sub->get_name();
  bool options = false;
  for (const CLI::Option* o : sub->get_options()) {
    if (o == sub->get_help_ptr()) continue;
    if (o->nonpositional())
      options = true;
    else
      s += " " + option_tag(o);
  }
  if (options) s = sub->get_name() + " [options]" + s.substr(sub->get_name().size());
  return s;
}

std::vector<Item> options_of(const CLI::App* sub) {
  std::vector<Item> items;
  for (const CLI::Option* o : sub->get_options()) {
    if (o == sub->get_help_ptr()) continue;
    items.push_back({option_tag(o), o->get_description()});
  }
  return items;
}

Section kmm_options_section() {
  Section s{"KMM_OPTIONS", {}};
  for (std::size_t i = 0; i < shim::option_row_count(); ++i) {
    const shim::OptionRow& r = shim::option_rows()[i];
    if (r.hidden) continue;
    s.items.push_back(
        {std::string(r.name) + "=" + r.syntax,
         std::string(r.meaning) + " (" + shim::option_kind_name(r.kind) + ", default " + r.default_value + ")"});
  }
  return s;
}

// The scenario `boot KEY=VALUE...` options (scenario/boot_options.h).
Section boot_options_section() {
  Section s{"Boot options [boot KEY=VALUE...]", {}};
  for (std::size_t i = 0; i < scenario::boot_option_row_count(); ++i) {
    const scenario::BootOptionRow& r = scenario::boot_option_rows()[i];
    std::string about = std::string(" (") + scenario::boot_option_kind_name(r.kind);
    if (r.default_value != nullptr) about += std::string(", default ") + r.default_value;
    s.items.push_back({std::string(r.name) + "=" + r.syntax, r.help + about + ")"});
  }
  return s;
}

std::vector<Section> scenario_sections() {
  std::vector<Section> out;
  for (const scenario::CommandRow& r : scenario::command_table()) {
    std::string title =
        std::string(scenario::command_family_title(r.family)) + " [" + scenario::command_family_name(r.family) + "]";
    if (out.empty() || out.back().title != title) out.push_back({title, {}});
    out.back().items.push_back({r.usage, r.summary});
  }
  return out;
}

// --- plain text ---------------------------------------------------------------------------------

void print_items(std::ostream& out, const std::vector<Item>& items, const char* indent) {
  for (const Item& it : items) {
    out << indent << it.tag << "\n";
    if (!it.text.empty()) out << indent << "    " << it.text << "\n";
  }
}

void text_cli(const CLI::App& app, std::ostream& out) {
  out << app.get_description() << "\n\nUsage: kmm COMMAND [options] [ARGS]\n";
  for (const CLI::App* sub : subcommands(app)) {
    out << "\n  kmm " << synopsis(sub) << "\n      " << sub->get_description() << "\n";
    print_items(out, options_of(sub), "      ");
  }
  out << "\nkmm help TOPIC: cli, options, scenario, boot; kmm help COMMAND: one command's own help.\n";
}

void text_options(std::ostream& out) {
  out << "KMM_OPTIONS=key=value:key=value ... (read by libkmm-preload.so at its first allocation;\n"
         "`kmm exec` sets it from its flags; an unknown key or a bad value is warned about on stderr;\n"
         "ignored in secure-execution mode: setuid, setgid, file capabilities)\n\n";
  print_items(out, kmm_options_section().items, "  ");
}

void text_boot(std::ostream& out) {
  out << "boot KEY=VALUE... (a scenario line; kmm run, kmm shell): boots a machine, shutting down the\n"
         "previous one. A key not given keeps its default; an unknown key or a bad value is a script\n"
         "error (exit 2). Numbers take K/M/G or 0x hex; durations ns/us/ms/s/m/min.\n\n";
  print_items(out, boot_options_section().items, "  ");
}

void text_scenario(std::ostream& out) {
  out << "Scenario commands (kmm run FILE.kms, kmm shell): one a line, # starts a comment.\n"
         "Exit status of kmm run: 0 every expect held, 1 an expect failed, 2 the script is wrong.\n";
  for (const Section& s : scenario_sections()) {
    out << "\n" << s.title << ":\n";
    print_items(out, s.items, "  ");
  }
}

// --- roff ---------------------------------------------------------------------------------------

// Text for a roff line: backslashes and hyphens escaped, a leading '.' or '\'' made literal,
// and a break point (\:) after a ',' or '|' inside a word, so that a long list such as
// "buddy,slab,pow2,..." can wrap instead of overflowing the line (groff: "cannot adjust").
std::string roff(const std::string& s) {
  std::string r;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\')
      r += "\\e";
    else if (c == '-')
      r += "\\-";
    else
      r += c;
    if ((c == ',' || c == '|') && i + 1 < s.size() && s[i + 1] != ' ') r += "\\:";
  }
  if (!r.empty() && (r[0] == '.' || r[0] == '\'')) r = "\\&" + r;
  return r;
}

void man_items(std::ostream& out, const std::vector<Item>& items) {
  for (const Item& it : items) {
    out << ".TP\n\\fB" << roff(it.tag) << "\\fR\n";
    out << (it.text.empty() ? std::string("\\&") : roff(it.text)) << "\n";
  }
}

void man_page(const CLI::App& app, std::ostream& out) {
  out << ".\\\" kmm(1), generated by `kmm help --man` from the program's own tables; do not edit.\n";
  out << ".TH KMM 1 \"\" \"kmm " << KMM_VERSION << "\" \"User Commands\"\n";
  // Ragged right, no hyphenation: usage lines and long lists wrap at their break points
  // without groff's "cannot adjust line", and option names stay whole.
  out << ".ad l\n.nh\n";
  out << ".SH NAME\nkmm \\- " << roff("a Linux-style kernel memory manager with a kernel memory protector") << "\n";
  out << ".SH SYNOPSIS\n";
  for (const CLI::App* sub : subcommands(app)) out << ".br\n\\fBkmm\\fR " << roff(synopsis(sub)) << "\n";
  out << ".SH DESCRIPTION\n"
      << roff(
             "kmm models Linux's memory manager (page frames, the buddy allocator, slab caches, kmalloc, "
             "vmalloc, page tables) in user space, with the kernel memory protector of Baek, Park and Choi "
             "(2004): allocations carry their owner, and an idle-time collector reports or reclaims what "
             "unloaded modules leaked. It runs scenarios of a modelled machine, replays allocation traces, "
             "and is a drop-in malloc for real programs (libkmm-preload.so).")
      << "\n";
  out << ".SH COMMANDS\n";
  for (const CLI::App* sub : subcommands(app)) {
    out << ".TP\n\\fBkmm " << roff(synopsis(sub)) << "\\fR\n" << roff(sub->get_description()) << "\n";
    std::vector<Item> items = options_of(sub);
    if (!items.empty()) {
      out << ".RS\n";
      man_items(out, items);
      out << ".RE\n";
    }
  }
  out << ".SH ENVIRONMENT\n.TP\n\\fBKMM_OPTIONS\\fR\n"
      << roff(
             "key=value items separated by ':', read by libkmm-preload.so (kmm exec sets it from its flags). "
             "Sizes and durations are read as in a scenario. "
             "An unknown key or a bad value is warned about on stderr; in secure-execution mode (setuid, "
             "setgid, file capabilities) the variable is ignored. The keys:")
      << "\n.RS\n";
  man_items(out, kmm_options_section().items);
  out << ".RE\n";
  out << ".TP\n\\fBKMM_PRELOAD_LIB\\fR\n"
      << roff("the preload library kmm exec runs the program with, instead of lib/libkmm-preload.so beside kmm")
      << "\n.TP\n\\fBKMM_TRACE_LIB\\fR\n"
      << roff("the recorder library kmm trace runs the program with, instead of lib/libkmm-trace.so beside kmm")
      << "\n";
  out << ".SH SCENARIO LANGUAGE\n"
      << roff(
             "A scenario (kmm run FILE.kms, kmm shell) is one command a line; # starts a comment. Sizes take "
             "K/M/G or 0x hex; durations ns/us/ms/s/m/min. Expressions (let, expect) combine numbers, $names and "
             "values such "
             "as meminfo.MemFree, module.NAME.bytes, leaks.count.")
      << "\n";
  for (const Section& s : scenario_sections()) {
    out << ".SS " << roff(s.title) << "\n";
    man_items(out, s.items);
  }
  out << ".SS " << roff(boot_options_section().title) << "\n";
  man_items(out, boot_options_section().items);
  out << ".SH EXIT STATUS\n"
      << roff(
             "kmm run: 0 every expect held, 1 an expect failed, 2 the script is wrong (FILE:LINE: on stderr). "
             "kmm fsck: 0 clean, 1 inconsistent, 2 unusable. kmm exec: the program's. kmm help: 2 for an "
             "unknown topic. A wrong command line (an unknown command or option, a missing argument): 2; "
             "kmm --help and kmm --version: 0.")
      << "\n";
  out << ".SH FILES\n.TP\n\\fIlib/libkmm-preload.so\\fR\n"
      << roff("kmm's malloc, found by kmm exec in the lib directory beside the program's bin directory") << "\n"
      << ".TP\n\\fIlib/libkmm-trace.so\\fR\n"
      << roff("the allocation recorder of kmm trace") << "\n";
  out << ".SH SEE ALSO\n"
      << roff(
             "kmm help cli, kmm help options, kmm help scenario, kmm help boot; docs/SCENARIOS.md, docs/PRELOAD.md, "
             "docs/RELIABILITY.md in the source tree.")
      << "\n";
}

}  // namespace

int check_command_word(const CLI::App& app, int argc, char** argv, std::ostream& err) {
  if (argc < 2 || argv[1][0] == '-') return -1;
  std::string names;
  for (const CLI::App* sub : subcommands(app)) {
    if (sub->get_name() == argv[1]) return -1;
    names += (names.empty() ? "" : ", ") + sub->get_name();
  }
  err << "kmm: unknown command '" << argv[1] << "' (commands: " << names << "; kmm help cli)\n";
  return 2;
}

CLI::App* add_help(CLI::App& app, HelpArgs* a) {
  auto* sub =
      app.add_subcommand("help", "Print help on a topic (cli, options, scenario, boot, or a command), or a man page");
  sub->add_option("topic", a->topic, "cli, options, scenario, boot, or a command's name; none: the topics");
  sub->add_flag("--man", a->man, "print the man page (roff, section 1)");
  return sub;
}

int run_help(const CLI::App& app, const HelpArgs& a, std::ostream& out, std::ostream& err) {
  if (a.man) {
    if (!a.topic.empty()) {
      err << "kmm help: --man takes no topic (the page holds them all)\n";
      return 2;
    }
    man_page(app, out);
    return 0;
  }
  if (a.topic.empty()) {
    out << "kmm help TOPIC, where TOPIC is one of:\n"
           "  cli        the subcommands and their options\n"
           "  options    the KMM_OPTIONS keys of libkmm-preload.so (kmm exec)\n"
           "  scenario   the commands of a scenario (kmm run, kmm shell)\n"
           "  boot       the KEY=VALUE options of a scenario's boot line\n"
           "  COMMAND    one subcommand's help:";
    for (const CLI::App* sub : subcommands(app)) out << " " << sub->get_name();
    out << "\nkmm help --man: all of it as a man page (installed as man kmm).\n";
    return 0;
  }
  if (a.topic == "cli") {
    text_cli(app, out);
    return 0;
  }
  if (a.topic == "options") {
    text_options(out);
    return 0;
  }
  if (a.topic == "scenario") {
    text_scenario(out);
    return 0;
  }
  if (a.topic == "boot") {
    text_boot(out);
    return 0;
  }
  for (const CLI::App* sub : subcommands(app)) {
    if (sub->get_name() == a.topic) {
      out << sub->help();
      return 0;
    }
  }
  err << "kmm help: unknown topic '" << a.topic << "' (topics: cli, options, scenario, boot, or a command's name)\n";
  return 2;
}

}  // namespace kmm::tools

// kmm/scenario/command_table.h — the scenario language's commands as data: one table of
// {name, usage, summary, family, handler} per command family.
//
// Each family's table is defined beside its handlers (CommandTables below): script in
// scenario.cpp, common in common_commands.cpp, mmu and nommu in their process models' files,
// fault and persist in theirs. The interpreter (Scenario::dispatch) looks a command up here and
// calls the row's handler; the "usage: ..." errors come from the rows, the "unknown command"
// error is made here, and `kmm help scenario` and the man page list the same rows, grouped by
// family. A command whose arguments differ by machine kind (spawn, malloc, free, exit: the MMU
// and NOMMU process models) has one row per kind.
//
// Depends on: the C++ standard library only (Scenario and LineStatus are only named here).
// Invariants: on either kind of machine (mmu=on, mmu=off) the rows it sees have unique
// names, and each is a command the interpreter runs (tests/scenario/test_command_table.cpp);
// every row has a handler; only rows marked kAnyTime run before the first boot; a handler of
// a family that needs a model (family_needs) runs only once the model is there.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kmm::scenario {

enum class CommandFamily : std::uint8_t {
  kScript,   // values and checks: no machine needed
  kFault,    // fault injection: process-wide, no machine needed
  kCommon,   // any booted machine
  kMmu,      // mmu=on machines: address spaces, page tables, the TLB
  kNommu,    // mmu=off machines: uClinux process memory
  kPersist,  // persistent RAM (boot backing=FILE)
};

class Scenario;
enum class LineStatus;

// What a handler gets: the line split into words (a[0] is the command), the line itself
// (echo, let, expect and repeat read it raw) and "FILE:LINE" for messages.
struct CommandCall {
  const std::vector<std::string>& a;
  const std::string& line;
  const std::string& where;
};
using CommandHandler = LineStatus (Scenario::*)(const CommandCall& c);

// What a family's commands need, besides a booted machine, before their handler runs. The
// interpreter's dispatch sees to it (Scenario::enter_family) and stops with the family's error
// when it cannot, so a handler starts at its work.
enum class FamilyNeeds : std::uint8_t {
  kNothing,
  kMmuModel,    // the MMU model there, its kernel page tables synced (Scenario::mmu_enter)
  kNommuState,  // the NOMMU process model started (Scenario::nommu_enter)
};

// Whether a command needs a booted machine: the interpreter says "boot first" for one that
// does before calling its handler.
enum class CommandWhen : std::uint8_t { kBooted, kAnyTime };

struct CommandRow {
  const char* name;
  const char* usage;    // without "usage: "
  const char* summary;  // one line
  CommandFamily family;
  CommandHandler handler;
  CommandWhen when = CommandWhen::kBooted;
};

// The tables, one per family, each defined in its family's file. A friend of Scenario, so
// that the rows can name its (private) handlers.
struct CommandTables {
  static std::span<const CommandRow> script();   // scenario.cpp
  static std::span<const CommandRow> fault();    // fault_commands.cpp
  static std::span<const CommandRow> common();   // common_commands.cpp
  static std::span<const CommandRow> mmu();      // mmu_commands.cpp
  static std::span<const CommandRow> nommu();    // nommu_commands.cpp
  static std::span<const CommandRow> persist();  // persist_commands.cpp
};

// One family's rows.
std::span<const CommandRow> family_commands(CommandFamily f);

// Every row, grouped by family in the order of CommandFamily.
std::span<const CommandRow> command_table();

// "script", "fault", "common", "mmu", "nommu", "persist"; and a heading for help.
const char* command_family_name(CommandFamily f);
const char* command_family_title(CommandFamily f);

// What the family's commands need before their handler runs.
FamilyNeeds family_needs(CommandFamily f);

// Whether a machine of this kind runs the family's commands.
bool family_applies(CommandFamily f, bool mmu);

// The row a machine of this kind runs for name; null when it has none.
const CommandRow* find_command(std::string_view name, bool mmu);

// The row for name among those that run without a machine (CommandWhen::kAnyTime); null when
// it is not one.
const CommandRow* find_anytime_command(std::string_view name);

// "usage: " + the row's usage: the row named `name` (of `family` when given: spawn, malloc,
// free and exit have an MMU and a NOMMU row).
std::string command_usage(std::string_view name, std::optional<CommandFamily> family = std::nullopt);

// The error for a command this machine does not run: "unknown command 'NAME'" (and, on a
// mmu=off machine, " (on a mmu=off machine)"); a command of the other kind of machine says
// which kind runs it.
std::string unknown_command_error(const std::string& name, bool mmu);

}  // namespace kmm::scenario

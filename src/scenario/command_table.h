// kmm/scenario/command_table.h — the one table of scenario commands: name, usage, summary, family.
//
// The interpreter's dispatchers (scenario.cpp, mmu_commands.cpp, nommu_commands.cpp,
// persist_commands.cpp, fault_commands.cpp) take their "usage: ..." errors from these rows,
// the "unknown command" error is made here, and `kmm help scenario` and the man page list
// the same rows, grouped by family. A command whose arguments differ by machine kind (spawn,
// malloc, free, exit: the MMU and NOMMU process models) has one row per kind.
//
// Depends on: the C++ standard library only.
// Invariants: on either kind of machine (mmu=on, mmu=off) the rows it sees have unique
// names, and each is a command the interpreter runs (tests/scenario/test_command_table.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace kmm::sim {

enum class CommandFamily : std::uint8_t {
  kScript,   // values and checks: no machine needed
  kFault,    // fault injection: process-wide, no machine needed
  kCommon,   // any booted machine
  kMmu,      // mmu=on machines: address spaces, page tables, the TLB
  kNommu,    // mmu=off machines: uClinux process memory
  kPersist,  // persistent RAM (boot backing=FILE)
};

struct CommandRow {
  const char* name;
  const char* usage;    // without "usage: "
  const char* summary;  // one line
  CommandFamily family;
};

// Every row, grouped by family in the order of CommandFamily.
std::span<const CommandRow> command_table();

// "script", "fault", "common", "mmu", "nommu", "persist"; and a heading for help.
const char* command_family_name(CommandFamily f);
const char* command_family_title(CommandFamily f);

// Whether a machine of this kind runs the family's commands.
bool family_applies(CommandFamily f, bool mmu);

// The row a machine of this kind runs for name; null when it has none.
const CommandRow* find_command(std::string_view name, bool mmu);

// "usage: " + the row's usage: the row named `name` (of `family` when given: spawn, malloc,
// free and exit have an MMU and a NOMMU row).
std::string command_usage(std::string_view name, std::optional<CommandFamily> family = std::nullopt);

// The error for a command this machine does not run: "unknown command 'NAME'" (and, on a
// mmu=off machine, " (on a mmu=off machine)"); a command of the other kind of machine says
// which kind runs it.
std::string unknown_command_error(const std::string& name, bool mmu);

}  // namespace kmm::sim

// kmm/scenario/command_table.cpp — the lookups over the families' tables (command_table.h)
// that the interpreter and `kmm help scenario` use. The rows themselves live beside their
// handlers, one table per family.
// Depends on: scenario/command_table.h only.
// Invariant: command_table() is the families' rows in the order of CommandFamily.
#include "scenario/command_table.h"

#include <vector>

namespace kmm::scenario {
namespace {

using F = CommandFamily;

constexpr F kFamilies[] = {F::kScript, F::kFault, F::kCommon, F::kMmu, F::kNommu, F::kPersist};

}  // namespace

std::span<const CommandRow> family_commands(CommandFamily f) {
  switch (f) {
    case F::kScript:
      return CommandTables::script();
    case F::kFault:
      return CommandTables::fault();
    case F::kCommon:
      return CommandTables::common();
    case F::kMmu:
      return CommandTables::mmu();
    case F::kNommu:
      return CommandTables::nommu();
    case F::kPersist:
      return CommandTables::persist();
  }
  return {};
}

std::span<const CommandRow> command_table() {
  static const std::vector<CommandRow> all = [] {
    std::vector<CommandRow> rows;
    for (F f : kFamilies)
      for (const CommandRow& r : family_commands(f)) rows.push_back(r);
    return rows;
  }();
  return all;
}

const char* command_family_name(CommandFamily f) {
  switch (f) {
    case F::kScript:
      return "script";
    case F::kFault:
      return "fault";
    case F::kCommon:
      return "common";
    case F::kMmu:
      return "mmu";
    case F::kNommu:
      return "nommu";
    case F::kPersist:
      return "persist";
  }
  return "?";
}

const char* command_family_title(CommandFamily f) {
  switch (f) {
    case F::kScript:
      return "Values and checks (no machine needed)";
    case F::kFault:
      return "Fault injection (no machine needed)";
    case F::kCommon:
      return "Any booted machine";
    case F::kMmu:
      return "MMU machines (mmu=on): address spaces, page tables, the TLB";
    case F::kNommu:
      return "NOMMU machines (mmu=off): uClinux process memory";
    case F::kPersist:
      return "Persistent RAM (boot backing=FILE)";
  }
  return "?";
}

FamilyNeeds family_needs(CommandFamily f) {
  if (f == F::kMmu) return FamilyNeeds::kMmuModel;
  if (f == F::kNommu) return FamilyNeeds::kNommuState;
  return FamilyNeeds::kNothing;
}

bool family_applies(CommandFamily f, bool mmu) {
  if (f == F::kMmu) return mmu;
  if (f == F::kNommu) return !mmu;
  return true;
}

const CommandRow* find_command(std::string_view name, bool mmu) {
  for (const CommandRow& r : command_table())
    if (name == r.name && family_applies(r.family, mmu)) return &r;
  return nullptr;
}

const CommandRow* find_anytime_command(std::string_view name) {
  for (const CommandRow& r : command_table())
    if (name == r.name && r.when == CommandWhen::kAnyTime) return &r;
  return nullptr;
}

std::string command_usage(std::string_view name, std::optional<CommandFamily> family) {
  for (const CommandRow& r : command_table())
    if (name == r.name && (!family || *family == r.family)) return std::string("usage: ") + r.usage;
  return "usage: " + std::string(name);  // not reached: every caller names a row
}

std::string unknown_command_error(const std::string& name, bool mmu) {
  std::string e = "unknown command '" + name + "'";
  if (find_command(name, !mmu) != nullptr)
    return e + (mmu ? " (" + name + " is a command of mmu=off machines)"
                    : " (on a mmu=off machine; " + name + " needs mmu=on)");
  return e + (mmu ? "" : " (on a mmu=off machine)");
}

}  // namespace kmm::scenario

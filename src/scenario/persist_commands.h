// kmm/scenario/persist_commands.h — scenario glue for persistent RAM (docs/PERSISTENCE.md):
// `boot ... backing=FILE [boot_grace=DURATION]`, a `reboot` that keeps a backed machine's RAM,
// `boot-complete`, `flush`, `root set NAME LABEL` / `root get NAME as LABEL`, and the
// values persist.boots, persist.repaired, persist.dormant, persist.clean, root.NAME (1 if set).
// Depends on: kernel/, scenario/scenario.h (Block), the C++ standard library.
// Invariant: a path given to persist_intern_path lives as long as the process.
#pragma once

#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "scenario/scenario.h"

namespace kmm::scenario {

// A stable C string for BootConfig::backing (lives as long as the process).
const char* persist_intern_path(const std::string& path);
// `boot ... backing=FILE format=yes`: removes FILE first if it is a kmm heap (or empty); refuses
// (false, *error) for a file that is not one — kmm never touches what it cannot vouch for.
bool persist_discard(const char* path, std::string* error);
// After a boot/reboot of a backed machine: what attach found (one or two lines).
void persist_boot_banner(Kernel& k, std::ostream& out);
// The commands (boot-complete, flush, root) are Scenario handlers, in persist_commands.cpp's table.
// `kmm fsck FILE`: the report on out; returns the exit status (0 clean, 1 inconsistent, 2 unusable).
int run_fsck(const std::string& path, std::ostream& out);
// Values under persist.* and root.*; nullopt with *error set when unknown.
std::optional<std::int64_t> persist_value(Kernel& k, const std::string& head, const std::string& rest,
                                          std::string* error);

}  // namespace kmm::scenario

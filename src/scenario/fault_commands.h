// kmm/scenario/fault_commands.h — fault injection (base/fault_inject.h) for scenarios and replay.
//
// Scenario commands (docs/SCENARIOS.md):
//   fail slab|page|platform every=N|probability=P% [times=N] [space=SIZE] [seed=S] [verbose=0|1]
//   fail off [slab|page|platform]      one point, or all of them
//   fail                               the three points' attributes and counters
// and values fail.POINT.calls, fail.POINT.failures, fail.injected (all points), failed.allocs
// (allocation calls of the machine's API that returned null, genuine or injected).
// `cat /sys/kernel/debug/failslab` (fail_page_alloc, fail_platform) is the proc/ view.
//
// Replay (`kmm replay --fail-slab N|P% --fail-page ... --fail-platform ... --fail-seed S
// --fail-times N`) parses its options with parse_fault_rate below.
//
// Depends on: base/fault_inject.h, the C++ standard library.
// Invariants: a rate parses to exactly one of every=N or probability=P%; nothing is armed by
// parsing alone.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "base/fault_inject.h"

namespace kmm::scenario {

// "100" (every 100th call) or "2.5%" (a random 2.5 %) into cfg; false with *error naming
// what is wrong.
bool parse_fault_rate(const std::string& text, FaultConfig* cfg, std::string* error);

// The `fail` command: nullopt when `a` is not one; false with *error set on a usage error.
std::optional<bool> fault_command(const std::vector<std::string>& a, std::ostream& out, std::string* error);

// fail.* values; nullopt with *error set when unknown (rest is what follows "fail.").
std::optional<std::int64_t> fault_value(const std::string& rest, std::string* error);

// Sum of failures injected by every point since each was last configured.
std::uint64_t fault_injected_total();

// Switches every point off for its lifetime and back on (counters kept) after: boot and
// reboot of a modelled machine are not what a script means to fail.
class FaultPause {
 public:
  FaultPause();
  ~FaultPause();
  FaultPause(const FaultPause&) = delete;
  FaultPause& operator=(const FaultPause&) = delete;

 private:
  bool was_[kNrFaultPoints];
};

}  // namespace kmm::scenario

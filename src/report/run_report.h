// kmm/report/run_report.h — `kmm run --report FILE.html` and `kmm replay --report FILE.html`:
// one self-contained HTML page (inline SVG and CSS, a few lines of inline script that only
// check the page; nothing fetched) of what a scenario run or a replay did.
//
// A scenario run is sampled after every line (RunRecorder is the Scenario's observer): the
// machine clock, MemFree and Slab from /proc/meminfo's own fields, each module's bytes (the
// owner walk behind /proc/modules and --stats), the buddy free lists by order, the collector's
// passes and the failed allocations. The page draws, per booted machine, MemFree / Slab /
// module bytes over the run with a mark at each collector pass, the free lists by order as a
// heat map, and at each failed allocation the largest free block and the physical memory map
// of that moment (the seed's X/- picture). A replay's page shows each policy's footprint and
// utilisation side by side (the replay's own table and its timeline charts).
//
// Depends on: kernel/, proc/, scenario/scenario.h, replay/replay.h, fmt, the C++ standard library.
// Invariants: every number on the page was read from the machine when its line ran; the
// page stands alone (no URL in it but the SVG namespace).
#pragma once

#include <array>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "scenario/scenario.h"

namespace kmm::scenario {

struct Trace;
struct ReplayConfig;
struct ReplayResult;

class RunRecorder final : public LineObserver {
 public:
  struct Sample {
    std::uint64_t t_ns = 0;
    std::string where, line;
    std::uint64_t memfree_kb = 0, slab_kb = 0;
    std::vector<std::pair<std::string, std::uint64_t>> module_bytes;  // live and gone modules
    std::array<std::uint64_t, kNrOrders> free_blocks{};
    std::uint64_t passes = 0, failures = 0;
  };
  struct Failure {
    std::uint64_t t_ns = 0;
    std::string where, line;
    std::uint64_t largest_free_pages = 0, free_kb = 0;
    std::string map;  // one character a cell: X used, - free
    std::uint64_t cell_bytes = 0;
  };
  struct Machine {
    std::string boot_where, boot_line;
    std::vector<Sample> samples;
    std::vector<Failure> failures;
  };

  void after_line(Kernel* k, const std::string& where, const std::string& line, LineStatus st) override;
  const std::vector<Machine>& machines() const { return machines_; }
  // The page; `title` names the scripts.
  void write_html(std::ostream& out, const std::string& title) const;

 private:
  std::vector<Machine> machines_;
  const Kernel* last_kernel_ = nullptr;
};

// The replay's page: its table and charts, for each policy side by side.
void write_replay_report(std::ostream& out, const Trace& t, const ReplayConfig& cfg,
                         const std::vector<ReplayResult>& results);

}  // namespace kmm::scenario

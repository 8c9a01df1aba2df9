// kmm/tools/kmm/demo.h — `kmm demo`: the paper's experiment, stock and protected side by side.
//
// Baek, Park and Choi (2004) loaded a test module m_test that kmallocs at insmod and does not
// kfree at rmmod, on a 192 MB machine (MemTotal 191676 kB), and read /proc/meminfo before
// insmod, after insmod, after rmmod and after the collector's delay. On the stock kernel
// MemFree stays down after rmmod; on theirs it comes back. This runs the same steps on two
// machines booted alike — protector=off and protector=reclaim — and prints one table.
// Depends on: kernel/, proc/, fmt.
// Invariant: deterministic: the same table on every run (the modelled clock, not the host's).
#pragma once

#include <iosfwd>

namespace kmm::scenario {

// Returns 0 when the protected machine's MemFree came back exactly and the stock one's did
// not (the experiment's claim), 1 otherwise.
int run_paper_demo(std::ostream& out);

}  // namespace kmm::scenario

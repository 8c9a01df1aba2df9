// kmm/sim/nommu_commands.cpp — scenario commands of mmu=off machines: uClinux process
// memory (spawn, exit, malloc, free, realloc) and its malloc strategies. (Filled in by the
// NOMMU model work.)
#include "sim/scenario.h"

namespace kmm::sim {

struct NommuState {};
void ModelDeleter::operator()(NommuState* s) const { delete s; }

std::optional<LineStatus> Scenario::dispatch_nommu(const Args&, const std::string&, const std::string&) { return std::nullopt; }

std::optional<std::int64_t> Scenario::value_nommu(const std::string&, std::string*) { return std::nullopt; }

}  // namespace kmm::sim

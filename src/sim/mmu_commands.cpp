// kmm/sim/mmu_commands.cpp — scenario commands of MMU machines: the kernel address space,
// user address spaces, `translate`, demand paging. (Filled in by the MMU model work.)
#include "sim/scenario.h"

namespace kmm::sim {

struct MmuState {};
void ModelDeleter::operator()(MmuState* s) const { delete s; }

void Scenario::reset_models() {
  mmu_.reset();
  nommu_.reset();
  if (kernel_ == nullptr) return;
  if (kernel_->config().mmu) mmu_.reset(new MmuState());
}

std::optional<LineStatus> Scenario::dispatch_mmu(const Args&, const std::string&, const std::string&) { return std::nullopt; }

std::optional<std::int64_t> Scenario::value_mmu(const std::string&, std::string*) { return std::nullopt; }

}  // namespace kmm::sim

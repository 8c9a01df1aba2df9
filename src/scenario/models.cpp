// kmm/scenario/models.cpp — tearing down the process models before their machine goes.
// Depends on: scenario/scenario.h. Invariant: called before Kernel::shutdown, never after.
#include "scenario/scenario.h"

namespace kmm::scenario {

void Scenario::drop_models() {
  ++models_gen_;
  mmu_.reset();
  nommu_.reset();
}

}  // namespace kmm::scenario

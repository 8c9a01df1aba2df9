// kmm/scenario/models.cpp — tearing down the process models before their machine goes.
#include "scenario/scenario.h"

namespace kmm::sim {

void Scenario::drop_models() {
  mmu_.reset();
  nommu_.reset();
}

}  // namespace kmm::sim

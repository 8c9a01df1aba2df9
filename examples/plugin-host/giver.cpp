// examples/plugin-host/giver.cpp — a well-behaved plug-in that hands memory to its host: the
// report it builds is transferred to the host (kmm_transfer(p, NULL)) before it returns it,
// so unloading the plug-in does not make the report a leak. Its scratch buffer it frees.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kmm/kmm.h"

extern "C" char* plugin_report() {
  char* scratch = static_cast<char*>(std::malloc(4096));
  char* report = static_cast<char*>(std::malloc(256));
  if (scratch == nullptr || report == nullptr) return nullptr;
  std::snprintf(scratch, 4096, "report from giver: %d items", 42);
  std::strcpy(report, scratch);
  std::free(scratch);
  kmm_transfer(report, nullptr);  // the host owns it from now on
  return report;
}

// kmm/fuzz/fuzz_scenario.cpp — libFuzzer harness for the scenario parser and interpreter
// (issue 10b). Any input is a script; it must end in exit status 0, 1 or 2, never a crash,
// a hang or a sanitizer report. Machines are capped at 64 MiB of RAM so a fuzzed `boot`
// cannot ask the host for gigabytes of descriptors.
#include <cstdint>
#include <sstream>
#include <string>

#include "scenario/scenario.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::istringstream in(text);
  std::ostringstream out, err;
  kmm::scenario::Scenario sc(out, err);
  sc.set_max_ram(64u << 20);
  int rc = sc.run_script(in, "fuzz.kms");
  if (rc < 0 || rc > 2) __builtin_trap();
  return 0;
}

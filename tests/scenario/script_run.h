// tests/scenario/script_run.h — runs a scenario script given as text and keeps what it printed:
// the helper every scenario test file used to write for itself.
// Depends on: scenario/scenario.h. Each call runs on a fresh Scenario (a fresh machine).
#pragma once

#include <sstream>
#include <string>

#include "scenario/scenario.h"

namespace kmm::scenario::test {

struct ScriptRun {
  int code;  // run_script's: 0 every expect held, 1 one failed, 2 the script is wrong
  std::string out, err;
};

inline ScriptRun run(const std::string& script) {
  std::ostringstream out, err;
  int code;
  {
    Scenario s(out, err);
    std::istringstream in(script);
    code = s.run_script(in, "t.kms");
  }
  return ScriptRun{code, out.str(), err.str()};
}

inline bool has(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

}  // namespace kmm::scenario::test

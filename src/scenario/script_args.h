// kmm/scenario/script_args.h — argument helpers shared by every family of scenario commands
// (scenario.cpp, mmu_commands.cpp, nommu_commands.cpp): key=value options and block labels.
// Depends on: the C++ standard library. Invariant: pure functions of their arguments.
#pragma once

#include <cctype>
#include <map>
#include <string>
#include <vector>

namespace kmm::scenario {

// key=value options of a command from a[from] on; false (with the bad token) when one is not
// key=value.
inline bool parse_options(const std::vector<std::string>& a, std::size_t from, std::map<std::string, std::string>* out,
                          std::string* bad) {
  for (std::size_t i = from; i < a.size(); ++i) {
    std::size_t eq = a[i].find('=');
    if (eq == std::string::npos || eq == 0) {
      *bad = a[i];
      return false;
    }
    (*out)[a[i].substr(0, eq)] = a[i].substr(eq + 1);
  }
  return true;
}

// A block label: letters, digits, '_' and '-'.
inline bool label_ok(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  return true;
}

}  // namespace kmm::scenario

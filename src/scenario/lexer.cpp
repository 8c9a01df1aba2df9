// kmm/scenario/lexer.cpp — words and comments of a scenario line (lexer.h).
// Depends on: the C++ standard library. Invariant: no state; the same line, the same words.
#include "scenario/lexer.h"

#include <cctype>
#include <sstream>

namespace kmm::scenario {

std::vector<std::string> split_words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

std::string strip_comment(const std::string& line) {
  std::size_t h = line.find('#');
  std::string s = h == std::string::npos ? line : line.substr(0, h);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  return s.substr(b);
}

}  // namespace kmm::scenario

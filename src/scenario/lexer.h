// kmm/scenario/lexer.h — the scenario language's lexical level: a line is words separated by
// blanks, and '#' starts a comment that runs to the end of the line (docs/SCENARIOS.md).
// Expressions (let, expect, address arguments) have their own tokens: scenario/expr.h.
// Depends on: the C++ standard library.
// Invariants: pure functions; split_words of a stripped line is empty only for a blank line.
#pragma once

#include <string>
#include <vector>

namespace kmm::scenario {

// The line without its comment and without leading and trailing blanks.
std::string strip_comment(const std::string& line);

// The words of a line (a[0] is the command).
std::vector<std::string> split_words(const std::string& line);

}  // namespace kmm::scenario

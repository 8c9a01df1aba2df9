// kmm/scenario/expr.h — the scenario language's expressions (CONTRACT, see DESIGN.md).
//
//   expr  := and ('||' and)*          and := cmp ('&&' cmp)*
//   cmp   := sum (('=='|'!='|'<'|'<='|'>'|'>=') sum)?
//   sum   := term (('+'|'-') term)*   term := unary (('*'|'/'|'%') unary)*
//   unary := '-' unary | '!' unary | primary
//   primary := NUMBER[K|M|G] | '$'name | value.path | '(' expr ')'
// Integers are 64-bit signed; comparisons give 1 or 0. A value path is letters, digits and
// '_' '.' '-' '(' ')' ('-' only between letters/digits, as in slabinfo.kmalloc-32.num_objs;
// parentheses only as in meminfo.Active(anon)); its meaning is the caller's (Resolver).
// Errors (bad syntax, unknown value, division by zero) are returned with a message.
//
// Depends on: the C++ standard library (scenario/ is above the core), base/units.h.
// Invariants: evaluation has no side effects but the Resolver's; overflow of + - * and
// division by zero are errors, not undefined behaviour.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace kmm::scenario {

// Looks up a value path; returns nullopt and sets *error when it has no such value.
using Resolver = std::function<std::optional<std::int64_t>(const std::string& path, std::string* error)>;

struct ExprResult {
  bool ok = false;
  std::int64_t value = 0;
  std::string error;
  std::string trace;  // "lhs OP rhs" values of the top-level comparisons, for failed expects
};

ExprResult evaluate(const std::string& text, const std::map<std::string, std::int64_t>& vars, const Resolver& resolve);

// "123", "64K", "192M", "1G", "0x1000" (base/units.h's parse_size); false on junk or a value
// over INT64_MAX (an expression's integers are signed).
bool parse_number(const std::string& s, std::int64_t* out);
// "5s", "250ms", "2m", "2min", "100us", "10ns"; a bare number is seconds (base/units.h's
// parse_duration_ns). False on junk or overflow.
bool parse_duration_ns(const std::string& s, std::uint64_t* out);

}  // namespace kmm::scenario

// kmm/scenario/expr.cpp — a recursive-descent evaluator for scenario expressions (expr.h).
// Depends on: base/units.h (numbers with K/M/G, durations), the C++ standard library.
// Invariants: never throws on any input; an error leaves a message and no value; values are
// read only through the caller's Resolver.
#include "scenario/expr.h"

#include <cctype>

#include "base/units.h"

namespace kmm::scenario {

// Both through base/units.h, the one parser of sizes and durations (KMM_OPTIONS and kmm exec
// use it too).
bool parse_number(const std::string& s, std::int64_t* out) {
  std::uint64_t v = 0;
  if (!parse_size(s.data(), s.size(), &v) || v > static_cast<std::uint64_t>(INT64_MAX)) return false;
  *out = static_cast<std::int64_t>(v);
  return true;
}

bool parse_duration_ns(const std::string& s, std::uint64_t* out) {
  return kmm::parse_duration_ns(s.data(), s.size(), out);
}

namespace {

class Parser {
 public:
  Parser(const std::string& t, const std::map<std::string, std::int64_t>& vars, const Resolver& r)
      : s_(t), vars_(vars), resolve_(r) {}

  ExprResult run() {
    ExprResult res;
    std::int64_t v = 0;
    if (!expr(&v)) {
      res.error = error_;
      return res;
    }
    skip();
    if (pos_ != s_.size()) {
      res.error = "unexpected '" + s_.substr(pos_) + "' in expression";
      return res;
    }
    res.ok = true;
    res.value = v;
    res.trace = trace_;
    return res;
  }

 private:
  void skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool eat(const char* tok) {
    skip();
    std::size_t n = std::char_traits<char>::length(tok);
    if (s_.compare(pos_, n, tok) == 0) {
      // Do not split "<=" into "<" "=", or "==" into "=".
      if (n == 1 && (tok[0] == '<' || tok[0] == '>' || tok[0] == '!' || tok[0] == '=') && pos_ + 1 < s_.size() &&
          s_[pos_ + 1] == '=')
        return false;
      if (n == 1 && (tok[0] == '&' || tok[0] == '|')) return false;
      pos_ += n;
      return true;
    }
    return false;
  }
  bool fail(std::string msg) {
    if (error_.empty()) error_ = std::move(msg);
    return false;
  }

  bool expr(std::int64_t* v) {
    if (!and_expr(v)) return false;
    while (eat("||")) {
      std::int64_t r;
      if (!and_expr(&r)) return false;
      *v = (*v != 0 || r != 0) ? 1 : 0;
    }
    return true;
  }
  bool and_expr(std::int64_t* v) {
    if (!cmp(v)) return false;
    while (eat("&&")) {
      std::int64_t r;
      if (!cmp(&r)) return false;
      *v = (*v != 0 && r != 0) ? 1 : 0;
    }
    return true;
  }
  bool cmp(std::int64_t* v) {
    if (!sum(v)) return false;
    static const char* const kOps[] = {"==", "!=", "<=", ">=", "<", ">"};
    for (const char* op : kOps) {
      if (eat(op)) {
        std::int64_t r;
        if (!sum(&r)) return false;
        std::string o = op;
        if (!trace_.empty()) trace_ += ", ";
        trace_ += std::to_string(*v) + " " + o + " " + std::to_string(r);
        bool b = o == "=="   ? *v == r
                 : o == "!=" ? *v != r
                 : o == "<=" ? *v <= r
                 : o == ">=" ? *v >= r
                 : o == "<"  ? *v < r
                             : *v > r;
        *v = b ? 1 : 0;
        return true;
      }
    }
    return true;
  }
  bool sum(std::int64_t* v) {
    if (!term(v)) return false;
    for (;;) {
      bool plus = eat("+");
      if (!plus && !eat("-")) return true;
      std::int64_t r;
      if (!term(&r)) return false;
      if (plus ? __builtin_add_overflow(*v, r, v) : __builtin_sub_overflow(*v, r, v)) return fail("integer overflow");
    }
  }
  bool term(std::int64_t* v) {
    if (!unary(v)) return false;
    for (;;) {
      char op = 0;
      if (eat("*"))
        op = '*';
      else if (eat("/"))
        op = '/';
      else if (eat("%"))
        op = '%';
      else
        return true;
      std::int64_t r;
      if (!unary(&r)) return false;
      if (op == '*') {
        if (__builtin_mul_overflow(*v, r, v)) return fail("integer overflow");
      } else {
        if (r == 0) return fail("division by zero");
        // INT64_MIN / -1 has no value (and traps, as INT64_MIN % -1 does, on x86); x % -1 is 0.
        if (r == -1 && op == '/') {
          if (__builtin_sub_overflow(0, *v, v)) return fail("integer overflow");
        } else {
          *v = r == -1 ? 0 : op == '/' ? *v / r : *v % r;
        }
      }
    }
  }
  // Every level of nesting — a parenthesis, a '-' or a '!' — passes through here: the depth is
  // bounded, so a hostile line cannot run the evaluator off its stack.
  bool unary(std::int64_t* v) {
    if (depth_ >= kMaxDepth)
      return fail("expression nested too deeply (more than " + std::to_string(kMaxDepth) + " levels)");
    ++depth_;
    bool ok = unary_operand(v);
    --depth_;
    return ok;
  }
  bool unary_operand(std::int64_t* v) {
    if (eat("-")) {
      if (!unary(v)) return false;
      if (__builtin_sub_overflow(0, *v, v)) return fail("integer overflow");
      return true;
    }
    if (eat("!")) {
      if (!unary(v)) return false;
      *v = *v == 0 ? 1 : 0;
      return true;
    }
    return primary(v);
  }
  bool primary(std::int64_t* v) {
    skip();
    if (pos_ >= s_.size()) return fail("expression ends too early");
    char c = s_[pos_];
    if (c == '(') {
      ++pos_;
      if (!expr(v)) return false;
      if (!eat(")")) return fail("missing ')'");
      return true;
    }
    if (c == '$') {
      std::size_t start = ++pos_;
      while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_')) ++pos_;
      std::string name = s_.substr(start, pos_ - start);
      if (name.empty()) return fail("'$' without a name");
      auto it = vars_.find(name);
      if (it == vars_.end()) return fail("no value named $" + name + " (set it with let)");
      *v = it->second;
      return true;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      std::size_t start = pos_;
      while (pos_ < s_.size() && std::isalnum(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      std::string tok = s_.substr(start, pos_ - start);
      if (!parse_number(tok, v)) return fail("bad number '" + tok + "'");
      return true;
    }
    if (std::isalpha(static_cast<unsigned char>(c))) {
      std::size_t start = pos_;
      int depth = 0;
      while (pos_ < s_.size()) {
        char d = s_[pos_];
        if (std::isalnum(static_cast<unsigned char>(d)) || d == '_' || d == '.') {
          ++pos_;
        } else if (d == '-' && pos_ + 1 < s_.size() && std::isalnum(static_cast<unsigned char>(s_[pos_ + 1])) &&
                   std::isalnum(static_cast<unsigned char>(s_[pos_ - 1]))) {
          ++pos_;
        } else if (d == '(' && std::isalnum(static_cast<unsigned char>(s_[pos_ - 1])) && s_.find('.', start) < pos_) {
          ++depth;
          ++pos_;
        } else if (d == ')' && depth > 0) {
          --depth;
          ++pos_;
        } else {
          break;
        }
      }
      std::string path = s_.substr(start, pos_ - start);
      std::string err;
      auto r = resolve_(path, &err);
      if (!r) return fail(err.empty() ? "unknown value '" + path + "'" : err);
      *v = *r;
      return true;
    }
    return fail(std::string("unexpected '") + c + "' in expression");
  }

  const std::string& s_;
  const std::map<std::string, std::int64_t>& vars_;
  const Resolver& resolve_;
  std::size_t pos_ = 0;
  static constexpr int kMaxDepth = 200;
  int depth_ = 0;
  std::string error_;
  std::string trace_;
};

}  // namespace

ExprResult evaluate(const std::string& text, const std::map<std::string, std::int64_t>& vars, const Resolver& resolve) {
  return Parser(text, vars, resolve).run();
}

}  // namespace kmm::scenario

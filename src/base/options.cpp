// kmm/base/options.cpp — KMM_OPTIONS parsing without allocation.
#include "base/options.h"

#include "base/report.h"
#include "base/text.h"

namespace kmm {

bool OptionView::key_is(const char* k) const {
  std::size_t n = str_len(k);
  if (n != key_len) return false;
  for (std::size_t i = 0; i < n; ++i)
    if (key[i] != k[i]) return false;
  return true;
}

bool OptionView::value_is(const char* v) const {
  std::size_t n = str_len(v);
  if (n != value_len) return false;
  for (std::size_t i = 0; i < n; ++i)
    if (value[i] != v[i]) return false;
  return true;
}

bool OptionView::value_size(std::uint64_t* out) const {
  return parse_size(value, value_len, out);
}

bool OptionView::value_duration_ns(std::uint64_t* out) const {
  return parse_duration_ns(value, value_len, out);
}

unsigned parse_options(const char* text, OptionVisitor visit, void* arg) {
  unsigned bad = 0;
  if (text == nullptr) return 0;
  const char* p = text;
  while (*p) {
    const char* item = p;
    while (*p && *p != ':') ++p;
    const char* end = p;
    if (*p == ':') ++p;
    if (end == item) continue;
    const char* eq = item;
    while (eq < end && *eq != '=') ++eq;
    OptionView opt{item, static_cast<std::size_t>(eq - item), eq < end ? eq + 1 : end,
                   eq < end ? static_cast<std::size_t>(end - eq - 1) : 0};
    if (eq == end || !visit(opt, arg)) {
      ++bad;
      StackText<256> line;
      line.str("kmm: warning: ").str(eq == end ? "malformed option (want key=value): " : "unknown option: ");
      // Cut to what the line holds, and ended: the program's next output starts a line of its own.
      const auto len = static_cast<std::size_t>(end - item);
      line.str(item, len > 160 ? 160 : len).str(len > 160 ? "..." : "").nl();
      write_report_text(line.data(), line.size());
    }
  }
  return bad;
}

}  // namespace kmm

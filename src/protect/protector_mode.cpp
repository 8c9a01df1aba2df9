// kmm/protect/protector_mode.cpp — the mode a word names (protector_mode.h).
// Depends on: protector_mode.h, base/text.h (str_len). Allocates nothing. Invariant: only a
// whole name matches (same length, same bytes); anything else leaves *out as it was.
#include "protect/protector_mode.h"

#include "base/text.h"

namespace kmm {

bool parse_protector_mode(const char* s, ProtectorMode* out) {
  return parse_protector_mode(s, str_len(s), out);
}

bool parse_protector_mode(const char* s, std::size_t n, ProtectorMode* out) {
  for (std::size_t i = 0; i < kNrProtectorModes; ++i) {
    const char* name = kProtectorModeNames[i];
    if (str_len(name) != n) continue;
    std::size_t j = 0;
    while (j < n && name[j] == s[j]) ++j;
    if (j == n) {
      *out = static_cast<ProtectorMode>(i);
      return true;
    }
  }
  return false;
}

}  // namespace kmm

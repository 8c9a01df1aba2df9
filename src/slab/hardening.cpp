// kmm/slab/hardening.cpp — parsing and printing of the hardening options (hardening.h), and
// the pattern check every option's verification uses (first_not).
// Depends on: base/options.h (sizes), base/text.h. Allocates nothing.
#include "slab/hardening.h"

#include <cstring>

#include "base/options.h"
#include "base/text.h"

namespace kmm {
namespace {

bool same(const char* s, std::size_t n, const char* word) {
  std::size_t w = str_len(word);
  if (w != n) return false;
  for (std::size_t i = 0; i < n; ++i)
    if (s[i] != word[i]) return false;
  return true;
}

}  // namespace

bool set_hardening_option(HardeningConfig* h, const char* key, std::size_t key_len, const char* value,
                          std::size_t value_len, bool* bad_value) {
  bool* flag = same(key, key_len, "freelist_hardened") ? &h->freelist_hardened
               : same(key, key_len, "redzone")         ? &h->redzone
               : same(key, key_len, "poison")          ? &h->poison
               : same(key, key_len, "guard_pages")     ? &h->guard_pages
                                                       : nullptr;
  if (flag != nullptr) {
    if (!parse_switch(value, value_len, flag)) *bad_value = true;
    return !*bad_value;
  }
  if (same(key, key_len, "quarantine")) {
    std::uint64_t bytes = 0;
    if (!parse_size(value, value_len, &bytes) || bytes > kMaxQuarantineBytes) {
      *bad_value = true;
      return false;
    }
    h->quarantine_bytes = bytes;
    return true;
  }
  return false;
}

std::size_t describe_hardening(const HardeningConfig& h, char* out, std::size_t cap) {
  TextSink s(out, cap);
  auto word = [&](const char* w) {
    if (s.size() != 0) s.ch(' ');
    s.str(w);
  };
  if (h.freelist_hardened) word("freelist_hardened=on");
  if (h.redzone) word("redzone=on");
  if (h.poison) word("poison=on");
  if (h.guard_pages) word("guard_pages=on");
  if (h.quarantine_bytes != 0) {
    word("quarantine=");
    s.u(h.quarantine_bytes);
  }
  if (s.size() == 0) s.str("none");
  return s.size();
}

// First byte in [p, p + n) that is not `pattern`, or n. Eight bytes a step (poison checks
// read every byte of every object a debug cache hands out), then the odd tail.
std::size_t first_not(const char* p, std::size_t n, std::uint8_t pattern) {
  const std::uint64_t word = 0x0101010101010101ull * pattern;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, sizeof w);
    if (w != word) break;
  }
  for (; i < n; ++i)
    if (static_cast<std::uint8_t>(p[i]) != pattern) return i;
  return n;
}

}  // namespace kmm

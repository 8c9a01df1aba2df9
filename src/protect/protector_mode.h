// kmm/protect/protector_mode.h — the protector's modes and the collector's default delay,
// named once for every reader: the collector, the scenario `protector` command, the row the
// scenario `boot` line, KMM_OPTIONS and `kmm exec --protect`/`--gc-delay` share
// (kernel/boot_settings.h), and help.
//
// The words (off, report, reclaim, reclaim-unreachable; what each does: collector.h) live in
// kProtectorModeNames only; kProtectorModeSyntax ("off|report|...") and the scenario usage
// line are built from it at compile time. The gc_delay default is kDefaultGcDelayNs, typed as
// kDefaultGcDelayText where a table shows it (a test checks the two agree).
//
// Depends on: <cstddef>/<cstdint>; the .cpp on base/text.h (str_len). Constant data and three functions: no
// allocation, no constructor runs (it is read inside malloc's first call).
// Invariants: kProtectorModeNames[i] is the name of ProtectorMode(i), for every mode.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kmm {

enum class ProtectorMode : std::uint8_t { kOff, kReport, kReclaim, kReclaimUnreachable };

inline constexpr std::size_t kNrProtectorModes = 4;
inline constexpr const char* kProtectorModeNames[kNrProtectorModes] = {"off", "report", "reclaim",
                                                                       "reclaim-unreachable"};

// How long a leak of an unloaded module waits before the collector takes it (gc_delay=).
inline constexpr std::uint64_t kDefaultGcDelayNs = 5'000'000'000ull;
inline constexpr const char kDefaultGcDelayText[] = "5s";

// A constant string built from the names at compile time: prefix, then the names joined by '|'.
struct ProtectorModeText {
  char text[96];
};
constexpr ProtectorModeText protector_mode_text(const char* prefix) {
  ProtectorModeText t{};
  std::size_t k = 0;
  for (const char* p = prefix; *p != '\0'; ++p) t.text[k++] = *p;
  for (std::size_t i = 0; i < kNrProtectorModes; ++i) {
    if (i != 0) t.text[k++] = '|';
    for (const char* p = kProtectorModeNames[i]; *p != '\0'; ++p) t.text[k++] = *p;
  }
  t.text[k] = '\0';
  return t;
}
inline constexpr ProtectorModeText kProtectorModeSyntaxText = protector_mode_text("");
// "off|report|reclaim|reclaim-unreachable"
inline constexpr const char* kProtectorModeSyntax = kProtectorModeSyntaxText.text;

constexpr const char* protector_mode_name(ProtectorMode m) {
  auto i = static_cast<std::size_t>(m);
  return i < kNrProtectorModes ? kProtectorModeNames[i] : "?";
}
// The mode named s (NUL-terminated), or s[0, n); false (and *out untouched) for any other word.
bool parse_protector_mode(const char* s, ProtectorMode* out);
bool parse_protector_mode(const char* s, std::size_t n, ProtectorMode* out);

}  // namespace kmm

// kmm/shim/options.cpp — one KMM_OPTIONS item applied to Options (options.h), by its row in
// the table (options_table.h). Allocates nothing, throws nothing, no static constructors:
// it runs inside malloc's first call.
#include "shim/options.h"

#include <cstring>

#include "base/report.h"
#include "base/text.h"
#include "shim/options_table.h"

namespace kmm::shim {
namespace {

// fail_slab / fail_page / fail_platform = N | P% | off.
bool fault_rate_option(Options* opts, FaultPoint p, const OptionView& o) {
  auto i = static_cast<unsigned>(p);
  if (o.value_is("off")) {
    opts->fault_on[i] = false;
    return true;
  }
  FaultConfig& c = opts->fault[i];
  if (!fault_parse_rate(o.value, o.value_len, &c.interval, &c.probability_ppm)) return false;
  opts->fault_on[i] = true;
  return true;
}

// fail_seed / fail_times / fail_space / fail_verbose apply to all three points (':'
// separates options, so one key a knob).
bool fault_knob_option(Options* opts, OptionKey key, const OptionView& o) {
  std::int64_t v = 0;
  std::uint64_t size = 0;
  if (key == OptionKey::kFailSpace) {
    if (!o.value_size(&size)) return false;
  } else if (!fault_parse_int(o.value, o.value_len, &v) || v < (key == OptionKey::kFailTimes ? -1 : 0)) {
    return false;
  }
  for (auto& c : opts->fault) {
    if (key == OptionKey::kFailSpace)
      c.space = size;
    else if (key == OptionKey::kFailSeed)
      c.seed = static_cast<std::uint64_t>(v);
    else if (key == OptionKey::kFailTimes)
      c.times = v;
    else
      c.verbose = static_cast<unsigned>(v);
  }
  return true;
}

bool apply_row(Options* opts, const OptionRow& row, const OptionView& o) {
  switch (row.key) {
    case OptionKey::kProtect:
      return parse_protector_mode(o.value, o.value_len, &opts->protect);
    case OptionKey::kGcDelay:
      return o.value_duration_ns(&opts->gc_delay_ns);
    case OptionKey::kPurgeDelay: {
      if (o.value_is("off")) {
        opts->purge_delay_ns = 0;
        return true;
      }
      std::uint64_t ns = 0;
      if (!o.value_duration_ns(&ns) || ns == 0) return false;
      opts->purge_delay_ns = ns;
      return true;
    }
    case OptionKey::kStats:
      if (!parse_switch(o.value, o.value_len, &opts->stats)) {
        // stats=PATH; one too long for the buffer is refused (a bad value, reported), never
        // cut to a path the user did not name
        if (o.value_len >= sizeof opts->stats_path) return false;
        std::size_t n = o.value_len;
        std::memcpy(opts->stats_path, o.value, n);
        opts->stats_path[n] = '\0';
        opts->stats = n != 0;
      }
      return true;
    case OptionKey::kOnError:
      if (o.value_is("report"))
        opts->on_error_report = true;
      else if (o.value_is("abort"))
        opts->on_error_report = false;
      else
        return false;
      return true;
    case OptionKey::kThreadCache:
      return parse_switch(o.value, o.value_len, &opts->thread_cache);
    case OptionKey::kGcSnapshot:
      return parse_switch(o.value, o.value_len, &opts->gc_snapshot);
    case OptionKey::kLive:
      return parse_switch(o.value, o.value_len, &opts->live);
    case OptionKey::kRam: {
      // 0 (the default) or a reservation boot_with can use: with less than 64 MiB the heap
      // would not boot, and every allocation of the program would fail (review).
      std::uint64_t ram = 0;
      if (!o.value_size(&ram) || (ram != 0 && ram < kMinPreloadRam)) return false;
      opts->ram = ram;
      return true;
    }
    case OptionKey::kFreelistHardened:
    case OptionKey::kRedzone:
    case OptionKey::kPoison:
    case OptionKey::kQuarantine:
    case OptionKey::kGuardPages: {
      // The hardening options' one parser (slab/hardening.h), shared with scenario boot lines.
      bool bad_value = false;
      return set_hardening_option(&opts->hardening, row.name, str_len(row.name), o.value, o.value_len, &bad_value) &&
             !bad_value;
    }
    case OptionKey::kFailSlab:
      return fault_rate_option(opts, FaultPoint::kSlab, o);
    case OptionKey::kFailPage:
      return fault_rate_option(opts, FaultPoint::kPage, o);
    case OptionKey::kFailPlatform:
      return fault_rate_option(opts, FaultPoint::kPlatform, o);
    case OptionKey::kFailSeed:
    case OptionKey::kFailTimes:
    case OptionKey::kFailSpace:
    case OptionKey::kFailVerbose:
      return fault_knob_option(opts, row.key, o);
  }
  return false;
}

}  // namespace

OptionApply apply_option(Options* opts, const OptionView& o) {
  const OptionRow* row = find_option_row(o.key, o.key_len);
  if (row == nullptr) return OptionApply::kUnknownKey;
  return apply_row(opts, *row, o) ? OptionApply::kApplied : OptionApply::kBadValue;
}

bool visit_option(const OptionView& o, void* arg) {
  OptionApply r = apply_option(static_cast<Options*>(arg), o);
  if (r == OptionApply::kUnknownKey) return false;  // parse_options warns
  if (r == OptionApply::kBadValue) {
    // What the key takes, from its row, and where the rest is: a bare "bad value" left the
    // user guessing (quarantine's 1G cap was nowhere to be seen).
    StackText<320> line;
    const std::size_t value_len = o.value_len > 120 ? 120 : o.value_len;
    line.str("kmm: warning: bad value for option ").str(o.key, o.key_len > 40 ? 40 : o.key_len).str(": ");
    line.str(o.value, value_len).str(value_len < o.value_len ? "..." : "");
    if (o.key_is("ram")) {
      line.str(" (0, or 64M and more)");
    } else if (o.key_is("quarantine")) {
      line.str(" (a size up to 1G; kmm help options)");
    } else if (const OptionRow* row = find_option_row(o.key, o.key_len)) {
      line.str(" (want ").str(row->syntax).str("; kmm help options)");
    }
    line.nl();
    write_report_text(line.data(), line.size());
  }
  return true;
}

}  // namespace kmm::shim

// kmm/base/fault_inject.h — failslab-style fault injection (Linux's fault-injection framework).
//
// Three injection points, each a FaultAttr with Linux's attributes (Documentation/
// fault-injection/fault-injection.rst):
//   failslab         kmem_cache_alloc / kmalloc from a slab cache (slab/slab.cpp alloc_slow)
//   fail_page_alloc  the page allocators (page/buddy.cpp, page/range.cpp)
//   fail_platform    platform reserve/commit after boot (Kernel::grow, the shim's huge maps)
// Attributes:
//   interval     fail only every Nth call (1: every call is a candidate)
//   probability  parts per million of the candidates that fail (1'000'000: all of them);
//                drawn from a deterministic generator: splitmix64(seed, call number), so a
//                run repeats exactly for a given seed and call sequence, and threads need
//                no shared generator state
//   times        at most this many failures (-1: no limit)
//   space        bytes let through before the first failure (each call spends its size)
//   verbose      0: silent; 1: a "FAULT_INJECTION: forcing a failure." line per failure
// Linux fails a call when (interval == 1 or the call number is a multiple of it) and a draw
// is below probability; `every=N` here is interval N with probability 100 %.
// Counters: calls (seen while enabled) and failures (injected). All relaxed atomics: the
// points are hit from many threads (TSan clean), and an off point costs one relaxed load of
// `enabled` and a not-taken branch (fault_should_fail() is inline).
//
// Callers that cannot cope with a failure pass __GFP_NOFAIL (page/gfp.h) and are never
// failed, as Linux's should_failslab / should_fail_alloc_page skip __GFP_NOFAIL.
//
// Depends on: config.h, text.h, report.h. Never allocates; freestanding-safe (no libc calls
// beyond what base already uses).
#pragma once

#include <atomic>

#include "base/config.h"

namespace kmm {

class TextSink;

enum class FaultPoint : std::uint8_t { kSlab, kPage, kPlatform };
inline constexpr unsigned kNrFaultPoints = 3;

// What a point is set to (the knobs of /sys/kernel/debug/failslab).
struct FaultConfig {
  std::uint64_t interval = 1;         // 0 or 1: every call is a candidate
  std::uint32_t probability_ppm = 0;  // 0 .. 1'000'000
  std::int64_t times = -1;            // -1: unlimited
  std::uint64_t space = 0;            // bytes let through first
  std::uint64_t seed = 0;
  unsigned verbose = 1;
};

struct FaultAttr {
  const char* name;  // "failslab", "fail_page_alloc", "fail_platform"
  std::atomic<bool> enabled{false};
  std::atomic<std::uint64_t> interval{1};
  std::atomic<std::uint32_t> probability_ppm{0};
  std::atomic<std::int64_t> times{-1};
  std::atomic<std::int64_t> space{0};
  std::atomic<std::uint64_t> seed{0};
  std::atomic<unsigned> verbose{1};
  std::atomic<std::uint64_t> calls{0};     // calls seen while enabled
  std::atomic<std::uint64_t> failures{0};  // failures injected
};

extern FaultAttr g_fault_attrs[kNrFaultPoints];

inline FaultAttr& fault_attr(FaultPoint p) {
  return g_fault_attrs[static_cast<unsigned>(p)];
}
const char* fault_point_name(FaultPoint p);
// "slab" / "page" / "platform" (the scenario's and the options' short names) -> point.
bool fault_point_from_name(const char* s, std::size_t n, FaultPoint* out);

// The decision, out of line (only reached while the point is on).
bool fault_should_fail_slow(FaultPoint p, std::size_t size, const char* what);

// True when this call must fail. `size` spends `space`; `what` (a cache name, "order 3"...)
// goes into the verbose line. Costs one relaxed load while the point is off.
inline bool fault_should_fail(FaultPoint p, std::size_t size, const char* what) {
  if (__builtin_expect(!fault_attr(p).enabled.load(std::memory_order_relaxed), 1)) return false;
  return fault_should_fail_slow(p, size, what);
}

// Sets a point (counters are reset) and switches it on when the config can ever fail
// (probability > 0 and times != 0). Calls the change hook.
void fault_configure(FaultPoint p, const FaultConfig& cfg);
// Switches a point off (counters are kept, for a final report).
void fault_disable(FaultPoint p);
void fault_disable_all();
// Switches a point back on as last configured, counters and budget kept (after a pause).
void fault_resume(FaultPoint p);
// The config a point was last given (for views and for re-arming the same run).
FaultConfig fault_config(FaultPoint p);
// Zeroes calls and failures and restores the configured `times` and `space` budget.
void fault_reset_counters(FaultPoint p);
inline bool fault_enabled(FaultPoint p) {
  return fault_attr(p).enabled.load(std::memory_order_relaxed);
}
inline std::uint64_t fault_calls(FaultPoint p) {
  return fault_attr(p).calls.load(std::memory_order_relaxed);
}
inline std::uint64_t fault_failures(FaultPoint p) {
  return fault_attr(p).failures.load(std::memory_order_relaxed);
}

// Called after a point is switched on or off (slab/ uses it to route allocations off the
// per-thread fast path while failslab is on). One hook per point; null removes it.
using FaultChangeHook = void (*)(FaultPoint p, bool enabled);
void fault_set_change_hook(FaultPoint p, FaultChangeHook hook);

// Where verbose lines go: a kernel's log (Kernel::boot sets it), else write_report_text
// (stderr). `owner` identifies who set it so a shutting-down kernel removes only its own.
using FaultLogFn = void (*)(void* arg, const char* line, std::size_t len);
void fault_set_log(FaultLogFn fn, void* arg);
void fault_clear_log(void* arg);

// The debugfs view of one point, Linux's attribute names, one per line:
//   name failslab / enabled 1 / interval 100 / probability 0.0000% / times -1 / space 0 /
//   seed 0 / verbose 1 / calls 1234 / failures 12
void fault_print(FaultPoint p, TextSink& out);

// Parses a failure rate: "N" (every Nth call) or "P%" (P percent, up to 4 decimals, e.g.
// "0.5%" is 5 per mille). False when malformed. Used by KMM_OPTIONS, the scenario and replay.
bool fault_parse_rate(const char* s, std::size_t n, std::uint64_t* interval, std::uint32_t* ppm);
// Parses a signed decimal (times=-1). False when malformed.
bool fault_parse_int(const char* s, std::size_t n, std::int64_t* out);

}  // namespace kmm

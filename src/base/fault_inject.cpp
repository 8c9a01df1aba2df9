// kmm/base/fault_inject.cpp — the three injection points' state, the decision, the views.
//
// Every field is a relaxed atomic: a point is hit from many threads at once, and its config
// is changed from another (a scenario line, a test). The decision needs no lock: the call
// number comes from one fetch_add and the random draw is a pure function of (seed, number).
#include "base/fault_inject.h"

#include "base/report.h"
#include "base/text.h"

namespace kmm {

FaultAttr g_fault_attrs[kNrFaultPoints] = {{"failslab"}, {"fail_page_alloc"}, {"fail_platform"}};

namespace {

constexpr std::uint32_t kPpmAll = 1'000'000;
constexpr const char* kNames[kNrFaultPoints] = {"failslab", "fail_page_alloc", "fail_platform"};
constexpr const char* kShort[kNrFaultPoints] = {"slab", "page", "platform"};

// What each point was last configured with (its budget is restored by reset_counters).
// Written only by fault_configure (a control path: scenario, options, tests).
FaultConfig g_configs[kNrFaultPoints];
std::atomic<FaultChangeHook> g_hooks[kNrFaultPoints];
std::atomic<FaultLogFn> g_log_fn{nullptr};
std::atomic<void*> g_log_arg{nullptr};

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

void emit(const char* line, std::size_t len) {
  FaultLogFn fn = g_log_fn.load(std::memory_order_acquire);
  if (fn != nullptr) {
    fn(g_log_arg.load(std::memory_order_acquire), line, len);
  } else {
    write_report_text(line, len);
  }
}

void notify(FaultPoint p, bool on) {
  FaultChangeHook h = g_hooks[static_cast<unsigned>(p)].load(std::memory_order_acquire);
  if (h != nullptr) h(p, on);
}

}  // namespace

const char* fault_point_name(FaultPoint p) {
  return kNames[static_cast<unsigned>(p)];
}

bool fault_point_from_name(const char* s, std::size_t n, FaultPoint* out) {
  for (unsigned i = 0; i < kNrFaultPoints; ++i) {
    std::size_t m = str_len(kShort[i]);
    std::size_t l = str_len(kNames[i]);
    bool short_eq = n == m, long_eq = n == l;
    for (std::size_t j = 0; j < n && (short_eq || long_eq); ++j) {
      if (short_eq && s[j] != kShort[i][j]) short_eq = false;
      if (long_eq && s[j] != kNames[i][j]) long_eq = false;
    }
    if (short_eq || long_eq) {
      *out = static_cast<FaultPoint>(i);
      return true;
    }
  }
  return false;
}

bool fault_should_fail_slow(FaultPoint p, std::size_t size, const char* what) {
  FaultAttr& a = fault_attr(p);
  std::uint64_t n = a.calls.fetch_add(1, std::memory_order_relaxed) + 1;
  // Linux's order: times exhausted, then space, then interval, then probability.
  if (a.times.load(std::memory_order_relaxed) == 0) return false;
  std::int64_t sp = a.space.load(std::memory_order_relaxed);
  auto sz = static_cast<std::int64_t>(size > (std::uint64_t{1} << 62) ? std::uint64_t{1} << 62 : size);
  while (sp > sz) {
    if (a.space.compare_exchange_weak(sp, sp - sz, std::memory_order_relaxed)) return false;
  }
  std::uint64_t interval = a.interval.load(std::memory_order_relaxed);
  if (interval > 1 && n % interval != 0) return false;
  std::uint32_t ppm = a.probability_ppm.load(std::memory_order_relaxed);
  if (ppm < kPpmAll) {
    std::uint64_t r = splitmix64(a.seed.load(std::memory_order_relaxed) ^ (n * 0xD1B54A32D192ED03ull));
    if (r % kPpmAll >= ppm) return false;
  }
  std::int64_t t = a.times.load(std::memory_order_relaxed);
  for (;;) {
    if (t == 0) return false;
    if (t < 0) break;
    if (a.times.compare_exchange_weak(t, t - 1, std::memory_order_relaxed)) break;
  }
  std::uint64_t nth = a.failures.fetch_add(1, std::memory_order_relaxed) + 1;
  if (a.verbose.load(std::memory_order_relaxed) != 0) {
    StackText<256> line;
    line.str("FAULT_INJECTION: forcing a failure. name ").str(a.name).str(", interval ").u(interval);
    line.str(", probability ").fixed(ppm, 4).str("%, space ").i(a.space.load(std::memory_order_relaxed));
    line.str(", times ").i(a.times.load(std::memory_order_relaxed)).str("; call ").u(n).str(", failure ").u(nth);
    if (what != nullptr) line.str(" (").str(what).str(", ").u(size).str(" bytes)");
    line.nl();
    emit(line.data(), line.size());
  }
  return true;
}

void fault_configure(FaultPoint p, const FaultConfig& cfg) {
  unsigned i = static_cast<unsigned>(p);
  FaultAttr& a = g_fault_attrs[i];
  a.enabled.store(false, std::memory_order_relaxed);
  g_configs[i] = cfg;
  if (g_configs[i].interval == 0) g_configs[i].interval = 1;
  if (g_configs[i].probability_ppm > kPpmAll) g_configs[i].probability_ppm = kPpmAll;
  a.interval.store(g_configs[i].interval, std::memory_order_relaxed);
  a.probability_ppm.store(g_configs[i].probability_ppm, std::memory_order_relaxed);
  a.seed.store(cfg.seed, std::memory_order_relaxed);
  a.verbose.store(cfg.verbose, std::memory_order_relaxed);
  fault_reset_counters(p);
  bool on = g_configs[i].probability_ppm != 0 && cfg.times != 0;
  a.enabled.store(on, std::memory_order_release);
  notify(p, on);
}

void fault_disable(FaultPoint p) {
  fault_attr(p).enabled.store(false, std::memory_order_release);
  notify(p, false);
}

void fault_disable_all() {
  for (unsigned i = 0; i < kNrFaultPoints; ++i) fault_disable(static_cast<FaultPoint>(i));
}

void fault_resume(FaultPoint p) {
  const FaultConfig& c = g_configs[static_cast<unsigned>(p)];
  bool on = c.probability_ppm != 0 && c.times != 0;
  fault_attr(p).enabled.store(on, std::memory_order_release);
  notify(p, on);
}

FaultConfig fault_config(FaultPoint p) {
  return g_configs[static_cast<unsigned>(p)];
}

void fault_reset_counters(FaultPoint p) {
  unsigned i = static_cast<unsigned>(p);
  FaultAttr& a = g_fault_attrs[i];
  a.calls.store(0, std::memory_order_relaxed);
  a.failures.store(0, std::memory_order_relaxed);
  a.times.store(g_configs[i].times, std::memory_order_relaxed);
  std::uint64_t sp = g_configs[i].space > (std::uint64_t{1} << 62) ? std::uint64_t{1} << 62 : g_configs[i].space;
  a.space.store(static_cast<std::int64_t>(sp), std::memory_order_relaxed);
}

void fault_set_change_hook(FaultPoint p, FaultChangeHook hook) {
  g_hooks[static_cast<unsigned>(p)].store(hook, std::memory_order_release);
}

void fault_set_log(FaultLogFn fn, void* arg) {
  g_log_arg.store(arg, std::memory_order_release);
  g_log_fn.store(fn, std::memory_order_release);
}

void fault_clear_log(void* arg) {
  if (g_log_arg.load(std::memory_order_acquire) != arg) return;
  g_log_fn.store(nullptr, std::memory_order_release);
  g_log_arg.store(nullptr, std::memory_order_release);
}

void fault_print(FaultPoint p, TextSink& out) {
  const FaultAttr& a = fault_attr(p);
  out.str("name ").str(a.name).nl();
  out.str("enabled ").u(a.enabled.load(std::memory_order_relaxed) ? 1 : 0).nl();
  out.str("interval ").u(a.interval.load(std::memory_order_relaxed)).nl();
  out.str("probability ").fixed(a.probability_ppm.load(std::memory_order_relaxed), 4).str("%").nl();
  out.str("times ").i(a.times.load(std::memory_order_relaxed)).nl();
  out.str("space ").i(a.space.load(std::memory_order_relaxed)).nl();
  out.str("seed ").u(a.seed.load(std::memory_order_relaxed)).nl();
  out.str("verbose ").u(a.verbose.load(std::memory_order_relaxed)).nl();
  out.str("calls ").u(a.calls.load(std::memory_order_relaxed)).nl();
  out.str("failures ").u(a.failures.load(std::memory_order_relaxed)).nl();
}

bool fault_parse_int(const char* s, std::size_t n, std::int64_t* out) {
  if (n == 0) return false;
  bool neg = s[0] == '-';
  std::size_t i = neg ? 1 : 0;
  if (i == n) return false;
  std::uint64_t v = 0;
  for (; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(s[i] - '0');
    if (v > (std::uint64_t{1} << 62)) return false;
  }
  *out = neg ? -static_cast<std::int64_t>(v) : static_cast<std::int64_t>(v);
  return true;
}

bool fault_parse_rate(const char* s, std::size_t n, std::uint64_t* interval, std::uint32_t* ppm) {
  if (n == 0) return false;
  if (s[n - 1] != '%') {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + static_cast<std::uint64_t>(s[i] - '0');
      if (v > (std::uint64_t{1} << 62)) return false;
    }
    if (v == 0) return false;
    *interval = v;
    *ppm = kPpmAll;
    return true;
  }
  // P%: up to 4 decimals, 0 < P <= 100.
  std::uint64_t whole = 0, frac = 0;
  unsigned decimals = 0;
  std::size_t i = 0, end = n - 1;
  if (end == 0) return false;
  for (; i < end && s[i] != '.'; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    whole = whole * 10 + static_cast<std::uint64_t>(s[i] - '0');
    if (whole > 100) return false;
  }
  if (i == 0) return false;
  if (i < end) {
    ++i;  // '.'
    if (i == end) return false;
    for (; i < end; ++i) {
      if (s[i] < '0' || s[i] > '9' || decimals == 4) return false;
      frac = frac * 10 + static_cast<std::uint64_t>(s[i] - '0');
      ++decimals;
    }
  }
  while (decimals < 4) {
    frac *= 10;
    ++decimals;
  }
  std::uint64_t v = whole * 10000 + frac;
  if (v == 0 || v > kPpmAll) return false;
  *interval = 1;
  *ppm = static_cast<std::uint32_t>(v);
  return true;
}

}  // namespace kmm

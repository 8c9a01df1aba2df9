// kmm/base/report.cpp — the report component: format, count, hook, then abort or go on.
// Depends on: report.h, text.h; on a hosted build, write(2) and abort(3).
#include "base/report.h"

#include <atomic>

#include "base/text.h"

#if !KMM_FREESTANDING
#include <unistd.h>

#include <cstdlib>
#endif

namespace kmm {
namespace {

#if !KMM_FREESTANDING
void default_writer(const char* text, std::size_t len) {
  while (len > 0) {
    ssize_t n = ::write(2, text, len);
    if (n <= 0) return;
    text += n;
    len -= static_cast<std::size_t>(n);
  }
}
#else
void default_writer(const char*, std::size_t) {}
#endif

std::atomic<WriteFn> g_writer{default_writer};
std::atomic<OnError> g_on_error{OnError::kAbort};
std::atomic<std::uint64_t> g_reports{0};
std::atomic<ReportAddressFn> g_address{nullptr};
std::atomic<void*> g_address_arg{nullptr};
std::atomic<ReportHook> g_hook{nullptr};
std::atomic<void*> g_hook_arg{nullptr};

}  // namespace

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kDoubleFree:
      return "double free";
    case ErrorKind::kInvalidFree:
      return "invalid free (not the start of a live object)";
    case ErrorKind::kForeignPointer:
      return "free of a pointer kmm does not own";
    case ErrorKind::kWrongCache:
      return "free into the wrong cache";
    case ErrorKind::kSizeOverflow:
      return "allocation size overflow";
    case ErrorKind::kCacheNotEmpty:
      return "cache still holds objects";
    case ErrorKind::kOwnerMismatch:
      return "owner mismatch";
    case ErrorKind::kBadArgument:
      return "bad argument";
    case ErrorKind::kCorruption:
      return "heap corruption";
  }
  return "error";
}

void report(const ErrorReport& r) {
  StackText<512> line;
  line.str("kmm: ERROR: ").str(error_kind_name(r.kind)).str(" in ").str(r.action ? r.action : "?");
  const ReportAddressFn shown = g_address.load(std::memory_order_acquire);
  const std::uint64_t va = shown != nullptr ? shown(r.pointer, g_address_arg.load(std::memory_order_relaxed)) : 0;
  line.str(": pointer ");
  if (va != 0)
    line.str("0x").hex(va, 8);
  else
    line.ptr(r.pointer);
  if (r.cache != nullptr || r.size != 0) {
    line.str(" (");
    if (r.cache != nullptr) line.str("cache ").str(r.cache);
    if (r.cache != nullptr && r.size != 0) line.str(", ");
    if (r.size != 0) line.str("size ").u(r.size);
    line.str(")");
  }
  if (r.detail != nullptr) line.str(": ").str(r.detail);
  line.nl();
  write_report_text(line.data(), line.size());
  g_reports.fetch_add(1, std::memory_order_relaxed);
  if (ReportHook hook = g_hook.load(std::memory_order_acquire)) {
    hook(r, g_hook_arg.load(std::memory_order_relaxed));
  }
  // A refused request (a size that overflows, a cache that is not empty, a bad argument)
  // damages nothing: the caller gets null or false. A bad free or corruption stops the
  // process unless on_error=report, and corruption stops it always.
  bool refused_request =
      r.kind == ErrorKind::kSizeOverflow || r.kind == ErrorKind::kCacheNotEmpty || r.kind == ErrorKind::kBadArgument;
  if (refused_request) return;
  if (r.kind == ErrorKind::kCorruption) fatal("stopping on the error above (heap corruption always stops the process)");
  if (g_on_error.load(std::memory_order_relaxed) == OnError::kAbort) {
    fatal("stopping on the error above (set on_error=report to go on where safe)");
  }
}

void set_on_error(OnError policy) {
  g_on_error.store(policy, std::memory_order_relaxed);
}
OnError on_error() {
  return g_on_error.load(std::memory_order_relaxed);
}
std::uint64_t report_count() {
  return g_reports.load(std::memory_order_relaxed);
}
void reset_report_count() {
  g_reports.store(0, std::memory_order_relaxed);
}
void set_report_writer(WriteFn fn) {
  g_writer.store(fn ? fn : default_writer);
}
void write_report_text(const char* text, std::size_t len) {
  g_writer.load()(text, len);
}
void set_report_address(ReportAddressFn fn, void* arg) {
  g_address_arg.store(arg, std::memory_order_relaxed);
  g_address.store(fn, std::memory_order_release);
}
void set_report_hook(ReportHook hook, void* arg) {
  g_hook_arg.store(arg, std::memory_order_relaxed);
  g_hook.store(hook, std::memory_order_release);
}

void fatal(const char* what) {
  StackText<256> line;
  line.str("kmm: FATAL: ").str(what).nl();
  write_report_text(line.data(), line.size());
#if !KMM_FREESTANDING
  std::abort();
#else
  __builtin_trap();
#endif
}

}  // namespace kmm

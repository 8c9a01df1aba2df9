// kmm/base/report.h — the one place every detected misuse or corruption is reported.
//
// Every bad free, foreign pointer, wrong cache, overflowing size and detected corruption goes
// through report(), which names the action (kfree, kmem_cache_free, ...), the pointer, the
// cache and the size in one line on stderr:
//
//     kmm: ERROR: double free in kfree: pointer 0x7f3c2a401040 (cache kmalloc-64, size 64)
//
// Policy (Scudo's, and SLUB's with slub_debug): a bad free (double, invalid, foreign, wrong
// cache, owner mismatch) stops the process (abort) by default, before damage spreads. With
// OnError::kReport such a misuse is reported and refused (the free is simply not done) and
// the caller goes on; corruption of the allocator's own metadata always stops. A refused
// request — a size that overflows, destroying a cache that still holds objects, a bad
// argument — damages nothing and never stops: it is reported and the call fails.
//
// Depends on: config.h. Never allocates; safe to call from inside the allocator.
#pragma once

#include "base/config.h"

namespace kmm {

enum class ErrorKind : std::uint8_t {
  kDoubleFree,      // the object is already free
  kInvalidFree,     // pointer inside kmm's memory but not the start of a live object
  kForeignPointer,  // pointer kmm does not own at all
  kWrongCache,      // kmem_cache_free(c, p) where p belongs to another cache
  kSizeOverflow,    // n * size overflows, or a size no allocator can serve
  kCacheNotEmpty,   // kmem_cache_destroy of a cache that still holds objects
  kOwnerMismatch,   // a module frees or resizes memory another owner holds
  kBadArgument,     // anything else the caller got wrong (bad order, bad flags...)
  kCorruption,      // allocator metadata found damaged: always fatal
};

enum class OnError : std::uint8_t { kAbort, kReport };

struct ErrorReport {
  ErrorKind kind;
  const char* action;   // the API call that found it: "kfree", "kmem_cache_free", ...
  const void* pointer;  // may be null
  const char* cache;    // may be null
  std::size_t size;     // 0 when unknown
  const char* detail;   // may be null: one more phrase of explanation
};

const char* error_kind_name(ErrorKind kind);

// Prints the report, counts it, calls the hook, and aborts unless policy says go on.
// Returns only when the caller may safely continue (having refused the operation).
void report(const ErrorReport& r);

void set_on_error(OnError policy);
OnError on_error();

// Number of reports since start (or since reset_report_count()); for tests and stats.
std::uint64_t report_count();
void reset_report_count();

// Output sink for reports and the allocator's log lines. Hosted default: write(2) to fd 2.
using WriteFn = void (*)(const char* text, std::size_t len);
void set_report_writer(WriteFn fn);
void write_report_text(const char* text, std::size_t len);

// Optional observer, called with each report before the abort decision (tests use it).
using ReportHook = void (*)(const ErrorReport& r, void* arg);
void set_report_hook(ReportHook hook, void* arg);

// Optional: the address a report shows for a pointer. The modelled machine shows its kernel's
// virtual address for a pointer into its RAM, as its other views (vmallocinfo, kmemleak) do;
// 0 from the function shows the pointer as it is.
using ReportAddressFn = std::uint64_t (*)(const void* p, void* arg);
void set_report_address(ReportAddressFn fn, void* arg);

[[noreturn]] void fatal(const char* what);

}  // namespace kmm

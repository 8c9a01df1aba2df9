// kmm/replay/trace.h — allocation traces: the reader and writer of the trace format.
//
// The format (docs/TRACE_FORMAT.md) is a superset of the CMU malloc-lab trace format: four
// header numbers (suggested heap size, number of ids, number of operations, weight), then
// exactly that many operations, one a line: `a ID SIZE`, `f ID`, `r ID SIZE`. A classic
// malloc-lab driver reads exactly num_ops operations and stops, so kmm's extensions live
// after them, in a trailer that begins with the line `#kmm-trace 1`: a module table
// (`module M NAME`), and per-operation attributes that hold until changed (`x OP tid=T
// mod=M t=NS align=A pid=P`). Classic traces therefore replay as they are, and kmm's traces
// run in a classic driver.
//
// The reader checks every line and the meaning of the sequence as it goes: an id allocated
// twice without a free, a free or realloc of an id that is not live (never allocated, or
// already freed), a size beyond kMaxTraceSize, a truncated file (fewer operations than the
// header says, or the trailer where operations should be), junk on a line. Each problem is
// reported as "FILE:LINE: what is wrong", quoting at most 80 bytes of the line with anything
// unprintable escaped. Strict mode (the default) stops at the first; lenient mode skips the
// line, counts it, and keeps the first few messages. A file that starts with the gzip magic
// bytes is inflated, and must be one whole gzip stream: a stream cut short, or followed by
// anything (junk, a second stream), is refused.
//
// Invariants of a Trace the reader returns: every op is valid in sequence (a free or realloc
// names a live id, an alloc a dead one), ids are < num_ids, sizes <= kMaxTraceSize. The
// replay engine relies on this and checks nothing again.
//
// Depends on: the C++ standard library, zlib. (replay/ layer: may allocate freely.)
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kmm::scenario {

// Larger than any RAM a modelled machine can have: a size above it is a broken trace.
inline constexpr std::uint64_t kMaxTraceSize = std::uint64_t{1} << 40;

enum class OpKind : std::uint8_t { kAlloc, kFree, kRealloc };

struct TraceOp {
  OpKind kind;
  std::uint8_t align_log2 = 0;  // 0: the default alignment (8); else 1 << align_log2
  std::uint16_t module = 0;     // index into Trace::modules (0: "?" unknown)
  std::uint32_t id = 0;
  std::uint32_t tid = 0;   // thread id (0: unknown)
  std::uint64_t size = 0;  // 0 for a free
};

struct Trace {
  std::string name;                  // file name, for reports
  std::uint64_t heap_hint = 0;       // header: suggested heap size
  std::uint32_t num_ids = 0;         // header: number of ids
  std::uint64_t weight = 0;          // header: weight
  std::vector<TraceOp> ops;          // exactly the valid operations, in order
  std::vector<std::string> modules;  // modules[0] is "?"
  // A coarse clock: (index in ops, ns since the recording started), increasing.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> clock;
  std::uint64_t skipped = 0;          // lenient: lines skipped
  // lenient: the file's operation numbers (0-based) of the operation lines skipped, in order.
  std::vector<std::uint64_t> skipped_ops;
  std::vector<std::string> problems;  // lenient: the first messages (at most 20)
  bool extended = false;              // had a #kmm-trace trailer
  // Totals, computed while reading.
  std::uint64_t allocs = 0, frees = 0, reallocs = 0;
  std::uint64_t peak_live_bytes = 0;
};

struct TraceReadOptions {
  bool lenient = false;
  std::uint64_t max_size = kMaxTraceSize;
  // read_trace_file: the text of a file is refused beyond 64 times the file's size, and never
  // below this (a gzip bomb inflates past any memory; a plain file's text is its size).
  std::uint64_t min_text_limit = std::uint64_t{256} << 20;
};

// Reads a trace from a stream; `name` is used in messages. On a strict error returns
// nullopt with *error = "NAME:LINE: message"; *skippable (when given) says whether the
// problem is one lenient mode would have skipped (a bad line, not the header or a truncation).
std::optional<Trace> read_trace(std::istream& in, const std::string& name, const TraceReadOptions& opt,
                                std::string* error, bool* skippable = nullptr);
// Reads a file (gzip-compressed when it starts with the gzip magic bytes). A file that cannot
// be read says why ("cannot open: No such file or directory", "a device, not a trace file",
// "the gzip stream is truncated").
std::optional<Trace> read_trace_file(const std::string& path, const TraceReadOptions& opt, std::string* error,
                                     bool* skippable = nullptr);

// The file's own number (0-based, counting skipped lines) of t.ops[index]: the same as index
// unless lenient mode skipped operation lines before it.
std::uint64_t file_op_number(const Trace& t, std::size_t index);

// Writes a trace in the format above (classic header and ops, then the kmm trailer when the
// trace has modules, threads or alignments). Header fields are recomputed from the ops when
// zero: heap_hint = peak live bytes, num_ids = 1 + the largest id, weight = 1.
void write_trace(std::ostream& out, const Trace& t);

}  // namespace kmm::scenario

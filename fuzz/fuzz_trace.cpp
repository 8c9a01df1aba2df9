// kmm/fuzz/fuzz_trace.cpp — libFuzzer harness for the trace reader (issue 10c).
//
// Any input is a trace file. It is read twice, strict and lenient (src/replay/trace.h), and each
// read must give either a clean error naming the file and line ("fuzz.rep:LINE: ...") or a
// Trace that keeps the reader's documented invariants, which this harness re-derives from
// the ops alone: every free or realloc names a live id and every alloc a dead one, ids are
// below num_ids, sizes at most the limit, modules and the clock index what exists, and the
// totals (allocs, frees, reallocs, peak live bytes) are those of the ops. A strict success
// must also read leniently, to the same ops, with nothing skipped. Every trace read is then
// written (write_trace), read again strictly, and must give the same ops, modules and clock;
// writing that copy must give the same text (the writer is a fixpoint of the reader).
// Anything else traps. The reader's memory must follow the input, not its header's claims:
// libFuzzer's -rss_limit_mb / -malloc_limit_mb (2 GiB by default) catch a reader that
// believes a header asking for 2^31 ids (it did: see Trace.HeaderClaimsDoNotSizeMemory; the
// huge-header-* and high-ids seeds keep those inputs in the corpus).
//
// Depends on: replay/trace.h (kmm_replay), the C++ standard library.
#include <cstdint>
#include <sstream>
#include <string>
#include <unordered_map>

#include "replay/trace.h"

using namespace kmm::scenario;

namespace {

const std::string kName = "fuzz.rep";

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// "fuzz.rep:LINE: message" with LINE a number.
void check_located(const std::string& msg) {
  check(msg.rfind(kName + ":", 0) == 0);
  std::size_t i = kName.size() + 1, digits = 0;
  while (i < msg.size() && msg[i] >= '0' && msg[i] <= '9') ++i, ++digits;
  check(digits > 0 && i + 1 < msg.size() && msg[i] == ':' && msg[i + 1] == ' ');
}

// The invariants of trace.h, re-derived from the ops (the replay engine relies on them).
void check_trace(const Trace& t, const TraceReadOptions& opt) {
  check(t.name == kName);
  check(!t.modules.empty() && t.modules[0] == "?" && t.modules.size() <= 65536);
  std::unordered_map<std::uint32_t, std::uint64_t> live;  // id -> size
  std::uint64_t allocs = 0, frees = 0, reallocs = 0, live_bytes = 0, peak = 0;
  for (const TraceOp& op : t.ops) {
    check(op.id < t.num_ids);
    check(op.module < t.modules.size());
    check(op.align_log2 <= 30);
    auto it = live.find(op.id);
    switch (op.kind) {
      case OpKind::kAlloc:
        check(it == live.end());
        check(op.size <= opt.max_size);
        live.emplace(op.id, op.size);
        live_bytes += op.size;
        ++allocs;
        break;
      case OpKind::kRealloc:
        check(it != live.end());
        check(op.size <= opt.max_size);
        live_bytes = live_bytes - it->second + op.size;
        it->second = op.size;
        ++reallocs;
        break;
      case OpKind::kFree:
        check(it != live.end());
        check(op.size == 0);
        live_bytes -= it->second;
        live.erase(it);
        ++frees;
        break;
      default:
        check(false);
    }
    if (live_bytes > peak) peak = live_bytes;
  }
  check(t.allocs == allocs && t.frees == frees && t.reallocs == reallocs && t.peak_live_bytes == peak);
  for (std::size_t i = 0; i < t.clock.size(); ++i) {
    check(t.clock[i].first < t.ops.size());
    check(i == 0 || t.clock[i - 1].first < t.clock[i].first);
  }
  if (!opt.lenient) check(t.skipped == 0 && t.problems.empty());
  check(t.problems.size() == (t.skipped < 20 ? t.skipped : 20));
  for (const std::string& p : t.problems) check_located(p);
  if (!t.extended) check(t.modules.size() == 1 && t.clock.empty());
}

bool same_ops(const Trace& a, const Trace& b) {
  if (a.ops.size() != b.ops.size()) return false;
  for (std::size_t i = 0; i < a.ops.size(); ++i) {
    const TraceOp &x = a.ops[i], &y = b.ops[i];
    if (x.kind != y.kind || x.id != y.id || x.size != y.size || x.tid != y.tid || x.module != y.module ||
        x.align_log2 != y.align_log2)
      return false;
  }
  return true;
}

std::optional<Trace> read(const std::string& text, const TraceReadOptions& opt, std::string* err) {
  std::istringstream in(text);
  return read_trace(in, kName, opt, err);
}

// write, read strictly, compare; write again, compare the text.
void check_round_trip(const Trace& t) {
  std::ostringstream out;
  write_trace(out, t);
  std::string err;
  TraceReadOptions strict;
  auto u = read(out.str(), strict, &err);
  check(u.has_value());
  check_trace(*u, strict);
  check(same_ops(t, *u) && u->modules == t.modules && u->clock == t.clock);
  check(u->num_ids == t.num_ids && (t.weight == 0 || u->weight == t.weight));
  check(t.heap_hint == 0 ? u->heap_hint == t.peak_live_bytes : u->heap_hint == t.heap_hint);
  std::ostringstream again;
  write_trace(again, *u);
  check(again.str() == out.str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  TraceReadOptions strict, lenient;
  lenient.lenient = true;

  std::string err;
  auto s = read(text, strict, &err);
  if (s) {
    check_trace(*s, strict);
    check_round_trip(*s);
  } else {
    check_located(err);
  }

  std::string lerr;
  auto l = read(text, lenient, &lerr);
  if (l) {
    check_trace(*l, lenient);
    check_round_trip(*l);
    // What strict mode accepts, lenient mode reads the same.
    if (s) check(l->skipped == 0 && same_ops(*s, *l) && l->modules == s->modules && l->clock == s->clock);
  } else {
    check_located(lerr);
    check(!s);  // lenient refuses only what strict refuses too
  }
  return 0;
}

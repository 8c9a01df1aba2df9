// kmm/replay/trace.cpp — the trace reader (classic malloc-lab + the kmm trailer) and writer.
//
// The reader works on the whole file in memory, one line at a time, with hand-written number
// parsing (a 1 M-operation trace reads in well under a second). It keeps the state of each id
// (never allocated, live, freed) and its size so the meaning of each line is checked as it is
// read. Memory follows the input, never the header's claims: ids are kept in a dense table
// only up to a bound set by the file's length (above it, in a hash map), and the operation
// vectors are reserved for at most as many operations as the file has room for lines; so a
// 20-byte file announcing 2^31 ids or 2^26 operations costs kilobytes, not gigabytes.
//
// Depends on: replay/trace.h, fmt, zlib, the C++ standard library.
// Invariants: a trace that reads without error has every free/realloc of a live id, every
// alloc of a dead one, ids below num_ids; write_trace's text reads back to the same ops.
#include "replay/trace.h"

#include <fmt/format.h>
#include <zlib.h>

#include <sys/stat.h>

#include <algorithm>
#include <istream>
#include <iterator>
#include <ostream>
#include <string_view>
#include <unordered_map>

namespace kmm::scenario {
namespace {

constexpr std::size_t kMaxProblems = 20;
constexpr std::uint64_t kMaxIds = std::uint64_t{1} << 31;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

// Splits a line into at most `max` tokens; returns how many (max + 1 when there are more).
std::size_t tokens(std::string_view line, std::string_view* out, std::size_t max) {
  std::size_t n = 0, i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    if (i >= line.size()) break;
    std::size_t b = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    if (n == max) return max + 1;
    out[n++] = line.substr(b, i - b);
  }
  return n;
}

bool number(std::string_view s, std::uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (~std::uint64_t{0} - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

// Per-id state (0 never allocated, 1 live, 2 freed) and size: a dense table for ids below
// `dense`, a hash map above (ids of real traces are small: kmm's recorder reuses the lowest
// free one; a header or a line may still name any id below 2^31).
class IdTable {
 public:
  struct Entry {
    std::uint8_t state = 0;
    std::uint64_t size = 0;
  };
  explicit IdTable(std::uint64_t dense) : dense_(static_cast<std::size_t>(dense)) {}
  Entry& at(std::uint32_t id) { return id < dense_.size() ? dense_[id] : sparse_[id]; }

 private:
  std::vector<Entry> dense_;
  std::unordered_map<std::uint32_t, Entry> sparse_;  // references stay valid as it grows
};

struct Attr {
  std::uint64_t pos;  // op position in the file (0-based)
  std::int64_t tid = -1, mod = -1, t = -1;
  int align_log2 = -1;
};

class Reader {
 public:
  Reader(std::string_view text, const std::string& name, const TraceReadOptions& opt) : text_(text), opt_(opt) {
    t_.name = name;
    t_.modules.push_back("?");
  }

  std::optional<Trace> run(std::string* error) {
    std::string_view line;
    std::uint64_t header[4] = {};
    const char* header_names[4] = {"the suggested heap size", "the number of ids", "the number of operations",
                                   "the weight"};
    // Header: four numbers, one a line.
    for (int h = 0; h < 4;) {
      if (!next_line(&line))
        return fail(error, fmt::format("truncated trace: the header ends before {}", header_names[h]));
      std::string_view tok[2];
      std::size_t n = tokens(line, tok, 1);
      if (n == 0 || tok[0][0] == '#') continue;
      if (n != 1 || !number(tok[0], &header[h])) {
        // A header problem cannot be skipped: nothing after it can be read.
        return fail(error, fmt::format("bad header line: expected {} (one number), got '{}'", header_names[h], line));
      }
      ++h;
    }
    t_.heap_hint = header[0];
    if (header[1] > kMaxIds) return fail(error, fmt::format("absurd number of ids {} in the header", header[1]));
    t_.num_ids = static_cast<std::uint32_t>(header[1]);
    std::uint64_t num_ops = header[2];
    t_.weight = header[3];
    // An operation line takes at least 4 bytes ("f 0\n"): no more can follow than that allows.
    const std::uint64_t room = (text_.size() - std::min(at_, text_.size())) / 4 + 1;
    ids_ = IdTable(std::min<std::uint64_t>(t_.num_ids, room));  // more ids than lines: hashed
    t_.ops.reserve(static_cast<std::size_t>(std::min(num_ops, room)));
    pos_index_.reserve(t_.ops.capacity());

    std::uint64_t pos = 0;
    while (pos < num_ops) {
      if (!next_line(&line)) {
        return fail(
            error, fmt::format("truncated trace: the header says {} operations, the file ends after {}", num_ops, pos));
      }
      std::string_view tok[4];
      std::size_t n = tokens(line, tok, 3);
      if (n == 0 || tok[0][0] == '#') continue;
      std::string msg = op_line(tok, n);
      pos_index_.push_back(msg.empty() ? static_cast<std::int64_t>(t_.ops.size() - 1) : -1);
      ++pos;
      if (!msg.empty() && !problem(msg, error)) return std::nullopt;
    }
    // After the operations: nothing (classic), or the kmm trailer.
    std::vector<Attr> attrs;
    bool trailer = false;
    while (next_line(&line)) {
      std::string_view tok[8];
      std::size_t n = tokens(line, tok, 7);
      if (n == 0) continue;
      if (!trailer) {
        if (tok[0] == "#kmm-trace") {
          if (n < 2 || tok[1] != "1") return fail(error, "unsupported kmm trace version (this reader knows version 1)");
          trailer = true;
          t_.extended = true;
        } else if (tok[0][0] != '#') {
          if (!problem(fmt::format("more operations than the header's {} (or junk after them): '{}'", num_ops, line),
                       error))
            return std::nullopt;
        }
        continue;
      }
      if (tok[0][0] == '#') continue;
      std::string msg = trailer_line(tok, n, num_ops, &attrs);
      if (!msg.empty() && !problem(msg, error)) return std::nullopt;
    }
    apply(attrs);
    return std::move(t_);
  }

 private:
  bool next_line(std::string_view* line) {
    if (at_ >= text_.size()) return false;
    std::size_t e = text_.find('\n', at_);
    if (e == std::string_view::npos) e = text_.size();
    *line = text_.substr(at_, e - at_);
    at_ = e + 1;
    ++line_no_;
    return true;
  }

  std::optional<Trace> fail(std::string* error, const std::string& msg) {
    if (error != nullptr) *error = fmt::format("{}:{}: {}", t_.name, line_no_, msg);
    return std::nullopt;
  }

  // A problem on the current line: strict stops (false), lenient counts and goes on.
  bool problem(const std::string& msg, std::string* error) {
    if (!opt_.lenient) {
      fail(error, msg);
      return false;
    }
    ++t_.skipped;
    if (t_.problems.size() < kMaxProblems) t_.problems.push_back(fmt::format("{}:{}: {}", t_.name, line_no_, msg));
    return true;
  }

  std::string id_arg(std::string_view s, std::uint32_t* id) {
    std::uint64_t v;
    if (!number(s, &v)) return fmt::format("bad id '{}' (want a number)", s);
    if (v >= t_.num_ids) return fmt::format("id {} is not below the header's number of ids {}", v, t_.num_ids);
    *id = static_cast<std::uint32_t>(v);
    return {};
  }

  std::string size_arg(std::string_view s, std::uint64_t* size) {
    if (!number(s, size)) return fmt::format("bad size '{}' (want a number of bytes)", s);
    if (*size > opt_.max_size) return fmt::format("absurd size {} (more than {} bytes)", s, opt_.max_size);
    return {};
  }

  // Checks and appends one operation; returns the problem, or "" when it was taken.
  std::string op_line(const std::string_view* tok, std::size_t n) {
    TraceOp op{};
    std::string msg;
    std::string_view k = tok[0];
    if (k == "a" || k == "r") {
      if (n != 3) return fmt::format("'{}' takes an id and a size: '{} ID SIZE'", k, k);
      if (!(msg = id_arg(tok[1], &op.id)).empty()) return msg;
      if (!(msg = size_arg(tok[2], &op.size)).empty()) return msg;
      IdTable::Entry& e = ids_.at(op.id);
      if (k == "a") {
        if (e.state == 1) return fmt::format("id {} allocated again while it is live (no free in between)", op.id);
        op.kind = OpKind::kAlloc;
        ++t_.allocs;
      } else {
        if (e.state == 0) return fmt::format("realloc of id {}, which was never allocated", op.id);
        if (e.state == 2) return fmt::format("realloc of id {}, which is already freed", op.id);
        op.kind = OpKind::kRealloc;
        live_bytes_ -= e.size;
        ++t_.reallocs;
      }
      e.state = 1;
      e.size = op.size;
      live_bytes_ += op.size;
      t_.peak_live_bytes = std::max(t_.peak_live_bytes, live_bytes_);
    } else if (k == "f") {
      if (n != 2) return "'f' takes one id: 'f ID'";
      if (!(msg = id_arg(tok[1], &op.id)).empty()) return msg;
      IdTable::Entry& e = ids_.at(op.id);
      if (e.state == 0) return fmt::format("free of unknown id {} (never allocated)", op.id);
      if (e.state == 2) return fmt::format("free of id {}, which is already freed (double free)", op.id);
      e.state = 2;
      op.kind = OpKind::kFree;
      live_bytes_ -= e.size;
      ++t_.frees;
    } else {
      return fmt::format("unknown operation '{}' (want a, f or r)", k);
    }
    t_.ops.push_back(op);
    return {};
  }

  std::string trailer_line(const std::string_view* tok, std::size_t n, std::uint64_t num_ops,
                           std::vector<Attr>* attrs) {
    if (tok[0] == "module") {
      std::uint64_t m;
      if (n != 3 || !number(tok[1], &m)) return "usage: module INDEX NAME";
      if (m != t_.modules.size()) return fmt::format("module {} out of order (expected {})", m, t_.modules.size());
      if (m > 65535) return "too many modules (at most 65535)";
      t_.modules.emplace_back(tok[2]);
      return {};
    }
    if (tok[0] == "x") {
      Attr a;
      if (n < 2 || !number(tok[1], &a.pos)) return "usage: x OP key=value...";
      if (a.pos >= num_ops) return fmt::format("x names operation {}, but the trace has {}", a.pos, num_ops);
      if (!attrs->empty() && attrs->back().pos >= a.pos)
        return fmt::format("x lines out of order at operation {}", a.pos);
      if (n > 7) return "too many fields on an x line";
      for (std::size_t i = 2; i < n; ++i) {
        std::size_t eq = tok[i].find('=');
        std::uint64_t v;
        if (eq == std::string_view::npos || !number(tok[i].substr(eq + 1), &v))
          return fmt::format("bad attribute '{}' (want key=number)", tok[i]);
        std::string_view key = tok[i].substr(0, eq);
        if (key == "tid") {
          if (v > 0xffffffffu) return fmt::format("bad tid {}", v);
          a.tid = static_cast<std::int64_t>(v);
        } else if (key == "mod") {
          if (v >= t_.modules.size())
            return fmt::format("module {} is not declared (declare it with 'module {} NAME' first)", v, v);
          a.mod = static_cast<std::int64_t>(v);
        } else if (key == "align") {
          if (v == 0 || (v & (v - 1)) != 0 || v > (std::uint64_t{1} << 30))
            return fmt::format("bad alignment {} (a power of two)", v);
          int l = 0;
          while ((std::uint64_t{1} << l) < v) ++l;
          a.align_log2 = l;
        } else if (key == "t") {
          if (v > (std::uint64_t{1} << 62)) return fmt::format("bad time {}", v);
          a.t = static_cast<std::int64_t>(v);
        } else if (key != "pid") {
          // pid is informative; other keys are an error so that typos are seen.
          return fmt::format("unknown attribute '{}' (tid, mod, align, t, pid)", key);
        }
      }
      attrs->push_back(a);
      return {};
    }
    return fmt::format("unknown trailer line '{}' (module, x or #)", tok[0]);
  }

  // Attributes hold from their operation on (tid, mod), alignment only for that operation.
  void apply(const std::vector<Attr>& attrs) {
    std::uint32_t tid = 0;
    std::uint16_t mod = 0;
    std::size_t next = 0;
    for (std::uint64_t pos = 0; pos < pos_index_.size(); ++pos) {
      int align = 0;
      while (next < attrs.size() && attrs[next].pos == pos) {
        const Attr& a = attrs[next++];
        if (a.tid >= 0) tid = static_cast<std::uint32_t>(a.tid);
        if (a.mod >= 0) mod = static_cast<std::uint16_t>(a.mod);
        if (a.align_log2 >= 0) align = a.align_log2;
        if (a.t >= 0 && pos_index_[pos] >= 0)
          t_.clock.emplace_back(static_cast<std::uint64_t>(pos_index_[pos]), static_cast<std::uint64_t>(a.t));
      }
      std::int64_t i = pos_index_[pos];
      if (i < 0) continue;
      TraceOp& op = t_.ops[static_cast<std::size_t>(i)];
      op.tid = tid;
      op.module = mod;
      op.align_log2 = static_cast<std::uint8_t>(align);
    }
  }

  std::string_view text_;
  std::size_t at_ = 0;
  std::uint64_t line_no_ = 0;
  TraceReadOptions opt_;
  Trace t_;
  IdTable ids_{0};
  std::vector<std::int64_t> pos_index_;  // file op position -> index in ops, -1 skipped
  std::uint64_t live_bytes_ = 0;
};

}  // namespace

std::optional<Trace> read_trace(std::istream& in, const std::string& name, const TraceReadOptions& opt,
                                std::string* error) {
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return Reader(text, name, opt).run(error);
}

std::optional<Trace> read_trace_file(const std::string& path, const TraceReadOptions& opt, std::string* error) {
  // gzopen reads plain files as they are, and gzip files decompressed.
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) {
    if (error != nullptr) *error = path + ": cannot open";
    return std::nullopt;
  }
  // A gzip file's text is bounded by its own size: 64 times it (traces compress 5-15x), and
  // never less than opt.min_text_limit (256 MiB). A 1.5 MB file that inflates to 1.5 GB is refused at the bound,
  // before the host's memory goes (memory follows the input, as the reader's does).
  std::uint64_t limit = opt.min_text_limit;
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && st.st_size > 0 && std::uint64_t(st.st_size) * 64 > limit)
    limit = std::uint64_t(st.st_size) * 64;
  std::string text;
  char buf[1 << 16];
  for (;;) {
    if (text.size() > limit) {
      if (error != nullptr)
        *error = fmt::format(
            "{}: its text is more than {} bytes, over 64 times the file's size (a gzip bomb?): not read", path, limit);
      gzclose(f);
      return std::nullopt;
    }
    int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int code = 0;
      const char* why = gzerror(f, &code);
      if (error != nullptr) *error = fmt::format("{}: read error: {}", path, why != nullptr ? why : "?");
      gzclose(f);
      return std::nullopt;
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  gzclose(f);
  return Reader(text, path, opt).run(error);
}

void write_trace(std::ostream& out, const Trace& t) {
  std::uint64_t heap = t.heap_hint, weight = t.weight;
  std::uint32_t ids = t.num_ids;
  bool extended = t.modules.size() > 1 || !t.clock.empty();
  std::uint64_t live = 0, peak = 0;
  // Sizes by id, dense up to a bound the ops set (a trace may name ids up to 2^31).
  const std::uint64_t bound = 2 * std::uint64_t{t.ops.size()} + 16;
  IdTable sizes(t.num_ids != 0 ? std::min<std::uint64_t>(t.num_ids, bound) : bound);
  for (const TraceOp& op : t.ops) {
    if (op.id >= ids) ids = op.id + 1;
    if (op.tid != 0 || op.module != 0 || op.align_log2 != 0) extended = true;
    std::uint64_t& size = sizes.at(op.id).size;
    if (op.kind != OpKind::kAlloc) live -= size;
    size = op.kind == OpKind::kFree ? 0 : op.size;
    live += size;
    peak = std::max(peak, live);
  }
  if (heap == 0) heap = peak;
  if (weight == 0) weight = 1;
  std::string buf = fmt::format("{}\n{}\n{}\n{}\n", heap, ids, t.ops.size(), weight);
  auto flush = [&] {
    out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
    buf.clear();
  };
  for (const TraceOp& op : t.ops) {
    switch (op.kind) {
      case OpKind::kAlloc:
        fmt::format_to(std::back_inserter(buf), "a {} {}\n", op.id, op.size);
        break;
      case OpKind::kFree:
        fmt::format_to(std::back_inserter(buf), "f {}\n", op.id);
        break;
      case OpKind::kRealloc:
        fmt::format_to(std::back_inserter(buf), "r {} {}\n", op.id, op.size);
        break;
    }
    if (buf.size() > (1 << 16)) flush();
  }
  if (extended) {
    buf += "#kmm-trace 1\n";
    for (std::size_t m = 1; m < t.modules.size(); ++m)
      fmt::format_to(std::back_inserter(buf), "module {} {}\n", m, t.modules[m]);
    std::uint32_t tid = 0;
    std::uint16_t mod = 0;
    std::size_t ci = 0;
    for (std::size_t i = 0; i < t.ops.size(); ++i) {
      const TraceOp& op = t.ops[i];
      while (ci < t.clock.size() && t.clock[ci].first < i) ++ci;
      bool tick = ci < t.clock.size() && t.clock[ci].first == i;
      if (op.tid == tid && op.module == mod && op.align_log2 == 0 && !tick) continue;
      fmt::format_to(std::back_inserter(buf), "x {}", i);
      if (tick) fmt::format_to(std::back_inserter(buf), " t={}", t.clock[ci].second);
      if (op.tid != tid) fmt::format_to(std::back_inserter(buf), " tid={}", op.tid);
      if (op.module != mod) fmt::format_to(std::back_inserter(buf), " mod={}", op.module);
      if (op.align_log2 != 0) fmt::format_to(std::back_inserter(buf), " align={}", std::uint64_t{1} << op.align_log2);
      buf += '\n';
      tid = op.tid;
      mod = op.module;
      if (buf.size() > (1 << 16)) flush();
    }
  }
  flush();
}

}  // namespace kmm::scenario

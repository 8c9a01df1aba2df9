// kmm/replay/trace.cpp — the trace reader (classic malloc-lab + the kmm trailer) and writer.
//
// The reader works on the whole file in memory, one line at a time, with hand-written number
// parsing (a 1 M-operation trace reads in well under a second). It keeps the state of each id
// (never allocated, live, freed) and its size so the meaning of each line is checked as it is
// read. Memory follows the input, never the header's claims: ids are kept in a dense table
// only up to a bound set by the file's length (above it, in a hash map), and the operation
// vectors are reserved for at most as many operations as the file has room for lines; so a
// 20-byte file announcing 2^31 ids or 2^26 operations costs kilobytes, not gigabytes.
// A file is read with POSIX read(2) and, when it starts with the gzip magic, inflated with
// zlib's inflate() rather than gzread(): gzread reports a stream cut short as a clean end and
// skips junk after the stream without a word, so a damaged .gz read as a shorter trace.
//
// Depends on: replay/trace.h, fmt, zlib, POSIX (open, read, fstat), the C++ standard library.
// Invariants: a trace that reads without error has every free/realloc of a live id, every
// alloc of a dead one, ids below num_ids; write_trace's text reads back to the same ops.
#include "replay/trace.h"

#include <fmt/format.h>
#include <zlib.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <istream>
#include <iterator>
#include <ostream>
#include <string_view>
#include <unordered_map>

namespace kmm::scenario {
namespace {

constexpr std::size_t kMaxProblems = 20;
constexpr std::uint64_t kMaxIds = std::uint64_t{1} << 31;
constexpr std::size_t kMaxQuoted = 80;  // bytes of a line a message quotes

// `s` in single quotes for a message: at most kMaxQuoted bytes of it (then "..." and its
// length), bytes outside printable ASCII as \xNN, so that a long line or a binary file
// gives one short readable line on a terminal.
std::string quote(std::string_view s) {
  std::string o = "'";
  for (std::size_t i = 0; i < s.size() && i < kMaxQuoted; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '\\')
      o += fmt::format("\\x{:02x}", c);
    else
      o += static_cast<char>(c);
  }
  if (s.size() > kMaxQuoted) return o + fmt::format("...' ({} bytes)", s.size());
  return o + "'";
}

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
        return fail(error,
                    fmt::format("bad header line: expected {} (one number), got {}", header_names[h], quote(line)));
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
      // The trailer before the last operation: the operations were cut short (a trailer line
      // is no comment here; lenient mode cannot skip the operations that are missing).
      if (tok[0] == "#kmm-trace")
        return fail(error, fmt::format("truncated trace: the header says {} operations, the trailer starts after {}",
                                       num_ops, pos));
      if (n == 0 || tok[0][0] == '#') continue;
      std::string msg = op_line(tok, n);
      pos_index_.push_back(msg.empty() ? static_cast<std::int64_t>(t_.ops.size() - 1) : -1);
      if (!msg.empty()) {
        if (!problem(msg, error)) return std::nullopt;
        t_.skipped_ops.push_back(pos);
      }
      ++pos;
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
          if (n > 2) return fail(error, fmt::format("junk after '#kmm-trace 1': {}", quote(tok[2])));
          trailer = true;
          t_.extended = true;
        } else if (tok[0][0] != '#') {
          if (!problem(
                  fmt::format("more operations than the header's {} (or junk after them): {}", num_ops, quote(line)),
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

  // After run() failed: whether lenient mode would have skipped the problem (a bad line).
  bool skippable() const { return skippable_; }

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

  // A problem nothing can be read after (the header, a truncation): stops in either mode.
  std::optional<Trace> fail(std::string* error, const std::string& msg) {
    if (error != nullptr) *error = fmt::format("{}:{}: {}", t_.name, line_no_, msg);
    skippable_ = false;
    return std::nullopt;
  }

  // A problem on the current line: strict stops (false), lenient counts and goes on.
  bool problem(const std::string& msg, std::string* error) {
    if (!opt_.lenient) {
      fail(error, msg);
      skippable_ = true;
      return false;
    }
    ++t_.skipped;
    if (t_.problems.size() < kMaxProblems) t_.problems.push_back(fmt::format("{}:{}: {}", t_.name, line_no_, msg));
    return true;
  }

  std::string id_arg(std::string_view s, std::uint32_t* id) {
    std::uint64_t v;
    if (!number(s, &v)) return fmt::format("bad id {} (want a number)", quote(s));
    if (v >= t_.num_ids) return fmt::format("id {} is not below the header's number of ids {}", v, t_.num_ids);
    *id = static_cast<std::uint32_t>(v);
    return {};
  }

  std::string size_arg(std::string_view s, std::uint64_t* size) {
    if (!number(s, size)) return fmt::format("bad size {} (want a number of bytes)", quote(s));
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
      return fmt::format("unknown operation {} (want a, f or r)", quote(k));
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
      std::vector<std::string_view> seen;
      for (std::size_t i = 2; i < n; ++i) {
        std::size_t eq = tok[i].find('=');
        std::uint64_t v;
        if (eq == std::string_view::npos || !number(tok[i].substr(eq + 1), &v))
          return fmt::format("bad attribute {} (want key=number)", quote(tok[i]));
        std::string_view key = tok[i].substr(0, eq);
        // Two values for one key: which was meant is not known.
        if (std::find(seen.begin(), seen.end(), key) != seen.end())
          return fmt::format("{} given twice on one x line", quote(key));
        seen.push_back(key);
        if (key == "tid") {
          if (v > 0xffffffffu) return fmt::format("bad tid {}", v);
          a.tid = static_cast<std::int64_t>(v);
        } else if (key == "mod") {
          if (v >= t_.modules.size())
            return fmt::format("module {} is not declared (declare it with 'module {} NAME' first)", v, v);
          a.mod = static_cast<std::int64_t>(v);
        } else if (key == "align") {
          // The default alignment (8) and less are never written: align= says more than it.
          if (v <= 8 || (v & (v - 1)) != 0 || v > (std::uint64_t{1} << 30))
            return fmt::format("bad alignment {} (a power of two above 8, at most 2^30)", v);
          const std::int64_t i_op = a.pos < pos_index_.size() ? pos_index_[a.pos] : -1;
          if (i_op >= 0 && t_.ops[static_cast<std::size_t>(i_op)].kind == OpKind::kFree)
            return fmt::format("align= on operation {}, a free (only an allocation has an alignment)", a.pos);
          int l = 0;
          while ((std::uint64_t{1} << l) < v) ++l;
          a.align_log2 = l;
        } else if (key == "t") {
          if (v > (std::uint64_t{1} << 62)) return fmt::format("bad time {}", v);
          if (static_cast<std::int64_t>(v) < last_t_)
            return fmt::format("time {} is before the previous {} (t= never goes back)", v, last_t_);
          a.t = static_cast<std::int64_t>(v);
        } else if (key != "pid") {
          // pid is informative; other keys are an error so that typos are seen.
          return fmt::format("unknown attribute {} (tid, mod, align, t, pid)", quote(key));
        }
      }
      if (a.t >= 0) last_t_ = a.t;
      attrs->push_back(a);
      return {};
    }
    return fmt::format("unknown trailer line {} (module, x or #)", quote(tok[0]));
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
  std::int64_t last_t_ = -1;  // the last x line's t=, which the next may not go below
  bool skippable_ = false;    // the error stopped at a line lenient mode would skip
};

// Closes what it holds when the scope ends (every way out of read_text).
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};
struct InflateEnder {
  z_stream* z;
  ~InflateEnder() { inflateEnd(z); }
};

// read(2) that goes on after a signal: bytes read, 0 at the end, -1 on an error.
ssize_t read_some(int fd, void* buf, std::size_t len) {
  for (;;) {
    ssize_t n = ::read(fd, buf, len);
    if (n >= 0 || errno != EINTR) return n;
  }
}

// The text of the file at `path`: its bytes, or, when it starts with the gzip magic, one gzip
// stream inflated. Bounded by 64 times the file's size, and never less than
// opt.min_text_limit (256 MiB): a 1.5 MB file that inflates to 1.5 GB is refused at the
// bound, before the host's memory goes (memory follows the input, as the reader's does).
bool read_text(const std::string& path, const TraceReadOptions& opt, std::string* text, std::string* error) {
  auto refuse = [&](const std::string& why) {
    if (error != nullptr) *error = path + ": " + why;
    return false;
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return refuse(fmt::format("cannot open: {}", std::strerror(errno)));
  FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return refuse(fmt::format("cannot open: {}", std::strerror(errno)));
  if (S_ISDIR(st.st_mode)) return refuse("a directory, not a trace file");
  // /dev/zero would be read until the bound, and then called a gzip bomb.
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return refuse("a device, not a trace file");
  const bool regular = S_ISREG(st.st_mode);  // else a pipe (kmm replay <(zcat ...)): no size
  std::uint64_t limit = opt.min_text_limit;
  if (regular && st.st_size > 0 && std::uint64_t(st.st_size) * 64 > limit) limit = std::uint64_t(st.st_size) * 64;
  auto read_error = [&] { return refuse(fmt::format("read error: {}", std::strerror(errno))); };

  static thread_local unsigned char in[1 << 16];
  std::size_t have = 0;
  while (have < 2) {  // enough to see the magic (a pipe may give one byte at a time)
    ssize_t n = read_some(fd, in + have, sizeof in - have);
    if (n < 0) return read_error();
    if (n == 0) break;
    have += static_cast<std::size_t>(n);
  }
  if (have < 2 || in[0] != 0x1f || in[1] != 0x8b) {
    // Plain text: the file's size bounds it, except on a pipe.
    text->assign(reinterpret_cast<const char*>(in), have);
    for (;;) {
      if (text->size() > limit)
        return refuse(
            fmt::format("more than {} bytes of text from something that is not a regular file: not read", limit));
      ssize_t n = read_some(fd, in, sizeof in);
      if (n < 0) return read_error();
      if (n == 0) return true;
      text->append(reinterpret_cast<const char*>(in), static_cast<std::size_t>(n));
    }
  }
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return refuse("cannot start zlib");  // 16: gzip only
  InflateEnder ender{&z};
  z.next_in = in;
  z.avail_in = static_cast<uInt>(have);
  bool at_end = false;  // the file has no more bytes than those in `in`
  static thread_local char out[1 << 16];
  for (;;) {
    if (z.avail_in == 0 && !at_end) {
      ssize_t n = read_some(fd, in, sizeof in);
      if (n < 0) return read_error();
      at_end = n == 0;
      z.next_in = in;
      z.avail_in = static_cast<uInt>(n);
    }
    z.next_out = reinterpret_cast<Bytef*>(out);
    z.avail_out = sizeof out;
    const int rc = inflate(&z, Z_NO_FLUSH);
    text->append(out, sizeof out - z.avail_out);
    if (text->size() > limit)
      return refuse(
          fmt::format("its text is more than {} bytes, over 64 times the file's size (a gzip bomb?): not read", limit));
    if (rc == Z_STREAM_END) break;
    // No progress with no input left: the stream stops before its end (and its CRC).
    if (rc == Z_BUF_ERROR && at_end && z.avail_in == 0) return refuse("the gzip stream is truncated");
    if (rc != Z_OK && rc != Z_BUF_ERROR)
      return refuse(fmt::format("the gzip data is damaged ({})", z.msg != nullptr ? z.msg : zError(rc)));
  }
  // After the stream: nothing. zlib would read a second stream as more text, and skip junk.
  std::uint64_t extra = z.avail_in;
  unsigned char first[2] = {0, 0};
  std::size_t got_first = 0;
  for (uInt i = 0; i < z.avail_in && got_first < 2; ++i) first[got_first++] = z.next_in[i];
  for (;;) {
    ssize_t n = read_some(fd, in, sizeof in);
    if (n < 0) return read_error();
    if (n == 0) break;
    for (ssize_t i = 0; i < n && got_first < 2; ++i) first[got_first++] = in[i];
    extra += static_cast<std::uint64_t>(n);
  }
  if (extra == 0) return true;
  if (got_first == 2 && first[0] == 0x1f && first[1] == 0x8b)
    return refuse("a second gzip stream follows the first (a trace is one stream: concatenated files are not read)");
  return refuse(fmt::format("{} bytes of junk after the gzip stream", extra));
}

}  // namespace

std::optional<Trace> read_trace(std::istream& in, const std::string& name, const TraceReadOptions& opt,
                                std::string* error, bool* skippable) {
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  Reader reader(text, name, opt);
  std::optional<Trace> t = reader.run(error);
  if (skippable != nullptr) *skippable = !t && reader.skippable();
  return t;
}

std::optional<Trace> read_trace_file(const std::string& path, const TraceReadOptions& opt, std::string* error,
                                     bool* skippable) {
  if (skippable != nullptr) *skippable = false;
  std::string text;
  if (!read_text(path, opt, &text, error)) return std::nullopt;
  Reader reader(text, path, opt);
  std::optional<Trace> t = reader.run(error);
  if (skippable != nullptr) *skippable = !t && reader.skippable();
  return t;
}

std::uint64_t file_op_number(const Trace& t, std::size_t index) {
  // Each operation line skipped at or before the position found so far moves it one on.
  std::uint64_t pos = index;
  for (std::uint64_t s : t.skipped_ops) {
    if (s > pos) break;
    ++pos;
  }
  return pos;
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

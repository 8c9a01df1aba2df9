// kmm/replay/convert.cpp — raw recordings (replay/raw_event.h) into traces (replay/trace.h).
//
// Conversion of a raw file into a trace: each live pointer maps to an id; ids are reused
// after their block is freed (the lowest free id first), so num_ids is the peak number of
// live blocks, not the number of allocations. Oddities of real programs are absorbed and
// counted, never fatal:
//   - free of a pointer the recording never saw allocated (a forked child freeing its
//     parent's block, a block from before the recorder started): dropped;
//   - realloc of such a pointer: recorded as an allocation of the new size;
//   - an allocation returning a pointer that is still live (its free went around the
//     recorder): the old id is freed first;
//   - failed calls (null results) are dropped.
// A raw file is input like any other (a crashed recorder, another user's planted file): what
// the trace reader would refuse is mended and counted, never written — a size beyond
// kMaxTraceSize drops its event, an alignment beyond 2^30 or a module never declared is
// cleared, a module name is made one printable word, the clock is kept increasing and within
// 2^62, and a partial record at the end is counted. A raw file owned by a user other than
// the reader or root is not read at all (named in the summary), and outputs are written only
// as regular files, never through a symbolic link: OUTPUT.PID names are chosen by the
// recording, in a directory (/tmp) where others may plant links.
//
// Depends on: replay/trace.h, replay/raw_event.h, fmt, zlib, POSIX (opendir).
// Invariants: every op of a converted trace names an id below num_ids, freed ids are live.
#include "replay/convert.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <istream>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include "replay/raw_event.h"
#include "replay/trace.h"

namespace kmm::scenario {
namespace {

// Opens an output for writing, emptied: never through a symbolic link (O_NOFOLLOW: a link
// planted in /tmp under an output's name had the victim's file truncated and overwritten),
// never blocking on a fifo, and only a regular file (not a device, a fifo, a socket). -1,
// with *error set, when refused.
int open_output(const std::string& path, std::string* error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0666);
  if (fd < 0) {
    // ENXIO: a fifo without a reader, or a socket.
    *error = errno == ELOOP   ? path + ": a symbolic link: not written through"
             : errno == ENXIO ? path + ": not a regular file: not written"
                              : path + ": cannot write";
    return -1;
  }
  struct stat sb;
  if (::fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    ::close(fd);
    *error = path + ": not a regular file: not written";
    return -1;
  }
  if (::ftruncate(fd, 0) != 0) {
    *error = path + ": cannot write: " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

bool write_file(const std::string& path, const std::string& text, std::string* error) {
  const int fd = open_output(path, error);
  if (fd < 0) return false;
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
    gzFile f = gzdopen(fd, "wb9");  // owns fd from here, closed by gzclose
    if (f == nullptr) {
      ::close(fd);
      *error = path + ": cannot write";
      return false;
    }
    bool ok =
        text.empty() || gzwrite(f, text.data(), static_cast<unsigned>(text.size())) == static_cast<int>(text.size());
    ok = gzclose(f) == Z_OK && ok;
    if (!ok) *error = path + ": write error";
    return ok;
  }
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t w = ::write(fd, text.data() + done, text.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += static_cast<std::size_t>(w);
  }
  const bool ok = ::close(fd) == 0 && done == text.size();
  if (!ok) *error = path + ": write error";
  return ok;
}

struct ConvertStats {
  std::uint64_t events = 0, unknown_frees = 0, unknown_reallocs = 0, implicit_frees = 0, failed = 0;
  std::uint64_t mended = 0;          // events with a field the reader would refuse (cleared or dropped)
  std::uint64_t trailing_bytes = 0;  // a partial record at the end of the file
  bool forked = false;
  bool refused = false;  // not a regular file (a symbolic link, a fifo, a device): not read
  bool foreign = false;  // owned by a user other than the reader or root: not read
  uid_t owner = 0;
};

constexpr unsigned kMaxAlignLog2 = 30;  // the reader's bound (trace.cpp: align <= 2^30)
constexpr std::uint64_t kMaxClockNs = std::uint64_t{1} << 62;

// One raw file's conversion: the live pointers and their ids, the trace so far.
class RawConverter {
 public:
  explicit RawConverter(ConvertStats* st) : st_(st) { t_.modules.push_back("?"); }

  void event(const kmm_raw_event& raw, std::istream& in) {
    ++st_->events;
    kmm_raw_event e = raw;
    // (A call that failed is dropped as such below, whatever size it asked for.)
    const bool failed_call = (e.op == KMM_RAW_ALLOC && e.ptr == 0) || (e.op == KMM_RAW_REALLOC && e.result == 0);
    if ((e.op == KMM_RAW_ALLOC || e.op == KMM_RAW_REALLOC) && !failed_call) {
      if (e.size > kMaxTraceSize) {
        ++st_->mended;  // no program asked for a terabyte and got it: a damaged record
        return;
      }
      bool bad_align = e.align_log2 > kMaxAlignLog2, bad_module = e.module >= t_.modules.size();
      if (bad_align) e.align_log2 = 0;
      if (bad_module) e.module = 0;
      if (bad_align || bad_module) ++st_->mended;
    }
    switch (e.op) {
      case KMM_RAW_MODULE:
        module(e, in);
        break;
      case KMM_RAW_FORK:
        st_->forked = true;
        break;
      case KMM_RAW_ALLOC:
        alloc(e);
        break;
      case KMM_RAW_FREE: {
        auto it = live_.find(e.ptr);
        if (it == live_.end()) {
          ++st_->unknown_frees;
          break;
        }
        free_live(it, e);
        break;
      }
      case KMM_RAW_REALLOC:
        realloc(e);
        break;
      default:
        ++st_->mended;  // an unknown record (damage, or a newer recorder): skipped, and said
        break;
    }
  }

  Trace finish() {
    t_.num_ids = next_id_;
    // The main thread's id is the pid: make thread ids small and stable (1 = the first).
    std::unordered_map<std::uint32_t, std::uint32_t> tids;
    for (TraceOp& op : t_.ops) {
      auto [it, added] = tids.emplace(op.tid, static_cast<std::uint32_t>(tids.size() + 1));
      op.tid = it->second;
    }
    return std::move(t_);
  }

 private:
  using Live = std::unordered_map<std::uint64_t, std::uint32_t>;

  std::uint32_t new_id() {
    if (free_ids_.empty()) return next_id_++;
    std::pop_heap(free_ids_.begin(), free_ids_.end(), std::greater<>());
    std::uint32_t id = free_ids_.back();
    free_ids_.pop_back();
    return id;
  }

  void push(OpKind k, std::uint32_t id, std::uint64_t size, const kmm_raw_event& e) {
    TraceOp op{};
    op.kind = k;
    op.id = id;
    op.size = size;
    op.tid = e.tid;
    op.module = e.module;
    op.align_log2 = k == OpKind::kFree ? 0 : e.align_log2;
    if (!have_t0_) {
      t0_ = e.time_ns;
      have_t0_ = true;
    }
    if (t_.ops.size() % 1024 == 0) {
      // Increasing and within the reader's bound, whatever the recorded clock did.
      std::uint64_t ns = std::min(e.time_ns - std::min(t0_, e.time_ns), kMaxClockNs);
      if (!t_.clock.empty()) ns = std::max(ns, t_.clock.back().second);
      t_.clock.emplace_back(t_.ops.size(), ns);
    }
    t_.ops.push_back(op);
  }

  // A free of the live block `it`: the op, its id back to the heap, the pointer forgotten.
  void free_live(Live::iterator it, const kmm_raw_event& e) {
    push(OpKind::kFree, it->second, 0, e);
    free_ids_.push_back(it->second);
    std::push_heap(free_ids_.begin(), free_ids_.end(), std::greater<>());
    live_.erase(it);
  }

  // A block at `ptr` that is still live (its free went around the recorder) is freed first.
  void free_clash(std::uint64_t ptr, const kmm_raw_event& e) {
    auto clash = live_.find(ptr);
    if (clash == live_.end()) return;
    ++st_->implicit_frees;
    free_live(clash, e);
  }

  // The name follows in ceil(size / 40) records' room: all of it is skipped, whatever its
  // length, and its first 4096 bytes kept (the skip was once reckoned from the name cut to
  // 4096 bytes, and the rest of a longer name was read as records).
  void module(const kmm_raw_event& e, std::istream& in) {
    constexpr std::uint64_t kMaxName = 4096;
    const std::uint64_t room = (e.size + sizeof e - 1) / sizeof e * sizeof e;
    std::string name(static_cast<std::size_t>(std::min(e.size, kMaxName)), '\0');
    std::string raw(static_cast<std::size_t>(std::min(room, (kMaxName + sizeof e - 1) / sizeof e * sizeof e)), '\0');
    in.read(raw.data(), static_cast<std::streamsize>(raw.size()));
    if (room > raw.size())
      in.ignore(static_cast<std::streamsize>(std::min<std::uint64_t>(room - raw.size(), PTRDIFF_MAX)));
    name.assign(raw.data(), name.size());
    // One printable word, as the reader's `module INDEX NAME` wants.
    for (char& c : name)
      if (c <= ' ' || c >= 0x7f) c = '_';
    if (name.empty()) name = "_";
    if (t_.modules.size() <= e.module) t_.modules.resize(e.module + 1u, "?");
    t_.modules[e.module] = name;
  }

  void alloc(const kmm_raw_event& e) {
    if (e.ptr == 0) {
      ++st_->failed;
      return;
    }
    free_clash(e.ptr, e);
    std::uint32_t id = new_id();
    live_.emplace(e.ptr, id);
    push(OpKind::kAlloc, id, e.size, e);
  }

  void realloc(const kmm_raw_event& e) {
    auto it = live_.find(e.ptr);
    if (e.result == 0) {
      if (e.size == 0 && it != live_.end())  // realloc(p, 0) freed p
        free_live(it, e);
      else
        ++st_->failed;
      return;
    }
    if (it == live_.end()) {
      ++st_->unknown_reallocs;
      free_clash(e.result, e);
      std::uint32_t id = new_id();
      live_.emplace(e.result, id);
      push(OpKind::kAlloc, id, e.size, e);
      return;
    }
    std::uint32_t id = it->second;
    live_.erase(it);
    free_clash(e.result, e);
    live_.emplace(e.result, id);
    push(OpKind::kRealloc, id, e.size, e);
  }

  ConvertStats* st_;
  Trace t_;
  Live live_;
  std::vector<std::uint32_t> free_ids_;  // a min-heap of reusable ids
  std::uint32_t next_id_ = 0;
  std::uint64_t t0_ = 0;
  bool have_t0_ = false;
};

// A number in the exact form the recorder writes: decimal digits, no sign, no leading zero,
// within int. sscanf("%d") took raw.77.01 for raw.77.1 (two files, one output name).
bool decimal(std::string_view s, int* out) {
  if (s.empty() || s.size() > 10 || (s.size() > 1 && s[0] == '0')) return false;
  long long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v > INT_MAX) return false;
  *out = static_cast<int>(v);
  return true;
}

// raw.PID.SEQ exactly, nothing before or after.
bool raw_name(std::string_view name, int* pid, int* seq) {
  if (name.substr(0, 4) != "raw.") return false;
  name.remove_prefix(4);
  const std::size_t dot = name.find('.');
  return dot != std::string_view::npos && decimal(name.substr(0, dot), pid) && decimal(name.substr(dot + 1), seq);
}

Trace convert_raw(const std::string& path, ConvertStats* st) {
  // The recording directory is writable by every user (daemons drop privileges): a file in
  // it is read only if it is a regular file, not through a symbolic link and not a fifo or a
  // device (a link to /dev/zero kept the conversion reading forever), and only if the reader
  // or root owns it (another user's planted raw.PID.SEQ chose output names beside OUTPUT).
  // Read through the descriptor checked, not the name again.
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat sb;
  if (fd < 0 || ::fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    if (fd >= 0) ::close(fd);
    st->refused = true;
    return Trace{};
  }
  if (sb.st_uid != ::geteuid() && sb.st_uid != 0) {
    ::close(fd);
    st->foreign = true;
    st->owner = sb.st_uid;
    return Trace{};
  }
  std::ifstream in("/proc/self/fd/" + std::to_string(fd), std::ios::binary);
  ::close(fd);  // the stream holds its own open file description
  RawConverter conv(st);
  kmm_raw_event e;
  while (in.read(reinterpret_cast<char*>(&e), sizeof e)) conv.event(e, in);
  st->trailing_bytes = static_cast<std::uint64_t>(in.gcount());
  return conv.finish();
}

}  // namespace

std::vector<std::string> convert_raw_dir(const std::string& dir, const std::string& output, int first_pid,
                                         std::string* error, std::string* summary) {
  struct Raw {
    int pid, seq;
    std::string path;
  };
  std::vector<Raw> raws;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    *error = dir + ": cannot open the recording directory";
    return {};
  }
  while (dirent* ent = readdir(d)) {
    int pid = 0, seq = 0;
    if (raw_name(ent->d_name, &pid, &seq)) raws.push_back({pid, seq, dir + "/" + ent->d_name});
  }
  closedir(d);
  // The main trace is the last image of the first process: the program named on the
  // command line, after any wrappers (a shell script, a pyenv shim) exec'd it.
  std::sort(raws.begin(), raws.end(), [&](const Raw& a, const Raw& b) {
    bool am = a.pid == first_pid, bm = b.pid == first_pid;
    if (am != bm) return am;
    if (am) return a.seq > b.seq;
    return a.pid != b.pid ? a.pid < b.pid : a.seq < b.seq;
  });
  std::size_t shown = 0, empty = 0;
  bool main_written = false;  // the main trace goes to the first file converted
  std::vector<std::string> written;
  bool gz = output.size() > 3 && output.compare(output.size() - 3, 3, ".gz") == 0;
  std::string stem = gz ? output.substr(0, output.size() - 3) : output;
  for (std::size_t i = 0; i < raws.size(); ++i) {
    const Raw& r = raws[i];
    ConvertStats st;
    Trace t = convert_raw(r.path, &st);
    if (st.refused) {
      *summary += fmt::format("{}: not a regular file (a symbolic link, a fifo, a device?): not read\n", r.path);
      continue;
    }
    if (st.foreign) {
      *summary += fmt::format(
          "kmm trace: warning: {}: owned by uid {}, neither you nor root: not read (planted by another user, or "
          "written by a program that switched to that user: docs/TRACES.md)\n",
          r.path, st.owner);
      continue;
    }
    // The first file read, not raws[0]: a refused file (a link planted first in order) took
    // the main name with it, and OUTPUT was never written.
    const bool main = !main_written;
    main_written = true;
    std::string name =
        main ? output
             : stem + "." + std::to_string(r.pid) + (r.seq != 0 ? "." + std::to_string(r.seq) : "") + (gz ? ".gz" : "");
    if (!main && t.ops.empty()) {
      ++empty;  // a wrapper image that allocated nothing before its exec
      continue;
    }
    std::ostringstream text;
    write_trace(text, t);
    if (st.unknown_frees + st.unknown_reallocs + st.implicit_frees != 0 || st.forked) {
      // Comments after the trailer: every reader skips them.
      if (!t.extended && t.modules.size() <= 1 && t.clock.empty()) text << "#kmm-trace 1\n";
      text << fmt::format(
          "# {} frees and {} reallocs of blocks the recording never saw allocated were {}; {} implicit frees\n",
          st.unknown_frees, st.unknown_reallocs, st.forked ? "inherited from the parent (fork)" : "dropped",
          st.implicit_frees);
    }
    if (!write_file(name, text.str(), error)) return {};
    written.push_back(name);
    if (++shown > 8) continue;
    *summary += fmt::format(
        "{}: {} ops ({} a, {} f, {} r) from pid {}{}, {} ids, peak live {} bytes{}\n", name, t.ops.size(),
        std::count_if(t.ops.begin(), t.ops.end(), [](const TraceOp& o) { return o.kind == OpKind::kAlloc; }),
        std::count_if(t.ops.begin(), t.ops.end(), [](const TraceOp& o) { return o.kind == OpKind::kFree; }),
        std::count_if(t.ops.begin(), t.ops.end(), [](const TraceOp& o) { return o.kind == OpKind::kRealloc; }), r.pid,
        r.seq != 0 ? fmt::format(" (image {})", r.seq) : "", t.num_ids,
        [&] {
          std::uint64_t live = 0, peak = 0;
          std::vector<std::uint64_t> sz(t.num_ids, 0);
          for (const TraceOp& o : t.ops) {
            live -= sz[o.id];
            sz[o.id] = o.kind == OpKind::kFree ? 0 : o.size;
            live += sz[o.id];
            peak = std::max(peak, live);
          }
          return peak;
        }(),
        st.unknown_frees != 0 ? fmt::format(", {} unknown frees dropped", st.unknown_frees) : "");
    if (st.mended != 0 || st.trailing_bytes != 0)
      *summary += fmt::format("{}: {} damaged records mended or dropped, {} bytes of a partial record at the end\n",
                              name, st.mended, st.trailing_bytes);
  }
  if (shown > 8) *summary += fmt::format("... and {} more trace files\n", shown - 8);
  if (empty != 0) *summary += fmt::format("({} process images allocated nothing: no file)\n", empty);
  return written;
}

}  // namespace kmm::scenario

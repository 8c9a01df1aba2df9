// kmm/shim/proc_maps.cpp — /proc text read and parsed without allocating (proc_maps.h).
//
// Depends on: proc_maps.h, Linux system calls. Invariants: no allocation, no lock, no state;
// every parse stays inside [text, text + len) whatever the text holds.
#include "shim/proc_maps.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace kmm::shim {
namespace {

std::uintptr_t parse_hex(const char*& p, const char* end) {
  std::uintptr_t v = 0;
  for (; p < end; ++p) {
    char c = *p;
    unsigned d;
    if (c >= '0' && c <= '9')
      d = static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = static_cast<unsigned>(c - 'a' + 10);
    else
      break;
    v = v * 16 + d;
  }
  return v;
}

bool starts(const char* s, const char* end, const char* prefix) {
  for (; *prefix != '\0'; ++s, ++prefix)
    if (s >= end || *s != *prefix) return false;
  return true;
}

const char* line_end(const char* p, const char* end) {
  while (p < end && *p != '\n') ++p;
  return p;
}

}  // namespace

long read_proc_text(const char* path, char* buf, std::size_t cap) {
  int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC));
  if (fd < 0) return -1;
  std::size_t len = 0;
  for (;;) {
    if (len == cap) {  // full: the file may go on, and a part is not the whole
      syscall(SYS_close, fd);
      return -1;
    }
    long got = syscall(SYS_read, fd, buf + len, cap - len);
    if (got < 0) {
      syscall(SYS_close, fd);
      return -1;
    }
    if (got == 0) break;
    len += static_cast<std::size_t>(got);
  }
  syscall(SYS_close, fd);
  return static_cast<long>(len);
}

bool parse_maps(const char* text, std::size_t len, MapRange* out, unsigned cap, unsigned* count) {
  unsigned n = 0;
  const char* p = text;
  const char* end = text + len;
  while (p < end) {
    const char* eol = line_end(p, end);
    // lo-hi perms offset dev inode [path]
    const char* q = p;
    std::uintptr_t lo = parse_hex(q, eol);
    if (q < eol && *q == '-') ++q;
    std::uintptr_t hi = parse_hex(q, eol);
    if (q < eol) ++q;
    char perms[4] = {'-', '-', '-', '-'};
    for (int i = 0; i < 4 && q < eol; ++i) perms[i] = *q++;
    for (int field = 0; field < 3; ++field) {  // offset, dev, inode
      while (q < eol && *q == ' ') ++q;
      while (q < eol && *q != ' ') ++q;
    }
    while (q < eol && *q == ' ') ++q;
    const char* path = q;
    bool anon = path == eol || *path == '[';
    bool shared = perms[3] == 's';
    // Anonymous memory is read whatever else its permissions say: a program may seal a page
    // of pointers read-only (mprotect PROT_READ) or keep them as a JIT's immediates (r-x).
    // A private file mapping only when writable: read-only ones are the file's contents
    // (text, rodata, the loader's RELRO, a data file mapped to be read).
    bool scan = perms[0] == 'r' && (perms[1] == 'w' || anon);
    if (perms[0] == 'r' && !anon) {
      bool dev_zero = starts(path, eol, "/dev/zero");
      bool shm = starts(path, eol, "/memfd:") || starts(path, eol, "/SYSV") || starts(path, eol, "/dev/shm/") ||
                 starts(path, eol, "/anon_hugepage") || dev_zero;
      if (shm) scan = true;                                  // shared anonymous memory, sealed or not
      if (starts(path, eol, "/dev/") && !shm) scan = false;  // device memory: reading may have effects
      if (shared && !shm) scan = false;                      // a file shared with other processes
    }
    if (scan && anon && (starts(path, eol, "[vvar") || starts(path, eol, "[vsyscall") || starts(path, eol, "[vdso")))
      scan = false;  // the kernel's pages: no pointer of the program's
    if (n == cap) return false;
    std::uint32_t flags = scan ? kMapScan : 0;
    if (perms[0] != 'r' && perms[1] != 'w' && perms[2] != 'x') flags |= kMapNoAccess;
    if (starts(path, eol, "[stack")) flags |= kMapStackVma;
    if (shared) flags |= kMapShared;
    out[n++] = MapRange{lo, hi, flags};
    p = eol + 1;
  }
  *count = n;
  return true;
}

const MapRange* map_containing(const MapRange* maps, unsigned n, std::uintptr_t a) {
  unsigned lo = 0, hi = n;
  while (lo < hi) {
    unsigned mid = (lo + hi) / 2;
    if (a < maps[mid].lo)
      hi = mid;
    else if (a >= maps[mid].hi)
      lo = mid + 1;
    else
      return &maps[mid];
  }
  return nullptr;
}

bool maps_cover(const MapRange* before, unsigned nb, const MapRange* after, unsigned na) {
  for (unsigned i = 0; i < nb; ++i) {
    const MapRange& b = before[i];
    if ((b.flags & kMapScan) == 0) continue;
    for (std::uintptr_t at = b.lo; at < b.hi;) {
      const MapRange* m = map_containing(after, na, at);
      if (m == nullptr || (m->flags & kMapScan) == 0) return false;
      at = m->hi;
    }
  }
  return true;
}

bool smaps_wipes_writable(const char* text, std::size_t len) {
  const char* p = text;
  const char* end = text + len;
  bool writable = false;  // of the mapping whose lines these are
  while (p < end) {
    const char* eol = line_end(p, end);
    if (starts(p, eol, "VmFlags:")) {
      for (const char* q = p + 8; q + 2 <= eol; ++q)
        if (q[-1] == ' ' && q[0] == 'w' && q[1] == 'f' && (q + 2 == eol || q[2] == ' ') && writable) return true;
    } else if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')) {
      const char* q = p;
      while (q < eol && *q != ' ') ++q;  // lo-hi
      writable = q + 2 < eol && q[1] == 'r' && q[2] == 'w';
    }
    p = eol + 1;
  }
  return false;
}

bool status_seccomp_filtered(const char* text, std::size_t len) {
  const char* p = text;
  const char* end = text + len;
  while (p < end) {
    const char* eol = line_end(p, end);
    if (starts(p, eol, "Seccomp:")) {
      const char* q = p + 8;
      while (q < eol && (*q == ' ' || *q == '\t')) ++q;
      return q == eol || *q != '0';
    }
    p = eol + 1;
  }
  return false;
}

}  // namespace kmm::shim

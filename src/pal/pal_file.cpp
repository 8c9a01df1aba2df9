// kmm/pal/pal_file.cpp — the file backend (persistent RAM): open/validate/lock/map a heap
// file, the A/B superblock, flush points. See pal_file.h for the layout and the rules.
#include "pal/pal_file.h"

#if !KMM_FREESTANDING
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "base/spinlock.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

namespace kmm {

static_assert(sizeof(Superblock) <= kSuperblockSlotBytes, "a superblock must fit its slot");

std::uint64_t fnv1a64(const void* p, std::size_t n, std::uint64_t h) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) {
    h ^= b[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

std::uint64_t superblock_checksum(const Superblock& sb) {
  return fnv1a64(&sb, offsetof(Superblock, checksum));
}

bool superblock_valid(const Superblock& sb) {
  return std::memcmp(sb.magic, kHeapMagic, sizeof kHeapMagic) == 0 && sb.checksum == superblock_checksum(sb);
}

namespace {

// The directory that holds path, fsynced: a file just created is in it after a power loss.
void sync_directory(const char* path) {
  char dir[4096];
  std::snprintf(dir, sizeof dir, "%s", path);
  char* slash = std::strrchr(dir, '/');
  if (slash == nullptr)
    std::snprintf(dir, sizeof dir, ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
  int fd = ::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// kmm's "formatting" superblock: a file that holds it is kmm's own, unfinished, and may be
// formatted again. map_addr is 0 until reserve() has placed the mapping.
Superblock formatting_superblock(std::uint64_t ram_bytes, std::uint64_t map_addr) {
  Superblock sb{};
  std::memcpy(sb.magic, kHeapMagic, sizeof kHeapMagic);
  sb.version = kHeapVersion;
  sb.header_bytes = kHeapHeaderBytes;
  sb.seq = 0;
  sb.ram_bytes = ram_bytes;
  sb.map_addr = map_addr;
  sb.state = static_cast<std::uint32_t>(HeapState::kFormatting);
  sb.ptr_bytes = sizeof(void*);
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  sb.created_ns = static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
  return sb;
}

}  // namespace

bool FilePlatform::fail(const char* what) {
  std::snprintf(errbuf_, sizeof errbuf_, "%s: %s", path_, what);
  error_ = errbuf_;
  if (fd_ >= 0) {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
    fd_ = -1;
  }
  return false;
}

namespace {
// Copies the file's data into [dst, dst + len), a fresh anonymous mapping (read_only): only
// its data extents (SEEK_DATA), so the holes of a sparse heap stay untouched zero pages. False
// on a read error.
bool copy_file_data(int fd, char* dst, std::size_t len) {
  off_t at = 0;
  const auto end = static_cast<off_t>(len);
  while (at < end) {
    off_t data = ::lseek(fd, at, SEEK_DATA);
    if (data < 0) return errno == ENXIO;  // no data after `at` (ENXIO): the rest reads as zero
    if (data >= end) return true;
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0 || hole > end) hole = end;
    for (off_t o = data; o < hole;) {
      ssize_t n = ::pread(fd, dst + o, static_cast<std::size_t>(hole - o), o);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return false;
      if (n == 0) return true;  // the file was cut meanwhile: what it held reads as zero
      o += n;
    }
    at = hole;
  }
  return true;
}
}  // namespace

bool FilePlatform::map_at(std::uint64_t addr) {
  std::size_t len = static_cast<std::size_t>(kHeapHeaderBytes + ram_bytes_);
  void* want = reinterpret_cast<void*>(static_cast<std::uintptr_t>(addr - kHeapHeaderBytes));
  // Read-only (fsck) of a file someone else can change works on a copy taken now, not on a
  // private mapping: the pages of one not yet written still show the file as it is later, so
  // its owner (another user, when root checks a user's heap) could cut it under the check
  // (SIGBUS: 27 of 400 runs in a review) or change what was validated before the rebuild
  // reads it again. The user's own file is mapped (a copy costs its data's size in memory):
  // whoever changes it under the check is the user, and a kmm process attached to it holds
  // the lock fsck's open waits for.
  int flags = (copy_in_ ? MAP_PRIVATE | MAP_ANONYMOUS : read_only_ ? MAP_PRIVATE : MAP_SHARED) | MAP_FIXED_NOREPLACE;
  void* got = ::mmap(want, len, PROT_READ | PROT_WRITE, flags, copy_in_ ? -1 : fd_, 0);
  if (got == MAP_FAILED || got != want) {
    if (got != MAP_FAILED) ::munmap(got, len);  // an old kernel took the flag as a hint
    char what[160];
    std::snprintf(what, sizeof what,
                  "cannot map the heap at its fixed address 0x%llx (%s): that address is taken in this process",
                  static_cast<unsigned long long>(addr), got == MAP_FAILED ? std::strerror(errno) : "placed elsewhere");
    return fail(what);
  }
  if (copy_in_ && !copy_file_data(fd_, static_cast<char*>(got), len)) {
    int e = errno;
    ::munmap(got, len);
    return fail(std::strerror(e));
  }
  header_ = static_cast<char*>(got);
  ram_ = header_ + kHeapHeaderBytes;
  return true;
}

FileOpenResult FilePlatform::open(const char* path, std::uint64_t ram_bytes, bool read_only) {
  if (fd_ >= 0) close(true);
  std::snprintf(path_, sizeof path_, "%s", path);
  read_only_ = read_only;
  handed_out_ = false;
  header_ = ram_ = nullptr;
  valid_slots_ = 0;
  current_slot_ = 0;
  std::memset(&sb_, 0, sizeof sb_);
  // A heap is its creator's alone: made 0600 (it holds the program's data, and host addresses),
  // never through a symbolic link (a link planted to a file of the user's would be formatted
  // over it), and an existing one is taken only when this user owns it and no one else may
  // write it (another user's writes would reach a live heap's metadata).
  fd_ = read_only ? -1 : ::open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd_ >= 0) {
    sync_directory(path);  // the new entry survives a power loss with the heap's first flush
  } else if (read_only || errno == EEXIST) {
    fd_ = ::open(path, (read_only ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_CLOEXEC);
  }
  if (fd_ < 0) {
    fail(errno == ELOOP ? "a symbolic link (a heap file is never opened through one)" : std::strerror(errno));
    return FileOpenResult::kError;
  }
  owner_pid_ = ::getpid();
  if (::flock(fd_, (read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    fail(errno == EWOULDBLOCK ? "attached by another live process (the file is locked)" : std::strerror(errno));
    return FileOpenResult::kError;
  }
  struct stat st;
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    fail("not a regular file");
    return FileOpenResult::kError;
  }
  if (!read_only && st.st_uid != ::geteuid()) {
    fail("owned by another user (a heap file is attached only by its owner)");
    return FileOpenResult::kError;
  }
  if (!read_only && (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    fail("writable by other users (chmod go-w it: their writes would reach the heap's metadata)");
    return FileOpenResult::kError;
  }
  readable_by_others_ = (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
  copy_in_ = read_only && (st.st_uid != ::geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0);
  file_bytes_ = static_cast<std::uint64_t>(st.st_size);
  FileOpenResult r = file_bytes_ == 0 ? FileOpenResult::kFormat : read_header();
  if (r == FileOpenResult::kFormat) return start_format(ram_bytes);
  if (r == FileOpenResult::kError) return r;
  return check_and_map();
}

// The file's header: kAttach when a valid superblock of this version names a finished heap (the
// newer of the two slots is sb_), kFormat for kmm's own format that never finished, else kError
// (fail() says why).
FileOpenResult FilePlatform::read_header() {
  unsigned char hdr[kHeapHeaderBytes] = {};
  ssize_t n = ::pread(fd_, hdr, sizeof hdr, 0);
  if (n < 0) {
    fail(std::strerror(errno));
    return FileOpenResult::kError;
  }
  bool any_magic = false, other_version = false;
  std::uint32_t version = 0;
  for (unsigned s = 0; s < 2; ++s) {
    if (static_cast<std::size_t>(n) < s * kSuperblockSlotBytes + sizeof(Superblock)) continue;
    Superblock sb;
    std::memcpy(&sb, hdr + s * kSuperblockSlotBytes, sizeof sb);
    if (std::memcmp(sb.magic, kHeapMagic, sizeof kHeapMagic) != 0) continue;
    any_magic = true;
    if (sb.version != kHeapVersion) {
      other_version = true;
      version = sb.version;
      continue;
    }
    if (!superblock_valid(sb)) continue;
    if (valid_slots_ == 0 || sb.seq > sb_.seq) {
      sb_ = sb;
      current_slot_ = s;
    }
    ++valid_slots_;
  }
  if (valid_slots_ == 0) {
    char what[160];
    if (other_version) {
      std::snprintf(what, sizeof what, "a kmm heap of version %u; this kmm reads version %u", version, kHeapVersion);
    } else if (any_magic) {
      std::snprintf(what, sizeof what, "torn superblock: both copies fail their checksum");
    } else if (static_cast<std::size_t>(n) < sizeof(Superblock)) {
      std::snprintf(what, sizeof what, "not a kmm heap (%llu bytes, too short for a superblock)",
                    static_cast<unsigned long long>(file_bytes_));
    } else {
      std::snprintf(what, sizeof what, "not a kmm heap (no KMMHEAP1 superblock)");
    }
    fail(what);
    return FileOpenResult::kError;
  }
  if (sb_.header_bytes != kHeapHeaderBytes || sb_.ptr_bytes != sizeof(void*)) {
    fail(sb_.ptr_bytes != sizeof(void*) ? "heap made by a host with another pointer size" : "unknown header size");
    return FileOpenResult::kError;
  }
  if (sb_.state == static_cast<std::uint32_t>(HeapState::kFormatting)) {
    if (read_only_) {
      fail("an unfinished format (crashed while formatting): nothing to check");
      return FileOpenResult::kError;
    }
    return FileOpenResult::kFormat;  // kmm's own, never finished: format it again
  }
  if (sb_.state != static_cast<std::uint32_t>(HeapState::kReady)) {
    fail("superblock in an unknown state");
    return FileOpenResult::kError;
  }
  return FileOpenResult::kAttach;
}

// An empty file (or an unfinished format) becomes a heap of ram_bytes: marked "formatting"
// first, then grown; reserve() and the kernel's boot do the rest.
FileOpenResult FilePlatform::start_format(std::uint64_t ram_bytes) {
  if (read_only_) {
    fail("empty file: not a kmm heap");
    return FileOpenResult::kError;
  }
  ram_bytes_ = ram_bytes & ~std::uint64_t{kPageSize - 1};
  // The file is kmm's before it grows: a crash between here and reserve() must leave a
  // file that says "formatting", not a header of zeros that no open would take again.
  Superblock mark = formatting_superblock(ram_bytes_, 0);
  mark.checksum = superblock_checksum(mark);
  if (::pwrite(fd_, &mark, sizeof mark, 0) != static_cast<ssize_t>(sizeof mark) || ::fdatasync(fd_) != 0) {
    fail(std::strerror(errno));
    return FileOpenResult::kError;
  }
  if (::ftruncate(fd_, static_cast<off_t>(kHeapHeaderBytes + ram_bytes_)) != 0) {
    fail(std::strerror(errno));
    return FileOpenResult::kError;
  }
  // The file system's blocks for the whole heap now: a sparse file on a full disk gave the
  // first store to a page it had no block for a SIGBUS, which killed the program with no
  // message (a full tmpfs: "Bus error", stdout lost). Refused here instead, the file left
  // "formatting" (taken again by the next open).
  int err = ::posix_fallocate(fd_, 0, static_cast<off_t>(kHeapHeaderBytes + ram_bytes_));
  if (err != 0 && err != EOPNOTSUPP && err != EINVAL) {
    char what[160];
    std::snprintf(what, sizeof what, "the file system has no room for the heap's %llu bytes (%s)",
                  static_cast<unsigned long long>(kHeapHeaderBytes + ram_bytes_), std::strerror(err));
    fail(what);
    return FileOpenResult::kError;
  }
  file_bytes_ = kHeapHeaderBytes + ram_bytes_;
  return FileOpenResult::kFormat;
}

// A finished heap (sb_): its sizes and address checked against this host and the file, then
// mapped where it was made.
FileOpenResult FilePlatform::check_and_map() {
  ram_bytes_ = sb_.ram_bytes;
  // The superblock is input from outside (its checksum only proves it is whole): sizes and
  // the address are checked before anything is mapped or read through them.
  if (ram_bytes_ == 0 || ram_bytes_ % kPageSize != 0 || ram_bytes_ > SIZE_MAX - kHeapHeaderBytes) {
    fail("the superblock's RAM size is not a whole number of pages this host can map");
    return FileOpenResult::kError;
  }
  if (sb_.map_addr % kPageSize != 0 || sb_.map_addr < kHeapHeaderBytes || sb_.map_addr > UINTPTR_MAX - ram_bytes_) {
    fail("the superblock's RAM address is not a page-aligned address of this host");
    return FileOpenResult::kError;
  }
  if (file_bytes_ < kHeapHeaderBytes || file_bytes_ - kHeapHeaderBytes < ram_bytes_) {
    char what[160];
    std::snprintf(what, sizeof what, "truncated: the file has %llu bytes, its superblock says %llu",
                  static_cast<unsigned long long>(file_bytes_),
                  static_cast<unsigned long long>(kHeapHeaderBytes + ram_bytes_));
    fail(what);
    return FileOpenResult::kError;
  }
  if (!map_at(sb_.map_addr)) return FileOpenResult::kError;
  return FileOpenResult::kAttach;
}

void* FilePlatform::reserve(std::size_t size, std::size_t align) {
  if (fd_ < 0 || handed_out_ || read_only_) return nullptr;
  if (ram_ != nullptr) {  // attach: the mapping exists
    if (size != ram_bytes_) return nullptr;
    handed_out_ = true;
    return ram_;
  }
  if (size != ram_bytes_) return nullptr;
  if (align < kPageSize) align = kPageSize;
  // Reserve address space, then put the file's mapping over an aligned part of it: RAM at an
  // `align` boundary, the header page just below.
  std::size_t span = kHeapHeaderBytes + size + align;
  void* raw = ::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  auto start = reinterpret_cast<std::uintptr_t>(raw);
  std::uintptr_t ram = (start + kHeapHeaderBytes + align - 1) & ~(std::uintptr_t{align} - 1);
  std::uintptr_t map = ram - kHeapHeaderBytes;
  void* got = ::mmap(reinterpret_cast<void*>(map), kHeapHeaderBytes + size, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_FIXED, fd_, 0);
  if (got == MAP_FAILED) {
    ::munmap(raw, span);
    return nullptr;
  }
  if (map > start) ::munmap(raw, map - start);
  std::uintptr_t end = start + span, mend = ram + size;
  if (end > mend) ::munmap(reinterpret_cast<void*>(mend), end - mend);
  header_ = reinterpret_cast<char*>(map);
  ram_ = reinterpret_cast<char*>(ram);
  handed_out_ = true;
  // The header page is kmm's from now on: mark the file "formatting", so a crash before the
  // format completes leaves a file kmm knows it may format again.
  std::memset(header_, 0, kHeapHeaderBytes);
  Superblock sb = formatting_superblock(ram_bytes_, ram);
  valid_slots_ = 0;
  sb_ = sb;
  write_superblock(sb);
  return ram_;
}

bool FilePlatform::commit(void* p, std::size_t size) {
  return ram_ != nullptr && static_cast<char*>(p) >= ram_ && static_cast<char*>(p) + size <= ram_ + ram_bytes_;
}
bool FilePlatform::decommit(void* p, std::size_t size) {
  return commit(p, size);
}
bool FilePlatform::protect(void* p, std::size_t size, Prot prot) {
  int flags = prot == Prot::kNone ? PROT_NONE : prot == Prot::kRead ? PROT_READ : PROT_READ | PROT_WRITE;
  return ::mprotect(p, size, flags) == 0;
}
void FilePlatform::release(void*, std::size_t) {
  close(true);
}

bool FilePlatform::write_superblock(const Superblock& in) {
  if (header_ == nullptr || read_only_) return false;
  Superblock sb = in;
  unsigned slot = valid_slots_ == 0 ? 0 : 1 - current_slot_;
  sb.seq = valid_slots_ == 0 ? in.seq : sb_.seq + 1;
  sb.checksum = superblock_checksum(sb);
  std::memcpy(header_ + slot * kSuperblockSlotBytes, &sb, sizeof sb);
  bool ok = ::msync(header_, kHeapHeaderBytes, MS_SYNC) == 0;
  sb_ = sb;
  current_slot_ = slot;
  if (valid_slots_ < 2) ++valid_slots_;
  return ok;
}

bool FilePlatform::flush() {
  if (header_ == nullptr || read_only_) return false;
  if (flush_hook_ != nullptr) flush_hook_(flush_arg_);
  return ::msync(header_, static_cast<std::size_t>(kHeapHeaderBytes + ram_bytes_), MS_SYNC) == 0;
}

void FilePlatform::close(bool clean) {
  if (fd_ < 0) return;
  // A fork's child shares the parent's open file and its lock (a flock belongs to the open file,
  // not the process): its close must neither mark the heap clean nor drop the lock, which the
  // parent, still attached, holds. Before stop 48 it did both, and another process attached the
  // live heap and handed the parent's blocks out again.
  bool attacher = ::getpid() == owner_pid_;
  if (header_ != nullptr) {
    if (attacher && !read_only_ && clean && sb_.state == static_cast<std::uint32_t>(HeapState::kReady)) {
      flush();
      Superblock sb = sb_;
      sb.clean = 1;
      write_superblock(sb);
    }
    ::munmap(header_, static_cast<std::size_t>(kHeapHeaderBytes + ram_bytes_));
  }
  header_ = ram_ = nullptr;
  handed_out_ = false;
  if (attacher) ::flock(fd_, LOCK_UN);
  ::close(fd_);
  fd_ = -1;
}

namespace {
constexpr unsigned kMaxHeapFiles = 8;
FilePlatform g_files[kMaxHeapFiles];
bool g_file_used[kMaxHeapFiles];
SpinLock g_files_lock;
}  // namespace

FilePlatform* heap_file_acquire() {
  LockGuard g(g_files_lock);
  for (unsigned i = 0; i < kMaxHeapFiles; ++i) {
    if (!g_file_used[i]) {
      g_file_used[i] = true;
      return &g_files[i];
    }
  }
  return nullptr;
}

void heap_file_release(FilePlatform* fp) {
  LockGuard g(g_files_lock);
  for (unsigned i = 0; i < kMaxHeapFiles; ++i)
    if (&g_files[i] == fp) g_file_used[i] = false;
}

}  // namespace kmm
#endif

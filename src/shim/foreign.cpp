// kmm/shim/foreign.cpp — frees of blocks glibc's malloc made, handed back to glibc.
//
// A real program can hold memory from glibc's own malloc while kmm is its malloc: a library
// that reached "the real malloc" through dlopen("libc.so.6") + dlsym, or memory allocated
// before the preload took over. free() of such a block must not abort (mimalloc's users hit
// this: a Steam webview crash). A pointer kmm does not own is glibc's when it lies in glibc's
// main arena (the brk heap, [start_brk, sbrk(0)), read from /proc/self/stat) or looks like one
// of glibc's mmapped chunks (chunk header two words below p at the start of a mapped page,
// IS_MMAPPED set, size a page multiple); then glibc's free (dlsym(RTLD_NEXT)) takes it, and
// glibc's own checks apply. Anything else is still reported as a foreign pointer by the caller.
//
// The header is data, and a bad free can point at data that looks like one: glibc would then
// unmap [chunk - prev_size, chunk + size). So the header is read without trusting the page to
// be readable (process_vm_readv on this process: a PROT_NONE page is EFAULT, not SIGSEGV;
// where the call is refused — a seccomp filter — mincore and a plain read, as before), and a
// range that meets kmm's own memory (its RAM, its huge blocks live or cached) is never
// glibc's: that free is reported, and nothing of kmm's is unmapped.
//
// Depends on: shim.h, POSIX (open/read, mincore, sbrk, process_vm_readv), dlsym. Nothing here
// allocates. Invariants: only called for pointers kmm does not own; start_brk is read once;
// errno is as the caller left it (free must not change it).
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>

#include "shim/shim.h"

namespace kmm::shim {
namespace {

std::uintptr_t g_start_brk = 0;  // 0: not read yet; 1: unknown

// Field 47 of /proc/self/stat (start_brk), parsed without the heap.
std::uintptr_t read_start_brk() {
  char buf[1024];
  int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1;
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 1;
  buf[n] = '\0';
  // Fields after the command (which may hold spaces) start after the last ')'.
  char* s = nullptr;
  for (char* c = buf; *c != '\0'; ++c)
    if (*c == ')') s = c;
  if (s == nullptr) return 1;
  int field = 2;  // ')' ends field 2
  std::uintptr_t v = 0;
  for (char* c = s + 1; *c != '\0'; ++c) {
    if (*c == ' ') {
      ++field;
      if (field == 47) {
        for (++c; *c >= '0' && *c <= '9'; ++c) v = v * 10 + static_cast<std::uintptr_t>(*c - '0');
        return v != 0 ? v : 1;
      }
    }
  }
  return 1;
}

bool in_glibc_brk_heap(std::uintptr_t a) {
  std::uintptr_t lo = __atomic_load_n(&g_start_brk, __ATOMIC_RELAXED);
  if (lo == 0) {
    lo = read_start_brk();
    __atomic_store_n(&g_start_brk, lo, __ATOMIC_RELAXED);
  }
  if (lo <= 1) return false;
  auto hi = reinterpret_cast<std::uintptr_t>(::sbrk(0));
  return a >= lo + 2 * sizeof(std::size_t) && a < hi;
}

// The chunk header's two words (prev_size, size) at `chunk`, false where they cannot be read:
// unmapped, or mapped with no read access (a guard page), which a plain load would fault on.
bool read_chunk_header(std::uintptr_t chunk, std::uintptr_t page, std::size_t* header) {
  struct iovec here = {header, 2 * sizeof(std::size_t)};
  struct iovec there = {reinterpret_cast<void*>(chunk), 2 * sizeof(std::size_t)};
  ssize_t n = ::process_vm_readv(::getpid(), &here, 1, &there, 1, 0);
  if (n == static_cast<ssize_t>(2 * sizeof(std::size_t))) return true;
  if (n >= 0 || (errno != ENOSYS && errno != EPERM)) return false;  // EFAULT: not readable
  // The call is refused here: mapped is all that can be known.
  unsigned char vec;
  if (::mincore(reinterpret_cast<void*>(chunk), page, &vec) != 0) return false;
  header[0] = reinterpret_cast<const std::size_t*>(chunk)[0];
  header[1] = reinterpret_cast<const std::size_t*>(chunk)[1];
  return true;
}

// Whether [lo, hi) meets memory of kmm's own: its RAM (mem_map inside), its huge blocks.
bool meets_kmm_memory(std::uintptr_t lo, std::uintptr_t hi) {
  if (Kernel* k = __atomic_load_n(&g_kernel, __ATOMIC_ACQUIRE)) {
    auto ram = reinterpret_cast<std::uintptr_t>(k->phys().base());
    if (lo < ram + k->phys().size() && ram < hi) return true;
  }
  return huge_overlaps(lo, hi);
}

// a: a glibc mmapped chunk's user pointer, by its header, whose mapping glibc would unmap
// (munmap_chunk: [chunk - prev_size, chunk + size), page aligned) holds nothing of kmm's.
bool looks_like_glibc_mmapped_chunk(std::uintptr_t a) {
  const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  std::uintptr_t chunk = a - 2 * sizeof(std::size_t);
  if (chunk % page != 0) return false;
  std::size_t header[2];
  if (!read_chunk_header(chunk, page, header)) return false;
  std::size_t prev = header[0], size = header[1] & ~std::size_t{7};
  if ((header[1] & 2) == 0 || size % page != 0 || size < page || prev % page != 0 || prev > chunk) return false;
  std::uintptr_t lo = chunk - prev, hi = chunk + size;
  if (hi < chunk) return false;
  return !meets_kmm_memory(lo, hi);
}

// p was made by glibc's malloc, by where it lies or by its chunk header (above).
bool is_glibc_block(const void* p) {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  if (a % (2 * sizeof(std::size_t)) != 0) return false;
  int saved_errno = errno;
  bool glibcs = in_glibc_brk_heap(a) || looks_like_glibc_mmapped_chunk(a);
  errno = saved_errno;
  return glibcs;
}

}  // namespace

bool glibc_free(void* p) {
  if (!is_glibc_block(p)) return false;
  using FreeFn = void (*)(void*);
  auto next_free = reinterpret_cast<FreeFn>(::dlsym(RTLD_NEXT, "free"));
  if (next_free == nullptr) return false;
  next_free(p);
  return true;
}

std::size_t glibc_usable_size(const void* p) {
  if (!is_glibc_block(p)) return 0;
  using UsableFn = std::size_t (*)(void*);
  auto next_usable = reinterpret_cast<UsableFn>(::dlsym(RTLD_NEXT, "malloc_usable_size"));
  return next_usable != nullptr ? next_usable(const_cast<void*>(p)) : 0;
}

}  // namespace kmm::shim

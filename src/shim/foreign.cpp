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
// Depends on: shim.h, POSIX (open/read, mincore, sbrk), dlsym. Nothing here allocates.
// Invariant: only called for pointers kmm does not own; start_brk is read once.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
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

bool looks_like_glibc_mmapped_chunk(std::uintptr_t a) {
  const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  std::uintptr_t chunk = a - 2 * sizeof(std::size_t);
  if (chunk % page != 0) return false;
  unsigned char vec;
  if (::mincore(reinterpret_cast<void*>(chunk), page, &vec) != 0) return false;  // not mapped
  std::size_t size = reinterpret_cast<const std::size_t*>(chunk)[1];
  return (size & 2) != 0 && (size & ~std::size_t{7}) % page == 0 && (size & ~std::size_t{7}) >= page;
}

}  // namespace

bool glibc_free(void* p) {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  if (a % (2 * sizeof(std::size_t)) != 0) return false;
  if (!in_glibc_brk_heap(a) && !looks_like_glibc_mmapped_chunk(a)) return false;
  using FreeFn = void (*)(void*);
  auto next_free = reinterpret_cast<FreeFn>(::dlsym(RTLD_NEXT, "free"));
  if (next_free == nullptr) return false;
  next_free(p);
  return true;
}

}  // namespace kmm::shim

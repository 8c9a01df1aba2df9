// kmm/shim/malloc_api.cpp — the exported malloc family and the C++ operator new/delete set.
//
// These are the only symbols libkmm-preload.so exports besides the kmm_* API (modules.cpp, stats.cpp), the
// heap reports (mallinfo.cpp) and the dlopen/dlclose hooks (modules.cpp): everything else is
// hidden. glibc's internal names (__libc_malloc ... __posix_memalign) are kmm's as well. Semantics follow glibc:
// malloc(0) returns a unique minimum block; realloc(p, 0) frees p and returns null;
// calloc/reallocarray overflow and every failure set errno = ENOMEM; posix_memalign returns
// EINVAL for an alignment that is not a power of two multiple of sizeof(void*); memalign
// rounds a non-power-of-two alignment up.
//
// operator new keeps the standard's contract ([new.delete.single]): when memory runs out it
// calls the new-handler in a loop, retrying after each call; with no handler the throwing
// forms throw std::bad_alloc and the nothrow forms return null (a handler that throws makes a
// nothrow form return null). The handler and the throw are the program's C++ runtime's
// (std::get_new_handler and std::__throw_bad_alloc of libstdc++.so, found with dlsym when
// first needed): the shim's own copy of libsupc++ is private to it, its handler is never the
// one the program set, and an exception raised by it would be counted in the wrong runtime.
// The shim itself is built without exceptions; this file has unwind tables so that the
// exception passes through its frames. Only a program without a shared libstdc++ (nothing to
// throw with) still gets a report and an abort.
//
// Each entry takes its caller's return address for the owner lookup (shim.h owner_for).
// Depends on: shim.h.
#include <dlfcn.h>
#include <errno.h>
#include <unistd.h>

#include <cstring>
#include <new>

#include "base/bits.h"
#include "base/report.h"
#include "shim/fast_path.h"
#include "shim/shim.h"

#define KMM_EXPORT extern "C" __attribute__((visibility("default")))
#define KMM_CXX_EXPORT __attribute__((visibility("default")))

using namespace kmm;
using namespace kmm::shim;

namespace {

inline void* fail_enomem() {
  errno = ENOMEM;
  return nullptr;
}

__attribute__((noinline)) void* do_malloc_slow(std::size_t n, const void* ra) {
  if (void* p = alloc_refill(n, ra)) return p;
  void* p = alloc(n, owner_for(ra));
  return __builtin_expect(p != nullptr, 1) ? p : fail_enomem();
}

// free's everything but the fast path (a tail call, as malloc's), so the fast path calls
// nothing and saves no registers. The action is named by the caller's address only here.
__attribute__((noinline)) void free_slow(void* p, const void* ra, const char* name) {
  FreeFastResult r = release_refused(p);
  if (r == kFreeFastDone) return;
  if (r == kFreeFastTick) return purge_tick_fast_free();
  if (p != nullptr) release_general(p, free_action(ra, name));
}

// A free onto another thread's slab (do_free's remote branch): the remote list's
// compare-and-swap, else the whole path. Apart, and called last, so that do_free's fast path
// saves no registers (with the call returning into it, free pushed and popped three).
__attribute__((noinline)) void free_remote(ThreadCache* tc, Page* head, std::uint64_t state_off, char* obj,
                                           const void* ra, const char* name) {
  FreeFastResult r = __atomic_load_n(&g_kernel, __ATOMIC_RELAXED)->slab().free_fast_remote(tc, head, state_off, obj);
  if (r == kFreeFastNo) return free_slow(obj, ra, name);
  if (r == kFreeFastTick) purge_tick_fast_free();
}

// The free family's whole entry: the fast path inline, every other case in one call in tail
// position (free_remote, purge_tick_fast_free, free_slow). Always inline, so that its
// __builtin_return_address(0) is the exported function's caller; read only in those branches
// (a value computed at entry and passed in was loaded at entry and kept live, which cost free
// two register saves).
__attribute__((always_inline)) inline void do_free(void* p, const char* name) {
  // The lambda is always inline too: its __builtin_return_address(0) must be free's.
  auto remote = [name](ThreadCache* tc, Page* head, std::uint64_t state_off, char* obj)
                    __attribute__((always_inline)) {
                      free_remote(tc, head, state_off, obj, __builtin_return_address(0), name);
                      return kFreeFastDone;
                    };
  FreeFastResult r = release_fast_with(p, remote);
  if (__builtin_expect(r == kFreeFastDone, 1)) return;
  if (r == kFreeFastTick) return purge_tick_fast_free();
  free_slow(p, __builtin_return_address(0), name);
}

// The fast path apart from the rest (a tail call), so the common case saves no registers.
__attribute__((always_inline)) inline void* do_malloc(std::size_t n, const void* ra) {
  if (void* p = alloc_fast(n, ra)) return p;
  return do_malloc_slow(n, ra);
}

inline void* do_memalign(std::size_t align, std::size_t n, const void* ra) {
  if (align != 0 && !is_pow2(align)) {
    std::size_t a = 1;
    while (a < align && a != 0) a <<= 1;
    if (a == 0) {
      errno = EINVAL;  // above SIZE_MAX / 2 + 1: glibc's memalign says EINVAL
      return nullptr;
    }
    align = a;
  }
  void* p = alloc_aligned(align, n, owner_for(ra));
  return p != nullptr ? p : fail_enomem();
}

// The program's C++ runtime, for out of memory in operator new.
using GetNewHandlerFn = std::new_handler (*)();
using ThrowFn = void (*)();
using NothrowNewFn = void* (*)(std::size_t, const std::nothrow_t&);
using NothrowNewAlignedFn = void* (*)(std::size_t, std::align_val_t, const std::nothrow_t&);

#define KMM_SIZE_MANGLING (sizeof(std::size_t) == 8 ? 0 : 1)  // m (unsigned long) or j (unsigned int)

struct CxxRuntime {
  GetNewHandlerFn get_new_handler;
  ThrowFn throw_bad_alloc;
  NothrowNewFn nothrow_new[2];                 // new, new[]
  NothrowNewAlignedFn nothrow_new_aligned[2];  // new, new[] with std::align_val_t
};

const CxxRuntime& cxx_runtime() {
  static CxxRuntime rt;
  static bool resolved = false;
  if (__atomic_load_n(&resolved, __ATOMIC_ACQUIRE)) return rt;
  static const char* const kNothrow[2][2] = {{"_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t"},
                                             {"_ZnwjRKSt9nothrow_t", "_ZnajRKSt9nothrow_t"}};
  static const char* const kNothrowAligned[2][2] = {
      {"_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t"},
      {"_ZnwjSt11align_val_tRKSt9nothrow_t", "_ZnajSt11align_val_tRKSt9nothrow_t"}};
  // Written before `resolved` is published; a second thread resolving at the same time
  // writes the same values.
  rt.get_new_handler = reinterpret_cast<GetNewHandlerFn>(dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv"));
  rt.throw_bad_alloc = reinterpret_cast<ThrowFn>(dlsym(RTLD_DEFAULT, "_ZSt17__throw_bad_allocv"));
  for (int i = 0; i < 2; ++i) {
    // RTLD_NEXT: libstdc++'s own nothrow forms (they call our throwing ones inside a try).
    rt.nothrow_new[i] = reinterpret_cast<NothrowNewFn>(dlsym(RTLD_NEXT, kNothrow[KMM_SIZE_MANGLING][i]));
    rt.nothrow_new_aligned[i] =
        reinterpret_cast<NothrowNewAlignedFn>(dlsym(RTLD_NEXT, kNothrowAligned[KMM_SIZE_MANGLING][i]));
  }
  __atomic_store_n(&resolved, true, __ATOMIC_RELEASE);
  return rt;
}

std::new_handler program_new_handler() {
  const CxxRuntime& rt = cxx_runtime();
  return rt.get_new_handler != nullptr ? rt.get_new_handler() : nullptr;
}

[[noreturn]] void throw_bad_alloc(std::size_t n) {
  const CxxRuntime& rt = cxx_runtime();
  if (rt.throw_bad_alloc != nullptr) rt.throw_bad_alloc();  // does not return
  report({ErrorKind::kSizeOverflow, "operator new", nullptr, nullptr, n,
          "out of memory, and no shared libstdc++ to throw std::bad_alloc with: abort"});
  fatal("operator new: out of memory");
}

inline void* alloc_for_new(std::size_t n, std::size_t align, owner_t owner) {
  return align == 0 ? alloc(n, owner) : alloc_aligned(align, n, owner);
}

// Out of memory in a throwing form: the new-handler loop, then std::bad_alloc.
__attribute__((noinline)) void* new_slow(std::size_t n, std::size_t align, owner_t owner) {
  for (;;) {
    std::new_handler h = program_new_handler();
    if (h == nullptr) throw_bad_alloc(n);
    h();  // may free memory, install another handler, throw, or end the program
    if (void* p = alloc_for_new(n, align, owner)) return p;
  }
}

// Out of memory in a nothrow form: null at once without a handler; with one, libstdc++'s
// nothrow form runs our throwing form inside its try and returns null for a throw.
__attribute__((noinline)) void* new_nothrow_slow(std::size_t n, std::size_t align, bool array, owner_t owner) {
  if (program_new_handler() == nullptr) return nullptr;
  const CxxRuntime& rt = cxx_runtime();
  OwnerScope scope(owner);  // libstdc++'s call to our operator new is not the plug-in's code
  if (align == 0) {
    NothrowNewFn f = rt.nothrow_new[array ? 1 : 0];
    return f != nullptr ? f(n, std::nothrow) : nullptr;
  }
  NothrowNewAlignedFn f = rt.nothrow_new_aligned[array ? 1 : 0];
  return f != nullptr ? f(n, std::align_val_t{align}, std::nothrow) : nullptr;
}

inline void* do_new(std::size_t n, const void* ra) {
  owner_t owner = owner_for(ra);
  void* p = alloc(n, owner);
  if (__builtin_expect(p == nullptr, 0)) return new_slow(n, 0, owner);
  return p;
}

inline void* do_new_aligned(std::size_t n, std::size_t align, const void* ra) {
  owner_t owner = owner_for(ra);
  void* p = alloc_aligned(align, n, owner);
  if (p == nullptr) return new_slow(n, align, owner);
  return p;
}

inline void* do_new_nothrow(std::size_t n, std::size_t align, bool array, const void* ra) {
  owner_t owner = owner_for(ra);
  void* p = alloc_for_new(n, align, owner);
  if (__builtin_expect(p == nullptr, 0)) return new_nothrow_slow(n, align, array, owner);
  return p;
}

}  // namespace

KMM_EXPORT void* malloc(std::size_t n) {
  return do_malloc(n, __builtin_return_address(0));
}

KMM_EXPORT void free(void* p) {
  do_free(p, "free");
}

KMM_EXPORT void cfree(void* p) {
  do_free(p, "free");
}

KMM_EXPORT void* calloc(std::size_t n, std::size_t size) {
  std::size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) return fail_enomem();
  void* p = alloc_zeroed(n, size, owner_for(__builtin_return_address(0)));
  return p != nullptr ? p : fail_enomem();
}

KMM_EXPORT void* realloc(void* p, std::size_t n) {
  const void* ra = __builtin_return_address(0);
  if (p != nullptr && n == 0) {
    release(p, free_action(ra, "realloc"));
    return nullptr;
  }
  void* q = resize(p, n, owner_for(ra), "realloc");
  return q != nullptr ? q : fail_enomem();
}

KMM_EXPORT void* reallocarray(void* p, std::size_t n, std::size_t size) {
  std::size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) return fail_enomem();
  const void* ra = __builtin_return_address(0);
  if (p != nullptr && bytes == 0) {
    release(p, free_action(ra, "reallocarray"));
    return nullptr;
  }
  void* q = resize(p, bytes, owner_for(ra), "reallocarray");
  return q != nullptr ? q : fail_enomem();
}

KMM_EXPORT int posix_memalign(void** out, std::size_t align, std::size_t n) {
  if (align < sizeof(void*) || !is_pow2(align)) return EINVAL;
  void* p = alloc_aligned(align, n, owner_for(__builtin_return_address(0)));
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

KMM_EXPORT void* aligned_alloc(std::size_t align, std::size_t n) {
  if (align == 0 || !is_pow2(align)) {
    errno = EINVAL;
    return nullptr;
  }
  return do_memalign(align, n, __builtin_return_address(0));
}

KMM_EXPORT void* memalign(std::size_t align, std::size_t n) {
  return do_memalign(align, n, __builtin_return_address(0));
}

KMM_EXPORT void* valloc(std::size_t n) {
  return do_memalign(kPageSize, n, __builtin_return_address(0));
}

KMM_EXPORT void* pvalloc(std::size_t n) {
  std::size_t r = (n + kPageSize - 1) & ~(kPageSize - 1);
  if (r < n) return fail_enomem();
  return do_memalign(kPageSize, r == 0 ? kPageSize : r, __builtin_return_address(0));
}

KMM_EXPORT std::size_t malloc_usable_size(void* p) {
  return usable_size(p);
}

// glibc extras some programs call. malloc_trim: the free memory of the heap goes back to the
// OS now (purge.cpp); 1 when some was given back, as glibc. glibc keeps `pad` bytes at the top
// of its heap; kmm's free frames are not at a top, so the pad has nothing to keep.
KMM_EXPORT int malloc_trim(std::size_t) {
  return trim_now() ? 1 : 0;
}
// mallopt: glibc's tunables steer its own arenas and bins, which kmm does not have, so each
// is accepted and has no effect, as glibc accepts a parameter it does not know (returns 1).
// M_MXFAST (1) is checked as glibc checks it: 0 for a value outside 0..80*sizeof(size_t)/4.
KMM_EXPORT int mallopt(int param, int value) {
  if (param == 1 && (value < 0 || static_cast<std::size_t>(value) > 80 * sizeof(std::size_t) / 4)) return 0;
  return 1;
}

// --- glibc's internal names --------------------------------------------------------------------
// Programs (and libraries wrapping malloc) call __libc_malloc & co. to reach "the real
// malloc"; mixing them with free() must work, so they are kmm's too (mimalloc does the same).

KMM_EXPORT void* __libc_malloc(std::size_t n) {
  return do_malloc(n, __builtin_return_address(0));
}
KMM_EXPORT void __libc_free(void* p) {
  do_free(p, "__libc_free");
}
KMM_EXPORT void* __libc_calloc(std::size_t n, std::size_t size) {
  std::size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) return fail_enomem();
  void* p = alloc_zeroed(n, size, owner_for(__builtin_return_address(0)));
  return p != nullptr ? p : fail_enomem();
}
KMM_EXPORT void* __libc_realloc(void* p, std::size_t n) {
  const void* ra = __builtin_return_address(0);
  if (p != nullptr && n == 0) {
    release(p, free_action(ra, "__libc_realloc"));
    return nullptr;
  }
  void* q = resize(p, n, owner_for(ra), "__libc_realloc");
  return q != nullptr ? q : fail_enomem();
}
KMM_EXPORT void* __libc_memalign(std::size_t align, std::size_t n) {
  return do_memalign(align, n, __builtin_return_address(0));
}
KMM_EXPORT void* __libc_valloc(std::size_t n) {
  return do_memalign(kPageSize, n, __builtin_return_address(0));
}
KMM_EXPORT void* __libc_pvalloc(std::size_t n) {
  std::size_t r = (n + kPageSize - 1) & ~(kPageSize - 1);
  if (r < n) return fail_enomem();
  return do_memalign(kPageSize, r == 0 ? kPageSize : r, __builtin_return_address(0));
}
KMM_EXPORT int __posix_memalign(void** out, std::size_t align, std::size_t n) {
  if (align < sizeof(void*) || !is_pow2(align)) return EINVAL;
  void* p = alloc_aligned(align, n, owner_for(__builtin_return_address(0)));
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

// --- C++ ----------------------------------------------------------------------------------------

KMM_CXX_EXPORT void* operator new(std::size_t n) {
  return do_new(n, __builtin_return_address(0));
}
KMM_CXX_EXPORT void* operator new[](std::size_t n) {
  return do_new(n, __builtin_return_address(0));
}
KMM_CXX_EXPORT void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return do_new_nothrow(n, 0, false, __builtin_return_address(0));
}
KMM_CXX_EXPORT void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return do_new_nothrow(n, 0, true, __builtin_return_address(0));
}
KMM_CXX_EXPORT void* operator new(std::size_t n, std::align_val_t a) {
  return do_new_aligned(n, static_cast<std::size_t>(a), __builtin_return_address(0));
}
KMM_CXX_EXPORT void* operator new[](std::size_t n, std::align_val_t a) {
  return do_new_aligned(n, static_cast<std::size_t>(a), __builtin_return_address(0));
}
KMM_CXX_EXPORT void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return do_new_nothrow(n, static_cast<std::size_t>(a), false, __builtin_return_address(0));
}
KMM_CXX_EXPORT void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return do_new_nothrow(n, static_cast<std::size_t>(a), true, __builtin_return_address(0));
}

#define KMM_DELETE_BODY do_free(p, "operator delete")

KMM_CXX_EXPORT void operator delete(void* p) noexcept {
  KMM_DELETE_BODY;
}
KMM_CXX_EXPORT void operator delete[](void* p) noexcept {
  KMM_DELETE_BODY;
}
KMM_CXX_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept {
  KMM_DELETE_BODY;
}
KMM_CXX_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept {
  KMM_DELETE_BODY;
}
KMM_CXX_EXPORT void operator delete(void* p, std::size_t) noexcept {
  KMM_DELETE_BODY;
}
KMM_CXX_EXPORT void operator delete[](void* p, std::size_t) noexcept {
  KMM_DELETE_BODY;
}
KMM_CXX_EXPORT void operator delete(void* p, std::align_val_t) noexcept {
  KMM_DELETE_BODY;
}
KMM_CXX_EXPORT void operator delete[](void* p, std::align_val_t) noexcept {
  KMM_DELETE_BODY;
}
KMM_CXX_EXPORT void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  KMM_DELETE_BODY;
}
KMM_CXX_EXPORT void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  KMM_DELETE_BODY;
}
KMM_CXX_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  KMM_DELETE_BODY;
}
KMM_CXX_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  KMM_DELETE_BODY;
}

// The shim as the process's malloc (this test links libkmm-preload.so): the malloc family's
// glibc semantics, alignment, huge blocks, threads, fork, modules and scopes through the kmm
// API, and the default policy for a double free (a death test).
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include "../common/opaque.h"
#include "kmm/kmm.h"

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void __libc_free(void*);
void* __libc_memalign(std::size_t, std::size_t);
void* __libc_valloc(std::size_t);
void* __libc_pvalloc(std::size_t);
int __posix_memalign(void**, std::size_t, std::size_t);
}

namespace {

bool aligned(const void* p, std::size_t a) {
  return reinterpret_cast<std::uintptr_t>(p) % a == 0;
}

using kmm::test::keep;    // the compiler may drop a malloc whose result is unused, or a pair
using kmm::test::opaque;  // a size it cannot see, so the call is made as written

TEST(Shim, IsTheProcessAllocator) {
  EXPECT_EQ(kmm_active(), 1);
}

TEST(Shim, MallocIs16AlignedForEverySize) {
  std::vector<void*> v;
  for (std::size_t n = 0; n <= 20000; n += (n < 300 ? 1 : 97)) {
    void* p = malloc(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_TRUE(aligned(p, 16)) << "malloc(" << n << ") = " << p;
    EXPECT_GE(malloc_usable_size(p), n);
    std::memset(p, 0xab, n);
    v.push_back(p);
  }
  for (void* p : v) free(p);
}

TEST(Shim, MallocZeroIsUnique) {
  void* a = malloc(0);
  void* b = malloc(0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  free(a);
  free(b);
  free(nullptr);
}

TEST(Shim, CallocZeroesAndChecksOverflow) {
  for (int round = 0; round < 3; ++round) {
    auto* p = static_cast<unsigned char*>(malloc(4096));
    std::memset(p, 0xff, 4096);
    free(p);
    auto* q = static_cast<unsigned char*>(calloc(64, 64));
    ASSERT_NE(q, nullptr);
    for (int i = 0; i < 4096; ++i) ASSERT_EQ(q[i], 0) << i;
    free(q);
  }
  errno = 0;
  EXPECT_EQ(calloc(opaque(SIZE_MAX / 2), 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(reallocarray(nullptr, opaque(SIZE_MAX / 4), 8), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  void* big = calloc(1, 10u << 20);  // huge path: fresh mapping
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(static_cast<unsigned char*>(big)[5u << 20], 0);
  free(big);
}

TEST(Shim, ReallocKeepsContentsAcrossEveryPath) {
  auto* p = static_cast<unsigned char*>(malloc(10));
  for (int i = 0; i < 10; ++i) p[i] = static_cast<unsigned char>(i);
  std::size_t sizes[] = {100, 5000, 70000, 3u << 20, 9u << 20, 20u << 20, 1u << 20, 50, 8};
  std::size_t have = 10;
  for (std::size_t n : sizes) {
    p = static_cast<unsigned char*>(realloc(p, n));
    ASSERT_NE(p, nullptr) << n;
    std::size_t check = have < n ? have : n;
    for (std::size_t i = 0; i < check; ++i)
      ASSERT_EQ(p[i], static_cast<unsigned char>(i)) << "size " << n << " byte " << i;
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<unsigned char>(i);
    have = n;
    EXPECT_GE(malloc_usable_size(p), n);
  }
  EXPECT_EQ(realloc(p, 0), nullptr);  // glibc: frees and returns null
  void* q = realloc(nullptr, 33);
  ASSERT_NE(q, nullptr);
  free(q);
}

// A page run grows where it is when the frames after it are free: a fresh 20,000-byte block
// is 5 frames of an 8-frame buddy block whose other 3 frames went back free, so growing it to
// 32,000 bytes keeps the pointer (no copy, the pages already touched stay), and the contents.
TEST(Shim, ReallocGrowsAPageRunInPlace) {
  auto* p = static_cast<unsigned char*>(malloc(opaque(20000)));
  ASSERT_NE(p, nullptr);
  for (std::size_t i = 0; i < 20000; ++i) p[i] = static_cast<unsigned char>(i * 13);
  auto* q = static_cast<unsigned char*>(realloc(p, opaque(32000)));
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q, p) << "the 3 frames after the run were free";
  EXPECT_GE(malloc_usable_size(q), 32000u);
  for (std::size_t i = 0; i < 20000; ++i) ASSERT_EQ(q[i], static_cast<unsigned char>(i * 13)) << i;
  std::memset(q + 20000, 0x77, 12000);  // the grown part is the block's
  free(q);
}

// A page run grown by realloc takes room for up to twice what it had (alloc.cpp, resize), as a
// vector doubles: a buffer grown a kilobyte at a time from 16 KiB to 1 MiB changes its block
// (grows it, or moves it) about log2(64) times, not once every few steps (a quarter more of
// room each time took 18). Its bytes survive every step.
TEST(Shim, ReallocGrowthOfAPageRunDoublesItsRoom) {
  std::size_t n = 16 * 1024;
  auto* p = static_cast<unsigned char*>(malloc(opaque(n)));
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x5A, n);
  std::size_t usable = malloc_usable_size(p);
  unsigned changes = 0;
  while (n < (std::size_t{1} << 20)) {
    n += 1024;
    p = static_cast<unsigned char*>(realloc(p, opaque(n)));
    ASSERT_NE(p, nullptr) << n;
    std::memset(p + n - 1024, 0x5A, 1024);
    if (malloc_usable_size(p) != usable) {
      ++changes;
      usable = malloc_usable_size(p);
      EXPECT_GE(usable, n);
    }
  }
  EXPECT_LE(changes, 8u) << "the block changed " << changes << " times on its way to 1 MiB";
  for (std::size_t i = 0; i < n; i += 4096) ASSERT_EQ(p[i], 0x5A) << i;
  free(p);
}

TEST(Shim, AlignedFamily) {
  for (std::size_t a = 8; a <= (64u << 20); a <<= 1) {
    for (std::size_t n : {std::size_t{1}, std::size_t{100}, a, a + 1, std::size_t{5} << 20}) {
      if (a >= (16u << 20) && n > 100) continue;
      void* p = nullptr;
      ASSERT_EQ(posix_memalign(&p, a, n), 0) << a << " " << n;
      EXPECT_TRUE(aligned(p, a)) << "posix_memalign(" << a << ", " << n << ") = " << p;
      EXPECT_GE(malloc_usable_size(p), n);
      std::memset(p, 1, n);
      free(p);
      void* q = memalign(a, n);
      ASSERT_NE(q, nullptr);
      EXPECT_TRUE(aligned(q, a));
      free(q);
      void* r = aligned_alloc(a, n);
      ASSERT_NE(r, nullptr);
      EXPECT_TRUE(aligned(r, a));
      free(r);
    }
  }
  void* p = nullptr;
  EXPECT_EQ(posix_memalign(&p, 24, 10), EINVAL);
  EXPECT_EQ(posix_memalign(&p, 2, 10), EINVAL);
  void* v = valloc(10);
  EXPECT_TRUE(aligned(v, 4096));
  free(v);
  void* pv = pvalloc(10);
  EXPECT_TRUE(aligned(pv, 4096));
  EXPECT_GE(malloc_usable_size(pv), 4096u);
  free(pv);
  void* m = memalign(opaque(48), 10);  // not a power of two: rounded up, as glibc does
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(aligned(m, 64));
  free(m);
  // An alignment no power of two of size_t reaches: EINVAL, as glibc says (ENOMEM before).
  for (std::size_t a : {(std::size_t{1} << 63) + 1, SIZE_MAX}) {
    errno = 0;
    EXPECT_EQ(keep(memalign(opaque(a), 10)), nullptr);
    EXPECT_EQ(errno, EINVAL) << a;
  }
}

TEST(Shim, KmmApiEdges) {
  // kmm_malloc fails as malloc does: NULL and ENOMEM.
  errno = 0;
  EXPECT_EQ(keep(kmm_malloc(opaque(SIZE_MAX))), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  // Leaving with a failed enter's -1 closes nothing: the enclosing scope still owns what the
  // thread allocates (leave(-1) closed every scope of the thread).
  ASSERT_GE(kmm_module_load("scope-edges"), 2);
  const int outer = kmm_module_scope_enter("scope-edges");
  ASSERT_GE(outer, 0);
  const int failed = kmm_module_scope_enter("no-such-module");
  EXPECT_EQ(failed, -1);
  kmm_module_scope_leave(failed);
  void* p = keep(malloc(opaque(100)));
  kmm_usage u{};
  ASSERT_EQ(kmm_module_usage("scope-edges", &u), 0);
  EXPECT_EQ(u.objects, 1u) << "the scope around a failed enter was closed";
  kmm_module_scope_leave(outer);
  free(p);
  EXPECT_EQ(kmm_module_unload("scope-edges"), 0);
}

TEST(Shim, HugeBlocks) {
  std::vector<void*> v;
  for (int i = 0; i < 8; ++i) {
    std::size_t n = (std::size_t{5} << 20) + static_cast<std::size_t>(i) * 12345;
    auto* p = static_cast<char*>(malloc(n));
    ASSERT_NE(p, nullptr);
    p[0] = 1;
    p[n - 1] = 2;
    EXPECT_GE(malloc_usable_size(p), n);
    v.push_back(p);
  }
  for (void* p : v) free(p);
  errno = 0;
  EXPECT_EQ(malloc(opaque(SIZE_MAX - 4096)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

struct alignas(256) Wide {
  char c[300];
};

TEST(Shim, CxxOperators) {
  auto* a = new int(7);
  delete a;
  auto* arr = new int[1000];
  delete[] arr;
  auto* w = new Wide;
  EXPECT_TRUE(aligned(w, 256));
  delete w;
  auto* wa = new Wide[3];
  EXPECT_TRUE(aligned(wa, 256));
  delete[] wa;
  void* n = ::operator new(100, std::nothrow);
  ::operator delete(n, std::nothrow);
  void* s = ::operator new(48);
  ::operator delete(s);  // sized delete: g++ emits it for `delete a` above
  void* al = ::operator new (10, std::align_val_t{4096});
  EXPECT_TRUE(aligned(al, 4096));
  ::operator delete (al, std::align_val_t{4096});
  std::vector<std::string> strings;
  for (int i = 0; i < 1000; ++i) strings.push_back(std::string(static_cast<std::size_t>(i), 'x'));
}

TEST(Shim, ThreadsAllocateAndFreeAcross) {
  // Eight threads fill blocks with a pattern of their own; after the hand-over each thread
  // reads back and frees another thread's blocks. A null block, or a byte that changed
  // (two live blocks overlapping, a block handed out twice across threads), is counted and
  // reported here; the counts are checked after the joins (assertions stay on this thread).
  constexpr int kThreads = 8, kPer = 20000;
  struct Handed {
    unsigned char* p;
    std::size_t n;
  };
  auto fill = [](std::size_t idx) { return static_cast<unsigned char>(idx * 131u + 17u); };
  std::vector<Handed> handoff(static_cast<std::size_t>(kThreads) * kPer);
  std::atomic<int> null_blocks{0}, damaged_blocks{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([t, &handoff, &null_blocks, fill] {
      unsigned seed = static_cast<unsigned>(t) * 7919u + 1;
      for (int i = 0; i < kPer; ++i) {
        seed = seed * 1103515245u + 12345u;
        std::size_t n = 1 + (seed >> 16) % 3000;
        std::size_t idx = static_cast<std::size_t>(t) * kPer + static_cast<std::size_t>(i);
        auto* p = static_cast<unsigned char*>(malloc(n));
        handoff[idx] = {p, n};
        if (p == nullptr) {
          null_blocks.fetch_add(1);
          continue;
        }
        std::memset(p, fill(idx), n);
      }
    });
  }
  for (auto& th : ts) th.join();
  ts.clear();
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([t, &handoff, &damaged_blocks, fill] {
      int other = (t + 1) % kThreads;  // reads and frees another thread's blocks
      for (int i = 0; i < kPer; ++i) {
        std::size_t idx = static_cast<std::size_t>(other) * kPer + static_cast<std::size_t>(i);
        const Handed& h = handoff[idx];
        if (h.p == nullptr) continue;
        for (std::size_t b = 0; b < h.n; ++b) {
          if (h.p[b] != fill(idx)) {
            damaged_blocks.fetch_add(1);
            break;
          }
        }
        free(h.p);
      }
    });
  }
  for (auto& th : ts) th.join();
  EXPECT_EQ(null_blocks.load(), 0) << "malloc returned null";
  EXPECT_EQ(damaged_blocks.load(), 0)
      << "blocks whose bytes changed between the owner's write and the other thread's read";
}

TEST(Shim, ForkChildCanAllocate) {
  // Keep other threads busy in the allocator while forking, so locks are taken for real.
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < 3; ++t) {
    ts.emplace_back([&stop] {
      while (!stop.load()) {
        void* p = keep(malloc(100));
        void* q = keep(malloc(20000));
        free(p);
        free(q);
      }
    });
  }
  for (int round = 0; round < 6; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::vector<void*> v;
      for (int i = 0; i < 10000; ++i) v.push_back(malloc(static_cast<std::size_t>(i % 5000) + 1));
      for (void* p : v) free(p);
      std::thread th([] { free(keep(malloc(77))); });
      th.join();
      _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }
  stop = true;
  for (auto& th : ts) th.join();
}

TEST(Shim, ModulesScopesAndTransfer) {
  ASSERT_GE(kmm_module_load("test_mod"), 2);
  void* kept;
  void* leaked;
  {
    kmm::ModuleScope scope("test_mod");
    ASSERT_TRUE(scope.entered());
    kept = keep(malloc(1000));
    leaked = keep(malloc(3000));
  }
  void* host = malloc(1000);
  kmm_usage u{};
  ASSERT_EQ(kmm_module_usage("test_mod", &u), 0);
  EXPECT_EQ(u.objects, 2u);
  EXPECT_GE(u.bytes, 4000u);
  EXPECT_EQ(kmm_transfer(kept, nullptr), 0);  // to the host
  ASSERT_EQ(kmm_module_usage("test_mod", &u), 0);
  EXPECT_EQ(u.objects, 1u);
  EXPECT_EQ(kmm_module_unload("test_mod"), 0);
  (void)leaked;
  std::memset(kept, 5, 1000);
  free(kept);
  free(host);
}

// realloc finds a block's size and owner in one lookup: the block keeps its module's
// ownership when it moves, slab object and page run alike.
TEST(Shim, ReallocKeepsTheOwnerOfWhatItMoves) {
  ASSERT_GE(kmm_module_load("realloc_mod"), 2);
  void* small;
  void* run;
  {
    kmm::ModuleScope scope("realloc_mod");
    ASSERT_TRUE(scope.entered());
    small = keep(malloc(opaque(100)));
    run = keep(malloc(opaque(20000)));
  }
  std::memset(small, 7, 100);
  small = realloc(small, opaque(3000));  // outside the scope: the host's call
  run = realloc(run, opaque(200000));
  ASSERT_NE(small, nullptr);
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(static_cast<unsigned char*>(small)[99], 7);
  kmm_usage u{};
  ASSERT_EQ(kmm_module_usage("realloc_mod", &u), 0);
  EXPECT_EQ(u.objects, 2u) << "both moved blocks are still the module's";
  EXPECT_GE(u.bytes, 203000u);
  free(small);
  free(run);
  ASSERT_EQ(kmm_module_usage("realloc_mod", &u), 0);
  EXPECT_EQ(u.objects, 0u);
  EXPECT_EQ(kmm_module_unload("realloc_mod"), 0);
}

// A plug-in's page run grows in place while the plug-in is loaded, as a host's does
// (ReallocGrowsAPageRunInPlace). Once it is unloaded and a pass has begun (kmm_collect: the
// owner is flagged gone, in any protector mode), realloc moves it, and the moved block is the
// host's: a pass may sweep the gone owner's blocks at any moment, and only the move's free
// claims the old one against it (Kmalloc::grow_large_in_place, ModuleWindow; tests/protect,
// GrowInPlaceRacingTheReclaimOfAGoneModule and CollectorUnreachable.ABlockMovedDuringAPassIsTheCallers).
TEST(Shim, ReallocOfAPluginsPageRunGrowsInPlaceUntilItIsGone) {
  ASSERT_GE(kmm_module_load("grow_mod"), 2);
  unsigned char* p;
  {
    kmm::ModuleScope scope("grow_mod");
    ASSERT_TRUE(scope.entered());
    p = static_cast<unsigned char*>(keep(malloc(opaque(20000))));
  }
  ASSERT_NE(p, nullptr);
  for (std::size_t i = 0; i < 20000; ++i) p[i] = static_cast<unsigned char>(i * 13);
  auto* q = static_cast<unsigned char*>(realloc(p, opaque(24000)));
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q, p) << "a loaded plug-in's run grows where it is";
  kmm_usage u{};
  ASSERT_EQ(kmm_module_usage("grow_mod", &u), 0);
  EXPECT_EQ(u.objects, 1u);
  EXPECT_EQ(kmm_module_unload("grow_mod"), 0);
  kmm_collect();  // a pass begins: the owner is flagged gone
  auto* r = static_cast<unsigned char*>(realloc(q, opaque(200000)));
  ASSERT_NE(r, nullptr);
  EXPECT_NE(r, q) << "a gone plug-in's run moves";
  for (std::size_t i = 0; i < 20000; ++i) ASSERT_EQ(r[i], static_cast<unsigned char>(i * 13)) << i;
  if (kmm_module_usage("grow_mod", &u) == 0) {
    EXPECT_EQ(u.objects, 0u) << "the moved block is the host's";
  }
  free(r);
}

// glibc's internal names are kmm's: what they return, free() takes, and the other way round.
// The symbol a program finds by name (dlsym, as wrappers reach "the real malloc") is kmm's.
TEST(Shim, LibcNamesAreKmms) {
  using MallocFn = void* (*)(std::size_t);
  auto by_name = reinterpret_cast<MallocFn>(dlsym(RTLD_DEFAULT, "__libc_malloc"));
  ASSERT_NE(by_name, nullptr);
  void* a = by_name(opaque(100));
  ASSERT_NE(a, nullptr);
  EXPECT_GE(malloc_usable_size(a), 100u);
  free(a);  // under glibc's __libc_malloc this aborted: "pointer kmm does not own"

  void* b = keep(__libc_malloc(opaque(40)));
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(aligned(b, 16));
  b = __libc_realloc(b, opaque(5000));
  ASSERT_NE(b, nullptr);
  EXPECT_GE(malloc_usable_size(b), 5000u);
  free(b);

  auto* c = static_cast<unsigned char*>(__libc_calloc(opaque(10), 100));
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(c[i], 0);
  __libc_free(c);
  errno = 0;
  EXPECT_EQ(__libc_calloc(opaque(SIZE_MAX / 2), 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_EQ(__libc_realloc(keep(malloc(opaque(8))), 0), nullptr);  // frees, as realloc(p, 0)

  void* m = __libc_memalign(256, opaque(10));
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(aligned(m, 256));
  free(m);
  long page = sysconf(_SC_PAGESIZE);
  void* v = __libc_valloc(opaque(10));
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(aligned(v, static_cast<std::size_t>(page)));
  __libc_free(v);
  void* pv = __libc_pvalloc(opaque(10));
  ASSERT_NE(pv, nullptr);
  EXPECT_TRUE(aligned(pv, static_cast<std::size_t>(page)));
  EXPECT_GE(malloc_usable_size(pv), static_cast<std::size_t>(page));
  free(pv);
  __libc_free(nullptr);

  void* pm = nullptr;
  ASSERT_EQ(__posix_memalign(&pm, 64, opaque(100)), 0);
  EXPECT_TRUE(aligned(pm, 64));
  free(pm);
  void* untouched = &page;
  EXPECT_EQ(__posix_memalign(&untouched, 24, 8), EINVAL);
  EXPECT_EQ(untouched, static_cast<void*>(&page));
}

// posix_memalign with a bad alignment returns EINVAL and does not write the pointer.
TEST(Shim, PosixMemalignBadAlignmentLeavesPointer) {
  int sentinel = 0;
  void* p = &sentinel;
  EXPECT_EQ(posix_memalign(&p, 24, 8), EINVAL);  // not a power of two
  EXPECT_EQ(p, static_cast<void*>(&sentinel));
  EXPECT_EQ(posix_memalign(&p, sizeof(void*) / 2, 8), EINVAL);  // below sizeof(void*)
  EXPECT_EQ(p, static_cast<void*>(&sentinel));
  EXPECT_EQ(posix_memalign(&p, 0, 8), EINVAL);
  EXPECT_EQ(p, static_cast<void*>(&sentinel));
}

// reallocarray's n * size overflow fails with ENOMEM and leaves the block as it was.
TEST(Shim, ReallocarrayOverflowIsEnomem) {
  auto* p = static_cast<char*>(malloc(opaque(16)));
  ASSERT_NE(p, nullptr);
  std::memset(p, 'x', 16);
  errno = 0;
  EXPECT_EQ(reallocarray(p, opaque(SIZE_MAX / 4), 8), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  for (int i = 0; i < 16; ++i) ASSERT_EQ(p[i], 'x');
  p = static_cast<char*>(reallocarray(p, opaque(4), 8));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p[15], 'x');
  free(p);
}

// mallopt: glibc's parameters are accepted (1), an unknown one too, as glibc does; M_MXFAST
// outside glibc's range is refused (0) as glibc refuses it.
TEST(Shim, MalloptAcceptsWhatGlibcAccepts) {
  EXPECT_EQ(mallopt(M_ARENA_MAX, 1), 1);
  EXPECT_EQ(mallopt(M_MMAP_THRESHOLD, 1 << 20), 1);
  EXPECT_EQ(mallopt(M_TRIM_THRESHOLD, 1 << 20), 1);
  EXPECT_EQ(mallopt(M_TOP_PAD, 0), 1);
  EXPECT_EQ(mallopt(M_PERTURB, 0), 1);
  EXPECT_EQ(mallopt(12345, 7), 1);
  EXPECT_EQ(mallopt(M_MXFAST, 64), 1);
  EXPECT_EQ(mallopt(M_MXFAST, -1), 0);
  EXPECT_EQ(mallopt(M_MXFAST, 1 << 20), 0);
  void* p = keep(malloc(opaque(50)));  // and malloc still works
  ASSERT_NE(p, nullptr);
  free(p);
}

// glibc's own malloc, as a library reaches it through dlopen("libc.so.6") (null when it
// cannot be found, or is kmm's).
using MallocFn = void* (*)(std::size_t);
MallocFn glibc_malloc_fn() {
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  if (libc == nullptr) return nullptr;
  auto fn = reinterpret_cast<MallocFn>(dlsym(libc, "malloc"));
  dlclose(libc);  // RTLD_NOLOAD: only the reference just taken
  return reinterpret_cast<void*>(fn) == reinterpret_cast<void*>(&malloc) ? nullptr : fn;
}

// realloc and malloc_usable_size take glibc's blocks as free does: the contents move into a
// block of kmm's and the old one goes back to glibc (a small block of its brk heap, and one
// over its mmap threshold).
TEST(Shim, ReallocAndUsableSizeOfGlibcBlocks) {
  MallocFn glibc_malloc = glibc_malloc_fn();
  ASSERT_NE(glibc_malloc, nullptr);
  for (std::size_t n : {std::size_t{100}, std::size_t{1} << 20}) {
    auto* p = static_cast<unsigned char*>(glibc_malloc(opaque(n)));
    ASSERT_NE(p, nullptr);
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<unsigned char>(i * 7);
    EXPECT_GE(malloc_usable_size(p), n) << n;
    auto* q = static_cast<unsigned char*>(realloc(p, opaque(2 * n)));
    ASSERT_NE(q, nullptr) << n;
    std::size_t damaged = 0;
    for (std::size_t i = 0; i < n; ++i) damaged += q[i] != static_cast<unsigned char>(i * 7);
    EXPECT_EQ(damaged, 0u) << n;
    EXPECT_GE(malloc_usable_size(q), 2 * n);
    free(q);
  }
}

// Another library's pthread key, made after kmm's (kmm makes its key at its first malloc),
// has its destructor run after kmm's exit hook: glibc runs key destructors in key order. A
// free or a malloc there must not build the exiting thread a new cache that no exit hook
// will ever give back: its page, its thread id and every slab it adopted would be lost, one
// set per thread (a program whose threads free their last blocks from a key destructor grew
// ~130 KB a thread, and after ~4095 threads every new thread ran without a cache).
pthread_key_t g_late_key;

void late_key_destructor(void* p) {
  free(p);                       // the exiting thread's own block, on its own (disowned) slab
  void* q = malloc(opaque(48));  // and a late allocation
  keep(q);
  free(q);
}

std::size_t heap_bytes_in_use() {
  malloc_trim(0);  // the calling thread's slabs and every cache's empty slabs back to the pages
  struct mallinfo2 mi = mallinfo2();
  return mi.arena - mi.fordblks;  // frames kmm holds: slabs, thread caches, page runs
}

TEST(Shim, FreesInALaterKeyDestructorLeaveNoCacheBehind) {
  keep(malloc(opaque(16)));  // kmm's key first
  ASSERT_EQ(pthread_key_create(&g_late_key, late_key_destructor), 0);
  auto thread_with_a_late_free = [] {
    std::thread t([] {
      auto* p = static_cast<unsigned char*>(malloc(opaque(32)));
      std::memset(p, 0x5A, 32);
      pthread_setspecific(g_late_key, p);
    });
    t.join();
  };
  for (int i = 0; i < 20; ++i) thread_with_a_late_free();  // the classes' first slabs
  const std::size_t before = heap_bytes_in_use();
  constexpr int kThreads = 300;
  for (int i = 0; i < kThreads; ++i) thread_with_a_late_free();
  const std::size_t after = heap_bytes_in_use();
  EXPECT_LT(after, before + (std::size_t{1} << 20))
      << kThreads << " threads left " << (after - before) / 1024 << " KiB behind (before: " << before / 1024 << " KiB)";
  pthread_key_delete(g_late_key);
}

// A block from glibc's own malloc (a library that reached it through dlopen("libc.so.6"),
// or memory allocated before the preload took over) freed with free(): handed back to glibc,
// not an abort. Small blocks come from glibc's brk heap, large ones are its mmapped chunks.
TEST(Shim, FreeOfGlibcBlockGoesBackToGlibc) {
  MallocFn glibc_malloc = glibc_malloc_fn();
  ASSERT_NE(glibc_malloc, nullptr);  // found, and glibc's, not kmm's
  for (int round = 0; round < 100; ++round) {
    void* small = glibc_malloc(opaque(24 + round));
    void* large = glibc_malloc(opaque(1u << 20));  // over glibc's mmap threshold
    ASSERT_NE(small, nullptr);
    ASSERT_NE(large, nullptr);
    std::memset(small, 1, 24);
    std::memset(large, 1, 1u << 20);
    free(small);
    free(large);
  }
}

// A pointer inside a live huge block is kmm's, whatever its bytes say: here they are a glibc
// mmapped chunk's header (prev_size 0, one page, IS_MMAPPED) at a page start, the shape
// free() hands to glibc's free, which would unmap that page of the live block. It is
// reported as an invalid free instead. (Blocks made and freed first, so that the table's
// index of live mappings has moved entries.)
TEST(ShimDeathTest, FreeInsideAHugeBlockIsReportedWhateverItsBytesSay) {
  EXPECT_DEATH(
      {
        void* before[4];
        for (void*& b : before) b = malloc(opaque(std::size_t{5} << 20));
        free(before[0]);
        free(before[2]);
        auto* block = static_cast<unsigned char*>(malloc(opaque(std::size_t{40} << 20)));
        auto* header = reinterpret_cast<std::size_t*>(block + 4096);
        header[0] = 0;
        header[1] = 4096 | 2;
        void* volatile inside = block + 4096 + 2 * sizeof(std::size_t);
        free(inside);
      },
      "invalid free .* in free: .*inside a huge block");
}

// free() of a pointer just past the start of a page that cannot be read (a guard page): the
// check for a glibc chunk header reads it without faulting, and the pointer is reported as
// foreign, not a SIGSEGV in the allocator.
TEST(ShimDeathTest, FreeIntoAnUnreadablePageIsReportedNotACrash) {
  EXPECT_DEATH(
      {
        void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        void* volatile past_header = static_cast<char*>(page) + 2 * sizeof(std::size_t);
        free(past_header);
      },
      "kmm does not own in free: .*not allocated by kmm");
}

TEST(ShimDeathTest, DoubleFreeAbortsByDefault) {
  EXPECT_DEATH(
      {
        void* volatile alias = keep(malloc(40));
        free(alias);
        free(alias);
      },
      "double free in free");
}

// realloc of a block already freed, or of a pointer inside a page run, is reported before
// anything is copied from it.
TEST(ShimDeathTest, ReallocOfAFreedBlockAborts) {
  EXPECT_DEATH(
      {
        void* volatile alias = keep(malloc(opaque(40)));
        free(alias);
        keep(realloc(alias, opaque(100)));
      },
      "double free in realloc");
}

TEST(ShimDeathTest, ReallocInsideAPageRunAborts) {
  EXPECT_DEATH(
      {
        auto* run = static_cast<char*>(keep(malloc(opaque(20000))));
        keep(realloc(run + 64, opaque(40000)));
      },
      "invalid free \\(not the start of a live object\\) in realloc");
}

TEST(ShimDeathTest, ForeignFreeAborts) {
  static char not_heap[64];
  EXPECT_DEATH(free(keep(not_heap + 16)), "pointer kmm does not own in free");
}

}  // namespace

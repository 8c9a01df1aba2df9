// kmm/shim/alloc.cpp — boot on first use, KMM_OPTIONS, the allocation core, fork.
//
// Boot: the first allocation takes g_boot_lock, reads KMM_OPTIONS (from __environ, or from
// /proc/self/environ with plain open/read when libc has not set __environ yet — never getenv;
// not at all in secure-execution mode, getauxval(AT_SECURE): a setuid/setgid program or one
// with file capabilities runs with kmm's defaults, silently, as glibc ignores its tunables),
// boots the Kernel over a large reservation that grows on demand, publishes g_kernel, then
// registers the fork handlers (pthread_atfork may itself allocate: g_kernel is already
// there for it). An allocation made while the boot is under way (on this thread) is served
// from a static bootstrap arena, which is never freed.
//
// fork: prepare takes the shim's locks (plug-in table, huge table) and then every lock of the
// kernel in its order (Kernel::lock_all); parent and child release them. The child is single
// threaded: the other threads' slabs stay theirs (their frees in the child go onto remote lists
// nobody collects: memory the child never reuses, never a fault), and the collector and stat
// threads are restarted lazily if they are needed again.
//
// Depends on: shim.h, shim/options.h (KMM_OPTIONS's keys and their parser), kernel/,
// base/options.h, base/report.h.
// Invariants: every RAM block handed out is at least 16 bytes and 16-aligned; alloc never
// returns ZERO_SIZE_PTR; a block's owner is never kOwnerFree while it is live.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "base/bits.h"
#include "base/options.h"
#include "base/report.h"
#include "base/text.h"
#include "shim/fast_path.h"
#include "shim/options.h"
#include "shim/shim.h"

extern char** __environ;

namespace kmm::shim {

Kernel* g_kernel = nullptr;
std::uint64_t g_heap_gen = kNoHeapGen;
std::uintptr_t g_ram_lo = 0;
std::size_t g_ram_bytes = 0;
Options g_opts;

namespace {

SpinLock g_boot_lock;
bool g_boot_failed = false;
__attribute__((tls_model("initial-exec"))) thread_local bool t_booting = false;

// --- bootstrap arena -----------------------------------------------------------------------
alignas(64) char g_arena[256 * 1024];
std::size_t g_arena_used = 0;

void* arena_alloc(std::size_t size, std::size_t align) {
  if (align < 16) align = 16;
  std::size_t at = (g_arena_used + align - 1) & ~(align - 1);
  if (size > sizeof g_arena || at > sizeof g_arena - size) return nullptr;
  g_arena_used = at + size;
  return g_arena + at;
}

// KMM_OPTIONS's value, copied into buf (empty when unset, and in secure-execution mode: the
// environment of a setuid program is its unprivileged caller's, and stats=PATH would write
// where the caller cannot — see docs/SECURITY.md). True when it did not fit: buf then holds
// its first cap - 1 bytes.
bool read_options_text(char* buf, std::size_t cap) {
  buf[0] = '\0';
  if (getauxval(AT_SECURE) != 0) return false;
  static const char kKey[] = "KMM_OPTIONS=";
  constexpr std::size_t kKeyLen = sizeof kKey - 1;
  if (__environ != nullptr) {
    for (char** e = __environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, kKey, kKeyLen) == 0) {
        str_copy(buf, cap, *e + kKeyLen);
        return std::strlen(*e + kKeyLen) >= cap;
      }
    }
    return false;
  }
  // Before libc has set __environ: the kernel's copy of the environment.
  int fd = ::open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  static char chunk[4096];
  std::size_t match = 0;  // bytes of kKey matched at the start of the current entry
  bool at_start = true, copying = false, skipping = false;
  std::size_t out = 0;
  bool cut = false;
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      char c = chunk[i];
      if (c == '\0') {
        if (copying) {
          buf[out < cap ? out : cap - 1] = '\0';
          ::close(fd);
          return cut;
        }
        at_start = true;
        match = 0;
        skipping = false;
        continue;
      }
      if (copying) {
        if (out + 1 < cap)
          buf[out++] = c;
        else
          cut = true;
        continue;
      }
      if (skipping) continue;
      if (at_start || match > 0) {
        at_start = false;
        if (c == kKey[match]) {
          if (++match == kKeyLen) copying = true;
        } else {
          skipping = true;
        }
      }
    }
  }
  if (copying) buf[out < cap ? out : cap - 1] = '\0';
  ::close(fd);
  return cut;
}

// --- fork -----------------------------------------------------------------------------------
void fork_prepare() {
  Kernel* k = g_kernel;
  stats_fork_lock();
  mallinfo_fork_lock();
  module_usage_fork_lock();
  modules_fork_lock();
  huge_lock();
  if (k != nullptr) k->lock_all();
}
void fork_parent() {
  Kernel* k = g_kernel;
  if (k != nullptr) k->unlock_all();
  huge_unlock();
  modules_fork_unlock();
  module_usage_fork_unlock();
  mallinfo_fork_unlock();
  stats_fork_unlock();
}
void fork_child() {
  Kernel* k = g_kernel;
  if (k != nullptr) {
    k->unlock_all();
    k->slab().close_windows_after_fork();  // the parent's other threads are not here
  }
  huge_unlock();
  modules_fork_unlock();
  module_usage_fork_unlock();
  mallinfo_fork_unlock();
  stats_fork_unlock();
  modules_fork_child();
  stat_server_fork_child();
}

// The order of the fork handlers. Prepare handlers run newest first, so kmm's, which takes
// every lock, must be the oldest: a library's handler registered before it that allocates
// (its prepare runs after kmm's) spun for ever on a lock its own thread held (review: a
// constructor's pthread_atfork, then `kmm exec` or LD_PRELOAD). Every registration comes
// through __register_atfork (pthread_atfork is libc_nonshared's call of it): kmm's handlers
// go in first, before the first registration of anyone else's, whenever that is.
}  // namespace

extern "C" void* __dso_handle;  // this library's, for its handlers

namespace {
using RegisterAtforkFn = int (*)(void (*)(), void (*)(), void (*)(), void*);
RegisterAtforkFn g_real_register_atfork = nullptr;
int g_atfork_state = 0;  // 0: not registered, 1: registering (a dlsym that boots), 2: registered

RegisterAtforkFn real_register_atfork() {
  RegisterAtforkFn fn = __atomic_load_n(&g_real_register_atfork, __ATOMIC_ACQUIRE);
  if (fn == nullptr) {
    fn = reinterpret_cast<RegisterAtforkFn>(dlsym(RTLD_NEXT, "__register_atfork"));
    __atomic_store_n(&g_real_register_atfork, fn, __ATOMIC_RELEASE);
  }
  return fn;
}

void register_fork_handlers() {
  int expected = 0;
  if (!__atomic_compare_exchange_n(&g_atfork_state, &expected, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return;
  if (RegisterAtforkFn fn = real_register_atfork()) fn(fork_prepare, fork_parent, fork_child, __dso_handle);
  __atomic_store_n(&g_atfork_state, 2, __ATOMIC_RELEASE);
}
}  // namespace

// glibc's registration of fork handlers (GLIBC_2.3.2; pthread_atfork calls it): kmm's own
// handlers first, then the caller's.
extern "C" __attribute__((visibility("default"))) int __register_atfork(void (*prepare)(), void (*parent)(),
                                                                        void (*child)(), void* dso_handle) {
  register_fork_handlers();
  RegisterAtforkFn fn = real_register_atfork();
  return fn != nullptr ? fn(prepare, parent, child, dso_handle) : ENOMEM;
}

namespace {

// stats=PATH relative to the directory the program started in, not the one it is in at exit
// (a program that chdir'd wrote its stats elsewhere: review). getcwd into the options' own
// buffer, no allocation; a path that would not fit stays as given.
void absolute_stats_path(Options* o) {
  if (o->stats_path[0] == '\0' || o->stats_path[0] == '/') return;
  char cwd[sizeof o->stats_path];
  if (::getcwd(cwd, sizeof cwd) == nullptr) return;
  const std::size_t dir = std::strlen(cwd), rel = std::strlen(o->stats_path);
  if (dir + 1 + rel >= sizeof o->stats_path) return;
  std::memmove(o->stats_path + dir + 1, o->stats_path, rel + 1);
  std::memcpy(o->stats_path, cwd, dir);
  o->stats_path[dir] = '/';
}

Kernel* boot_with(const Options& o) {
  BootConfig cfg;
  std::uint64_t ram = o.ram;
  // 8 GiB of address space for blocks up to 4 MiB (larger ones are mapped on their own).
  // mem_map's descriptors are touched only as frames come into use (lazy_boot_frames: its own
  // 1/128, 512 KiB here, is never written), so the reservation costs address space, not RSS;
  // ram=64G raises it.
  if (ram == 0) ram = sizeof(void*) == 8 ? (std::uint64_t{8} << 30) : (std::uint64_t{1} << 30);
  cfg.online_bytes = 4ull << 20;
  cfg.lazy_boot_frames = true;  // mem_map's 512 KiB of own descriptors never touched
  cfg.grow_bytes = 4ull << 20;
  cfg.page_offset = 0xffff000000000000ull;
  cfg.kmalloc = KmallocPolicy::kKmalloc2;
  cfg.thread_caches = o.thread_cache;
  cfg.min_partial = kPreloadMinPartial;
  // Emptied slabs stay with their cache until the purge round (purge.cpp) or the heap's growth
  // (Kernel::grow), up to 8 MiB for all caches together: a program that frees a list and builds
  // it again reuses them with their free lists intact (workload `small`: a new slab, its free
  // list threaded and its buddy block split, for every 4 KiB of every list before; a batch of
  // 1000 4 KiB blocks freed and allocated again on two threads: 67 slabs a thread). They would
  // stay resident in the buddy allocator just as long.
  cfg.slab_empty_keep_bytes = kPreloadEmptyKeepBytes;
  cfg.min_free_kbytes = ~std::uint64_t{0};
  cfg.protector = o.protect;
  cfg.gc_delay_ns = o.gc_delay_ns;
  cfg.cross_free = CrossFree::kAllow;
  cfg.hardening = o.hardening;
  // A smaller reservation when the address space is limited (ulimit -v, 32-bit hosts).
  for (; ram >= kMinPreloadRam; ram /= 4) {
    cfg.ram_bytes = ram;
    BootError err;
    if (Kernel* k = Kernel::boot(cfg, &err)) return k;
  }
  return nullptr;
}

}  // namespace

namespace {
void build_classes(Kernel* k);  // below, with the allocation core
}  // namespace

namespace {
constexpr std::size_t kMaxBuddyBytes = kPageSize << kMaxOrder;  // 4 MiB
// The largest block kmm's RAM serves; larger ones are mappings of their own (huge.cpp). With
// guard_pages, a run needs a frame more than its pages for its guard, which the largest buddy
// block has no room for: blocks within a page of 4 MiB go to a guarded mapping instead of an
// unguarded run (set at boot, before g_kernel is published; read only after it is).
std::size_t g_ram_max_bytes = kMaxBuddyBytes;
}  // namespace

bool in_bootstrap(const void* p) {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  auto b = reinterpret_cast<std::uintptr_t>(g_arena);
  return a >= b && a < b + sizeof g_arena;
}

namespace {
// failslab's routing for malloc's fast path, which tests no cache's alloc_tc_slot
// (SlabAllocator::alloc_fast_owned): while failslab is on, g_heap_gen is kNoHeapGen, which no
// thread's slot holds, so every malloc takes the general path, where failslab is checked.
void route_malloc_fast_path(bool slow) {
  Kernel* k = __atomic_load_n(&g_kernel, __ATOMIC_ACQUIRE);
  __atomic_store_n(&g_heap_gen, slow || k == nullptr ? kNoHeapGen : k->slab().heap_gen(), __ATOMIC_RELEASE);
}
}  // namespace

Kernel* boot_kernel() {
  if (t_booting || g_boot_failed) return nullptr;
  // errno as the program left it once the heap is up (C: 0 at main): boot_with's mmap of a
  // reservation the host refuses (ulimit -v) fails with ENOMEM before a smaller one succeeds.
  const int saved_errno = errno;
  bool registered = false;
  {
    LockGuard g(g_boot_lock);
    if (g_kernel != nullptr) return g_kernel;
    if (g_boot_failed) return nullptr;
    t_booting = true;
    static char text[8192];
    if (read_options_text(text, sizeof text)) {
      // Too long: the option that was cut is dropped whole (a cut value is one nobody gave).
      char* last = std::strrchr(text, ':');
      static const char kMsg[] =
          "kmm: warning: KMM_OPTIONS is longer than 8191 bytes; the option cut there and any after it are ignored\n";
      write_report_text(kMsg, sizeof kMsg - 1);
      if (last != nullptr)
        *last = '\0';
      else
        text[0] = '\0';
    }
    parse_options(text, visit_option, &g_opts);
    absolute_stats_path(&g_opts);
    if (g_opts.on_error_report) set_on_error(OnError::kReport);
    Kernel* k = boot_with(g_opts);
    t_booting = false;
    if (k == nullptr) {
      g_boot_failed = true;
      static const char kMsg[] = "kmm: ERROR: cannot boot the allocator (no address space); allocations fail\n";
      write_report_text(kMsg, sizeof kMsg - 1);
      return nullptr;
    }
    build_classes(k);
    if (k->kmalloc_layer().config().guard_platform != nullptr) g_ram_max_bytes = kMaxBuddyBytes - kPageSize;
    if (const std::uint64_t held = k->slab().config().hardening.quarantine_bytes;
        held != g_opts.hardening.quarantine_bytes) {
      // SlabAllocator::init: at most a quarter of ram waits in the quarantine.
      StackText<192> line;
      line.str("kmm: warning: quarantine=").u(g_opts.hardening.quarantine_bytes);
      line.str(" is more than a quarter of ram; the quarantine holds at most ").u(held).str(" bytes").nl();
      write_report_text(line.data(), line.size());
    }
    // About half of the Kernel object's pages (tables most programs never fill) were written
    // only with the constructor's zeros: back to the OS (10 of 19 pages: 40 KB of every
    // process's RSS). Here, before g_kernel is published: nothing else reads them yet.
    k->release_zero_pages();
    purge_boot(k);
    // Huge blocks are the collector's too: reclaimed with an unloaded plug-in's other blocks.
    k->collector().add_space(huge_space());
    __atomic_store_n(&g_kernel, k, __ATOMIC_RELEASE);
    // g_heap_gen after g_kernel (shim.h), and from now on by failslab's routing (at once: the
    // observer is called with failslab's state when set).
    k->slab().set_route_observer(route_malloc_fast_path);
    // free's fast path finds a slab's head by masking (SlabAllocator::free_fast_masked): the
    // slab allocator's range for it (in_masked_ram), empty with RAM that is not aligned for it
    // (never, for the shim's own reservation), when every free takes the general path.
    __atomic_store_n(&g_ram_lo, k->slab().masked_ram_lo(), __ATOMIC_RELAXED);
    __atomic_store_n(&g_ram_bytes, k->slab().masked_ram_bytes(), __ATOMIC_RELEASE);  // after g_kernel (shim.h)
    // Armed only now: boot and the class caches are not what fail_* means to fail.
    for (unsigned i = 0; i < kNrFaultPoints; ++i)
      if (g_opts.fault_on[i]) fault_configure(static_cast<FaultPoint>(i), g_opts.fault[i]);
    registered = true;
  }
  if (registered) {
    register_fork_handlers();
    // reclaim-unreachable: the root scan and its world stop are ready before any module is.
    if (g_opts.protect == ProtectorMode::kReclaimUnreachable) roots_install(g_kernel);
  }
  errno = saved_errno;
  return g_kernel;
}

// --- allocation core --------------------------------------------------------------------------

// Size classes of malloc: Linux's kmalloc classes (16 .. 8k, pow2 plus 96 and 192) and, in
// between, caches of the shim's own ("malloc-48" ...) so that the step between classes is at
// most 1/4 of the size (16 bytes up to 128): kmalloc's coarse classes waste up to half of a
// 700..2048-byte block. Every class is a multiple of 16 (glibc's alignment). A class table
// indexed by (size + 15) / 16 picks the cache with no branches (fast_path.h reads it).
KmemCache* g_class[kMaxClassBytes / 16 + 1];
own_off_t g_class_own[kMaxClassBytes / 16 + 1];

namespace {
constexpr std::uint32_t kExtraClasses[] = {48,  80,  112,  160,  224,  320,  384,  448,  640,
                                           768, 896, 1280, 1536, 1792, 2560, 3072, 3584, 6144};

void build_classes(Kernel* k) {
  KmemCache* extra[sizeof kExtraClasses / sizeof kExtraClasses[0]] = {};
  for (unsigned i = 0; i < sizeof kExtraClasses / sizeof kExtraClasses[0]; ++i) {
    StackText<32> name;
    name.str("malloc-").u(kExtraClasses[i]);
    extra[i] = k->kmem_cache_create(name.data(), kExtraClasses[i], 16, 0);
  }
  for (std::size_t idx = 0; idx <= kMaxClassBytes / 16; ++idx) {
    std::size_t n = idx == 0 ? 16 : idx * 16;
    KmemCache* best = k->kmalloc_layer().cache_for(n);
    for (unsigned i = 0; i < sizeof kExtraClasses / sizeof kExtraClasses[0]; ++i) {
      // Object sizes, not strides: a red zone widens every slot, and malloc(128) belongs in
      // kmalloc-128, not in malloc-160 because kmalloc-128's slots are 144 bytes apart.
      if (extra[i] != nullptr && kExtraClasses[i] >= n && kExtraClasses[i] < best->object_size) best = extra[i];
    }
    g_class[idx] = best;
    // A cache threads own no slab of (no tc_slot left, a debug cache): the slot whose pop always
    // fails, so malloc's fast path sends it to the general path with no test of its own.
    g_class_own[idx] = own_offset(pop_slot_of(best));
  }
}

// gfp: GFP_KERNEL, or with __GFP_ZERO for calloc (a slab object is cleared; a page run is
// not when its frames read as zero already: Kmalloc::kmalloc_large, buddy.h).
inline void* ram_alloc(Kernel* k, std::size_t size, owner_t owner, gfp_t gfp = GFP_KERNEL) {
  if (__builtin_expect(size <= kMaxClassBytes, 1)) return k->slab().alloc(g_class[(size + 15) >> 4], gfp, owner, size);
  return k->kmalloc_layer().kmalloc(size, gfp, owner);
}
}  // namespace

void* alloc_general(std::size_t size, owner_t owner) {
  Kernel* k = kernel();
  if (__builtin_expect(k == nullptr, 0)) return t_booting ? arena_alloc(size, 16) : nullptr;
  if (size <= g_ram_max_bytes) return ram_alloc(k, size, owner);
  return huge_alloc(size, 0, owner);
}

void* alloc_zeroed(std::size_t n, std::size_t size, owner_t owner) {
  std::size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) return nullptr;
  Kernel* k = kernel();
  if (k == nullptr) return t_booting ? arena_alloc(bytes, 16) : nullptr;  // the arena is zero
  if (bytes > g_ram_max_bytes) return huge_alloc(bytes, 0, owner, /*zero=*/true);  // cleared if reused
  return ram_alloc(k, bytes, owner, GFP_KERNEL | __GFP_ZERO);
}

void* alloc_aligned(std::size_t align, std::size_t size, owner_t owner) {
  if (align <= 16) return alloc(size, owner);
  Kernel* k = kernel();
  if (k == nullptr) return t_booting ? arena_alloc(size, align) : nullptr;
  std::size_t need = size > align ? size : align;
  // Slots of a power-of-two class lie at multiples of their size in slabs aligned to their
  // size; power-of-two page runs are buddy blocks aligned to their size: relative to the RAM's
  // base, so in host addresses only up to the base's own alignment. Boot asks for a 4 MiB-
  // aligned reservation but takes a page-aligned one when the address space is short (ulimit
  // -v), and posix_memalign(4 MiB) then returned a block aligned to 2 MiB (review): a larger
  // alignment than the base's is a mapping of its own.
  const auto base = reinterpret_cast<std::uintptr_t>(k->phys().base());
  const std::uintptr_t base_align = base & (~base + 1);  // its lowest set bit
  std::size_t p2 = need <= kMaxBuddyBytes ? std::size_t{1} << (ilog2(need - 1) + 1) : 0;
  if (p2 != 0 && p2 <= g_ram_max_bytes && (p2 <= base_align || align <= base_align)) {
    if (p2 < 32) p2 = 32;
    Kmalloc& km = k->kmalloc_layer();
    void* p = km.kmalloc(p2, GFP_KERNEL, owner);
    // A block that keeps the size asked for (red zone, guarded run) keeps `size`, not the
    // power of two: an overflow past what was asked for is caught.
    if (p != nullptr && size != 0 && size < p2 && km.keeps_asked_sizes()) km.resize_asked(p, size, "memalign");
    return p;
  }
  return huge_alloc(size, align, owner);
}

namespace {
// A pointer inside a huge block's mapping, or one kmm keeps cached, that no live block starts
// at: reported (at a cached mapping's start, as a double free) and true. Never glibc's,
// whatever its bytes say (foreign.cpp).
bool reported_as_huge_leftover(void* p, const char* action) {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  if (!huge_overlaps(a, a + 1)) return false;
  if (huge_cache_starts_at(a))
    report({ErrorKind::kDoubleFree, action, p, nullptr, 0,
            "a huge block freed before: its mapping waits in kmm's cache for reuse"});
  else
    report({ErrorKind::kInvalidFree, action, p, nullptr, 0,
            "inside a huge block (or a freed one kmm keeps), not the start of a live block"});
  return true;
}
}  // namespace

void release_general(void* p, const char* action) {
  if (p == nullptr) return;
  Kernel* k = g_kernel;
  if (k != nullptr && k->phys().owns(p)) {
    k->kmalloc_layer().kfree(p, action);
    purge_tick(k);
    return;
  }
  if (huge_free(p, action)) {
    if (k != nullptr) purge_tick_now(k);
    return;
  }
  if (in_bootstrap(p)) return;
  if (reported_as_huge_leftover(p, action)) return;
  if (glibc_free(p)) return;  // glibc's malloc made it (foreign.cpp)
  report({ErrorKind::kForeignPointer, action, p, nullptr, 0,
          "not allocated by kmm (before the preload took over, or a bad pointer)"});
}

std::size_t usable_size(const void* p) {
  if (p == nullptr) return 0;
  Kernel* k = g_kernel;
  if (k != nullptr && k->phys().owns(p)) return k->ksize(p);
  if (std::size_t hs = huge_size(p)) return hs;
  return glibc_usable_size(p);
}

owner_t block_owner(const void* p) {
  Kernel* k = g_kernel;
  if (k != nullptr && k->phys().owns(p)) return k->owner_of(p);
  return huge_owner(p);
}

bool set_block_owner(const void* p, owner_t owner) {
  Kernel* k = g_kernel;
  if (k != nullptr && k->phys().owns(p)) return k->transfer(p, owner);
  return huge_set_owner(p, owner);
}

void* resize(void* p, std::size_t size, owner_t owner, const char* action) {
  if (p == nullptr) return alloc(size, owner);
  Kernel* k = g_kernel;
  std::size_t have;
  owner_t keep;
  bool in_ram = k != nullptr && k->phys().owns(p);
  if (in_ram) {
    have = k->ksize_owner(p, &keep);  // one lookup for the size and the owner
    if (have == 0) {
      k->kmalloc_layer().kfree(p, action);  // names the problem (double or invalid free)
      return nullptr;
    }
    // Shrinking by less than half (or within the 16-byte minimum) stays in place; so does a
    // block that keeps the size asked for (a debug cache's object, a guarded page run) resized
    // within its slot or frames, its red zone or slack following the size.
    bool shrink_far = size < have / 2 && have > 16;
    Kmalloc& km = k->kmalloc_layer();
    if (!shrink_far && km.keeps_asked_sizes() && km.resize_asked(p, size, action)) return p;
    if (size <= have && !shrink_far) return p;
  } else if (std::size_t hs = huge_size(p)) {
    if (size > g_ram_max_bytes) {
      // mremap; an over-aligned block may move to where it has malloc's alignment only, as
      // glibc's realloc does (C and POSIX promise no more). A gone plug-in's block becomes the
      // caller's (ModuleWindow::gone, as below): a snapshot pass marks huge blocks by address,
      // and one that moved meanwhile would be found unmarked and unmapped under the host.
      if (k != nullptr) {
        ModuleWindow window(k->slab(), huge_owner(p));
        const owner_t to = !window.gone() ? kOwnerFree : owner != kOwnerFree ? owner : kOwnerKernel;
        if (void* q = huge_resize(p, size, action, to)) return q;
      } else if (void* q = huge_resize(p, size, action)) {
        return q;
      }
    }
    have = hs;
    keep = huge_owner(p);
  } else if (in_bootstrap(p)) {
    have = static_cast<std::size_t>(g_arena + sizeof g_arena - static_cast<char*>(p));
    keep = owner;
  } else if (reported_as_huge_leftover(p, action)) {
    return nullptr;  // a freed huge block's realloc: a double free, as free says
  } else if (std::size_t gs = glibc_usable_size(p)) {
    // glibc's block, as free takes it: copied into one of kmm's, then given back to glibc
    // (release -> glibc_free).
    have = gs;
    keep = owner;
  } else {
    report({ErrorKind::kForeignPointer, action, p, nullptr, 0, "not allocated by kmm"});
    return nullptr;
  }
  std::size_t want = size;
  // Growing a page run: in place when the frames after it are free (no copy, and the pages
  // already touched stay where they are), else moved; either way with room for the next
  // growth, up to twice what it had, as a vector doubles: repeated small growth stays linear
  // and takes the zone lock a logarithmic number of times. (`realloc 2 4`, two threads growing
  // strings by eighths, spent a quarter of its time waiting for that lock with no room; with
  // a quarter more it took it 73 K times in 24 K strings to grow in place, with double 27 K,
  // and ran 7 % faster, its faults and peak RSS the same: frames of headroom that are never
  // written are never faulted in.)
  if (in_ram && size > have && have > kKmallocMaxCacheSize && size < g_ram_max_bytes) {
    std::size_t roomy = have * 2;
    roomy = roomy < g_ram_max_bytes ? roomy : g_ram_max_bytes;
    if (k->kmalloc_layer().grow_large_in_place(p, size, GFP_KERNEL, roomy)) return p;
    if (roomy > size) want = roomy;
  }
  if (keep == kOwnerFree) keep = owner;
  void* q;
  if (k != nullptr) {
    // A gone plug-in's block becomes the caller's (ModuleWindow::gone): a pass that marked
    // before this move would sweep a new block of the dead owner while the host holds it.
    ModuleWindow window(k->slab(), keep);
    const owner_t to = window.gone() ? owner : keep;
    q = alloc(want, to);
    // No room for the headroom: the size asked for may still fit (realloc fails only where
    // malloc of the new size would).
    if (q == nullptr && want != size) q = alloc(want = size, to);
  } else {
    q = alloc(want, keep);
  }
  if (q == nullptr) return nullptr;
  // A guarded run's size is what was asked, not the room left for growth: an overrun past
  // `size` is caught, and the next growth within the frames stays in place.
  if (want != size) k->kmalloc_layer().resize_asked(q, size, action);
  std::memcpy(q, p, have < size ? have : size);
  release(p, action);
  return q;
}

}  // namespace kmm::shim

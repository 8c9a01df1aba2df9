// kmm/shim/modules.cpp — shared objects as modules; the collector thread; the kmm_* API.
//
// dlopen/dlclose are hooked (the real ones found lazily with dlsym(RTLD_NEXT), after the heap
// exists, guarded against recursion). A successful dlopen of a file is an insmod named after
// the file's base name, and its loaded segments' address range [lo, hi) goes into the plug-in
// table: a small array sorted by lo, read without a lock under a sequence counter (a writer
// bumps it to odd, edits, bumps it to even; a reader retries when it saw it change). A
// dlclose that really unmaps the object (checked with dl_iterate_phdr) is an rmmod: the
// range leaves the table and the collector thread is woken.
//
// Owner of an allocation: shim.h owner_for() first compares the return address with
// [g_plugin_lo, g_plugin_hi), the hull of every range — with no plug-in loaded the hull is
// empty and nothing more happens — then binary-searches the table here.
//
// The collector thread starts with the first plug-in when the protector mode is not off. It
// runs at idle priority (SCHED_IDLE, else nice 19), wakes every 100 ms, and calls
// Kernel::idle() with the time that passed, so passes are rate-limited by gc_delay as in the
// paper's idle loop. A forked child has no collector thread until its next dlopen.
//
// Depends on: shim.h, kernel/, <dlfcn.h>, <link.h>, pthreads.
// Invariants: table entries are sorted by lo and disjoint; g_plugin_lo/hi is their hull (or
// lo > hi when empty); each entry's owner is a Live module.
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <new>

#include "base/report.h"
#include "base/text.h"
#include "kmm/kmm.h"
#include "shim/shim.h"

#define KMM_EXPORT extern "C" __attribute__((visibility("default")))

namespace kmm::shim {

std::uintptr_t g_plugin_lo = ~std::uintptr_t{0};
std::uintptr_t g_plugin_hi = 0;

namespace {

struct Plugin {
  std::uintptr_t lo, hi;
  void* handle;
  unsigned refs;
  owner_t owner;
  char name[kModuleNameLen];
  char free_action[kModuleNameLen + 16];
};

constexpr unsigned kMaxPlugins = 128;
SpinLock g_mod_lock;  // writers of the table; outermost shim lock
Plugin g_plugins[kMaxPlugins];
unsigned g_nr_plugins = 0;
unsigned g_seq = 0;  // odd while a writer edits the table

SpinLock g_idle_lock;  // one Kernel::idle at a time
bool g_collector_started = false;
volatile bool g_poked = false;

using DlopenFn = void* (*)(const char*, int);
using DlcloseFn = int (*)(void*);
DlopenFn g_real_dlopen = nullptr;
DlcloseFn g_real_dlclose = nullptr;
__attribute__((tls_model("initial-exec"))) thread_local bool t_in_dlsym = false;

void resolve_real() {
  if (g_real_dlopen != nullptr && g_real_dlclose != nullptr) return;
  if (t_in_dlsym) return;
  kernel();  // the heap exists before dlsym (which may calloc its error buffer)
  t_in_dlsym = true;
  g_real_dlopen = reinterpret_cast<DlopenFn>(dlsym(RTLD_NEXT, "dlopen"));
  g_real_dlclose = reinterpret_cast<DlcloseFn>(dlsym(RTLD_NEXT, "dlclose"));
  t_in_dlsym = false;
}

void write_begin() {
  __atomic_store_n(&g_seq, g_seq + 1, __ATOMIC_RELEASE);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
void write_end() {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  __atomic_store_n(&g_seq, g_seq + 1, __ATOMIC_RELEASE);
}

void update_hull_locked() {
  std::uintptr_t lo = ~std::uintptr_t{0}, hi = 0;
  for (unsigned i = 0; i < g_nr_plugins; ++i) {
    if (g_plugins[i].lo < lo) lo = g_plugins[i].lo;
    if (g_plugins[i].hi > hi) hi = g_plugins[i].hi;
  }
  __atomic_store_n(&g_plugin_lo, lo, __ATOMIC_RELAXED);
  __atomic_store_n(&g_plugin_hi, hi, __ATOMIC_RELAXED);
}

struct RangeQuery {
  std::uintptr_t base;  // l_addr of the object
  const char* name;     // l_name
  std::uintptr_t lo, hi;
  bool found;
};

int find_object(struct dl_phdr_info* info, std::size_t, void* arg) {
  auto* q = static_cast<RangeQuery*>(arg);
  if (info->dlpi_addr != q->base) return 0;
  if (q->name != nullptr && info->dlpi_name != nullptr && std::strcmp(q->name, info->dlpi_name) != 0) return 0;
  std::uintptr_t lo = ~std::uintptr_t{0}, hi = 0;
  for (unsigned i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
    std::uintptr_t a = info->dlpi_addr + ph.p_vaddr;
    if (a < lo) lo = a;
    if (a + ph.p_memsz > hi) hi = a + ph.p_memsz;
  }
  if (lo >= hi) return 0;
  q->lo = lo;
  q->hi = hi;
  q->found = true;
  return 1;
}

bool object_range(void* handle, std::uintptr_t* lo, std::uintptr_t* hi, const char** path) {
  struct link_map* lm = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) != 0 || lm == nullptr) return false;
  RangeQuery q{static_cast<std::uintptr_t>(lm->l_addr), lm->l_name, 0, 0, false};
  dl_iterate_phdr(find_object, &q);
  if (!q.found) return false;
  *lo = q.lo;
  *hi = q.hi;
  *path = lm->l_name;
  return true;
}

bool range_still_mapped(std::uintptr_t lo) {
  struct Q {
    std::uintptr_t lo;
    bool found;
  } q{lo, false};
  dl_iterate_phdr(
      [](struct dl_phdr_info* info, std::size_t, void* arg) -> int {
        auto* qq = static_cast<Q*>(arg);
        for (unsigned i = 0; i < info->dlpi_phnum; ++i) {
          const auto& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
          std::uintptr_t a = info->dlpi_addr + ph.p_vaddr;
          if (qq->lo >= a && qq->lo < a + ph.p_memsz) {
            qq->found = true;
            return 1;
          }
        }
        return 0;
      },
      &q);
  return q.found;
}

std::uint64_t mono_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

void* collector_main(void*) {
  struct sched_param sp {};
  if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0) setpriority(PRIO_PROCESS, 0, 19);
  std::uint64_t last = mono_ns();
  for (;;) {
    struct timespec ts {
      0, 100'000'000
    };
    nanosleep(&ts, nullptr);
    Kernel* k = g_kernel;
    std::uint64_t now = mono_ns();
    std::uint64_t dt = now - last;
    last = now;
    if (k == nullptr) continue;
    if (k->modules().nr_gone() == 0 && !k->collector().in_pass()) continue;
    LockGuard g(g_idle_lock);
    k->idle(dt);
    g_poked = false;
  }
  return nullptr;
}

void start_collector() {
  if (g_opts.protect == ProtectorMode::kOff) return;
  {
    LockGuard g(g_mod_lock);
    if (g_collector_started) return;
    g_collector_started = true;
  }
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &attr, collector_main, nullptr) != 0) {
    LockGuard g(g_mod_lock);
    g_collector_started = false;
  }
  pthread_attr_destroy(&attr);
}

const char* base_name(const char* path) {
  const char* b = path;
  for (const char* s = path; *s; ++s)
    if (*s == '/') b = s + 1;
  return b;
}

void register_plugin(void* handle) {
  std::uintptr_t lo, hi;
  const char* path = nullptr;
  if (!object_range(handle, &lo, &hi, &path) || path == nullptr || *path == '\0') return;
  Kernel* k = kernel();
  if (k == nullptr) return;
  {
    LockGuard g(g_mod_lock);
    for (unsigned i = 0; i < g_nr_plugins; ++i) {
      if (g_plugins[i].lo == lo) {
        g_plugins[i].refs++;
        return;
      }
    }
    if (g_nr_plugins == kMaxPlugins) return;
    owner_t owner = kOwnerFree;
    char name[kModuleNameLen];
    str_copy(name, sizeof name, base_name(path));
    if (k->insmod(name, hi - lo, &owner) != ModuleError::kOk) return;
    unsigned at = 0;
    while (at < g_nr_plugins && g_plugins[at].lo < lo) ++at;
    write_begin();
    for (unsigned i = g_nr_plugins; i > at; --i) g_plugins[i] = g_plugins[i - 1];
    Plugin& p = g_plugins[at];
    p.lo = lo;
    p.hi = hi;
    p.handle = handle;
    p.refs = 1;
    p.owner = owner;
    str_copy(p.name, sizeof p.name, name);
    TextSink act(p.free_action, sizeof p.free_action);
    act.str("free by ").str(name);
    g_nr_plugins++;
    update_hull_locked();
    write_end();
  }
  start_collector();
}

void unregister_plugin(void* handle) {
  Kernel* k = g_kernel;
  if (k == nullptr) return;
  std::uintptr_t lo = 0;
  {
    LockGuard g(g_mod_lock);
    unsigned i = 0;
    while (i < g_nr_plugins && g_plugins[i].handle != handle) ++i;
    if (i == g_nr_plugins) return;
    lo = g_plugins[i].lo;
  }
  // Still loaded (another reference, RTLD_NODELETE): not an unload.
  if (range_still_mapped(lo)) return;
  char name[kModuleNameLen];
  {
    LockGuard g(g_mod_lock);
    unsigned i = 0;
    while (i < g_nr_plugins && g_plugins[i].lo != lo) ++i;
    if (i == g_nr_plugins) return;
    str_copy(name, sizeof name, g_plugins[i].name);
    write_begin();
    for (; i + 1 < g_nr_plugins; ++i) g_plugins[i] = g_plugins[i + 1];
    g_nr_plugins--;
    update_hull_locked();
    write_end();
  }
  k->rmmod(name);
  g_poked = true;
}

// Per-thread stack of API scopes (kmm_module_scope_enter/leave).
constexpr int kMaxScopes = 16;
struct alignas(OwnerScope) ScopeSlot {
  char bytes[sizeof(OwnerScope)];
};
__attribute__((tls_model("initial-exec"))) thread_local ScopeSlot t_scopes[kMaxScopes];
__attribute__((tls_model("initial-exec"))) thread_local int t_depth = 0;

owner_t latest_owner_named(Kernel* k, const char* name) {
  owner_t live = k->module_owner(name);
  if (live != kOwnerFree) return live;
  owner_t best = kOwnerFree;
  std::uint64_t best_t = 0;
  for (unsigned o = kOwnerFirstModule; o < kOwnerUntracked; ++o) {
    const Module* m = k->modules().module(static_cast<owner_t>(o));
    if (m == nullptr || m->state == ModuleState::kFree || !str_eq(m->name, name)) continue;
    if (best == kOwnerFree || m->unload_ns >= best_t) {
      best = static_cast<owner_t>(o);
      best_t = m->unload_ns;
    }
  }
  return best;
}

}  // namespace

owner_t plugin_owner_slow(std::uintptr_t ra) {
  for (;;) {
    unsigned s0 = __atomic_load_n(&g_seq, __ATOMIC_ACQUIRE);
    if (s0 & 1) {
      sched_yield();
      continue;
    }
    owner_t found = kOwnerFree;
    unsigned lo = 0, hi = __atomic_load_n(&g_nr_plugins, __ATOMIC_RELAXED);
    if (hi > kMaxPlugins) hi = kMaxPlugins;
    while (lo < hi) {
      unsigned mid = (lo + hi) / 2;
      std::uintptr_t a = __atomic_load_n(&g_plugins[mid].lo, __ATOMIC_RELAXED);
      std::uintptr_t b = __atomic_load_n(&g_plugins[mid].hi, __ATOMIC_RELAXED);
      if (ra < a)
        hi = mid;
      else if (ra >= b)
        lo = mid + 1;
      else {
        found = __atomic_load_n(&g_plugins[mid].owner, __ATOMIC_RELAXED);
        break;
      }
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&g_seq, __ATOMIC_RELAXED) == s0) return found;
  }
}

const char* free_action(const void* ra, const char* base) {
  auto a = reinterpret_cast<std::uintptr_t>(ra);
  if (__builtin_expect(
          a < __atomic_load_n(&g_plugin_lo, __ATOMIC_RELAXED) || a >= __atomic_load_n(&g_plugin_hi, __ATOMIC_RELAXED),
          1)) {
    return base;
  }
  // Only plain frees name their plug-in (the table's strings say "free by NAME").
  if (!str_eq(base, "free")) return base;
  unsigned n = __atomic_load_n(&g_nr_plugins, __ATOMIC_RELAXED);
  for (unsigned i = 0; i < n && i < kMaxPlugins; ++i) {
    if (a >= g_plugins[i].lo && a < g_plugins[i].hi) return g_plugins[i].free_action;
  }
  return base;
}

void modules_fork_lock() {
  g_mod_lock.lock();
  g_idle_lock.lock();
}
void modules_fork_unlock() {
  g_idle_lock.unlock();
  g_mod_lock.unlock();
}
void modules_fork_child() {
  g_collector_started = false;
}
void collector_poke() {
  g_poked = true;
}

}  // namespace kmm::shim

using namespace kmm;
using namespace kmm::shim;

KMM_EXPORT void* dlopen(const char* file, int mode) {
  resolve_real();
  if (g_real_dlopen == nullptr) return nullptr;
  void* h = g_real_dlopen(file, mode);
  if (h != nullptr && file != nullptr && (mode & RTLD_NOLOAD) == 0) register_plugin(h);
  return h;
}

KMM_EXPORT int dlclose(void* handle) {
  resolve_real();
  if (g_real_dlclose == nullptr) return -1;
  int rc = g_real_dlclose(handle);
  if (rc == 0) unregister_plugin(handle);
  return rc;
}

// --- the kmm_* API -------------------------------------------------------------------------

KMM_EXPORT void* kmm_malloc(size_t size) {
  return alloc(size, owner_for(__builtin_return_address(0)));
}
KMM_EXPORT void kmm_free(void* p) {
  release(p, "kmm_free");
}
KMM_EXPORT int kmm_active(void) {
  return kernel() != nullptr ? 1 : 0;
}

KMM_EXPORT int kmm_module_load(const char* name) {
  Kernel* k = kernel();
  if (k == nullptr || name == nullptr) return -1;
  owner_t o = kOwnerFree;
  if (k->insmod(name, 16384, &o) != ModuleError::kOk) return -1;
  start_collector();
  return o;
}

KMM_EXPORT int kmm_module_unload(const char* name) {
  Kernel* k = kernel();
  if (k == nullptr || name == nullptr) return -1;
  if (k->rmmod(name) != ModuleError::kOk) return -1;
  collector_poke();
  return 0;
}

KMM_EXPORT int kmm_module_scope_enter(const char* name) {
  Kernel* k = kernel();
  if (k == nullptr || t_depth >= kMaxScopes) return -1;
  owner_t o = name == nullptr || str_eq(name, "kernel") ? kOwnerKernel : k->module_owner(name);
  if (o == kOwnerFree) return -1;
  new (t_scopes[t_depth].bytes) OwnerScope(o);
  return t_depth++;
}

KMM_EXPORT void kmm_module_scope_leave(int token) {
  while (t_depth > token && t_depth > 0) {
    --t_depth;
    reinterpret_cast<OwnerScope*>(t_scopes[t_depth].bytes)->~OwnerScope();
  }
}

KMM_EXPORT int kmm_transfer(void* p, const char* owner) {
  Kernel* k = kernel();
  if (k == nullptr || p == nullptr) return -1;
  owner_t o = owner == nullptr || str_eq(owner, "kernel") ? kOwnerKernel : k->module_owner(owner);
  if (o == kOwnerFree) return -1;
  return set_block_owner(p, o) ? 0 : -1;
}

KMM_EXPORT int kmm_module_usage(const char* name, struct kmm_usage* out) {
  Kernel* k = kernel();
  if (k == nullptr || name == nullptr || out == nullptr) return -1;
  owner_t o = latest_owner_named(k, name);
  if (o == kOwnerFree) {
    out->objects = out->bytes = 0;
    return -1;
  }
  static OwnerTally tally[kMaxOwners];
  static SpinLock tally_lock;
  LockGuard g(tally_lock);
  k->usage(tally);
  huge_usage(tally);
  out->objects = tally[o].objects;
  out->bytes = tally[o].bytes;
  return 0;
}

KMM_EXPORT int kmm_leaks(struct kmm_leak_stats* out) {
  Kernel* k = kernel();
  if (k == nullptr || out == nullptr) return -1;
  const CollectorStats& s = k->collector().stats();
  out->passes = s.passes;
  out->leak_objects = s.leak_objects;
  out->leak_bytes = s.leak_bytes;
  out->reclaimed_objects = s.reclaimed_objects;
  out->reclaimed_bytes = s.reclaimed_bytes;
  out->referenced_objects = s.referenced_objects;
  out->referenced_bytes = s.referenced_bytes;
  return 0;
}

KMM_EXPORT int kmm_hardening_options(struct kmm_hardening* out) {
  Kernel* k = kernel();
  if (k == nullptr || out == nullptr) return -1;
  // What the layers were initialised with (shim.h heap_hardening; huge blocks follow
  // g_opts, from which the kernel was booted).
  const HardeningConfig h = heap_hardening(*k);
  out->freelist_hardened = h.freelist_hardened ? 1 : 0;
  out->redzone = h.redzone ? 1 : 0;
  out->poison = h.poison ? 1 : 0;
  out->guard_pages = h.guard_pages ? 1 : 0;
  out->quarantine_bytes = h.quarantine_bytes;
  return 0;
}

KMM_EXPORT void kmm_collect(void) {
  Kernel* k = kernel();
  if (k == nullptr) return;
  LockGuard g(g_idle_lock);
  k->collector().kick();
  k->idle(1);
}

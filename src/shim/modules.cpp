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
// paper's idle loop. In reclaim-unreachable, whose mark stops the world, the idle thread
// hands that call to a pass runner at the host's priority (no priority inversion while the
// program is stopped). A forked child has no collector thread until its next dlopen.
//
// Depends on: shim.h, kernel/, <dlfcn.h>, <link.h>, pthreads.
// Invariants: table entries are sorted by lo and disjoint; g_plugin_lo/hi is their hull (or
// lo > hi when empty); each entry's owner is a Live module.
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <new>

#include "base/report.h"
#include "base/text.h"
#include "kmm/kmm.h"
#include "shim/fast_path.h"
#include "shim/shim.h"

#define KMM_EXPORT extern "C" __attribute__((visibility("default")))

namespace kmm::shim {

std::uintptr_t g_plugin_lo = ~std::uintptr_t{0};
std::uintptr_t g_plugin_hi = 0;

namespace {

// An object's entry: known by its executable range alone (dlclose unloads what is no longer
// mapped, drop_unmapped_plugins), so neither its handle nor a count of dlopens is kept.
struct Plugin {
  std::uintptr_t lo, hi;
  owner_t owner;
  char name[kModuleNameLen];
  char free_action[kModuleNameLen + 16];
};

constexpr unsigned kMaxPlugins = 128;
SpinLock g_mod_lock;          // writers of the table; outermost shim lock but the report calls' (shim.h)
SpinLock g_usage_tally_lock;  // kmm_module_usage's tally

// dlopen and dlclose, each with its table update, one at a time (recursive: a constructor's
// dlopen, a destructor's dlclose). Else a dlopen on another thread could map its object over
// the range of one just closed, before that entry left the table: its constructors'
// allocations were charged to the gone plug-in (and reclaimed with it), and its own entry
// took the old one's owner. The loader serializes the calls themselves the same way.
pthread_mutex_t g_dl_serial = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
struct DlSerial {
  DlSerial() { pthread_mutex_lock(&g_dl_serial); }
  ~DlSerial() { pthread_mutex_unlock(&g_dl_serial); }
  DlSerial(const DlSerial&) = delete;
  DlSerial& operator=(const DlSerial&) = delete;
};
Plugin g_plugins[kMaxPlugins];
unsigned g_nr_plugins = 0;
unsigned g_seq = 0;  // odd while a writer edits the table

SpinLock g_idle_lock;  // one Kernel::idle at a time
bool g_collector_started = false;

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

// dlopen calls under way in the process (under g_mod_lock). While there is one, the hull is
// everything, so that every allocation takes plugin_owner_slow, which can see an allocation
// made by the constructors of the object being opened (preregister_caller).
unsigned g_dlopens_in_flight = 0;
// The base name of the file this thread is dlopening (null: none), and a guard against the
// registration's own allocations.
__attribute__((tls_model("initial-exec"))) thread_local const char* t_dlopen_base = nullptr;
__attribute__((tls_model("initial-exec"))) thread_local bool t_preregistering = false;

void update_hull_locked() {
  if (g_dlopens_in_flight != 0) {
    __atomic_store_n(&g_plugin_lo, std::uintptr_t{0}, __ATOMIC_RELAXED);
    __atomic_store_n(&g_plugin_hi, ~std::uintptr_t{0}, __ATOMIC_RELAXED);
    return;
  }
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

// mapped[i]: some loaded object's executable segment holds los[i] (the entry's object, or one
// that took its place: an entry is only known by its range).
void mark_mapped(const std::uintptr_t* los, unsigned n, bool* mapped) {
  struct Q {
    const std::uintptr_t* los;
    unsigned n;
    bool* mapped;
  } q{los, n, mapped};
  for (unsigned i = 0; i < n; ++i) mapped[i] = false;
  dl_iterate_phdr(
      [](struct dl_phdr_info* info, std::size_t, void* arg) -> int {
        auto* qq = static_cast<Q*>(arg);
        for (unsigned i = 0; i < info->dlpi_phnum; ++i) {
          const auto& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
          std::uintptr_t a = info->dlpi_addr + ph.p_vaddr;
          for (unsigned j = 0; j < qq->n; ++j)
            if (qq->los[j] >= a && qq->los[j] < a + ph.p_memsz) qq->mapped[j] = true;
        }
        return 0;
      },
      &q);
}

std::uint64_t mono_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// reclaim-unreachable stops the world for its mark: a stopped process waiting on an
// idle-priority thread is a priority inversion (on a busy machine the pause grew to 100-500
// ms). So there the idle thread only decides when (the CPU had idle time, a pass is due)
// and a thread at the host's priority, started next to it, runs the pass.
pthread_mutex_t g_pass_mu = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t g_pass_cv = PTHREAD_COND_INITIALIZER;
std::uint64_t g_pass_asked = 0, g_pass_done = 0;  // under g_pass_mu
std::uint64_t g_pass_dt = 0;
bool g_runner_started = false;

void run_idle(Kernel* k, std::uint64_t dt) {
  LockGuard g(g_idle_lock);
  k->idle(dt);
}

void* pass_runner_main(void*) {
  roots_own_thread(__builtin_frame_address(0));  // it never returns
  pthread_mutex_lock(&g_pass_mu);
  for (;;) {
    while (g_pass_done == g_pass_asked) pthread_cond_wait(&g_pass_cv, &g_pass_mu);
    std::uint64_t asked = g_pass_asked, dt = g_pass_dt;
    pthread_mutex_unlock(&g_pass_mu);
    if (Kernel* k = g_kernel) run_idle(k, dt);
    pthread_mutex_lock(&g_pass_mu);
    g_pass_done = asked;
    pthread_cond_broadcast(&g_pass_cv);
  }
  return nullptr;
}

// The idle thread's request to the runner; returns when it has run.
void run_idle_at_host_priority(std::uint64_t dt) {
  pthread_mutex_lock(&g_pass_mu);
  std::uint64_t ticket = ++g_pass_asked;
  g_pass_dt = dt;
  pthread_cond_broadcast(&g_pass_cv);
  while (g_pass_done < ticket) pthread_cond_wait(&g_pass_cv, &g_pass_mu);
  pthread_mutex_unlock(&g_pass_mu);
}

// The idle work (collector passes) on the pass runner when there is one, else on this thread.
// A pass run on a program's thread would have its frames above that thread's stack pointer,
// where the next call's frames keep what this one left (kmm_collect); the idle thread holds
// nothing of the program's either way.
void run_idle_on_runner(Kernel* k, std::uint64_t dt) {
  if (__atomic_load_n(&g_runner_started, __ATOMIC_ACQUIRE))
    run_idle_at_host_priority(dt);
  else
    run_idle(k, dt);
}

void* collector_main(void*) {
  roots_own_thread(__builtin_frame_address(0));  // it never returns
  struct sched_param sp {};
  if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0) setpriority(PRIO_PROCESS, 0, 19);
  // An idle-priority thread takes long to be scheduled for the stop signal on a busy machine
  // (the whole world waits meanwhile); while the runner runs a pass it only waits for it,
  // holding nothing of the program's: the stop leaves it running. (The runner is started
  // before this thread, and only a fork's child, which has neither, loses it.)
  if (__atomic_load_n(&g_runner_started, __ATOMIC_ACQUIRE)) roots_exempt_thread(static_cast<int>(syscall(SYS_gettid)));
  std::uint64_t last = mono_ns();
  for (;;) {
    struct timespec ts {
      0, 100'000'000
    };
    nanosleep(&ts, nullptr);  // a poll: an unloaded module waits at most this for its first pass
    Kernel* k = g_kernel;
    std::uint64_t now = mono_ns();
    std::uint64_t dt = now - last;
    last = now;
    if (k == nullptr) continue;
    if (k->modules().nr_gone() == 0 && !k->collector().in_pass()) continue;
    run_idle_on_runner(k, dt);
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
  // reclaim-unreachable in a real process: the scan's roots and the world stop (roots.cpp),
  // in place before any module can be unloaded.
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (g_opts.protect == ProtectorMode::kReclaimUnreachable) {
    {
      LockGuard g(g_idle_lock);
      roots_install(kernel());
    }
    // Created here, by a host thread: an idle-priority thread could not create it at the
    // host's priority (leaving SCHED_IDLE needs privilege).
    if (pthread_create(&t, &attr, pass_runner_main, nullptr) == 0)
      __atomic_store_n(&g_runner_started, true, __ATOMIC_RELEASE);
  }
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

// insmod under the object's base name or, when a live module has that name (a plug-in of the
// same file name from another directory, or one whose name was cut to kModuleNameLen - 1),
// under "NAME#2", "NAME#3", ...: two objects are never one module, and neither falls back to
// the host, whose memory is never reclaimed. The name it got is written to name[].
bool insmod_unique(Kernel* k, const char* base, std::uint64_t core_size, char (&name)[kModuleNameLen], owner_t* owner) {
  str_copy(name, sizeof name, base);
  ModuleError e = k->insmod(name, core_size, owner);
  for (unsigned n = 2; e == ModuleError::kAlreadyLoaded && n <= kMaxPlugins + 1; ++n) {
    char suffix[16];
    TextSink s(suffix, sizeof suffix);
    s.ch('#').u(n);
    str_copy(name, sizeof name - s.size(), base);  // the base, cut to leave the suffix room
    const std::size_t len = str_len(name);
    TextSink(name + len, sizeof name - len).str(suffix);
    e = k->insmod(name, core_size, owner);
  }
  return e == ModuleError::kOk;
}

// Registers the object of link map lm as a plug-in (insmod) and returns its owner: at
// dlopen's return, or while dlopen runs the object's constructors (preregister_caller), whose
// entry dlopen's return then finds.
owner_t register_map(struct link_map* lm) {
  if (lm == nullptr || lm->l_name == nullptr || *lm->l_name == '\0') return kOwnerFree;
  RangeQuery q{static_cast<std::uintptr_t>(lm->l_addr), lm->l_name, 0, 0, false};
  dl_iterate_phdr(find_object, &q);
  if (!q.found) return kOwnerFree;
  std::uintptr_t lo = q.lo, hi = q.hi;
  const char* path = lm->l_name;
  Kernel* k = kernel();
  if (k == nullptr) return kOwnerFree;
  LockGuard g(g_mod_lock);
  for (unsigned i = 0; i < g_nr_plugins; ++i) {
    if (g_plugins[i].lo == lo) return g_plugins[i].owner;
  }
  if (g_nr_plugins == kMaxPlugins) return kOwnerFree;
  owner_t owner = kOwnerFree;
  char name[kModuleNameLen];
  if (!insmod_unique(k, base_name(path), hi - lo, name, &owner)) return kOwnerFree;
  unsigned at = 0;
  while (at < g_nr_plugins && g_plugins[at].lo < lo) ++at;
  write_begin();
  for (unsigned i = g_nr_plugins; i > at; --i) g_plugins[i] = g_plugins[i - 1];
  Plugin& p = g_plugins[at];
  p.lo = lo;
  p.hi = hi;
  p.owner = owner;
  str_copy(p.name, sizeof p.name, name);
  TextSink act(p.free_action, sizeof p.free_action);
  act.str("free by ").str(name);
  g_nr_plugins++;
  update_hull_locked();
  write_end();
  return owner;
}

void register_plugin(void* handle) {
  struct link_map* lm = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) != 0 || lm == nullptr) return;
  if (register_map(lm) != kOwnerFree) start_collector();
}

// An allocation while this thread is in dlopen, from code outside every registered plug-in:
// when that code is the object being opened (its constructors run before dlopen returns),
// the object becomes its module now, and the allocation is its.
owner_t preregister_caller(std::uintptr_t ra) {
  if (t_preregistering) return kOwnerFree;
  t_preregistering = true;
  owner_t o = kOwnerFree;
  Dl_info info;
  struct link_map* lm = nullptr;
  // dladdr takes the loader's lock, which this thread holds (it is recursive).
  if (dladdr1(reinterpret_cast<void*>(ra), &info, reinterpret_cast<void**>(&lm), RTLD_DL_LINKMAP) != 0 &&
      lm != nullptr && lm->l_name != nullptr && str_eq(base_name(lm->l_name), t_dlopen_base)) {
    o = register_map(lm);
  }
  t_preregistering = false;
  return o;
}

// The entry whose range starts at lo leaves the table (under the sequence counter) and its
// module is rmmod'ed; the collector thread finds it gone at its next poll (every 100 ms). False when no entry starts
// there (any more).
bool unload_plugin_at(Kernel* k, std::uintptr_t lo) {
  char name[kModuleNameLen];
  {
    LockGuard g(g_mod_lock);
    unsigned i = 0;
    while (i < g_nr_plugins && g_plugins[i].lo != lo) ++i;
    if (i == g_nr_plugins) return false;
    str_copy(name, sizeof name, g_plugins[i].name);
    write_begin();
    for (; i + 1 < g_nr_plugins; ++i) g_plugins[i] = g_plugins[i + 1];
    g_nr_plugins--;
    update_hull_locked();
    write_end();
  }
  k->rmmod(name);
  return true;
}

// Every entry whose object is no longer mapped leaves the table and its module is unloaded:
// after each dlclose, and after a failed dlopen (entries its constructors registered). Not
// only the handle dlclose was given: a dlclose from a destructor that another dlclose runs
// only drops a reference, and the outer one unmaps both objects (before stop 48 the inner
// one's plug-in stayed loaded for ever, its leaks never reclaimed). An object still mapped
// (another reference, RTLD_NODELETE, a dlopen still running its constructors) stays.
void drop_unmapped_plugins() {
  Kernel* k = g_kernel;
  if (k == nullptr) return;
  std::uintptr_t los[kMaxPlugins];
  bool mapped[kMaxPlugins];
  unsigned n = 0;
  {
    LockGuard g(g_mod_lock);
    for (unsigned i = 0; i < g_nr_plugins; ++i) los[n++] = g_plugins[i].lo;
  }
  if (n == 0) return;
  mark_mapped(los, n, mapped);  // the loader's lock: never under g_mod_lock
  for (unsigned i = 0; i < n; ++i)
    if (!mapped[i]) unload_plugin_at(k, los[i]);
}

// Per-thread stack of API scopes (kmm_module_scope_enter/leave). A module's scope holds it
// (ModuleRegistry::hold): while a thread works for a module that another thread unloads, the
// collector leaves the module's memory alone, and takes it once the last scope is left — or
// its thread exits (scope_key's destructor), since a thread that never leaves would keep it
// forever. t_scope_owner[i] is scope i's owner; only modules' scopes hold (the registry
// ignores the kernel's in unhold and reset_holds).
constexpr int kMaxScopes = 16;
struct alignas(OwnerScope) ScopeSlot {
  char bytes[sizeof(OwnerScope)];
};
__attribute__((tls_model("initial-exec"))) thread_local ScopeSlot t_scopes[kMaxScopes];
__attribute__((tls_model("initial-exec"))) thread_local owner_t t_scope_owner[kMaxScopes];
__attribute__((tls_model("initial-exec"))) thread_local int t_depth = 0;

void leave_scopes_down_to(int token) {
  Kernel* k = g_kernel;
  while (t_depth > token && t_depth > 0) {
    --t_depth;
    reinterpret_cast<OwnerScope*>(t_scopes[t_depth].bytes)->~OwnerScope();
    if (k != nullptr) k->modules().unhold(t_scope_owner[t_depth]);
  }
}

pthread_key_t g_scope_key;
pthread_once_t g_scope_key_once = PTHREAD_ONCE_INIT;

void make_scope_key() {
  // At the thread's exit, with its scopes still open: their holds go (the owner the thread
  // allocates for no longer matters).
  pthread_key_create(&g_scope_key, [](void*) { leave_scopes_down_to(0); });
}

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
    if (__atomic_load_n(&g_seq, __ATOMIC_RELAXED) != s0) continue;
    if (found == kOwnerFree && t_dlopen_base != nullptr) return preregister_caller(ra);
    return found;
  }
}

const char* plugin_free_action(std::uintptr_t a, const char* base) {
  // Only plain frees name their plug-in (the table's strings say "free by NAME").
  if (!str_eq(base, "free")) return base;
  unsigned n = __atomic_load_n(&g_nr_plugins, __ATOMIC_RELAXED);
  for (unsigned i = 0; i < n && i < kMaxPlugins; ++i) {
    if (a >= g_plugins[i].lo && a < g_plugins[i].hi) return g_plugins[i].free_action;
  }
  return base;
}

void module_usage_fork_lock() {
  g_usage_tally_lock.lock();
}
void module_usage_fork_unlock() {
  g_usage_tally_lock.unlock();
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
  // A thread of the parent's may have been in dlopen or dlclose: the child has only this one.
  pthread_mutex_t fresh = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
  g_dl_serial = fresh;
  g_collector_started = false;
  // The child has neither thread; a runner mid-request may have held the mutex.
  g_runner_started = false;
  pthread_mutex_init(&g_pass_mu, nullptr);
  pthread_cond_init(&g_pass_cv, nullptr);
  g_pass_asked = g_pass_done = 0;
  // The parent's other threads, and their scopes' holds, are not here; this thread's are.
  if (Kernel* k = g_kernel) k->modules().reset_holds(t_scope_owner, static_cast<unsigned>(t_depth));
  roots_exempt_thread(0);
  roots_own_threads_fork_child();
}
}  // namespace kmm::shim

using namespace kmm;
using namespace kmm::shim;

KMM_EXPORT void* dlopen(const char* file, int mode) {
  resolve_real();
  if (g_real_dlopen == nullptr) return nullptr;
  bool opening = file != nullptr && (mode & RTLD_NOLOAD) == 0 && kernel() != nullptr;
  DlSerial serial;
  const char* saved = t_dlopen_base;
  if (opening) {
    // The constructors run inside the real dlopen: their allocations are the object's
    // (preregister_caller), not the host's.
    LockGuard g(g_mod_lock);
    write_begin();
    g_dlopens_in_flight++;
    update_hull_locked();
    write_end();
    t_dlopen_base = base_name(file);
  }
  void* h = g_real_dlopen(file, mode);
  if (opening) {
    t_dlopen_base = saved;
    LockGuard g(g_mod_lock);
    write_begin();
    g_dlopens_in_flight--;
    update_hull_locked();
    write_end();
  }
  if (h != nullptr && opening) register_plugin(h);
  if (h == nullptr && opening) drop_unmapped_plugins();
  return h;
}

KMM_EXPORT int dlclose(void* handle) {
  resolve_real();
  if (g_real_dlclose == nullptr) return -1;
  DlSerial serial;
  int rc = g_real_dlclose(handle);
  if (rc == 0) drop_unmapped_plugins();
  return rc;
}

// --- the kmm_* API -------------------------------------------------------------------------

KMM_EXPORT void* kmm_malloc(size_t size) {
  void* p = alloc(size, owner_for(__builtin_return_address(0)));
  if (p == nullptr) errno = ENOMEM;  // as malloc (kmm.h)
  return p;
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
  {
    // A dlopened plug-in is unloaded by its dlclose: gone while its code is still mapped, its
    // table entry would charge its next allocations to whatever module takes its id after a
    // pass empties it (and that module's unload would reclaim them).
    LockGuard g(g_mod_lock);
    const owner_t o = k->module_owner(name);
    for (unsigned i = 0; i < g_nr_plugins && o != kOwnerFree; ++i)
      if (g_plugins[i].owner == o) return -1;
    if (k->rmmod(name) != ModuleError::kOk) return -1;
  }
  return 0;  // the collector thread finds the gone module at its next poll (collector_main)
}

KMM_EXPORT int kmm_module_scope_enter(const char* name) {
  Kernel* k = kernel();
  if (k == nullptr || t_depth >= kMaxScopes) return -1;
  const bool kernel_scope = name == nullptr || str_eq(name, "kernel");
  owner_t o = kernel_scope ? kOwnerKernel : k->module_owner(name);
  if (o == kOwnerFree) return -1;
  if (!kernel_scope) {
    // Before the hold: the key's first set may allocate (glibc's second-level key blocks),
    // and that allocation is the host's.
    pthread_once(&g_scope_key_once, make_scope_key);
    if (pthread_getspecific(g_scope_key) == nullptr) pthread_setspecific(g_scope_key, &t_depth);
    // Unloaded since module_owner (and perhaps loaded again, as another owner): look again.
    while (!k->modules().hold(o)) {
      o = k->module_owner(name);
      if (o == kOwnerFree) return -1;
    }
  }
  t_scope_owner[t_depth] = o;
  new (t_scopes[t_depth].bytes) OwnerScope(o);
  return t_depth++;
}

KMM_EXPORT void kmm_module_scope_leave(int token) {
  // -1 is a failed enter's answer: code that pairs enter and leave unconditionally must not
  // close the scopes around it (leave_scopes_down_to(-1) closed every one).
  if (token < 0 || token >= t_depth) return;
  leave_scopes_down_to(token);
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
  LockGuard g(g_usage_tally_lock);
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
  k->collector().kick();
  // On the pass runner (reclaim-unreachable): this thread is then parked like the others and
  // its stack scanned from its stack pointer up, with no frame of the pass above it.
  run_idle_on_runner(k, 1);
}

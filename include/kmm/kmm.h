/* kmm/kmm.h — kmm as a library: the allocator, modules (plug-ins) and their memory.
 *
 * Link with -lkmm-preload (build/lib/libkmm-preload.so), or preload it (`kmm exec`), and
 * every malloc of the process is kmm's. This header adds what malloc cannot say:
 *
 *   kmm_malloc / kmm_free            the allocator, explicitly (same as malloc/free);
 *   kmm_module_load / _unload        insmod / rmmod of a named module (a plug-in host's
 *                                    plug-in); dlopen/dlclose do it for shared objects;
 *   kmm_module_scope_enter / _leave  allocations of this thread are owned by a module until
 *                                    leave (LIFO; C++: kmm::ModuleScope);
 *   kmm_transfer                     hand a block to another owner (a module, or the host:
 *                                    "kernel" or NULL) so an unload does not count it a leak;
 *   kmm_module_usage, kmm_leaks      what a module owns now; what the protector has found
 *                                    and reclaimed;
 *   kmm_collect                      run the idle-time collector now (tests, hosts);
 *   kmm_hardening_options            the hardening options the heap runs with;
 *   kmm_stats_print                  the exit stats (modules, slabinfo, buddyinfo, meminfo).
 *
 * Every function is safe before main and from any thread. Functions returning int return 0
 * (or a non-negative value) on success and -1 on failure.
 */
#ifndef KMM_KMM_H
#define KMM_KMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void* kmm_malloc(size_t size);
void kmm_free(void* p);

/* 1 when kmm is this process's malloc (preloaded or linked), else 0. */
int kmm_active(void);

/* insmod: returns the module's owner id (2..254), or -1 (already loaded, table full). */
int kmm_module_load(const char* name);
/* rmmod: 0, or -1 when no live module has that name, or when the name is a dlopened plug-in's
 * (its dlclose unloads it). The module's memory is the collector's once no thread is inside a
 * scope of it (kmm_module_scope_enter). A plug-in is named after its file's base name; a
 * second plug-in of the same name (another directory, or a name cut at 55 characters) is
 * "NAME#2", then "NAME#3", ... */
int kmm_module_unload(const char* name);

/* Allocations by this thread belong to module `name` until the matching leave. Returns a
 * token for leave, or -1 when no live module has that name (the scope is then not entered).
 * The scope holds the module: unloaded meanwhile, its memory is not reclaimed until every
 * thread has left its scopes of it (or ended), as rmmod waits out a module's users. */
int kmm_module_scope_enter(const char* name);
/* Leaves the scopes down to token (and any entered after it); a token < 0 (a failed enter) or
 * one not open does nothing. */
void kmm_module_scope_leave(int token);

/* Hands block p to `owner` (a live module's name; "kernel" or NULL: the host). 0 on success;
 * -1 when p is not a live block — also when its module is gone and a collector pass reclaimed
 * it first (a block is either rescued or reclaimed, never both). */
int kmm_transfer(void* p, const char* owner);

struct kmm_usage {
  uint64_t objects;
  uint64_t bytes;
};
/* What the most recent module of that name (live or unloaded) owns now. */
int kmm_module_usage(const char* name, struct kmm_usage* out);

struct kmm_leak_stats {
  uint64_t passes;
  uint64_t leak_objects, leak_bytes;             /* found, not reclaimed (report mode) */
  uint64_t reclaimed_objects, reclaimed_bytes;   /* given back since start */
  uint64_t referenced_objects, referenced_bytes; /* spared by reclaim-unreachable */
};
int kmm_leaks(struct kmm_leak_stats* out);

/* Runs the collector now (ignores gc_delay), whatever the protector mode allows. */
void kmm_collect(void);

/* The hardening options (KMM_OPTIONS: freelist_hardened, redzone, poison, quarantine,
 * guard_pages) as the running heap applies them — read from its slab and kmalloc layers,
 * not from the environment — so a program or a test can tell they took effect. -1 when
 * kmm is not this process's malloc (nothing is written then). */
struct kmm_hardening {
  int freelist_hardened, redzone, poison, guard_pages; /* 1: on, 0: off */
  uint64_t quarantine_bytes;                           /* 0: no quarantine */
};
int kmm_hardening_options(struct kmm_hardening* out);

/* Writes the stats views to fd. */
void kmm_stats_print(int fd);

#ifdef __cplusplus
} /* extern "C" */

namespace kmm {
/* RAII: allocations of this thread in the scope are owned by module `name`. */
class ModuleScope {
 public:
  explicit ModuleScope(const char* name) : token_(kmm_module_scope_enter(name)) {}
  ~ModuleScope() {
    if (token_ >= 0) kmm_module_scope_leave(token_);
  }
  ModuleScope(const ModuleScope&) = delete;
  ModuleScope& operator=(const ModuleScope&) = delete;
  bool entered() const { return token_ >= 0; }

 private:
  int token_;
};
}  // namespace kmm
#endif

#endif /* KMM_KMM_H */

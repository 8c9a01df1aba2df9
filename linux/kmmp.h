/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kmm_protect internals: the record table, the module identities, the collector.
 *
 * Depends on: the kernel only (no part of kmm's C++ core).
 * Invariants:
 *  - a record exists for a block while its owner module has not freed it; a record is taken
 *    out of the table under its bucket lock by exactly one party (a free probe, a transfer,
 *    a cache-destroy drop or the collector), and only that party may touch the block after;
 *  - a kmmp_mod stays allocated while records point to it (objects > 0) or while it is live;
 *  - nothing runs under a bucket lock that can allocate, free or fire a probe.
 */
#ifndef KMMP_H
#define KMMP_H

#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/list_bl.h>
#include <linux/module.h>
#include <linux/rcupdate.h>
#include <linux/types.h>

enum kmmp_mode { KMMP_OFF, KMMP_REPORT, KMMP_RECLAIM };

/* How a block was allocated, so the collector frees it the same way. */
enum kmmp_kind { KMMP_KMALLOC, KMMP_CACHE, KMMP_VMALLOC,
		 KMMP_DROPPED };	/* a collector's victim whose cache is being destroyed */

/* One load of one module: a module loaded again gets a new kmmp_mod. */
struct kmmp_mod {
	struct list_head live_node;	/* kmmp_live (RCU): owners looked up by address */
	struct list_head all_node;	/* kmmp_all (kmmp_mods_lock): procfs and collector */
	struct rcu_head rcu;
	const struct module *module;	/* identity while live only; never dereferenced */
	char name[MODULE_NAME_LEN];
	u64 id;
	unsigned long core_base, core_size;
	unsigned long init_base, init_size;
	bool init_done;		/* init_layout freed: no longer an owner range */
	bool gone;
	bool reported;			/* report mode listed its leaks once */
	unsigned long gone_at;		/* jiffies */
	atomic_long_t objects;		/* live records */
	atomic_long_t bytes;
	unsigned long pass;		/* the collector pass that takes its records */
	unsigned long pass_objects, pass_bytes;
};

struct kmmp_rec {
	struct hlist_bl_node node;
	const void *ptr;
	struct kmmp_mod *mod;
	struct kmem_cache *cache;	/* KMMP_CACHE: the cache to give it back to */
	unsigned long call_site;
	size_t size;			/* bytes the module asked for */
	struct kmmp_rec *victim_next;	/* collector's private list once out of the table */
	unsigned long misses;		/* kmmp_free_probes_missed() when it was made */
	u8 kind;
	bool unsafe_kept;		/* counted in unsafe_kept: a free may have gone unseen; never taken */
};

struct kmmp_stats {
	atomic_long_t passes;
	atomic_long_t leaked_objects, leaked_bytes;
	atomic_long_t reclaimed_objects, reclaimed_bytes;
	atomic_long_t reported_objects;
	atomic_long_t transferred_objects;
	atomic_long_t dropped_objects;	/* cache destroyed under them: not freed */
	atomic_long_t stale_records;	/* replaced: the block was freed by an untraced path */
	atomic_long_t unsafe_kept;	/* a gone module's, left: a free probe missed since it was made */
	atomic_long_t untracked;	/* no record could be allocated */
	atomic_long_t canary_failures;	/* reclaiming slices refused: a free probe did not fire */
};

extern struct kmmp_stats kmmp_stats;
extern int kmmp_mode;
extern unsigned int kmmp_gc_delay_ms;
extern struct mutex kmmp_mods_lock;
extern struct list_head kmmp_all;

/* table.c */
int kmmp_table_init(unsigned int bits);
void kmmp_table_exit(void);
void kmmp_track(const void *ptr, struct kmmp_mod *mod, enum kmmp_kind kind,
		struct kmem_cache *cache, size_t size, unsigned long call_site);
void kmmp_untrack(const void *ptr);
void kmmp_resize(const void *ptr, size_t size);
int kmmp_take(const void *ptr, const struct kmmp_mod *taker);
void kmmp_drop_cache(const struct kmem_cache *cache);
long kmmp_records(void);
unsigned long kmmp_table_size(void);
/* Collector walk of buckets [first, last): see gc.c. */
void kmmp_collect_buckets(unsigned long first, unsigned long last, unsigned long pass,
			  bool take, unsigned long misses, unsigned int *reported);
struct kmmp_rec *kmmp_next_victim(void);
unsigned long kmmp_return_victims(void);
void kmmp_rec_release(struct kmmp_rec *r);

/* probes.c */
int kmmp_probes_init(void);
void kmmp_probes_exit(void);
struct kmmp_mod *kmmp_owner(unsigned long addr);
unsigned long kmmp_probes_missed(void);
unsigned long kmmp_free_probes_missed(void);
bool kmmp_free_probes_complete(void);
bool kmmp_free_probes_fire(const char **silent);

/* gc.c */
void kmmp_gc_kick(void);
void kmmp_gc_kick_now(void);
void kmmp_gc_exit(void);
void kmmp_trim_gone(void);
void kmmp_mods_free_all(void);
void kmmp_mod_account_drop(struct kmmp_mod *mod, size_t size);

/* proc.c */
int kmmp_proc_init(void);
void kmmp_proc_exit(void);

#endif /* KMMP_H */

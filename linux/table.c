// SPDX-License-Identifier: GPL-2.0
/*
 * kmm_protect: the record table — a hash of records keyed by block address.
 *
 * Buckets are hlist_bl heads (the bucket lock is bit 0 of the head); every lock is taken with
 * interrupts off, since kmalloc and kfree run in interrupt context too. The bucket count is
 * fixed at load (table_bits), the number of records is not: records come from a dedicated
 * kmem_cache, allocated GFP_NOWAIT | __GFP_NOWARN outside any bucket lock (never sleeping, as
 * the probes must, without dipping into the atomic reserves: a record that cannot be had is
 * counted as untracked). The protector's own allocations and frees carry a call_site inside
 * kmm_protect, which the probes ignore, so allocating or freeing a record never recurses into
 * the table.
 *
 * Depends on: kmmp.h. Invariant: nothing under a bucket lock allocates, frees or prints (leak
 * lines are copied out and printed after it is dropped); the one free under a lock is a
 * cache victim's, under kmmp_victims_lock alone (see kmmp_victims).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/hash.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "kmmp.h"

static struct hlist_bl_head *kmmp_buckets;
static unsigned int kmmp_bits;
static struct kmem_cache *kmmp_rec_cache;
static atomic_long_t kmmp_nr_records = ATOMIC_LONG_INIT(0);

int kmmp_table_init(unsigned int bits)
{
	unsigned long i;

	kmmp_bits = bits;
	kmmp_rec_cache = kmem_cache_create("kmm_protect_rec", sizeof(struct kmmp_rec), 0, 0,
					   NULL);
	if (!kmmp_rec_cache)
		return -ENOMEM;
	kmmp_buckets = vmalloc(array_size(sizeof(*kmmp_buckets), 1UL << bits));
	if (!kmmp_buckets) {
		kmem_cache_destroy(kmmp_rec_cache);
		return -ENOMEM;
	}
	for (i = 0; i < (1UL << bits); i++)
		INIT_HLIST_BL_HEAD(&kmmp_buckets[i]);
	return 0;
}

/* After every probe is gone: forget all records (the blocks stay with their owners). */
void kmmp_table_exit(void)
{
	struct hlist_bl_node *pos, *tmp;
	struct kmmp_rec *r;
	unsigned long i;

	for (i = 0; i < (1UL << kmmp_bits); i++) {
		hlist_bl_for_each_entry_safe(r, pos, tmp, &kmmp_buckets[i], node) {
			hlist_bl_del(&r->node);
			kmmp_rec_release(r);
		}
	}
	vfree(kmmp_buckets);
	kmem_cache_destroy(kmmp_rec_cache);
}

unsigned long kmmp_table_size(void)
{
	return 1UL << kmmp_bits;
}

long kmmp_records(void)
{
	return atomic_long_read(&kmmp_nr_records);
}

static struct hlist_bl_head *kmmp_bucket(const void *ptr)
{
	return &kmmp_buckets[hash_ptr(ptr, kmmp_bits)];
}

static struct kmmp_rec *kmmp_find(struct hlist_bl_head *head, const void *ptr)
{
	struct hlist_bl_node *pos;
	struct kmmp_rec *r;

	hlist_bl_for_each_entry(r, pos, head, node)
		if (r->ptr == ptr)
			return r;
	return NULL;
}

/* Frees a record that is out of the table, and takes it off its module's counts. */
void kmmp_rec_release(struct kmmp_rec *r)
{
	atomic_long_dec(&kmmp_nr_records);
	kmmp_mod_account_drop(r->mod, r->size);
	kmem_cache_free(kmmp_rec_cache, r);
}

/*
 * The collector's victims: records taken out of the table (kmmp_collect_buckets) and not yet
 * freed (kmmp_next_victim). One list under one lock, taken inside a bucket lock when a record
 * moves here, so that kmmp_drop_cache finds a destroyed cache's records either in the table
 * or here; and a victim of a cache is freed under it, so that once kmmp_drop_cache has marked
 * this list no free into that cache is running or can begin.
 */
static DEFINE_SPINLOCK(kmmp_victims_lock);
static struct kmmp_rec *kmmp_victims;

void kmmp_track(const void *ptr, struct kmmp_mod *mod, enum kmmp_kind kind,
		struct kmem_cache *cache, size_t size, unsigned long call_site)
{
	struct hlist_bl_head *head = kmmp_bucket(ptr);
	struct kmmp_rec *r, *stale;
	unsigned long flags;

	r = kmem_cache_alloc(kmmp_rec_cache, GFP_NOWAIT | __GFP_NOWARN);
	if (!r) {
		atomic_long_inc(&kmmp_stats.untracked);
		return;
	}
	r->ptr = ptr;
	r->mod = mod;
	r->cache = cache;
	r->call_site = call_site;
	r->size = size;
	r->kind = kind;
	r->victim_next = NULL;
	r->unsafe_kept = false;
	/* Before the block is anyone's: a free of it missed later counts past this. */
	r->misses = kmmp_free_probes_missed();
	/* Counted before it is visible, so a racing free never drives a count negative. */
	atomic_long_add(size, &mod->bytes);
	atomic_long_inc(&mod->objects);
	atomic_long_inc(&kmmp_nr_records);

	local_irq_save(flags);
	hlist_bl_lock(head);
	/*
	 * A record for the same address means that block was freed through a path with no
	 * probe (kfree_bulk inside RCU, say) and the memory handed out again: the old record is
	 * stale and must never be collected.
	 */
	stale = kmmp_find(head, ptr);
	if (stale)
		hlist_bl_del(&stale->node);
	hlist_bl_add_head(&r->node, head);
	hlist_bl_unlock(head);
	local_irq_restore(flags);

	if (stale) {
		atomic_long_inc(&kmmp_stats.stale_records);
		kmmp_rec_release(stale);
	}
}

/* kmmp_remove_if's taker for every record (a free probe's). */
#define KMMP_ANY_TAKER ((const struct kmmp_mod *)1)

/*
 * Takes the record of @ptr out of the table; NULL when there is none. With @taker not
 * KMMP_ANY_TAKER, only a record of @taker's own or of a gone module is taken; another's is
 * left, and *@refused set.
 */
static struct kmmp_rec *kmmp_remove_if(const void *ptr, const struct kmmp_mod *taker, bool *refused)
{
	struct hlist_bl_head *head;
	struct kmmp_rec *r;
	unsigned long flags;

	if (ZERO_OR_NULL_PTR(ptr) || !atomic_long_read(&kmmp_nr_records))
		return NULL;
	head = kmmp_bucket(ptr);
	/*
	 * Every kfree in the system comes here. A record of ptr was inserted by the allocation
	 * probe before the allocator returned ptr to anyone, so whoever frees ptr sees the
	 * insertion: an empty bucket, read without the lock, has no record of ptr.
	 */
	if (hlist_bl_empty(head))
		return NULL;
	local_irq_save(flags);
	hlist_bl_lock(head);
	r = kmmp_find(head, ptr);
	if (r && taker != KMMP_ANY_TAKER && r->mod != taker && !READ_ONCE(r->mod->gone)) {
		*refused = true;
		r = NULL;
	}
	if (r)
		hlist_bl_del(&r->node);
	hlist_bl_unlock(head);
	local_irq_restore(flags);
	return r;
}

static struct kmmp_rec *kmmp_remove(const void *ptr)
{
	return kmmp_remove_if(ptr, KMMP_ANY_TAKER, NULL);
}

/* A free probe saw @ptr being freed (the block is still allocated until it returns). */
void kmmp_untrack(const void *ptr)
{
	struct kmmp_rec *r = kmmp_remove(ptr);

	if (r)
		kmmp_rec_release(r);
}

/*
 * A block resized in place (kvrealloc to a size no larger): its record, if it has one, keeps
 * its owner and takes the new size. A block with no record stays untracked.
 */
void kmmp_resize(const void *ptr, size_t size)
{
	struct hlist_bl_head *head;
	struct kmmp_rec *r;
	unsigned long flags;

	if (ZERO_OR_NULL_PTR(ptr) || !atomic_long_read(&kmmp_nr_records))
		return;
	head = kmmp_bucket(ptr);
	local_irq_save(flags);
	hlist_bl_lock(head);
	r = kmmp_find(head, ptr);
	if (r) {
		/* The owner's counts move with it: released later by r->size. */
		atomic_long_add((long)size - (long)r->size, &r->mod->bytes);
		r->size = size;
	}
	hlist_bl_unlock(head);
	local_irq_restore(flags);
}

/*
 * kmm_protect_transfer() by @taker (the caller's module, NULL for the kernel proper): the
 * block is the kernel's now, if it is @taker's own or its module is gone (a rescue). Any
 * other record of @ptr is a live module's block at an address freed and handed out again
 * since: not the caller's to take (-EPERM).
 */
int kmmp_take(const void *ptr, const struct kmmp_mod *taker)
{
	bool refused = false;
	struct kmmp_rec *r = kmmp_remove_if(ptr, taker, &refused);

	if (!r)
		return refused ? -EPERM : -ENOENT;
	atomic_long_inc(&kmmp_stats.transferred_objects);
	kmmp_rec_release(r);
	return 0;
}

/*
 * kmem_cache_destroy(@cache) is starting: records of blocks from that cache can no longer be
 * given back safely (the cache may be freed under us), so they are dropped, not freed. Runs
 * from a kprobe: walks the table bucket by bucket, each with interrupts off briefly.
 */
void kmmp_drop_cache(const struct kmem_cache *cache)
{
	struct hlist_bl_node *pos, *tmp;
	struct kmmp_rec *r, *dropped = NULL;
	unsigned long i, flags;

	if (!atomic_long_read(&kmmp_nr_records))	/* counts the victims too, until released */
		return;
	for (i = 0; i < (1UL << kmmp_bits); i++) {
		struct hlist_bl_head *head = &kmmp_buckets[i];

		if (hlist_bl_empty(head))
			continue;
		local_irq_save(flags);
		hlist_bl_lock(head);
		hlist_bl_for_each_entry_safe(r, pos, tmp, head, node) {
			if (r->kind == KMMP_CACHE && r->cache == cache) {
				hlist_bl_del(&r->node);
				r->victim_next = dropped;
				dropped = r;
			}
		}
		hlist_bl_unlock(head);
		local_irq_restore(flags);
	}
	/* The cache's records the collector took before the walk came to their buckets. */
	spin_lock_irqsave(&kmmp_victims_lock, flags);
	for (r = kmmp_victims; r; r = r->victim_next)
		if (r->kind == KMMP_CACHE && r->cache == cache)
			r->kind = KMMP_DROPPED;
	spin_unlock_irqrestore(&kmmp_victims_lock, flags);
	while (dropped) {
		r = dropped;
		dropped = r->victim_next;
		atomic_long_inc(&kmmp_stats.dropped_objects);
		kmmp_rec_release(r);
	}
}

/*
 * A leak to list, copied out of its record under the bucket lock and printed after it is
 * dropped: printk writes to the console in the caller, too long for interrupts off and a
 * bucket other CPUs' frees spin on (and a console driver that is itself a tracked module
 * would free into that bucket from inside the print).
 */
struct kmmp_leak_line {
	const void *ptr;
	size_t size;
	unsigned long offset;
	bool in_init;
	char name[MODULE_NAME_LEN];
};

#define KMMP_LEAK_LINES_PER_BUCKET 4

static void kmmp_copy_leak(const struct kmmp_rec *r, struct kmmp_leak_line *l)
{
	const struct kmmp_mod *m = r->mod;

	l->in_init = r->call_site - m->init_base < m->init_size;
	l->ptr = r->ptr;
	l->size = r->size;
	l->offset = r->call_site - (l->in_init ? m->init_base : m->core_base);
	strscpy(l->name, m->name, sizeof(l->name));
}

/* kmemleak's wording, with where in the (now unloaded) module the call was. */
static void kmmp_report_leak(const struct kmmp_leak_line *l)
{
	pr_info("unreferenced object 0x%p (size %zu):\n", l->ptr, l->size);
	pr_info("  module %s (gone), allocated at %s+0x%lx [%s]\n", l->name, l->name, l->offset,
		l->in_init ? "init" : "core");
}

/*
 * The collector's walk of buckets [@first, @last): records whose module is in @pass are
 * taken out of the table (@take, reclaim mode) onto the victims' list, or listed in
 * kmemleak's style and left in place (report mode; *@reported counts them). A record made
 * before a free probe last missed (@misses: kmmp_free_probes_missed() now) is never taken: the
 * missed free may have been its block's, which would be freed a second time. It stays,
 * counted once in unsafe_kept, and is never taken later either.
 */
void kmmp_collect_buckets(unsigned long first, unsigned long last, unsigned long pass,
			  bool take, unsigned long misses, unsigned int *reported)
{
	struct kmmp_leak_line lines[KMMP_LEAK_LINES_PER_BUCKET];
	struct hlist_bl_node *pos, *tmp;
	struct kmmp_rec *r;
	unsigned long i, flags;
	unsigned int n, j;

	last = min(last, 1UL << kmmp_bits);
	for (i = first; i < last; i++) {
		struct hlist_bl_head *head = &kmmp_buckets[i];

		if (hlist_bl_empty(head))
			continue;
		n = 0;
		local_irq_save(flags);
		hlist_bl_lock(head);
		hlist_bl_for_each_entry_safe(r, pos, tmp, head, node) {
			if (READ_ONCE(r->mod->pass) != pass)
				continue;
			if (take && (r->unsafe_kept || r->misses != misses)) {
				if (!r->unsafe_kept) {
					r->unsafe_kept = true;
					atomic_long_inc(&kmmp_stats.unsafe_kept);
				}
				continue;
			}
			if (take) {
				hlist_bl_del(&r->node);
				spin_lock(&kmmp_victims_lock);
				r->victim_next = kmmp_victims;
				kmmp_victims = r;
				spin_unlock(&kmmp_victims_lock);
				continue;
			}
			if ((*reported)++ < 100 && n < KMMP_LEAK_LINES_PER_BUCKET)
				kmmp_copy_leak(r, &lines[n++]);
		}
		hlist_bl_unlock(head);
		local_irq_restore(flags);
		for (j = 0; j < n; j++)
			kmmp_report_leak(&lines[j]);
	}
}

/*
 * The next victim, out of the list; a KMMP_CACHE one is freed here, under the list's lock
 * (see kmmp_victims), the others by the caller. NULL when none is left.
 */
struct kmmp_rec *kmmp_next_victim(void)
{
	struct kmmp_rec *r;
	unsigned long flags;

	spin_lock_irqsave(&kmmp_victims_lock, flags);
	r = kmmp_victims;
	if (r) {
		kmmp_victims = r->victim_next;
		if (r->kind == KMMP_CACHE)
			kmem_cache_free(r->cache, (void *)r->ptr);
	}
	spin_unlock_irqrestore(&kmmp_victims_lock, flags);
	return r;
}

/*
 * Puts every victim back in the table, never to be taken (unsafe_kept): a free probe missed,
 * or stopped firing, while they were being taken, so a free of theirs may have gone unseen.
 * A victim whose address has a record again was freed unseen and handed out anew: stale, it
 * goes. One marked KMMP_DROPPED (its cache destroyed) goes too. Returns how many went back.
 */
unsigned long kmmp_return_victims(void)
{
	struct kmmp_rec *list, *r, *stale;
	struct hlist_bl_head *head;
	unsigned long flags, back = 0;

	spin_lock_irqsave(&kmmp_victims_lock, flags);
	list = kmmp_victims;
	kmmp_victims = NULL;
	spin_unlock_irqrestore(&kmmp_victims_lock, flags);
	while (list) {
		r = list;
		list = r->victim_next;
		r->victim_next = NULL;
		if (r->kind == KMMP_DROPPED) {
			atomic_long_inc(&kmmp_stats.dropped_objects);
			kmmp_rec_release(r);
			continue;
		}
		head = kmmp_bucket(r->ptr);
		local_irq_save(flags);
		hlist_bl_lock(head);
		stale = kmmp_find(head, r->ptr);
		if (!stale) {
			if (!r->unsafe_kept) {
				r->unsafe_kept = true;
				atomic_long_inc(&kmmp_stats.unsafe_kept);
			}
			hlist_bl_add_head(&r->node, head);
		}
		hlist_bl_unlock(head);
		local_irq_restore(flags);
		if (stale) {
			atomic_long_inc(&kmmp_stats.stale_records);
			kmmp_rec_release(r);
			continue;
		}
		back++;
	}
	return back;
}

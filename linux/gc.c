// SPDX-License-Identifier: GPL-2.0
/*
 * kmm_protect: the collector, the paper's idle-time GC on a real kernel.
 *
 * A delayed work on system_unbound_wq (no high priority, runs when the scheduler gives it
 * time). A pass starts no sooner than gc_delay_ms after a module went and after the previous
 * pass started (the paper's rate limit), takes every module that went at least gc_delay_ms
 * ago with records left, and walks the table a slice of buckets at a time, yielding the CPU
 * for a jiffy between slices. In reclaim mode each record of those modules is taken out of
 * the table under its bucket lock and only then is the block freed (kfree, kmem_cache_free
 * or vfree); in report mode the records stay and are listed once, kmemleak's way.
 *
 * Before it takes anything, a reclaiming pass checks that every free kprobe still fires (a
 * canary call through each probed function: kprobes can be disarmed globally, with no miss
 * counted); if one does not, the pass takes nothing and is tried again after gc_delay_ms.
 * After each slice it checks again, and if a probe stopped firing or missed a free while
 * the slice was taken, the slice's records go back to the table, never to be taken.
 *
 * Exactly once: a block is freed by whoever takes its record out of the table first. The
 * free tracepoints (kfree, kmem_cache_free) and the vfree/kmem_cache_free_bulk kprobes fire
 * on entry, before the block is released, and take the record out under the bucket lock;
 * if they win, the collector never sees the record; if the collector wins, its own free
 * fires the tracepoint with a call_site in this module, which the probes ignore. So the
 * protector never frees a block some other path has started to free. (A caller that frees
 * a block of a gone module after the collector took it is freeing memory it was never
 * handed officially: that is the unsaid hand-over docs/LINUX.md warns about.)
 *
 * Depends on: kmmp.h. Only the work function touches kmmp_gc; kmmp_mods_lock guards the
 * module list and each module's pass fields.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/jiffies.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>

#include "kmmp.h"

DEFINE_MUTEX(kmmp_mods_lock);
LIST_HEAD(kmmp_all);
struct kmmp_stats kmmp_stats;

#define KMMP_SLICE_BUCKETS	2048	/* buckets walked per slice */
#define KMMP_GONE_KEPT		32	/* emptied gone identities still shown in /proc */

static struct {
	unsigned long pass;		/* the pass running, 0 when none */
	unsigned long next_bucket;
	bool take;			/* reclaim (true) or report */
	unsigned int reported;
	unsigned long kept;		/* victims put back: a free probe missed meanwhile */
	unsigned long last_start;	/* jiffies */
	bool started_once;
	bool canary_failing;		/* logged once until the probes fire again */
} kmmp_gc;

static bool kmmp_gc_stopped;	/* unloading: nothing queues the collector any more */

static void kmmp_gc_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(kmmp_gc_work, kmmp_gc_fn);

void kmmp_mod_account_drop(struct kmmp_mod *mod, size_t size)
{
	atomic_long_sub(size, &mod->bytes);
	atomic_long_dec(&mod->objects);	/* the last touch: the module may be freed after */
}

void kmmp_gc_kick(void)
{
	if (!READ_ONCE(kmmp_gc_stopped))
		queue_delayed_work(system_unbound_wq, &kmmp_gc_work,
				   msecs_to_jiffies(READ_ONCE(kmmp_gc_delay_ms)));
}

/* Now, not after the delay (a check queued for later is brought forward). */
void kmmp_gc_kick_now(void)
{
	if (!READ_ONCE(kmmp_gc_stopped))
		mod_delayed_work(system_unbound_wq, &kmmp_gc_work, 0);
}

/*
 * Whether a reclaiming pass may take anything now: every free kprobe fires. If one does not,
 * the pass is tried again after the delay (at least a second) and says why, once.
 */
static bool kmmp_gc_probes_fire(unsigned long delay)
{
	const char *silent;

	if (kmmp_free_probes_fire(&silent)) {
		if (kmmp_gc.canary_failing)
			pr_info("the free kprobes fire again: reclaiming resumes (leaks recorded before are kept)\n");
		kmmp_gc.canary_failing = false;
		return true;
	}
	atomic_long_inc(&kmmp_stats.canary_failures);
	if (!kmmp_gc.canary_failing)
		pr_warn("the %s kprobe did not fire (kprobes disarmed?): nothing is reclaimed until it does\n",
			silent);
	kmmp_gc.canary_failing = true;
	queue_delayed_work(system_unbound_wq, &kmmp_gc_work, max(delay, (unsigned long)HZ));
	return false;
}

/* Picks the modules of a new pass; false (and the next check queued) when none is due. */
static bool kmmp_gc_begin(void)
{
	int mode = READ_ONCE(kmmp_mode);
	bool take = mode == KMMP_RECLAIM && kmmp_free_probes_complete();
	unsigned long delay = msecs_to_jiffies(READ_ONCE(kmmp_gc_delay_ms));
	unsigned long now = jiffies, pass, wait = 0;
	struct kmmp_mod *m;
	unsigned int n = 0;

	if (mode == KMMP_OFF)
		return false;
	if (kmmp_gc.started_once && time_before(now, kmmp_gc.last_start + delay)) {
		queue_delayed_work(system_unbound_wq, &kmmp_gc_work,
				   kmmp_gc.last_start + delay - now);
		return false;
	}
	pass = atomic_long_read(&kmmp_stats.passes) + 1;
	mutex_lock(&kmmp_mods_lock);
	list_for_each_entry(m, &kmmp_all, all_node) {
		if (!m->gone || !atomic_long_read(&m->objects))
			continue;
		if (mode == KMMP_REPORT && m->reported)
			continue;
		if (time_before(now, m->gone_at + delay)) {
			unsigned long left = m->gone_at + delay - now;

			if (!wait || left < wait)
				wait = left;
			continue;
		}
		m->pass_objects = atomic_long_read(&m->objects);
		m->pass_bytes = atomic_long_read(&m->bytes);
		WRITE_ONCE(m->pass, pass);
		n++;
	}
	mutex_unlock(&kmmp_mods_lock);
	if (!n) {
		if (wait)
			queue_delayed_work(system_unbound_wq, &kmmp_gc_work, wait);
		return false;
	}
	if (take && !kmmp_gc_probes_fire(delay)) {
		mutex_lock(&kmmp_mods_lock);
		list_for_each_entry(m, &kmmp_all, all_node)
			if (m->pass == pass)
				WRITE_ONCE(m->pass, 0);
		mutex_unlock(&kmmp_mods_lock);
		return false;
	}
	kmmp_gc.pass = pass;
	kmmp_gc.next_bucket = 0;
	kmmp_gc.take = take;
	kmmp_gc.reported = 0;
	kmmp_gc.kept = 0;
	kmmp_gc.last_start = now;
	kmmp_gc.started_once = true;
	if (kmmp_gc.take) {
		/* Counted again below, from what this pass really frees. */
		mutex_lock(&kmmp_mods_lock);
		list_for_each_entry(m, &kmmp_all, all_node)
			if (m->pass == pass)
				m->pass_objects = m->pass_bytes = 0;
		mutex_unlock(&kmmp_mods_lock);
	}
	return true;
}

/* Frees the blocks of the victims' list (a cache's are freed as they are taken from it). */
static void kmmp_reclaim(void)
{
	struct kmmp_rec *r;

	while ((r = kmmp_next_victim())) {
		if (r->kind == KMMP_DROPPED) {	/* its cache is being destroyed: not freed */
			atomic_long_inc(&kmmp_stats.dropped_objects);
			kmmp_rec_release(r);
			continue;
		}
		if (r->kind == KMMP_KMALLOC)
			kfree(r->ptr);
		else if (r->kind == KMMP_VMALLOC)
			vfree(r->ptr);
		r->mod->pass_objects++;
		r->mod->pass_bytes += r->size;
		atomic_long_inc(&kmmp_stats.reclaimed_objects);
		atomic_long_add(r->size, &kmmp_stats.reclaimed_bytes);
		kmmp_rec_release(r);
		cond_resched();
	}
}

/*
 * Frees emptied gone identities, oldest first, beyond the few kept for /proc; under
 * kmmp_mods_lock (each pass's end, and each module's unload).
 */
void kmmp_trim_gone(void)
{
	struct kmmp_mod *m, *tmp;
	unsigned int empty = 0;

	lockdep_assert_held(&kmmp_mods_lock);
	list_for_each_entry(m, &kmmp_all, all_node)
		if (m->gone && !atomic_long_read(&m->objects))
			empty++;
	list_for_each_entry_safe(m, tmp, &kmmp_all, all_node) {
		if (empty <= KMMP_GONE_KEPT)
			break;
		if (m->gone && !atomic_long_read(&m->objects)) {
			list_del(&m->all_node);
			kfree_rcu(m, rcu);
			empty--;
		}
	}
}

static void kmmp_gc_end(void)
{
	unsigned long pass = kmmp_gc.pass, objects = 0, bytes = 0;
	char detail[192] = "";
	size_t len = 0;
	bool take_now = READ_ONCE(kmmp_mode) == KMMP_RECLAIM;
	struct kmmp_mod *m;
	bool more = false;

	mutex_lock(&kmmp_mods_lock);
	list_for_each_entry(m, &kmmp_all, all_node) {
		if (m->pass == pass) {
			objects += m->pass_objects;
			bytes += m->pass_bytes;
			len += scnprintf(detail + len, sizeof(detail) - len,
					 " %s %lu objects (%lu bytes);", m->name,
					 m->pass_objects, m->pass_bytes);
			if (!kmmp_gc.take)
				m->reported = true;
		}
		/* Left to do: in reclaim mode (now), what this pass did not try to take. */
		if (m->gone && atomic_long_read(&m->objects) &&
		    (take_now ? !kmmp_gc.take || m->pass != pass : !m->reported))
			more = true;
	}
	kmmp_trim_gone();
	mutex_unlock(&kmmp_mods_lock);

	atomic_long_inc(&kmmp_stats.passes);
	if (kmmp_gc.take) {
		pr_info("GCONLINUX activated: pass %lu: reclaimed %lu objects (%lu bytes):%s\n",
			pass, objects, bytes, detail);
		if (kmmp_gc.kept)
			pr_warn("pass %lu: %lu objects kept, not freed: a free probe missed or stopped firing while they were taken\n",
				pass, kmmp_gc.kept);
	} else {
		atomic_long_add(objects, &kmmp_stats.reported_objects);
		pr_info("GCONLINUX activated: pass %lu: reported %lu leaked objects (%lu bytes), mode=report frees nothing:%s\n",
			pass, objects, bytes, detail);
	}
	kmmp_gc.pass = 0;
	if (more)
		queue_delayed_work(system_unbound_wq, &kmmp_gc_work, 0);
}

static void kmmp_gc_fn(struct work_struct *work)
{
	unsigned long first, misses;
	const char *silent;

	if (!kmmp_gc.pass && !kmmp_gc_begin())
		return;
	first = kmmp_gc.next_bucket;
	misses = kmmp_free_probes_missed();
	kmmp_collect_buckets(first, first + KMMP_SLICE_BUCKETS, kmmp_gc.pass, kmmp_gc.take,
			     misses, &kmmp_gc.reported);
	/*
	 * A free missed while the slice was taken may have been a victim's (its record was
	 * still in the table then): none of the slice is freed. Nor when a probe no longer
	 * fires (disarmed with no probe on the switch to count it).
	 */
	if (kmmp_gc.take &&
	    (!kmmp_free_probes_fire(&silent) || kmmp_free_probes_missed() != misses))
		kmmp_gc.kept += kmmp_return_victims();
	kmmp_reclaim();
	kmmp_gc.next_bucket = first + KMMP_SLICE_BUCKETS;
	if (kmmp_gc.next_bucket < kmmp_table_size()) {
		queue_delayed_work(system_unbound_wq, &kmmp_gc_work, 1);
		return;
	}
	kmmp_gc_end();
}

/* No pass runs after this, nor can one be queued again (safe to call twice). */
void kmmp_gc_exit(void)
{
	WRITE_ONCE(kmmp_gc_stopped, true);
	cancel_delayed_work_sync(&kmmp_gc_work);
}

/* At unload, after the table is gone: forget every identity. */
void kmmp_mods_free_all(void)
{
	struct kmmp_mod *m, *tmp;

	mutex_lock(&kmmp_mods_lock);
	list_for_each_entry_safe(m, tmp, &kmmp_all, all_node) {
		list_del(&m->all_node);
		kfree_rcu(m, rcu);
	}
	mutex_unlock(&kmmp_mods_lock);
}

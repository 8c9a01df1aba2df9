// SPDX-License-Identifier: GPL-2.0
/*
 * kmm_protect: /proc/kmm_protect/modules and /proc/kmm_protect/stats.
 *
 * A contract other checks read (docs/LINUX.md): modules has a header line, then one row a
 * tracked module load, "NAME STATE OBJECTS BYTES" with STATE live or gone; stats has one
 * "key value" line each, passes, leaked_objects, leaked_bytes, reclaimed_objects and
 * reclaimed_bytes first, more after. New keys may be added; these never change meaning.
 *
 * Depends on: kmmp.h.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/proc_fs.h>
#include <linux/seq_file.h>

#include "kmmp.h"

static struct proc_dir_entry *kmmp_proc_dir;

static int kmmp_modules_show(struct seq_file *s, void *unused)
{
	struct kmmp_mod *m;

	seq_puts(s, "NAME STATE OBJECTS BYTES\n");
	mutex_lock(&kmmp_mods_lock);
	list_for_each_entry(m, &kmmp_all, all_node)
		seq_printf(s, "%s %s %ld %ld\n", m->name, m->gone ? "gone" : "live",
			   atomic_long_read(&m->objects), atomic_long_read(&m->bytes));
	mutex_unlock(&kmmp_mods_lock);
	return 0;
}

static int kmmp_stats_show(struct seq_file *s, void *unused)
{
	static const char * const mode_names[] = { "off", "report", "reclaim" };
	const struct kmmp_stats *st = &kmmp_stats;

	seq_printf(s, "passes %ld\n", atomic_long_read(&st->passes));
	seq_printf(s, "leaked_objects %ld\n", atomic_long_read(&st->leaked_objects));
	seq_printf(s, "leaked_bytes %ld\n", atomic_long_read(&st->leaked_bytes));
	seq_printf(s, "reclaimed_objects %ld\n", atomic_long_read(&st->reclaimed_objects));
	seq_printf(s, "reclaimed_bytes %ld\n", atomic_long_read(&st->reclaimed_bytes));
	seq_printf(s, "reported_objects %ld\n", atomic_long_read(&st->reported_objects));
	seq_printf(s, "transferred_objects %ld\n", atomic_long_read(&st->transferred_objects));
	seq_printf(s, "dropped_objects %ld\n", atomic_long_read(&st->dropped_objects));
	seq_printf(s, "stale_records %ld\n", atomic_long_read(&st->stale_records));
	seq_printf(s, "untracked %ld\n",
		   atomic_long_read(&st->untracked) + (long)kmmp_probes_missed());
	seq_printf(s, "free_probe_misses %lu\n", kmmp_free_probes_missed());
	seq_printf(s, "unsafe_kept %ld\n", atomic_long_read(&st->unsafe_kept));
	seq_printf(s, "canary_failures %ld\n", atomic_long_read(&st->canary_failures));
	seq_printf(s, "records %ld\n", kmmp_records());
	seq_printf(s, "buckets %lu\n", kmmp_table_size());
	seq_printf(s, "mode %s\n", mode_names[READ_ONCE(kmmp_mode)]);
	seq_printf(s, "gc_delay_ms %u\n", READ_ONCE(kmmp_gc_delay_ms));
	return 0;
}

int kmmp_proc_init(void)
{
	kmmp_proc_dir = proc_mkdir("kmm_protect", NULL);
	if (!kmmp_proc_dir)
		return -ENOMEM;
	if (!proc_create_single("modules", 0444, kmmp_proc_dir, kmmp_modules_show) ||
	    !proc_create_single("stats", 0444, kmmp_proc_dir, kmmp_stats_show)) {
		proc_remove(kmmp_proc_dir);
		return -ENOMEM;
	}
	return 0;
}

void kmmp_proc_exit(void)
{
	proc_remove(kmmp_proc_dir);
}

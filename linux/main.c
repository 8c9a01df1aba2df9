// SPDX-License-Identifier: GPL-2.0
/*
 * kmm_protect: the kernel memory protector of Baek, Park and Choi (2004) as a loadable
 * module for an unpatched kernel (Debian 12's 6.1).
 *
 * Every kmalloc, kmem_cache_alloc and vmalloc a module makes from its own code is recorded
 * with the module that made it; frees drop the record. When a module is unloaded, what it
 * still holds is a leak: after gc_delay_ms a low-priority collector reports it (mode=report,
 * the default) or frees it (mode=reclaim). mode=off loads without any probe (a stock kernel).
 * Parameters: mode=off|report|reclaim (report/reclaim switchable at run time),
 * gc_delay_ms=5000, table_bits=14 (hash buckets = 2^table_bits; records are unbounded).
 *
 * Depends on: the files beside it (kmmp.h). Design and limits: docs/LINUX.md.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/string.h>

#include "kmmp.h"
#include "include/kmm_protect.h"

int kmmp_mode = KMMP_REPORT;
unsigned int kmmp_gc_delay_ms = 5000;
static unsigned int kmmp_table_bits = 14;
static bool kmmp_probing;
static bool kmmp_loaded;

static const char * const kmmp_mode_names[] = { "off", "report", "reclaim" };

/*
 * Runs under kernel_param_lock(THIS_MODULE) once the module is in sysfs (a write to
 * /sys/module/kmm_protect/parameters/mode); kmmp_init and kmmp_exit take that lock around
 * kmmp_probing and kmmp_loaded, so a write during either sees them settled.
 */
static int kmmp_mode_set(const char *val, const struct kernel_param *kp)
{
	int mode = sysfs_match_string(kmmp_mode_names, val);
	int old = READ_ONCE(kmmp_mode);

	if (mode < 0) {
		pr_err("mode=%s: expected off, report or reclaim\n", val);
		return -EINVAL;
	}
	/* Probes are registered at load only: off cannot be left, nor entered, later. */
	if (kmmp_probing && mode == KMMP_OFF) {
		pr_err("mode=off is chosen at load; now only report or reclaim\n");
		return -EINVAL;
	}
	if (kmmp_loaded && !kmmp_probing && mode != KMMP_OFF) {
		pr_err("mode=%s: loaded with mode=off, reload to protect\n", val);
		return -EINVAL;
	}
	if (kmmp_probing && mode == KMMP_RECLAIM && !kmmp_free_probes_complete()) {
		pr_err("mode=reclaim: a free kprobe is missing (see the load's log), only report\n");
		return -EINVAL;
	}
	WRITE_ONCE(kmmp_mode, mode);
	/* What report mode listed is reclaimed now, not at the next module's unload. */
	if (kmmp_loaded && kmmp_probing && mode == KMMP_RECLAIM && old != KMMP_RECLAIM)
		kmmp_gc_kick_now();
	return 0;
}

static int kmmp_mode_get(char *buf, const struct kernel_param *kp)
{
	return sprintf(buf, "%s\n", kmmp_mode_names[READ_ONCE(kmmp_mode)]);
}

static const struct kernel_param_ops kmmp_mode_ops = {
	.set = kmmp_mode_set,
	.get = kmmp_mode_get,
};

module_param_cb(mode, &kmmp_mode_ops, NULL, 0644);
MODULE_PARM_DESC(mode, "off (stock kernel), report (list leaks, default) or reclaim (free them)");
module_param_named(gc_delay_ms, kmmp_gc_delay_ms, uint, 0644);
MODULE_PARM_DESC(gc_delay_ms, "ms after a module's unload before its leaks are collected (5000)");
module_param_named(table_bits, kmmp_table_bits, uint, 0444);
MODULE_PARM_DESC(table_bits, "log2 of the record hash's bucket count, 8..24 (14)");

int kmm_protect_transfer(const void *ptr, struct module *new_owner)
{
	int ret;

	if (new_owner)
		return -EINVAL;
	/* The caller's own blocks, and gone modules' (a rescue): kmmp_take. */
	rcu_read_lock();
	ret = kmmp_take(ptr, kmmp_owner(_RET_IP_));
	rcu_read_unlock();
	return ret;
}
EXPORT_SYMBOL_GPL(kmm_protect_transfer);

static int __init kmmp_init(void)
{
	int ret;

	if (kmmp_table_bits < 8 || kmmp_table_bits > 24) {
		pr_err("table_bits=%u: expected 8..24\n", kmmp_table_bits);
		return -EINVAL;
	}
	ret = kmmp_table_init(kmmp_table_bits);
	if (ret)
		return ret;
	ret = kmmp_proc_init();
	if (ret)
		goto out_table;
	/* mode= is writable in sysfs already: decide with writers held off. */
	kernel_param_lock(THIS_MODULE);
	if (kmmp_mode != KMMP_OFF) {
		ret = kmmp_probes_init();
		if (ret) {
			kernel_param_unlock(THIS_MODULE);
			goto out_probes;
		}
		kmmp_probing = true;
		if (kmmp_mode == KMMP_RECLAIM && !kmmp_free_probes_complete()) {
			pr_warn("mode=reclaim refused: a free kprobe is missing, reporting instead\n");
			kmmp_mode = KMMP_REPORT;
		}
	}
	pr_info("loaded: mode=%s gc_delay_ms=%u buckets=%lu; modules loaded from now on are tracked\n",
		kmmp_mode_names[kmmp_mode], kmmp_gc_delay_ms, kmmp_table_size());
	kmmp_loaded = true;
	kernel_param_unlock(THIS_MODULE);
	return 0;

out_probes:
	/* A module that came or went while the probes were half registered. */
	kmmp_gc_exit();
	kmmp_proc_exit();
	kmmp_table_exit();
	kmmp_mods_free_all();
	return ret;
out_table:
	kmmp_table_exit();
	return ret;
}

static void __exit kmmp_exit(void)
{
	/*
	 * The collector first, while every free probe still runs: a pass after them would take
	 * records whose frees go unseen. Under the parameter lock, so no mode= write kicks it
	 * again; once the module notifier is gone, again, for an unload that kicked it meanwhile.
	 */
	kernel_param_lock(THIS_MODULE);
	kmmp_gc_exit();
	kernel_param_unlock(THIS_MODULE);
	if (kmmp_probing)
		kmmp_probes_exit();
	kmmp_gc_exit();
	kmmp_proc_exit();
	kmmp_table_exit();
	kmmp_mods_free_all();
	pr_info("unloaded\n");
}

module_init(kmmp_init);
module_exit(kmmp_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Kernel memory protector: reclaims what unloaded modules leaked");

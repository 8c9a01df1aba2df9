// SPDX-License-Identifier: GPL-2.0
/*
 * m_bench: the protector's cost per allocation, measured in the kernel it runs in. At insmod
 * times pairs of kmalloc(64)+kfree made from this module's code (tracked when kmm_protect is
 * loaded first: a record inserted and removed per pair) and pairs of kasprintf+kfree (an
 * allocation whose call_site is in the kernel: what every other kmalloc in the system pays).
 * Best of five rounds; prints ns per pair. Parameter: pairs=5000.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/slab.h>

static unsigned int pairs = 5000;
module_param(pairs, uint, 0444);

static u64 time_module_pairs(void)
{
	u64 start = ktime_get_ns();
	unsigned int i;

	for (i = 0; i < pairs; i++) {
		void *p = kmalloc(64, GFP_KERNEL);

		OPTIMIZER_HIDE_VAR(p);
		kfree(p);
	}
	return ktime_get_ns() - start;
}

static u64 time_kernel_pairs(void)
{
	u64 start = ktime_get_ns();
	unsigned int i;

	for (i = 0; i < pairs; i++)
		kfree(kasprintf(GFP_KERNEL, "%u", i));
	return ktime_get_ns() - start;
}

static int __init m_bench_init(void)
{
	u64 best_module = U64_MAX, best_kernel = U64_MAX;
	int round;

	if (!pairs)
		return -EINVAL;
	for (round = 0; round < 5; round++) {
		best_module = min(best_module, time_module_pairs());
		best_kernel = min(best_kernel, time_kernel_pairs());
		cond_resched();
	}
	pr_info("module kmalloc(64)+kfree: %llu ns/pair; kernel kasprintf+kfree: %llu ns/pair (%u pairs, best of 5)\n",
		div_u64(best_module, pairs), div_u64(best_kernel, pairs), pairs);
	return 0;
}

static void __exit m_bench_exit(void)
{
}

module_init(m_bench_init);
module_exit(m_bench_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ns per kmalloc+kfree pair, module and kernel call sites");

// SPDX-License-Identifier: GPL-2.0
/*
 * m_churn: one kthread per online CPU, each kmallocs and kfrees blocks of 16..2048 bytes in a
 * ring of 32 (and now and then vmallocs and vfrees one) until rmmod, which frees what is left:
 * module allocations and frees on every CPU while the protector's collector runs passes.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#define M_CHURN_RING 32

static struct task_struct *threads[NR_CPUS];
static atomic_long_t pairs = ATOMIC_LONG_INIT(0);

static int m_churn_fn(void *unused)
{
	void *ring[M_CHURN_RING] = { NULL };
	unsigned long i = 0;
	int slot;

	while (!kthread_should_stop()) {
		slot = i % M_CHURN_RING;
		kfree(ring[slot]);
		ring[slot] = kmalloc(16 + get_random_u32_below(2033), GFP_KERNEL);
		if ((i & 255) == 0)
			vfree(vmalloc(8192));
		/* Busy, yet leaving the CPUs some time for insmod, rmmod and the collector. */
		if ((i & 63) == 0)
			usleep_range(200, 400);
		i++;
	}
	for (slot = 0; slot < M_CHURN_RING; slot++)
		kfree(ring[slot]);
	atomic_long_add(i, &pairs);
	return 0;
}

static int __init m_churn_init(void)
{
	int cpu;

	for_each_online_cpu(cpu) {
		threads[cpu] = kthread_run_on_cpu(m_churn_fn, NULL, cpu, "m_churn/%u");
		if (IS_ERR(threads[cpu]))
			threads[cpu] = NULL;
	}
	return 0;
}

static void __exit m_churn_exit(void)
{
	int cpu;

	for_each_possible_cpu(cpu)
		if (threads[cpu])
			kthread_stop(threads[cpu]);
	pr_info("%ld kmalloc+kfree pairs\n", atomic_long_read(&pairs));
}

module_init(m_churn_init);
module_exit(m_churn_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("allocates and frees on every CPU until rmmod");

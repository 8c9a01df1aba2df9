// SPDX-License-Identifier: GPL-2.0
/*
 * m_rcu: frees all its blocks at rmmod with kfree_rcu(), which in 6.1 frees them in batches
 * up to seconds later (through kfree_bulk, no tracepoint): after rmmod they are still
 * allocated, yet freed by someone else. The protector must neither count them as leaks nor
 * free them a second time. Parameter: count=64.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>

struct m_rcu_block {
	struct rcu_head rcu;
	char payload[200];
};

static unsigned int count = 64;
module_param(count, uint, 0444);
static struct m_rcu_block **blocks;

static int __init m_rcu_init(void)
{
	unsigned int i;

	blocks = kcalloc(count, sizeof(*blocks), GFP_KERNEL);
	if (!blocks)
		return -ENOMEM;
	for (i = 0; i < count; i++)
		blocks[i] = kmalloc(sizeof(*blocks[i]), GFP_KERNEL);
	return 0;
}

static void __exit m_rcu_exit(void)
{
	unsigned int i;

	for (i = 0; i < count; i++)
		kfree_rcu(blocks[i], rcu);
	kfree(blocks);
}

module_init(m_rcu_init);
module_exit(m_rcu_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("frees its blocks with kfree_rcu at rmmod");

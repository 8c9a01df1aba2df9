// SPDX-License-Identifier: GPL-2.0
/*
 * m_half: kmallocs 100 blocks of 256 bytes at insmod and frees every odd one at rmmod: the
 * 50 it frees must not be touched by the collector, the 50 it leaks must be reclaimed.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/slab.h>

#define M_HALF_BLOCKS 100
#define M_HALF_SIZE 256

static void *blocks[M_HALF_BLOCKS];

static int __init m_half_init(void)
{
	int i;

	for (i = 0; i < M_HALF_BLOCKS; i++) {
		blocks[i] = kmalloc(M_HALF_SIZE, GFP_KERNEL);
		if (!blocks[i])
			return -ENOMEM;
	}
	pr_info("leaking %d objects (%d bytes)\n", M_HALF_BLOCKS / 2,
		M_HALF_BLOCKS / 2 * M_HALF_SIZE);
	return 0;
}

static void __exit m_half_exit(void)
{
	int i;

	for (i = 1; i < M_HALF_BLOCKS; i += 2)
		kfree(blocks[i]);
}

module_init(m_half_init);
module_exit(m_half_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("frees half of its blocks at rmmod");

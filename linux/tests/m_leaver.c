// SPDX-License-Identifier: GPL-2.0
/*
 * m_leaver: kmallocs 2000 blocks of 64..1023 bytes at insmod and hands them to m_rescuer
 * without a transfer; its exit starts m_rescuer's rescue, which races the collector for
 * them once this module is gone.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/slab.h>

#include "m_rescuer.h"

#define M_LEAVER_BLOCKS 2000

static void *blocks[M_LEAVER_BLOCKS];
static size_t sizes[M_LEAVER_BLOCKS];

static int __init m_leaver_init(void)
{
	size_t bytes = 0;
	int i, ret;

	for (i = 0; i < M_LEAVER_BLOCKS; i++) {
		sizes[i] = 64 + (i * 37) % 960;
		blocks[i] = kmalloc(sizes[i], GFP_KERNEL);
		if (!blocks[i]) {
			while (i--)
				kfree(blocks[i]);
			return -ENOMEM;
		}
		bytes += sizes[i];
	}
	ret = m_rescuer_adopt(blocks, sizes, M_LEAVER_BLOCKS);
	if (ret) {
		for (i = 0; i < M_LEAVER_BLOCKS; i++)
			kfree(blocks[i]);
		return ret;
	}
	pr_info("leaking %d objects (%zu bytes)\n", M_LEAVER_BLOCKS, bytes);
	return 0;
}

static void __exit m_leaver_exit(void)
{
	m_rescuer_go();
}

module_init(m_leaver_init);
module_exit(m_leaver_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("leaves 2000 blocks to m_rescuer, which rescues them after its rmmod");

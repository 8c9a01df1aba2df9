// SPDX-License-Identifier: GPL-2.0
/*
 * m_handover: kmallocs two blocks of 512 bytes; hands the first to m_holder and says so with
 * kmm_protect_transfer(ptr, NULL); leaks the second. Only the second may be reclaimed.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/slab.h>

#include "kmm_protect.h"
#include "m_holder.h"

static int __init m_handover_init(void)
{
	void *given = kmalloc(512, GFP_KERNEL);
	void *leaked = kmalloc(512, GFP_KERNEL);
	int ret;

	if (!given || !leaked) {
		kfree(given);
		kfree(leaked);
		return -ENOMEM;
	}
	ret = kmm_protect_transfer(given, NULL);
	if (ret) {
		pr_err("kmm_protect_transfer: %d\n", ret);
		kfree(given);
		kfree(leaked);
		return ret;
	}
	m_holder_keep(given);
	pr_info("leaking 1 objects (512 bytes), handed 1 over\n");
	return 0;
}

static void __exit m_handover_exit(void)
{
}

module_init(m_handover_init);
module_exit(m_handover_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("hands one block over with kmm_protect_transfer, leaks another");

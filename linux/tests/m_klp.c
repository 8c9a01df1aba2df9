// SPDX-License-Identifier: GPL-2.0
/*
 * m_klp: marked as a livepatch module (MODULE_INFO livepatch, so the kernel sets mod->klp;
 * it patches nothing) and leaves count=8 blocks at rmmod. A real livepatch's objects stay
 * referenced by the kernel after its module is removed: the protector must not track such a
 * module at all (no row, no leak).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/slab.h>

static unsigned int count = 8;
module_param(count, uint, 0444);

static int __init m_klp_init(void)
{
	unsigned int i;

	for (i = 0; i < count; i++)
		if (!kmalloc(64, GFP_KERNEL))
			return -ENOMEM;
	pr_info("leaking %u objects (%u bytes)\n", count, count * 64);
	return 0;
}

static void __exit m_klp_exit(void)
{
}

module_init(m_klp_init);
module_exit(m_klp_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("a livepatch-marked module that leaves blocks behind");

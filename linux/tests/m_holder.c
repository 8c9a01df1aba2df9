// SPDX-License-Identifier: GPL-2.0
/*
 * m_holder: stands for "the kernel" a block is handed to. Keeps the blocks given to it by
 * m_holder_keep() and kfrees them at its own rmmod. If the protector had reclaimed one of
 * them, that kfree would be a double free, which slub_debug reports.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/slab.h>

#include "m_holder.h"

#define M_HOLDER_SLOTS 16

static void *kept[M_HOLDER_SLOTS];
static int nkept;

int m_holder_keep(void *p)
{
	if (nkept == M_HOLDER_SLOTS)
		return -ENOSPC;
	kept[nkept++] = p;
	return 0;
}
EXPORT_SYMBOL_GPL(m_holder_keep);

static int __init m_holder_init(void)
{
	return 0;
}

static void __exit m_holder_exit(void)
{
	int i;

	for (i = 0; i < nkept; i++)
		kfree(kept[i]);
	pr_info("freed %d blocks handed over to it\n", nkept);
}

module_init(m_holder_init);
module_exit(m_holder_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("keeps blocks handed over to it, frees them at rmmod");

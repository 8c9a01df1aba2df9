// SPDX-License-Identifier: GPL-2.0
/*
 * m_test: the paper's test module. kmallocs count blocks of size bytes at insmod and frees
 * nothing at rmmod: on a stock kernel that memory is lost until reboot.
 * Parameters: count=4096 size=4096.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>

static unsigned int count = 4096;
module_param(count, uint, 0444);
static unsigned int size = 4096;
module_param(size, uint, 0444);

static int __init m_test_init(void)
{
	unsigned int i;

	for (i = 0; i < count; i++) {
		void *p = kmalloc(size, GFP_KERNEL);

		if (!p)
			break;
		memset(p, 0xa5, size);
	}
	pr_info("leaking %u objects (%lu bytes)\n", i, (unsigned long)i * size);
	return 0;
}

static void __exit m_test_exit(void)
{
	/* The paper's bug: nothing is freed. */
}

module_init(m_test_init);
module_exit(m_test_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmallocs at insmod, frees nothing at rmmod");

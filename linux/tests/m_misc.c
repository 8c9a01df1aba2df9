// SPDX-License-Identifier: GPL-2.0
/*
 * m_misc: leak-free, and two paths whose records must come out right.
 *  - kvrealloc to a smaller size: 6.1 answers the block given, in place; its record must stay
 *    the same (one object, its size now 500 bytes), not be replaced as a stale one;
 *  - devm_kmalloc (devm=1): 6.1's alloc_dr is __always_inline in devm_kmalloc and allocates
 *    with kmalloc_node_track_caller, so the kmalloc tracepoint's call_site is devm_kmalloc's
 *    return address, in this module: a tracked block (keyed by the devres header, not the
 *    pointer returned), freed by the device's release at rmmod.
 * Everything is freed at rmmod. Parameter: devm=0.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/slab.h>

static bool devm;
module_param(devm, bool, 0444);
static void *block;
static struct platform_device *pdev;

static int __init m_misc_init(void)
{
	void *p = kvmalloc(1000, GFP_KERNEL);

	if (!p)
		return -ENOMEM;
	block = kvrealloc(p, 1000, 500, GFP_KERNEL);
	pr_info("kvrealloc(1000 -> 500) %s\n", block == p ? "in place" : "moved");
	if (!devm)
		return 0;
	pdev = platform_device_register_simple("m_misc", -1, NULL, 0);
	if (IS_ERR(pdev)) {
		kvfree(block);
		return PTR_ERR(pdev);
	}
	if (!devm_kmalloc(&pdev->dev, 100, GFP_KERNEL)) {
		platform_device_unregister(pdev);
		kvfree(block);
		return -ENOMEM;
	}
	return 0;
}

static void __exit m_misc_exit(void)
{
	if (pdev)
		platform_device_unregister(pdev);
	kvfree(block);
}

module_init(m_misc_init);
module_exit(m_misc_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kvrealloc in place and devm_kmalloc, all freed at rmmod");

// SPDX-License-Identifier: GPL-2.0
/*
 * m_rescuer: stands for a host that keeps what an unloading module leaves behind and asks
 * for it properly. m_rescuer_adopt() copies the block pointers another module hands it;
 * m_rescuer_go(), called from that module's exit, starts a kthread that rescues the blocks
 * one by one with kmm_protect_transfer(ptr, NULL), at a pace that lets a collector pass
 * begin meanwhile. A rescued block is written all over and kfreed at this module's rmmod; a
 * block the collector took first (-ENOENT) is never touched. If one block were both rescued
 * and reclaimed, slub_debug would report the write after free or the double free.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "kmm_protect.h"
#include "m_rescuer.h"

#define M_RESCUER_MAX 4096

static void *adopted[M_RESCUER_MAX];
static size_t adopted_size[M_RESCUER_MAX];
static int nadopted;
static struct task_struct *rescuer;

int m_rescuer_adopt(void **blocks, const size_t *sizes, int n)
{
	if (n < 0 || n > M_RESCUER_MAX - nadopted)
		return -ENOSPC;
	/* Its module is live: not ours to take (-EPERM), and it stays its owner's. */
	if (n > 0)
		pr_info("transfer of a live module's block: %d\n", kmm_protect_transfer(blocks[0], NULL));
	memcpy(&adopted[nadopted], blocks, n * sizeof(*blocks));
	memcpy(&adopted_size[nadopted], sizes, n * sizeof(*sizes));
	nadopted += n;
	return 0;
}
EXPORT_SYMBOL_GPL(m_rescuer_adopt);

static int m_rescuer_fn(void *unused)
{
	int i, rescued = 0;

	for (i = 0; i < nadopted; i++) {
		if (kmm_protect_transfer(adopted[i], NULL) == 0) {
			memset(adopted[i], 0x5a, adopted_size[i]);
			rescued++;
		} else {
			adopted[i] = NULL;	/* the collector's: freed, or about to be */
		}
		usleep_range(200, 400);
	}
	pr_info("rescued %d of %d\n", rescued, nadopted);
	while (!kthread_should_stop())
		schedule_timeout_interruptible(HZ / 10);
	return 0;
}

void m_rescuer_go(void)
{
	if (rescuer)
		return;
	rescuer = kthread_run(m_rescuer_fn, NULL, "m_rescuer");
	if (IS_ERR(rescuer)) {
		pr_err("no rescuer thread (%ld)\n", PTR_ERR(rescuer));
		rescuer = NULL;
	}
}
EXPORT_SYMBOL_GPL(m_rescuer_go);

static int __init m_rescuer_init(void)
{
	return 0;
}

static void __exit m_rescuer_exit(void)
{
	int i, freed = 0;

	if (rescuer)
		kthread_stop(rescuer);
	for (i = 0; i < nadopted; i++) {
		if (adopted[i]) {
			kfree(adopted[i]);
			freed++;
		}
	}
	pr_info("freed %d rescued blocks\n", freed);
}

module_init(m_rescuer_init);
module_exit(m_rescuer_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("rescues an unloaded module's blocks with kmm_protect_transfer");

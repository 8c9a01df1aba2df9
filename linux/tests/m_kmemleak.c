// SPDX-License-Identifier: GPL-2.0
/*
 * m_kmemleak: the patterns of Linux's mm/kmemleak-test.c — kmalloc 32/1024/2048/4096 (two
 * each), vmalloc(64) five times, a list of ten kzalloc'd nodes unlinked but not freed at exit —
 * plus what kmemleak-test cannot show for a module: two objects of the module's own
 * kmem_cache (the cache is leaked too), a kstrdup (tracked through its caller) and a
 * kvmalloc. Everything is leaked; the module prints how many objects and bytes.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/list.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

struct test_node {
	long header[25];
	struct list_head list;
	long footer[25];
};

static LIST_HEAD(test_list);
static unsigned long leaked_objects, leaked_bytes;

static void *count_leak(void *p, size_t size)
{
	if (p) {
		leaked_objects++;
		leaked_bytes += size;
	}
	return p;
}

static int __init m_kmemleak_init(void)
{
	static const size_t sizes[] = { 32, 32, 1024, 1024, 2048, 2048, 4096, 4096 };
	struct kmem_cache *cache;
	struct test_node *elem;
	int i;

	for (i = 0; i < ARRAY_SIZE(sizes); i++)
		pr_info("kmalloc(%zu) = %p\n", sizes[i],
			count_leak(kmalloc(sizes[i], GFP_KERNEL), sizes[i]));
	for (i = 0; i < 5; i++)
		pr_info("vmalloc(64) = %p\n", count_leak(vmalloc(64), 64));
	for (i = 0; i < 10; i++) {
		elem = count_leak(kzalloc(sizeof(*elem), GFP_KERNEL), sizeof(*elem));
		if (!elem)
			return -ENOMEM;
		INIT_LIST_HEAD(&elem->list);
		list_add_tail(&elem->list, &test_list);
	}
	cache = kmem_cache_create("m_kmemleak_cache", 200, 0, 0, NULL);
	if (cache) {
		for (i = 0; i < 2; i++)
			count_leak(kmem_cache_alloc(cache, GFP_KERNEL), kmem_cache_size(cache));
	}
	count_leak(kstrdup("a string from kstrdup", GFP_KERNEL), 22);
	count_leak(kvmalloc(100000, GFP_KERNEL), 100000);
	pr_info("leaking %lu objects (%lu bytes)\n", leaked_objects, leaked_bytes);
	return 0;
}

static void __exit m_kmemleak_exit(void)
{
	struct test_node *elem, *tmp;

	/* Only removing the list elements, not freeing them: they are orphans now. */
	list_for_each_entry_safe(elem, tmp, &test_list, list)
		list_del(&elem->list);
}

module_init(m_kmemleak_init);
module_exit(m_kmemleak_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmemleak-test's leak patterns as a module");

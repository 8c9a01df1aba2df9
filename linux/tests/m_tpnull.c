// SPDX-License-Identifier: GPL-2.0
/*
 * m_tpnull: registers empty probes on the four kmem tracepoints kmm_protect uses and nothing
 * else. The benchmark loads it to split kmm_protect's cost on untracked allocations into what
 * any tracepoint user pays and what the protector adds.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/slab.h>
#include <linux/tracepoint.h>
#include <trace/events/kmem.h>

static void on_kmalloc(void *data, unsigned long call_site, const void *ptr, size_t bytes_req,
		       size_t bytes_alloc, gfp_t gfp_flags, int node)
{
}

static void on_cache_alloc(void *data, unsigned long call_site, const void *ptr,
			   struct kmem_cache *s, gfp_t gfp_flags, int node)
{
}

static void on_kfree(void *data, unsigned long call_site, const void *ptr)
{
}

static void on_cache_free(void *data, unsigned long call_site, const void *ptr,
			  const struct kmem_cache *s)
{
}

static int __init m_tpnull_init(void)
{
	int ret = register_trace_kmalloc(on_kmalloc, NULL);

	if (!ret)
		ret = register_trace_kmem_cache_alloc(on_cache_alloc, NULL);
	if (!ret)
		ret = register_trace_kfree(on_kfree, NULL);
	if (!ret)
		ret = register_trace_kmem_cache_free(on_cache_free, NULL);
	if (ret) {
		unregister_trace_kmalloc(on_kmalloc, NULL);
		unregister_trace_kmem_cache_alloc(on_cache_alloc, NULL);
		unregister_trace_kfree(on_kfree, NULL);
		tracepoint_synchronize_unregister();
	}
	return ret;
}

static void __exit m_tpnull_exit(void)
{
	unregister_trace_kmem_cache_free(on_cache_free, NULL);
	unregister_trace_kfree(on_kfree, NULL);
	unregister_trace_kmem_cache_alloc(on_cache_alloc, NULL);
	unregister_trace_kmalloc(on_kmalloc, NULL);
	tracepoint_synchronize_unregister();
}

module_init(m_tpnull_init);
module_exit(m_tpnull_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("empty probes on the kmem tracepoints (benchmark baseline)");

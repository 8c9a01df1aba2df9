// SPDX-License-Identifier: GPL-2.0
/*
 * kmm_protect: where records come from and go.
 *
 *  - the kmem tracepoints kmalloc and kmem_cache_alloc record blocks whose call_site lies in
 *    a tracked module's core or init text; kfree and kmem_cache_free drop them (they fire on
 *    entry, while the block is still allocated);
 *  - kretprobes on the exported vmalloc entry points (and kvmalloc_node, kvrealloc) record
 *    what a module vmallocs: the return address is the module's own call; a kprobe on vfree
 *    drops them (kvfree ends in kfree or vfree);
 *  - kprobes on kmem_cache_free_bulk (kfree_bulk) and kvfree_call_rcu (kfree_rcu, freed in
 *    batches later) drop the records of blocks freed without a tracepoint, and on
 *    kmem_cache_destroy drop the records of a cache going away (never freed later: see
 *    docs/LINUX.md);
 *  - the module notifier gives each load of a module an identity (COMING: core_layout and
 *    init_layout ranges; LIVE: init text freed; GOING: its live records are leaks).
 *
 * Probes never sleep and take only bucket locks (interrupts off). Modules loaded before
 * kmm_protect have no identity and are not tracked.
 *
 * Depends on: kmmp.h, Debian 12's 6.1 kernel (tracepoint prototypes, struct module layout).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kprobes.h>
#include <linux/notifier.h>
#include <linux/slab.h>
#include <linux/version.h>
#include <linux/vmalloc.h>
#include <trace/events/kmem.h>

#include "kmmp.h"

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 1, 0) || LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
#error "kmm_protect is written for the 6.1 kernel (core_layout/init_layout, kmem tracepoints)"
#endif

static LIST_HEAD(kmmp_live);
static atomic64_t kmmp_next_id = ATOMIC64_INIT(0);

/* The tracked module whose text holds @addr; call under rcu_read_lock(). */
struct kmmp_mod *kmmp_owner(unsigned long addr)
{
	struct kmmp_mod *m;

#ifdef MODULES_VADDR
	/* Most allocations come from the kernel proper: one compare pair rejects them. */
	if (addr < MODULES_VADDR || addr >= MODULES_END)
		return NULL;
#endif
	list_for_each_entry_rcu(m, &kmmp_live, live_node) {
		if (addr - m->core_base < m->core_size)
			return m;
		if (!READ_ONCE(m->init_done) && addr - m->init_base < m->init_size)
			return m;
	}
	return NULL;
}

static void kmmp_record(unsigned long call_site, const void *ptr, enum kmmp_kind kind,
			struct kmem_cache *cache, size_t size)
{
	struct kmmp_mod *m;

	/* The protector's own records: never tracked, and no need to walk the module list. */
	if (ZERO_OR_NULL_PTR(ptr) || within_module(call_site, THIS_MODULE))
		return;
	rcu_read_lock();
	m = kmmp_owner(call_site);
	if (m)
		kmmp_track(ptr, m, kind, cache, size, call_site);
	rcu_read_unlock();
}

static void kmmp_on_kmalloc(void *data, unsigned long call_site, const void *ptr,
			    size_t bytes_req, size_t bytes_alloc, gfp_t gfp_flags, int node)
{
	kmmp_record(call_site, ptr, KMMP_KMALLOC, NULL, bytes_req);
}

static void kmmp_on_cache_alloc(void *data, unsigned long call_site, const void *ptr,
				struct kmem_cache *s, gfp_t gfp_flags, int node)
{
	kmmp_record(call_site, ptr, KMMP_CACHE, s, kmem_cache_size(s));
}

static void kmmp_on_kfree(void *data, unsigned long call_site, const void *ptr)
{
	/* Our own frees: records, and blocks the collector already took out of the table. */
	if (within_module(call_site, THIS_MODULE))
		return;
	kmmp_untrack(ptr);
}

static void kmmp_on_cache_free(void *data, unsigned long call_site, const void *ptr,
			       const struct kmem_cache *s)
{
	if (within_module(call_site, THIS_MODULE))
		return;
	kmmp_untrack(ptr);
}

/* vmalloc family: size from the arguments, owner from the return address. */
enum kmmp_size_args { KMMP_SIZE_ARG1, KMMP_SIZE_ARG1_X_ARG2, KMMP_SIZE_ARG3 };

struct kmmp_vmprobe {
	struct kretprobe rp;
	enum kmmp_size_args size_args;
	bool resizes;		/* kvrealloc: may answer with its first argument */
	bool registered;
};

struct kmmp_vmcall {
	size_t size;
	const void *old;	/* resizes: the block given */
};

static int kmmp_vm_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct kmmp_vmprobe *vp = container_of(get_kretprobe(ri), struct kmmp_vmprobe, rp);
	struct kmmp_vmcall *call = (struct kmmp_vmcall *)ri->data;
	/* At the probed function's entry the stack top is its return address. */
	unsigned long caller = *(unsigned long *)kernel_stack_pointer(regs);
	bool tracked;

	rcu_read_lock();
	tracked = kmmp_owner(caller);
	rcu_read_unlock();
	if (!tracked)
		return 1;	/* not a module's call: no return probe */
	switch (vp->size_args) {
	case KMMP_SIZE_ARG1:
		call->size = regs->di;
		break;
	case KMMP_SIZE_ARG1_X_ARG2:
		call->size = regs->di * regs->si;
		break;
	case KMMP_SIZE_ARG3:
		call->size = regs->dx;
		break;
	}
	call->old = vp->resizes ? (const void *)regs->di : NULL;
	return 0;
}

static int kmmp_vm_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct kmmp_vmcall *call = (struct kmmp_vmcall *)ri->data;
	const void *ptr = (const void *)regs_return_value(regs);

	/*
	 * kvrealloc to a size no larger (6.1 answers the block given, as it is): the same block,
	 * whoever allocated it; its record keeps its owner and takes the new size.
	 */
	if (ptr && ptr == call->old) {
		kmmp_resize(ptr, call->size);
		return 0;
	}
	/* kvmalloc_node/kvrealloc may have answered from kmalloc (whose call_site was theirs). */
	kmmp_record(get_kretprobe_retaddr(ri), ptr,
		    is_vmalloc_addr(ptr) ? KMMP_VMALLOC : KMMP_KMALLOC, NULL, call->size);
	return 0;
}

static struct kmmp_vmprobe kmmp_vmprobes[] = {
	{ .rp.kp.symbol_name = "vmalloc", .size_args = KMMP_SIZE_ARG1 },
	{ .rp.kp.symbol_name = "vzalloc", .size_args = KMMP_SIZE_ARG1 },
	{ .rp.kp.symbol_name = "__vmalloc", .size_args = KMMP_SIZE_ARG1 },
	{ .rp.kp.symbol_name = "vmalloc_node", .size_args = KMMP_SIZE_ARG1 },
	{ .rp.kp.symbol_name = "vzalloc_node", .size_args = KMMP_SIZE_ARG1 },
	{ .rp.kp.symbol_name = "vmalloc_user", .size_args = KMMP_SIZE_ARG1 },
	{ .rp.kp.symbol_name = "vmalloc_32", .size_args = KMMP_SIZE_ARG1 },
	{ .rp.kp.symbol_name = "vmalloc_32_user", .size_args = KMMP_SIZE_ARG1 },
	{ .rp.kp.symbol_name = "vmalloc_array", .size_args = KMMP_SIZE_ARG1_X_ARG2 },
	{ .rp.kp.symbol_name = "__vmalloc_array", .size_args = KMMP_SIZE_ARG1_X_ARG2 },
	{ .rp.kp.symbol_name = "vcalloc", .size_args = KMMP_SIZE_ARG1_X_ARG2 },
	{ .rp.kp.symbol_name = "kvmalloc_node", .size_args = KMMP_SIZE_ARG1 },
	{ .rp.kp.symbol_name = "kvrealloc", .size_args = KMMP_SIZE_ARG3, .resizes = true },
};

/* kmmp_kprobes[] indices, and how often each probe ran (the canaries read them). */
enum { KMMP_KP_VFREE, KMMP_KP_FREE_BULK, KMMP_KP_KVFREE_RCU, KMMP_KP_CACHE_DESTROY, KMMP_KP_NR };
static atomic_long_t kmmp_kp_hits[KMMP_KP_NR];

static int kmmp_vfree_pre(struct kprobe *p, struct pt_regs *regs)
{
	atomic_long_inc(&kmmp_kp_hits[KMMP_KP_VFREE]);
	kmmp_untrack((const void *)regs->di);
	return 0;
}

/* kmem_cache_free_bulk(s, size, p): kfree_bulk() and RCU's batched kfree end here. */
static int kmmp_free_bulk_pre(struct kprobe *p, struct pt_regs *regs)
{
	void **objects = (void **)regs->dx;
	size_t i, n = regs->si;

	atomic_long_inc(&kmmp_kp_hits[KMMP_KP_FREE_BULK]);
	for (i = 0; i < n; i++)
		kmmp_untrack(objects[i]);
	return 0;
}

/*
 * kvfree_call_rcu(head, func): kfree_rcu()/kvfree_rcu() queue a block to be freed after a
 * grace period, in 6.1 by batches that may drain seconds later (and then through
 * kfree_bulk). The block is as good as freed now: its record goes at once, so a collector
 * pass that runs before the batch drains can never free it a second time.
 */
static int kmmp_kvfree_rcu_pre(struct kprobe *p, struct pt_regs *regs)
{
	unsigned long head = regs->di, func = regs->si;

	atomic_long_inc(&kmmp_kp_hits[KMMP_KP_KVFREE_RCU]);
	kmmp_untrack((const void *)(head ? head - func : func));
	return 0;
}

static int kmmp_cache_destroy_pre(struct kprobe *p, struct pt_regs *regs)
{
	atomic_long_inc(&kmmp_kp_hits[KMMP_KP_CACHE_DESTROY]);
	if (regs->di)
		kmmp_drop_cache((const struct kmem_cache *)regs->di);
	return 0;
}

static struct kprobe kmmp_kprobes[KMMP_KP_NR] = {
	[KMMP_KP_VFREE] = { .symbol_name = "vfree", .pre_handler = kmmp_vfree_pre },
	[KMMP_KP_FREE_BULK] = { .symbol_name = "kmem_cache_free_bulk",
				.pre_handler = kmmp_free_bulk_pre },
	[KMMP_KP_KVFREE_RCU] = { .symbol_name = "kvfree_call_rcu",
				 .pre_handler = kmmp_kvfree_rcu_pre },
	[KMMP_KP_CACHE_DESTROY] = { .symbol_name = "kmem_cache_destroy",
				    .pre_handler = kmmp_cache_destroy_pre },
};

static bool kmmp_kprobe_ok[KMMP_KP_NR];

/*
 * The global kprobes switch (echo 0 > /sys/kernel/debug/kprobes/enabled) disarms every
 * kprobe without counting a miss. A write to it bumps kmmp_switch_gen (counted in
 * kmmp_free_probes_missed(), so every record made before it is never taken) and marks the
 * probes suspect until a canary after it has seen them all fire (kmmp_free_probes_fire()).
 * The probe on the switch fires on the write that disarms (it is still armed then); the
 * write that arms again finds it disarmed, hence the suspect state.
 */
static atomic_long_t kmmp_switch_gen = ATOMIC_LONG_INIT(0);
static bool kmmp_switch_suspect;

static int kmmp_switch_pre(struct kprobe *p, struct pt_regs *regs)
{
	atomic_long_inc(&kmmp_switch_gen);
	WRITE_ONCE(kmmp_switch_suspect, true);
	return 0;
}

static struct kprobe kmmp_switch_kprobe = {
	.symbol_name = "write_enabled_file_bool",	/* kernel/kprobes.c, 6.1 */
	.pre_handler = kmmp_switch_pre,
};

static bool kmmp_switch_ok;

/* Module identities. */
static void kmmp_mod_coming(struct module *mod)
{
	struct kmmp_mod *m;

	/*
	 * A livepatch module's objects (klp_patch, shadow variables, replaced functions' data)
	 * stay referenced by the kernel after the patch is disabled and the module removed:
	 * never a leak of its own, never tracked.
	 */
	if (is_livepatch_module(mod)) {
		pr_info("module %s is a livepatch: not tracked\n", mod->name);
		return;
	}
	m = kzalloc(sizeof(*m), GFP_KERNEL);
	if (!m) {
		pr_warn("no memory to track module %s\n", mod->name);
		return;
	}
	m->module = mod;
	strscpy(m->name, mod->name, sizeof(m->name));
	m->id = atomic64_inc_return(&kmmp_next_id);
	m->core_base = (unsigned long)mod->core_layout.base;
	m->core_size = mod->core_layout.size;
	m->init_base = (unsigned long)mod->init_layout.base;
	m->init_size = mod->init_layout.size;
	atomic_long_set(&m->objects, 0);
	atomic_long_set(&m->bytes, 0);
	mutex_lock(&kmmp_mods_lock);
	list_add_tail(&m->all_node, &kmmp_all);
	list_add_tail_rcu(&m->live_node, &kmmp_live);
	mutex_unlock(&kmmp_mods_lock);
}

static struct kmmp_mod *kmmp_find_live(struct module *mod)
{
	struct kmmp_mod *m;

	lockdep_assert_held(&kmmp_mods_lock);
	list_for_each_entry(m, &kmmp_all, all_node)
		if (!m->gone && m->module == mod)
			return m;
	return NULL;
}

static void kmmp_mod_live(struct module *mod)
{
	struct kmmp_mod *m;

	mutex_lock(&kmmp_mods_lock);
	m = kmmp_find_live(mod);
	if (m)
		WRITE_ONCE(m->init_done, true);
	mutex_unlock(&kmmp_mods_lock);
}

static void kmmp_mod_going(struct module *mod)
{
	struct kmmp_mod *m;
	long objects, bytes;

	mutex_lock(&kmmp_mods_lock);
	m = kmmp_find_live(mod);
	if (m)
		list_del_rcu(&m->live_node);
	mutex_unlock(&kmmp_mods_lock);
	if (!m)
		return;
	/*
	 * After this no probe can still be recording for this identity (expedited: rmmod is
	 * rare, and a normal grace period per unload made insmod/rmmod cycles slow).
	 */
	synchronize_rcu_expedited();
	mutex_lock(&kmmp_mods_lock);
	objects = atomic_long_read(&m->objects);
	bytes = atomic_long_read(&m->bytes);
	m->gone_at = jiffies;
	m->module = NULL;
	WRITE_ONCE(m->gone, true);
	/* A leak-free unload adds an emptied identity: keep only the last few (gc.c). */
	kmmp_trim_gone();
	mutex_unlock(&kmmp_mods_lock);
	atomic_long_add(objects, &kmmp_stats.leaked_objects);
	atomic_long_add(bytes, &kmmp_stats.leaked_bytes);
	/* m may be freed once its lock is dropped (trimmed, or emptied and trimmed later). */
	if (objects) {
		pr_info("module %s unloaded with %ld objects (%ld bytes) not freed\n", mod->name,
			objects, bytes);
		kmmp_gc_kick();
	}
}

static int kmmp_module_event(struct notifier_block *nb, unsigned long action, void *data)
{
	struct module *mod = data;

	switch (action) {
	case MODULE_STATE_COMING:
		kmmp_mod_coming(mod);
		break;
	case MODULE_STATE_LIVE:
		kmmp_mod_live(mod);
		break;
	case MODULE_STATE_GOING:
		kmmp_mod_going(mod);
		break;
	}
	return NOTIFY_DONE;
}

static struct notifier_block kmmp_module_nb = {
	.notifier_call = kmmp_module_event,
};

static void kmmp_unregister_tracepoints(void)
{
	unregister_trace_kmem_cache_free(kmmp_on_cache_free, NULL);
	unregister_trace_kfree(kmmp_on_kfree, NULL);
	unregister_trace_kmem_cache_alloc(kmmp_on_cache_alloc, NULL);
	unregister_trace_kmalloc(kmmp_on_kmalloc, NULL);
	tracepoint_synchronize_unregister();
}

int kmmp_probes_init(void)
{
	const char *silent;
	int ret, i;

	ret = register_module_notifier(&kmmp_module_nb);
	if (ret)
		return ret;
	/* The switch first: a disarm while the rest registers is seen. */
	ret = register_kprobe(&kmmp_switch_kprobe);
	kmmp_switch_ok = !ret;
	if (ret)
		pr_warn("no kprobe on the kprobes switch (%d): a disarm between two passes goes unseen\n",
			ret);
	/*
	 * Frees first, every path of them (the free kprobes too: kfree_bulk, kfree_rcu and
	 * vfree), then allocations: a block recorded is always seen freed.
	 */
	for (i = 0; i < KMMP_KP_NR; i++) {
		ret = register_kprobe(&kmmp_kprobes[i]);
		kmmp_kprobe_ok[i] = !ret;
		if (ret)
			pr_warn("no kprobe on %s (%d): its frees go unseen, mode=reclaim is refused\n",
				kmmp_kprobes[i].symbol_name, ret);
	}
	ret = register_trace_kfree(kmmp_on_kfree, NULL);
	if (!ret)
		ret = register_trace_kmem_cache_free(kmmp_on_cache_free, NULL);
	if (!ret)
		ret = register_trace_kmalloc(kmmp_on_kmalloc, NULL);
	if (!ret)
		ret = register_trace_kmem_cache_alloc(kmmp_on_cache_alloc, NULL);
	if (ret) {
		pr_err("cannot register the kmem tracepoints (%d)\n", ret);
		kmmp_unregister_tracepoints();
		for (i = 0; i < KMMP_KP_NR; i++)
			if (kmmp_kprobe_ok[i])
				unregister_kprobe(&kmmp_kprobes[i]);
		if (kmmp_switch_ok)
			unregister_kprobe(&kmmp_switch_kprobe);
		unregister_module_notifier(&kmmp_module_nb);
		return ret;
	}
	/* Registered while kprobes are disarmed, the probes see nothing until they are armed. */
	WRITE_ONCE(kmmp_switch_suspect, true);
	if (kmmp_free_probes_complete() && !kmmp_free_probes_fire(&silent))
		pr_warn("the %s kprobe does not fire (kprobes disarmed?): nothing is reclaimed until it does\n",
			silent);
	if (!kmmp_kprobe_ok[KMMP_KP_VFREE]) {
		pr_warn("vfree unseen: vmalloc blocks are not tracked\n");
		return 0;
	}
	for (i = 0; i < ARRAY_SIZE(kmmp_vmprobes); i++) {
		struct kretprobe *rp = &kmmp_vmprobes[i].rp;

		rp->entry_handler = kmmp_vm_entry;
		rp->handler = kmmp_vm_return;
		rp->data_size = sizeof(struct kmmp_vmcall);
		rp->maxactive = 64;	/* vmalloc sleeps: many calls can be in flight */
		ret = register_kretprobe(rp);
		kmmp_vmprobes[i].registered = !ret;
		if (ret)
			pr_warn("no kretprobe on %s (%d): its allocations go untracked\n",
				kmmp_vmprobes[i].rp.kp.symbol_name, ret);
	}
	return 0;
}

void kmmp_probes_exit(void)
{
	int i;

	kmmp_unregister_tracepoints();
	for (i = 0; i < ARRAY_SIZE(kmmp_vmprobes); i++)
		if (kmmp_vmprobes[i].registered)
			unregister_kretprobe(&kmmp_vmprobes[i].rp);
	for (i = 0; i < KMMP_KP_NR; i++)
		if (kmmp_kprobe_ok[i])
			unregister_kprobe(&kmmp_kprobes[i]);
	if (kmmp_switch_ok)
		unregister_kprobe(&kmmp_switch_kprobe);
	unregister_module_notifier(&kmmp_module_nb);
}

/* Every free kprobe registered: mode=reclaim is refused without them all. */
bool kmmp_free_probes_complete(void)
{
	int i;

	for (i = 0; i < KMMP_KP_NR; i++)
		if (!kmmp_kprobe_ok[i])
			return false;
	return true;
}

/*
 * Frees the free kprobes did not see, as a count that only grows: a kprobe's handler is
 * skipped (nmissed) when another kprobe runs on that CPU, and the kprobes switch disarms them
 * all without any count (kmmp_switch_gen stands for that). The block's record would outlive
 * it, and a collector that took it would free the block again: a record made before the
 * count last grew is never taken (kmmp_collect_buckets), nor is a block freed when the count
 * grew while its record was being taken (gc.c). Shown in /proc/kmm_protect/stats as
 * free_probe_misses (the guest's stress phase misses vfree 2-3 times). A free probe that is
 * not registered is no miss: without one, mode=reclaim is refused.
 */
unsigned long kmmp_free_probes_missed(void)
{
	unsigned long missed = atomic_long_read(&kmmp_switch_gen);
	int i;

	for (i = 0; i < KMMP_KP_NR; i++)
		if (kmmp_kprobe_ok[i])
			missed += kmmp_kprobes[i].nmissed;
	if (kmmp_switch_ok)
		missed += kmmp_switch_kprobe.nmissed;
	return missed;
}

struct kmmp_canary {
	struct rcu_head rcu;
};

/*
 * Calls each probed free function once, the cheapest way that still enters it (the probes
 * sit at function entry, before any early return of 6.1's): vfree(NULL) and
 * kmem_cache_destroy(NULL) return at once, kfree_bulk() of one block of ours and
 * kfree_rcu() of another free them. NULL when every probe ran, or the name of one that did
 * not (or of the canary that could not be made). Sleeps; the collector's context only.
 */
static const char *kmmp_canaries(void)
{
	long before[KMMP_KP_NR];
	struct kmmp_canary *c;
	void *bulk[1];
	int i;

	bulk[0] = kmalloc(sizeof(long), GFP_KERNEL);
	c = kmalloc(sizeof(*c), GFP_KERNEL);
	if (!bulk[0] || !c) {
		kfree(bulk[0]);
		kfree(c);
		return "canary (no memory)";
	}
	for (i = 0; i < KMMP_KP_NR; i++)
		before[i] = atomic_long_read(&kmmp_kp_hits[i]);
	vfree(NULL);
	kfree_bulk(1, bulk);
	kfree_rcu(c, rcu);
	kmem_cache_destroy(NULL);
	for (i = 0; i < KMMP_KP_NR; i++)
		if (atomic_long_read(&kmmp_kp_hits[i]) == before[i])
			return kmmp_kprobes[i].symbol_name;
	return NULL;
}

/*
 * Whether every free kprobe fires now; if not, *@silent names one that did not. Either way
 * the switch's suspicion is settled: a failure counts as a miss (records made before it are
 * never taken) and leaves the probes suspect; a success after a suspect time counts one too,
 * so that records made while the probes may have been disarmed are never taken.
 */
bool kmmp_free_probes_fire(const char **silent)
{
	bool suspect = xchg(&kmmp_switch_suspect, false);

	*silent = kmmp_canaries();
	if (*silent) {
		atomic_long_inc(&kmmp_switch_gen);
		WRITE_ONCE(kmmp_switch_suspect, true);
		return false;
	}
	if (suspect)
		atomic_long_inc(&kmmp_switch_gen);
	return true;
}

/* Probes that could not run (kretprobe instances all busy): allocations not seen. */
unsigned long kmmp_probes_missed(void)
{
	unsigned long missed = 0;
	int i;

	for (i = 0; i < ARRAY_SIZE(kmmp_vmprobes); i++)
		if (kmmp_vmprobes[i].registered)
			missed += kmmp_vmprobes[i].rp.nmissed;
	return missed;
}

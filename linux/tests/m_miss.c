// SPDX-License-Identifier: GPL-2.0
/*
 * m_miss: makes kmm_protect's free probes miss once. At insmod it puts a kprobe on a function
 * of its own and calls it; the handler calls kmem_cache_destroy(NULL), which returns at once.
 * kprobes skip (and count in nmissed) a probe hit while another kprobe's handler runs on the
 * CPU, so kmm_protect's probe on kmem_cache_destroy misses that call, as it would a real free
 * made by an interrupt's softirq during a handler. Frees nothing, leaks nothing.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/slab.h>

static noinline void m_miss_poke(void) {
  /* Not optimised away: the probe needs a call to hit. */
  barrier();
}

static int m_miss_pre(struct kprobe* p, struct pt_regs* regs) {
  kmem_cache_destroy(NULL);
  return 0;
}

static struct kprobe m_miss_kprobe = {
    .pre_handler = m_miss_pre,
};

static int __init m_miss_init(void) {
  int ret;

  m_miss_kprobe.addr = (kprobe_opcode_t*)m_miss_poke;
  ret = register_kprobe(&m_miss_kprobe);
  if (ret) {
    pr_err("register_kprobe: %d\n", ret);
    return ret;
  }
  m_miss_poke();
  unregister_kprobe(&m_miss_kprobe);
  pr_info("made a free in a kprobe handler\n");
  return 0;
}

static void __exit m_miss_exit(void) {}

module_init(m_miss_init);
module_exit(m_miss_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("makes a free probe of kmm_protect miss once");

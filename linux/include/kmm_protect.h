/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kmm_protect's interface for other modules.
 *
 * kmm_protect_transfer() - hand a block to a new owner on purpose.
 * @ptr: a block this module allocated (kmalloc, kmem_cache_alloc or vmalloc family)
 * @new_owner: NULL: the kernel, which frees it some day; the protector forgets the block and
 *             never reclaims it. Other owners are not supported yet (-EINVAL).
 *
 * A block of a module already unloaded can be rescued so until a collector pass takes it;
 * exactly one of the two has it.
 *
 * Return: 0, -ENOENT when the protector holds no record of @ptr (not a tracked block, or
 * the collector took it first: it is freed and must not be touched), or -EPERM when @ptr is
 * another live module's block (the collector took the rescued block and the address was
 * handed out again since: it is not the caller's).
 */
#ifndef KMM_PROTECT_H
#define KMM_PROTECT_H

struct module;

int kmm_protect_transfer(const void *ptr, struct module *new_owner);

#endif /* KMM_PROTECT_H */

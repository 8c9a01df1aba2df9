/* SPDX-License-Identifier: GPL-2.0 */
/* m_rescuer's interface: adopt another module's blocks, then rescue them after its rmmod. */
#ifndef M_RESCUER_H
#define M_RESCUER_H

#include <linux/types.h>

int m_rescuer_adopt(void **blocks, const size_t *sizes, int n);
void m_rescuer_go(void);

#endif /* M_RESCUER_H */

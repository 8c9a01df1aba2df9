/* SPDX-License-Identifier: GPL-2.0 */
/* m_holder's interface: keeps a block handed to it, kfrees it at m_holder's rmmod. */
#ifndef M_HOLDER_H
#define M_HOLDER_H

int m_holder_keep(void *p);

#endif /* M_HOLDER_H */

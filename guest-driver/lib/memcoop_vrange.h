/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libmemcoop: vrange section (included by libmemcoop.h). */
#ifndef MEMCOOP_VRANGE_H
#define MEMCOOP_VRANGE_H

#endif /* MEMCOOP_VRANGE_H */

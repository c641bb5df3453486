/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libmemcoop: wtrack section (included by libmemcoop.h). */
#ifndef MEMCOOP_WTRACK_H
#define MEMCOOP_WTRACK_H

#endif /* MEMCOOP_WTRACK_H */

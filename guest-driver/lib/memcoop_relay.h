/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libmemcoop: relay section (included by libmemcoop.h). */
#ifndef MEMCOOP_RELAY_H
#define MEMCOOP_RELAY_H

#endif /* MEMCOOP_RELAY_H */

/*
 * rk_reader - reading the broker's log: renkei.h's rk_reader part (its
 * documentation is there), and what only code in this tree uses besides.
 */
#ifndef RK_READER_H
#define RK_READER_H

#include "renkei.h"
#include "rk_wire.h"

/* rk_reader_open(endpoint, NULL, out), and the same on the caller's
 * context: plain, for the tests and benchmarks. */
int rk_reader_new(const char *endpoint, struct rk_reader **out);
int rk_reader_new_in(void *zctx, const char *endpoint, struct rk_reader **out);

/* rk_reader_set_filter with the protocol's own filter (copied; NULL clears
 * it), for the tools, which build one from their options (rk_topics);
 * `requester` is not used by replay. */
void rk_reader_filter(struct rk_reader *r, const struct rk_wire_filter *f);

#endif

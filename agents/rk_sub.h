/*
 * rk_sub - a subscriber that does not miss events: renkei.h's rk_sub part
 * (its documentation is there), and what only code in this tree uses
 * besides.
 */
#ifndef RK_SUB_H
#define RK_SUB_H

#include "renkei.h"

/* rk_sub_open(feed, replay, NULL, out), and the same on the caller's
 * context: plain, for the tests and benchmarks. */
int rk_sub_new(const char *feed_endpoint, const char *replay_endpoint, struct rk_sub **out);
int rk_sub_new_in(void *zctx, const char *feed_endpoint, const char *replay_endpoint,
                  struct rk_sub **out);

#endif

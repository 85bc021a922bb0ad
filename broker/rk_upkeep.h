/*
 * rk_upkeep - the broker's periodic work on the log between batches:
 * retention (deleting what retain_age / retain_size say is too old or too
 * much, a bounded number of records per transaction so ingest never waits
 * long behind it) and writing the entity index entries that wait when no
 * append comes to carry them. Each turn does little and says when it did.
 * Thread-safety: the broker's loop thread (the log's writer).
 */
#ifndef RK_UPKEEP_H
#define RK_UPKEEP_H

#include "rk_apply.h"
#include "rk_log.h"

#include <stdint.h>

struct rk_upkeep;

/* retain_age_ns, retain_size: 0 = no bound of that kind. Retention goes
 * through the state machine (rk_apply_prune) with the cutoff as its input. */
struct rk_upkeep *rk_upkeep_new(struct rk_log *log, struct rk_apply *apply,
                                int64_t retain_age_ns, uint64_t retain_size);

/* Logs what retention deleted since its last line, then frees. */
void rk_upkeep_destroy(struct rk_upkeep **up);

/* One turn at `now_ns`: retention when due, then the index when due.
 * Failures are logged and retried later; the turn itself cannot fail. */
void rk_upkeep_turn(struct rk_upkeep *u, int64_t now_ns);

#endif

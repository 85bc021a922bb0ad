/*
 * rk_lifecycle - the broker's disaster-support lifecycle (PROTOCOL.md 4.3)
 * with its state kept in LMDB, beside the records.
 *
 * The rules are rk_aid's (proto/rk_aid.h); this module keeps their state in
 * the log's "aid_requests" and "aid_ids" tables (rk_log.h), written in the
 * same transaction as the events that changed it. So the state is exactly
 * the fold of the stored aid events, a start reads none of them, and
 * retention (which deletes records, never state) cannot make a request
 * unknown. In memory sits only a cache of the requests recent events
 * named, at most RK_LIFECYCLE_CACHE_MAX, dropped whole when it grows past
 * that and filled again on demand.
 *
 * Use, inside one write batch of the log (rk_apply does this):
 *   rk_lifecycle_begin(lc, batch);
 *   for each event: rk_lifecycle_admit(lc, &ev, &why) == RK_AID_OK, or refuse it
 *   rk_lifecycle_write(lc);       -- the changed state, into the batch
 *   commit the batch; rk_lifecycle_settle(lc, committed);
 *
 * Errors follow rk_err.h. Thread-safety: none; the writer thread owns it.
 */
#ifndef RK_LIFECYCLE_H
#define RK_LIFECYCLE_H

#include "rk_aid.h"
#include "rk_log.h"

#include <stddef.h>
#include <stdint.h>

#define RK_LIFECYCLE_CACHE_MAX 50000 /* requests held in memory, about 250 B each */

struct rk_lifecycle;

/* What rk_lifecycle_open did to a log of schema 3 (no state tables yet):
 * its aid events folded once into the tables. All zero for a log that
 * had them. */
struct rk_lifecycle_stats {
    int migrated;       /* 1: the tables were built by this open */
    uint64_t folded;    /* aid events applied */
    uint64_t refused;   /* stored aid events the rules refuse (stored before
                         * enforcement existed, or by a damaged log) */
    size_t requests;    /* requests stored */
};

/* Called while a migration reads the log, every 100,000 records. */
typedef void (*rk_lifecycle_progress_fn)(void *arg, uint64_t records, uint64_t of);

/* Opens the lifecycle of `log`, opened for writing. A log without state
 * tables (schema 3) gets them first: every stored aid event is folded and
 * the result stored in one transaction (progress may be NULL). On success
 * *out owns the lifecycle and *stats (may be NULL) says what was done.
 * Returns 0 or an error; *out is NULL then. */
int rk_lifecycle_open(struct rk_lifecycle **out, struct rk_log *log,
                      rk_lifecycle_progress_fn progress, void *arg,
                      struct rk_lifecycle_stats *stats);

/* Frees everything and sets *lcp to NULL; no-op on NULL. */
void rk_lifecycle_destroy(struct rk_lifecycle **lcp);

/* Starts judging the events of `batch` (open; the lifecycle reads the
 * stored state through it). */
void rk_lifecycle_begin(struct rk_lifecycle *lc, struct rk_log_batch *batch);

/* Checks one validated event against the state, the batch's earlier
 * events included. Allowed: applies it and returns RK_AID_OK. Refused:
 * returns the code and fills *why; nothing changes. RK_AID_STORAGE means
 * the stored state could not be read: abort the batch. kpi.update and
 * other non-aid types return RK_AID_OK untouched. */
enum rk_aid_err rk_lifecycle_admit(struct rk_lifecycle *lc, const struct rk_aid_event *ev,
                                   struct rk_aid_refusal *why);

/* The requester of request `request_id` (its 6 digits and a NUL into
 * `out`), as the state including the batch's admitted events says; ""
 * when the state does not hold it. Right after rk_lifecycle_admit allowed
 * an aid event, its request is held. */
void rk_lifecycle_requester(const struct rk_lifecycle *lc, const char *request_id, char out[7]);

/* Puts every request the batch changed into it. Returns 0 or an error
 * (abort the batch). */
int rk_lifecycle_write(struct rk_lifecycle *lc);

/* Ends the batch's judging: keeps the cache when `stored` (the batch
 * committed), undoes the batch in it otherwise. Call after each begin. */
void rk_lifecycle_settle(struct rk_lifecycle *lc, int stored);

/* What the stored state's last read failed with, after rk_lifecycle_admit
 * returned RK_AID_STORAGE: RK_EFORMAT, RK_EBADREC or EEXIST for a damaged
 * record, an LMDB code for a failed read. */
int rk_lifecycle_error(const struct rk_lifecycle *lc);

/* Requests in the memory cache, for diagnostics. */
size_t rk_lifecycle_cached(const struct rk_lifecycle *lc);

#endif

/*
 * rk_lifecycle - the broker's enforcement of the disaster-support lifecycle
 * (PROTOCOL.md 4.3): the state of every aid request, kept in memory,
 * rebuilt from the log at start, and checked for every aid event before it
 * joins a group commit.
 *
 * The rules themselves are rk_aid's (proto/rk_aid.h); this module ties them
 * to the log:
 * - at start, every stored aid event is folded in sequence order, so the
 *   state is the one the stored history implies, whatever happened before a
 *   crash (an event is in the state exactly when it is in the log);
 * - during ingest, an aid event that passes the check is applied to an open
 *   batch, and the batch is kept or undone by rk_lifecycle_settle() after
 *   the LMDB commit, so a failed commit leaves no trace in the state.
 *
 * Limits: with retention on, events deleted from the log are not folded at
 * the next start, so a request whose aid.request was pruned is unknown
 * afterwards and later events for it are refused (E_UNKNOWN_REQUEST).
 * Memory grows with the number of requests, offers and dispatches ever
 * stored (about 250 bytes each).
 *
 * Thread-safety: none; the ingest thread owns it.
 */
#ifndef RK_LIFECYCLE_H
#define RK_LIFECYCLE_H

#include "rk_aid.h"
#include "rk_log.h"

#include <stddef.h>
#include <stdint.h>

struct rk_lifecycle;

/* How rk_lifecycle_load went, for the broker's start-up log line. */
struct rk_lifecycle_stats {
    uint64_t folded;    /* aid events applied */
    uint64_t refused;   /* stored aid events the rules refuse (stored before
                         * enforcement existed, or by a damaged log) */
    size_t requests;    /* requests known afterwards */
};

/* Builds the state from every aid event in `log`. On success *out owns it
 * and *stats (may be NULL) says what was read. Returns 0, or an rk_log
 * error code (rk_log_strerror) when the log cannot be read; *out is NULL
 * then. */
int rk_lifecycle_load(struct rk_lifecycle **out, struct rk_log *log,
                      struct rk_lifecycle_stats *stats);

/* Frees everything and sets *lcp to NULL; no-op on NULL. */
void rk_lifecycle_destroy(struct rk_lifecycle **lcp);

/* Checks one event that passed validation, its fields read by
 * rk_aid_event_validate: an aid event against the current state, including
 * the batch's earlier events. Allowed: applies it to the open batch
 * (opening one if needed) and returns RK_AID_OK. Refused: returns the code
 * and fills *why; nothing changes. Other types (kpi.update) return
 * RK_AID_OK untouched. */
enum rk_aid_err rk_lifecycle_admit(struct rk_lifecycle *lc, const struct rk_aid_event *ev,
                                   struct rk_aid_refusal *why);

/* Ends the open batch, if any: keeps it when `stored` (the commit
 * succeeded), undoes it otherwise. Call after every commit attempt. */
void rk_lifecycle_settle(struct rk_lifecycle *lc, int stored);

/* Requests known, for logs and metrics. */
size_t rk_lifecycle_requests(const struct rk_lifecycle *lc);

#endif

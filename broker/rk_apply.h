/*
 * rk_apply - the broker's state machine: one admitted batch of events into
 * the log, as one LMDB write transaction.
 *
 * Applying a batch is a function of the stored state and the batch alone:
 * it reads no clock (the receive time is an input), opens no socket and
 * keeps nothing a restart would need outside LMDB. In one transaction it
 *   - keeps each producer's numbers in order (PROTOCOL.md 3.2): a number
 *     used before (this batch included) is answered as it was the first
 *     time (the original's seq, or the original refusal); a number is used
 *     only when the one before it is (or the producer is new); a higher one
 *     is refused OUT_OF_ORDER naming the next, and uses nothing. Every
 *     numbered event costs one read, and one more when its number is new;
 *   - judges each aid event by the lifecycle rules (rk_lifecycle), and
 *     records the number of a numbered event refused there or at admission;
 *   - appends the rest, with their chain hashes, producer numbers and
 *     index entries, and the aid state they change;
 * and commits, or stores nothing. Two logs given the same batches with the
 * same receive times hold the same records, state and chain head; that is
 * what a replica of a Raft group needs (broker/rk_apply_test.c). Retention
 * is an input too: rk_apply_prune with the same cutoff on every node (a
 * size bound is not deterministic: it depends on each file's pages). The
 * entity and places indexes are derived data written as they fall due;
 * their content converges, their chunking need not.
 *
 * Errors follow rk_err.h. Thread-safety: none; the writer thread owns it.
 */
#ifndef RK_APPLY_H
#define RK_APPLY_H

#include "rk_aid.h"
#include "rk_lifecycle.h"
#include "rk_log.h"

#include <stddef.h>
#include <stdint.h>

struct rk_apply;

enum rk_apply_outcome {
    RK_APPLY_STORED = 0,  /* appended: rec.seq, rec.recv_ns */
    RK_APPLY_DUPLICATE,   /* its producer number was stored: rec.seq, rec.recv_ns
                           * are the original's */
    RK_APPLY_REFUSED,     /* refused: code, message. By the lifecycle (why says
                           * how), at admission (admission_code), as a retry of a
                           * number refused before, or (code E_STORAGE) because
                           * the stored state of its request is damaged, which
                           * only that request's events see */
    RK_APPLY_OUT_OF_ORDER,/* its number is above the producer's next: nothing
                           * stored or used; `expected` is the next number */
};

/* One admitted event: validated, allowed by the ACL, numbered; or, with
 * admission_code, a numbered publish refused at admission, whose number
 * the batch records as used (when it is the producer's next). */
struct rk_apply_item {
    struct rk_log_rec rec;        /* in: as rk_log_batch_append takes it */
    struct rk_aid_event aid;      /* in: its lifecycle fields (any type) */
    const char *admission_code;   /* in: NULL, or the static code it was refused
                                   * with at admission, `message` then saying why */
    enum rk_apply_outcome outcome;/* out */
    const char *code;             /* out, REFUSED and OUT_OF_ORDER: static, or
                                   * code_buf (a refusal read back from the log) */
    char code_buf[RK_LOG_REFUSAL_CODE_MAX + 1];
    uint64_t expected;            /* out, OUT_OF_ORDER */
    struct rk_aid_refusal why;    /* out, when the lifecycle refused it */
    char message[320];            /* out (in with admission_code): for people,
                                   * "<type>.<field>: <reason>" */
    char requester[7];            /* out, STORED aid events: the requester of its
                                   * request, for its requester topic; else "" */
};

/* How a batch went, for metrics. */
struct rk_apply_stats {
    size_t stored, duplicates, refused, out_of_order;
    unsigned map_grown;           /* times the map doubled for it */
};

/* Opens the state machine over `log` (opened for writing); a log of an
 * older schema is migrated first (rk_lifecycle_open; progress may be
 * NULL). *out owns it. Returns 0 or an error; *lc_stats may be NULL. */
int rk_apply_open(struct rk_apply **out, struct rk_log *log,
                  rk_lifecycle_progress_fn progress, void *arg,
                  struct rk_lifecycle_stats *lc_stats);

void rk_apply_destroy(struct rk_apply **ap);

/* Retention through the state machine: rk_log_prune with `before_ns` as
 * its age cutoff (an input, like a batch's receive time; 0 = none) and
 * `max_bytes` (0 = none; per node, see above). Deletes at most `max`
 * records into *deleted. Returns 0 or an error. */
int rk_apply_prune(struct rk_apply *ap, int64_t before_ns, uint64_t max_bytes, size_t max,
                   uint64_t *deleted);

/* Applies items[0..n) with receive time `now_ns` (clamped so it never goes
 * back along the log). Returns 0 with every item's outcome set, or an error
 * with nothing stored (the log and the state are as before; MDB_MAP_FULL
 * only when the map cannot grow further). *stats may be NULL. */
int rk_apply_batch(struct rk_apply *ap, struct rk_apply_item *items, size_t n, int64_t now_ns,
                   struct rk_apply_stats *stats);

#endif

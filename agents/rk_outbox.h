/*
 * rk_outbox - an agent's store-and-forward queue: a small LMDB environment
 * in a directory of its own, holding every event from the moment it is
 * given to the agent until the broker has acknowledged (or refused) it.
 *
 * Each event gets the next number of the outbox's producer id, a random id
 * made when the outbox is created and kept in it. The agent publishes with
 * rk_pub_send_numbered(producer, number), so an event sent twice (after a
 * broker restart, a lost link, or an agent killed between the broker's
 * commit and its own bookkeeping) is stored by the broker once: the outbox
 * may forget an acknowledgement, never an event.
 *
 * Durability: rk_outbox_add() returns after fsync, so an added event
 * survives a power cut. Removals are not synced: after a crash a removed
 * event may come back, and is then answered by the broker with its
 * original acknowledgement.
 *
 * Errors follow rk_err.h: every function that can fail returns RK_OK or an
 * error code, never an answer. A positive code is an errno value (ENOSPC:
 * the disk is full), a code in -30800..-30780 is LMDB's own, unchanged
 * (MDB_READERS_FULL: too many processes have the outbox open; MDB_MAP_FULL:
 * the outbox reached its 4 GiB map), RK_EBADREC means a record in the
 * outbox has a layout this module did not write (the outbox is damaged).
 * rk_strerror() names any of them. After an error nothing the call was to
 * change has changed, except where a function says otherwise; yes/no
 * answers come in out-parameters, valid only when RK_OK is returned.
 *
 * Threads and processes: a struct rk_outbox is used by one thread at a
 * time (each call is one LMDB transaction, begun and ended inside it). In
 * one process a directory is opened once (LMDB's locks are per process);
 * several processes may open it (LMDB's lock file serialises writers):
 * `renkei-agent status` reads it while an agent sends from it.
 */
#ifndef RK_OUTBOX_H
#define RK_OUTBOX_H

#include "rk_err.h"

#include <stddef.h>
#include <stdint.h>

#define RK_OUTBOX_PRODUCER_MAX 64

struct rk_outbox;

/* What `renkei-agent status` shows. */
struct rk_outbox_status {
    char producer[RK_OUTBOX_PRODUCER_MAX + 1];
    uint64_t pending;          /* events waiting for the broker's answer */
    uint64_t first_pending;    /* the oldest one's number; 0 when none */
    uint64_t last_number;      /* the number the newest event got; 0 when none yet */
    uint64_t acked;            /* events acknowledged over the outbox's life */
    uint64_t refused;          /* events the broker refused (dropped, reported) */
    uint64_t last_ack_number;  /* the last acknowledged event: its number, */
    uint64_t last_ack_seq;     /* the broker's sequence number for it */
    int64_t last_ack_recv_ns;  /* and the broker's receive time; all 0 when none */
};

/* Opens the outbox in `dir`, creating the directory (mode 0700) and the
 * outbox if needed; the caller owns *out and closes it. On failure *out is
 * NULL (a directory it created may remain) and `why` (may be NULL) says
 * what to fix, e.g. "outbox /var/lib/x: cannot create: Permission denied". */
int rk_outbox_open(const char *dir, struct rk_outbox **out, char *why, size_t why_len);

/* Closes it and sets *obp to NULL; no-op on NULL. Cannot fail. */
void rk_outbox_close(struct rk_outbox **obp);

/* The producer id events are numbered under; owned by the outbox, valid
 * until it is closed. Cannot fail. */
const char *rk_outbox_producer(const struct rk_outbox *ob);

/* Appends `n` events (MessagePack bytes, copied) in one transaction and
 * fsyncs. The first gets number *first, the others the numbers after it.
 * An error from the fsync itself comes after the commit: the events are
 * then in the outbox (and will be sent) but perhaps not on disk;
 * rk_outbox_sync() retries that. */
int rk_outbox_add(struct rk_outbox *ob, const void *const *events, const size_t *lens,
                  size_t n, uint64_t *first);

/* As rk_outbox_add, and records `tag` (a spool file's name, 1..255 bytes,
 * copied) in the same transaction: after a crash or an error,
 * rk_outbox_has_tag tells whether the file's events are already in the
 * outbox, so a file is never added twice. n may be 0 (only the tag); a
 * NULL tag makes it rk_outbox_add. */
int rk_outbox_add_tagged(struct rk_outbox *ob, const void *const *events, const size_t *lens,
                         size_t n, const char *tag, uint64_t *first);

/* Sets *found to 1 when `tag` is recorded, to 0 when not. On an error
 * *found is 0 but means nothing: the caller knows neither answer and must
 * not act on one (a spool file stays until a lookup succeeds). */
int rk_outbox_has_tag(struct rk_outbox *ob, const char *tag, int *found);

/* Forgets `tag` (the spool file is gone, so its name may come again).
 * RK_OK also when it was not recorded. */
int rk_outbox_drop_tag(struct rk_outbox *ob, const char *tag);

/* Flushes what earlier calls committed to disk: after an add whose fsync
 * failed, or before acting on a tag an earlier, perhaps crashed, run
 * recorded. */
int rk_outbox_sync(struct rk_outbox *ob);

/* The oldest pending event with a number > `after`: its number in *number
 * and its bytes copied to buf (cap bytes; events are at most 16 KiB), their
 * length in *len. RK_EOF when there is none (not a failure), ENOBUFS when
 * cap is too small; *number, buf and *len are only written on RK_OK. */
int rk_outbox_next(struct rk_outbox *ob, uint64_t after, uint64_t *number, void *buf,
                   size_t cap, size_t *len);

/* The broker's answer for event `number`: acknowledged as `seq` at
 * `recv_ns` (ok = 1), or refused for good (ok = 0). Either way the event
 * leaves the outbox. An answer for a number no longer pending (a second
 * answer after a resend) changes nothing and returns RK_OK. */
int rk_outbox_answer(struct rk_outbox *ob, uint64_t number, int ok, uint64_t seq,
                     int64_t recv_ns);

/* Counts and the last acknowledgement, read in one snapshot, into *st
 * (the caller's). */
int rk_outbox_status(struct rk_outbox *ob, struct rk_outbox_status *st);

#endif

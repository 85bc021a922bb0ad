/*
 * rk_outbox - an agent's store-and-forward queue: a small LMDB environment
 * in a directory of its own, holding every event from the moment it is
 * given to the agent until the broker has acknowledged it. Nothing in it is
 * ever deleted but by an acknowledgement or an operator's discard:
 *   pending       waiting to be sent or answered (table "events");
 *   held          pending, but refused for now (a code that may pass
 *                 later, rk_forward.h): its refusal and next try are kept
 *                 beside it (table "held"); still in "events";
 *   dead letters  refused for good (table "dead"): the event with its
 *                 code, message and refusal time, until an operator moves
 *                 it back (rk_outbox_resend) or deletes it
 *                 (rk_outbox_discard).
 * An outbox written before held and dead letters existed has only
 * "events", "meta" and "tags"; opening it creates the two new tables
 * (empty), and nothing else changes, so older outboxes open as they are.
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
#define RK_OUTBOX_CODE_MAX 31
#define RK_OUTBOX_MESSAGE_MAX 255

struct rk_outbox;

/* A refusal kept with a held event or a dead letter. Times are ns since
 * the epoch. */
struct rk_outbox_refusal {
    char code[RK_OUTBOX_CODE_MAX + 1];       /* e.g. "E_FORBIDDEN"; "" for an
                                              * event moved back by resend */
    char message[RK_OUTBOX_MESSAGE_MAX + 1]; /* the broker's reason */
    int64_t first_ns;   /* the first refusal of this event (since its last resend) */
    int64_t last_ns;    /* the last one: for a dead letter, when it was refused for good */
    int64_t retry_ns;   /* held: not sent again before this; 0 for a dead letter */
    uint32_t attempts;  /* refusals so far */
    int number_used;    /* 1: the broker used the event's number for the refusal
                         * (PROTOCOL.md 3.2), so it goes out again under a new
                         * one (rk_outbox_renumber); 0: under the same */
};

/* What `renkei-agent status` shows. */
struct rk_outbox_status {
    char producer[RK_OUTBOX_PRODUCER_MAX + 1];
    uint64_t pending;          /* events waiting for the broker's answer, not held */
    uint64_t first_pending;    /* the oldest one's number, held or not; 0 when none */
    uint64_t last_number;      /* the number the newest event got; 0 when none yet */
    uint64_t acked;            /* events acknowledged over the outbox's life */
    uint64_t refused;          /* events refused for good over its life (made dead letters) */
    uint64_t held;             /* pending events refused for now, waiting for a retry
                                * (one moved back by resend counts as pending until
                                * it is refused again) */
    int64_t held_next_ns;      /* the earliest retry among them; 0 when none */
    struct rk_outbox_refusal held_last; /* the held event refused last; zeroed when none */
    uint64_t held_last_number; /* and its number */
    uint64_t rejected;         /* dead letters now in the outbox */
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

/* The oldest pending event with a number > `after` that is not held: its
 * number in *number and its bytes copied to buf (cap bytes; events are at
 * most 16 KiB), their length in *len. RK_EOF when there is none (not a
 * failure), ENOBUFS when cap is too small; *number, buf and *len are only
 * written on RK_OK. */
int rk_outbox_next(struct rk_outbox *ob, uint64_t after, uint64_t *number, void *buf,
                   size_t cap, size_t *len);

/* Pending event `number`'s bytes, as rk_outbox_next gives them, held or
 * not. RK_EOF when it is not pending. */
int rk_outbox_get(struct rk_outbox *ob, uint64_t number, void *buf, size_t cap, size_t *len);

/* The held event with the lowest number > `after`: its number and its
 * refusal into *r. RK_EOF when there is none. */
int rk_outbox_next_held(struct rk_outbox *ob, uint64_t after, uint64_t *number,
                        struct rk_outbox_refusal *r);

/* Event `number`'s held refusal into *r and *found = 1; *found = 0 (and *r
 * zeroed) when it is not held. */
int rk_outbox_held(struct rk_outbox *ob, uint64_t number, struct rk_outbox_refusal *r,
                   int *found);

/* Holds pending event `number` with refusal *r (replacing one it had):
 * it stays pending, and rk_outbox_next passes it over. RK_OK and no change
 * when it is not pending (answered meanwhile). Code and message longer
 * than their maximum are cut. */
int rk_outbox_hold(struct rk_outbox *ob, uint64_t number, const struct rk_outbox_refusal *r);

/* Makes every held event with a number > `after` due now (retry_ns = now),
 * attempts unchanged. */
int rk_outbox_retry_now(struct rk_outbox *ob, uint64_t after, int64_t now_ns);

/* Moves pending event `number` (with its hold, if any) to the end of the
 * outbox: it takes the number the next added event would have, in
 * *new_number. For an event whose number the broker used refusing it: sent
 * again, it is a new event. RK_EOF when it is not pending. */
int rk_outbox_renumber(struct rk_outbox *ob, uint64_t number, uint64_t *new_number);

/* The broker stored event `number` as `seq` at `recv_ns`: it leaves the
 * outbox (and its hold, if any; *was_held, may be NULL, says whether it
 * had one). An ack for a number no longer pending (a second answer after a
 * resend) changes nothing and returns RK_OK. */
int rk_outbox_ack(struct rk_outbox *ob, uint64_t number, uint64_t seq, int64_t recv_ns,
                  int *was_held);

/* The broker refused event `number` for good: it moves, in one
 * transaction, from pending (and held) to the dead letters with refusal
 * *r (r->last_ns: the refusal time). RK_OK and no change when it is not
 * pending. */
int rk_outbox_reject(struct rk_outbox *ob, uint64_t number, const struct rk_outbox_refusal *r);

/* The dead letter with the lowest number > `after`: number, refusal and
 * event bytes (as rk_outbox_next). RK_EOF when there is none. */
int rk_outbox_next_dead(struct rk_outbox *ob, uint64_t after, uint64_t *number,
                        struct rk_outbox_refusal *r, void *buf, size_t cap, size_t *len);

/* Moves dead letter `number` (0: all of them) back to pending under the
 * same number, in one transaction, and counts in *moved how many moved
 * (0: no such dead letter). Each is also held with code "", due at once,
 * so an agent already running takes it at its next pump; its
 * number_used is kept, so one whose number the broker used is renumbered
 * when it goes out. */
int rk_outbox_resend(struct rk_outbox *ob, uint64_t number, int64_t now_ns, uint64_t *moved);

/* Deletes dead letter `number` (0: all of them) for good, in one
 * transaction; *deleted counts them (0: no such dead letter). */
int rk_outbox_discard(struct rk_outbox *ob, uint64_t number, uint64_t *deleted);

/* Counts and the last acknowledgement, read in one snapshot, into *st
 * (the caller's). */
int rk_outbox_status(struct rk_outbox *ob, struct rk_outbox_status *st);

#endif

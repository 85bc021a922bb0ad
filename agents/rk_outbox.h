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
 * Several processes may open one outbox (LMDB's lock file serialises
 * writers): `renkei-agent status` reads it while an agent sends from it.
 * One struct rk_outbox is for one thread.
 *
 * Errors: functions return 0 or an errno-style code (an LMDB code for LMDB
 * failures); rk_outbox_strerror() turns either into a sentence.
 */
#ifndef RK_OUTBOX_H
#define RK_OUTBOX_H

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
 * outbox if needed. On failure *out is NULL and `why` (may be NULL) says
 * what to fix, e.g. "outbox /var/lib/x: cannot create: Permission denied". */
int rk_outbox_open(const char *dir, struct rk_outbox **out, char *why, size_t why_len);

/* Closes it and sets *obp to NULL; no-op on NULL. */
void rk_outbox_close(struct rk_outbox **obp);

/* The producer id events are numbered under (owned by the outbox). */
const char *rk_outbox_producer(const struct rk_outbox *ob);

/* Appends `n` events (MessagePack bytes, copied) in one transaction and
 * fsyncs. The first gets number *first, the others the numbers after it. */
int rk_outbox_add(struct rk_outbox *ob, const void *const *events, const size_t *lens,
                  size_t n, uint64_t *first);

/* As rk_outbox_add, and records `tag` (a spool file's name, at most 255
 * bytes) in the same transaction: after a crash, rk_outbox_has_tag tells
 * whether the file's events are already in the outbox, so a file is never
 * added twice. */
int rk_outbox_add_tagged(struct rk_outbox *ob, const void *const *events, const size_t *lens,
                         size_t n, const char *tag, uint64_t *first);

/* 1 when `tag` was recorded, 0 when not, or a negated error code. */
int rk_outbox_has_tag(struct rk_outbox *ob, const char *tag);

/* Forgets `tag` (the spool file is gone, so its name may come again). */
int rk_outbox_drop_tag(struct rk_outbox *ob, const char *tag);

/* The oldest pending event with a number > `after`: its number in *number
 * and its bytes copied to buf (cap bytes; events are at most 16 KiB).
 * Returns 0, ENOENT when there is none, ENOBUFS when cap is too small. */
int rk_outbox_next(struct rk_outbox *ob, uint64_t after, uint64_t *number, void *buf,
                   size_t cap, size_t *len);

/* The broker's answer for event `number`: acknowledged as `seq` at
 * `recv_ns` (ok = 1), or refused for good (ok = 0). Either way the event
 * leaves the outbox. Answers for numbers no longer pending are ignored
 * (a second answer after a resend). */
int rk_outbox_answer(struct rk_outbox *ob, uint64_t number, int ok, uint64_t seq,
                     int64_t recv_ns);

/* Counts and the last acknowledgement, read in one snapshot. */
int rk_outbox_status(struct rk_outbox *ob, struct rk_outbox_status *st);

const char *rk_outbox_strerror(int err);

#endif

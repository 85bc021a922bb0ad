/*
 * rk_ingest - the broker's ingest: publishes off the ROUTER socket, each
 * checked (header, frames, size, schema, ACL, producer number) and, when it
 * passes, added to the admitted batch that rk_apply stores. A publish that
 * fails a check is answered "err" at once (rk_ack) and never stored.
 *
 * Producer numbers are only checked for form here: whether a number was
 * stored before is rk_apply's to find, in the batch's own transaction, so
 * no cache of this node's decides what a replica stores.
 * Thread-safety: the broker's loop thread.
 */
#ifndef RK_INGEST_H
#define RK_INGEST_H

#include "rk_ack.h"
#include "rk_acl.h"
#include "rk_apply.h"
#include "rk_event.h"
#include "rk_keys.h"
#include "rk_log.h"
#include "rk_wire.h"

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

/* One admitted publish: what answering and relaying it need. */
struct rk_ingest_msg {
    zmq_msg_t ident;        /* ROUTER identity of the publisher's connection */
    zmq_msg_t event;        /* the received event frame; stored as is */
    uint64_t corr;
    int group_ack;          /* the client accepts "acks" (RK_WIRE_PUB_ACKS) */
    char topic[RK_TOPIC_MAX];
    char producer[RK_WIRE_PRODUCER_MAX + 1]; /* "" = not idempotent */
    char entity[RK_ID_MAX + 1];              /* request_id or kpi_id */
    char publisher[RK_KEY_Z85_LEN + 1];      /* its CURVE key; "" without CURVE */
    char key[RK_KEY_Z85_LEN + 1];   /* the connection's key, also when refused */
    char tenant[72];        /* the key's ACL tenant; "" when none */
    char address[64];       /* the connection's peer IP (libzmq's Peer-Address) */
    uint32_t pubs_index, pubs_count;  /* in a "pubs": this event's place and the
                                       * message's count (event: the first's
                                       * frame holds them all); 0: a "pub" */
};

/* The admitted batch: msgs[i] is items[i]'s message; items point into it.
 * A pubs takes one entry per event, in a row; there is room for one more
 * whole pubs beyond max. */
struct rk_ingest_batch {
    struct rk_ingest_msg *msgs;
    struct rk_apply_item *items;
    size_t n, max;
};

struct rk_ingest;

/* Settings of the ingest socket. */
struct rk_ingest_options {
    const char *endpoint;
    int64_t max_message;            /* bytes; a larger publish is refused (E_TOO_LONG),
                                     * a larger frame drops the peer */
    const char *curve_secret;       /* NULL: plain */
    struct rk_acl_slot *acl;        /* NULL: no ACL (plain) */
    size_t batch_max;
};

/* Binds the ingest socket. Returns 0, or -1 after logging why; close *out
 * either way. */
int rk_ingest_open(struct rk_ingest **out, void *zctx, const struct rk_ingest_options *opt);

/* Who answers refusals: an rk_ack on rk_ingest_socket(in). Set it before
 * the first rk_ingest_take. */
void rk_ingest_set_ack(struct rk_ingest *in, struct rk_ack *ack);
void rk_ingest_close(struct rk_ingest **ip);

/* The socket to poll, for rk_ack, and its monitor. */
void *rk_ingest_socket(struct rk_ingest *in);
void *rk_ingest_monitor(struct rk_ingest *in);

/* Publisher connections that came (+) or went (-) since the last call. */
int64_t rk_ingest_connections(struct rk_ingest *in);

/* Takes what waits on the socket, without blocking, into the batch until
 * it is full or nothing waits; `now_ns` judges sent_at. Returns the
 * number of messages taken (admitted or refused). */
size_t rk_ingest_take(struct rk_ingest *in, struct rk_ingest_batch *b, int64_t now_ns);

/* The batch's storage (max entries), and its release. */
void rk_ingest_batch_init(struct rk_ingest_batch *b, size_t max);
void rk_ingest_batch_free(struct rk_ingest_batch *b);

/* Closes the batch's messages and empties it. */
void rk_ingest_batch_clear(struct rk_ingest_batch *b);

#endif

/*
 * rk_ack - the broker's answers to publishers on the ingest socket: "ack"
 * for a stored event (or the original of a retry), "acks" gathering one
 * connection's acks of a batch into one message when the client asked for
 * that, and "err" for a refusal. Refusals are counted for /metrics and
 * logged, the first after a quiet spell at once, the rest summed; the
 * reason goes into the log line quoted (rk_diag_quote).
 *
 * Answers go out without waiting: a publisher that vanished is not an
 * error (ROUTER drops what it cannot route).
 * Thread-safety: the ingest socket's thread (the broker's loop).
 */
#ifndef RK_ACK_H
#define RK_ACK_H

#include "rk_metrics.h"

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

struct rk_ack;

/* What a run of the broker answered, for its last log line. */
struct rk_ack_counts {
    unsigned long long accepted, refused, duplicates;
};

/* Answers on `ingest` (a ROUTER), groups of up to batch_max acks. */
struct rk_ack *rk_ack_new(void *ingest, size_t batch_max, struct rk_metrics *metrics);
void rk_ack_destroy(struct rk_ack **ap);

/* "err" with `code` (E_...) and `message` ("field: reason") to the
 * connection `ident` for its publish `corr`. Client bytes quoted in
 * `message` must be escaped already (rk_text); as a last line, any control
 * character or invalid UTF-8 left in it is escaped too (backslashes are
 * kept, so escaped parts are not escaped twice), so the reply is always
 * valid UTF-8 without controls. The message is cut between characters to
 * the 255 bytes of the wire. */
void rk_ack_refuse(struct rk_ack *a, zmq_msg_t *ident, uint64_t corr, const char *code,
                   const char *message);

/* "err" E_ORDER for a numbered publish above its producer's next number,
 * `expected` (PROTOCOL.md 3.2), with `message` as in rk_ack_refuse. */
void rk_ack_out_of_order(struct rk_ack *a, zmq_msg_t *ident, uint64_t corr, uint64_t expected,
                         const char *message);

/* The answer to a "pubs": one call per event, in order, once its batch is
 * settled (stored now; a retry, stored before at seq and recv_ns; or
 * refused, `expected` set for E_ORDER), then rk_ack_pubs_end sends them
 * as one "outcomes" in runs. One pubs at a time. */
void rk_ack_pubs_stored(struct rk_ack *a, uint64_t seq, int retry, int64_t recv_ns);
void rk_ack_pubs_refused(struct rk_ack *a, const char *code, const char *message,
                         uint64_t expected);
void rk_ack_pubs_end(struct rk_ack *a, zmq_msg_t *ident, uint64_t corr, int64_t recv_ns);

/* "pong" for a "ping": sent at once, whatever waits for a commit. */
void rk_ack_pong(struct rk_ack *a, zmq_msg_t *ident, uint64_t corr);

/* The corr of a header frame that rk_wire_decode refused, when the client
 * sent one: the third element of a frame that is a MessagePack array of at
 * least three elements beginning 1 (the version) and a str (any command),
 * if that element is a uint. 0 otherwise, as for a header that is not a
 * version-1 array at all. Pure: any thread may call it. (It belongs in
 * proto/rk_wire as rk_wire_peek_corr; this is its stand-in.) */
uint64_t rk_ack_header_corr(const void *hdr, size_t len);

/* "ack": the publish `corr` was stored before, at seq (a retry). */
void rk_ack_duplicate(struct rk_ack *a, zmq_msg_t *ident, uint64_t corr, uint64_t seq,
                      int64_t recv_ns);

/* The publish `corr` is stored at seq: its own "ack", or, with `group`,
 * a pair in its connection's "acks" (sent by rk_ack_flush). `ident` must
 * stay valid until then. */
void rk_ack_stored(struct rk_ack *a, zmq_msg_t *ident, int group, uint64_t corr, uint64_t seq,
                   int64_t recv_ns);

/* Sends every gathered "acks". Call at the end of each batch. */
void rk_ack_flush(struct rk_ack *a);

/* Who the next refusals answer: the connection's CURVE key, its tenant
 * and its address (each may be NULL or ""), for the log (rk_refusal).
 * Not copied: they must stay valid until the next call (the ingest's batch
 * slots hold them); set before refusing each message. */
void rk_ack_sender(struct rk_ack *a, const char *key, const char *tenant, const char *address);

struct rk_ack_counts rk_ack_counts(const struct rk_ack *a);

/* What a publisher is told when its batch could not be stored (rc: the
 * storage error). Static. */
const char *rk_ack_storage_text(int rc);

#endif

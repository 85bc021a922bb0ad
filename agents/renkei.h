/*
 * renkei.h - the client library of the renkei broker, the one header a
 * program outside this tree includes.
 *
 *   cc prog.c $(pkg-config --cflags --libs renkei)           librenkei.so.0
 *   cc prog.c $(pkg-config --cflags --libs --static renkei)  librenkei.a (its
 *                                       dependencies listed; see renkei.pc)
 *
 * Five parts, each an object made by its own open function and freed by
 * its own destroy or close:
 *   connection options  CURVE keys and a shared ZeroMQ context, per object
 *   rk_pub              publishing, many in flight, outcome per event
 *   rk_sub              the live feed, in order and without gaps
 *   rk_reader           the stored log: ranges, filters, snapshots
 *   rk_forward          store and forward: a durable outbox that loses
 *                       nothing while the broker or the link is down
 * Events are MessagePack bytes as proto/PROTOCOL.md section 4 defines them;
 * the library checks and copies them, it does not build them.
 *
 * Errors. rk_pub, rk_sub, rk_reader and rk_client_check return 0 (or a
 * count) on success and -1 with errno set; each function says which errno
 * values mean what. rk_forward follows rk_err.h: RK_OK, a positive errno
 * value, an LMDB code passed through, or an RK_E* code; rk_strerror()
 * names any of them. Nothing in the library prints, exits or reads the
 * environment.
 *
 * Threads. No object is shared between threads: use each from one thread
 * at a time (one per thread is simplest). Different objects are
 * independent, whatever their keys; there is no process-wide state.
 *
 * Memory. Strings and buffers passed in are copied unless a function says
 * otherwise; pointers handed out stay valid until the next call on the
 * same object. Allocation failure aborts.
 */
#ifndef RENKEI_H
#define RENKEI_H

#include <stddef.h>
#include <stdint.h>

#include "rk_err.h"

/* ---- connection options
 *
 * A broker started with a key (renkei-broker --curve-key) speaks only
 * CURVE: each client proves its own key and checks the broker's, and the
 * broker's ACL says what that key may publish and read. The keys are given
 * to each object when it is made, so one process can hold publishers for
 * several towns, each with its own key. An object keeps the secret key
 * only as long as it needs it and wipes its copy when it is destroyed.
 */
struct rk_client_options {
    const char *broker_key;  /* the broker's public key: 40 Z85 characters, or
                              * the path of its .pub file (renkei-keys) */
    const char *client_key;  /* this client's secret key: 40 Z85 characters, or
                              * the path of its .key file. Both NULL: a plain
                              * connection (a loopback broker without a key);
                              * one without the other is an error */
    void *zmq_ctx;           /* a ZeroMQ context the caller owns and terminates
                              * after destroying every object made on it, so
                              * that hundreds of objects share one I/O thread;
                              * NULL: each object makes its own */
};

/* Checks `o` as the open functions will take it: reads the key files and
 * decodes the keys. Returns 0, or -1 with errno EINVAL and a sentence in
 * `why` ("broker key: /etc/renkei/broker.pub: No such file or directory").
 * The open functions fail with EINVAL alone, so a program that wants to
 * say why calls this first. NULL `o` is a plain connection. */
int rk_client_check(const struct rk_client_options *o, char *why, size_t why_len);

/* ---- rk_pub: publishing (the client side of the ingest socket)
 *
 * A publisher is one connection. rk_pub_send() queues a publish and
 * returns at once, so many publishes can be in flight; rk_pub_recv()
 * returns their outcomes (acknowledgement or refusal) as they arrive,
 * matched by the `corr` number rk_pub_send() assigned. An acknowledged
 * event is in the broker's log: the broker acks only after its commit.
 * Every publish asks for gathered acknowledgements (PROTOCOL.md 3.2: one
 * "acks" message per commit); rk_pub_recv() hands them out one at a time,
 * so callers see one outcome per publish either way. A broker older than
 * that addition refuses such publishes with E_HEADER.
 *
 * The connection is made in the background and made again after a loss,
 * carrying queued publishes over. A publish sent before a loss may then be
 * missing while later ones are stored: a sender that needs the broker's
 * order to be its own uses rk_forward, which resends from the oldest
 * unanswered event on a fresh connection.
 */
struct rk_pub;

/* Outcome of one publish. */
struct rk_pub_result {
    uint64_t corr;       /* as returned by rk_pub_send */
    int ok;              /* 1 = stored (seq/recv_ns set), 0 = refused (code/message set) */
    uint64_t seq;
    int64_t recv_ns;
    char code[32];       /* e.g. "E_RANGE", "E_STORAGE" */
    char message[256];   /* e.g. "offer.quantity: must be 1..10000000, got -5" */
    uint64_t expected;   /* code "E_ORDER": the producer's next number; send its
                          * unanswered events again from it, in order. Else 0 */
    int pong;            /* 1: the answer to rk_pub_ping `corr`; the broker is
                          * alive. Nothing else is set */
};

/* Creates a publisher connected to `endpoint` (e.g. "tcp://127.0.0.1:7701")
 * with options `o` (NULL: plain, own context). Connecting is asynchronous:
 * sends queue until the broker is reachable. Returns 0, or -1 with errno
 * (EINVAL for a malformed endpoint or bad keys; see rk_client_check). */
int rk_pub_open(const char *endpoint, const struct rk_client_options *o, struct rk_pub **out);

/* Closes the connection; publishes not yet acknowledged are abandoned.
 * Sets *pp to NULL; no-op on NULL. */
void rk_pub_destroy(struct rk_pub **pp);

/* Queues one event (MessagePack bytes, copied) and stores its correlation
 * number in *corr. Returns 0, or -1 with errno EAGAIN when the local
 * queue is full (receive some results first) or, for a moment, when the
 * broker has just refused this client's key and ZeroMQ connects again. */
int rk_pub_send(struct rk_pub *p, const void *event, size_t len, uint64_t *corr);

/* As rk_pub_send, for an idempotent producer: `producer` (1..64 characters
 * of A-Z a-z 0-9 . _ : -, stable across restarts) numbers its events with
 * `number` >= 1, each event the number after the one before. Sending the
 * same (producer, number) again, on any connection, even after a broker
 * restart, is answered as the first time (the original acknowledgement, or
 * the original refusal) and stores nothing. The broker stores a producer's
 * numbers in order only: one above the next is refused with "E_ORDER" and
 * res->expected, and the sender sends again from there (PROTOCOL.md 3.2
 * lists what a client must do; rk_forward does all of it).
 * EINVAL for an empty or over-long producer or number 0. */
int rk_pub_send_numbered(struct rk_pub *p, const char *producer, uint64_t number,
                         const void *event, size_t len, uint64_t *corr);

/* Queues events[0..n) (MessagePack bytes, copied; n 1..1024, their bytes
 * together within the broker's max_message, 65,536 by default) as one
 * message (PROTOCOL.md 3.2 "pubs"): one header and one acknowledgement for
 * them all, so a sender with many events waiting pays the per-message costs
 * once. With `producer` they take the numbers first .. first+n-1. Their
 * corrs are *corr .. *corr+n-1, and rk_pub_recv() gives one result per
 * event, as for rk_pub_send. One event goes out as a plain pub. Returns 0,
 * or -1 with errno (EINVAL: n, producer or first out of range; EAGAIN:
 * queue full). */
int rk_pub_send_batch(struct rk_pub *p, const char *producer, uint64_t first,
                      const void *const *events, const size_t *lens, size_t n, uint64_t *corr);

/* Asks the broker whether this connection is alive ("ping"): its answer,
 * a result with `pong` set and this corr, comes at once, before any
 * commit, so silence about publishes with a pong means a slow broker, and
 * no pong a lost connection. Returns 0, or -1 with errno (EAGAIN: queue
 * full). */
int rk_pub_ping(struct rk_pub *p, uint64_t *corr);

/* Waits up to `timeout_ms` (-1 = forever) for the next outcome. Returns 0
 * with *res filled, or -1 with errno ETIMEDOUT (nothing arrived) or
 * EPROTO (the broker sent something that is not a reply; it is skipped). */
int rk_pub_recv(struct rk_pub *p, int timeout_ms, struct rk_pub_result *res);

/* Number of publishes sent whose outcome has not been received. */
size_t rk_pub_in_flight(const struct rk_pub *p);

/* Completion callbacks. rk_pub_send_cb queues a publish like rk_pub_send
 * and remembers `done`/`arg`; rk_pub_dispatch waits up to `timeout_ms` for
 * outcomes and calls, for each, the callback of its publish (from the
 * calling thread, inside rk_pub_dispatch; `res` is valid during the call).
 * It returns how many callbacks ran (>= 1), or -1 with errno ETIMEDOUT when
 * none came in time. A callback may send more publishes. Use either these
 * or rk_pub_send/rk_pub_recv on one publisher, not both: an outcome of a
 * publish without a callback is dropped by rk_pub_dispatch. Publishes still
 * waiting at rk_pub_destroy never get their callback. Bookkeeping is a
 * list scanned per outcome: cheap for the windows of a few hundred that
 * agents use. */
typedef void (*rk_pub_done_fn)(void *arg, const struct rk_pub_result *res);

int rk_pub_send_cb(struct rk_pub *p, const void *event, size_t len, rk_pub_done_fn done,
                   void *arg);
int rk_pub_dispatch(struct rk_pub *p, int timeout_ms);

/* Blocking helper: send one event and wait for its own outcome, up to
 * `timeout_ms`. Outcomes of other publishes that arrive meanwhile are
 * discarded, so do not mix this with rk_pub_send on one publisher. */
int rk_pub_publish(struct rk_pub *p, const void *event, size_t len, int timeout_ms,
                   struct rk_pub_result *res);

/* ---- rk_sub: a subscriber that does not miss events
 *
 * It subscribes to the broker's live feed with one subscription key naming
 * its whole filter (PROTOCOL.md 3.3). Each live message carries its log
 * sequence number and `prev`, the sequence of the previous event matching
 * the same filter; ticks carry the log's head. So the subscriber knows, for
 * its own filter, whether anything was skipped (the broker skips a
 * subscriber whose queue is full, or it was restarted): when it was, it
 * reads the missing stretch from the replay socket, filtered by the broker,
 * and then resumes the live feed. Events are delivered in sequence order and
 * each exactly once.
 *
 * Filters are prefixes of the topic "<type>/<prefecture>/<municipality>":
 * "aid." is every disaster-support event, "kpi.update/27/" every KPI
 * update in Osaka prefecture. No filter means everything.
 */
struct rk_sub;

struct rk_delivery {
    uint64_t seq;
    int64_t recv_ns;
    const char *topic;       /* NUL-terminated */
    const void *event;       /* MessagePack bytes */
    size_t event_len;
    int from_replay;         /* 1 when it came through gap filling */
    int from_snapshot;       /* 1 when it is part of the starting snapshot:
                              * in entity order, not sequence order */
};

/* Creates a subscriber on the feed and replay endpoints with options `o`
 * (NULL: plain, own context; the reader it makes for filling gaps gets the
 * same keys). Returns 0 or -1 with errno (EINVAL: a malformed endpoint or
 * bad keys). */
int rk_sub_open(const char *feed_endpoint, const char *replay_endpoint,
                const struct rk_client_options *o, struct rk_sub **out);
/* Sets *sp to NULL; no-op on NULL. */
void rk_sub_destroy(struct rk_sub **sp);

/* Adds a topic-prefix filter. Call before starting. At most
 * RK_FILTER_TOPICS_MAX; a prefix is printable ASCII without '|', at most
 * RK_FILTER_TOPIC_MAX - 1 bytes. Returns 0, or -1 with errno ENOSPC or
 * EINVAL. */
int rk_sub_filter(struct rk_sub *s, const char *prefix);

/* Sends the subscription now (the start functions do it otherwise). A
 * program starting many subscribers subscribes them all first, so their
 * waits for the broker's first tick overlap. */
void rk_sub_subscribe(struct rk_sub *s);

/* Asks the replay socket whether this key may read the filter's topics
 * (the smallest replay request, for them): a broker with an ACL refuses a
 * subscription outside it without a word, so a program that wants to say
 * why asks first. Returns 0 when the replay is allowed (the subscription
 * may still be refused if the ACL's subscribe list is narrower than its
 * replay list), or -1 with errno EACCES (refused: the broker's E_FORBIDDEN
 * message is in rk_sub_error) or ETIMEDOUT. A key with subscribe rights
 * but none to replay gets EACCES here and can still follow live from now
 * (rk_sub_start(s, 0, ...)). */
int rk_sub_check_access(struct rk_sub *s, int timeout_ms);

/* Starts delivery at sequence `from` (>= 1: the log is read from there,
 * then the feed follows on), or when `from` is 0 with the first event
 * stored after the broker has taken the subscription. Waits up to
 * `timeout_ms` for the broker (with `from` 0, for its first tick); returns
 * 0 or -1 with errno (ETIMEDOUT: the broker did not answer). */
int rk_sub_start(struct rk_sub *s, uint64_t from, int timeout_ms);

/* Starts with a snapshot: first the latest event of every entity (KPI of a
 * municipality and year, aid request) the filter selects, as of one
 * sequence S, with from_snapshot set; then every event after S, in order,
 * as with rk_sub_start(s, S + 1). Publishing may go on meanwhile: nothing
 * is missed at the handover and nothing is delivered twice. */
int rk_sub_start_snapshot(struct rk_sub *s, int timeout_ms);

/* Next matching event, waiting up to `timeout_ms` (-1 = forever). Returns 0
 * with *d filled (valid until the next call), or -1 with errno ETIMEDOUT
 * when nothing matched in time, or another errno on failure (EPROTO: the
 * broker refused a replay; the text is in rk_sub_error). */
int rk_sub_next(struct rk_sub *s, int timeout_ms, struct rk_delivery *d);

/* The feed socket, for zmq_poll over many subscribers: call rk_sub_next
 * (with timeout 0) when it is readable. Owned by the subscriber. */
void *rk_sub_socket(const struct rk_sub *s);

/* Sequence number the subscriber will deliver or pass over next: every
 * matching event below it has been delivered. It advances on ticks too,
 * so a durable cursor of a rare filter does not fall behind. */
uint64_t rk_sub_position(const struct rk_sub *s);

/* How many gaps were filled from replay (the start's catch-up not
 * counted), and how many events all replay reads delivered. */
uint64_t rk_sub_gaps_filled(const struct rk_sub *s);
uint64_t rk_sub_events_filled(const struct rk_sub *s);

/* The sequence the starting snapshot is consistent with, once it has been
 * delivered whole (0 before, or without a snapshot). */
uint64_t rk_sub_snapshot_seq(const struct rk_sub *s);

/* Milliseconds since the feed last said anything (an event or a tick,
 * which the broker sends every 200 ms). */
int64_t rk_sub_silent_ms(const struct rk_sub *s);

/* Text of the last failure, or "". */
const char *rk_sub_error(const struct rk_sub *s);

/* Log identity (PROTOCOL.md 3.7). A broker's log has an identity that
 * changes when the log is restored from a backup or replaced by a copy:
 * then its sequence numbers may name other events than before. A
 * subscriber keeps the identity of the log its position counts in, and
 * stops rather than follow another log silently: rk_sub_start and
 * rk_sub_next fail with errno ESTALE, and rk_sub_error names both
 * identities and sequences, when the broker's identity is not that one,
 * or the broker's log ends below the position. A program that keeps a
 * durable position keeps the identity beside it.
 *
 * rk_sub_set_log_id: before starting, the identity `log_id` (32 lowercase
 * hex digits) the position given to rk_sub_start counts in; NULL or "":
 * not known, the broker's is taken as it is. Returns 0, or -1 with errno
 * EINVAL for another string. A broker from before identities says none;
 * then only the head is checked. */
int rk_sub_set_log_id(struct rk_sub *s, const char *log_id);

/* The identity of the log the subscriber follows: set, or taken from the
 * broker at the start ("" until then, or from a broker without one).
 * Owned by the subscriber. */
const char *rk_sub_log_id(const struct rk_sub *s);

/* After ESTALE: take the broker's present log as the one to follow, and
 * deliver from sequence `from` of it (1: the whole log, whose first part
 * may be events delivered before; 0: from now on). Returns 0, or -1 with
 * errno (EINVAL: the subscriber was never started). */
int rk_sub_restart_new_log(struct rk_sub *s, uint64_t from);

/* ---- rk_reader: reading the broker's log through its replay socket
 *
 * A reader is an iterator over a sequence range. It fetches the range in
 * batches of at most 1000 events, asking for them packed many to a
 * message. Without a filter it keeps two requests outstanding once the
 * broker is seen to pack, so the broker reads the next batch while this
 * one is consumed; otherwise one. Either way neither side buffers more
 * than two batches however long the range is.
 */
#define RK_READER_EOF 1

#define RK_FILTER_TOPICS_MAX 16  /* topic prefixes in one filter */
#define RK_FILTER_TOPIC_MAX 40   /* bytes of a topic prefix, NUL included */
#define RK_FILTER_ID_MAX 64      /* bytes of a request or KPI id */

struct rk_reader;

/* One stored event. `event` points into the reader and stays valid until
 * the next call on that reader. */
struct rk_record {
    uint64_t seq;
    int64_t recv_ns;
    const void *event;
    size_t event_len;
    const char *publisher;  /* the CURVE key that published it, Z85; "" if none */
};

/* What the broker is to select; a zeroed struct selects everything. An
 * event passes when its receive time is within the bounds, its topic
 * starts with one of the prefixes (when any are given), and its
 * request_id / kpi_id equal the ones given. */
struct rk_filter {
    int64_t from_ns, to_ns;      /* receive-time bounds, inclusive; 0 = none */
    unsigned ntopics;
    char topics[RK_FILTER_TOPICS_MAX][RK_FILTER_TOPIC_MAX];
    char request_id[RK_FILTER_ID_MAX + 1];
    char kpi_id[RK_FILTER_ID_MAX + 1];
};

/* Creates a reader connected to the replay endpoint with options `o`
 * (NULL: plain, own context). Returns 0 or -1 with errno (EINVAL: a
 * malformed endpoint or bad keys). */
int rk_reader_open(const char *endpoint, const struct rk_client_options *o,
                   struct rk_reader **out);
/* Sets *rp to NULL; no-op on NULL. */
void rk_reader_destroy(struct rk_reader **rp);

/* Restarts iteration at sequence `from` (>= 1) up to `to` inclusive
 * (0 = up to the end of the log as it is when the last batch is read). */
void rk_reader_seek(struct rk_reader *r, uint64_t from, uint64_t to);

/* Next record. Returns 0 with *rec filled, RK_READER_EOF when the range is
 * exhausted, or -1 with errno: ETIMEDOUT when the broker did not answer
 * within `timeout_ms`, EPROTO when it answered with an error (the text is
 * in rk_reader_error()). */
int rk_reader_next(struct rk_reader *r, int timeout_ms, struct rk_record *rec);

/* Sets the filter (copied; NULL clears it) for the batches asked from now
 * on, applied by the broker. With from_ns the reader starts at the first
 * event received at or after it, found by bisection, not by scanning. Call
 * rk_reader_seek first; seek keeps the filter. Returns 0, or -1 with errno
 * EINVAL (more than RK_FILTER_TOPICS_MAX topics, a string without its NUL,
 * a negative time): the filter is then unchanged. */
int rk_reader_set_filter(struct rk_reader *r, const struct rk_filter *f);

/* The next sequence the range iteration would look at: once it returned
 * RK_READER_EOF, every event below this was read or passed over by the
 * filter. */
uint64_t rk_reader_position(const struct rk_reader *r);

/* The broker's last sequence number as of the latest batch (0 before any). */
uint64_t rk_reader_head(const struct rk_reader *r);

/* Switches the reader to a snapshot: from now on rk_reader_next returns,
 * for each entity (a KPI of one municipality and fiscal year, or an aid
 * request), its latest event at or before sequence `at` (0 = the log's
 * head when the first batch is read) that the filter selects, in entity
 * order (not sequence order), then RK_READER_EOF. With a to_ns in the
 * filter the snapshot is of the last event received by then. Every batch
 * reads the same state however much is published meanwhile.
 * rk_reader_seek returns to sequence iteration. */
void rk_reader_snapshot(struct rk_reader *r, uint64_t at);

/* The sequence the snapshot is consistent with: every event up to it and
 * none after it is reflected. Known once the first batch has arrived (0
 * before, and for an empty log). To follow on live, apply events from
 * this sequence + 1. */
uint64_t rk_reader_snapshot_seq(const struct rk_reader *r);

/* "<code>: <message>" of the last error reply, or "". */
const char *rk_reader_error(const struct rk_reader *r);

/* ---- request state: what the broker says each disaster-support request
 * is in (PROTOCOL.md 3.6), folded by the broker from its log, so a client
 * never folds the lifecycle itself. */
struct rk_request_state {
    const char *request_id;  /* NUL-terminated */
    const char *requester;   /* the municipality that asked, six digits */
    const char *state;       /* "open", "in_progress", "fulfilled", "cancelled" */
    const void *map;         /* the broker's whole map of the request, MessagePack:
                              * quantities, accepted, dispatched, fulfilled,
                              * in_transit, its offers... (PROTOCOL.md 3.6) */
    size_t map_len;
};

struct rk_state {
    uint64_t seq;            /* every request's state is the one after event seq
                              * and every event before it, none after */
    size_t count;
    struct rk_request_state *requests; /* `count`, in bytewise order of request_id */
    char log_id[33];         /* the broker's log identity ("" from an older broker) */
    void *internal;          /* the library's; rk_state_free frees it all */
    size_t internal_n;
};

/* Reads the state of every request, or of the one `request_id` (NULL: all),
 * or of those whose requester's code starts with `requester` (2 digits: a
 * prefecture, 6: a municipality; NULL: any), all consistent with one
 * sequence out->seq: the broker answers in pages of up to 1000, and every
 * page after the first asks for the first one's moment (PROTOCOL.md 3.6,
 * at_seq). With a broker from before that, the reader asks again for the
 * requests that the aid events between the pages changed, until all
 * agree. To follow on live, apply
 * events from out->seq + 1 (rk_sub_start(s, seq + 1)). Fills *out (free
 * with rk_state_free) and returns 0, or -1 with errno: EINVAL (a bad
 * argument), ETIMEDOUT (the broker did not answer within timeout_ms, per
 * reply), EPROTO (it refused or sent what is not a state; text in
 * rk_reader_error), EAGAIN (an old broker, and the log kept changing
 * for 8 rounds: ask again). Afterwards the reader iterates from sequence 1 again with its
 * filter as before (rk_reader_seek to go elsewhere). */
int rk_reader_state(struct rk_reader *r, const char *request_id, const char *requester,
                    int timeout_ms, struct rk_state *out);

/* Frees what rk_reader_state filled in and zeroes *st. */
void rk_state_free(struct rk_state *st);

/* The identity of the broker's log (32 hex digits) as of the latest batch
 * of a range, snapshot or state; "" before any, or from a broker without
 * identities. When it changes between two batches, the log was restored
 * or replaced meanwhile (rk_sub_set_log_id). Owned by the reader. */
const char *rk_reader_log_id(const struct rk_reader *r);

/* ---- rk_forward: store and forward
 *
 * Every event given to rk_forward_add is written (fsync) to an outbox, a
 * small LMDB environment in a directory of its own, before the call
 * returns, and leaves it only when the broker has stored it (with its
 * sequence number). A refusal that may pass later (E_STORAGE, E_FORBIDDEN,
 * a lifecycle code another event can change) holds the event: it stays
 * and is tried again, 1 s after the refusal, then at most 5 min apart. Any
 * other refusal makes it a dead letter, kept in the outbox with its code,
 * message and time until an operator resends or discards it
 * (renkei-agent rejected, resend, discard). Events are numbered under the
 * outbox's producer id, made when the outbox is, and published as an
 * idempotent producer, so the broker stores each one once however often it
 * goes out: after a lost link, a broker restart, or this process killed
 * between the broker's commit and its own bookkeeping. Nothing is lost
 * while the broker is down: events wait in the outbox, across restarts of
 * either side.
 *
 * rk_forward_pump sends, oldest first, at most `window` at a time, on a
 * connection that never reconnects by itself: what reaches the broker is
 * always a prefix of what was sent. When the broker has been silent for
 * timeout_ms the pump says so (RK_FORWARD_SILENT); the next pump first
 * waits a back-off (0.2 s, doubling up to 5 s while no answer comes) and
 * then makes a new connection, on which every unanswered event goes out
 * again from the oldest. So the broker stores events in outbox order, but
 * for held events: one held for E_FORBIDDEN or a lifecycle code does not
 * hold back the events after it; while one is held for E_STORAGE no new
 * event goes out. A program that would rather give up (a one-shot sender)
 * stops pumping at RK_FORWARD_SILENT, RK_FORWARD_CANNOT_STORE or
 * RK_FORWARD_HELD: its events stay in the outbox for the next run.
 *
 * Each answer is recorded in the outbox and then handed to the
 * on_outcome callback, from inside rk_forward_pump.
 *
 * Errors follow rk_err.h (see the top of this file): the outbox's errors
 * come back unchanged (ENOSPC: its disk is full; MDB_MAP_FULL: it holds
 * 4 GiB; RK_EBADREC: it is damaged), and rk_forward_error() names the step
 * that failed, for a message. After an error the forwarder is still
 * usable; nothing added is lost.
 *
 * Threads and processes: one thread at a time per forwarder; the callback
 * runs in the thread that pumps. A directory is opened by one forwarder per
 * process (LMDB's locks are per process); another process may open it too,
 * to read its status while this one sends.
 */
#define RK_FORWARD_WINDOW_MAX 10000

struct rk_forward;

/* What one rk_forward_pump call saw. */
enum rk_forward_state {
    RK_FORWARD_IDLE,         /* every event added is answered: nothing to do */
    RK_FORWARD_MOVING,       /* an answer came, or events went out on a new
                              * connection: pump again */
    RK_FORWARD_WAITING,      /* events are out or wait for the connection; the
                              * broker has been silent, but for less than
                              * timeout_ms */
    RK_FORWARD_SILENT,       /* no answer (or no connection) for timeout_ms:
                              * the next pump backs off and reconnects */
    RK_FORWARD_CANNOT_STORE, /* the broker answered E_STORAGE: the event is
                              * held (below), and no new event goes out */
    RK_FORWARD_HELD,         /* nothing in flight, but held events wait for their
                              * next try; the first HELD in a row returns at
                              * once, the next ones wait (up to wait_ms) for
                              * the earliest retry */
};

/* The broker's answer to one event. Strings are valid during the callback. */
struct rk_forward_outcome {
    uint64_t number;         /* the outbox number rk_forward_add gave it */
    const char *event_id;    /* its event_id; "" when it has none */
    int ok;                  /* 1 = stored, 0 = refused (held or a dead letter) */
    uint64_t seq;            /* stored: its sequence number in the broker's log */
    int64_t recv_ns;         /* stored: the broker's receive time */
    const char *code;        /* refused: e.g. "E_RANGE"; "" when stored */
    const char *message;     /* refused: the broker's reason; "" when stored */
    int held;                /* refused: 1 = held, tried again from retry_ns;
                              * 0 = a dead letter, kept in the outbox */
    int64_t retry_ns;        /* held: its next try */
};

/* May not call rk_forward_pump or rk_forward_close on the same forwarder. */
typedef void (*rk_forward_outcome_fn)(void *arg, const struct rk_forward_outcome *o);

struct rk_forward_options {
    struct rk_client_options client; /* keys and context of every connection */
    unsigned window;                 /* publishes in flight, 1..RK_FORWARD_WINDOW_MAX;
                                      * 0 = 256 */
    int timeout_ms;                  /* silence that counts as a lost connection;
                                      * 0 = 10000 */
    rk_forward_outcome_fn on_outcome; /* NULL: outcomes are only recorded */
    void *arg;                       /* given to on_outcome */
};

struct rk_forward_status {
    char producer[65];          /* the id events are numbered under */
    uint64_t pending;           /* events in the outbox waiting for an answer,
                                 * held ones included */
    uint64_t first_pending;     /* the oldest one's number; 0 when none */
    uint64_t last_number;       /* the number the newest event got; 0 when none yet */
    uint64_t acked;             /* events acknowledged over the outbox's life */
    uint64_t refused;           /* events refused for good over its life (each
                                 * kept as a dead letter until discarded) */
    uint64_t last_ack_number;   /* the last acknowledged event: its number, */
    uint64_t last_ack_seq;      /* its sequence number in the broker's log */
    int64_t last_ack_recv_ns;   /* and the broker's receive time; all 0 when none */
    size_t in_flight;           /* sent on this forwarder's connection, unanswered */
    int64_t silent_ms;          /* since its last answer, new connection, or
                                 * publish into an empty window; 0 when not
                                 * connected */
};

/* Opens the outbox in `dir`, creating the directory (mode 0700) and the
 * outbox if needed. Nothing is sent until rk_forward_connect. On failure
 * *out is NULL and `why` (may be NULL) says what to fix, e.g. "outbox
 * /var/lib/x: cannot create: Permission denied". */
int rk_forward_open(const char *dir, struct rk_forward **out, char *why, size_t why_len);

/* Makes the first connection to the broker's ingest `endpoint` with
 * options `o` (NULL: plain, defaults). The keys are read here, once; every
 * later connection uses them. Returns RK_OK, EINVAL (a malformed endpoint,
 * bad keys, a window or timeout out of range), EISCONN (connected
 * already), or an errno value from ZeroMQ (EMFILE). */
int rk_forward_connect(struct rk_forward *f, const char *endpoint,
                       const struct rk_forward_options *o);

/* Closes the connection (events in flight stay in the outbox, to go out
 * next time) and the outbox, wipes the keys, and sets *fp to NULL; no-op
 * on NULL. Cannot fail. */
void rk_forward_close(struct rk_forward **fp);

/* Adds `n` events (MessagePack bytes, copied) in one transaction and
 * fsyncs: on RK_OK they are on disk. The first gets number *first, the
 * others the numbers after it. EMSGSIZE when one is over 16 KiB (the
 * broker's limit): nothing is added. An error from the fsync itself comes
 * after the commit: the events are then in the outbox (and will be sent)
 * but perhaps not on disk. Needs no connection. */
int rk_forward_add(struct rk_forward *f, const void *const *events, const size_t *lens,
                   size_t n, uint64_t *first);

/* Sends what the window has room for, oldest first, and waits up to
 * `wait_ms` for the broker's answers (or, while nothing is in flight, for
 * the connection), calling on_outcome for each; sets *state to what it saw.
 * Returns at the first answers, taking all that have arrived, or when
 * wait_ms has passed. After RK_FORWARD_SILENT or RK_FORWARD_CANNOT_STORE
 * the next call first sleeps out the back-off, then reconnects; a
 * connection that cannot be made is tried again after the next back-off
 * (the state stays RK_FORWARD_SILENT). Returns RK_OK, ENOTCONN before
 * rk_forward_connect, or the outbox's error (reading an event, recording
 * an answer): the answer not recorded comes again after a reconnect. */
int rk_forward_pump(struct rk_forward *f, int wait_ms, enum rk_forward_state *state);

/* The outbox's counts and last acknowledgement, read in one snapshot, and
 * this forwarder's connection, into *st. */
int rk_forward_status(struct rk_forward *f, struct rk_forward_status *st);

/* The step of the last failure, e.g. "cannot record an answer", or
 * "broker key: ..." from rk_forward_connect; "" when none. Its code says
 * why (rk_strerror). */
const char *rk_forward_error(const struct rk_forward *f);

#endif

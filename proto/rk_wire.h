/*
 * rk_wire - the header frame of every renkei message (protocol version 1).
 *
 * Every ZeroMQ message between renkei peers starts with one header frame:
 * a MessagePack array [version, command, corr, ...], followed for some
 * commands by one event frame holding the event's MessagePack bytes.
 * proto/PROTOCOL.md section 3 is normative; in short:
 *
 *   pub    [1, "pub",    corr]                          + event frame
 *          [1, "pub",    corr, flags]                   + event frame
 *          [1, "pub",    corr, producer, number]        + event frame (idempotent)
 *          [1, "pub",    corr, producer, number, flags] + event frame
 *   ack    [1, "ack",    corr, seq, recv_ns]
 *   acks   [1, "acks",   0,    recv_ns, [corr, seq, corr, seq, ...]]
 *   err    [1, "err",    corr, code, message]
 *   replay [1, "replay", corr, from_seq, to_seq, limit]
 *          [1, "replay", corr, from_seq, to_seq, limit, {filter}]
 *          [1, "replay", corr, from_seq, to_seq, limit, {filter}, flags]
 *   evt    [1, "evt",    corr, seq, recv_ns]            + event frame
 *          [1, "evt",    corr, seq, recv_ns, publisher] (its CURVE key)
 *   evts   [1, "evts",   corr, count]                   + records frame
 *   end    [1, "end",    corr, next_seq, head_seq, sent, log_id]
 *   live   [1, "live",   0,    seq, recv_ns, prev, topic] + event frame
 *   tick   [1, "tick",   0,    head_seq, now_ns, prev, log_id]
 *   snap   [1, "snap",   corr, at_seq, limit, cursor]
 *          [1, "snap",   corr, at_seq, limit, cursor, {filter}]
 *          [1, "snap",   corr, at_seq, limit, cursor, {filter}, flags]
 *   snapend [1, "snapend", corr, at_seq, cursor, sent, log_id]
 *   state  [1, "state",  corr, limit, cursor], optionally {filter}, then at_seq
 *   reqs   [1, "reqs",   corr, seq, cursor, count, log_id] + requests frame
 *
 * `log_id` (32 hex digits, the identity of the broker's log, PROTOCOL.md
 * 3.7) is a later addition: brokers before it leave it out.
 *
 * `corr` is chosen by the client and echoed by the broker; integers are
 * unsigned. A decoder accepts any MessagePack integer encoding and ignores
 * trailing array elements it does not know, so a later minor revision can
 * append fields without breaking version-1 peers.
 */
#ifndef RK_WIRE_H
#define RK_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define RK_WIRE_VERSION 1
/* Where a broker listens, and its clients connect, when told nothing else:
 * loopback, so a default install is reachable from this machine only. */
#define RK_DEFAULT_INGEST "tcp://127.0.0.1:7701"
#define RK_DEFAULT_FEED "tcp://127.0.0.1:7702"
#define RK_DEFAULT_REPLAY "tcp://127.0.0.1:7703"

#define RK_WIRE_HDR_MAX 2048     /* no header this module writes is longer */
#define RK_REPLAY_LIMIT_MAX 1000 /* events per replay batch */
#define RK_WIRE_PRODUCER_MAX 64  /* bytes of a producer id */
#define RK_WIRE_TOPICS_MAX 16    /* topic prefixes in one filter or subscription key */
#define RK_WIRE_TOPIC_MAX 40     /* bytes of a topic prefix, NUL included */
#define RK_WIRE_ID_MAX 64
#define RK_WIRE_CURSOR_MAX 96    /* bytes of a snapshot cursor (bin) */
#define RK_WIRE_PUBLISHER_MAX 40 /* a publisher's key, Z85 */
#define RK_WIRE_LOG_ID_MAX 32    /* a log identity: lowercase hex of 16 bytes */

/* pub flags. RK_WIRE_PUB_ACKS: the client accepts "acks", so the broker may
 * acknowledge this event together with others of the same commit. */
#define RK_WIRE_PUB_ACKS 1u

/* replay and snap flags. RK_WIRE_REPLAY_PACKED: the client accepts "evts",
 * so the broker may send many records in one message. */
#define RK_WIRE_REPLAY_PACKED 1u

/* Bytes an "acks" header of `n` acknowledgements can take at most. */
#define RK_WIRE_ACKS_SIZE(n) (32 + 18 * (size_t)(n))

/* Optional replay filter; a zeroed struct selects everything. An event
 * passes when its receive time is within the bounds, its topic starts with
 * one of the prefixes (when any are given), and its request_id / kpi_id
 * equal the ones given. */
struct rk_wire_filter {
    int64_t from_ns, to_ns;      /* receive-time bounds, inclusive; 0 = none */
    unsigned ntopics;
    char topics[RK_WIRE_TOPICS_MAX][RK_WIRE_TOPIC_MAX];
    char request_id[RK_WIRE_ID_MAX + 1];
    char kpi_id[RK_WIRE_ID_MAX + 1];
    char requester[7];           /* state only: the requester's code starts with
                                  * this (2 digits: a prefecture; 6: a town) */
};

/* 1 when the filter selects something narrower than everything. */
int rk_wire_filter_active(const struct rk_wire_filter *f);

enum rk_wire_cmd {
    RK_CMD_NONE = 0,
    RK_CMD_PUB,
    RK_CMD_ACK,
    RK_CMD_ERR,
    RK_CMD_REPLAY,
    RK_CMD_EVT,
    RK_CMD_END,
    RK_CMD_LIVE,
    RK_CMD_SNAP,
    RK_CMD_SNAPEND,
    RK_CMD_TICK,
    RK_CMD_ACKS,
    RK_CMD_EVTS,
    RK_CMD_STATE,   /* client -> replay: the requests' current state (PROTOCOL.md 3.6) */
    RK_CMD_REQS,    /* replay -> client: one batch of it */
    RK_CMD_PING,    /* client -> ingest: is this connection alive? (3.2) */
    RK_CMD_PONG,    /* ingest -> client: yes, answered at once */
    RK_CMD_PUBS,    /* client -> ingest: many events in one frame (3.2) */
    RK_CMD_OUTCOMES,/* ingest -> client: each of them stored or refused, in runs */
};

#define RK_WIRE_PUBS_MAX 1024    /* events in one "pubs" */

/* Decoded header. Only the fields of `cmd` are meaningful. */
struct rk_wire_hdr {
    enum rk_wire_cmd cmd;
    uint64_t corr;
    char producer[RK_WIRE_PRODUCER_MAX + 1]; /* pub: "" = not idempotent */
    uint64_t producer_seq; /* pub: the producer's number for this event, >= 1 */
    uint64_t flags;      /* pub: RK_WIRE_PUB_* bits; replay, snap: RK_WIRE_REPLAY_*
                          * bits; unknown bits are ignored */
    uint64_t seq;        /* ack, evt, live: the log sequence number;
                          * tick: the last sequence in the log */
    int64_t recv_ns;     /* ack, acks, evt, live: broker receive time; tick: now */
    uint64_t prev_seq;   /* live, tick: no event of the subscription lies
                          * strictly between this and `seq` (PROTOCOL.md 3.3) */
    char topic[RK_WIRE_TOPIC_MAX]; /* live: the event's topic */
    char publisher[RK_WIRE_PUBLISHER_MAX + 1]; /* evt: the key that published it,
                          * Z85; "" when the broker had no CURVE */
    uint64_t from_seq;   /* replay: first sequence wanted (>= 1) */
    uint64_t to_seq;     /* replay: last sequence wanted, 0 = no end bound */
    uint32_t limit;      /* replay, snap, state: most events (requests) in this
                          * batch, 1..RK_REPLAY_LIMIT_MAX */
    struct rk_wire_filter filter; /* replay, snap: optional */
    uint64_t at_seq;     /* snap, state: the sequence the state is wanted at, 0 =
                          * the head now; snapend: the one it is consistent with */
    unsigned char cursor[RK_WIRE_CURSOR_MAX]; /* snap: resume after this entity
                          * (empty: from the start); snapend: where the next
                          * batch resumes (empty: the snapshot is complete) */
    size_t cursor_len;
    uint64_t next_seq;   /* end: where the next batch would start */
    uint64_t head_seq;   /* end: last sequence in the log when the batch was read */
    uint64_t sent;       /* end, snapend: events the broker sent in this batch */
    uint64_t nrecords;   /* evts: records in the frame after the header; reqs:
                          * requests in it; pubs: events in it (1..RK_WIRE_PUBS_MAX,
                          * numbered from producer_seq when producer is set). reqs also sets seq (the state is
                          * that after it) and cursor (empty: the last batch) */
    int has_sent;        /* end: 0 when the peer did not say (decoding only) */
    char log_id[RK_WIRE_LOG_ID_MAX + 1]; /* tick, end, snapend, reqs: the identity
                          * of the broker's log; "" = left out (an older
                          * broker), and then not written */
    char code[32];       /* err: machine-readable code, e.g. "E_RANGE" */
    char message[256];   /* err: "<type>.<field>: <reason>" */
    uint64_t expected;   /* err E_ORDER: the number the producer must send next;
                          * 0 = absent (other errs) */
    size_t nacks;        /* acks: (corr, seq) pairs not yet taken by rk_wire_acks_next */
    const unsigned char *acks; /* acks: the next pair, inside the decoded buffer */
    const char *field;   /* when rk_wire_decode refuses a header: the element it
                          * failed at ("header" for the array itself or too few
                          * elements, "version", "corr", "producer", "number",
                          * "filter.topics", ...); static. NULL once decoded */
    size_t nruns;        /* outcomes: runs not yet taken by rk_wire_outcomes_next */
    const unsigned char *runs; /* outcomes: the next run, inside the decoded buffer */
};

/* Writes the header `h` to `buf` (capacity `cap`, RK_WIRE_HDR_MAX is
 * always enough). Returns the number of bytes written, or 0 with nothing
 * usable in `buf` (never a byte past `cap`) when `cap` is too small,
 * `h->cmd` is not a command, or a field is over its protocol limit: more
 * than RK_WIRE_TOPICS_MAX filter topics, a cursor over RK_WIRE_CURSOR_MAX
 * bytes, a negative filter time, or an identifier (producer, filter topic,
 * request_id, kpi_id, publisher, live topic) that fills its whole array
 * without a NUL, which would otherwise go out cut short and name another
 * one. Only `code` and `message`, text for people, are cut to their field
 * instead, at a UTF-8 boundary.
 *
 * Every encoder of this module writes each count, length and integer in
 * the smallest MessagePack form that holds it (fix, 8-, 16- or 32-bit), so
 * a filter of 16 topics goes out as an array 16, not a fixarray. */
size_t rk_wire_encode(const struct rk_wire_hdr *h, void *buf, size_t cap);

/* Writes an "acks" header: `n` (at least 1) pairs corr_seq[2i] (the publish's corr) and
 * corr_seq[2i+1] (its seq), all stored by one commit at `recv_ns`. Returns
 * the bytes written, or 0 when `n` is 0 or over 2^31 - 1 (the pairs'
 * array 32 count) or `cap` is too small; RK_WIRE_ACKS_SIZE(n) is always
 * enough. */
size_t rk_wire_encode_acks(int64_t recv_ns, const uint64_t *corr_seq, size_t n, void *buf,
                           size_t cap);

/* Takes the next (corr, seq) pair of a decoded "acks" header. Returns 0, or
 * -1 when none is left. The pairs are read from the buffer given to
 * rk_wire_decode, which must still be valid. */
int rk_wire_acks_next(struct rk_wire_hdr *h, uint64_t *corr, uint64_t *seq);

/* ---- "outcomes": the answer to a "pubs" (PROTOCOL.md 3.2)
 *
 * Events first .. first+n-1 of the pubs, all alike: stored now at seq ..
 * seq+n-1 (RK_RUN_STORED, at the reply's recv_ns); stored before, as
 * retries, at seq .. seq+n-1 and recv_ns (RK_RUN_RETRY); or refused with
 * one code and message (RK_RUN_REFUSED; `expected` set for E_ORDER). */
enum rk_wire_run_kind { RK_RUN_STORED = 1, RK_RUN_RETRY, RK_RUN_REFUSED };
struct rk_wire_run {
    enum rk_wire_run_kind kind;
    uint32_t first, n;
    uint64_t seq;
    int64_t recv_ns;       /* RETRY */
    char code[32];         /* REFUSED */
    char message[256];     /* REFUSED */
    uint64_t expected;     /* REFUSED with E_ORDER; else 0 */
};

/* Bytes an "outcomes" of n runs takes at most. */
#define RK_WIRE_OUTCOMES_SIZE(n) (48 + (size_t)(n) * (40 + 32 + 256))

/* Writes an "outcomes" header for the pubs `corr`: `n` (1..RK_WIRE_PUBS_MAX)
 * runs in order, the first starting at event 0, each where the one before
 * ended. Returns the bytes written, or 0 when the runs are not so or `cap`
 * is too small (RK_WIRE_OUTCOMES_SIZE(n) is always enough). */
size_t rk_wire_encode_outcomes(uint64_t corr, int64_t recv_ns, const struct rk_wire_run *runs,
                               size_t n, void *buf, size_t cap);

/* Takes the next run of a decoded "outcomes" header (rk_wire_decode checked
 * them all: in order from event 0, none empty). Returns 0, or -1 when none
 * is left. Reads the buffer given to rk_wire_decode, which must still be
 * valid. */
int rk_wire_outcomes_next(struct rk_wire_hdr *h, struct rk_wire_run *run);

/* ---- the records frame of "evts" (PROTOCOL.md 3.4)
 *
 * The frame after an "evts" header is `count` MessagePack arrays, one per
 * record, back to back: [seq, recv_ns, event] or [seq, recv_ns, event,
 * publisher], the event as a bin holding its stored bytes. */
struct rk_wire_record {
    uint64_t seq;
    int64_t recv_ns;
    const void *event;       /* the stored event bytes */
    size_t event_len;
    const char *publisher;   /* Z85 key, not NUL-terminated; NULL when none */
    size_t publisher_len;    /* at most RK_WIRE_PUBLISHER_MAX */
};

/* Bytes a record takes at most beyond its event's. */
#define RK_WIRE_RECORD_OVERHEAD (32 + RK_WIRE_PUBLISHER_MAX)

/* Appends `rec` to `buf` (capacity `cap`). Returns the bytes written, or 0
 * when `cap` is below rec->event_len + RK_WIRE_RECORD_OVERHEAD, the event
 * is over 2^32 - 1 bytes (bin 32's limit), or the publisher is longer than
 * RK_WIRE_PUBLISHER_MAX or holds a NUL. */
size_t rk_wire_record_put(const struct rk_wire_record *rec, void *buf, size_t cap);

/* Reads the record at *p (with *left bytes after it) into *rec and moves
 * *p and *left past it. rec's pointers point into the buffer. Returns 0, or
 * -1 when the bytes there are not one well-formed record. */
int rk_wire_record_next(const unsigned char **p, size_t *left, struct rk_wire_record *rec);

/* Parses a header frame. Returns 0 and fills *h, or -1 when the bytes are
 * not a version-1 header (bad MessagePack, wrong version, missing or
 * mistyped fields). A well-formed header naming a command this version does
 * not know returns 0 with h->cmd == RK_CMD_NONE and h->corr set, so the
 * peer can answer E_COMMAND. Never reads past `len`. */
int rk_wire_decode(const void *buf, size_t len, struct rk_wire_hdr *h);

/* The message for a header rk_wire_decode refused (h as it left it),
 * naming h->field: "header.producer: ...", "filter.topics: ...". */
void rk_wire_refusal_text(const struct rk_wire_hdr *h, char *buf, size_t len);

/* ---- subscription keys (PROTOCOL.md 3.3)
 *
 * A live-feed subscriber subscribes to one key naming its whole filter:
 * "~" then its topic prefixes joined by "|", then "\n". "~\n" selects
 * everything. Because every key ends in the one byte no prefix may hold,
 * no key is a prefix of another, so ZeroMQ's prefix matching delivers a
 * key's messages to its subscribers only. */
#define RK_WIRE_SUBKEY_MAX (2 + RK_WIRE_TOPICS_MAX * RK_WIRE_TOPIC_MAX)

/* Writes the canonical key of `n` prefixes to `out` (capacity at least
 * RK_WIRE_SUBKEY_MAX): sorted, without duplicates, without a prefix that a
 * shorter one already covers, so that subscribers with the same filter share
 * one key. Returns the key's length (`out` is also NUL-terminated), or 0 with a reason in `why` for a bad prefix: more than
 * RK_WIRE_TOPICS_MAX, longer than RK_WIRE_TOPIC_MAX - 1 bytes, or a byte
 * outside '!'..'~' or a '|'. */
size_t rk_wire_subkey(const char *const *prefixes, unsigned n, char *out, char *why, size_t why_len);

/* Splits a key received from the network into its prefixes (each
 * NUL-terminated in `topics`). Returns the number of prefixes (0 = every
 * event), or -1 when the bytes are not a well-formed key. */
int rk_wire_subkey_parse(const void *key, size_t len, char topics[][RK_WIRE_TOPIC_MAX]);

/* "pub", "ack", ... ; NULL for RK_CMD_NONE. */
const char *rk_wire_cmd_name(enum rk_wire_cmd cmd);

#endif

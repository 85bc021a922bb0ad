/*
 * rk_log - the event log: an append-only LMDB table keyed by sequence number.
 *
 * Invariants
 *   - Sequence numbers start at 1 and have no gaps: record n+1 is appended
 *     only in the transaction after (or the same as) record n.
 *   - Receive times never go backwards along the log (the clock is clamped),
 *     so a time bound maps to a sequence bound by binary search.
 *   - Every record carries hash_n = BLAKE2b-256(hash_{n-1} || key || the
 *     record without its hash field); hash_0 is 32 zero bytes. Changing any
 *     stored byte breaks the chain from that record on.
 *   - One write batch at a time (rk_log_batch_*, or rk_log_append, which
 *     is one batch of records) is the only write path, used by one thread.
 *     Readers may run in any number of other threads, each with its own
 *     rk_log_reader; they never block the writer.
 *
 * On-disk layout (schema 4), one LMDB environment in the data directory:
 *   "events": key   = sequence, big-endian u64 (so cursor order is log order
 *                     and MDB_APPEND applies)
 *             value = record, all integers big-endian:
 *                     off  0  u8   record format (1)
 *                     off  1  u8   producer id length R (0 = none)
 *                     off  2  u16  publisher length P
 *                     off  4  u32  event length E
 *                     off  8  u64  receive time, ns since the epoch (UTC)
 *                     off 16  u64  producer sequence (0 = none)
 *                     off 24  32B  chain hash
 *                     off 56  u8   event type (enum rk_event_type)
 *                     off 57  u8   entity id length N
 *                     off 58  u16  fiscal year (kpi.update; else 0)
 *                     off 60  6B   municipality code, ASCII
 *                     off 66  P    publisher identity (empty until keys exist)
 *                     ...     R    producer id (idempotent publishing)
 *                     ...     N    entity id: request_id (aid.*) or kpi_id
 *                     ...     E    the event's MessagePack bytes, as received
 *             The tags (type .. entity id) repeat what validation read from
 *             the event, so replay can filter without decoding MessagePack.
 *   "producers": key = producer id, 0x00, number (big-endian u64)
 *                value = sequence (u64), receive time (u64), big-endian;
 *                one entry per event that came with a producer id, written in
 *                the same transaction as the event, so a retry is recognised
 *                across restarts. A number refused for good (PROTOCOL.md 3.2)
 *                has sequence 0, the refusal's time, then its code (1..31
 *                bytes of A-Z 0-9 _): it stays used. Retention deletes an
 *                event's entry with the event; refusal entries stay
 *   "entities": key = entity key (rk_log_entity_key), sequence (u64 BE);
 *                value empty. One entry per event that names an entity: the
 *                history of each KPI x municipality x fiscal year and of each
 *                aid request, so the state as of any sequence is found
 *                without a scan. The index trails the records: entries wait
 *                in memory and are written together, in key order, about
 *                RK_LOG_INDEX_LAG_NS after their records or once 16,384
 *                wait (entity and places entries together). One insert per append at a random place in the tree
 *                dirtied a page per event; in key order, entries share
 *                pages. Readers read the few entries the index lacks from
 *                the records themselves, so snapshots are exact at any
 *                sequence. The index can always be rebuilt from the
 *                records' tags: what a crash loses is read again at the
 *                next open.
 *   "places": key = prefecture (1 byte, 1..47), sequence of the chunk's
 *                first record (u64 BE); value = the sequences (u64 BE each,
 *                ascending) of the records from that prefecture, one chunk
 *                per prefecture and index write. A replay filtered to some
 *                prefectures reads only their records, not the whole log.
 *                Written with the entity index, to the same mark; its own
 *                mark, "places", tells how far it reaches, since a broker
 *                from before it moves "indexed" alone. Retention deletes
 *                the chunks it emptied.
 *   "aid_requests": key = request_id; value = the request's whole state
 *                (its offers and dispatches too), as rk_aid_request_encode
 *                writes it. Written in the transaction of the records that
 *                changed it, so it is always the fold of the stored aid
 *                events. Retention never deletes it.
 *   "aid_ids": key = 'O' offer_id or 'D' dispatch_id; value = the request_id
 *                it belongs to (ids are unique across all requests).
 *   "meta":   "schema" -> big-endian u32 schema version (4; 3 = a log from
 *                         before the aid state tables: rk_log_open reads it,
 *                         and rk_log_state_ready says 0 until the caller has
 *                         built the tables and called rk_log_batch_state_built)
 *             "pruned" -> last sequence deleted by retention (u64 BE) and its
 *                         chain hash (32 bytes); absent until retention runs
 *             "indexed" -> the entity index holds every entry of the records
 *                         up to this sequence (u64 BE); absent in logs of
 *                         brokers that indexed in each append, which is
 *                         read as "all of them"
 *             "places" -> the places index holds every record up to this
 *                         sequence (u64 BE); absent: none (the first open
 *                         for writing reads the records and writes it)
 *
 * Errors follow rk_err.h: 0 on success, an LMDB error code (negative,
 * MDB_*), an errno value (positive), RK_EBADREC for a record whose layout is
 * inconsistent, RK_ESCHEMA for a log of a newer schema, RK_EOF where a walk
 * ends. rk_strerror() (and its old name rk_log_strerror()) names any of them.
 */
#ifndef RK_LOG_H
#define RK_LOG_H

#include "rk_err.h"
#include "rk_event.h" /* RK_ID_MAX: header only */
#include "rk_wire.h"  /* RK_WIRE_PRODUCER_MAX: header only */

#include <stddef.h>
#include <stdint.h>

/* The log's directory when told nothing else (broker and renkei-replay). */
#define RK_DEFAULT_DATA_DIR "renkei-data"
#define RK_LOG_SCHEMA 4
#define RK_LOG_SCHEMA_OLDEST 3    /* the oldest schema rk_log_open reads */
#define RK_LOG_HASH_BYTES 32
#define RK_LOG_PRODUCER_MAX RK_WIRE_PRODUCER_MAX /* the protocol's limits, one home */
#define RK_LOG_REFUSAL_CODE_MAX 31                /* PROTOCOL.md 3.1: err codes */
#define RK_LOG_ENTITY_MAX RK_ID_MAX
/* 'K', municipality, fiscal year, length, kpi_id -- or 'A', length, request_id */
#define RK_LOG_ENTITY_KEY_MAX (1 + 6 + 2 + 1 + RK_LOG_ENTITY_MAX)
#define RK_LOG_EBADREC RK_EBADREC /* rk_err.h */
#define RK_LOG_EOF RK_EOF         /* rk_log_reader_next: no more records */
#define RK_LOG_INDEX_LAG_NS 200000000LL
#define RK_LOG_ID_BYTES 16
#define RK_LOG_ID_HEX (2 * RK_LOG_ID_BYTES + 1) /* its text: lowercase hex and a NUL */ /* the entity index trails by at most 0.2 s */

struct rk_log;
struct rk_log_reader;

enum rk_log_durability {
    RK_LOG_FULL = 0, /* fsync at every commit: an ack survives a power cut */
    RK_LOG_OS,       /* no fsync: an ack survives a broker crash, not a power cut */
};

struct rk_log_options {
    enum rk_log_durability durability;
    uint64_t map_size;  /* initial map size in bytes; 0 = 256 MiB. An existing
                         * larger file keeps its size. */
    uint64_t map_max;   /* the map doubles when full, up to this; 0 = no cap
                         * (the disk is the limit) */
};

/* What a record is about, for filtering without decoding the event. */
struct rk_log_tags {
    uint8_t type;             /* enum rk_event_type */
    char municipality[6];     /* ASCII digits, not terminated */
    uint16_t fiscal_year;     /* kpi.update; 0 otherwise */
    const char *entity;       /* request_id or kpi_id, not terminated */
    size_t entity_len;        /* <= RK_LOG_ENTITY_MAX */
};

/* An entity (one KPI of one municipality and fiscal year, or one aid
 * request) and one of its records. */
struct rk_log_entity {
    unsigned char key[RK_LOG_ENTITY_KEY_MAX];
    size_t key_len;
    uint64_t seq;
};

/* One event to append. The caller fills the inputs; rk_log_append fills
 * the outputs. Pointers are borrowed for the duration of the call. */
struct rk_log_rec {
    const void *event;        /* in: MessagePack bytes */
    size_t event_len;         /* in: <= UINT32_MAX */
    const void *publisher;    /* in: may be NULL when publisher_len is 0 */
    size_t publisher_len;     /* in: <= UINT16_MAX */
    const void *producer;     /* in: idempotent publisher's id, may be NULL when producer_len is 0 */
    size_t producer_len;      /* in: <= RK_LOG_PRODUCER_MAX; 0 = not idempotent */
    uint64_t producer_seq;    /* in: the producer's number, >= 1 with a producer; else 0 */
    struct rk_log_tags tags;  /* in */
    uint64_t seq;             /* out: assigned sequence number */
    int64_t recv_ns;          /* out: assigned receive time */
};

/* A stored record as seen through a reader. Every pointer points into
 * LMDB's map and is valid only until the next rk_log_reader_* call. */
struct rk_log_view {
    uint64_t seq;
    int64_t recv_ns;
    uint64_t producer_seq;
    const unsigned char *hash;       /* RK_LOG_HASH_BYTES */
    const void *publisher;
    size_t publisher_len;
    const void *producer;
    size_t producer_len;
    struct rk_log_tags tags;
    const void *event;
    size_t event_len;
    const void *raw;                 /* the whole stored value, for verification */
    size_t raw_len;
};

/* Opens the log in directory `dir`, creating the directory (and its
 * parents, mode 0750) and the log when they are missing. On success *out owns the log; on failure *out is NULL and, when `why` is
 * not NULL, a sentence naming the problem is written to it. */
int rk_log_open(struct rk_log **out, const char *dir, const struct rk_log_options *opt,
                char *why, size_t why_len);

/* When the disk had no room for the writes rk_log_open makes (after a
 * crash, the entity index's trailing part), the log opens all the same,
 * for reading: this returns that write's error (ENOSPC, EDQUOT,
 * MDB_MAP_FULL), 0 when there was none. Those writes are made before the
 * next batch, index write or prune, which fail with the same kind of error
 * until there is room; once one succeeds this returns 0. The writer's
 * thread. */
int rk_log_open_write_error(const struct rk_log *log);

/* Opens an existing log for reading only (another process, such as the
 * running broker, may be writing it). Appends fail with EACCES. Same
 * errors as rk_log_open; ENOENT when `dir` holds no log. */
int rk_log_open_readonly(struct rk_log **out, const char *dir, char *why, size_t why_len);

/* Closes the log and sets *logp to NULL. All readers must be closed first.
 * Writes the entity index entries that wait (rk_log_index_flush). */
void rk_log_destroy(struct rk_log **logp);

/* Appends `n` records in ONE write transaction and commits it (durably in
 * RK_LOG_FULL mode). On success each record's seq and recv_ns are set and
 * the records are visible to readers; on failure nothing was stored and
 * the log's head is unchanged. `now_ns` is the broker clock for the batch.
 * When the map is full it doubles (waiting for open readers to finish
 * their batch) and the batch is written again; MDB_MAP_FULL means the cap
 * (map_max) is reached, ENOSPC that the filesystem is full (also when
 * LMDB saw a short write and the filesystem has less than the batch and
 * 1 MiB free), EIO that the disk failed. */
int rk_log_append(struct rk_log *log, struct rk_log_rec *recs, size_t n, int64_t now_ns);

/* ---- write batches ------------------------------------------------------
 * One write transaction that appends records and updates the state tables
 * a state machine keeps beside them (rk_apply), committed whole or not at
 * all. Writer thread only; at most one batch is open at a time. Every
 * function returns 0 or an error; after any error other than from
 * rk_log_batch_state_get's "not found", abort the batch. MDB_MAP_FULL means
 * the map is full: abort, call rk_log_grow, and build the batch again.
 */
struct rk_log_batch;

enum rk_log_table {
    RK_LOG_AID_REQUESTS = 0,  /* "aid_requests" */
    RK_LOG_AID_IDS,           /* "aid_ids" */
    RK_LOG__TABLES
};

/* Opens the batch; its records get receive time max(now_ns, the last
 * record's), so the same batches with the same now_ns give the same log.
 * *out belongs to the log: it ends with _commit or _abort. */
int rk_log_batch_begin(struct rk_log *log, int64_t now_ns, struct rk_log_batch **out);

/* What a producer's number is, as a batch sees it (its own writes included). */
enum rk_log_number_state {
    RK_LOG_NUMBER_FREE = 0,  /* never used */
    RK_LOG_NUMBER_STORED,    /* an event is stored under it: seq, recv_ns */
    RK_LOG_NUMBER_REFUSED,   /* it was refused for good: code */
};
struct rk_log_number {
    enum rk_log_number_state state;
    uint64_t seq;
    int64_t recv_ns;         /* STORED: the event's; REFUSED: the refusal's */
    char code[RK_LOG_REFUSAL_CODE_MAX + 1];
};

/* Looks up (producer, number) in the batch's transaction. Returns 0 with
 * *out set, or an error (RK_EBADREC for an entry of the wrong size). */
int rk_log_batch_number(struct rk_log_batch *b, const void *producer, size_t len,
                        uint64_t number, struct rk_log_number *out);

/* The highest number `producer` has used, stored or refused (0: none), as
 * the batch sees it. One cursor seek; the broker asks only when the
 * number before an arriving one is free. Returns 0 or an error. */
int rk_log_batch_producer_last(struct rk_log_batch *b, const void *producer, size_t len,
                               uint64_t *last);

/* Records that (producer, number) was refused for good with `code` (1 to
 * RK_LOG_REFUSAL_CODE_MAX bytes), so that the number counts as used and a
 * retry gets the same answer. MDB_KEYEXIST when the number is used. */
int rk_log_batch_number_refused(struct rk_log_batch *b, const void *producer, size_t len,
                                uint64_t number, const char *code);

/* Appends one record: sets rec->seq and rec->recv_ns. A producer number
 * used before gives MDB_KEYEXIST (check with rk_log_batch_number first). */
int rk_log_batch_append(struct rk_log_batch *b, struct rk_log_rec *rec);

/* A state table's value for `key`, as this batch sees it: *found 1 with
 * *val and *val_len (valid until the next call on the batch), or *found 0. */
int rk_log_batch_state_get(struct rk_log_batch *b, enum rk_log_table t, const void *key,
                           size_t key_len, int *found, const void **val, size_t *val_len);

/* Sets a state table's value for `key` (key_len 1..511). */
int rk_log_batch_state_put(struct rk_log_batch *b, enum rk_log_table t, const void *key,
                           size_t key_len, const void *val, size_t val_len);

/* A log of schema 3 gains its state tables: the caller has put every
 * entry in this batch; the commit marks the log schema 4. */
int rk_log_batch_state_built(struct rk_log_batch *b);

/* Records appended so far in this batch. */
size_t rk_log_batch_records(const struct rk_log_batch *b);

/* Commits (durably in RK_LOG_FULL mode) and ends the batch. On failure
 * nothing of it was stored: ENOSPC, EIO, MDB_MAP_FULL as for
 * rk_log_append. */
int rk_log_batch_commit(struct rk_log_batch *b);

/* Ends the batch storing nothing. */
void rk_log_batch_abort(struct rk_log_batch *b);

/* Doubles the map after MDB_MAP_FULL (waiting for this process's readers
 * to finish their batch); MDB_MAP_FULL when map_max is reached. */
int rk_log_grow(struct rk_log *log);

/* 1 when the aid state tables hold the fold of every stored aid event;
 * 0 for a schema-3 log not yet migrated (see rk_log_batch_state_built). */
int rk_log_state_ready(const struct rk_log *log);

/* Last sequence number stored (0 for an empty log) and its chain hash
 * (RK_LOG_HASH_BYTES, zeros for an empty log; valid until the next append).
 * Writer thread only. */
uint64_t rk_log_last_seq(const struct rk_log *log);
const unsigned char *rk_log_head_hash(const struct rk_log *log);

/* Idempotent publishing, committed state. The highest number `producer`
 * has used, stored or refused (0 when none), in *number. Returns 0 or an
 * error. */
int rk_log_producer_last(struct rk_log *log, const void *producer, size_t len, uint64_t *number);

/* Where (producer, number) was stored: 0 with *seq and *recv_ns set,
 * RK_LOG_EOF when no event is stored under that number (never used, or
 * refused), or an error. */
int rk_log_producer_find(struct rk_log *log, const void *producer, size_t len, uint64_t number,
                         uint64_t *seq, int64_t *recv_ns);

/* Current map size in bytes, and how many times it grew since open. */
uint64_t rk_log_map_size(const struct rk_log *log);
unsigned rk_log_map_grown(const struct rk_log *log);
/* Bytes of the map in use: pages up to the highest one written. */
uint64_t rk_log_map_used(const struct rk_log *log);

/* Opens a read snapshot positioned so that the next record returned is the
 * first with sequence >= `from`. A reader pins the pages it sees; end it
 * (rk_log_reader_destroy) after each batch so the file does not grow. */
int rk_log_reader_open(struct rk_log *log, uint64_t from, struct rk_log_reader **out);

/* Next record of the snapshot: 0 and *v filled, RK_LOG_EOF at the end, or an
 * error (RK_LOG_EBADREC for a malformed record). */
int rk_log_reader_next(struct rk_log_reader *r, struct rk_log_view *v);

/* Positions the reader so that the next record returned is the first
 * with sequence >= `seq`. */
void rk_log_reader_seek(struct rk_log_reader *r, uint64_t seq);

/* Positions the reader at the first record received at or after `ns` and
 * stores its sequence in *seq (head + 1 when there is none). O(log n). */
int rk_log_reader_seek_time(struct rk_log_reader *r, int64_t ns, uint64_t *seq);

/* Record `seq` of the reader's snapshot: 0, RK_LOG_EOF when there is none,
 * or an error. Same lifetime rules as rk_log_reader_next. */
int rk_log_reader_get(struct rk_log_reader *r, uint64_t seq, struct rk_log_view *v);

/* The places index: the sequences of the records from the prefectures in
 * `mask` (bit pp set for prefecture pp, 1..47), ascending, from `from` on,
 * as far as the index reaches in the reader's snapshot. Starts (or starts
 * again) the walk: returns 0 with *reach the last sequence the index
 * covers (0 when the log has none: a read-only open of a log no broker of
 * this version has written), or an error. Records after *reach are read
 * from the log itself. */
int rk_log_reader_places_start(struct rk_log_reader *r, uint64_t mask, uint64_t from,
                               uint64_t *reach);

/* The walk's next sequence: 0 and *seq, RK_LOG_EOF when none is left up to
 * the reach, or an error. Retention may have deleted the record since:
 * rk_log_reader_get then says RK_LOG_EOF. */
int rk_log_reader_places_next(struct rk_log_reader *r, uint64_t *seq);

/* The entity key of a record's tags, written to `key`; returns its length,
 * 0 when the record names no entity. kpi.update: 'K', municipality,
 * fiscal year (u16 BE), kpi_id length, kpi_id. aid.*: 'A', request_id
 * length, request_id. */
size_t rk_log_entity_key(const struct rk_log_tags *t, unsigned char key[RK_LOG_ENTITY_KEY_MAX]);

/* Snapshots, exact at any sequence up to the reader's head (the entity
 * index's trailing entries are read from the records; see "entities").
 * Entities are visited in key order. Finds the first entity
 * whose key sorts after `after` (after_len 0: the first entity) that has a
 * record with sequence <= `at`, and fills *e with its key and the sequence
 * of its latest such record. Returns 0, RK_LOG_EOF when no entity is left,
 * or an error. Cost: O(log n) per entity, whatever the entity's history. */
int rk_log_reader_entity_next(struct rk_log_reader *r, const void *after, size_t after_len,
                              uint64_t at, struct rk_log_entity *e);

/* How far the entity index reaches in the reader's snapshot: it holds the
 * entries of every record up to this sequence. For tests and diagnostics;
 * the snapshot functions do not need the index to be complete. */
uint64_t rk_log_reader_indexed(struct rk_log_reader *r);

/* Writes the entity index entries that wait, in a transaction of their own
 * (synced in RK_LOG_FULL mode), when they are due at `now_ns`: the oldest
 * has waited RK_LOG_INDEX_LAG_NS; with `force`, whatever waits. Appends write due entries in their own transaction, so the writer
 * calls this only when idle. Writer thread only. Returns 0 or an error
 * (the entries keep waiting). */
int rk_log_index_flush(struct rk_log *log, int64_t now_ns, int force);

/* The sequence of entity e's record just before `seq`, in *prev: 0, or
 * RK_LOG_EOF when `seq` is its first record. */
int rk_log_reader_entity_prev(struct rk_log_reader *r, const struct rk_log_entity *e,
                              uint64_t seq, uint64_t *prev);

/* A state table's value in the reader's snapshot: *found 1 with *val and
 * *val_len (valid until the next rk_log_reader_* call), or *found 0 (also
 * for a schema-3 log, which has no state tables). */
int rk_log_reader_state_get(struct rk_log_reader *r, enum rk_log_table t, const void *key,
                            size_t key_len, int *found, const void **val, size_t *val_len);

/* The entries of a state table in key order: the first whose key sorts
 * after `after` (after_len 0: the first of all). 0 with *key and *val
 * (valid until the next rk_log_reader_* call), RK_EOF past the last (and
 * for a schema-3 log), or an error. */
int rk_log_reader_state_next(struct rk_log_reader *r, enum rk_log_table t, const void *after,
                             size_t after_len, const void **key, size_t *key_len,
                             const void **val, size_t *val_len);

/* Last sequence number in the reader's snapshot (0 when empty). */
uint64_t rk_log_reader_head(struct rk_log_reader *r);

void rk_log_reader_destroy(struct rk_log_reader **rp);

/* The chain hash that `v` should carry given the previous record's hash. */
void rk_log_chain_hash(const unsigned char prev[RK_LOG_HASH_BYTES],
                       const struct rk_log_view *v, unsigned char out[RK_LOG_HASH_BYTES]);

/* What rk_log_verify found. */
struct rk_log_verdict {
    uint64_t first_seq;                    /* where the chain starts: 1, or after
                                            * what retention deleted */
    uint64_t records;                      /* records checked */
    uint64_t last_seq;                     /* of the last good record */
    unsigned char head[RK_LOG_HASH_BYTES]; /* chain hash of the last good record */
    uint64_t bad_seq;                      /* first bad record, 0 when all are good */
    char why[160];                         /* what is wrong with it */
};

/* Called every `every` records with the count so far; may be NULL. */
typedef void (*rk_log_progress_fn)(uint64_t records, void *arg);

/* Walks the whole log in one read snapshot and checks that sequence numbers
 * run 1, 2, 3... (or on from what retention deleted) without a gap, receive times never go back, every record
 * is well formed, and every chain hash matches. Stops at the first bad
 * record. Returns 0 when the walk finished (look at v->bad_seq for the
 * verdict) or an LMDB error when it could not read. */
int rk_log_verify(struct rk_log *log, struct rk_log_verdict *v, rk_log_progress_fn progress,
                  uint64_t every, void *arg);

/* As rk_log_verify, stopping after the record `to_seq` (0: the end), so
 * that v->head is the chain hash at to_seq: what an auditor compares with
 * a head written down earlier. v->last_seq < to_seq when the log ends
 * before it. */
int rk_log_verify_to(struct rk_log *log, uint64_t to_seq, struct rk_log_verdict *v,
                     rk_log_progress_fn progress, uint64_t every, void *arg);

/* Retention. Deletes the oldest records in ONE write transaction, at most
 * `max` of them: those received before `before_ns` (0: no age bound), and
 * more while the log's tables use more than `max_bytes` of pages (0: no
 * size bound). Their index entries go with them, so a snapshot no longer
 * sees them and a retry of a deleted producer number is stored anew. The
 * newest record always stays. The last deleted record's sequence and chain
 * hash are kept in "meta" ("pruned"), and rk_log_verify starts the chain
 * from there. Freed pages are reused by LMDB; the file does not shrink.
 * Writer thread only. Returns 0 with *deleted set, or an error (nothing
 * deleted). Call again while *deleted == max. */
int rk_log_prune(struct rk_log *log, int64_t before_ns, uint64_t max_bytes, size_t max,
                 uint64_t *deleted);

/* ---- identity
 * Every log has an identity, made at random when the log is made, and
 * made anew when an open for writing finds that the file is not the one
 * the last writer left: a restored backup or a copy (rk_log_identity.c).
 * Two logs with one identity share their history up to the head of the
 * shorter one; with different identities, sequence numbers of one say
 * nothing about the other. */

/* The identity as 32 lowercase hex digits; "" for a read-only open of a
 * log no broker with identities has written. Owned by the log; set at
 * open, never changed after, so any thread may read it. */
const char *rk_log_id(const struct rk_log *log);

/* Why this open gave the log a new identity ("new log", "a restored
 * backup", ...), or NULL when it kept the one it had. Static string. */
const char *rk_log_id_reason(const struct rk_log *log);

/* The identity it had before this open gave it a new one ("" if none). */
const char *rk_log_id_previous(const struct rk_log *log);

/* Why the marker beside data.mdb could not be written at this open (a
 * full disk), or NULL. The log works; the next open gives it a new
 * identity. Static to the log. */
const char *rk_log_id_marker_error(const struct rk_log *log);

/* The writer epoch: opens for writing and clean closes, counted since the
 * identity was made. */
uint64_t rk_log_epoch(const struct rk_log *log);

/* Text for any error these functions return. Static string. */
const char *rk_log_strerror(int err);

#endif

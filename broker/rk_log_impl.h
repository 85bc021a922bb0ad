/*
 * rk_log_impl.h - what the files of the log library share: the on-disk
 * record layout, the structs behind rk_log.h's opaque types, and the
 * functions one file calls in another. Not installed, not for callers of
 * rk_log.h. The library is three files:
 *   rk_log.c         the core: environment, schema, write batches, producer
 *                    numbers, state tables, readers, retention;
 *   rk_log_record.c  the record format and the hash chain, verification;
 *   rk_log_index.c   the entity and places indexes, which trail the records.
 */
#ifndef RK_LOG_IMPL_H
#define RK_LOG_IMPL_H

#include "rk_log.h"
#include "rk_muni.h"

#include <lmdb.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* The record layout of rk_log.h's "events" table. */
#define REC_FORMAT 1
#define REC_HDR 66
#define OFF_PRODLEN 1
#define OFF_PUBLEN 2
#define OFF_EVLEN 4
#define OFF_RECV 8
#define OFF_PSEQ 16
#define OFF_HASH 24
#define OFF_TYPE 56
#define OFF_ENTLEN 57
#define OFF_FY 58
#define OFF_MUNI 60
#define DEFAULT_MAP_SIZE (256ull << 20)
#define INDEX_QUEUE_MAX 16384   /* entries written together, at the latest */

/* An entity index entry of a stored record, waiting to be written. */
struct index_entry {
    uint64_t seq;
    unsigned char len;
    unsigned char key[RK_LOG_ENTITY_KEY_MAX];
};

/* Entries in memory: the writer's queue, a reader's tail. */
struct entry_list {
    struct index_entry *v;
    size_t n, cap;
};

/* The writer's queue of places index entries: record seq[i] came from
 * prefecture pp[i]. */
struct place_list {
    uint64_t *seq;
    unsigned char *pp;
    size_t n, cap;
};

struct rk_log {
    MDB_env *env;
    /* Growing the map remaps it; no read transaction of this process may be
     * open meanwhile. Readers hold this shared for their lifetime (one
     * replay batch); the writer takes it exclusively to grow. */
    pthread_rwlock_t resize_lock;
    uint64_t map_size, map_max;
    MDB_dbi events;
    MDB_dbi meta;
    MDB_dbi producers;
    MDB_dbi entities;
    MDB_dbi places;
    MDB_dbi state[RK_LOG__TABLES];
    int has_places;     /* 0: a read-only open of a log written before "places" */
    int has_state;      /* 0: a read-only open of a schema-3 log */
    int state_ready;    /* the state tables hold the fold of the records */
    int readonly;
    int open_write_rc;  /* the open could not write (a full disk): its error, until done */
    unsigned grown;
    uint64_t last_seq;
    int64_t last_recv_ns;
    unsigned char head[RK_LOG_HASH_BYTES];
    /* The entity index trails the appends ("indexed" in rk_log.h): the
     * entries of records after `indexed` wait here, oldest since
     * iq_since_ns, until enough gather that writing them in key order
     * dirties far fewer pages than one random insert per append did. */
    struct entry_list iq;
    struct place_list pq;   /* the same, for "places"; written with iq */
    int64_t iq_since_ns;
    uint64_t indexed;
    struct rk_log_batch *open_batch;
    /* rk_log_identity.c: who this log is (rk_log.h, "log_id") */
    char *dir;
    char id_hex[RK_LOG_ID_HEX], prev_hex[RK_LOG_ID_HEX];
    const char *id_why;     /* why it got a new identity at this open; NULL: it kept it */
    uint64_t epoch, inode;
    char marker_error[300];
};

/* The one write transaction in progress; it lives in struct rk_log. */
struct rk_log_batch {
    struct rk_log *log;
    MDB_txn *txn;
    MDB_cursor *cur;
    int64_t now_ns, recv_ns;
    size_t n;                           /* records appended */
    uint64_t bytes;                     /* their size */
    int state_built;
    unsigned char head[RK_LOG_HASH_BYTES];
};

/* A reader's walk of one prefecture's places entries. */
struct place_walk {
    MDB_cursor *cur;
    unsigned pp;
    const unsigned char *seqs;  /* the current chunk, in the map */
    size_t n, i;
};

struct rk_log_reader {
    struct rk_log *log;
    MDB_dbi events;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_cursor *ent;    /* entity index, opened on first use */
    MDB_cursor *get;    /* rk_log_reader_get's, opened on first use */
    uint64_t get_seq;   /* where `get` is, 0 before its first record */
    uint64_t from;
    int started;
    uint64_t head;
    struct place_walk walks[RK_MUNI_PREFECTURES];
    unsigned nwalks;
    uint64_t places_reach;
    /* The entries of the records the index does not reach yet, read from
     * the records and sorted, on the first snapshot call that needs them. */
    uint64_t indexed;
    int tail_read;
    struct entry_list tail;
    MDB_cursor *state;  /* rk_log_reader_state_next's, opened on first use */
    enum rk_log_table state_table;
};

/* ---- rk_log_record.c: the record format and the chain */

/* Decodes the stored value `val` of key `seq`; checks the lengths add up. */
int rk_log__parse_record(uint64_t seq, const MDB_val *val, struct rk_log_view *v);

/* Writes one record straight into the map (MDB_RESERVE) at `seq` and
 * chains it onto `head`, which becomes its hash. */
int rk_log__write_record(MDB_cursor *cur, struct rk_log_rec *rec, uint64_t seq, int64_t recv_ns,
                         unsigned char head[RK_LOG_HASH_BYTES]);

/* ---- rk_log_index.c: the entity and places indexes, trailing the records */

int rk_log__entries_add(struct entry_list *l, const struct rk_log_tags *tags, uint64_t seq);
int rk_log__places_add(struct place_list *l, const struct rk_log_tags *tags, uint64_t seq);
/* Writes the queued entries of records up to `through` and the marks. */
int rk_log__index_write(struct rk_log *log, MDB_txn *txn, uint64_t through);
/* Whether the queued entries are due at now_ns. */
int rk_log__index_due(struct rk_log *log, int64_t now_ns);
void rk_log__queues_clear(struct rk_log *log);
/* At open for writing: queues what the indexes lack, from the records. */
int rk_log__index_catch_up(struct rk_log *log, MDB_txn *txn);
/* Before any write: the writes the open could not make (open_write_rc), in
 * their own transaction. 0 when done or none; else that write's error. */
int rk_log__finish_open(struct rk_log *log);
/* Queued entries: drop those after `last`; keep those in (after, through];
 * drop those up to `through`. */
void rk_log__drop_queued_after(struct rk_log *log, uint64_t last);
void rk_log__keep_queued(struct rk_log *log, uint64_t after, uint64_t through);
void rk_log__drop_queued(struct rk_log *log, uint64_t through);
/* Retention: deletes the places chunks that hold only records up to `through`. */
int rk_log__places_prune(struct rk_log *log, MDB_txn *txn, uint64_t through);
void rk_log__places_close(struct rk_log_reader *r);

/* ---- rk_log_identity.c: the log's identity and the marker beside it */

/* Read-only open: the identity in "meta", if any. */
int rk_log__identity_read(struct rk_log *log, MDB_txn *txn);
/* Open for writing, in the open transaction: keeps or renews the identity
 * and bumps the epoch. */
int rk_log__identity_open(struct rk_log *log, MDB_txn *txn, const char *dir);
/* After that transaction committed: writes the marker (a failure is kept
 * for rk_log_id_marker_error, not returned). */
int rk_log__identity_commit(struct rk_log *log);
/* Clean close: bumps the epoch in both. */
void rk_log__identity_close(struct rk_log *log);

/* ---- rk_log.c: the core */

/* A u64 mark of "meta" into *value, `absent` when there is none. */
int rk_log__read_mark(MDB_txn *txn, MDB_dbi meta, const char *name, uint64_t absent,
                      uint64_t *value, int *present);
int rk_log__write_mark(MDB_txn *txn, MDB_dbi meta, const char *name, uint64_t value);
typedef int (*record_fn)(void *arg, const struct rk_log_view *v);
/* Calls fn for each record from sequence `from` to the end of the log;
 * stops at the first non-zero return, which it returns. */
int rk_log__each_record_from(MDB_txn *txn, MDB_dbi events, uint64_t from, record_fn fn,
                             void *arg);
/* Doubles the map (up to map_max) while no reader of this process is open. */
int rk_log__grow_map(struct rk_log *log);
/* What retention deleted: the last pruned sequence and its chain hash. */
int rk_log__read_pruned(MDB_txn *txn, MDB_dbi meta, uint64_t *seq,
                        unsigned char hash[RK_LOG_HASH_BYTES]);

#endif

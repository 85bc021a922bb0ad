#include "rk_log.h"
#include "rk_be.h"
#include "rk_event.h"
#include "rk_muni.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

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
};


const char *rk_log_strerror(int err)
{
    return rk_strerror(err);
}

/* Decodes the stored value `val` of key `seq`; checks the lengths add up. */
static int parse_record(uint64_t seq, const MDB_val *val, struct rk_log_view *v)
{
    const unsigned char *p = val->mv_data;
    if (val->mv_size < REC_HDR || p[0] != REC_FORMAT)
        return RK_LOG_EBADREC;
    size_t plen = (size_t)rk_be_get(p + OFF_PUBLEN, 2);
    size_t prodlen = p[OFF_PRODLEN];
    size_t entlen = p[OFF_ENTLEN];
    size_t elen = (size_t)rk_be_get(p + OFF_EVLEN, 4);
    if (REC_HDR + plen + prodlen + entlen + elen != val->mv_size)
        return RK_LOG_EBADREC;
    v->seq = seq;
    v->recv_ns = (int64_t)rk_be_get(p + OFF_RECV, 8);
    v->producer_seq = rk_be_get(p + OFF_PSEQ, 8);
    v->hash = p + OFF_HASH;
    v->publisher = p + REC_HDR;
    v->publisher_len = plen;
    v->producer = p + REC_HDR + plen;
    v->producer_len = prodlen;
    v->tags.type = p[OFF_TYPE];
    v->tags.fiscal_year = (uint16_t)rk_be_get(p + OFF_FY, 2);
    memcpy(v->tags.municipality, p + OFF_MUNI, 6);
    v->tags.entity = (const char *)p + REC_HDR + plen + prodlen;
    v->tags.entity_len = entlen;
    v->event = p + REC_HDR + plen + prodlen + entlen;
    v->event_len = elen;
    v->raw = p;
    v->raw_len = val->mv_size;
    return 0;
}

void rk_log_chain_hash(const unsigned char prev[RK_LOG_HASH_BYTES],
                       const struct rk_log_view *v, unsigned char out[RK_LOG_HASH_BYTES])
{
    crypto_generichash_state st;
    unsigned char key[8];
    const unsigned char *raw = v->raw;
    rk_be_put(key, v->seq, 8);
    crypto_generichash_init(&st, NULL, 0, RK_LOG_HASH_BYTES);
    crypto_generichash_update(&st, prev, RK_LOG_HASH_BYTES);
    crypto_generichash_update(&st, key, sizeof key);
    crypto_generichash_update(&st, raw, OFF_HASH);
    crypto_generichash_update(&st, raw + REC_HDR, v->raw_len - REC_HDR);
    crypto_generichash_final(&st, out, RK_LOG_HASH_BYTES);
}

static int write_schema(MDB_txn *txn, MDB_dbi meta, uint32_t schema)
{
    unsigned char buf[4];
    MDB_val k = {6, "schema"}, v = {sizeof buf, buf};
    rk_be_put(buf, schema, 4);
    return mdb_put(txn, meta, &k, &v, 0);
}

/* The schema version in *schema; a new log is made at this build's. */
static int read_schema(MDB_txn *txn, MDB_dbi meta, int create, uint32_t *schema)
{
    MDB_val k = {6, "schema"}, v;
    int rc = mdb_get(txn, meta, &k, &v);
    if (rc == MDB_NOTFOUND && create) {
        *schema = RK_LOG_SCHEMA;
        return write_schema(txn, meta, RK_LOG_SCHEMA);
    }
    if (rc)
        return rc;
    *schema = v.mv_size == 4 ? (uint32_t)rk_be_get(v.mv_data, 4) : 0;
    return 0;
}

/* Checks that this build reads the log: schema 3 (no state tables yet) or 4. */
static int check_schema(struct rk_log *log, MDB_txn *txn, int create, char *why, size_t why_len)
{
    uint32_t schema;
    int rc = read_schema(txn, log->meta, create, &schema);
    if (rc)
        return rc;
    if (schema < RK_LOG_SCHEMA_OLDEST || schema > RK_LOG_SCHEMA) {
        if (why)
            snprintf(why, why_len, "log schema %u is not one this program reads (%d to %d)%s",
                     schema, RK_LOG_SCHEMA_OLDEST, RK_LOG_SCHEMA,
                     schema > RK_LOG_SCHEMA ? ": a newer renkei wrote it; upgrade this one" : "");
        return schema > RK_LOG_SCHEMA ? RK_ESCHEMA : RK_EBADREC;
    }
    log->state_ready = schema == RK_LOG_SCHEMA;
    return 0;
}

static const char *const state_names[RK_LOG__TABLES] = {"aid_requests", "aid_ids"};

/* Loads the head (last seq, its time and hash) so appends continue the chain. */
static int load_head(struct rk_log *log, MDB_txn *txn)
{
    MDB_cursor *cur;
    MDB_val k, v;
    struct rk_log_view view;
    int rc = mdb_cursor_open(txn, log->events, &cur);
    if (rc)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == MDB_NOTFOUND) {
        rc = 0;
        goto out;
    }
    if (rc)
        goto out;
    if (k.mv_size != 8) {
        rc = RK_LOG_EBADREC;
        goto out;
    }
    rc = parse_record(rk_be_get(k.mv_data, 8), &v, &view);
    if (rc)
        goto out;
    log->last_seq = view.seq;
    log->last_recv_ns = view.recv_ns;
    memcpy(log->head, view.hash, RK_LOG_HASH_BYTES);
out:
    mdb_cursor_close(cur);
    return rc;
}

static int entries_add(struct entry_list *l, const struct rk_log_tags *tags, uint64_t seq);
static int places_add(struct place_list *l, const struct rk_log_tags *tags, uint64_t seq);
static int index_write(struct rk_log *log, MDB_txn *txn, uint64_t through);

/* A u64 mark of "meta" into *value, `absent` when there is none. */
static int read_mark(MDB_txn *txn, MDB_dbi meta, const char *name, uint64_t absent,
                     uint64_t *value, int *present)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, meta, &k, &v);
    *value = absent;
    if (present)
        *present = rc != MDB_NOTFOUND;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (v.mv_size != 8)
        return RK_LOG_EBADREC;
    *value = rk_be_get(v.mv_data, 8);
    return 0;
}

static int write_mark(MDB_txn *txn, MDB_dbi meta, const char *name, uint64_t value)
{
    unsigned char buf[8];
    MDB_val k = {strlen(name), (void *)name}, v = {8, buf};
    rk_be_put(buf, value, 8);
    return mdb_put(txn, meta, &k, &v, 0);
}

/* How far the entity index reaches; a log without the key was written by a
 * broker that indexed in the append's transaction, so all of it. */
static int read_indexed(MDB_txn *txn, MDB_dbi meta, uint64_t head, uint64_t *indexed,
                        int *present)
{
    return read_mark(txn, meta, "indexed", head, indexed, present);
}

typedef int (*record_fn)(void *arg, const struct rk_log_view *v);

/* Calls fn for each record from sequence `from` to the end of the log;
 * stops at the first non-zero return, which it returns. */
static int each_record_from(MDB_txn *txn, MDB_dbi events, uint64_t from, record_fn fn,
                            void *arg)
{
    MDB_cursor *cur;
    MDB_val k, v;
    struct rk_log_view view;
    unsigned char key[8];
    int rc = mdb_cursor_open(txn, events, &cur);
    if (rc)
        return rc;
    rk_be_put(key, from, 8);
    k = (MDB_val){8, key};
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8)
            rc = RK_LOG_EBADREC;
        else if (!(rc = parse_record(rk_be_get(k.mv_data, 8), &v, &view)))
            rc = fn(arg, &view);
        if (rc)
            break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

struct catch_up {
    struct rk_log *log;
    MDB_txn *txn;
    uint64_t places;    /* the places index's reach before the catch-up */
};

static void queues_clear(struct rk_log *log)
{
    log->iq.n = 0;
    log->pq.n = 0;
}

static int catch_up_record(void *arg, const struct rk_log_view *v)
{
    struct catch_up *c = arg;
    int rc = 0;
    if (v->seq > c->log->indexed)
        rc = entries_add(&c->log->iq, &v->tags, v->seq);
    if (!rc && v->seq > c->places)
        rc = places_add(&c->log->pq, &v->tags, v->seq);
    if (rc || c->log->iq.n + c->log->pq.n < INDEX_QUEUE_MAX)
        return rc;
    rc = index_write(c->log, c->txn, v->seq);
    queues_clear(c->log);
    return rc;
}

/* After a crash the entries that were waiting are lost with the process;
 * they are read again from the records, which are all there. The places
 * index can reach less far than the entity index: the whole log the first
 * time a log written before it is opened, or what a broker that predates
 * it appended since. That part is read too. */
static int index_catch_up(struct rk_log *log, MDB_txn *txn)
{
    struct catch_up c = {log, txn, 0};
    int present, places_present;
    queues_clear(log); /* a retry after MDB_MAP_FULL must not queue twice */
    int rc = read_indexed(txn, log->meta, log->last_seq, &log->indexed, &present);
    if (!rc)
        rc = read_mark(txn, log->meta, "places", 0, &c.places, &places_present);
    /* Nothing to do, and nothing written: a full disk must not stop a start. */
    if (rc || (present && places_present && log->indexed == log->last_seq &&
               c.places == log->last_seq))
        return rc;
    uint64_t from = (c.places < log->indexed ? c.places : log->indexed) + 1;
    if ((rc = each_record_from(txn, log->events, from, catch_up_record, &c)))
        return rc;
    /* Writes the keys even when nothing waited: without them readers would
     * take the index for complete while the next entries wait. */
    if ((rc = index_write(log, txn, log->last_seq)))
        return rc;
    queues_clear(log);
    log->indexed = log->last_seq;
    return 0;
}

static int open_tables(struct rk_log *log, char *why, size_t why_len)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(log->env, NULL, 0, &txn);
    if (rc)
        return rc;
    rc = mdb_dbi_open(txn, "events", MDB_CREATE, &log->events);
    if (!rc)
        rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &log->meta);
    if (!rc)
        rc = mdb_dbi_open(txn, "producers", MDB_CREATE, &log->producers);
    if (!rc)
        rc = mdb_dbi_open(txn, "entities", MDB_CREATE, &log->entities);
    if (!rc)
        rc = mdb_dbi_open(txn, "places", MDB_CREATE, &log->places);
    for (int t = 0; t < RK_LOG__TABLES && !rc; t++)
        rc = mdb_dbi_open(txn, state_names[t], MDB_CREATE, &log->state[t]);
    log->has_places = rc == 0;
    log->has_state = rc == 0;
    if (!rc)
        rc = check_schema(log, txn, 1, why, why_len);
    if (!rc)
        rc = load_head(log, txn);
    if (!rc)
        rc = index_catch_up(log, txn);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

/* A read-only open finds the tables the writer made; it creates nothing. */
static int open_tables_readonly(struct rk_log *log)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(log->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    rc = mdb_dbi_open(txn, "events", 0, &log->events);
    if (!rc)
        rc = mdb_dbi_open(txn, "meta", 0, &log->meta);
    if (!rc)
        rc = mdb_dbi_open(txn, "producers", 0, &log->producers);
    if (!rc)
        rc = mdb_dbi_open(txn, "entities", 0, &log->entities);
    if (!rc) {
        int places = mdb_dbi_open(txn, "places", 0, &log->places);
        log->has_places = places == 0;
        rc = places == MDB_NOTFOUND ? 0 : places; /* a log from before it */
    }
    if (!rc)
        rc = check_schema(log, txn, 0, NULL, 0);
    log->has_state = log->state_ready;
    for (int t = 0; t < RK_LOG__TABLES && !rc && log->has_state; t++)
        rc = mdb_dbi_open(txn, state_names[t], 0, &log->state[t]);
    if (!rc)
        rc = load_head(log, txn);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn); /* keeps the dbi handles */
}

static int grow_map(struct rk_log *log);

static int open_env(struct rk_log *log, const char *dir, const struct rk_log_options *opt,
                    unsigned flags, char *why, size_t why_len)
{
    int rc = mdb_env_create(&log->env);
    if (rc)
        return rc;
    mdb_env_set_maxdbs(log->env, 16);
    log->map_size = opt && opt->map_size ? opt->map_size : DEFAULT_MAP_SIZE;
    log->map_max = opt ? opt->map_max : 0;
    /* Under a cap, start at a quarter of it so growth is exercised early. */
    if (log->map_max && log->map_size > log->map_max / 4)
        log->map_size = log->map_max / 4 >= (1u << 20) ? log->map_max / 4 : log->map_max;
    rc = mdb_env_set_mapsize(log->env, log->map_size);
    if (!rc)
        rc = mdb_env_open(log->env, dir, flags, 0640);
    if (!rc) {
        /* An existing file may be larger than asked: LMDB adopts its size. */
        MDB_envinfo info;
        mdb_env_info(log->env, &info);
        log->map_size = info.me_mapsize;
    }
    if (rc)
        return rc;
    if (flags & MDB_RDONLY)
        return open_tables_readonly(log);
    /* The first open of a log written before "places" indexes it whole,
     * which can take more room than the map has left. */
    while ((rc = open_tables(log, why, why_len)) == MDB_MAP_FULL && grow_map(log) == 0)
        ;
    return rc;
}

int rk_log_open_readonly(struct rk_log **out, const char *dir, char *why, size_t why_len)
{
    struct rk_log *log;
    int rc;

    *out = NULL;
    if (why && why_len)
        why[0] = '\0';
    if (sodium_init() < 0)
        return ENOSYS;
    log = calloc(1, sizeof *log);
    if (!log)
        abort();
    log->readonly = 1;
    pthread_rwlock_init(&log->resize_lock, NULL);
    rc = open_env(log, dir, NULL, MDB_NOTLS | MDB_RDONLY, why, why_len);
    if (rc) {
        if (why && why_len)
            snprintf(why, why_len, "cannot read a log in %s: %s", dir,
                     rc == MDB_NOTFOUND ? "it holds no renkei log" : rk_log_strerror(rc));
        if (log->env)
            mdb_env_close(log->env);
        free(log);
        return rc;
    }
    *out = log;
    return 0;
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir(buf, 0750) != 0 && errno != EEXIST)
        return errno;
    return 0;
}

int rk_log_open(struct rk_log **out, const char *dir, const struct rk_log_options *opt,
                char *why, size_t why_len)
{
    struct rk_log *log = NULL;
    unsigned flags = MDB_NOTLS;
    int rc;

    *out = NULL;
    if (why && why_len)
        why[0] = '\0';
    if (sodium_init() < 0)
        return ENOSYS;
    if ((rc = make_dirs(dir)) != 0) {
        if (why && why_len)
            snprintf(why, why_len, "cannot create the data directory %s: %s", dir, strerror(rc));
        return rc;
    }
    log = calloc(1, sizeof *log);
    if (!log)
        abort();
    pthread_rwlock_init(&log->resize_lock, NULL);
    if (opt && opt->durability == RK_LOG_OS)
        flags |= MDB_NOSYNC;
    rc = open_env(log, dir, opt, flags, why, why_len);
    if (rc)
        goto fail;
    *out = log;
    return 0;
fail:
    if (why && why_len && !why[0])
        snprintf(why, why_len, "cannot open log in %s: %s", dir, rk_log_strerror(rc));
    if (log->env)
        mdb_env_close(log->env);
    free(log);
    return rc;
}

void rk_log_destroy(struct rk_log **logp)
{
    struct rk_log *log = *logp;
    if (!log)
        return;
    /* Saves the next start the catch-up; a failure here only costs that. */
    rk_log_index_flush(log, 0, 1);
    mdb_env_close(log->env);
    free(log->iq.v);
    free(log->pq.seq);
    free(log->pq.pp);
    pthread_rwlock_destroy(&log->resize_lock);
    free(log);
    *logp = NULL;
}

uint64_t rk_log_last_seq(const struct rk_log *log)
{
    return log->last_seq;
}

const unsigned char *rk_log_head_hash(const struct rk_log *log)
{
    return log->head;
}

/* Key of the producer index: the id, a NUL (ids never hold one), the
 * number big-endian, so one producer's numbers sort together and in order. */
static size_t producer_key(unsigned char *key, const void *producer, size_t len, uint64_t number)
{
    memcpy(key, producer, len);
    key[len] = 0;
    rk_be_put(key + len + 1, number, 8);
    return len + 9;
}

/* Indexes (producer, number) -> (seq, recv_ns), in the append's transaction. */
static int index_producer(struct rk_log *log, MDB_txn *txn, const struct rk_log_rec *rec)
{
    unsigned char key[RK_LOG_PRODUCER_MAX + 9], val[16];
    MDB_val k = {producer_key(key, rec->producer, rec->producer_len, rec->producer_seq), key};
    MDB_val v = {sizeof val, val};
    rk_be_put(val, rec->seq, 8);
    rk_be_put(val + 8, (uint64_t)rec->recv_ns, 8);
    return mdb_put(txn, log->producers, &k, &v, MDB_NOOVERWRITE);
}

size_t rk_log_entity_key(const struct rk_log_tags *t, unsigned char key[RK_LOG_ENTITY_KEY_MAX])
{
    size_t n = 0;
    if (t->entity_len == 0 || t->entity_len > RK_LOG_ENTITY_MAX)
        return 0;
    if (t->type == RK_EV_KPI_UPDATE) {
        key[n++] = 'K';
        memcpy(key + n, t->municipality, 6);
        n += 6;
        rk_be_put(key + n, t->fiscal_year, 2);
        n += 2;
    } else {
        key[n++] = 'A';
    }
    /* The length byte makes no entity's key a prefix of another's. */
    key[n++] = (unsigned char)t->entity_len;
    memcpy(key + n, t->entity, t->entity_len);
    return n + t->entity_len;
}

static int entries_add(struct entry_list *l, const struct rk_log_tags *tags, uint64_t seq)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        struct index_entry *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    struct index_entry *e = &l->v[l->n];
    size_t n = rk_log_entity_key(tags, e->key);
    if (n == 0)
        return 0;
    e->len = (unsigned char)n;
    e->seq = seq;
    l->n++;
    return 0;
}

static int places_add(struct place_list *l, const struct rk_log_tags *tags, uint64_t seq)
{
    int pp = rk_muni_prefecture(tags->municipality);
    if (!pp)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        uint64_t *s = realloc(l->seq, cap * sizeof *s);
        if (!s)
            return ENOMEM;
        l->seq = s;
        unsigned char *p = realloc(l->pp, cap);
        if (!p)
            return ENOMEM;
        l->pp = p;
        l->cap = cap;
    }
    l->seq[l->n] = seq;
    l->pp[l->n++] = (unsigned char)pp;
    return 0;
}

/* Writes the waiting places entries: for each prefecture, one chunk keyed
 * (pp, its first sequence) whose value is its sequences in order, u64 BE.
 * A bucket pass keeps each prefecture's sequences in the queue's order,
 * which is the log's. */
static int places_write(struct rk_log *log, MDB_txn *txn)
{
    const struct place_list *q = &log->pq;
    size_t start[RK_MUNI_PREFECTURES + 2] = {0};
    unsigned char key[9];
    int rc = 0;
    if (q->n == 0)
        return 0;
    unsigned char *buf = malloc(q->n * 8);
    if (!buf)
        return ENOMEM;
    for (size_t i = 0; i < q->n; i++)
        start[q->pp[i] + 1]++;
    for (unsigned pp = 1; pp <= RK_MUNI_PREFECTURES + 1; pp++)
        start[pp] += start[pp - 1];
    size_t at[RK_MUNI_PREFECTURES + 1];
    memcpy(at, start, sizeof at);
    for (size_t i = 0; i < q->n; i++)
        rk_be_put(buf + 8 * at[q->pp[i]]++, q->seq[i], 8);
    for (unsigned pp = 1; pp <= RK_MUNI_PREFECTURES && !rc; pp++) {
        size_t n = start[pp + 1] - start[pp];
        if (n == 0)
            continue;
        key[0] = (unsigned char)pp;
        memcpy(key + 1, buf + 8 * start[pp], 8);
        MDB_val k = {sizeof key, key}, v = {8 * n, buf + 8 * start[pp]};
        rc = mdb_put(txn, log->places, &k, &v, 0);
    }
    free(buf);
    return rc;
}

static int key_cmp(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0; /* `after` is NULL for the first entity */
    return c ? c : (alen > blen) - (alen < blen);
}

/* The order of the index's keys. No entity key is a prefix of another, so
 * comparing the keys then the sequences is LMDB's memcmp order of
 * key || sequence. */
static int entry_cmp(const void *a, const void *b)
{
    const struct index_entry *x = a, *y = b;
    int c = key_cmp(x->key, x->len, y->key, y->len);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Writes the waiting entries in key order, where each put through the
 * cursor mostly lands on the page the last one dirtied, and records that
 * the index reaches `through`. The caller empties the queue once the
 * transaction commits. The value of an entry is empty. */
static int index_write(struct rk_log *log, MDB_txn *txn, uint64_t through)
{
    unsigned char key[RK_LOG_ENTITY_KEY_MAX + 8];
    MDB_cursor *cur;
    MDB_val k, v = {0, NULL};
    int rc = mdb_cursor_open(txn, log->entities, &cur);
    if (rc)
        return rc;
    /* The queue's order does not matter: sort it in place. */
    if (log->iq.n > 1)
        qsort(log->iq.v, log->iq.n, sizeof *log->iq.v, entry_cmp);
    for (size_t i = 0; i < log->iq.n && !rc; i++) {
        const struct index_entry *e = &log->iq.v[i];
        memcpy(key, e->key, e->len);
        rk_be_put(key + e->len, e->seq, 8);
        k = (MDB_val){e->len + 8u, key};
        rc = mdb_cursor_put(cur, &k, &v, 0);
    }
    mdb_cursor_close(cur);
    if (rc || (rc = places_write(log, txn)) ||
        (rc = write_mark(txn, log->meta, "places", through)))
        return rc;
    return write_mark(txn, log->meta, "indexed", through);
}

/* Entries wait until many have gathered, or for RK_LOG_INDEX_LAG_NS. */
static int index_due(struct rk_log *log, int64_t now_ns)
{
    size_t n = log->iq.n + log->pq.n;
    return n >= INDEX_QUEUE_MAX || (n && now_ns - log->iq_since_ns >= RK_LOG_INDEX_LAG_NS);
}

/* Writes one record straight into the map (MDB_RESERVE) and chains it. */
static int append_one(MDB_cursor *cur, struct rk_log_rec *rec, uint64_t seq, int64_t recv_ns,
                      unsigned char head[RK_LOG_HASH_BYTES])
{
    unsigned char key[8];
    MDB_val k = {8, key}, v;
    struct rk_log_view view;
    int rc;

    const struct rk_log_tags *t = &rec->tags;
    if (rec->event_len > UINT32_MAX || rec->publisher_len > UINT16_MAX ||
        rec->producer_len > RK_LOG_PRODUCER_MAX || (rec->producer_len && !rec->producer_seq) ||
        t->entity_len > RK_LOG_ENTITY_MAX)
        return EINVAL;
    rk_be_put(key, seq, 8);
    v.mv_size = REC_HDR + rec->publisher_len + rec->producer_len + t->entity_len + rec->event_len;
    v.mv_data = NULL;
    rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc)
        return rc;
    unsigned char *p = v.mv_data;
    p[0] = REC_FORMAT;
    p[OFF_PRODLEN] = (unsigned char)rec->producer_len;
    rk_be_put(p + OFF_PUBLEN, rec->publisher_len, 2);
    rk_be_put(p + OFF_EVLEN, rec->event_len, 4);
    rk_be_put(p + OFF_RECV, (uint64_t)recv_ns, 8);
    rk_be_put(p + OFF_PSEQ, rec->producer_seq, 8);
    p[OFF_TYPE] = t->type;
    p[OFF_ENTLEN] = (unsigned char)t->entity_len;
    rk_be_put(p + OFF_FY, t->fiscal_year, 2);
    memcpy(p + OFF_MUNI, t->municipality, 6);
    unsigned char *q = p + REC_HDR;
    if (rec->publisher_len)
        memcpy(q, rec->publisher, rec->publisher_len);
    q += rec->publisher_len;
    if (rec->producer_len)
        memcpy(q, rec->producer, rec->producer_len);
    q += rec->producer_len;
    if (t->entity_len)
        memcpy(q, t->entity, t->entity_len);
    q += t->entity_len;
    memcpy(q, rec->event, rec->event_len);
    rc = parse_record(seq, &v, &view);
    if (rc)
        return rc;
    rk_log_chain_hash(head, &view, head);
    memcpy(p + OFF_HASH, head, RK_LOG_HASH_BYTES);
    rec->seq = seq;
    rec->recv_ns = recv_ns;
    return 0;
}

static void drop_queued_after(struct rk_log *log, uint64_t last);
static int classify_write_error(struct rk_log *log, int rc, uint64_t bytes);

int rk_log_batch_begin(struct rk_log *log, int64_t now_ns, struct rk_log_batch **out)
{
    static struct rk_log_batch none;
    *out = &none; /* so that an abort after a failed begin is harmless */
    if (log->readonly)
        return EACCES;
    if (log->open_batch)
        abort(); /* one writer, one batch: a second is a bug */
    struct rk_log_batch *b = calloc(1, sizeof *b);
    if (!b)
        abort();
    b->log = log;
    b->now_ns = now_ns;
    b->recv_ns = now_ns > log->last_recv_ns ? now_ns : log->last_recv_ns;
    memcpy(b->head, log->head, sizeof b->head);
    int rc = mdb_txn_begin(log->env, NULL, 0, &b->txn);
    if (!rc)
        rc = mdb_cursor_open(b->txn, log->events, &b->cur);
    if (rc) {
        if (b->txn)
            mdb_txn_abort(b->txn);
        free(b);
        return rc;
    }
    if (log->iq.n + log->pq.n == 0)
        log->iq_since_ns = now_ns;
    log->open_batch = b;
    *out = b;
    return 0;
}

int rk_log_batch_append(struct rk_log_batch *b, struct rk_log_rec *rec)
{
    struct rk_log *log = b->log;
    int rc = append_one(b->cur, rec, log->last_seq + 1 + b->n, b->recv_ns, b->head);
    if (!rc && rec->producer_len)
        rc = index_producer(log, b->txn, rec);
    if (!rc)
        rc = entries_add(&log->iq, &rec->tags, rec->seq);
    if (!rc)
        rc = places_add(&log->pq, &rec->tags, rec->seq);
    if (!rc) {
        b->n++;
        b->bytes += REC_HDR + rec->event_len + rec->publisher_len + rec->producer_len;
    }
    return rc;
}

size_t rk_log_batch_records(const struct rk_log_batch *b)
{
    return b->n;
}

int rk_log_batch_producer_find(struct rk_log_batch *b, const void *producer, size_t len,
                               uint64_t number, int *found, uint64_t *seq, int64_t *recv_ns)
{
    unsigned char key[RK_LOG_PRODUCER_MAX + 9];
    MDB_val k, v;
    *found = 0;
    if (len == 0 || len > RK_LOG_PRODUCER_MAX)
        return EINVAL;
    k = (MDB_val){producer_key(key, producer, len, number), key};
    int rc = mdb_get(b->txn, b->log->producers, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (v.mv_size != 16)
        return RK_EBADREC;
    *found = 1;
    *seq = rk_be_get(v.mv_data, 8);
    *recv_ns = (int64_t)rk_be_get((unsigned char *)v.mv_data + 8, 8);
    return 0;
}

static int state_get(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_len, int *found,
                     const void **val, size_t *val_len)
{
    MDB_val k = {key_len, (void *)key}, v;
    *found = 0;
    if (key_len == 0 || key_len > 511)
        return EINVAL;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    *found = 1;
    *val = v.mv_data;
    *val_len = v.mv_size;
    return 0;
}

int rk_log_batch_state_get(struct rk_log_batch *b, enum rk_log_table t, const void *key,
                           size_t key_len, int *found, const void **val, size_t *val_len)
{
    if ((unsigned)t >= RK_LOG__TABLES)
        return EINVAL;
    return state_get(b->txn, b->log->state[t], key, key_len, found, val, val_len);
}

int rk_log_batch_state_put(struct rk_log_batch *b, enum rk_log_table t, const void *key,
                           size_t key_len, const void *val, size_t val_len)
{
    MDB_val k = {key_len, (void *)key}, v = {val_len, (void *)val};
    if ((unsigned)t >= RK_LOG__TABLES || key_len == 0 || key_len > 511)
        return EINVAL;
    return mdb_put(b->txn, b->log->state[t], &k, &v, 0);
}

int rk_log_batch_state_built(struct rk_log_batch *b)
{
    b->state_built = 1;
    return write_schema(b->txn, b->log->meta, RK_LOG_SCHEMA);
}

static void batch_end(struct rk_log_batch *b)
{
    b->log->open_batch = NULL;
    free(b);
}

void rk_log_batch_abort(struct rk_log_batch *b)
{
    if (!b->log)
        return; /* the placeholder of a failed begin */
    struct rk_log *log = b->log;
    if (b->cur)
        mdb_cursor_close(b->cur);
    mdb_txn_abort(b->txn);
    /* Out with the batch's entries: by sequence, not by count, since
     * index_write sorts the entity queue in place. */
    drop_queued_after(log, log->last_seq);
    batch_end(b);
}

int rk_log_batch_commit(struct rk_log_batch *b)
{
    struct rk_log *log = b->log;
    mdb_cursor_close(b->cur);
    b->cur = NULL;
    /* Due entries ride along: no commit (and no sync) of their own. With
     * none waiting (records that name no entity or place) the marks move
     * alone. */
    int flush = b->n && (index_due(log, b->now_ns) || log->iq.n + log->pq.n == 0);
    int rc = flush ? index_write(log, b->txn, log->last_seq + b->n) : 0;
    if (rc) {
        rk_log_batch_abort(b);
        return rc;
    }
    rc = mdb_txn_commit(b->txn);
    if (rc) {
        rc = classify_write_error(log, rc, b->bytes);
        drop_queued_after(log, log->last_seq);
        batch_end(b);
        return rc;
    }
    if (b->n) {
        log->last_seq += b->n;
        log->last_recv_ns = b->recv_ns;
        memcpy(log->head, b->head, sizeof b->head);
    }
    if (flush) {
        queues_clear(log);
        log->indexed = log->last_seq;
    }
    if (b->state_built)
        log->state_ready = 1;
    batch_end(b);
    return 0;
}

int rk_log_state_ready(const struct rk_log *log)
{
    return log->state_ready;
}

static int append_batch(struct rk_log *log, struct rk_log_rec *recs, size_t n, int64_t now_ns)
{
    struct rk_log_batch *b;
    if (n == 0)
        return 0;
    int rc = rk_log_batch_begin(log, now_ns, &b);
    for (size_t i = 0; i < n && !rc; i++)
        rc = rk_log_batch_append(b, &recs[i]);
    if (rc) {
        rk_log_batch_abort(b);
        return rc;
    }
    return rk_log_batch_commit(b);
}

/* Doubles the map (up to map_max) while no reader of this process is open.
 * Returns 0, or MDB_MAP_FULL when the cap is reached. */
int rk_log_grow(struct rk_log *log)
{
    return grow_map(log);
}

static int grow_map(struct rk_log *log)
{
    uint64_t want = log->map_size * 2;
    if (log->map_max && want > log->map_max)
        want = log->map_max;
    if (want <= log->map_size)
        return MDB_MAP_FULL;
    pthread_rwlock_wrlock(&log->resize_lock);
    int rc = mdb_env_set_mapsize(log->env, want);
    pthread_rwlock_unlock(&log->resize_lock);
    if (rc)
        return rc;
    log->map_size = want;
    log->grown++;
    return 0;
}

/* LMDB reports a short write as EIO, and a write that stops short is what
 * a full filesystem gives: tell the two apart by the space left. */
static int classify_write_error(struct rk_log *log, int rc, uint64_t bytes)
{
    struct statvfs st;
    int fd;
    uint64_t need = (1u << 20) + bytes;   /* slack for the pages a commit touches */
    if (rc != EIO || mdb_env_get_fd(log->env, &fd) != 0 || fstatvfs(fd, &st) != 0)
        return rc;
    return (uint64_t)st.f_bavail * st.f_frsize < need ? ENOSPC : rc;
}

int rk_log_append(struct rk_log *log, struct rk_log_rec *recs, size_t n, int64_t now_ns)
{
    int rc;
    while ((rc = append_batch(log, recs, n, now_ns)) == MDB_MAP_FULL) {
        /* The batch was aborted whole: grow and write it again. */
        rc = grow_map(log);
        if (rc)
            return rc;
    }
    return rc;
}

static int index_commit(struct rk_log *log)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(log->env, NULL, 0, &txn);
    if (rc)
        return rc;
    if ((rc = index_write(log, txn, log->last_seq))) {
        mdb_txn_abort(txn);
        return rc;
    }
    if ((rc = mdb_txn_commit(txn)))
        return rc;
    queues_clear(log);
    log->indexed = log->last_seq;
    return 0;
}

int rk_log_index_flush(struct rk_log *log, int64_t now_ns, int force)
{
    int rc;
    if (log->readonly || log->indexed == log->last_seq || !(force || index_due(log, now_ns)))
        return 0;
    while ((rc = index_commit(log)) == MDB_MAP_FULL)
        if ((rc = grow_map(log)))
            return rc;
    return rc;
}

uint64_t rk_log_map_size(const struct rk_log *log)
{
    return log->map_size;
}

uint64_t rk_log_map_used(const struct rk_log *log)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(log->env, &info) != 0 || mdb_env_stat(log->env, &st) != 0)
        return 0;
    return ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
}

unsigned rk_log_map_grown(const struct rk_log *log)
{
    return log->grown;
}

int rk_log_reader_open(struct rk_log *log, uint64_t from, struct rk_log_reader **out)
{
    struct rk_log_reader *r = calloc(1, sizeof *r);
    MDB_val k, v;
    int rc;

    if (!r)
        abort();
    *out = NULL;
    pthread_rwlock_rdlock(&log->resize_lock);
    r->log = log;
    rc = mdb_txn_begin(log->env, NULL, MDB_RDONLY, &r->txn);
    if (rc == MDB_MAP_RESIZED) {
        /* Another process (the broker, for --verify) grew the file. */
        mdb_env_set_mapsize(log->env, 0);
        rc = mdb_txn_begin(log->env, NULL, MDB_RDONLY, &r->txn);
    }
    if (rc)
        goto fail;
    r->events = log->events;
    rc = mdb_cursor_open(r->txn, log->events, &r->cur);
    if (rc)
        goto fail;
    rc = mdb_cursor_get(r->cur, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == 8)
        r->head = rk_be_get(k.mv_data, 8);
    else if (rc != MDB_NOTFOUND && rc != 0)
        goto fail;
    r->from = from ? from : 1;
    *out = r;
    return 0;
fail:
    rk_log_reader_destroy(&r);
    return rc;
}

int rk_log_reader_next(struct rk_log_reader *r, struct rk_log_view *view)
{
    unsigned char key[8];
    MDB_val k = {8, key}, v;
    int rc;

    if (!r->started) {
        r->started = 1;
        rk_be_put(key, r->from, 8);
        rc = mdb_cursor_get(r->cur, &k, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(r->cur, &k, &v, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND)
        return RK_LOG_EOF;
    if (rc)
        return rc;
    if (k.mv_size != 8)
        return RK_LOG_EBADREC;
    return parse_record(rk_be_get(k.mv_data, 8), &v, view);
}

int rk_log_reader_state_get(struct rk_log_reader *r, enum rk_log_table t, const void *key,
                            size_t key_len, int *found, const void **val, size_t *val_len)
{
    *found = 0;
    if ((unsigned)t >= RK_LOG__TABLES)
        return EINVAL;
    if (!r->log->has_state)
        return 0;
    return state_get(r->txn, r->log->state[t], key, key_len, found, val, val_len);
}

uint64_t rk_log_reader_head(struct rk_log_reader *r)
{
    return r->head;
}

static void places_close(struct rk_log_reader *r)
{
    for (unsigned i = 0; i < r->nwalks; i++)
        mdb_cursor_close(r->walks[i].cur);
    r->nwalks = 0;
}

void rk_log_reader_destroy(struct rk_log_reader **rp)
{
    struct rk_log_reader *r = *rp;
    if (!r)
        return;
    if (r->cur)
        mdb_cursor_close(r->cur);
    if (r->ent)
        mdb_cursor_close(r->ent);
    if (r->get)
        mdb_cursor_close(r->get);
    places_close(r);
    free(r->tail.v);
    if (r->txn)
        mdb_txn_abort(r->txn);
    if (r->log)
        pthread_rwlock_unlock(&r->log->resize_lock);
    free(r);
    *rp = NULL;
}

/* A few records ahead of where a get left off (a filtered replay asks in
 * ascending order, a few apart), stepping there costs less than a search
 * from the root of the tree. */
#define GET_STEPS_MAX 16

static int get_by_steps(struct rk_log_reader *r, uint64_t seq, MDB_val *k, MDB_val *val)
{
    int rc;
    do {
        if ((rc = mdb_cursor_get(r->get, k, val, MDB_NEXT)))
            return rc;
        if (k->mv_size != 8)
            return RK_LOG_EBADREC;
        r->get_seq = rk_be_get(k->mv_data, 8);
    } while (r->get_seq < seq);
    return r->get_seq == seq ? 0 : MDB_NOTFOUND;
}

int rk_log_reader_get(struct rk_log_reader *r, uint64_t seq, struct rk_log_view *v)
{
    unsigned char key[8];
    MDB_val k = {8, key}, val;
    int rc = r->get ? 0 : mdb_cursor_open(r->txn, r->events, &r->get);
    if (rc)
        return rc;
    if (r->get_seq && seq > r->get_seq && seq - r->get_seq <= GET_STEPS_MAX) {
        rc = get_by_steps(r, seq, &k, &val);
    } else {
        rk_be_put(key, seq, 8);
        rc = mdb_cursor_get(r->get, &k, &val, MDB_SET_KEY);
        r->get_seq = rc == 0 ? seq : 0;
    }
    if (rc == MDB_NOTFOUND)
        return RK_LOG_EOF;
    return rc ? rc : parse_record(seq, &val, v);
}

/* ---- the places index, read */

/* Takes the chunk the cursor just read (rc its result) when it belongs to
 * the walk's prefecture; otherwise the walk is over (seqs NULL). */
static int walk_load(struct place_walk *w, int rc, const MDB_val *k, const MDB_val *v)
{
    w->seqs = NULL;
    w->n = w->i = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (k->mv_size != 9 || *(const unsigned char *)k->mv_data != w->pp)
        return 0;
    if (v->mv_size == 0 || v->mv_size % 8)
        return RK_LOG_EBADREC;
    w->seqs = v->mv_data;
    w->n = v->mv_size / 8;
    return 0;
}

static uint64_t walk_seq(const struct place_walk *w)
{
    return rk_be_get(w->seqs + 8 * w->i, 8);
}

static int walk_step(struct place_walk *w)
{
    MDB_val k, v;
    if (++w->i < w->n)
        return 0;
    return walk_load(w, mdb_cursor_get(w->cur, &k, &v, MDB_NEXT), &k, &v);
}

/* Puts the walk on its first sequence >= from. The chunk that starts
 * before `from` may hold some, so it is looked at first. */
static int walk_start(struct place_walk *w, uint64_t from)
{
    unsigned char key[9];
    MDB_val k = {sizeof key, key}, v;
    key[0] = (unsigned char)w->pp;
    rk_be_put(key + 1, from, 8);
    int rc = mdb_cursor_get(w->cur, &k, &v, MDB_SET_RANGE);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    rc = mdb_cursor_get(w->cur, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
    if ((rc = walk_load(w, rc, &k, &v)))
        return rc;
    if (!w->seqs) { /* no earlier chunk of this prefecture */
        k = (MDB_val){sizeof key, key};
        return walk_load(w, mdb_cursor_get(w->cur, &k, &v, MDB_SET_RANGE), &k, &v);
    }
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rk_be_get(w->seqs + 8 * mid, 8) < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    w->i = lo;
    if (lo < w->n)
        return 0;
    w->i = w->n - 1; /* all before `from`: the next chunk starts after it */
    return walk_step(w);
}

int rk_log_reader_places_start(struct rk_log_reader *r, uint64_t mask, uint64_t from,
                               uint64_t *reach)
{
    int rc = 0;
    places_close(r);
    *reach = r->places_reach = 0;
    if (!r->log->has_places)
        return 0;
    if ((rc = read_mark(r->txn, r->log->meta, "places", 0, &r->places_reach, NULL)))
        return rc;
    for (unsigned pp = 1; pp <= RK_MUNI_PREFECTURES && !rc; pp++) {
        if (!(mask >> pp & 1))
            continue;
        struct place_walk *w = &r->walks[r->nwalks];
        *w = (struct place_walk){.pp = pp};
        if ((rc = mdb_cursor_open(r->txn, r->log->places, &w->cur)))
            break;
        r->nwalks++;
        rc = walk_start(w, from);
    }
    if (rc) {
        places_close(r);
        r->places_reach = 0;
        return rc;
    }
    *reach = r->places_reach;
    return 0;
}

int rk_log_reader_places_next(struct rk_log_reader *r, uint64_t *seq)
{
    struct place_walk *first = NULL;
    for (unsigned i = 0; i < r->nwalks; i++)
        if (r->walks[i].seqs && (!first || walk_seq(&r->walks[i]) < walk_seq(first)))
            first = &r->walks[i];
    if (!first || walk_seq(first) > r->places_reach)
        return RK_LOG_EOF;
    *seq = walk_seq(first);
    return walk_step(first);
}

static int entity_cursor(struct rk_log_reader *r)
{
    return r->ent ? 0 : mdb_cursor_open(r->txn, r->log->entities, &r->ent);
}

/* Index keys are an entity key followed by a big-endian sequence. */
static int split_index_key(const MDB_val *k, size_t *prefix_len, uint64_t *seq)
{
    if (k->mv_size <= 8 || k->mv_size > RK_LOG_ENTITY_KEY_MAX + 8)
        return RK_LOG_EBADREC;
    *prefix_len = k->mv_size - 8;
    *seq = rk_be_get((const unsigned char *)k->mv_data + *prefix_len, 8);
    return 0;
}

/* Moves the index cursor to the first key of `prefix` with a sequence
 * >= `seq` (or past the entity), then one step back: the entity's last
 * record before `seq`. Sets *found to 0 when it has none. */
static int entity_last_before(MDB_cursor *cur, const unsigned char *prefix, size_t len,
                              uint64_t seq, uint64_t *found)
{
    unsigned char key[RK_LOG_ENTITY_KEY_MAX + 8];
    MDB_val k = {len + 8, key}, v;
    size_t plen;
    uint64_t s;
    memcpy(key, prefix, len);
    rk_be_put(key + len, seq, 8);
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    rc = mdb_cursor_get(cur, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
    *found = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc || (rc = split_index_key(&k, &plen, &s)))
        return rc;
    if (plen == len && memcmp(k.mv_data, prefix, len) == 0)
        *found = s;
    return 0;
}

/* rk_log_reader_entity_next over the index alone. */
static int index_next(struct rk_log_reader *r, const void *after, size_t after_len, uint64_t at,
                      struct rk_log_entity *e)
{
    unsigned char key[RK_LOG_ENTITY_KEY_MAX + 8];
    MDB_val k = {after_len + 8, key}, v;
    int rc = entity_cursor(r);
    if (rc)
        return rc;
    if (after_len > RK_LOG_ENTITY_KEY_MAX || at == UINT64_MAX)
        return EINVAL;
    if (after_len)
        memcpy(key, after, after_len);
    memset(key + after_len, 0xff, 8); /* past every record of `after` */
    rc = after_len ? mdb_cursor_get(r->ent, &k, &v, MDB_SET_RANGE)
                   : mdb_cursor_get(r->ent, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if ((rc = split_index_key(&k, &e->key_len, &e->seq)))
            return rc;
        memcpy(e->key, k.mv_data, e->key_len);
        if ((rc = entity_last_before(r->ent, e->key, e->key_len, at + 1, &e->seq)))
            return rc;
        if (e->seq)
            return 0;
        /* Every record of this entity is after `at`: skip to the next. */
        memcpy(key, e->key, e->key_len);
        memset(key + e->key_len, 0xff, 8);
        k = (MDB_val){e->key_len + 8, key};
        rc = mdb_cursor_get(r->ent, &k, &v, MDB_SET_RANGE);
    }
    return rc == MDB_NOTFOUND ? RK_LOG_EOF : rc;
}

/* rk_log_reader_entity_prev over the index alone. */
static int index_prev(struct rk_log_reader *r, const struct rk_log_entity *e, uint64_t seq,
                      uint64_t *prev)
{
    int rc = entity_cursor(r);
    if (rc)
        return rc;
    rc = entity_last_before(r->ent, e->key, e->key_len, seq, prev);
    if (rc == 0 && *prev == 0)
        return RK_LOG_EOF;
    return rc;
}

static int tail_record(void *arg, const struct rk_log_view *v)
{
    return entries_add(arg, &v->tags, v->seq);
}

/* Reads the entries of the records after the index's reach. The index
 * trails by at most INDEX_QUEUE_MAX entries or RK_LOG_INDEX_LAG_NS of
 * appends, so this is a short walk at the end of the log. */
static int read_tail(struct rk_log_reader *r)
{
    int rc;
    if (r->tail_read)
        return 0;
    if ((rc = read_indexed(r->txn, r->log->meta, r->head, &r->indexed, NULL)))
        return rc;
    if (r->indexed < r->head &&
        (rc = each_record_from(r->txn, r->events, r->indexed + 1, tail_record, &r->tail))) {
        r->tail.n = 0;
        return rc;
    }
    if (r->tail.n > 1)
        qsort(r->tail.v, r->tail.n, sizeof *r->tail.v, entry_cmp);
    r->tail_read = 1;
    return 0;
}

/* The first tail entity whose key sorts after `after` and that has a
 * record at or before `at`: 1 with *e filled, or 0. */
static int tail_next(const struct rk_log_reader *r, const void *after, size_t after_len,
                     uint64_t at, struct rk_log_entity *e)
{
    size_t lo = 0, hi = r->tail.n;
    while (lo < hi) { /* the first entry past `after` */
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(r->tail.v[mid].key, r->tail.v[mid].len, after, after_len) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    e->seq = 0;
    for (size_t i = lo; i < r->tail.n; i++) {
        const struct index_entry *t = &r->tail.v[i];
        if (t->seq <= at) {
            memcpy(e->key, t->key, t->len);
            e->key_len = t->len;
            e->seq = t->seq;
        }
        int last_of_entity = i + 1 == r->tail.n || key_cmp(t->key, t->len, r->tail.v[i + 1].key,
                                                          r->tail.v[i + 1].len) != 0;
        if (last_of_entity && e->seq)
            return 1;
    }
    return 0;
}

uint64_t rk_log_reader_indexed(struct rk_log_reader *r)
{
    uint64_t indexed;
    return read_indexed(r->txn, r->log->meta, r->head, &indexed, NULL) ? 0 : indexed;
}

int rk_log_reader_entity_next(struct rk_log_reader *r, const void *after, size_t after_len,
                              uint64_t at, struct rk_log_entity *e)
{
    struct rk_log_entity in_tail;
    int rc = read_tail(r);
    if (rc)
        return rc;
    if (after_len > RK_LOG_ENTITY_KEY_MAX || at == UINT64_MAX)
        return EINVAL;
    rc = index_next(r, after, after_len, at < r->indexed ? at : r->indexed, e);
    if (rc && rc != RK_LOG_EOF)
        return rc;
    if (at <= r->indexed || !tail_next(r, after, after_len, at, &in_tail))
        return rc;
    /* The smaller key comes first; for the same entity the tail's record
     * is the later one. */
    if (rc == RK_LOG_EOF || key_cmp(in_tail.key, in_tail.key_len, e->key, e->key_len) <= 0)
        *e = in_tail;
    return 0;
}

int rk_log_reader_entity_prev(struct rk_log_reader *r, const struct rk_log_entity *e,
                              uint64_t seq, uint64_t *prev)
{
    int rc = read_tail(r);
    if (rc)
        return rc;
    if (e->key_len > RK_LOG_ENTITY_KEY_MAX)
        return EINVAL;
    size_t lo = 0, hi = r->tail.n;
    while (lo < hi) { /* the first tail entry at or after (e->key, seq) */
        size_t mid = lo + (hi - lo) / 2;
        const struct index_entry *t = &r->tail.v[mid];
        int c = key_cmp(t->key, t->len, e->key, e->key_len);
        if (c < 0 || (c == 0 && t->seq < seq))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0 && key_cmp(r->tail.v[lo - 1].key, r->tail.v[lo - 1].len, e->key, e->key_len) == 0) {
        *prev = r->tail.v[lo - 1].seq;
        return 0;
    }
    return index_prev(r, e, seq <= r->indexed ? seq : r->indexed + 1, prev);
}

/* Positions a read-only cursor of the producer index; the caller closes
 * both (done_lookup). */
static int begin_lookup(struct rk_log *log, MDB_txn **txn, MDB_cursor **cur)
{
    int rc = mdb_txn_begin(log->env, NULL, MDB_RDONLY, txn);
    if (rc)
        return rc;
    rc = mdb_cursor_open(*txn, log->producers, cur);
    if (rc)
        mdb_txn_abort(*txn);
    return rc;
}

static void done_lookup(MDB_txn *txn, MDB_cursor *cur)
{
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
}

int rk_log_producer_last(struct rk_log *log, const void *producer, size_t len, uint64_t *number)
{
    unsigned char key[RK_LOG_PRODUCER_MAX + 9];
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    *number = 0;
    if (len == 0 || len > RK_LOG_PRODUCER_MAX)
        return EINVAL;
    rc = begin_lookup(log, &txn, &cur);
    if (rc)
        return rc;
    /* The first key past every "id NUL number" is "id \x01": step back one. */
    memcpy(key, producer, len);
    key[len] = 1;
    k = (MDB_val){len + 1, key};
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == 0 || rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(cur, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
    if (rc == 0 && k.mv_size == len + 9 && memcmp(k.mv_data, producer, len) == 0 &&
        ((unsigned char *)k.mv_data)[len] == 0)
        *number = rk_be_get((unsigned char *)k.mv_data + len + 1, 8);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    done_lookup(txn, cur);
    return rc;
}

int rk_log_producer_find(struct rk_log *log, const void *producer, size_t len, uint64_t number,
                         uint64_t *seq, int64_t *recv_ns)
{
    unsigned char key[RK_LOG_PRODUCER_MAX + 9];
    MDB_txn *txn;
    MDB_val k, v;
    int rc;

    if (len == 0 || len > RK_LOG_PRODUCER_MAX)
        return EINVAL;
    rc = mdb_txn_begin(log->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    k = (MDB_val){producer_key(key, producer, len, number), key};
    rc = mdb_get(txn, log->producers, &k, &v);
    if (rc == 0 && v.mv_size == 16) {
        *seq = rk_be_get(v.mv_data, 8);
        *recv_ns = (int64_t)rk_be_get((unsigned char *)v.mv_data + 8, 8);
    } else if (rc == 0) {
        rc = RK_LOG_EBADREC;
    } else if (rc == MDB_NOTFOUND) {
        rc = RK_LOG_EOF;
    }
    mdb_txn_abort(txn);
    return rc;
}

/* What retention has deleted: the last pruned sequence and its chain hash,
 * so verification can start after it. "pruned" in meta; absent = none. */
static int read_pruned(MDB_txn *txn, MDB_dbi meta, uint64_t *seq, unsigned char hash[RK_LOG_HASH_BYTES])
{
    MDB_val k = {6, "pruned"}, v;
    int rc = mdb_get(txn, meta, &k, &v);
    *seq = 0;
    memset(hash, 0, RK_LOG_HASH_BYTES);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (v.mv_size != 8 + RK_LOG_HASH_BYTES)
        return RK_LOG_EBADREC;
    *seq = rk_be_get(v.mv_data, 8);
    memcpy(hash, (unsigned char *)v.mv_data + 8, RK_LOG_HASH_BYTES);
    return 0;
}

/* Bytes of the pages the log's tables use now (free pages excluded). */
static uint64_t tables_bytes(MDB_txn *txn, const struct rk_log *log)
{
    MDB_dbi dbis[4] = {log->events, log->entities, log->producers, log->places};
    uint64_t total = 0;
    for (int i = 0; i < (log->has_places ? 4 : 3); i++) {
        MDB_stat st;
        if (mdb_stat(txn, dbis[i], &st) == 0)
            total += (uint64_t)st.ms_psize * (st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages);
    }
    return total;
}

/* Deletes the oldest record and its index entries; keeps its hash. */
static int prune_one(struct rk_log *log, MDB_txn *txn, MDB_cursor *cur,
                     const struct rk_log_view *v, unsigned char last_hash[RK_LOG_HASH_BYTES])
{
    unsigned char key[RK_LOG_ENTITY_KEY_MAX + 8 + RK_LOG_PRODUCER_MAX];
    MDB_val k;
    size_t n = rk_log_entity_key(&v->tags, key);
    int rc;
    if (n) {
        rk_be_put(key + n, v->seq, 8);
        k = (MDB_val){n + 8, key};
        if ((rc = mdb_del(txn, log->entities, &k, NULL)) && rc != MDB_NOTFOUND)
            return rc;
    }
    if (v->producer_len) {
        k = (MDB_val){producer_key(key, v->producer, v->producer_len, v->producer_seq), key};
        if ((rc = mdb_del(txn, log->producers, &k, NULL)) && rc != MDB_NOTFOUND)
            return rc;
    }
    memcpy(last_hash, v->hash, RK_LOG_HASH_BYTES);
    return mdb_cursor_del(cur, 0);
}

/* Keeps the queued entries whose sequence is in (after, through]. */
static void keep_queued(struct rk_log *log, uint64_t after, uint64_t through)
{
    size_t kept = 0;
    for (size_t i = 0; i < log->iq.n; i++)
        if (log->iq.v[i].seq > after && log->iq.v[i].seq <= through)
            log->iq.v[kept++] = log->iq.v[i];
    log->iq.n = kept;
    kept = 0;
    for (size_t i = 0; i < log->pq.n; i++)
        if (log->pq.seq[i] > after && log->pq.seq[i] <= through) {
            log->pq.seq[kept] = log->pq.seq[i];
            log->pq.pp[kept++] = log->pq.pp[i];
        }
    log->pq.n = kept;
}

/* Entries still waiting for records that retention deleted must not be
 * written: they would name records that are gone. */
static void drop_queued(struct rk_log *log, uint64_t through)
{
    keep_queued(log, through, UINT64_MAX);
}

static void drop_queued_after(struct rk_log *log, uint64_t last)
{
    keep_queued(log, 0, last);
}

/* Puts the cursor on prefecture pp's first chunk when retention deleted
 * every record in it (through `through`): 0, or MDB_NOTFOUND. */
static int places_stale_chunk(MDB_cursor *cur, unsigned pp, uint64_t through)
{
    unsigned char key[9] = {(unsigned char)pp};
    MDB_val k = {sizeof key, key}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc)
        return rc;
    if (k.mv_size != 9 || *(const unsigned char *)k.mv_data != pp || v.mv_size < 8 ||
        rk_be_get((const unsigned char *)v.mv_data + v.mv_size - 8, 8) > through)
        return MDB_NOTFOUND;
    return 0;
}

/* Deletes the places chunks whose every record retention deleted. A chunk
 * that straddles `through` stays: readers skip the records that are gone. */
static int places_prune(struct rk_log *log, MDB_txn *txn, uint64_t through)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, log->places, &cur);
    if (rc)
        return rc;
    for (unsigned pp = 1; pp <= RK_MUNI_PREFECTURES && !rc; pp++) {
        while ((rc = places_stale_chunk(cur, pp, through)) == 0 &&
               (rc = mdb_cursor_del(cur, 0)) == 0)
            ;
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    mdb_cursor_close(cur);
    return rc;
}

int rk_log_prune(struct rk_log *log, int64_t before_ns, uint64_t max_bytes, size_t max,
                 uint64_t *deleted)
{
    unsigned char hash[RK_LOG_HASH_BYTES], kv[8 + RK_LOG_HASH_BYTES];
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val k, val;
    struct rk_log_view v;
    uint64_t pruned;
    int rc;

    *deleted = 0;
    if (log->readonly)
        return EACCES;
    if ((rc = mdb_txn_begin(log->env, NULL, 0, &txn)))
        return rc;
    if ((rc = read_pruned(txn, log->meta, &pruned, hash)) ||
        (rc = mdb_cursor_open(txn, log->events, &cur)))
        goto fail;
    while (*deleted < max && (rc = mdb_cursor_get(cur, &k, &val, MDB_FIRST)) == 0) {
        /* The head stays, so the chain and the next sequence carry on. */
        if (k.mv_size != 8 || rk_be_get(k.mv_data, 8) >= log->last_seq)
            break;
        if ((rc = parse_record(rk_be_get(k.mv_data, 8), &val, &v)))
            goto fail;
        if (!(before_ns && v.recv_ns < before_ns) && !(max_bytes && tables_bytes(txn, log) > max_bytes))
            break;
        if ((rc = prune_one(log, txn, cur, &v, hash)))
            goto fail;
        pruned = v.seq;
        (*deleted)++;
    }
    if (rc && rc != MDB_NOTFOUND)
        goto fail;
    mdb_cursor_close(cur);
    if (*deleted == 0) {
        mdb_txn_abort(txn);
        return 0;
    }
    if ((rc = places_prune(log, txn, pruned)))
        goto fail_txn;
    rk_be_put(kv, pruned, 8);
    memcpy(kv + 8, hash, RK_LOG_HASH_BYTES);
    k = (MDB_val){6, "pruned"};
    val = (MDB_val){sizeof kv, kv};
    if ((rc = mdb_put(txn, log->meta, &k, &val, 0)))
        goto fail_txn;
    if ((rc = mdb_txn_commit(txn))) {
        *deleted = 0;
        return rc;
    }
    drop_queued(log, pruned);
    return 0;
fail:
    if (cur)
        mdb_cursor_close(cur);
fail_txn:
    mdb_txn_abort(txn);
    *deleted = 0;
    return rc;
}

/* One record against what the chain so far predicts; fills v->why. */
static int check_record(struct rk_log_verdict *v, const struct rk_log_view *view,
                        const unsigned char prev[RK_LOG_HASH_BYTES], int64_t prev_recv)
{
    unsigned char want[RK_LOG_HASH_BYTES];
    if (view->seq != v->last_seq + 1) {
        snprintf(v->why, sizeof v->why, "sequence gap: record %llu follows %llu",
                 (unsigned long long)view->seq, (unsigned long long)v->last_seq);
        return -1;
    }
    if (view->recv_ns < prev_recv) {
        snprintf(v->why, sizeof v->why, "receive time goes back from the previous record");
        return -1;
    }
    rk_log_chain_hash(prev, view, want);
    if (memcmp(want, view->hash, RK_LOG_HASH_BYTES) != 0) {
        snprintf(v->why, sizeof v->why,
                 "chain hash does not match: the record or one before it was altered");
        return -1;
    }
    return 0;
}

int rk_log_verify(struct rk_log *log, struct rk_log_verdict *v, rk_log_progress_fn progress,
                  uint64_t every, void *arg)
{
    struct rk_log_reader *r;
    struct rk_log_view view;
    int64_t prev_recv = 0;
    int rc;

    memset(v, 0, sizeof *v);
    rc = rk_log_reader_open(log, 1, &r);
    if (rc)
        return rc;
    /* After retention the chain starts from the last deleted record's hash. */
    rc = read_pruned(r->txn, log->meta, &v->last_seq, v->head);
    v->first_seq = v->last_seq + 1;
    while (rc == 0 && (rc = rk_log_reader_next(r, &view)) == 0) {
        if (check_record(v, &view, v->head, prev_recv) != 0) {
            v->bad_seq = view.seq;
            break;
        }
        memcpy(v->head, view.hash, RK_LOG_HASH_BYTES);
        v->last_seq = view.seq;
        prev_recv = view.recv_ns;
        if (++v->records % (every ? every : UINT64_MAX) == 0 && progress)
            progress(v->records, arg);
    }
    if (rc == RK_LOG_EBADREC) {
        v->bad_seq = v->last_seq + 1;
        snprintf(v->why, sizeof v->why, "record is malformed (its lengths do not add up)");
        rc = 0;
    } else if (rc == RK_LOG_EOF) {
        rc = 0;
    }
    rk_log_reader_destroy(&r);
    return rc;
}

void rk_log_reader_seek(struct rk_log_reader *r, uint64_t seq)
{
    r->from = seq ? seq : 1;
    r->started = 0;
}

int rk_log_reader_seek_time(struct rk_log_reader *r, int64_t ns, uint64_t *seq)
{
    /* Receive times never decrease along the log, so the first record at
     * or after `ns` is found by bisection over sequence numbers. */
    uint64_t lo = 1, hi = r->head + 1;
    unsigned char key[8];
    MDB_val k = {8, key}, v;
    struct rk_log_view view;
    MDB_cursor *first;
    int rc = mdb_cursor_open(r->txn, r->events, &first);
    if (rc)
        return rc;
    if (mdb_cursor_get(first, &k, &v, MDB_FIRST) == 0 && k.mv_size == 8)
        lo = rk_be_get(k.mv_data, 8); /* retention may have deleted the start */
    mdb_cursor_close(first);
    k = (MDB_val){8, key};
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        rk_be_put(key, mid, 8);
        rc = mdb_get(r->txn, r->events, &k, &v);
        if (rc == 0)
            rc = parse_record(mid, &v, &view);
        if (rc)
            return rc;
        if (view.recv_ns < ns)
            lo = mid + 1;
        else
            hi = mid;
    }
    *seq = lo;
    r->from = lo;
    r->started = 0;
    return 0;
}

#include "rk_log_impl.h"
#include "rk_be.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

static int classify_write_error(struct rk_log *log, int rc, uint64_t bytes);

/* A write failed for want of room, not for a fault: another try may work. */
static int no_room(int rc)
{
    return rc == ENOSPC || rc == EDQUOT || rc == MDB_MAP_FULL;
}

const char *rk_log_strerror(int err)
{
    return rk_strerror(err);
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
    rc = rk_log__parse_record(rk_be_get(k.mv_data, 8), &v, &view);
    if (rc)
        goto out;
    log->last_seq = view.seq;
    log->last_recv_ns = view.recv_ns;
    memcpy(log->head, view.hash, RK_LOG_HASH_BYTES);
out:
    mdb_cursor_close(cur);
    return rc;
}

/* A u64 mark of "meta" into *value, `absent` when there is none. */
int rk_log__read_mark(MDB_txn *txn, MDB_dbi meta, const char *name, uint64_t absent,
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

int rk_log__write_mark(MDB_txn *txn, MDB_dbi meta, const char *name, uint64_t value)
{
    unsigned char buf[8];
    MDB_val k = {strlen(name), (void *)name}, v = {8, buf};
    rk_be_put(buf, value, 8);
    return mdb_put(txn, meta, &k, &v, 0);
}

/* Calls fn for each record from sequence `from` to the end of the log;
 * stops at the first non-zero return, which it returns. */
int rk_log__each_record_from(MDB_txn *txn, MDB_dbi events, uint64_t from, record_fn fn,
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
        else if (!(rc = rk_log__parse_record(rk_be_get(k.mv_data, 8), &v, &view)))
            rc = fn(arg, &view);
        if (rc)
            break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int open_tables(struct rk_log *log, const char *dir, char *why, size_t why_len)
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
        rc = rk_log__index_catch_up(log, txn);
    if (!rc)
        rc = rk_log__identity_open(log, txn, dir);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return rc;
    return rk_log__identity_commit(log);
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
    if (!rc)
        rc = rk_log__identity_read(log, txn);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn); /* keeps the dbi handles */
}

/* The disk had no room for the open's own writes (the index catch-up after
 * a crash, say): the log opens for reading all the same, and those writes
 * wait for the first write (rk_log__finish_open). A log that does not
 * exist yet cannot be made: then the open fails with `rc`. */
static int open_tables_deferred(struct rk_log *log, int rc)
{
    MDB_txn *txn;
    int present, err = open_tables_readonly(log);
    if (err)
        return err == MDB_NOTFOUND ? rc : err;
    if ((err = mdb_txn_begin(log->env, NULL, MDB_RDONLY, &txn)))
        return err;
    err = rk_log__read_mark(txn, log->meta, "indexed", log->last_seq, &log->indexed, &present);
    mdb_txn_abort(txn);
    if (err)
        return err;
    log->open_write_rc = rc;
    return 0;
}

int rk_log__finish_open(struct rk_log *log)
{
    MDB_txn *txn;
    int rc;
    if (!log->open_write_rc)
        return 0;
    do {
        if ((rc = mdb_txn_begin(log->env, NULL, 0, &txn)))
            break;
        if ((rc = rk_log__index_catch_up(log, txn)))
            mdb_txn_abort(txn);
        else
            rc = mdb_txn_commit(txn);
    } while (rc == MDB_MAP_FULL && rk_log__grow_map(log) == 0);
    if (rc) {
        rk_log__queues_clear(log);
        return classify_write_error(log, rc, 0);
    }
    log->open_write_rc = 0;
    return 0;
}

int rk_log_open_write_error(const struct rk_log *log)
{
    return log->open_write_rc;
}

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
    while ((rc = open_tables(log, dir, why, why_len)) == MDB_MAP_FULL &&
           rk_log__grow_map(log) == 0) {
        free(log->dir); /* open_tables starts again */
        log->dir = NULL;
    }
    rc = classify_write_error(log, rc, 0);
    if (no_room(rc))
        rc = open_tables_deferred(log, rc);
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
    free(log->dir);
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
    rk_log__identity_close(log);
    mdb_env_close(log->env);
    free(log->dir);
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
    int rc = rk_log__finish_open(log);
    if (!rc)
        rc = mdb_txn_begin(log->env, NULL, 0, &b->txn);
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
    int rc = rk_log__write_record(b->cur, rec, log->last_seq + 1 + b->n, b->recv_ns, b->head);
    if (!rc && rec->producer_len)
        rc = index_producer(log, b->txn, rec);
    if (!rc)
        rc = rk_log__entries_add(&log->iq, &rec->tags, rec->seq);
    if (!rc)
        rc = rk_log__places_add(&log->pq, &rec->tags, rec->seq);
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

/* One producers entry's value: an event's (seq, recv_ns), or a refusal's
 * (0, recv_ns, code). */
static int parse_number(const MDB_val *v, struct rk_log_number *out)
{
    const unsigned char *p = v->mv_data;
    if (v->mv_size < 16 || v->mv_size > 16 + RK_LOG_REFUSAL_CODE_MAX)
        return RK_EBADREC;
    out->seq = rk_be_get(p, 8);
    out->recv_ns = (int64_t)rk_be_get(p + 8, 8);
    out->code[0] = '\0';
    if ((out->seq == 0) != (v->mv_size > 16))
        return RK_EBADREC;
    out->state = out->seq ? RK_LOG_NUMBER_STORED : RK_LOG_NUMBER_REFUSED;
    memcpy(out->code, p + 16, v->mv_size - 16);
    out->code[v->mv_size - 16] = '\0';
    return 0;
}

int rk_log_batch_number(struct rk_log_batch *b, const void *producer, size_t len,
                        uint64_t number, struct rk_log_number *out)
{
    unsigned char key[RK_LOG_PRODUCER_MAX + 9];
    MDB_val k, v;
    *out = (struct rk_log_number){.state = RK_LOG_NUMBER_FREE};
    if (len == 0 || len > RK_LOG_PRODUCER_MAX)
        return EINVAL;
    k = (MDB_val){producer_key(key, producer, len, number), key};
    int rc = mdb_get(b->txn, b->log->producers, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    return rc ? rc : parse_number(&v, out);
}

int rk_log_batch_number_refused(struct rk_log_batch *b, const void *producer, size_t len,
                                uint64_t number, const char *code)
{
    unsigned char key[RK_LOG_PRODUCER_MAX + 9], val[16 + RK_LOG_REFUSAL_CODE_MAX];
    size_t n = strlen(code);
    if (len == 0 || len > RK_LOG_PRODUCER_MAX || number == 0 || n == 0 ||
        n > RK_LOG_REFUSAL_CODE_MAX)
        return EINVAL;
    MDB_val k = {producer_key(key, producer, len, number), key}, v = {16 + n, val};
    rk_be_put(val, 0, 8);
    rk_be_put(val + 8, (uint64_t)b->recv_ns, 8);
    memcpy(val + 16, code, n);
    return mdb_put(b->txn, b->log->producers, &k, &v, MDB_NOOVERWRITE);
}

/* The highest number of `producer` under an open cursor: the first key
 * past every "id NUL number" is "id \x01", so step back one from there. */
static int producer_last_at(MDB_cursor *cur, const void *producer, size_t len, uint64_t *last)
{
    unsigned char key[RK_LOG_PRODUCER_MAX + 1];
    MDB_val k, v;
    *last = 0;
    if (len == 0 || len > RK_LOG_PRODUCER_MAX)
        return EINVAL;
    memcpy(key, producer, len);
    key[len] = 1;
    k = (MDB_val){len + 1, key};
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == 0 || rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(cur, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
    if (rc == 0 && k.mv_size == len + 9 && memcmp(k.mv_data, producer, len) == 0 &&
        ((unsigned char *)k.mv_data)[len] == 0)
        *last = rk_be_get((unsigned char *)k.mv_data + len + 1, 8);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int rk_log_batch_producer_last(struct rk_log_batch *b, const void *producer, size_t len,
                               uint64_t *last)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(b->txn, b->log->producers, &cur);
    if (rc)
        return rc;
    rc = producer_last_at(cur, producer, len, last);
    mdb_cursor_close(cur);
    return rc;
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
     * rk_log__index_write sorts the entity queue in place. */
    rk_log__drop_queued_after(log, log->last_seq);
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
    int flush = b->n && (rk_log__index_due(log, b->now_ns) || log->iq.n + log->pq.n == 0);
    int rc = flush ? rk_log__index_write(log, b->txn, log->last_seq + b->n) : 0;
    if (rc) {
        rk_log_batch_abort(b);
        return rc;
    }
    rc = mdb_txn_commit(b->txn);
    if (rc) {
        rc = classify_write_error(log, rc, b->bytes);
        rk_log__drop_queued_after(log, log->last_seq);
        batch_end(b);
        return rc;
    }
    if (b->n) {
        log->last_seq += b->n;
        log->last_recv_ns = b->recv_ns;
        memcpy(log->head, b->head, sizeof b->head);
    }
    if (flush) {
        rk_log__queues_clear(log);
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
    return rk_log__grow_map(log);
}

int rk_log__grow_map(struct rk_log *log)
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
        rc = rk_log__grow_map(log);
        if (rc)
            return rc;
    }
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
    return rk_log__parse_record(rk_be_get(k.mv_data, 8), &v, view);
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

int rk_log_reader_state_next(struct rk_log_reader *r, enum rk_log_table t, const void *after,
                             size_t after_len, const void **key, size_t *key_len,
                             const void **val, size_t *val_len)
{
    MDB_val k = {after_len, (void *)after}, v;
    int rc;
    if ((unsigned)t >= RK_LOG__TABLES || after_len > 511)
        return EINVAL;
    if (!r->log->has_state)
        return RK_EOF;
    if (r->state && r->state_table != t) {
        mdb_cursor_close(r->state);
        r->state = NULL;
    }
    if (!r->state && (rc = mdb_cursor_open(r->txn, r->log->state[t], &r->state)) != 0)
        return rc;
    r->state_table = t;
    if (after_len == 0) {
        rc = mdb_cursor_get(r->state, &k, &v, MDB_FIRST);
    } else {
        rc = mdb_cursor_get(r->state, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == after_len && memcmp(k.mv_data, after, after_len) == 0)
            rc = mdb_cursor_get(r->state, &k, &v, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND)
        return RK_EOF;
    if (rc)
        return rc;
    *key = k.mv_data;
    *key_len = k.mv_size;
    *val = v.mv_data;
    *val_len = v.mv_size;
    return 0;
}

uint64_t rk_log_reader_head(struct rk_log_reader *r)
{
    return r->head;
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
    if (r->state)
        mdb_cursor_close(r->state);
    rk_log__places_close(r);
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
    return rc ? rc : rk_log__parse_record(seq, &val, v);
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
    MDB_txn *txn;
    MDB_cursor *cur;
    *number = 0;
    if (len == 0 || len > RK_LOG_PRODUCER_MAX)
        return EINVAL;
    int rc = begin_lookup(log, &txn, &cur);
    if (rc)
        return rc;
    rc = producer_last_at(cur, producer, len, number);
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
    struct rk_log_number num;
    if (rc == 0 && (rc = parse_number(&v, &num)) == 0) {
        *seq = num.seq;
        *recv_ns = num.recv_ns;
        if (num.state != RK_LOG_NUMBER_STORED)
            rc = RK_LOG_EOF;
    } else if (rc == MDB_NOTFOUND) {
        rc = RK_LOG_EOF;
    }
    mdb_txn_abort(txn);
    return rc;
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
    if ((rc = rk_log__finish_open(log)) || (rc = mdb_txn_begin(log->env, NULL, 0, &txn)))
        return rc;
    if ((rc = rk_log__read_pruned(txn, log->meta, &pruned, hash)) ||
        (rc = mdb_cursor_open(txn, log->events, &cur)))
        goto fail;
    while (*deleted < max && (rc = mdb_cursor_get(cur, &k, &val, MDB_FIRST)) == 0) {
        /* The head stays, so the chain and the next sequence carry on. */
        if (k.mv_size != 8 || rk_be_get(k.mv_data, 8) >= log->last_seq)
            break;
        if ((rc = rk_log__parse_record(rk_be_get(k.mv_data, 8), &val, &v)))
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
    if ((rc = rk_log__places_prune(log, txn, pruned)))
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
    rk_log__drop_queued(log, pruned);
    return 0;
fail:
    if (cur)
        mdb_cursor_close(cur);
fail_txn:
    mdb_txn_abort(txn);
    *deleted = 0;
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
            rc = rk_log__parse_record(mid, &v, &view);
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

#include "rk_outbox.h"

#include "rk_be.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

/* An agent's backlog is small next to a broker's log; the map only
 * reserves address space, and a town offline for days at a few events a
 * second stays far below it. */
#define OUTBOX_MAP_SIZE (4ull << 30)

/* meta table: counters as u64 big-endian values. */
#define K_PRODUCER "producer"
#define K_NEXT "next"              /* the number the next added event gets */
#define K_ACKED "acked"
#define K_REFUSED "refused"
#define K_LAST_ACK "last_ack"      /* number, seq, recv_ns */

/* A tag is a file name: NAME_MAX bytes at most, well under LMDB's key limit. */
#define TAG_MAX 255

/* A refusal's record: first, last, retry (u64 BE each), attempts (u32
 * BE), flags (u8: 1 = the number was used), code (u8 length + bytes),
 * message (u16 BE length + bytes); a dead letter's value is that record
 * followed by the event's bytes. */
#define REFUSAL_FIXED (8 + 8 + 8 + 4 + 1 + 1 + 2)
#define OFF_FLAGS 28
#define OFF_CODE 29
#define REFUSAL_MAX (REFUSAL_FIXED + RK_OUTBOX_CODE_MAX + RK_OUTBOX_MESSAGE_MAX)

struct rk_outbox {
    MDB_env *env;
    MDB_dbi events;                /* u64 BE number -> event bytes (pending, held or not) */
    MDB_dbi meta;
    MDB_dbi tags;                  /* spool file names whose events are in */
    MDB_dbi held;                  /* u64 BE number -> refusal record */
    MDB_dbi dead;                  /* u64 BE number -> refusal record + event bytes */
    char producer[RK_OUTBOX_PRODUCER_MAX + 1];
};

/* A u64 meta value; 0 when absent. */
static int meta_get(MDB_txn *txn, MDB_dbi meta, const char *key, uint64_t *out, size_t n)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, meta, &k, &v);
    memset(out, 0, n * sizeof *out);
    if (rc == MDB_NOTFOUND)
        return RK_OK;
    if (rc)
        return rc;
    if (v.mv_size != 8 * n)
        return RK_EBADREC;
    for (size_t i = 0; i < n; i++)
        out[i] = rk_be_get((const unsigned char *)v.mv_data + 8 * i, 8);
    return RK_OK;
}

static int meta_put(MDB_txn *txn, MDB_dbi meta, const char *key, const uint64_t *vals, size_t n)
{
    unsigned char buf[24];
    MDB_val k = {strlen(key), (void *)key}, v = {8 * n, buf};
    for (size_t i = 0; i < n; i++)
        rk_be_put(buf + 8 * i, vals[i], 8);
    return mdb_put(txn, meta, &k, &v, 0);
}

/* The producer id: made once, kept for the outbox's life. "agent-" and 16
 * random hex digits: unique among a prefecture's agents without any
 * registry, and within the broker's producer-id syntax. */
static int load_producer(struct rk_outbox *ob, MDB_txn *txn)
{
    MDB_val k = {sizeof K_PRODUCER - 1, K_PRODUCER}, v;
    unsigned char r[8];
    int rc = mdb_get(txn, ob->meta, &k, &v);
    if (rc == 0) {
        if (v.mv_size == 0 || v.mv_size > RK_OUTBOX_PRODUCER_MAX)
            return RK_EBADREC;
        memcpy(ob->producer, v.mv_data, v.mv_size);
        ob->producer[v.mv_size] = '\0';
        return RK_OK;
    }
    if (rc != MDB_NOTFOUND)
        return rc;
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return errno ? errno : EIO;
    snprintf(ob->producer, sizeof ob->producer, "agent-%02x%02x%02x%02x%02x%02x%02x%02x",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
    v.mv_size = strlen(ob->producer);
    v.mv_data = ob->producer;
    return mdb_put(txn, ob->meta, &k, &v, 0);
}

static int open_tables(struct rk_outbox *ob)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(ob->env, NULL, 0, &txn);
    if (rc)
        return rc;
    if ((rc = mdb_dbi_open(txn, "events", MDB_CREATE, &ob->events)) ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &ob->meta)) ||
        (rc = mdb_dbi_open(txn, "tags", MDB_CREATE, &ob->tags)) ||
        /* Absent from outboxes older than dead letters: made here, empty. */
        (rc = mdb_dbi_open(txn, "held", MDB_CREATE, &ob->held)) ||
        (rc = mdb_dbi_open(txn, "dead", MDB_CREATE, &ob->dead)) ||
        (rc = load_producer(ob, txn))) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

int rk_outbox_open(const char *dir, struct rk_outbox **out, char *why, size_t why_len)
{
    struct rk_outbox *ob = calloc(1, sizeof *ob);
    const char *step = "cannot create";
    int rc;

    *out = NULL;
    if (!ob)
        abort();
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = errno;
        goto fail;
    }
    step = "cannot open";
    /* NOSYNC: rk_outbox_add syncs itself; removals need not be durable. */
    if ((rc = mdb_env_create(&ob->env)) || (rc = mdb_env_set_maxdbs(ob->env, 5)) ||
        (rc = mdb_env_set_mapsize(ob->env, OUTBOX_MAP_SIZE)) ||
        (rc = mdb_env_open(ob->env, dir, MDB_NOSYNC, 0600)))
        goto fail;
    step = "cannot initialise";
    if ((rc = open_tables(ob)))
        goto fail;
    *out = ob;
    return RK_OK;
fail:
    if (why && why_len)
        snprintf(why, why_len, "outbox %s: %s: %s", dir, step, rk_strerror(rc));
    rk_outbox_close(&ob);
    return rc;
}

void rk_outbox_close(struct rk_outbox **obp)
{
    if (!obp || !*obp)
        return;
    if ((*obp)->env)
        mdb_env_close((*obp)->env);
    free(*obp);
    *obp = NULL;
}

const char *rk_outbox_producer(const struct rk_outbox *ob)
{
    return ob->producer;
}

/* The LMDB key of a tag; EINVAL for a name no spool file can have, so
 * that LMDB's own size errors never stand for a caller's mistake. */
static int tag_key(const char *tag, MDB_val *k)
{
    size_t n = tag ? strlen(tag) : 0;
    if (n == 0 || n > TAG_MAX)
        return EINVAL;
    k->mv_size = n;
    k->mv_data = (void *)tag;
    return RK_OK;
}

int rk_outbox_add(struct rk_outbox *ob, const void *const *events, const size_t *lens,
                  size_t n, uint64_t *first)
{
    return rk_outbox_add_tagged(ob, events, lens, n, NULL, first);
}

int rk_outbox_add_tagged(struct rk_outbox *ob, const void *const *events, const size_t *lens,
                         size_t n, const char *tag, uint64_t *first)
{
    MDB_txn *txn;
    MDB_val tk;
    uint64_t next;
    unsigned char key[8];
    int rc = tag ? tag_key(tag, &tk) : RK_OK;
    if (rc || (rc = mdb_txn_begin(ob->env, NULL, 0, &txn)))
        return rc;
    if ((rc = meta_get(txn, ob->meta, K_NEXT, &next, 1)))
        goto abort;
    if (next == 0)
        next = 1;
    *first = next;
    for (size_t i = 0; i < n; i++, next++) {
        MDB_val k = {sizeof key, key}, v = {lens[i], (void *)events[i]};
        rk_be_put(key, next, 8);
        if ((rc = mdb_put(txn, ob->events, &k, &v, MDB_APPEND)))
            goto abort;
    }
    if ((rc = meta_put(txn, ob->meta, K_NEXT, &next, 1)))
        goto abort;
    if (tag) {
        MDB_val v = {0, ""};
        if ((rc = mdb_put(txn, ob->tags, &tk, &v, 0)))
            goto abort;
    }
    if ((rc = mdb_txn_commit(txn)))
        return rc;
    return rk_outbox_sync(ob);
abort:
    mdb_txn_abort(txn);
    return rc;
}

int rk_outbox_has_tag(struct rk_outbox *ob, const char *tag, int *found)
{
    MDB_txn *txn;
    MDB_val k, v;
    int rc;

    *found = 0;
    if ((rc = tag_key(tag, &k)) || (rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn)))
        return rc;
    rc = mdb_get(txn, ob->tags, &k, &v);
    mdb_txn_abort(txn);
    if (rc == MDB_NOTFOUND)
        return RK_OK;
    *found = rc == 0;
    return rc;
}

int rk_outbox_drop_tag(struct rk_outbox *ob, const char *tag)
{
    MDB_txn *txn;
    MDB_val k;
    int rc;

    if ((rc = tag_key(tag, &k)) || (rc = mdb_txn_begin(ob->env, NULL, 0, &txn)))
        return rc;
    rc = mdb_del(txn, ob->tags, &k, NULL);
    if (rc && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

int rk_outbox_sync(struct rk_outbox *ob)
{
    return mdb_env_sync(ob->env, 1);
}

static int copy_out(const MDB_val *v, size_t skip, void *buf, size_t cap, size_t *len);

int rk_outbox_next(struct rk_outbox *ob, uint64_t after, uint64_t *number, void *buf,
                   size_t cap, size_t *len)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    unsigned char key[8];
    MDB_val k = {sizeof key, key}, v, h;
    int found = 0, rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    rk_be_put(key, after + 1, 8);
    rc = after == UINT64_MAX ? MDB_NOTFOUND : mdb_cursor_open(txn, ob->events, &cur);
    if (rc == 0) {
        /* Held events are passed over: rk_forward sends them when due. */
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != 8) {
                rc = RK_EBADREC;
                break;
            }
            if ((rc = mdb_get(txn, ob->held, &k, &h)) == MDB_NOTFOUND) {
                found = 1;
                rc = RK_OK;
            }
            if (rc || found)
                break;
        }
        mdb_cursor_close(cur);
    }
    if (rc == MDB_NOTFOUND)
        rc = RK_EOF;
    if (rc == 0 && found) {
        *number = rk_be_get(k.mv_data, 8);
        rc = copy_out(&v, 0, buf, cap, len);
    }
    mdb_txn_abort(txn);
    return rc;
}

/* ---- refusals: held events and dead letters */

static size_t refusal_pack(const struct rk_outbox_refusal *r, unsigned char *out)
{
    size_t cl = strnlen(r->code, RK_OUTBOX_CODE_MAX);
    size_t ml = strnlen(r->message, RK_OUTBOX_MESSAGE_MAX);
    unsigned char *p = out;
    rk_be_put(p, (uint64_t)r->first_ns, 8);
    rk_be_put(p + 8, (uint64_t)r->last_ns, 8);
    rk_be_put(p + 16, (uint64_t)r->retry_ns, 8);
    rk_be_put(p + 24, r->attempts, 4);
    p[OFF_FLAGS] = r->number_used ? 1 : 0;
    p[OFF_CODE] = (unsigned char)cl;
    memcpy(p + OFF_CODE + 1, r->code, cl);
    rk_be_put(p + OFF_CODE + 1 + cl, ml, 2);
    memcpy(p + OFF_CODE + 3 + cl, r->message, ml);
    return REFUSAL_FIXED + cl + ml;
}

/* Reads a refusal record at the start of v; its size in *used. */
static int refusal_unpack(const MDB_val *v, struct rk_outbox_refusal *r, size_t *used)
{
    const unsigned char *p = v->mv_data;
    size_t cl, ml;
    memset(r, 0, sizeof *r);
    if (v->mv_size < REFUSAL_FIXED || p[OFF_FLAGS] > 1 ||
        (cl = p[OFF_CODE]) > RK_OUTBOX_CODE_MAX || v->mv_size < REFUSAL_FIXED + cl ||
        (ml = rk_be_get(p + OFF_CODE + 1 + cl, 2)) > RK_OUTBOX_MESSAGE_MAX ||
        v->mv_size < REFUSAL_FIXED + cl + ml)
        return RK_EBADREC;
    r->first_ns = (int64_t)rk_be_get(p, 8);
    r->last_ns = (int64_t)rk_be_get(p + 8, 8);
    r->retry_ns = (int64_t)rk_be_get(p + 16, 8);
    r->attempts = (uint32_t)rk_be_get(p + 24, 4);
    r->number_used = p[OFF_FLAGS];
    memcpy(r->code, p + OFF_CODE + 1, cl);
    memcpy(r->message, p + OFF_CODE + 3 + cl, ml);
    *used = REFUSAL_FIXED + cl + ml;
    return RK_OK;
}

/* The first entry of `dbi` with a number > after (a cursor walk). */
static int first_after(MDB_txn *txn, MDB_dbi dbi, uint64_t after, uint64_t *number, MDB_val *v)
{
    MDB_cursor *cur;
    unsigned char key[8];
    MDB_val k = {sizeof key, key};
    int rc;
    if (after == UINT64_MAX)
        return RK_EOF;
    rk_be_put(key, after + 1, 8);
    if ((rc = mdb_cursor_open(txn, dbi, &cur)))
        return rc;
    rc = mdb_cursor_get(cur, &k, v, MDB_SET_RANGE);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return RK_EOF;
    if (rc == 0 && k.mv_size != 8)
        return RK_EBADREC;
    if (rc == 0)
        *number = rk_be_get(k.mv_data, 8);
    return rc;
}

static int copy_out(const MDB_val *v, size_t skip, void *buf, size_t cap, size_t *len)
{
    if (v->mv_size - skip > cap)
        return ENOBUFS;
    memcpy(buf, (const unsigned char *)v->mv_data + skip, v->mv_size - skip);
    *len = v->mv_size - skip;
    return RK_OK;
}

int rk_outbox_get(struct rk_outbox *ob, uint64_t number, void *buf, size_t cap, size_t *len)
{
    MDB_txn *txn;
    unsigned char key[8];
    MDB_val k = {sizeof key, key}, v;
    int rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    rk_be_put(key, number, 8);
    rc = mdb_get(txn, ob->events, &k, &v);
    if (rc == MDB_NOTFOUND)
        rc = RK_EOF;
    else if (rc == 0)
        rc = copy_out(&v, 0, buf, cap, len);
    mdb_txn_abort(txn);
    return rc;
}

/* The refusal with the lowest number > `after` in `dbi` (held or dead):
 * its number, the refusal and, unless len is NULL, the event's bytes that
 * follow it in the record (as copy_out). */
static int next_refused(struct rk_outbox *ob, MDB_dbi dbi, uint64_t after, uint64_t *number,
                        struct rk_outbox_refusal *r, void *buf, size_t cap, size_t *len)
{
    MDB_txn *txn;
    MDB_val v;
    size_t used;
    uint64_t n = 0;
    int rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    if ((rc = first_after(txn, dbi, after, &n, &v)) == RK_OK &&
        (rc = refusal_unpack(&v, r, &used)) == RK_OK &&
        (!len || (rc = copy_out(&v, used, buf, cap, len)) == RK_OK))
        *number = n;
    mdb_txn_abort(txn);
    return rc;
}

int rk_outbox_next_held(struct rk_outbox *ob, uint64_t after, uint64_t *number,
                        struct rk_outbox_refusal *r)
{
    return next_refused(ob, ob->held, after, number, r, NULL, 0, NULL);
}

int rk_outbox_held(struct rk_outbox *ob, uint64_t number, struct rk_outbox_refusal *r,
                   int *found)
{
    MDB_txn *txn;
    unsigned char key[8];
    MDB_val k = {sizeof key, key}, v;
    size_t used;
    int rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
    *found = 0;
    memset(r, 0, sizeof *r);
    if (rc)
        return rc;
    rk_be_put(key, number, 8);
    rc = mdb_get(txn, ob->held, &k, &v);
    if (rc == MDB_NOTFOUND)
        rc = RK_OK;
    else if (rc == 0 && (rc = refusal_unpack(&v, r, &used)) == RK_OK)
        *found = 1;
    mdb_txn_abort(txn);
    return rc;
}

/* A write transaction in *txn and pending event `number` in it: its key
 * in key (k points at it), its value in *v. RK_EOF, and no transaction
 * left open, when the event is not pending (or on an error). */
static int begin_pending(struct rk_outbox *ob, uint64_t number, MDB_txn **txn,
                         unsigned char key[8], MDB_val *k, MDB_val *v)
{
    int rc = mdb_txn_begin(ob->env, NULL, 0, txn);
    if (rc)
        return rc;
    rk_be_put(key, number, 8);
    *k = (MDB_val){8, key};
    if ((rc = mdb_get(*txn, ob->events, k, v)) == MDB_NOTFOUND)
        rc = RK_EOF;
    if (rc)
        mdb_txn_abort(*txn);
    return rc;
}

int rk_outbox_hold(struct rk_outbox *ob, uint64_t number, const struct rk_outbox_refusal *r)
{
    MDB_txn *txn;
    unsigned char key[8], rec[REFUSAL_MAX];
    MDB_val k, v;
    int rc = begin_pending(ob, number, &txn, key, &k, &v);
    if (rc)
        return rc == RK_EOF ? RK_OK : rc;
    v.mv_data = rec;
    v.mv_size = refusal_pack(r, rec);
    if ((rc = mdb_put(txn, ob->held, &k, &v, 0))) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

/* A write transaction in *txn and a cursor on `dbi` in it; on an error
 * neither is left open. */
static int begin_cursor(struct rk_outbox *ob, MDB_dbi dbi, MDB_txn **txn, MDB_cursor **cur)
{
    int rc = mdb_txn_begin(ob->env, NULL, 0, txn);
    if (rc)
        return rc;
    if ((rc = mdb_cursor_open(*txn, dbi, cur)))
        mdb_txn_abort(*txn);
    return rc;
}

int rk_outbox_retry_now(struct rk_outbox *ob, uint64_t after, int64_t now_ns)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    unsigned char key[8];
    MDB_val k = {sizeof key, key}, v;
    int rc = begin_cursor(ob, ob->held, &txn, &cur);
    if (rc)
        return rc;
    rk_be_put(key, after + 1, 8);
    for (rc = after == UINT64_MAX ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        unsigned char rec[REFUSAL_MAX];
        struct rk_outbox_refusal r;
        size_t used;
        if ((rc = refusal_unpack(&v, &r, &used)))
            break;
        if (r.retry_ns <= now_ns)
            continue;
        r.retry_ns = now_ns;
        v.mv_data = rec;
        v.mv_size = refusal_pack(&r, rec);
        if ((rc = mdb_cursor_put(cur, &k, &v, MDB_CURRENT)))
            break;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        goto abort;
    return mdb_txn_commit(txn);
abort:
    mdb_txn_abort(txn);
    return rc;
}

/* Adds one to the u64 meta counter `key`. */
static int count_one(MDB_txn *txn, MDB_dbi meta, const char *key)
{
    uint64_t n;
    int rc = meta_get(txn, meta, key, &n, 1);
    if (rc)
        return rc;
    n++;
    return meta_put(txn, meta, key, &n, 1);
}

int rk_outbox_ack(struct rk_outbox *ob, uint64_t number, uint64_t seq, int64_t recv_ns,
                  int *was_held)
{
    MDB_txn *txn;
    unsigned char key[8];
    MDB_val k = {sizeof key, key};
    uint64_t last[3] = {number, seq, (uint64_t)recv_ns};
    int held = 0, rc = mdb_txn_begin(ob->env, NULL, 0, &txn);
    if (was_held)
        *was_held = 0;
    if (rc)
        return rc;
    rk_be_put(key, number, 8);
    rc = mdb_del(txn, ob->events, &k, NULL);
    if (rc == MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return RK_OK;
    }
    if (rc == 0) {
        rc = mdb_del(txn, ob->held, &k, NULL);
        held = rc == 0;
        rc = rc == MDB_NOTFOUND ? RK_OK : rc;
    }
    if (rc || (rc = count_one(txn, ob->meta, K_ACKED)) ||
        (rc = meta_put(txn, ob->meta, K_LAST_ACK, last, 3))) {
        mdb_txn_abort(txn);
        return rc;
    }
    if ((rc = mdb_txn_commit(txn)))
        return rc;
    if (was_held)
        *was_held = held;
    return RK_OK;
}

int rk_outbox_reject(struct rk_outbox *ob, uint64_t number, const struct rk_outbox_refusal *r)
{
    MDB_txn *txn;
    unsigned char key[8];
    MDB_val k, v, d;
    struct rk_outbox_refusal dead = *r;
    int rc = begin_pending(ob, number, &txn, key, &k, &v);
    if (rc)
        return rc == RK_EOF ? RK_OK : rc;
    dead.retry_ns = 0;
    {
        /* Copied first: a put may move the pages the event's bytes are on. */
        unsigned char *rec = malloc(REFUSAL_MAX + v.mv_size);
        if (!rec)
            abort();
        d.mv_size = refusal_pack(&dead, rec);
        memcpy(rec + d.mv_size, v.mv_data, v.mv_size);
        d.mv_size += v.mv_size;
        d.mv_data = rec;
        rc = mdb_put(txn, ob->dead, &k, &d, 0);
        free(rec);
    }
    if (rc || (rc = mdb_del(txn, ob->events, &k, NULL)))
        goto abort;
    rc = mdb_del(txn, ob->held, &k, NULL);
    if ((rc && rc != MDB_NOTFOUND) || (rc = count_one(txn, ob->meta, K_REFUSED)))
        goto abort;
    return mdb_txn_commit(txn);
abort:
    mdb_txn_abort(txn);
    return rc;
}

int rk_outbox_next_dead(struct rk_outbox *ob, uint64_t after, uint64_t *number,
                        struct rk_outbox_refusal *r, void *buf, size_t cap, size_t *len)
{
    return next_refused(ob, ob->dead, after, number, r, buf, cap, len);
}

/* Dead letter k (its value v) back to pending, held with code "" and due
 * now. */
static int resend_one(struct rk_outbox *ob, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
                      int64_t now)
{
    struct rk_outbox_refusal r, again = {.first_ns = now, .last_ns = now, .retry_ns = now};
    unsigned char key[8], rec[REFUSAL_MAX], *event;
    size_t used;
    int rc = refusal_unpack(v, &r, &used);
    MDB_val nk = {sizeof key, key}, e, h = {0, rec};
    if (rc)
        return rc;
    again.number_used = r.number_used; /* then it goes out under a new one */
    /* Copied first: a put may move the pages key and value are on. */
    memcpy(key, k->mv_data, sizeof key);
    e.mv_size = v->mv_size - used;
    if (!(event = malloc(e.mv_size ? e.mv_size : 1)))
        abort();
    memcpy(event, (const unsigned char *)v->mv_data + used, e.mv_size);
    e.mv_data = event;
    rc = mdb_put(txn, ob->events, &nk, &e, 0);
    free(event);
    if (rc)
        return rc;
    h.mv_size = refusal_pack(&again, rec);
    return mdb_put(txn, ob->held, &nk, &h, 0);
}

/* Walks dead letter `number` (0: all), applying resend or discard. */
static int dead_walk(struct rk_outbox *ob, uint64_t number, int resend, int64_t now,
                     uint64_t *count)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    unsigned char key[8];
    MDB_val k = {sizeof key, key}, v;
    int rc = begin_cursor(ob, ob->dead, &txn, &cur);
    *count = 0;
    if (rc)
        return rc;
    for (;;) {
        rk_be_put(key, number, 8);
        k.mv_size = sizeof key;
        k.mv_data = key;
        if ((rc = mdb_cursor_get(cur, &k, &v, number ? MDB_SET_KEY : MDB_FIRST)))
            break;
        if (k.mv_size != 8) {
            rc = RK_EBADREC;
            break;
        }
        if ((resend && (rc = resend_one(ob, txn, &k, &v, now))) || (rc = mdb_cursor_del(cur, 0)))
            break;
        ++*count;
        if (number) {
            rc = MDB_NOTFOUND;
            break;
        }
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND)
        goto abort;
    if ((rc = mdb_txn_commit(txn)))
        *count = 0;
    return rc;
abort:
    *count = 0;
    mdb_txn_abort(txn);
    return rc;
}

int rk_outbox_resend(struct rk_outbox *ob, uint64_t number, int64_t now_ns, uint64_t *moved)
{
    return dead_walk(ob, number, 1, now_ns, moved);
}

int rk_outbox_discard(struct rk_outbox *ob, uint64_t number, uint64_t *deleted)
{
    return dead_walk(ob, number, 0, 0, deleted);
}
/* Moves the value of `from` in `dbi` to `to`, when there is one. */
static int move_value(MDB_txn *txn, MDB_dbi dbi, uint64_t from, uint64_t to)
{
    unsigned char fk[8], tk[8], *copy;
    MDB_val k = {8, fk}, nk = {8, tk}, v;
    rk_be_put(fk, from, 8);
    rk_be_put(tk, to, 8);
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return RK_OK;
    if (rc)
        return rc;
    /* copied first: the put may move the page the value is on */
    if (!(copy = malloc(v.mv_size ? v.mv_size : 1)))
        abort();
    memcpy(copy, v.mv_data, v.mv_size);
    v.mv_data = copy;
    if (!(rc = mdb_del(txn, dbi, &k, NULL)))
        rc = mdb_put(txn, dbi, &nk, &v, MDB_APPEND);
    free(copy);
    return rc;
}

/* The hold moved to `to`: its new number is unused, so a later resend
 * keeps it. */
static int renumber_hold(struct rk_outbox *ob, MDB_txn *txn, uint64_t to)
{
    unsigned char key[8], rec[REFUSAL_MAX];
    struct rk_outbox_refusal r;
    MDB_val k = {sizeof key, key}, v;
    size_t used;
    rk_be_put(key, to, 8);
    int rc = mdb_get(txn, ob->held, &k, &v);
    if (rc == MDB_NOTFOUND)
        return RK_OK;
    if (rc || (rc = refusal_unpack(&v, &r, &used)))
        return rc;
    r.number_used = 0;
    v = (MDB_val){refusal_pack(&r, rec), rec};
    return mdb_put(txn, ob->held, &k, &v, 0);
}

int rk_outbox_renumber(struct rk_outbox *ob, uint64_t number, uint64_t *new_number)
{
    MDB_txn *txn;
    MDB_val k, v;
    unsigned char key[8];
    uint64_t next;
    int rc = mdb_txn_begin(ob->env, NULL, 0, &txn);
    if (rc)
        return rc;
    rk_be_put(key, number, 8);
    k = (MDB_val){sizeof key, key};
    if ((rc = mdb_get(txn, ob->events, &k, &v)) == MDB_NOTFOUND)
        rc = RK_EOF;
    if (rc || (rc = meta_get(txn, ob->meta, K_NEXT, &next, 1)))
        goto abort;
    if ((rc = move_value(txn, ob->events, number, next)) ||
        (rc = move_value(txn, ob->held, number, next)) || (rc = renumber_hold(ob, txn, next)))
        goto abort;
    *new_number = next++;
    if ((rc = meta_put(txn, ob->meta, K_NEXT, &next, 1)))
        goto abort;
    return mdb_txn_commit(txn);
abort:
    mdb_txn_abort(txn);
    return rc;
}

/* The held events' count, earliest retry and last refusal, into *st. */
static int held_status(struct rk_outbox *ob, MDB_txn *txn, struct rk_outbox_status *st)
{
    MDB_cursor *cur;
    MDB_val k, v;
    struct rk_outbox_refusal r;
    size_t used;
    int rc = mdb_cursor_open(txn, ob->held, &cur);
    if (rc)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8 || refusal_unpack(&v, &r, &used)) {
            rc = RK_EBADREC;
            break;
        }
        if (!r.code[0])
            continue; /* moved back by resend, not refused since: pending */
        st->held++;
        if (!st->held_next_ns || r.retry_ns < st->held_next_ns)
            st->held_next_ns = r.retry_ns;
        if (!st->held_last_number || r.last_ns >= st->held_last.last_ns) {
            st->held_last = r;
            st->held_last_number = rk_be_get(k.mv_data, 8);
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? RK_OK : rc;
}

int rk_outbox_status(struct rk_outbox *ob, struct rk_outbox_status *st)
{
    MDB_txn *txn;
    MDB_stat ms, ds;
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t next, last[3];
    int rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    memset(st, 0, sizeof *st);
    memcpy(st->producer, ob->producer, sizeof st->producer);
    if ((rc = mdb_stat(txn, ob->events, &ms)) || (rc = mdb_stat(txn, ob->dead, &ds)) ||
        (rc = meta_get(txn, ob->meta, K_NEXT, &next, 1)) ||
        (rc = meta_get(txn, ob->meta, K_ACKED, &st->acked, 1)) ||
        (rc = meta_get(txn, ob->meta, K_REFUSED, &st->refused, 1)) ||
        (rc = meta_get(txn, ob->meta, K_LAST_ACK, last, 3)) || (rc = held_status(ob, txn, st)))
        goto out;
    st->pending = ms.ms_entries >= st->held ? ms.ms_entries - st->held : 0;
    st->rejected = ds.ms_entries;
    st->last_number = next ? next - 1 : 0;
    st->last_ack_number = last[0];
    st->last_ack_seq = last[1];
    st->last_ack_recv_ns = (int64_t)last[2];
    if ((rc = mdb_cursor_open(txn, ob->events, &cur)))
        goto out;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    mdb_cursor_close(cur);
    if (rc == 0 && k.mv_size != 8)
        rc = RK_EBADREC;
    else if (rc == 0)
        st->first_pending = rk_be_get(k.mv_data, 8);
    rc = rc == MDB_NOTFOUND ? RK_OK : rc;
out:
    mdb_txn_abort(txn);
    return rc;
}

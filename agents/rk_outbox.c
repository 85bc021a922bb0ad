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

struct rk_outbox {
    MDB_env *env;
    MDB_dbi events;                /* u64 BE number -> event bytes */
    MDB_dbi meta;
    MDB_dbi tags;                  /* spool file names whose events are in */
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
    if ((rc = mdb_env_create(&ob->env)) || (rc = mdb_env_set_maxdbs(ob->env, 3)) ||
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

int rk_outbox_next(struct rk_outbox *ob, uint64_t after, uint64_t *number, void *buf,
                   size_t cap, size_t *len)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    unsigned char key[8];
    MDB_val k = {sizeof key, key}, v;
    int rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    rk_be_put(key, after + 1, 8);
    rc = mdb_cursor_open(txn, ob->events, &cur);
    if (rc == 0) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        mdb_cursor_close(cur);
    }
    if (rc == MDB_NOTFOUND)
        rc = RK_EOF;
    else if (rc == 0 && (k.mv_size != 8 || v.mv_size > cap))
        rc = k.mv_size != 8 ? RK_EBADREC : ENOBUFS;
    if (rc == 0) {
        *number = rk_be_get(k.mv_data, 8);
        memcpy(buf, v.mv_data, v.mv_size);
        *len = v.mv_size;
    }
    mdb_txn_abort(txn);
    return rc;
}

int rk_outbox_answer(struct rk_outbox *ob, uint64_t number, int ok, uint64_t seq,
                     int64_t recv_ns)
{
    MDB_txn *txn;
    unsigned char key[8];
    MDB_val k = {sizeof key, key};
    uint64_t count;
    int rc = mdb_txn_begin(ob->env, NULL, 0, &txn);
    if (rc)
        return rc;
    rk_be_put(key, number, 8);
    rc = mdb_del(txn, ob->events, &k, NULL);
    if (rc == MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return RK_OK;
    }
    const char *counter = ok ? K_ACKED : K_REFUSED;
    if (rc || (rc = meta_get(txn, ob->meta, counter, &count, 1)))
        goto abort;
    count++;
    if ((rc = meta_put(txn, ob->meta, counter, &count, 1)))
        goto abort;
    if (ok) {
        uint64_t last[3] = {number, seq, (uint64_t)recv_ns};
        if ((rc = meta_put(txn, ob->meta, K_LAST_ACK, last, 3)))
            goto abort;
    }
    return mdb_txn_commit(txn);
abort:
    mdb_txn_abort(txn);
    return rc;
}

int rk_outbox_status(struct rk_outbox *ob, struct rk_outbox_status *st)
{
    MDB_txn *txn;
    MDB_stat ms;
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t next, last[3];
    int rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    memset(st, 0, sizeof *st);
    memcpy(st->producer, ob->producer, sizeof st->producer);
    if ((rc = mdb_stat(txn, ob->events, &ms)) || (rc = meta_get(txn, ob->meta, K_NEXT, &next, 1)) ||
        (rc = meta_get(txn, ob->meta, K_ACKED, &st->acked, 1)) ||
        (rc = meta_get(txn, ob->meta, K_REFUSED, &st->refused, 1)) ||
        (rc = meta_get(txn, ob->meta, K_LAST_ACK, last, 3)))
        goto out;
    st->pending = ms.ms_entries;
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

#include "rk_lifecycle.h"

#include <errno.h>
#include <lmdb.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rk_lifecycle {
    struct rk_log *log;
    struct rk_aid *cache;
    struct rk_log_batch *batch;     /* the open batch, NULL between batches */
    unsigned char *buf;             /* one encoded request */
    size_t buf_cap;
    int error;                      /* of the last failed miss */
};

static int load_request(struct rk_lifecycle *lc, struct rk_aid *a, const char *request_id)
{
    const void *val;
    size_t len;
    int found;
    if (rk_aid_request_find(a, request_id, NULL) >= 0)
        return 0;
    int rc = rk_log_batch_state_get(lc->batch, RK_LOG_AID_REQUESTS, request_id,
                                    strlen(request_id), &found, &val, &len);
    if (rc || !found)
        return rc;
    return rk_aid_load(a, val, len);
}

/* rk_aid's miss function: an offer or dispatch id leads to its request
 * through "aid_ids"; the request comes in whole. */
static int miss_read(struct rk_lifecycle *lc, struct rk_aid *a, enum rk_aid_id_kind kind,
                     const char *id)
{
    char key[1 + RK_ID_MAX], owner[RK_ID_MAX + 1];
    const void *val;
    size_t len, n = strlen(id);
    int found, rc;
    if (kind == RK_AID_ID_REQUEST)
        return load_request(lc, a, id);
    key[0] = (char)kind;
    memcpy(key + 1, id, n);
    rc = rk_log_batch_state_get(lc->batch, RK_LOG_AID_IDS, key, n + 1, &found, &val, &len);
    if (rc || !found)
        return rc;
    if (len == 0 || len > RK_ID_MAX)
        return RK_EBADREC;
    memcpy(owner, val, len);
    owner[len] = '\0';
    return load_request(lc, a, owner);
}

static int miss(void *arg, struct rk_aid *a, enum rk_aid_id_kind kind, const char *id)
{
    struct rk_lifecycle *lc = arg;
    lc->error = miss_read(lc, a, kind, id);
    return lc->error;
}

int rk_lifecycle_error(const struct rk_lifecycle *lc)
{
    return lc->error;
}

static int put_request(struct rk_lifecycle *lc, const struct rk_aid *a, const char *request_id)
{
    size_t n = rk_aid_request_encode(a, request_id, lc->buf, lc->buf_cap);
    if (n > lc->buf_cap) {
        free(lc->buf);
        lc->buf_cap = n * 2;
        if (!(lc->buf = malloc(lc->buf_cap)))
            abort();
        n = rk_aid_request_encode(a, request_id, lc->buf, lc->buf_cap);
    }
    return rk_log_batch_state_put(lc->batch, RK_LOG_AID_REQUESTS, request_id, strlen(request_id),
                                  lc->buf, n);
}

struct writing {
    struct rk_lifecycle *lc;
    const struct rk_aid *a;
};

static int put_change(void *arg, enum rk_aid_id_kind kind, const char *id, const char *request_id)
{
    struct writing *w = arg;
    char key[1 + RK_ID_MAX];
    size_t n = strlen(id);
    if (kind == RK_AID_ID_REQUEST)
        return put_request(w->lc, w->a, request_id);
    key[0] = (char)kind;
    memcpy(key + 1, id, n);
    return rk_log_batch_state_put(w->lc->batch, RK_LOG_AID_IDS, key, n + 1, request_id,
                                  strlen(request_id));
}

static int write_changes(struct rk_lifecycle *lc, const struct rk_aid *a)
{
    struct writing w = {lc, a};
    return rk_aid_batch_changes(a, put_change, &w);
}

/* ---- migration of a schema-3 log ------------------------------------- */

/* Stored bytes are validated again (rk_aid_event_parse): a log damaged on
 * disk must not be trusted. */
static void fold_record(struct rk_aid *a, const struct rk_log_view *v,
                        struct rk_lifecycle_stats *st)
{
    struct rk_aid_event ev;
    if (v->tags.type < RK_EV_AID_REQUEST)
        return;
    if (rk_aid_event_parse(v->event, v->event_len, &ev, NULL, 0) != RK_V_OK ||
        rk_aid_apply(a, &ev, NULL) != RK_AID_OK) {
        st->refused++;
        return;
    }
    st->folded++;
}

static int fold_log(struct rk_log *log, struct rk_aid *a, rk_lifecycle_progress_fn progress,
                    void *arg, struct rk_lifecycle_stats *st)
{
    struct rk_log_reader *r = NULL;
    struct rk_log_view v;
    uint64_t seen = 0, of = rk_log_last_seq(log);
    int rc = rk_log_reader_open(log, 1, &r);
    while (rc == 0 && (rc = rk_log_reader_next(r, &v)) == 0) {
        fold_record(a, &v, st);
        if (progress && ++seen % 100000 == 0)
            progress(arg, seen, of);
    }
    rk_log_reader_destroy(&r);
    return rc == RK_EOF ? 0 : rc;
}

/* The whole fold, in memory once, stored in one transaction: a crash
 * before its commit leaves a schema-3 log, migrated again next time. */
static int store_fold(struct rk_lifecycle *lc, struct rk_aid *a)
{
    int rc;
    for (;;) {
        rc = rk_log_batch_begin(lc->log, 0, &lc->batch);
        if (!rc)
            rc = write_changes(lc, a);
        if (!rc)
            rc = rk_log_batch_state_built(lc->batch);
        if (!rc) {
            rc = rk_log_batch_commit(lc->batch);
        } else {
            rk_log_batch_abort(lc->batch);
        }
        lc->batch = NULL;
        if (rc != MDB_MAP_FULL || (rc = rk_log_grow(lc->log)) != 0)
            return rc;
    }
}

static int migrate(struct rk_lifecycle *lc, rk_lifecycle_progress_fn progress, void *arg,
                   struct rk_lifecycle_stats *st)
{
    struct rk_aid *a = rk_aid_new();
    rk_aid_begin(a); /* everything folded counts as the batch's change */
    int rc = fold_log(lc->log, a, progress, arg, st);
    st->requests = rk_aid_request_count(a);
    st->migrated = 1;
    if (!rc)
        rc = store_fold(lc, a);
    rk_aid_commit(a);
    rk_aid_destroy(&a);
    /* The fold held every request ever made; give that memory back. */
    malloc_trim(0);
    return rc;
}

int rk_lifecycle_open(struct rk_lifecycle **out, struct rk_log *log,
                      rk_lifecycle_progress_fn progress, void *arg,
                      struct rk_lifecycle_stats *stats)
{
    struct rk_lifecycle_stats st = {0};
    struct rk_lifecycle *lc = calloc(1, sizeof *lc);
    int rc = 0;
    if (!lc)
        abort();
    lc->log = log;
    lc->cache = rk_aid_new();
    rk_aid_set_miss(lc->cache, miss, lc);
    if (!rk_log_state_ready(log))
        rc = migrate(lc, progress, arg, &st);
    if (rc) {
        rk_lifecycle_destroy(&lc);
        *out = NULL;
        return rc;
    }
    if (stats)
        *stats = st;
    *out = lc;
    return 0;
}

void rk_lifecycle_destroy(struct rk_lifecycle **lcp)
{
    if (!lcp || !*lcp)
        return;
    rk_aid_destroy(&(*lcp)->cache);
    free((*lcp)->buf);
    free(*lcp);
    *lcp = NULL;
}

void rk_lifecycle_begin(struct rk_lifecycle *lc, struct rk_log_batch *batch)
{
    lc->batch = batch;
    rk_aid_begin(lc->cache);
}

enum rk_aid_err rk_lifecycle_admit(struct rk_lifecycle *lc, const struct rk_aid_event *ev,
                                   struct rk_aid_refusal *why)
{
    if (ev->type < RK_EV_AID_REQUEST)
        return RK_AID_OK;
    return rk_aid_apply(lc->cache, ev, why);
}

void rk_lifecycle_requester(const struct rk_lifecycle *lc, const char *request_id, char out[7])
{
    struct rk_aid_request_view v;
    out[0] = '\0';
    if (rk_aid_request_find(lc->cache, request_id, &v) >= 0)
        memcpy(out, v.requester, 7);
}

int rk_lifecycle_write(struct rk_lifecycle *lc)
{
    return write_changes(lc, lc->cache);
}

void rk_lifecycle_settle(struct rk_lifecycle *lc, int stored)
{
    if (stored)
        rk_aid_commit(lc->cache);
    else
        rk_aid_rollback(lc->cache);
    lc->batch = NULL;
    /* A cache, not the state: dropping it costs a read per request later. */
    if (rk_aid_request_count(lc->cache) > RK_LIFECYCLE_CACHE_MAX)
        rk_aid_clear(lc->cache);
}

size_t rk_lifecycle_cached(const struct rk_lifecycle *lc)
{
    return rk_aid_request_count(lc->cache);
}

#include "rk_apply.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>

struct rk_apply {
    struct rk_log *log;
    struct rk_lifecycle *lifecycle;
};

int rk_apply_open(struct rk_apply **out, struct rk_log *log,
                  rk_lifecycle_progress_fn progress, void *arg,
                  struct rk_lifecycle_stats *lc_stats)
{
    struct rk_apply *ap = calloc(1, sizeof *ap);
    if (!ap)
        abort();
    ap->log = log;
    int rc = rk_lifecycle_open(&ap->lifecycle, log, progress, arg, lc_stats);
    if (rc) {
        free(ap);
        *out = NULL;
        return rc;
    }
    *out = ap;
    return 0;
}

void rk_apply_destroy(struct rk_apply **ap)
{
    if (!ap || !*ap)
        return;
    rk_lifecycle_destroy(&(*ap)->lifecycle);
    free(*ap);
    *ap = NULL;
}

/* A number at or below the producer's last admitted is a retry of a
 * stored event, or one that arrived late (sent on a connection that broke
 * while later numbers went through a new one), stored now. */
static int check_stored(struct rk_log_batch *b, struct rk_apply_item *it)
{
    int found;
    int rc = rk_log_batch_producer_find(b, it->rec.producer, it->rec.producer_len,
                                        it->rec.producer_seq, &found, &it->rec.seq,
                                        &it->rec.recv_ns);
    if (!rc && found)
        it->outcome = RK_APPLY_DUPLICATE;
    return rc;
}

/* The lifecycle could not read the stored state: a damaged record refuses
 * this event alone; a failing read fails the batch, with its own code. */
static int storage_refusal(struct rk_apply *ap, struct rk_apply_item *it)
{
    int rc = rk_lifecycle_error(ap->lifecycle);
    if (rc != RK_EFORMAT && rc != EEXIST && rc != RK_EBADREC)
        return rc ? rc : EIO;
    it->outcome = RK_APPLY_REFUSED;
    snprintf(it->why.message, sizeof it->why.message, "the broker's stored state of request "
             "%s is damaged (%s); its operator must restore it from a backup", it->aid.request_id,
             rk_strerror(rc));
    it->why.field = "request_id";
    return 0;
}

static int apply_one(struct rk_apply *ap, struct rk_log_batch *b, struct rk_apply_item *it)
{
    int rc;
    it->outcome = RK_APPLY_STORED;
    if (it->rec.producer_len && (rc = check_stored(b, it)) != 0)
        return rc;
    if (it->outcome == RK_APPLY_DUPLICATE)
        return 0;
    enum rk_aid_err err = rk_lifecycle_admit(ap->lifecycle, &it->aid, &it->why);
    if (err == RK_AID_STORAGE)
        return storage_refusal(ap, it);
    if (err != RK_AID_OK) {
        it->outcome = RK_APPLY_REFUSED;
        return 0;
    }
    return rk_log_batch_append(b, &it->rec);
}

int rk_apply_prune(struct rk_apply *ap, int64_t before_ns, uint64_t max_bytes, size_t max,
                   uint64_t *deleted)
{
    return rk_log_prune(ap->log, before_ns, max_bytes, max, deleted);
}

/* One try: everything in one transaction, committed or not at all. */
static int apply_once(struct rk_apply *ap, struct rk_apply_item *items, size_t n, int64_t now_ns)
{
    struct rk_log_batch *b;
    int rc = rk_log_batch_begin(ap->log, now_ns, &b);
    if (rc)
        return rc;
    rk_lifecycle_begin(ap->lifecycle, b);
    for (size_t i = 0; i < n && !rc; i++)
        rc = apply_one(ap, b, &items[i]);
    if (!rc)
        rc = rk_lifecycle_write(ap->lifecycle);
    if (rc)
        rk_log_batch_abort(b);
    else
        rc = rk_log_batch_commit(b);
    rk_lifecycle_settle(ap->lifecycle, rc == 0);
    return rc;
}

static void count(const struct rk_apply_item *items, size_t n, struct rk_apply_stats *st)
{
    for (size_t i = 0; i < n; i++) {
        st->stored += items[i].outcome == RK_APPLY_STORED;
        st->duplicates += items[i].outcome == RK_APPLY_DUPLICATE;
        st->refused += items[i].outcome == RK_APPLY_REFUSED;
    }
}

int rk_apply_batch(struct rk_apply *ap, struct rk_apply_item *items, size_t n, int64_t now_ns,
                   struct rk_apply_stats *stats)
{
    struct rk_apply_stats st = {0};
    int rc;
    if (n == 0)
        goto out;
    /* A full map aborted the batch whole: grow it and apply again. */
    while ((rc = apply_once(ap, items, n, now_ns)) == MDB_MAP_FULL) {
        if ((rc = rk_log_grow(ap->log)) != 0)
            return rc;
        st.map_grown++;
    }
    if (rc)
        return rc;
    count(items, n, &st);
out:
    if (stats)
        *stats = st;
    return 0;
}

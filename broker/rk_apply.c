#include "rk_apply.h"

#include "rk_event.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void refuse(struct rk_apply_item *it, const char *code)
{
    it->outcome = RK_APPLY_REFUSED;
    it->code = code;
}

/* Where a numbered event stands: answered already (a retry), out of
 * order, or the producer's next. *next is 1 for the last. */
static int check_number(struct rk_log_batch *b, struct rk_apply_item *it, int *next)
{
    const void *p = it->rec.producer;
    size_t len = it->rec.producer_len;
    uint64_t n = it->rec.producer_seq, last;
    struct rk_log_number num;
    *next = 0;
    int rc = rk_log_batch_number(b, p, len, n, &num);
    if (rc)
        return rc;
    if (num.state == RK_LOG_NUMBER_STORED) {
        it->outcome = RK_APPLY_DUPLICATE;
        it->rec.seq = num.seq;
        it->rec.recv_ns = num.recv_ns;
        return 0;
    }
    if (num.state == RK_LOG_NUMBER_REFUSED) {
        memcpy(it->code_buf, num.code, sizeof it->code_buf);
        refuse(it, it->code_buf);
        snprintf(it->message, sizeof it->message, "pub.number: %llu of this producer was "
                 "refused with %s when first sent, and stays refused; publish the event again "
                 "under a new number", (unsigned long long)n, num.code);
        return 0;
    }
    if (n > 1 && (rc = rk_log_batch_number(b, p, len, n - 1, &num)) != 0)
        return rc;
    if (n > 1 && num.state != RK_LOG_NUMBER_FREE) {
        *next = 1;
        return 0;
    }
    if ((rc = rk_log_batch_producer_last(b, p, len, &last)) != 0)
        return rc;
    if (last == 0) {
        *next = 1; /* a new producer starts anywhere */
    } else if (n > last) {
        it->outcome = RK_APPLY_OUT_OF_ORDER;
        it->code = "E_ORDER";
        it->expected = last + 1;
        snprintf(it->message, sizeof it->message, "pub.number: expected %llu, got %llu; send "
                 "this producer's events again from %llu, in order", (unsigned long long)last + 1,
                 (unsigned long long)n, (unsigned long long)last + 1);
    } else {
        refuse(it, "E_NUMBER");
        snprintf(it->message, sizeof it->message, "pub.number: %llu is below this producer's "
                 "last number %llu and nothing is stored under it (deleted by retention, or "
                 "never sent); a new event takes a number above %llu", (unsigned long long)n,
                 (unsigned long long)last, (unsigned long long)last);
    }
    return 0;
}

/* A refusal for good uses up a numbered event's number. */
static int use_number(struct rk_log_batch *b, const struct rk_apply_item *it)
{
    if (!it->rec.producer_len)
        return 0;
    return rk_log_batch_number_refused(b, it->rec.producer, it->rec.producer_len,
                                       it->rec.producer_seq, it->code);
}

/* The lifecycle could not read the stored state: a damaged record refuses
 * this event alone (its number is used, so the producer goes on); a failing read fails the batch, with its own code. */
static int storage_refusal(struct rk_apply *ap, struct rk_log_batch *b, struct rk_apply_item *it)
{
    int rc = rk_lifecycle_error(ap->lifecycle);
    if (rc != RK_EFORMAT && rc != EEXIST && rc != RK_EBADREC)
        return rc ? rc : EIO;
    refuse(it, "E_STORAGE");
    it->why.code = RK_AID_STORAGE;
    it->why.field = "request_id";
    snprintf(it->message, sizeof it->message, "%s.request_id: the broker's stored state of "
             "request %s is damaged (%s); its operator must restore it from a backup",
             rk_event_type_name(it->aid.type) + 4, it->aid.request_id, rk_strerror(rc));
    return use_number(b, it);
}

static int apply_one(struct rk_apply *ap, struct rk_log_batch *b, struct rk_apply_item *it)
{
    int rc, next = 1;
    it->outcome = RK_APPLY_STORED;
    it->code = NULL;
    it->requester[0] = '\0';
    if (it->rec.producer_len && (rc = check_number(b, it, &next)) != 0)
        return rc;
    if (!next)
        return 0;
    if (it->admission_code) {
        refuse(it, it->admission_code);
        return use_number(b, it);
    }
    enum rk_aid_err err = rk_lifecycle_admit(ap->lifecycle, &it->aid, &it->why);
    if (err == RK_AID_STORAGE)
        return storage_refusal(ap, b, it);
    if (err != RK_AID_OK) {
        /* "aid.offer" -> "offer", as in validation's messages */
        refuse(it, rk_aid_err_name(err));
        snprintf(it->message, sizeof it->message, "%s.%s: %s",
                 rk_event_type_name(it->aid.type) + 4, it->why.field, it->why.message);
        return use_number(b, it);
    }
    if (it->aid.type >= RK_EV_AID_REQUEST)
        rk_lifecycle_requester(ap->lifecycle, it->aid.request_id, it->requester);
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
        st->out_of_order += items[i].outcome == RK_APPLY_OUT_OF_ORDER;
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

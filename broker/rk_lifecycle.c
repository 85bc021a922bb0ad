#include "rk_lifecycle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rk_lifecycle {
    struct rk_aid *aid;
    int batch_open;
};

/* Stored bytes are validated again (rk_aid_event_parse): a log damaged on
 * disk must not be trusted at start. */
static void fold_record(struct rk_lifecycle *lc, const struct rk_log_view *v,
                        struct rk_lifecycle_stats *st)
{
    struct rk_aid_event ev;
    if (v->tags.type < RK_EV_AID_REQUEST)
        return;
    if (rk_aid_event_parse(v->event, v->event_len, &ev, NULL, 0) != RK_V_OK ||
        rk_aid_apply(lc->aid, &ev, NULL) != RK_AID_OK) {
        st->refused++;
        return;
    }
    st->folded++;
}

int rk_lifecycle_load(struct rk_lifecycle **out, struct rk_log *log,
                      struct rk_lifecycle_stats *stats)
{
    struct rk_lifecycle_stats st = {0};
    struct rk_log_reader *r = NULL;
    struct rk_log_view v;
    struct rk_lifecycle *lc = calloc(1, sizeof *lc);
    int rc;

    if (!lc)
        abort();
    lc->aid = rk_aid_new();
    rc = rk_log_reader_open(log, 1, &r);
    while (rc == 0 && (rc = rk_log_reader_next(r, &v)) == 0)
        fold_record(lc, &v, &st);
    rk_log_reader_destroy(&r);
    if (rc != RK_LOG_EOF) {
        rk_lifecycle_destroy(&lc);
        *out = NULL;
        return rc;
    }
    st.requests = rk_aid_request_count(lc->aid);
    if (stats)
        *stats = st;
    *out = lc;
    return 0;
}

void rk_lifecycle_destroy(struct rk_lifecycle **lcp)
{
    if (!lcp || !*lcp)
        return;
    rk_aid_destroy(&(*lcp)->aid);
    free(*lcp);
    *lcp = NULL;
}

enum rk_aid_err rk_lifecycle_admit(struct rk_lifecycle *lc, const struct rk_aid_event *ev,
                                   struct rk_aid_refusal *why)
{
    if (ev->type < RK_EV_AID_REQUEST)
        return RK_AID_OK;
    if (!lc->batch_open) {
        rk_aid_begin(lc->aid);
        lc->batch_open = 1;
    }
    return rk_aid_apply(lc->aid, ev, why);
}

void rk_lifecycle_settle(struct rk_lifecycle *lc, int stored)
{
    if (!lc->batch_open)
        return;
    if (stored)
        rk_aid_commit(lc->aid);
    else
        rk_aid_rollback(lc->aid);
    lc->batch_open = 0;
}

size_t rk_lifecycle_requests(const struct rk_lifecycle *lc)
{
    return rk_aid_request_count(lc->aid);
}

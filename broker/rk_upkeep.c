#include "rk_upkeep.h"
#include "rk_diag.h"

#include <stdlib.h>

#define PRUNE_BATCH 10000
#define PRUNE_EVERY_NS 1000000000LL
#define PRUNE_LOG_EVERY_NS (60 * 1000000000LL)
#define INDEX_RETRY_NS 10000000000LL

struct rk_upkeep {
    struct rk_log *log;
    struct rk_apply *apply;
    int64_t retain_age_ns;
    uint64_t retain_size;
    int64_t next_prune_ns, pruned_logged_ns;
    unsigned long long pruned, pruned_unlogged;
    int prune_catching_up;          /* the last pass hit PRUNE_BATCH */
    int64_t next_index_ns;          /* after a failed index write, the next try */
};

struct rk_upkeep *rk_upkeep_new(struct rk_log *log, struct rk_apply *apply,
                                int64_t retain_age_ns, uint64_t retain_size)
{
    struct rk_upkeep *u = calloc(1, sizeof *u);
    if (!u)
        abort();
    u->log = log;
    u->apply = apply;
    u->retain_age_ns = retain_age_ns;
    u->retain_size = retain_size;
    return u;
}

static void log_pruned(struct rk_upkeep *u, int64_t now, int force)
{
    if (!u->pruned_unlogged || (!force && now - u->pruned_logged_ns < PRUNE_LOG_EVERY_NS))
        return;
    RK_DIAG(RK_DIAG_INFO, "pruned", "records=%llu total=%llu", u->pruned_unlogged, u->pruned);
    u->pruned_unlogged = 0;
    u->pruned_logged_ns = now;
}

void rk_upkeep_destroy(struct rk_upkeep **up)
{
    if (!*up)
        return;
    log_pruned(*up, 0, 1);
    free(*up);
    *up = NULL;
}

/* Deletes what the retention settings say is too old or too much. */
static void retention(struct rk_upkeep *u, int64_t now)
{
    uint64_t deleted;
    if ((!u->retain_age_ns && !u->retain_size) || now < u->next_prune_ns)
        return;
    int rc = rk_apply_prune(u->apply, u->retain_age_ns ? now - u->retain_age_ns : 0,
                            u->retain_size, PRUNE_BATCH, &deleted);
    if (rc) {
        RK_DIAG(RK_DIAG_ERROR, "prune_failed", "why=\"%s\"", rk_strerror(rc));
        u->next_prune_ns = now + 10 * PRUNE_EVERY_NS;
        return;
    }
    u->pruned += deleted;
    u->pruned_unlogged += deleted;
    /* A steady trickle is logged once a minute; a backlog when it is done. */
    log_pruned(u, now, u->prune_catching_up && deleted < PRUNE_BATCH);
    u->prune_catching_up = deleted == PRUNE_BATCH;
    u->next_prune_ns = deleted == PRUNE_BATCH ? now : now + PRUNE_EVERY_NS;
}

/* The entity index entries that wait go out with the next append; with
 * no append coming, they are written here once due. */
static void index_flush(struct rk_upkeep *u, int64_t now)
{
    if (now < u->next_index_ns)
        return;
    int rc = rk_log_index_flush(u->log, now, 0);
    if (rc) { /* a full disk, say: the entries wait, appends will say more */
        RK_DIAG(RK_DIAG_ERROR, "index_failed", "why=\"%s\"", rk_strerror(rc));
        u->next_index_ns = now + INDEX_RETRY_NS;
    }
}

void rk_upkeep_turn(struct rk_upkeep *u, int64_t now_ns)
{
    index_flush(u, now_ns);
    retention(u, now_ns);
}

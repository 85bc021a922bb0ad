#include "rk_refusal.h"
#include "rk_diag.h"
#include "rk_text.h"
#include "rk_time.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* Active (what, key, code) pairs; a burst of more is logged, not dropped. */
#define PAIRS 128
#define WHY_MAX 320

struct pair {
    enum rk_refusal_what what;
    char key[48], code[32], tenant[72], address[64], why[WHY_MAX];
    size_t why_len;
    unsigned long long unlogged;
    int used;
};

static const char *const msgs[RK_REFUSED_WHATS] = {
    "publish_refused", "subscription_refused", "replay_refused", "connection_refused"};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct pair pairs[PAIRS];
#define INTERVAL_NS (10 * 1000000000LL)
static int64_t interval_start_ns;
static atomic_uint_least64_t totals[RK_REFUSED_WHATS];

static const char *dash(const char *s)
{
    return s && s[0] ? s : "-";
}

/* Keys are Z85 (rk_zap's User-Id: no space or quote) and codes ours: bare. Tenant names come from the ACL file
 * and addresses from libzmq, but are quoted all the same: no surprise. */
static void emit(const struct pair *p, unsigned long long count)
{
    char tenant[RK_TEXT_SIZE(sizeof p->tenant) + 2], address[RK_TEXT_SIZE(sizeof p->address) + 2];
    char why[RK_TEXT_SIZE(WHY_MAX) + 2];
    RK_DIAG(RK_DIAG_WARN, msgs[p->what], "count=%llu key=%s tenant=%s address=%s code=%s why=%s",
            count, p->key,
            strcmp(p->tenant, "-") ? rk_diag_quote(tenant, sizeof tenant, p->tenant,
                                                   strlen(p->tenant)) : "-",
            strcmp(p->address, "-") ? rk_diag_quote(address, sizeof address, p->address,
                                                    strlen(p->address)) : "-",
            p->code, rk_diag_quote(why, sizeof why, p->why, p->why_len));
}

/* With the lock held: the sums, and pairs quiet for the interval go. */
static void flush_locked(int64_t now)
{
    for (int i = 0; i < PAIRS; i++) {
        struct pair *p = &pairs[i];
        if (!p->used)
            continue;
        if (p->unlogged)
            emit(p, p->unlogged);
        else
            p->used = 0;
        p->unlogged = 0;
    }
    interval_start_ns = now;
}

static void fill(struct pair *p, const struct rk_refusal *r)
{
    snprintf(p->tenant, sizeof p->tenant, "%s", dash(r->tenant));
    snprintf(p->address, sizeof p->address, "%s", dash(r->address));
    const char *why = r->why ? r->why : "";
    p->why_len = strnlen(why, sizeof p->why);
    memcpy(p->why, why, p->why_len);
}

static struct pair *find(const struct rk_refusal *r, struct pair **free_slot)
{
    *free_slot = NULL;
    for (int i = 0; i < PAIRS; i++) {
        struct pair *p = &pairs[i];
        if (!p->used) {
            if (!*free_slot)
                *free_slot = p;
        } else if (p->what == r->what && strcmp(p->key, dash(r->key)) == 0 &&
                   strcmp(p->code, dash(r->code)) == 0) {
            return p;
        }
    }
    return NULL;
}

void rk_refusal_note(const struct rk_refusal *r)
{
    int64_t now = rk_time_now();
    struct pair *p, *slot;
    atomic_fetch_add(&totals[r->what], 1);
    pthread_mutex_lock(&lock);
    if (now - interval_start_ns >= INTERVAL_NS)
        flush_locked(now);
    if ((p = find(r, &slot))) {
        fill(p, r);
        p->unlogged++;
    } else {
        if (!slot) { /* a burst of many keys: log them all now, start anew */
            flush_locked(now);
            for (int i = 0; i < PAIRS; i++)
                pairs[i].used = 0;
            slot = &pairs[0];
        }
        *slot = (struct pair){.what = r->what, .used = 1};
        snprintf(slot->key, sizeof slot->key, "%s", dash(r->key));
        snprintf(slot->code, sizeof slot->code, "%s", dash(r->code));
        fill(slot, r);
        emit(slot, 1);
    }
    pthread_mutex_unlock(&lock);
}

void rk_refusal_flush(int64_t now_ns, int force)
{
    pthread_mutex_lock(&lock);
    if (force || now_ns - interval_start_ns >= INTERVAL_NS)
        flush_locked(now_ns);
    pthread_mutex_unlock(&lock);
}

uint64_t rk_refusal_total(enum rk_refusal_what what)
{
    return atomic_load(&totals[what]);
}

#include "rk_producers.h"
#include "rk_hash.h"

#include <stdlib.h>
#include <string.h>

/* Open addressing with linear probing; the table doubles at 3/4 full. */
struct entry {
    uint64_t last;
    unsigned char len;            /* 0 = empty */
    char id[RK_PRODUCER_ID_MAX];
};

struct rk_producers {
    struct entry *slots;
    size_t cap;                   /* a power of two */
    size_t used;
};

#define INITIAL_CAP 64

static void init_slots(struct rk_producers *t, size_t cap)
{
    t->slots = calloc(cap, sizeof *t->slots);
    if (!t->slots)
        abort();
    t->cap = cap;
    t->used = 0;
}

struct rk_producers *rk_producers_new(void)
{
    struct rk_producers *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    init_slots(t, INITIAL_CAP);
    return t;
}

void rk_producers_destroy(struct rk_producers **tp)
{
    if (!*tp)
        return;
    free((*tp)->slots);
    free(*tp);
    *tp = NULL;
}

static struct entry *probe(struct rk_producers *t, const char *id, size_t len)
{
    size_t i = (size_t)rk_hash_bytes(id, len) & (t->cap - 1);
    while (t->slots[i].len && (t->slots[i].len != len || memcmp(t->slots[i].id, id, len) != 0))
        i = (i + 1) & (t->cap - 1);
    return &t->slots[i];
}

static void grow(struct rk_producers *t)
{
    struct entry *old = t->slots;
    size_t old_cap = t->cap;
    init_slots(t, old_cap * 2);
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].len)
            continue;
        *probe(t, old[i].id, old[i].len) = old[i];
        t->used++;
    }
    free(old);
}

uint64_t *rk_producers_slot(struct rk_producers *t, const char *id, size_t len, int *fresh)
{
    if (len == 0 || len > RK_PRODUCER_ID_MAX)
        return NULL;
    struct entry *e = probe(t, id, len);
    *fresh = e->len == 0;
    if (!*fresh)
        return &e->last;
    if (t->used >= RK_PRODUCERS_MAX)
        rk_producers_clear(t);
    else if ((t->used + 1) * 4 > t->cap * 3)
        grow(t);
    e = probe(t, id, len);
    e->len = (unsigned char)len;
    memcpy(e->id, id, len);
    e->last = 0;
    t->used++;
    return &e->last;
}

void rk_producers_clear(struct rk_producers *t)
{
    free(t->slots);
    init_slots(t, INITIAL_CAP);
}

size_t rk_producers_count(const struct rk_producers *t)
{
    return t->used;
}

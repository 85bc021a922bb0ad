#include "rk_groups.h"
#include "rk_hash.h"
#include "rk_wire.h"

#include <stdlib.h>
#include <string.h>

struct group {
    char *key;
    size_t key_len;
    uint64_t prev;
    uint64_t subscribers; /* subscribe notices less unsubscribe ones */
    uint64_t stamp;   /* last seq matched: a group with two matching prefixes gets it once */
};

/* One prefix of one group, in the hash table of prefixes. */
struct node {
    uint64_t hash;
    unsigned len;
    char prefix[RK_WIRE_TOPIC_MAX];
    struct group *group;
    struct node *next;
};

struct rk_groups {
    struct group **groups;
    size_t ngroups, cap;
    struct node **buckets;
    size_t nbuckets, nnodes;   /* nbuckets is a power of two */
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        abort();
    return p;
}


struct rk_groups *rk_groups_new(void)
{
    struct rk_groups *g = xcalloc(1, sizeof *g);
    g->nbuckets = 256;
    g->buckets = xcalloc(g->nbuckets, sizeof *g->buckets);
    return g;
}

static void free_group(struct group *gr)
{
    free(gr->key);
    free(gr);
}

void rk_groups_destroy(struct rk_groups **gp)
{
    struct rk_groups *g = *gp;
    if (!g)
        return;
    for (size_t b = 0; b < g->nbuckets; b++)
        for (struct node *n = g->buckets[b], *next; n; n = next) {
            next = n->next;
            free(n);
        }
    for (size_t i = 0; i < g->ngroups; i++)
        free_group(g->groups[i]);
    free(g->buckets);
    free(g->groups);
    free(g);
    *gp = NULL;
}

static void grow_buckets(struct rk_groups *g)
{
    size_t nb = g->nbuckets * 2;
    struct node **buckets = xcalloc(nb, sizeof *buckets);
    for (size_t b = 0; b < g->nbuckets; b++)
        for (struct node *n = g->buckets[b], *next; n; n = next) {
            next = n->next;
            n->next = buckets[n->hash & (nb - 1)];
            buckets[n->hash & (nb - 1)] = n;
        }
    free(g->buckets);
    g->buckets = buckets;
    g->nbuckets = nb;
}

static void add_node(struct rk_groups *g, struct group *gr, const char *prefix)
{
    struct node *n = xcalloc(1, sizeof *n);
    n->len = (unsigned)strlen(prefix);
    memcpy(n->prefix, prefix, n->len);
    n->hash = rk_hash_bytes(prefix, n->len);
    n->group = gr;
    if (++g->nnodes > 2 * g->nbuckets)
        grow_buckets(g);
    n->next = g->buckets[n->hash & (g->nbuckets - 1)];
    g->buckets[n->hash & (g->nbuckets - 1)] = n;
}

static void remove_nodes(struct rk_groups *g, const struct group *gr)
{
    for (size_t b = 0; b < g->nbuckets; b++)
        for (struct node **np = &g->buckets[b]; *np;) {
            struct node *n = *np;
            if (n->group != gr) {
                np = &n->next;
                continue;
            }
            *np = n->next;
            free(n);
            g->nnodes--;
        }
}

static size_t find(const struct rk_groups *g, const char *key, size_t len)
{
    for (size_t i = 0; i < g->ngroups; i++)
        if (g->groups[i]->key_len == len && memcmp(g->groups[i]->key, key, len) == 0)
            return i;
    return SIZE_MAX;
}

static enum rk_groups_notice_rc add(struct rk_groups *g, const char *key, size_t len, uint64_t head)
{
    char topics[RK_WIRE_TOPICS_MAX][RK_WIRE_TOPIC_MAX];
    int n = rk_wire_subkey_parse(key, len, topics);
    if (n < 0)
        return RK_GROUPS_BAD_KEY;
    size_t i = find(g, key, len);
    if (i != SIZE_MAX) {
        g->groups[i]->subscribers++;
        return RK_GROUPS_UNCHANGED;
    }
    if (g->ngroups == RK_GROUPS_MAX)
        return RK_GROUPS_FULL;
    if (g->ngroups == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 16;
        g->groups = realloc(g->groups, g->cap * sizeof *g->groups);
        if (!g->groups)
            abort();
    }
    struct group *gr = xcalloc(1, sizeof *gr);
    gr->key = xcalloc(1, len);
    memcpy(gr->key, key, len);
    gr->key_len = len;
    gr->prev = head;
    gr->subscribers = 1;
    g->groups[g->ngroups++] = gr;
    if (n == 0)
        add_node(g, gr, "");
    for (int t = 0; t < n; t++)
        add_node(g, gr, topics[t]);
    return RK_GROUPS_ADDED;
}

enum rk_groups_notice_rc rk_groups_notice(struct rk_groups *g, const void *msg, size_t len,
                                          uint64_t head)
{
    const char *m = msg;
    if (len < 1 || (m[0] != 0 && m[0] != 1))
        return RK_GROUPS_BAD_KEY;
    if (m[0] == 1)
        return add(g, m + 1, len - 1, head);
    size_t i = find(g, m + 1, len - 1);
    if (i == SIZE_MAX || --g->groups[i]->subscribers > 0)
        return RK_GROUPS_UNCHANGED;
    remove_nodes(g, g->groups[i]);
    free_group(g->groups[i]);
    g->groups[i] = g->groups[--g->ngroups];
    return RK_GROUPS_REMOVED;
}

/* The groups with a prefix of `topic`; a group's stamp makes it one call
 * per event, whichever of its prefixes or of the event's topics match. */
static void match_topic(struct rk_groups *g, const char *topic, uint64_t seq, rk_groups_fn *fn,
                        void *arg)
{
    size_t len = strlen(topic);
    uint64_t h = RK_HASH_BASIS;
    for (size_t l = 0;; l++) {
        for (struct node *n = g->buckets[h & (g->nbuckets - 1)]; n; n = n->next) {
            struct group *gr = n->group;
            if (n->hash != h || n->len != l || memcmp(n->prefix, topic, l) != 0 || gr->stamp == seq)
                continue;
            gr->stamp = seq;
            fn(arg, gr->key, gr->key_len, gr->prev);
            gr->prev = seq;
        }
        if (l == len)
            break;
        h = rk_hash_step(h, (unsigned char)topic[l]);
    }
}

void rk_groups_match(struct rk_groups *g, const char *topic, const char *requester_topic,
                     uint64_t seq, rk_groups_fn *fn, void *arg)
{
    match_topic(g, topic, seq, fn, arg);
    if (requester_topic && requester_topic[0])
        match_topic(g, requester_topic, seq, fn, arg);
}

void rk_groups_each(struct rk_groups *g, rk_groups_fn *fn, void *arg)
{
    for (size_t i = 0; i < g->ngroups; i++)
        fn(arg, g->groups[i]->key, g->groups[i]->key_len, g->groups[i]->prev);
}

size_t rk_groups_count(const struct rk_groups *g)
{
    return g->ngroups;
}

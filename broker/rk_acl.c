#include "rk_acl.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rk_err.h"
#include "rk_ini.h"

#define LIST_MAX 64  /* entries in one publish/subscribe/replay list */

struct list {
    char items[LIST_MAX][RK_WIRE_TOPIC_MAX];
    unsigned n;
    int all;  /* "*" */
};

struct rk_acl_tenant {
    char name[64];
    int line;   /* of its section's header, to name it in a message */
    struct list publish, subscribe, replay;
};

struct key_entry {
    char key[RK_KEY_Z85_LEN + 1];
    size_t tenant;
};

struct rk_acl {
    atomic_int refs;
    struct rk_acl_tenant *tenants;
    size_t ntenants;
    struct key_entry *keys;   /* sorted by key, for bsearch */
    size_t nkeys;
};

/* ---- loading
 *
 * rk_ini says what each line is, with the same rules as for the config
 * file; here only what the sections and keys mean. A tenant starts at the
 * first key of its section, so a section without keys adds nobody (as
 * before rk_ini), and the first problem stops the load: one bad line
 * makes the whole ACL untrustworthy. */

struct loader {
    struct rk_acl *acl;
    const char *path;
    int header_line;      /* of the current section; 0 before the first header */
    int opened;           /* that section has its tenant already */
    char *why;
    size_t why_len;
};

static void *grow(void *p, size_t n, size_t size)
{
    /* one at a time is fine: ACLs have hundreds of lines, not millions */
    void *q = realloc(p, (n + 1) * size);
    if (!q)
        abort();
    return q;
}

__attribute__((format(printf, 3, 4)))
static int fail(struct loader *l, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(l->why, l->why_len, "%s:%d: %s", l->path, line, msg);
    return RK_EFORMAT;
}

static int parse_list(struct loader *l, int line, const char *name, const char *value,
                      struct list *out, int publish)
{
    char buf[RK_INI_LINE_MAX + 1], *save = NULL;
    snprintf(buf, sizeof buf, "%s", value);
    for (char *w = strtok_r(buf, " ,\t", &save); w; w = strtok_r(NULL, " ,\t", &save)) {
        size_t len = strlen(w);
        if (strcmp(w, "*") == 0) {
            out->all = 1;
            continue;
        }
        if (out->n == LIST_MAX)
            return fail(l, line, "%s: more than %d entries", name, LIST_MAX);
        if (publish && !((len == 6 && strspn(w, "0123456789") == 6) ||
                         (len == 3 && strspn(w, "0123456789") == 2 && w[2] == '*')))
            return fail(l, line, "publish: \"%s\" is neither a 6-digit municipality code nor "
                        "a prefecture like 27*", w);
        if (!publish && (len >= RK_WIRE_TOPIC_MAX || strchr(w, '|')))
            return fail(l, line, "%s: \"%s\" is not a topic prefix (at most 39 bytes, no '|')",
                        name, w);
        memcpy(out->items[out->n++], w, len + 1);
    }
    return RK_OK;
}

/* The tenant of the section a key is in, made at the section's first key. */
static int open_tenant(struct loader *l, const struct rk_ini_entry *e)
{
    struct rk_acl *acl = l->acl;
    const char *name;

    if (l->header_line == 0)
        return RK_OK;   /* keys before any header: the caller says so */
    if (strncmp(e->section, "tenant ", 7) != 0 || !e->section[7] ||
        strlen(e->section + 7) >= sizeof acl->tenants->name)
        return fail(l, e->line, "[%s]: sections are [tenant NAME] (NAME at most 63 bytes)",
                    e->section);
    name = e->section + 7;
    for (size_t i = 0; i < acl->ntenants; i++)
        if (strcmp(acl->tenants[i].name, name) == 0)
            return fail(l, e->line, "[%s]: a second section for this tenant (the first is on "
                        "line %d); keep all of a tenant's lines in one section", e->section,
                        acl->tenants[i].line);
    acl->tenants = grow(acl->tenants, acl->ntenants, sizeof *acl->tenants);
    memset(&acl->tenants[acl->ntenants], 0, sizeof *acl->tenants);
    memcpy(acl->tenants[acl->ntenants].name, name, strlen(name) + 1);
    acl->tenants[acl->ntenants].line = l->header_line;
    acl->ntenants++;
    l->opened = 1;
    return RK_OK;
}

static int add_key(struct loader *l, int line, const char *value)
{
    struct rk_acl *acl = l->acl;
    if (!rk_keys_valid(value))
        return fail(l, line, "key: \"%s\" is not a public key (40 Z85 characters, a "
                    "renkei-keys .pub file's line)", value);
    for (size_t i = 0; i < acl->nkeys; i++) /* not sorted until loaded */
        if (strcmp(acl->keys[i].key, value) == 0)
            return fail(l, line, "key: %s is listed twice", value);
    acl->keys = grow(acl->keys, acl->nkeys, sizeof *acl->keys);
    memcpy(acl->keys[acl->nkeys].key, value, RK_KEY_Z85_LEN + 1);
    acl->keys[acl->nkeys++].tenant = acl->ntenants - 1;
    return RK_OK;
}

static int on_key(struct loader *l, const struct rk_ini_entry *e)
{
    struct rk_acl *acl = l->acl;
    struct rk_acl_tenant *t;
    int rc = l->opened ? RK_OK : open_tenant(l, e);

    if (rc != RK_OK)
        return rc;
    if (acl->ntenants == 0)
        return fail(l, e->line, "%s: outside any [tenant NAME] section", e->name);
    t = &acl->tenants[acl->ntenants - 1];
    if (strcmp(e->name, "key") == 0)
        return add_key(l, e->line, e->value);
    if (strcmp(e->name, "publish") == 0)
        return parse_list(l, e->line, e->name, e->value, &t->publish, 1);
    if (strcmp(e->name, "subscribe") == 0)
        return parse_list(l, e->line, e->name, e->value, &t->subscribe, 0);
    if (strcmp(e->name, "replay") == 0)
        return parse_list(l, e->line, e->name, e->value, &t->replay, 0);
    return fail(l, e->line, "unknown key \"%s\" (key, publish, subscribe, replay)", e->name);
}

static int on_entry(struct loader *l, const struct rk_ini_entry *e)
{
    if (e->kind == RK_INI_KEY)
        return on_key(l, e);
    l->header_line = e->line;
    l->opened = 0;
    return RK_OK;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(((const struct key_entry *)a)->key, ((const struct key_entry *)b)->key);
}

static void acl_free(struct rk_acl *acl)
{
    if (!acl)
        return;
    free(acl->tenants);
    free(acl->keys);
    free(acl);
}

int rk_acl_load(const char *path, struct rk_acl **out, char *why, size_t why_len)
{
    struct rk_acl *acl = calloc(1, sizeof *acl);
    struct loader l = {.acl = acl, .path = path, .why = why, .why_len = why_len};
    struct rk_ini *ini = NULL;
    struct rk_ini_entry e;
    int rc;

    *out = NULL;
    if (!acl)
        abort();
    rc = rk_ini_open(path, &ini, why, why_len);
    if (rc != RK_OK)
        goto cleanup;
    while ((rc = rk_ini_next(ini, &e, why, why_len)) == RK_OK)
        if ((rc = on_entry(&l, &e)) != RK_OK)
            goto cleanup;
    if (rc != RK_EOF)
        goto cleanup;
    if (acl->nkeys == 0) {
        snprintf(why, why_len, "%s: no tenant has a key: nobody could connect", path);
        rc = RK_EFORMAT;
        goto cleanup;
    }
    qsort(acl->keys, acl->nkeys, sizeof *acl->keys, cmp_key);
    atomic_init(&acl->refs, 1);
    *out = acl;
    acl = NULL;
    rc = RK_OK;
cleanup:
    rk_ini_close(&ini);
    acl_free(acl);
    return rc;
}

/* ---- questions */

const struct rk_acl_tenant *rk_acl_find(const struct rk_acl *acl, const char *key)
{
    struct key_entry probe;
    if (!key || strlen(key) != RK_KEY_Z85_LEN)
        return NULL;
    memcpy(probe.key, key, RK_KEY_Z85_LEN + 1);
    const struct key_entry *e = bsearch(&probe, acl->keys, acl->nkeys, sizeof *acl->keys, cmp_key);
    return e ? &acl->tenants[e->tenant] : NULL;
}

const char *rk_acl_tenant_name(const struct rk_acl_tenant *t)
{
    return t->name;
}

size_t rk_acl_key_count(const struct rk_acl *acl)
{
    return acl->nkeys;
}

size_t rk_acl_tenant_count(const struct rk_acl *acl)
{
    return acl->ntenants;
}

const struct rk_acl_tenant *rk_acl_tenant_at(const struct rk_acl *acl, size_t i)
{
    return &acl->tenants[i];
}

int rk_acl_may_publish(const struct rk_acl_tenant *t, const char *municipality)
{
    if (t->publish.all)
        return 1;
    for (unsigned i = 0; i < t->publish.n; i++) {
        const char *p = t->publish.items[i];
        if (p[2] == '*' ? strncmp(p, municipality, 2) == 0 : strncmp(p, municipality, 6) == 0)
            return 1;
    }
    return 0;
}

static int covered(const struct list *allowed, const char *prefix)
{
    for (unsigned i = 0; i < allowed->n; i++)
        if (strncmp(prefix, allowed->items[i], strlen(allowed->items[i])) == 0)
            return 1;
    return 0;
}

int rk_acl_may_read(const struct rk_acl_tenant *t, enum rk_acl_read what,
                    const char (*prefixes)[RK_WIRE_TOPIC_MAX], unsigned n)
{
    const struct list *allowed = what == RK_ACL_SUBSCRIBE ? &t->subscribe : &t->replay;
    if (allowed->all)
        return 1;
    if (n == 0)
        return 0;
    for (unsigned i = 0; i < n; i++)
        if (!covered(allowed, prefixes[i]))
            return 0;
    return 1;
}

static int same_list(const struct list *a, const struct list *b)
{
    if (a->all != b->all || a->n != b->n)
        return 0;
    for (unsigned i = 0; i < a->n; i++)
        if (strcmp(a->items[i], b->items[i]) != 0)
            return 0;
    return 1;
}

int rk_acl_subscriptions_shrink(const struct rk_acl *old, const struct rk_acl *new)
{
    for (size_t i = 0; i < old->nkeys; i++) {
        const struct rk_acl_tenant *was = &old->tenants[old->keys[i].tenant];
        if (!was->subscribe.all && was->subscribe.n == 0)
            continue;
        const struct rk_acl_tenant *now = rk_acl_find(new, old->keys[i].key);
        if (!now || !same_list(&was->subscribe, &now->subscribe))
            return 1;
    }
    return 0;
}

/* ---- the slot */

struct rk_acl_slot {
    pthread_mutex_t mu;
    struct rk_acl *cur;
};

struct rk_acl_slot *rk_acl_slot_new(struct rk_acl *acl)
{
    struct rk_acl_slot *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    pthread_mutex_init(&s->mu, NULL);
    s->cur = acl;
    return s;
}

void rk_acl_slot_destroy(struct rk_acl_slot **sp)
{
    struct rk_acl_slot *s = *sp;
    if (!s)
        return;
    rk_acl_release(s->cur);
    pthread_mutex_destroy(&s->mu);
    free(s);
    *sp = NULL;
}

struct rk_acl *rk_acl_slot_get(struct rk_acl_slot *s)
{
    pthread_mutex_lock(&s->mu);
    struct rk_acl *acl = s->cur;
    if (acl)
        atomic_fetch_add(&acl->refs, 1);
    pthread_mutex_unlock(&s->mu);
    return acl;
}

void rk_acl_release(struct rk_acl *acl)
{
    if (acl && atomic_fetch_sub(&acl->refs, 1) == 1)
        acl_free(acl);
}

struct rk_acl *rk_acl_slot_swap(struct rk_acl_slot *s, struct rk_acl *acl)
{
    pthread_mutex_lock(&s->mu);
    struct rk_acl *old = s->cur;
    s->cur = acl;
    pthread_mutex_unlock(&s->mu);
    return old; /* the slot's reference becomes the caller's */
}

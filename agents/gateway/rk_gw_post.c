#include "rk_gw_post.h"
#include "rk_json.h"
#include "rk_time.h"

#include "renkei.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define TOKEN_MIN 32
#define TOKEN_MAX 128

struct tenant {
    char token[TOKEN_MAX + 1];
    char name[65];
    char *key;            /* the tenant's secret key file; NULL: plain */
    struct rk_pub *pub;   /* made at the first post */
    pthread_mutex_t mu;
};

struct rk_gw_post {
    struct tenant *t;
    size_t n;
    const char *ingest, *broker_key;
    int timeout_ms;
};

static int token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

static int good_token(const char *s)
{
    size_t n = strlen(s);
    if (n < TOKEN_MIN || n > TOKEN_MAX)
        return 0;
    for (; *s; s++)
        if (!token_char(*s))
            return 0;
    return 1;
}

/* One line into p->t[p->n]; -1 when malformed. */
static int take_line(struct rk_gw_post *p, char *line)
{
    char *save = NULL;
    char *tok = strtok_r(line, " \t\r\n", &save);
    char *name = strtok_r(NULL, " \t\r\n", &save);
    char *key = strtok_r(NULL, " \t\r\n", &save);
    if (!tok || *tok == '#')
        return 0;
    if (!name || strtok_r(NULL, " \t\r\n", &save) || !good_token(tok) || strlen(name) > 64)
        return -1;
    p->t = realloc(p->t, (p->n + 1) * sizeof *p->t);
    if (!p->t)
        abort();
    struct tenant *t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->token, sizeof t->token, "%s", tok);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->key = key ? strdup(key) : NULL;
    pthread_mutex_init(&t->mu, NULL);
    return 0;
}

int rk_gw_post_open(const char *path, const char *ingest, const char *broker_key,
                    int timeout_ms, struct rk_gw_post **out, char *why, size_t why_len)
{
    struct rk_gw_post *p = calloc(1, sizeof *p);
    struct stat st;
    char line[1024];
    int rc = 0, lineno = 0;
    if (!p)
        abort();
    *out = NULL;
    p->ingest = ingest;
    p->broker_key = broker_key;
    p->timeout_ms = timeout_ms;
    FILE *f = fopen(path, "r");
    if (!f || fstat(fileno(f), &st)) {
        rc = errno;
        snprintf(why, why_len, "--tokens %s: %s", path, strerror(rc));
        goto out;
    }
    if (st.st_mode & 077) {
        rc = EACCES;
        snprintf(why, why_len, "--tokens %s: readable by others (mode %03o); it holds "
                 "credentials: chmod 600 it", path, (unsigned)(st.st_mode & 0777));
        goto out;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (take_line(p, line)) {
            rc = EINVAL;
            snprintf(why, why_len, "--tokens %s: line %d: want \"TOKEN TENANT [KEYFILE]\", "
                     "a token of %d-%d characters of A-Z a-z 0-9 - _ . ~", path, lineno,
                     TOKEN_MIN, TOKEN_MAX);
            goto out;
        }
    }
out:
    if (f)
        fclose(f);
    if (rc) {
        rk_gw_post_close(&p);
        return rc;
    }
    *out = p;
    return 0;
}

void rk_gw_post_close(struct rk_gw_post **pp)
{
    struct rk_gw_post *p = pp ? *pp : NULL;
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        rk_pub_destroy(&p->t[i].pub);
        free(p->t[i].key);
        pthread_mutex_destroy(&p->t[i].mu);
    }
    free(p->t);
    free(p);
    *pp = NULL;
}

/* Equal strings, in a time that does not depend on where they differ. */
static int same(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char d = na != nb;
    for (size_t i = 0; i < TOKEN_MAX; i++)
        d |= (unsigned char)((i < na ? a[i] : 0) ^ (i < nb ? b[i] : 0));
    return d == 0;
}

const char *rk_gw_post_tenant(const struct rk_gw_post *p, const char *token)
{
    const char *found = NULL;
    if (!token || strlen(token) > TOKEN_MAX)
        return NULL;
    for (size_t i = 0; i < p->n; i++)
        if (same(p->t[i].token, token))
            found = p->t[i].name;
    return found;
}

static struct tenant *by_name(struct rk_gw_post *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->t[i].name, name) == 0)
            return &p->t[i];
    return NULL;
}

/* {"ok": false, ...} with the field taken from "<field>: <reason>". */
static json_t *refusal(const char *code, const char *message)
{
    const char *colon = strstr(message, ": ");
    json_t *field = colon ? json_stringn(message, (size_t)(colon - message)) : NULL;
    return json_pack("{s:b,s:s,s:o,s:s}", "ok", 0, "code", code, "field",
                     field ? field : json_string("event"), "reason", message);
}

static json_t *stored(const struct rk_pub_result *r)
{
    char t[RK_TIME_TEXT_MAX];
    rk_time_format(r->recv_ns, t);
    return json_pack("{s:b,s:I,s:s}", "ok", 1, "seq", (json_int_t)r->seq, "recv_time", t);
}

/* rk_pub_send, waiting while the connection is being made (the library
 * refuses sends until it is, EAGAIN) up to the timeout. */
static int send_one(struct rk_gw_post *p, struct tenant *t, const msgpack_sbuffer *sb,
                    uint64_t *corr)
{
    int64_t until = rk_time_now() + (int64_t)p->timeout_ms * 1000000;
    while (rk_pub_send(t->pub, sb->data, sb->size, corr)) {
        if (errno != EAGAIN || rk_time_now() > until)
            return -1;
        nanosleep(&(struct timespec){0, 2000000L}, NULL);
    }
    return 0;
}

/* Sends every encodable event, then takes the answers; results[i] is set
 * for each. */
static void publish(struct rk_gw_post *p, struct tenant *t, json_t *list, json_t **results)
{
    size_t n = json_array_size(list), out = 0;
    uint64_t *corr = calloc(n, sizeof *corr);
    if (!corr)
        abort();
    for (size_t i = 0; i < n; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        json_t *ev = json_array_get(list, i);
        if (!json_is_object(ev) || rk_json_to_msgpack(ev, &sb))
            results[i] = refusal("E_JSON", "event: must be a JSON object, at most 32 levels deep");
        else if (send_one(p, t, &sb, &corr[i]))
            results[i] = refusal("E_BROKER", "event: the broker cannot be reached; post again "
                                 "later");
        else
            out++;
        msgpack_sbuffer_destroy(&sb);
    }
    while (out) {
        struct rk_pub_result r;
        if (rk_pub_recv(t->pub, p->timeout_ms, &r)) {
            if (errno == ETIMEDOUT)
                break;
            continue;
        }
        for (size_t i = 0; i < n; i++)
            if (!results[i] && corr[i] == r.corr) {
                results[i] = r.ok ? stored(&r) : refusal(r.code, r.message);
                out--;
            }
    }
    for (size_t i = 0; i < n; i++)
        if (!results[i])
            results[i] = refusal("E_BROKER", "event: the broker did not answer in time; it may "
                                 "or may not be stored: look for its event_id before posting again");
    free(corr);
}

json_t *rk_gw_post_publish(struct rk_gw_post *p, const char *tenant, json_t *events)
{
    struct tenant *t = by_name(p, tenant);
    json_t *list = json_is_array(events) ? json_incref(events) : json_pack("[O]", events);
    size_t n = json_array_size(list);
    json_t **results = calloc(n ? n : 1, sizeof *results), *out = json_array();
    if (!results)
        abort();
    pthread_mutex_lock(&t->mu);
    if (!t->pub) {
        struct rk_client_options o = {p->broker_key, t->key, NULL};
        if (!t->key)
            o.broker_key = NULL;
        rk_pub_open(p->ingest, &o, &t->pub);
    }
    if (t->pub)
        publish(p, t, list, results);
    pthread_mutex_unlock(&t->mu);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, results[i] ? results[i]
                                              : refusal("E_BROKER", "event: the tenant's key "
                                                        "could not be used; see the gateway's log"));
    free(results);
    json_decref(list);
    return out;
}

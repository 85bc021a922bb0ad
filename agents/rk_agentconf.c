#include "rk_agentconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rk_err.h"
#include "rk_ini.h"

enum kind { K_STRING, K_INT };

struct key {
    const char *name;
    enum kind kind;
    size_t offset;       /* of a char * or an int in struct rk_agentconf */
    long min, max;       /* K_INT */
};

#define AT(f) offsetof(struct rk_agentconf, f)

static const struct key keys[] = {
    {"broker", K_STRING, AT(broker), 0, 0},
    {"broker_key", K_STRING, AT(broker_key), 0, 0},
    {"key", K_STRING, AT(key), 0, 0},
    {"outbox", K_STRING, AT(outbox), 0, 0},
    {"spool", K_STRING, AT(spool), 0, 0},
    {"timeout", K_INT, AT(timeout_ms), 1, 86400000},
    {"window", K_INT, AT(window), 1, 10000},
    {"metrics_file", K_STRING, AT(metrics_file), 0, 0},
};
#define NKEYS (sizeof keys / sizeof keys[0])

const char *rk_agentconf_find(int argc, char **argv)
{
    const char *found = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            found = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            found = argv[i] + 9;
    }
    return found;
}

static const struct key *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* Sets one key; returns 0 or writes the reason into why. */
static int set_key(struct rk_agentconf *c, const struct key *k, const char *value, char *why,
                   size_t len)
{
    char *p = (char *)c + k->offset, *end;
    if (value[0] == '\0') {
        snprintf(why, len, "needs a value");
        return -1;
    }
    if (k->kind == K_STRING) {
        char **s = (char **)p, *copy = strdup(value);
        if (!copy)
            abort();
        free(*s);
        *s = copy;
        return 0;
    }
    errno = 0;
    long n = strtol(value, &end, 10);
    if (*end || errno || n < k->min || n > k->max) {
        snprintf(why, len, "must be %ld..%ld, got \"%s\"", k->min, k->max, value);
        return -1;
    }
    *(int *)p = (int)n;
    return 0;
}

static int on_entry(struct rk_agentconf *c, const struct rk_ini_entry *e, const char *path,
                    int *seen, FILE *err)
{
    char why[256];
    const struct key *k;
    if (e->kind == RK_INI_SECTION) {
        if (strcmp(e->section, "agent") == 0)
            return 0;
        fprintf(err, "%s:%d: [%s]: unknown section; the file has one, [agent]\n", path, e->line,
                e->section);
        return -1;
    }
    if (strcmp(e->section, "agent") != 0) {
        if (e->section[0] == '\0')
            fprintf(err, "%s:%d: %s: outside any section; it belongs under [agent]\n", path,
                    e->line, e->name);
        return e->section[0] == '\0' ? -1 : 0; /* else reported at its header */
    }
    if (!(k = find_key(e->name))) {
        fprintf(err, "%s:%d: %s: unknown key in [agent]; known: broker, broker_key, key, "
                "outbox, spool, timeout, window, metrics_file\n", path, e->line, e->name);
        return -1;
    }
    if (seen[k - keys]) {
        fprintf(err, "%s:%d: %s: set twice, first on line %d\n", path, e->line, e->name,
                seen[k - keys]);
        return -1;
    }
    seen[k - keys] = e->line;
    if (set_key(c, k, e->value, why, sizeof why) != 0) {
        fprintf(err, "%s:%d: %s: %s\n", path, e->line, e->name, why);
        return -1;
    }
    return 0;
}

int rk_agentconf_load(const char *path, struct rk_agentconf *c, FILE *err)
{
    struct rk_ini *ini = NULL;
    struct rk_ini_entry e;
    char why[RK_INI_WHY_MAX];
    int seen[NKEYS] = {0}, errors = 0, rc;

    memset(c, 0, sizeof *c);
    if ((rc = rk_ini_open(path, &ini, why, sizeof why)) != RK_OK) {
        fprintf(err, "%s\n", why);
        return -1;
    }
    while ((rc = rk_ini_next(ini, &e, why, sizeof why)) != RK_EOF) {
        if (rc != RK_OK) {
            fprintf(err, "%s\n", why);
            errors++;
            if (rc != RK_EFORMAT)
                break;
        } else if (on_entry(c, &e, path, seen, err) != 0) {
            errors++;
        }
    }
    rk_ini_close(&ini);
    return errors ? -1 : 0;
}

void rk_agentconf_release(struct rk_agentconf *c)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].kind == K_STRING) {
            char **s = (char **)((char *)c + keys[i].offset);
            free(*s);
        }
    memset(c, 0, sizeof *c);
}

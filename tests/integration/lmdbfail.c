/* Preloaded into renkei-agent by it86b: LMDB fails on a spool file's tag
 * while a trigger file says so, as it would with its reader table full or
 * its map full, so the test can see what the agent does with the file.
 *
 * RK_LMDB_FAIL_FILE names the trigger. While it exists, each of its lines
 * "OP CODE" (OP: get, put or del) makes mdb_OP return CODE (an LMDB error
 * code, e.g. -30790 for MDB_READERS_FULL) for keys ending in ".jsonl":
 * only the outbox's tags have such keys, so events, counters and the
 * sending of what is already in the outbox go on as usual. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_tag(const MDB_val *key)
{
    static const char suffix[] = ".jsonl";
    size_t n = sizeof suffix - 1;
    return key && key->mv_size >= n &&
           memcmp((const char *)key->mv_data + key->mv_size - n, suffix, n) == 0;
}

/* The code the trigger gives `op`; 0 when none (or no trigger). */
static int injected(const char *op, const MDB_val *key)
{
    const char *path = getenv("RK_LMDB_FAIL_FILE");
    char line[64], name[16];
    int code, found = 0;
    FILE *f;

    if (!path || !is_tag(key) || !(f = fopen(path, "r")))
        return 0;
    while (!found && fgets(line, sizeof line, f))
        if (sscanf(line, "%15s %d", name, &code) == 2 && strcmp(name, op) == 0)
            found = code;
    fclose(f);
    return found;
}

int mdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data)
{
    int (*real)(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *) =
        (int (*)(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *))dlsym(RTLD_NEXT, "mdb_get");
    int rc = injected("get", key);
    return rc ? rc : real(txn, dbi, key, data);
}

int mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned int flags)
{
    int (*real)(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *, unsigned int) =
        (int (*)(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *, unsigned int))dlsym(RTLD_NEXT,
                                                                             "mdb_put");
    int rc = injected("put", key);
    return rc ? rc : real(txn, dbi, key, data, flags);
}

int mdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data)
{
    int (*real)(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *) =
        (int (*)(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *))dlsym(RTLD_NEXT, "mdb_del");
    int rc = injected("del", key);
    return rc ? rc : real(txn, dbi, key, data);
}

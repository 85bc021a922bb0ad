#include "rk_log.h"
#include "rk_muni.h"
#include "rk_test.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/rk_log_test.XXXXXX";

static struct rk_log *open_log(void)
{
    struct rk_log *log = NULL;
    struct rk_log_options opt = {.durability = RK_LOG_OS, .map_size = 64 << 20};
    char why[256];
    int rc = rk_log_open(&log, dir, &opt, why, sizeof why);
    if (rc)
        fprintf(stderr, "open: %s\n", why);
    RK_CHECK(rc == 0 && log != NULL);
    return log;
}

static void append_n(struct rk_log *log, int n, int64_t now, const char *tag)
{
    struct rk_log_rec recs[16];
    char bodies[16][32];
    for (int i = 0; i < n; i++) {
        snprintf(bodies[i], sizeof bodies[i], "%s-%d", tag, i);
        recs[i] = (struct rk_log_rec){.event = bodies[i], .event_len = strlen(bodies[i]),
                                      .publisher = "pub", .publisher_len = 3,
                                      .producer_seq = (uint64_t)i + 1};
    }
    uint64_t before = rk_log_last_seq(log);
    RK_CHECK(rk_log_append(log, recs, (size_t)n, now) == 0);
    for (int i = 0; i < n; i++)
        RK_CHECK(recs[i].seq == before + 1 + (uint64_t)i);
    RK_CHECK(rk_log_last_seq(log) == before + (uint64_t)n);
}

/* Walks the whole log: dense sequences, non-decreasing times, chain intact. */
static uint64_t check_whole_log(struct rk_log *log)
{
    struct rk_log_reader *r;
    struct rk_log_view v;
    unsigned char prev[RK_LOG_HASH_BYTES] = {0}, want[RK_LOG_HASH_BYTES];
    uint64_t expect = 1;
    int64_t last_t = 0;
    int rc;
    RK_CHECK(rk_log_reader_open(log, 1, &r) == 0);
    while ((rc = rk_log_reader_next(r, &v)) == 0) {
        RK_CHECK(v.seq == expect);
        RK_CHECK(v.recv_ns >= last_t);
        rk_log_chain_hash(prev, &v, want);
        RK_CHECK(memcmp(want, v.hash, sizeof want) == 0);
        memcpy(prev, v.hash, sizeof prev);
        last_t = v.recv_ns;
        expect++;
    }
    RK_CHECK(rc == RK_LOG_EOF);
    RK_CHECK(rk_log_reader_head(r) == expect - 1);
    rk_log_reader_destroy(&r);
    RK_CHECK(r == NULL);
    RK_CHECK(memcmp(prev, rk_log_head_hash(log), sizeof prev) == 0);
    return expect - 1;
}

static void test_empty_log(void)
{
    struct rk_log *log = open_log();
    struct rk_log_reader *r;
    struct rk_log_view v;
    RK_CHECK(rk_log_last_seq(log) == 0);
    RK_CHECK(rk_log_reader_open(log, 1, &r) == 0);
    RK_CHECK(rk_log_reader_next(r, &v) == RK_LOG_EOF);
    RK_CHECK(rk_log_reader_head(r) == 0);
    rk_log_reader_destroy(&r);
    rk_log_destroy(&log);
    RK_CHECK(log == NULL);
}

static void test_batches_are_dense_and_chained(void)
{
    struct rk_log *log = open_log();
    append_n(log, 1, 1000, "a");
    append_n(log, 16, 2000, "b");
    append_n(log, 3, 500, "c");   /* clock went back: times must not */
    RK_CHECK(check_whole_log(log) == 20);
    rk_log_destroy(&log);
}

static void test_restart_continues(void)
{
    struct rk_log *log = open_log();
    unsigned char head[RK_LOG_HASH_BYTES];
    RK_CHECK(rk_log_last_seq(log) == 20);
    memcpy(head, rk_log_head_hash(log), sizeof head);
    append_n(log, 5, 3000, "d");
    RK_CHECK(check_whole_log(log) == 25);
    rk_log_destroy(&log);
}

static void test_reader_from_middle_sees_stored_bytes(void)
{
    struct rk_log *log = open_log();
    struct rk_log_reader *r;
    struct rk_log_view v;
    RK_CHECK(rk_log_reader_open(log, 18, &r) == 0);
    RK_CHECK(rk_log_reader_next(r, &v) == 0);
    RK_CHECK(v.seq == 18);
    RK_CHECK(v.event_len == 3 && memcmp(v.event, "c-0", 3) == 0);
    RK_CHECK(v.publisher_len == 3 && memcmp(v.publisher, "pub", 3) == 0);
    RK_CHECK(v.producer_seq == 1);
    RK_CHECK(v.recv_ns == 2000);   /* clamped to the batch before */
    rk_log_reader_destroy(&r);
    RK_CHECK(rk_log_reader_open(log, 1000, &r) == 0);
    RK_CHECK(rk_log_reader_next(r, &v) == RK_LOG_EOF);
    rk_log_reader_destroy(&r);
    rk_log_destroy(&log);
}

/* A reader's snapshot does not move while the writer appends. */
static void test_reader_snapshot_is_stable(void)
{
    struct rk_log *log = open_log();
    struct rk_log_reader *r;
    struct rk_log_view v;
    uint64_t n = 0;
    RK_CHECK(rk_log_reader_open(log, 1, &r) == 0);
    append_n(log, 2, 4000, "e");
    while (rk_log_reader_next(r, &v) == 0)
        n++;
    RK_CHECK(n == 25);
    RK_CHECK(rk_log_reader_head(r) == 25);
    rk_log_reader_destroy(&r);
    RK_CHECK(check_whole_log(log) == 27);
    rk_log_destroy(&log);
}

static void test_tampering_breaks_chain(void)
{
    /* Rewrite record 10's event in place through LMDB, as an attacker with
     * file access could, and check the chain no longer matches. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    unsigned char key[8] = {0, 0, 0, 0, 0, 0, 0, 10};
    MDB_val k = {8, key}, v;
    RK_CHECK(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 8);
    mdb_env_set_mapsize(env, 64 << 20);
    RK_CHECK(mdb_env_open(env, dir, 0, 0640) == 0);
    RK_CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    RK_CHECK(mdb_dbi_open(txn, "events", 0, &dbi) == 0);
    RK_CHECK(mdb_get(txn, dbi, &k, &v) == 0);
    unsigned char *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size - 1] ^= 1;
    MDB_val nv = {v.mv_size, copy};
    RK_CHECK(mdb_put(txn, dbi, &k, &nv, 0) == 0);
    RK_CHECK(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
    free(copy);

    struct rk_log *log = open_log();
    struct rk_log_verdict verdict;
    RK_CHECK(rk_log_verify(log, &verdict, NULL, 0, NULL) == 0);
    RK_CHECK(verdict.bad_seq == 10);
    RK_CHECK(verdict.records == 9 && verdict.last_seq == 9);
    RK_CHECK(strstr(verdict.why, "chain hash") != NULL);
    rk_log_destroy(&log);

    /* The read-only open sees the same, and cannot append. */
    char why[256];
    RK_CHECK(rk_log_open_readonly(&log, dir, why, sizeof why) == 0);
    RK_CHECK(log && rk_log_verify(log, &verdict, NULL, 0, NULL) == 0 && verdict.bad_seq == 10);
    struct rk_log_rec rec = {.event = "x", .event_len = 1};
    RK_CHECK(log && rk_log_append(log, &rec, 1, 1) == EACCES);
    rk_log_destroy(&log);
}

static int progress_calls;
static void count_progress(uint64_t records, void *arg)
{
    (void)records;
    (void)arg;
    progress_calls++;
}

static void test_verify_intact_log(void)
{
    struct rk_log *log = open_log();
    struct rk_log_verdict v;
    RK_CHECK(rk_log_verify(log, &v, count_progress, 2, NULL) == 0);
    RK_CHECK(v.bad_seq == 0 && v.records == rk_log_last_seq(log) && v.records > 0);
    RK_CHECK(memcmp(v.head, rk_log_head_hash(log), RK_LOG_HASH_BYTES) == 0);
    RK_CHECK(progress_calls == (int)(v.records / 2));
    rk_log_destroy(&log);
}

/* Producer ids that are prefixes of one another must not see each
 * other's numbers; the index survives a reopen. */
static void test_producer_index(void)
{
    struct rk_log *log = open_log();
    const char *ids[3] = {"agent-27", "agent-271004", "agent-2"};
    uint64_t numbers[3] = {5, 9, 1};
    struct rk_log_rec recs[3];
    for (int i = 0; i < 3; i++)
        recs[i] = (struct rk_log_rec){.event = "e", .event_len = 1, .producer = ids[i],
                                      .producer_len = strlen(ids[i]), .producer_seq = numbers[i]};
    RK_CHECK(rk_log_append(log, recs, 3, 1) == 0);
    rk_log_destroy(&log);

    log = open_log();
    for (int i = 0; i < 3; i++) {
        uint64_t last = 99, seq = 0;
        int64_t t = 0;
        RK_CHECK(rk_log_producer_last(log, ids[i], strlen(ids[i]), &last) == 0);
        RK_CHECK(last == numbers[i]);
        RK_CHECK(rk_log_producer_find(log, ids[i], strlen(ids[i]), numbers[i], &seq, &t) == 0);
        RK_CHECK(seq == recs[i].seq && t == recs[i].recv_ns);
        RK_CHECK(rk_log_producer_find(log, ids[i], strlen(ids[i]), numbers[i] + 1, &seq, &t) ==
                 RK_LOG_EOF);
    }
    uint64_t last = 99;
    RK_CHECK(rk_log_producer_last(log, "agent-3", 7, &last) == 0 && last == 0);
    RK_CHECK(rk_log_producer_last(log, "zzz", 3, &last) == 0 && last == 0);
    /* the same (producer, number) twice is refused by the index */
    struct rk_log_rec again = recs[1];
    uint64_t head = rk_log_last_seq(log);
    RK_CHECK(rk_log_append(log, &again, 1, 2) == MDB_KEYEXIST);
    RK_CHECK(rk_log_last_seq(log) == head);
    check_whole_log(log);
    rk_log_destroy(&log);
}

static struct rk_log_rec entity_rec(const char *id, const char *muni, uint16_t fy, uint8_t type)
{
    return (struct rk_log_rec){.event = "e", .event_len = 1,
                               .tags = {.type = type, .fiscal_year = fy, .entity = id,
                                        .entity_len = strlen(id)},
                               .tags.municipality = {muni[0], muni[1], muni[2], muni[3], muni[4], muni[5]}};
}

/* The snapshot questions of test_entity_index, asked of one reader. */
static void check_entities(struct rk_log *log, uint64_t base)
{
    struct rk_log_reader *r;
    struct rk_log_entity e;
    uint64_t want_all[] = {base + 6, base + 5, base + 4, base + 2}; /* key order: A < K */
    uint64_t got[8], n = 0, prev;
    RK_CHECK(rk_log_reader_open(log, 1, &r) == 0);
    size_t after_len = 0;
    unsigned char after[RK_LOG_ENTITY_KEY_MAX];
    while (n < 8 && rk_log_reader_entity_next(r, after, after_len, base + 7, &e) == 0) {
        got[n++] = e.seq;
        memcpy(after, e.key, e.key_len);
        after_len = e.key_len;
    }
    RK_CHECK(n == 4);
    /* 'A' entities sort first, REQ-1 (length 5) before REQ-10; then 'K' by fiscal year */
    RK_CHECK(got[0] == want_all[2] && got[1] == want_all[3]);
    RK_CHECK(got[2] == want_all[0] && got[3] == want_all[1]);
    /* as of base+3: REQ-1 at its request, KPI-A 2024 at base+3, no FY2025 yet */
    RK_CHECK(rk_log_reader_entity_next(r, NULL, 0, base + 3, &e) == 0 && e.seq == base + 1);
    RK_CHECK(rk_log_reader_entity_prev(r, &e, e.seq, &prev) == RK_LOG_EOF);
    RK_CHECK(rk_log_reader_entity_next(r, e.key, e.key_len, base + 3, &e) == 0 && e.seq == base + 2);
    RK_CHECK(rk_log_reader_entity_next(r, e.key, e.key_len, base + 3, &e) == 0 && e.seq == base + 3);
    RK_CHECK(rk_log_reader_entity_next(r, e.key, e.key_len, base + 3, &e) == RK_LOG_EOF);
    /* as of base+5: REQ-1 at its offer, REQ-10, KPI-A 2024 still at base+3, FY2025 */
    uint64_t want_5[] = {base + 4, base + 2, base + 3, base + 5};
    for (int i = 0; i < 4; i++)
        RK_CHECK(rk_log_reader_entity_next(r, i ? e.key : NULL, i ? e.key_len : 0, base + 5,
                                           &e) == 0 && e.seq == want_5[i]);
    RK_CHECK(rk_log_reader_entity_next(r, e.key, e.key_len, base + 5, &e) == RK_LOG_EOF);
    /* walking back through REQ-1's and KPI-A 2024's histories */
    RK_CHECK(rk_log_reader_entity_next(r, NULL, 0, base + 7, &e) == 0 && e.seq == base + 4);
    RK_CHECK(rk_log_reader_entity_prev(r, &e, e.seq, &prev) == 0 && prev == base + 1);
    struct rk_log_view v;
    RK_CHECK(rk_log_reader_get(r, prev, &v) == 0 && v.tags.type == 2 && v.seq == prev);
    RK_CHECK(rk_log_reader_get(r, base + 100, &v) == RK_LOG_EOF);
    RK_CHECK(rk_log_reader_entity_next(r, e.key, e.key_len, base + 7, &e) == 0);
    RK_CHECK(rk_log_reader_entity_next(r, e.key, e.key_len, base + 7, &e) == 0 && e.seq == base + 6);
    RK_CHECK(rk_log_reader_entity_prev(r, &e, e.seq, &prev) == 0 && prev == base + 3);
    RK_CHECK(rk_log_reader_entity_prev(r, &e, prev, &prev) == RK_LOG_EOF);
    rk_log_reader_destroy(&r);
}

static uint64_t indexed_now(struct rk_log *log)
{
    struct rk_log_reader *r;
    RK_CHECK(rk_log_reader_open(log, 1, &r) == 0);
    uint64_t indexed = rk_log_reader_indexed(r);
    rk_log_reader_destroy(&r);
    return indexed;
}

/* Entities: ids that are prefixes of one another stay apart, the latest
 * record at or before any sequence is found, and earlier ones walk back;
 * the same answers whether the entries wait in memory, are in the index,
 * or are split between the two. */
static void test_entity_index(void)
{
    static const int splits[] = {0, 3, 6, 7};
    for (size_t i = 0; i < sizeof splits / sizeof splits[0]; i++) {
        int split = splits[i];
        char sub[64];
        struct rk_log *log = NULL;
        struct rk_log_options opt = {.durability = RK_LOG_OS, .map_size = 1 << 20};
        snprintf(sub, sizeof sub, "%s/entities-%d", dir, split);
        RK_CHECK(mkdir(sub, 0700) == 0);
        RK_CHECK(rk_log_open(&log, sub, &opt, NULL, 0) == 0);
        uint64_t base = rk_log_last_seq(log);
        struct rk_log_rec recs[7] = {
            entity_rec("REQ-1", "304280", 0, 2),      /* base+1: aid.request */
            entity_rec("REQ-10", "304280", 0, 2),     /* base+2 */
            entity_rec("KPI-A", "281000", 2024, 1),   /* base+3: kpi.update */
            entity_rec("REQ-1", "271004", 0, 3),      /* base+4: an offer */
            entity_rec("KPI-A", "281000", 2025, 1),   /* base+5: another fiscal year */
            entity_rec("KPI-A", "281000", 2024, 1),   /* base+6: supersedes base+3 */
            entity_rec("", "281000", 0, 1),           /* base+7: names no entity */
        };
        /* The first `split` records reach the index, the rest wait (at
         * time 5 they are not due for 0.2 s). */
        if (split) {
            RK_CHECK(rk_log_append(log, recs, (size_t)split, 5) == 0);
            RK_CHECK(rk_log_index_flush(log, 5, 1) == 0);
        }
        if (split < 7)
            RK_CHECK(rk_log_append(log, recs + split, (size_t)(7 - split), 5) == 0);
        RK_CHECK(rk_log_index_flush(log, 6, 0) == 0);
        /* base+7 names no entity but has a place: it waits like the rest */
        RK_CHECK(indexed_now(log) == base + (uint64_t)split);
        check_entities(log, base);
        RK_CHECK(rk_log_index_flush(log, 5 + RK_LOG_INDEX_LAG_NS, 0) == 0);
        RK_CHECK(indexed_now(log) == base + 7);
        check_entities(log, base);
        check_whole_log(log);
        rk_log_destroy(&log);
    }
}

/* A writer that dies with entries waiting loses only them: the next open
 * reads them again from the records. */
static void test_entity_index_after_crash(void)
{
    struct rk_log *log = open_log();
    uint64_t base = rk_log_last_seq(log);
    rk_log_destroy(&log);
    pid_t pid = fork();
    if (pid == 0) {
        struct rk_log *child = NULL;
        struct rk_log_options opt = {.durability = RK_LOG_OS, .map_size = 64 << 20};
        struct rk_log_rec recs[2] = {entity_rec("REQ-crash", "304280", 0, 2),
                                     entity_rec("KPI-crash", "281000", 2025, 1)};
        int ok = rk_log_open(&child, dir, &opt, NULL, 0) == 0 &&
                 rk_log_append(child, recs, 2, 5) == 0;
        _exit(ok ? 0 : 1); /* no rk_log_destroy: the waiting entries die here */
    }
    int status = -1;
    RK_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
             WEXITSTATUS(status) == 0);
    log = open_log();
    RK_CHECK(rk_log_last_seq(log) == base + 2);
    struct rk_log_reader *r;
    struct rk_log_entity e;
    unsigned char key[RK_LOG_ENTITY_KEY_MAX];
    struct rk_log_tags t = {.type = 2, .entity = "REQ-crash", .entity_len = 9};
    size_t klen = rk_log_entity_key(&t, key);
    RK_CHECK(rk_log_reader_open(log, 1, &r) == 0);
    RK_CHECK(rk_log_reader_indexed(r) == base + 2);
    /* the entity just before REQ-crash in key order is followed by it */
    int found = 0;
    size_t after_len = 0;
    unsigned char after[RK_LOG_ENTITY_KEY_MAX];
    while (rk_log_reader_entity_next(r, after, after_len, base + 2, &e) == 0) {
        found += e.key_len == klen && memcmp(e.key, key, klen) == 0 && e.seq == base + 1;
        found += e.seq == base + 2;
        memcpy(after, e.key, e.key_len);
        after_len = e.key_len;
    }
    RK_CHECK(found == 2);
    rk_log_reader_destroy(&r);
    rk_log_destroy(&log);
}

/* Retention deletes the oldest records with their index entries; the chain
 * still verifies from what it kept, and time seeks start at the new first. */
static void test_prune(void)
{
    char pdir[] = "/tmp/rk_log_prune.XXXXXX";
    struct rk_log *log = NULL;
    struct rk_log_options opt = {.durability = RK_LOG_OS, .map_size = 64 << 20};
    struct rk_log_verdict verdict;
    struct rk_log_reader *r;
    struct rk_log_entity e;
    uint64_t deleted, seq;
    char why[256];
    RK_CHECK(mkdtemp(pdir) != NULL);
    RK_CHECK(rk_log_open(&log, pdir, &opt, why, sizeof why) == 0);
    for (int64_t t = 1; t <= 10; t++) {           /* seq t received at t * 1000 */
        struct rk_log_rec rec = entity_rec(t <= 5 ? "REQ-OLD" : "REQ-NEW", "304280", 0, 2);
        rec.producer = "agent";
        rec.producer_len = 5;
        rec.producer_seq = (uint64_t)t;
        RK_CHECK(rk_log_append(log, &rec, 1, t * 1000) == 0);
    }
    RK_CHECK(rk_log_prune(log, 4000, 0, 2, &deleted) == 0 && deleted == 2); /* max per call */
    RK_CHECK(rk_log_prune(log, 4000, 0, 100, &deleted) == 0 && deleted == 1);
    RK_CHECK(rk_log_prune(log, 4000, 0, 100, &deleted) == 0 && deleted == 0);
    RK_CHECK(rk_log_verify(log, &verdict, NULL, 0, NULL) == 0);
    RK_CHECK(verdict.bad_seq == 0 && verdict.first_seq == 4 && verdict.records == 7);
    RK_CHECK(verdict.last_seq == 10);
    /* the producer index forgot numbers 1..3 only */
    int64_t t;
    RK_CHECK(rk_log_producer_find(log, "agent", 5, 3, &seq, &t) == RK_LOG_EOF);
    RK_CHECK(rk_log_producer_find(log, "agent", 5, 4, &seq, &t) == 0 && seq == 4);
    RK_CHECK(rk_log_reader_open(log, 1, &r) == 0);
    RK_CHECK(rk_log_reader_seek_time(r, 0, &seq) == 0 && seq == 4);
    RK_CHECK(rk_log_reader_seek_time(r, 6500, &seq) == 0 && seq == 7);
    /* REQ-OLD as of seq 3 has nothing left; as of 5 its latest is 5 */
    RK_CHECK(rk_log_reader_entity_next(r, NULL, 0, 3, &e) == RK_LOG_EOF);
    RK_CHECK(rk_log_reader_entity_next(r, NULL, 0, 5, &e) == 0 && e.seq == 5);
    rk_log_reader_destroy(&r);
    /* a size bound of one byte deletes all but the newest record */
    RK_CHECK(rk_log_prune(log, 0, 1, 100, &deleted) == 0 && deleted == 6);
    RK_CHECK(rk_log_verify(log, &verdict, NULL, 0, NULL) == 0);
    RK_CHECK(verdict.bad_seq == 0 && verdict.first_seq == 10 && verdict.records == 1);
    rk_log_destroy(&log);
    /* after a reopen the log goes on from its head */
    RK_CHECK(rk_log_open(&log, pdir, &opt, why, sizeof why) == 0);
    struct rk_log_rec more = entity_rec("REQ-NEW", "304280", 0, 3);
    RK_CHECK(rk_log_append(log, &more, 1, 11000) == 0 && more.seq == 11);
    RK_CHECK(rk_log_verify(log, &verdict, NULL, 0, NULL) == 0 && verdict.bad_seq == 0);
    RK_CHECK(verdict.records == 2);
    rk_log_destroy(&log);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", pdir);
    RK_CHECK(system(cmd) == 0);
}

/* A batch that fills the map is aborted, the map grows and the batch is
 * written again; every entity waiting in the queue before it survives,
 * though the failed index write had sorted the queue. */
static void test_index_survives_map_growth(void)
{
    enum { BATCHES = 400, PER = 100, N = BATCHES * PER };
    char gdir[] = "/tmp/rk_log_grow.XXXXXX", cmd[128], ids[PER][16], body[200];
    struct rk_log *log = NULL;
    struct rk_log_options opt = {.durability = RK_LOG_OS, .map_size = 1 << 20};
    struct rk_log_rec recs[PER];
    struct rk_log_reader *r;
    struct rk_log_entity e;
    unsigned char after[RK_LOG_ENTITY_KEY_MAX];
    size_t after_len = 0, n = 0;
    int64_t now = 1000000000;
    memset(body, 0x90, sizeof body);
    RK_CHECK(mkdtemp(gdir) != NULL);
    RK_CHECK(rk_log_open(&log, gdir, &opt, NULL, 0) == 0);
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < PER; i++) {
            /* ids in no key order, so the sort moves the batch's entries */
            snprintf(ids[i], sizeof ids[i], "R%08d", (b * PER + i) * 7919 % N);
            recs[i] = entity_rec(ids[i], i % 2 ? "131016" : "271004", 0, 2);
            recs[i].event = body;
            recs[i].event_len = sizeof body;
        }
        now += RK_LOG_INDEX_LAG_NS / 4; /* an index write every fourth batch */
        RK_CHECK(rk_log_append(log, recs, PER, now) == 0);
    }
    RK_CHECK(rk_log_map_grown(log) > 0); /* the case under test happened */
    RK_CHECK(rk_log_index_flush(log, 0, 1) == 0);
    RK_CHECK(rk_log_reader_open(log, 1, &r) == 0);
    while (rk_log_reader_entity_next(r, after, after_len, N, &e) == 0) {
        memcpy(after, e.key, e.key_len);
        after_len = e.key_len;
        n++;
    }
    RK_CHECK(n == N);
    rk_log_reader_destroy(&r);
    rk_log_destroy(&log);
    snprintf(cmd, sizeof cmd, "rm -rf %s", gdir);
    RK_CHECK(system(cmd) == 0);
}

/* ---- places index --------------------------------------------------------- */

static const char *const place_munis[] = {"281000", "271004", "131016", "282014", "011002"};

/* Appends n records from place_munis in turn, in batches of 1..7. */
static void append_places(struct rk_log *log, int n, int64_t now)
{
    struct rk_log_rec recs[7];
    for (int done = 0; done < n;) {
        int k = 1 + done % 7 < n - done ? 1 + done % 7 : n - done;
        for (int i = 0; i < k; i++)
            recs[i] = entity_rec("REQ-P", place_munis[(rk_log_last_seq(log) + (uint64_t)i) % 5], 0, 2);
        RK_CHECK(rk_log_append(log, recs, (size_t)k, now) == 0);
        done += k;
    }
}

/* The walk for `mask` from `from` against every record read in order:
 * the same sequences up to the reach, which is where the index ends. */
static void check_places(struct rk_log *log, uint64_t mask, uint64_t from, uint64_t want_reach)
{
    struct rk_log_reader *r;
    struct rk_log_view v;
    uint64_t reach, seq, want[4096], got[4096];
    size_t nwant = 0, ngot = 0;
    int rc;
    RK_CHECK(rk_log_reader_open(log, from, &r) == 0);
    RK_CHECK(rk_log_reader_places_start(r, mask, from, &reach) == 0 && reach == want_reach);
    while ((rc = rk_log_reader_next(r, &v)) == 0 && v.seq <= reach && nwant < 4096) {
        if (mask >> rk_muni_prefecture(v.tags.municipality) & 1)
            want[nwant++] = v.seq;
    }
    while ((rc = rk_log_reader_places_next(r, &seq)) == 0 && ngot < 4096)
        if (rk_log_reader_get(r, seq, &v) == 0) /* retention may have deleted it */
            got[ngot++] = seq;
    RK_CHECK(rc == RK_LOG_EOF);
    RK_CHECK(ngot == nwant && memcmp(got, want, nwant * sizeof *want) == 0);
    rk_log_reader_destroy(&r);
}

static void check_places_all(struct rk_log *log, uint64_t reach)
{
    uint64_t one = 1ull << 28, two = 1ull << 28 | 1ull << 13, none = 1ull << 40;
    uint64_t head = rk_log_last_seq(log);
    for (uint64_t from = 1; from <= head + 1; from += 1 + from / 3) {
        check_places(log, one, from, reach);
        check_places(log, two, from, reach);
        check_places(log, none, from, reach);
    }
}

/* Drops "places" and its mark, as a log from before it has them. */
static void forget_places(const char *path)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi places, meta;
    MDB_val k = {6, "places"};
    RK_CHECK(mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 8) == 0 &&
             mdb_env_open(env, path, 0, 0644) == 0 && mdb_txn_begin(env, NULL, 0, &txn) == 0);
    RK_CHECK(mdb_dbi_open(txn, "places", 0, &places) == 0 && mdb_drop(txn, places, 1) == 0);
    RK_CHECK(mdb_dbi_open(txn, "meta", 0, &meta) == 0 && mdb_del(txn, meta, &k, NULL) == 0);
    RK_CHECK(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
}

/* The places index gives exactly the records of the prefectures asked for,
 * as far as it reaches: whatever the batches, after a reopen, in a log
 * written before it existed (read again at the first open), and after
 * retention (chunks it emptied are gone; what it deleted is not read). */
static void test_places_index(void)
{
    char pdir[] = "/tmp/rk_log_places.XXXXXX";
    struct rk_log *log = NULL, *ro = NULL;
    struct rk_log_options opt = {.durability = RK_LOG_OS, .map_size = 64 << 20};
    uint64_t deleted;
    char why[256], cmd[128];
    RK_CHECK(mkdtemp(pdir) != NULL);
    RK_CHECK(rk_log_open(&log, pdir, &opt, why, sizeof why) == 0);
    append_places(log, 200, 1000);
    uint64_t indexed = indexed_now(log);
    RK_CHECK(indexed < 200); /* the last entries wait: the walk stops short */
    check_places_all(log, indexed);
    RK_CHECK(rk_log_index_flush(log, 0, 1) == 0);
    check_places_all(log, 200);
    append_places(log, 100, 2000);
    rk_log_destroy(&log);
    forget_places(pdir);
    RK_CHECK(rk_log_open_readonly(&ro, pdir, why, sizeof why) == 0);
    check_places_all(ro, 0); /* read-only, no index yet: nothing to walk */
    rk_log_destroy(&ro);
    RK_CHECK(rk_log_open(&log, pdir, &opt, why, sizeof why) == 0);
    check_places_all(log, 300);
    RK_CHECK(rk_log_prune(log, 0, 1, 150, &deleted) == 0 && deleted == 150);
    check_places_all(log, 300);
    RK_CHECK(rk_log_prune(log, 0, 1, 1000, &deleted) == 0 && deleted == 149);
    check_places_all(log, 300);
    rk_log_destroy(&log);
    snprintf(cmd, sizeof cmd, "rm -rf %s", pdir);
    RK_CHECK(system(cmd) == 0);
}

/* Takes up every free page of the log, with the map no larger than its
 * used pages (LMDB's least), so that nothing more fits without growing. */
static void fill_free_pages(const char *path)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi filler;
    static char junk[1000];
    int rc = 0;
    RK_CHECK(mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 9) == 0 &&
             mdb_env_set_mapsize(env, 1) == 0 && mdb_env_open(env, path, 0, 0644) == 0);
    for (unsigned i = 0; i < 100000 && rc == 0; i++) {
        MDB_val k = {sizeof i, &i}, v = {sizeof junk, junk};
        RK_CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
        if ((rc = mdb_dbi_open(txn, "filler", MDB_CREATE | MDB_INTEGERKEY, &filler)) == 0 &&
            (rc = mdb_put(txn, filler, &k, &v, 0)) == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    RK_CHECK(rc == MDB_MAP_FULL);
    mdb_env_close(env);
}

/* A log from before the places index, opened with its map as full as
 * LMDB leaves it (no larger than its used pages): the first open grows
 * the map to index it, rather than failing. */
static void test_places_backfill_grows_map(void)
{
    char pdir[] = "/tmp/rk_log_backfill.XXXXXX", why[256], cmd[128];
    struct rk_log *log = NULL;
    struct rk_log_options opt = {.durability = RK_LOG_OS, .map_size = 1 << 20};
    RK_CHECK(mkdtemp(pdir) != NULL);
    RK_CHECK(rk_log_open(&log, pdir, &opt, why, sizeof why) == 0);
    append_places(log, 3000, 1000);
    rk_log_destroy(&log);
    forget_places(pdir);
    fill_free_pages(pdir);
    opt.map_size = 4096; /* less than the file holds, as a grown log's next open asks */
    int rc = rk_log_open(&log, pdir, &opt, why, sizeof why);
    if (rc)
        fprintf(stderr, "open: %s\n", why);
    RK_CHECK(rc == 0);
    if (rc)
        return;
    RK_CHECK(rk_log_map_grown(log) > 0); /* the case under test happened */
    check_places(log, 1ull << 28, 1, 3000);
    rk_log_destroy(&log);
    snprintf(cmd, sizeof cmd, "rm -rf %s", pdir);
    RK_CHECK(system(cmd) == 0);
}

/* ---- identity: a restart keeps it; a copy, a restored backup, a lost
 * marker get a new one (rk_log_identity.c) */

static struct rk_log *open_in(const char *d)
{
    struct rk_log *log = NULL;
    struct rk_log_options opt = {.durability = RK_LOG_OS, .map_size = 8 << 20};
    char why[256];
    int rc = rk_log_open(&log, d, &opt, why, sizeof why);
    if (rc)
        fprintf(stderr, "open %s: %s\n", d, why);
    RK_CHECK(rc == 0 && log != NULL);
    return log;
}

/* Copies file `from` to `to`; in place (same inode) when `to` exists. */
static void copy_file(const char *from, const char *to)
{
    static char buf[1 << 16];
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    size_t n;
    RK_CHECK(in && out);
    while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0)
        RK_CHECK(fwrite(buf, 1, n, out) == n);
    if (in)
        fclose(in);
    if (out)
        fclose(out);
}

/* Opens `d`, checks whether it kept `id` (want_new 0) or got a new one. */
static void expect_id(const char *d, const char *id, int want_new, const char *why_part,
                      char out[RK_LOG_ID_HEX])
{
    struct rk_log *log = open_in(d);
    if (!log)
        return;
    const char *reason = rk_log_id_reason(log);
    RK_CHECK(strlen(rk_log_id(log)) == 32 && strspn(rk_log_id(log), "0123456789abcdef") == 32);
    RK_CHECK((strcmp(rk_log_id(log), id) != 0) == want_new);
    RK_CHECK((reason != NULL) == want_new);
    if (want_new && reason && why_part && !strstr(reason, why_part))
        fprintf(stderr, "reason \"%s\" lacks \"%s\"\n", reason, why_part);
    RK_CHECK(!want_new || !why_part || (reason && strstr(reason, why_part)));
    if (want_new && id[0])
        RK_CHECK_STR(rk_log_id_previous(log), id);
    snprintf(out, RK_LOG_ID_HEX, "%s", rk_log_id(log));
    rk_log_destroy(&log);
}

static void test_identity(void)
{
    char a[] = "/tmp/rk_log_id.XXXXXX", c[] = "/tmp/rk_log_idc.XXXXXX", path[256], path2[256];
    char id[RK_LOG_ID_HEX], id2[RK_LOG_ID_HEX], id3[RK_LOG_ID_HEX];
    RK_CHECK(mkdtemp(a) && mkdtemp(c));
    expect_id(a, "", 1, "new log", id);
    struct rk_log *log = open_in(a);
    RK_CHECK(log && rk_log_epoch(log) == 3); /* open 1, close 2, open 3 */
    append_n(log, 3, 1000, "id");
    rk_log_destroy(&log);
    expect_id(a, id, 0, NULL, id2);          /* a restart keeps it */
    /* a read-only open says it and changes nothing */
    RK_CHECK(rk_log_open_readonly(&log, a, NULL, 0) == 0);
    RK_CHECK_STR(rk_log_id(log), id);
    RK_CHECK(rk_log_id_reason(log) == NULL);
    rk_log_destroy(&log);
    expect_id(a, id, 0, NULL, id2);

    /* a copy of data.mdb alone (what mdb_copy makes): new; the original keeps its own */
    snprintf(path, sizeof path, "%s/data.mdb", a);
    snprintf(path2, sizeof path2, "%s/data.mdb", c);
    copy_file(path, path2);
    expect_id(c, id, 1, "a copy or a restored backup", id2);
    expect_id(c, id2, 0, NULL, id3);
    expect_id(a, id, 0, NULL, id3);
    /* the whole directory copied, marker and all: data.mdb is another file */
    snprintf(path, sizeof path, "%s/log-identity", a);
    snprintf(path2, sizeof path2, "%s/log-identity", c);
    copy_file(path, path2);
    snprintf(path, sizeof path, "%s/data.mdb", a);
    snprintf(path2, sizeof path2, "%s/data.mdb", c);
    copy_file(path, path2);
    expect_id(c, id, 1, "another file", id2);

    /* a backup put back over data.mdb in place, after the log moved on */
    char saved[] = "/tmp/rk_log_idb.XXXXXX";
    int fd = mkstemp(saved);
    RK_CHECK(fd >= 0);
    close(fd);
    copy_file(path, saved);
    log = open_in(a);
    append_n(log, 2, 2000, "later");
    rk_log_destroy(&log);
    copy_file(saved, path);
    expect_id(a, id, 1, "restored backup", id2);
    RK_CHECK(log == NULL);
    /* the marker deleted: new */
    snprintf(path, sizeof path, "%s/log-identity", a);
    RK_CHECK(unlink(path) == 0);
    expect_id(a, id2, 1, "no log-identity", id3);
    unlink(saved);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", a, c);
    RK_CHECK(system(cmd) == 0);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RK_RUN(test_empty_log);
    RK_RUN(test_identity);
    RK_RUN(test_batches_are_dense_and_chained);
    RK_RUN(test_restart_continues);
    RK_RUN(test_reader_from_middle_sees_stored_bytes);
    RK_RUN(test_reader_snapshot_is_stable);
    RK_RUN(test_producer_index);
    RK_RUN(test_entity_index);
    RK_RUN(test_entity_index_after_crash);
    RK_RUN(test_prune);
    RK_RUN(test_places_index);
    RK_RUN(test_index_survives_map_growth);
    RK_RUN(test_places_backfill_grows_map);
    RK_RUN(test_verify_intact_log);
    RK_RUN(test_tampering_breaks_chain); /* last: it leaves the log damaged */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rk_test_result();
}

/* rk_apply: the state machine a replica applies. The same batches applied
 * to two empty logs give the same records, aid state and chain head, also
 * when one of them has to grow its map midway or restarts between
 * batches; the stored aid state is always the fold of the stored events;
 * a log of schema 3 is migrated once; retries are stored once. */
#include "rk_apply.h"
#include "rk_json.h"
#include "rk_test.h"

#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_EVENTS 512
#define PRODUCER "apply-test"

struct event {
    unsigned char *buf;
    size_t len;
};

static struct event events[MAX_EVENTS];
static size_t nevents;

/* One event's item storage: the entity the record's tags point at. */
static char entities[MAX_EVENTS * 2][RK_ID_MAX + 1];

static void load_events(void)
{
    char path[512], line[8192];
    FILE *f = fopen(rk_test_shared("disaster_scenario.jsonl", path, sizeof path), "r");
    RK_CHECK(f != NULL);
    while (f && nevents < MAX_EVENTS && fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        if (j && rk_json_to_msgpack(j, &sb) == 0) {
            events[nevents].buf = (unsigned char *)sb.data;
            events[nevents].len = sb.size;
            nevents++;
        } else {
            msgpack_sbuffer_destroy(&sb);
        }
        json_decref(j);
    }
    if (f)
        fclose(f);
    RK_CHECK(nevents > 100);
}

/* Event `e` as ingest admits it, numbered `number` by PRODUCER. */
static void make_item(struct rk_apply_item *it, size_t slot, size_t e, uint64_t number)
{
    struct rk_event_info info;
    struct rk_verror verr;
    memset(it, 0, sizeof *it);
    RK_CHECK(rk_aid_event_validate(events[e].buf, events[e].len, 0, &info, &it->aid, &verr) ==
             RK_V_OK);
    snprintf(entities[slot], sizeof entities[slot], "%s",
             info.type == RK_EV_KPI_UPDATE ? info.kpi_id : info.request_id);
    it->rec = (struct rk_log_rec){
        .event = events[e].buf, .event_len = events[e].len,
        .producer = PRODUCER, .producer_len = strlen(PRODUCER), .producer_seq = number,
        .tags = {.type = (uint8_t)info.type, .fiscal_year = (uint16_t)info.fiscal_year,
                 .entity = entities[slot], .entity_len = strlen(entities[slot])}};
    memcpy(it->rec.tags.municipality, info.municipality, 6);
}

/* What each applied item came to, to compare two runs. */
struct result {
    enum rk_apply_outcome outcome;
    uint64_t seq;
    int64_t recv_ns;
    enum rk_aid_err code;
};

static struct result results_a[MAX_EVENTS * 2], results_b[MAX_EVENTS * 2];

/* Batch k: events [first(k), first(k+1)), sizes cycling 1..9, with the
 * first event of every fifth batch sent again (a retry) at its end.
 * Receive times step forward but sometimes back, which the log clamps. */
static size_t batch_first(size_t k)
{
    size_t first = 0;
    for (size_t i = 0; i < k; i++)
        first += 1 + i % 9;
    return first;
}

static size_t nbatches(void)
{
    size_t k = 0;
    while (batch_first(k) < nevents)
        k++;
    return k;
}

static int64_t batch_time(size_t k)
{
    return 1800000000000000000LL + (int64_t)(k % 7 == 3 ? k - 2 : k) * 1000000;
}

/* The requester of request `id`: the publisher of its first aid.request
 * in the scenario, found without the lifecycle. */
static void scenario_requester(const char *id, char out[7])
{
    struct rk_aid_event ev;
    out[0] = '\0';
    for (size_t e = 0; e < nevents && !out[0]; e++)
        if (rk_aid_event_parse(events[e].buf, events[e].len, &ev, NULL, 0) == RK_V_OK &&
            ev.type == RK_EV_AID_REQUEST && strcmp(ev.request_id, id) == 0)
            memcpy(out, ev.municipality, 7);
}

/* A stored aid event names its request's requester, for its requester
 * topic (PROTOCOL.md 3.3), also after a restart emptied the cache. */
static void check_requester(const struct rk_apply_item *it)
{
    char want[7];
    if (it->outcome != RK_APPLY_STORED || it->aid.type < RK_EV_AID_REQUEST) {
        RK_CHECK(it->requester[0] == '\0');
        return;
    }
    scenario_requester(it->aid.request_id, want);
    RK_CHECK(want[0] && strcmp(it->requester, want) == 0);
}

/* Applies batches [from, to) to the log open in `ap`; fills res from
 * the item index batch_first(from) + retries so far. */
static void apply_batches(struct rk_apply *ap, size_t from, size_t to, struct result *res)
{
    static struct rk_apply_item items[16];
    for (size_t k = from; k < to; k++) {
        size_t first = batch_first(k), last = batch_first(k + 1), n = 0;
        if (last > nevents)
            last = nevents;
        for (size_t e = first; e < last; e++, n++)
            make_item(&items[n], 2 * e, e, e + 1);
        if (k % 5 == 4)
            make_item(&items[n++], 2 * first + 1, first, first + 1);
        struct rk_apply_stats st;
        RK_CHECK(rk_apply_batch(ap, items, n, batch_time(k), &st) == 0);
        RK_CHECK(st.stored + st.duplicates + st.refused == n);
        for (size_t i = 0; i < n; i++) {
            struct result *r = &res[2 * (first + i)];
            if (i == last - first)
                r = &res[2 * first + 1];
            *r = (struct result){items[i].outcome, items[i].rec.seq, items[i].rec.recv_ns,
                                 items[i].why.code};
            check_requester(&items[i]);
        }
        if (k % 5 == 4)
            RK_CHECK(items[n - 1].outcome == RK_APPLY_DUPLICATE &&
                     items[n - 1].rec.seq == items[0].rec.seq);
    }
}

static struct rk_log *open_log(const char *dir, uint64_t map_size)
{
    struct rk_log_options opt = {.durability = RK_LOG_OS, .map_size = map_size};
    struct rk_log *log = NULL;
    char why[256];
    RK_CHECK(rk_log_open(&log, dir, &opt, why, sizeof why) == 0);
    return log;
}

/* Every table of the environment, as mdb_dump prints it, without the
 * map size (a property of the file, not of its content), and without the
 * places index when `places` is 0. Caller frees. */
/* The log's identity and writer epoch ("meta": log_id, epoch) are the
 * copy's own, not the state machine's output: random, and moved on by
 * opens and closes. They are left out, key and value. */
static int own_meta(const char *line)
{
    return strcmp(line, " 6c6f675f6964\n") == 0 || strcmp(line, " 65706f6368\n") == 0;
}

static char *dump_env(const char *dir, int places)
{
    char cmd[600], line[4096], *out = NULL;
    size_t len = 0;
    int skip = 0, skip_value = 0;
    FILE *f = open_memstream(&out, &len);
    snprintf(cmd, sizeof cmd, "mdb_dump -a '%s'", dir);
    FILE *p = popen(cmd, "r");
    RK_CHECK(p != NULL && f != NULL);
    while (p && fgets(line, sizeof line, p)) {
        if (strncmp(line, "database=", 9) == 0)
            skip = !places && strcmp(line, "database=places\n") == 0;
        if (skip_value) {
            skip_value = 0;
            continue;
        }
        if (own_meta(line)) {
            skip_value = 1;
            continue;
        }
        if (!skip && strncmp(line, "mapsize=", 8) != 0)
            fputs(line, f);
    }
    RK_CHECK(p && pclose(p) == 0);
    fclose(f);
    return out;
}

/* The stored aid state is the fold of the stored aid events: each
 * request's stored bytes equal those of an in-memory fold of the records. */
static void check_state_is_fold(struct rk_log *log)
{
    struct rk_aid *fold = rk_aid_new();
    struct rk_log_reader *r;
    struct rk_log_view v;
    struct rk_aid_event ev;
    unsigned char buf[65536];
    RK_CHECK(rk_log_reader_open(log, 1, &r) == 0);
    while (rk_log_reader_next(r, &v) == 0)
        if (v.tags.type >= RK_EV_AID_REQUEST &&
            rk_aid_event_parse(v.event, v.event_len, &ev, NULL, 0) == RK_V_OK)
            rk_aid_apply(fold, &ev, NULL);
    size_t requests = rk_aid_request_count(fold), same = 0;
    struct rk_aid_request_view rv;
    for (size_t i = 0; rk_aid_request_at(fold, i, &rv) == 0; i++) {
        const void *val;
        size_t vlen;
        int found;
        size_t n = rk_aid_request_encode(fold, rv.request_id, buf, sizeof buf);
        RK_CHECK(rk_log_reader_state_get(r, RK_LOG_AID_REQUESTS, rv.request_id,
                                         strlen(rv.request_id), &found, &val, &vlen) == 0);
        same += found && vlen == n && memcmp(val, buf, n) == 0;
    }
    RK_CHECK(requests > 10 && same == requests);
    rk_log_reader_destroy(&r);
    rk_aid_destroy(&fold);
}

static void make_dir(char *tmpl)
{
    RK_CHECK(mkdtemp(tmpl) != NULL);
}

static void remove_dir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    RK_CHECK(system(cmd) == 0);
}

/* Where two dumps part, for the failure's message. */
static void report_difference(const char *x, const char *y)
{
    size_t i = 0, line = 1, start = 0;
    for (; x[i] && x[i] == y[i]; i++)
        if (x[i] == '\n') {
            line++;
            start = i + 1;
        }
    fprintf(stderr, "dumps differ at line %zu:\n  %.120s\n  %.120s\n", line, x + start,
            y + start);
}

/* Every prefecture's sequences in the places index of `dir`, as text. */
static char *places_of(const char *dir)
{
    struct rk_log *log = NULL;
    struct rk_log_reader *r;
    char why[256], *out = NULL;
    size_t len = 0;
    uint64_t reach, seq;
    FILE *f = open_memstream(&out, &len);
    RK_CHECK(rk_log_open_readonly(&log, dir, why, sizeof why) == 0);
    RK_CHECK(log && rk_log_reader_open(log, 1, &r) == 0);
    for (unsigned pp = 1; log && pp <= 47; pp++) {
        RK_CHECK(rk_log_reader_places_start(r, 1ull << pp, 1, &reach) == 0);
        RK_CHECK(reach == rk_log_last_seq(log));
        fprintf(f, "%u:", pp);
        while (rk_log_reader_places_next(r, &seq) == 0)
            fprintf(f, " %llu", (unsigned long long)seq);
        fputc('\n', f);
    }
    if (log)
        rk_log_reader_destroy(&r);
    rk_log_destroy(&log);
    fclose(f);
    return out;
}

static void check_same_places(const char *a, const char *b)
{
    char *pa = places_of(a), *pb = places_of(b);
    RK_CHECK(pa && pb && strlen(pa) > 200 && strcmp(pa, pb) == 0);
    free(pa);
    free(pb);
}

static void test_same_batches_same_log(void)
{
    char a[] = "/tmp/rk_apply_a.XXXXXX", b[] = "/tmp/rk_apply_b.XXXXXX";
    unsigned char head_a[RK_LOG_HASH_BYTES];
    struct rk_apply *ap;
    make_dir(a);
    make_dir(b);
    size_t nb = nbatches();

    /* a: in one go, with a map small enough to grow several times */
    struct rk_log *log = open_log(a, 64 << 10);
    RK_CHECK(rk_apply_open(&ap, log, NULL, NULL, NULL) == 0);
    apply_batches(ap, 0, nb, results_a);
    RK_CHECK(rk_log_map_grown(log) > 0); /* the case under test happened */
    memcpy(head_a, rk_log_head_hash(log), sizeof head_a);
    check_state_is_fold(log);
    rk_apply_destroy(&ap);
    rk_log_destroy(&log);

    /* b: a roomy map, and a restart (empty cache) halfway */
    log = open_log(b, 0);
    RK_CHECK(rk_apply_open(&ap, log, NULL, NULL, NULL) == 0);
    apply_batches(ap, 0, nb / 2, results_b);
    rk_apply_destroy(&ap);
    rk_log_destroy(&log);
    log = open_log(b, 0);
    struct rk_lifecycle_stats st;
    RK_CHECK(rk_apply_open(&ap, log, NULL, NULL, &st) == 0 && !st.migrated);
    apply_batches(ap, nb / 2, nb, results_b);
    RK_CHECK(memcmp(head_a, rk_log_head_hash(log), sizeof head_a) == 0);
    rk_apply_destroy(&ap);
    rk_log_destroy(&log);

    RK_CHECK(memcmp(results_a, results_b, sizeof results_a) == 0);
    size_t refused = 0, dup = 0;
    for (size_t i = 0; i < 2 * nevents; i++) {
        refused += results_a[i].outcome == RK_APPLY_REFUSED;
        dup += results_a[i].outcome == RK_APPLY_DUPLICATE;
    }
    RK_CHECK(refused >= 6 && dup > 0); /* the scenario's refusals, the retries */
    /* The places index is chunked by index writes, which a restart moves
     * (a close writes what waits): its content is compared by sequence. */
    char *da = dump_env(a, 0), *db = dump_env(b, 0);
    RK_CHECK(da && db && strlen(da) > 1000 && strcmp(da, db) == 0);
    if (da && db && strcmp(da, db) != 0)
        report_difference(da, db);
    RK_CHECK(da && strstr(da, "database=aid_requests") != NULL);
    free(da);
    free(db);
    check_same_places(a, b);

    /* c: like a but with a roomy map: byte for byte the same tables */
    char c[] = "/tmp/rk_apply_c.XXXXXX";
    make_dir(c);
    log = open_log(c, 0);
    RK_CHECK(rk_apply_open(&ap, log, NULL, NULL, NULL) == 0);
    apply_batches(ap, 0, nb, results_b);
    rk_apply_destroy(&ap);
    rk_log_destroy(&log);
    da = dump_env(a, 1);
    char *dc = dump_env(c, 1);
    RK_CHECK(da && dc && strcmp(da, dc) == 0);
    if (da && dc && strcmp(da, dc) != 0)
        report_difference(da, dc);
    free(da);
    free(dc);
    remove_dir(a);
    remove_dir(b);
    remove_dir(c);
}

/* Producer numbers in order (PROTOCOL.md 3.2): a retry within the batch
 * that stores the original is answered with the original's seq; a number
 * above the next is refused naming the next and uses nothing; a refusal
 * at admission uses its number, and a retry of it is refused the same way;
 * a number below the last that holds nothing is refused for good. */
static void test_numbers_in_order(void)
{
    char d[] = "/tmp/rk_apply_r.XXXXXX";
    struct rk_apply_item items[4];
    struct rk_apply *ap;
    make_dir(d);
    struct rk_log *log = open_log(d, 0);
    RK_CHECK(rk_apply_open(&ap, log, NULL, NULL, NULL) == 0);
    make_item(&items[0], 0, 0, 7); /* a new producer starts anywhere */
    make_item(&items[1], 1, 0, 7);
    make_item(&items[2], 2, 2, 9);
    make_item(&items[3], 3, 1, 8);
    RK_CHECK(rk_apply_batch(ap, items, 4, 1000, NULL) == 0);
    RK_CHECK(items[0].outcome == RK_APPLY_STORED && items[0].rec.seq == 1);
    RK_CHECK(items[1].outcome == RK_APPLY_DUPLICATE && items[1].rec.seq == 1);
    RK_CHECK(items[2].outcome == RK_APPLY_OUT_OF_ORDER && items[2].expected == 8);
    RK_CHECK(strcmp(items[2].code, "E_ORDER") == 0);
    RK_CHECK(items[3].outcome == RK_APPLY_STORED && items[3].rec.seq == 2);
    RK_CHECK(rk_log_last_seq(log) == 2);

    make_item(&items[0], 0, 2, 9);
    items[0].admission_code = "E_RANGE";
    snprintf(items[0].message, sizeof items[0].message, "request.quantity: must be 1..");
    make_item(&items[1], 1, 2, 9); /* its retry, now valid: still the first answer */
    make_item(&items[2], 2, 2, 10);
    make_item(&items[3], 3, 3, 3); /* below the last, never used */
    RK_CHECK(rk_apply_batch(ap, items, 4, 2000, NULL) == 0);
    RK_CHECK(items[0].outcome == RK_APPLY_REFUSED && strcmp(items[0].code, "E_RANGE") == 0);
    RK_CHECK(items[1].outcome == RK_APPLY_REFUSED && strcmp(items[1].code, "E_RANGE") == 0);
    RK_CHECK(strstr(items[1].message, "refused with E_RANGE") != NULL);
    RK_CHECK(items[2].outcome == RK_APPLY_STORED && items[2].rec.seq == 3);
    RK_CHECK(items[3].outcome == RK_APPLY_REFUSED && strcmp(items[3].code, "E_NUMBER") == 0);
    uint64_t last;
    RK_CHECK(rk_log_producer_last(log, PRODUCER, strlen(PRODUCER), &last) == 0 && last == 10);
    rk_apply_destroy(&ap);
    rk_log_destroy(&log);

    /* the refusal is durable: after a restart, 9 is still used */
    log = open_log(d, 0);
    RK_CHECK(rk_apply_open(&ap, log, NULL, NULL, NULL) == 0);
    make_item(&items[0], 0, 2, 9);
    RK_CHECK(rk_apply_batch(ap, items, 1, 3000, NULL) == 0);
    RK_CHECK(items[0].outcome == RK_APPLY_REFUSED && strcmp(items[0].code, "E_RANGE") == 0);
    RK_CHECK(rk_log_last_seq(log) == 3);
    rk_apply_destroy(&ap);
    rk_log_destroy(&log);
    remove_dir(d);
}

/* The request_id an event names, "" for a kpi.update. */
static void request_of(size_t e, char out[RK_ID_MAX + 1])
{
    struct rk_event_info info;
    struct rk_aid_event aid;
    struct rk_verror verr;
    rk_aid_event_validate(events[e].buf, events[e].len, 0, &info, &aid, &verr);
    snprintf(out, RK_ID_MAX + 1, "%s", info.type >= RK_EV_AID_REQUEST ? info.request_id : "");
}

/* The first n events that open a request (aid.request, version 1), in
 * out[0..n); returns how many were found. */
static size_t new_requests(size_t *out, size_t n)
{
    size_t k = 0;
    for (size_t e = 0; e < nevents && k < n; e++) {
        struct rk_event_info info;
        struct rk_aid_event aid;
        struct rk_verror verr;
        if (rk_aid_event_validate(events[e].buf, events[e].len, 0, &info, &aid, &verr) ==
                RK_V_OK && aid.type == RK_EV_AID_REQUEST && aid.version == 1)
            out[k++] = e;
    }
    return k;
}

/* "Last transaction ID" of mdb_stat -e: how many commits the file saw. */
static unsigned long last_txnid(const char *dir)
{
    char cmd[600], line[256];
    unsigned long id = 0;
    snprintf(cmd, sizeof cmd, "mdb_stat -e '%s'", dir);
    FILE *p = popen(cmd, "r");
    while (p && fgets(line, sizeof line, p))
        sscanf(line, " Last transaction ID: %lu", &id);
    RK_CHECK(p && pclose(p) == 0 && id > 0);
    return id;
}

/* A damaged stored request refuses the events that name it, and only
 * those: the rest of the batch is stored. A batch that stores nothing
 * commits nothing, even when it read requests from the tables. */
static void test_damaged_state_refuses_its_events_only(void)
{
    char d[] = "/tmp/rk_apply_d.XXXXXX", rid[RK_ID_MAX + 1], other[RK_ID_MAX + 1];
    struct rk_apply_item items[3];
    struct rk_log_batch *b;
    struct rk_apply *ap;
    size_t opens[2], first, later = 0, kpi;
    make_dir(d);
    RK_CHECK(new_requests(opens, 2) == 2);
    first = opens[0] + 1;
    kpi = opens[1] + 1; /* another request's first event: not about the damaged one */
    request_of(first - 1, rid);
    for (size_t e = first; e < nevents && !later; e++) {
        request_of(e, other);
        if (strcmp(other, rid) == 0)
            later = e + 1;
    }
    RK_CHECK(later != 0);
    if (!later)
        return;
    struct rk_log *log = open_log(d, 0);
    RK_CHECK(rk_apply_open(&ap, log, NULL, NULL, NULL) == 0);
    make_item(&items[0], 0, first - 1, 1);
    RK_CHECK(rk_apply_batch(ap, items, 1, 1000, NULL) == 0 && items[0].outcome == RK_APPLY_STORED);
    rk_apply_destroy(&ap); /* an empty cache: the next batch reads the table */
    RK_CHECK(rk_log_batch_begin(log, 0, &b) == 0);
    RK_CHECK(rk_log_batch_state_put(b, RK_LOG_AID_REQUESTS, rid, strlen(rid), "\x01\x02", 2) == 0);
    RK_CHECK(rk_log_batch_commit(b) == 0);
    RK_CHECK(rk_apply_open(&ap, log, NULL, NULL, NULL) == 0);
    make_item(&items[0], 1, later - 1, 2);
    make_item(&items[1], 2, kpi - 1, 3);
    RK_CHECK(rk_apply_batch(ap, items, 2, 2000, NULL) == 0);
    RK_CHECK(items[0].outcome == RK_APPLY_REFUSED && items[0].why.code == RK_AID_STORAGE);
    RK_CHECK(strstr(items[0].message, "damaged") != NULL);
    RK_CHECK(items[1].outcome == RK_APPLY_STORED && items[1].rec.seq == 2);
    rk_apply_destroy(&ap);
    rk_log_destroy(&log);

    /* refused only, after a cold start: no commit but the two of the
     * writer epoch (open and close, rk_log_identity.c) */
    unsigned long before = last_txnid(d);
    log = open_log(d, 0);
    RK_CHECK(rk_apply_open(&ap, log, NULL, NULL, NULL) == 0);
    make_item(&items[0], 0, first - 1, 4); /* version 1 again: E_DUPLICATE_REQUEST */
    items[0].rec.producer_len = 0; /* a numbered refusal would write its number */
    items[0].rec.producer_seq = 0;
    RK_CHECK(rk_apply_batch(ap, items, 1, 3000, NULL) == 0 && items[0].outcome == RK_APPLY_REFUSED);
    rk_apply_destroy(&ap);
    rk_log_destroy(&log);
    RK_CHECK(last_txnid(d) == before + 2);
    remove_dir(d);
}

/* Retention is an input of the state machine: the same cutoff on two logs
 * keeps them the same, and a retry of a pruned number is refused on both
 * (E_NUMBER) while the producer's next is stored. */
static void test_prune_is_an_input(void)
{
    char a[] = "/tmp/rk_apply_pa.XXXXXX", b[] = "/tmp/rk_apply_pb.XXXXXX";
    char *dirs[2] = {a, b};
    struct rk_apply_item it;
    uint64_t seqs[2];
    size_t opens[4];
    int found = new_requests(opens, 4) == 4;
    RK_CHECK(found);
    for (int k = 0; k < 2 && found; k++) {
        struct rk_apply *ap;
        uint64_t deleted;
        make_dir(dirs[k]);
        struct rk_log *log = open_log(dirs[k], 0);
        RK_CHECK(rk_apply_open(&ap, log, NULL, NULL, NULL) == 0);
        for (uint64_t i = 0; i < 3; i++) {
            make_item(&it, 0, opens[i], i + 1);
            RK_CHECK(rk_apply_batch(ap, &it, 1, 1000 * (int64_t)(i + 1), NULL) == 0);
        }
        RK_CHECK(rk_apply_prune(ap, 2500, 0, 100, &deleted) == 0 && deleted == 2);
        make_item(&it, 0, opens[3], 1); /* a pruned number again: refused on both */
        RK_CHECK(rk_apply_batch(ap, &it, 1, 5000, NULL) == 0);
        RK_CHECK(it.outcome == RK_APPLY_REFUSED && strcmp(it.code, "E_NUMBER") == 0);
        make_item(&it, 0, opens[3], 4);
        RK_CHECK(rk_apply_batch(ap, &it, 1, 5000, NULL) == 0);
        RK_CHECK(it.outcome == RK_APPLY_STORED && it.rec.seq == 4);
        seqs[k] = it.rec.seq;
        rk_apply_destroy(&ap);
        rk_log_destroy(&log);
    }
    RK_CHECK(seqs[0] == seqs[1]);
    char *da = dump_env(a, 0), *db = dump_env(b, 0);
    RK_CHECK(da && db && strcmp(da, db) == 0);
    free(da);
    free(db);
    remove_dir(a);
    remove_dir(b);
}

/* A log written by a broker of schema 3 (tests/fixtures/golden/schema3,
 * made by renkei 0.1.0 from the disaster scenario) gains its state tables
 * at the first open, once, and they hold the fold of its records. */
static void test_migrates_schema3_once(void)
{
    char d[] = "/tmp/rk_apply_m.XXXXXX", cmd[1200];
    const char *src = getenv("RK_SOURCE_DIR");
    struct rk_lifecycle_stats st;
    struct rk_apply *ap;
    RK_CHECK(src != NULL);
    if (!src)
        return;
    make_dir(d);
    snprintf(cmd, sizeof cmd, "cp '%s/tests/fixtures/golden/schema3/data.mdb' '%s/'", src, d);
    RK_CHECK(system(cmd) == 0);
    struct rk_log *log = open_log(d, 0);
    RK_CHECK(log && !rk_log_state_ready(log));
    uint64_t records = rk_log_last_seq(log);
    RK_CHECK(rk_apply_open(&ap, log, NULL, NULL, &st) == 0);
    RK_CHECK(st.migrated && st.requests > 10 && st.folded > 100);
    RK_CHECK(rk_log_state_ready(log) && rk_log_last_seq(log) == records);
    check_state_is_fold(log);
    rk_apply_destroy(&ap);
    rk_log_destroy(&log);
    log = open_log(d, 0);
    RK_CHECK(log && rk_log_state_ready(log));
    RK_CHECK(rk_apply_open(&ap, log, NULL, NULL, &st) == 0 && !st.migrated);
    rk_apply_destroy(&ap);
    rk_log_destroy(&log);
    remove_dir(d);
}

/* Every released schema's golden log (tests/fixtures/golden/schemaN,
 * written by the renkei that introduced it from the disaster scenario,
 * the KPI samples and the demo's aid events) opens read-only, its chain
 * verifies, and opened for writing it ends with state equal to its fold. */
static void test_golden_logs_open(void)
{
    const char *src = getenv("RK_SOURCE_DIR");
    RK_CHECK(src != NULL);
    for (int schema = RK_LOG_SCHEMA_OLDEST; src && schema <= RK_LOG_SCHEMA; schema++) {
        char golden[600], d[] = "/tmp/rk_apply_g.XXXXXX", cmd[1400], why[256];
        struct rk_log *log = NULL;
        struct rk_log_verdict v;
        struct rk_apply *ap;
        snprintf(golden, sizeof golden, "%s/tests/fixtures/golden/schema%d", src, schema);
        make_dir(d);
        snprintf(cmd, sizeof cmd, "cp '%s/data.mdb' '%s/'", golden, d);
        RK_CHECK(system(cmd) == 0);
        RK_CHECK(rk_log_open_readonly(&log, d, why, sizeof why) == 0);
        RK_CHECK(log && rk_log_verify(log, &v, NULL, 0, NULL) == 0 && v.bad_seq == 0 &&
                 v.records == 205);
        rk_log_destroy(&log);
        log = open_log(d, 0);
        RK_CHECK(log && rk_log_state_ready(log) == (schema == RK_LOG_SCHEMA));
        RK_CHECK(rk_apply_open(&ap, log, NULL, NULL, NULL) == 0);
        check_state_is_fold(log);
        rk_apply_destroy(&ap);
        rk_log_destroy(&log);
        remove_dir(d);
    }
}

int main(void)
{
    load_events();
    RK_RUN(test_same_batches_same_log);
    RK_RUN(test_numbers_in_order);
    RK_RUN(test_damaged_state_refuses_its_events_only);
    RK_RUN(test_prune_is_an_input);
    RK_RUN(test_migrates_schema3_once);
    RK_RUN(test_golden_logs_open);
    for (size_t i = 0; i < nevents; i++)
        free(events[i].buf);
    return rk_test_result();
}

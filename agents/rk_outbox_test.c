/* rk_outbox on real LMDB files: held events stay pending but are passed
 * over by rk_outbox_next; a refusal for good moves the event, whole, to the
 * dead letters with its code, message and time, across a reopen; resend
 * brings it back under its number, due at once; discard deletes it; an
 * outbox in the layout from before held events and dead letters (three
 * tables) opens with its events intact. */
#include "rk_outbox.h"
#include "rk_be.h"
#include "rk_test.h"

#include <ftw.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void temp_dir(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/rk-outbox-test-XXXXXX");
    if (!mkdtemp(dir))
        abort();
}

static void remove_dir(const char *dir)
{
    nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

static int add_n(struct rk_outbox *ob, int n)
{
    const void *events[8];
    size_t lens[8];
    char bodies[8][16];
    uint64_t first;
    for (int i = 0; i < n; i++) {
        snprintf(bodies[i], sizeof bodies[i], "event-%d", i);
        events[i] = bodies[i];
        lens[i] = strlen(bodies[i]);
    }
    return rk_outbox_add(ob, events, lens, (size_t)n, &first);
}

static struct rk_outbox_refusal refusal(const char *code, const char *message, int64_t at)
{
    struct rk_outbox_refusal r = {.first_ns = at, .last_ns = at, .attempts = 1};
    snprintf(r.code, sizeof r.code, "%s", code);
    snprintf(r.message, sizeof r.message, "%s", message);
    return r;
}

static void test_hold_reject_resend_discard(void)
{
    char dir[64], buf[64];
    struct rk_outbox *ob;
    struct rk_outbox_status st;
    struct rk_outbox_refusal r, got;
    uint64_t number, n;
    size_t len;
    int found, was_held;

    temp_dir(dir, sizeof dir);
    RK_CHECK(rk_outbox_open(dir, &ob, NULL, 0) == RK_OK);
    RK_CHECK(add_n(ob, 4) == RK_OK); /* numbers 1..4 */

    r = refusal("E_FORBIDDEN", "may not publish for 304018", 100);
    r.retry_ns = 5000;
    RK_CHECK(rk_outbox_hold(ob, 2, &r) == RK_OK);
    RK_CHECK(rk_outbox_hold(ob, 99, &r) == RK_OK); /* not pending: no change */
    RK_CHECK(rk_outbox_next(ob, 1, &number, buf, sizeof buf, &len) == RK_OK && number == 3);
    RK_CHECK(rk_outbox_get(ob, 2, buf, sizeof buf, &len) == RK_OK && len == 7 &&
             memcmp(buf, "event-1", 7) == 0);
    RK_CHECK(rk_outbox_next_held(ob, 0, &number, &got) == RK_OK && number == 2);
    RK_CHECK_STR(got.code, "E_FORBIDDEN");
    RK_CHECK(got.retry_ns == 5000 && got.attempts == 1 && got.first_ns == 100);
    RK_CHECK(rk_outbox_next_held(ob, 2, &number, &got) == RK_EOF);
    RK_CHECK(rk_outbox_status(ob, &st) == RK_OK && st.pending == 3 && st.held == 1);
    RK_CHECK(st.held_next_ns == 5000 && st.held_last_number == 2 && st.first_pending == 1);
    RK_CHECK(rk_outbox_retry_now(ob, 0, 42) == RK_OK);
    RK_CHECK(rk_outbox_held(ob, 2, &got, &found) == RK_OK && found && got.retry_ns == 42);

    /* Refused for good: 3 (never held) and 2 (held). */
    r = refusal("E_RANGE", "offer.quantity: must be 1..10000000, got -5", 7000);
    RK_CHECK(rk_outbox_reject(ob, 3, &r) == RK_OK);
    r = refusal("E_NOT_OWNER", "accept: only the requester", 8000);
    r.first_ns = 100;
    RK_CHECK(rk_outbox_reject(ob, 2, &r) == RK_OK);
    RK_CHECK(rk_outbox_reject(ob, 2, &r) == RK_OK); /* a second answer: no change */
    RK_CHECK(rk_outbox_held(ob, 2, &got, &found) == RK_OK && !found);
    RK_CHECK(rk_outbox_ack(ob, 1, 10, 11, &was_held) == RK_OK && !was_held);
    rk_outbox_close(&ob);

    /* Reopened: the dead letters are there, whole. */
    RK_CHECK(rk_outbox_open(dir, &ob, NULL, 0) == RK_OK);
    RK_CHECK(rk_outbox_status(ob, &st) == RK_OK);
    RK_CHECK(st.pending == 1 && st.held == 0 && st.rejected == 2 && st.refused == 2 &&
             st.acked == 1);
    RK_CHECK(rk_outbox_next_dead(ob, 0, &number, &got, buf, sizeof buf, &len) == RK_OK);
    RK_CHECK(number == 2 && len == 7 && memcmp(buf, "event-1", 7) == 0);
    RK_CHECK_STR(got.code, "E_NOT_OWNER");
    RK_CHECK(got.last_ns == 8000 && got.first_ns == 100 && got.retry_ns == 0);
    RK_CHECK(rk_outbox_next_dead(ob, 2, &number, &got, buf, sizeof buf, &len) == RK_OK);
    RK_CHECK(number == 3 && len == 7 && memcmp(buf, "event-2", 7) == 0);
    RK_CHECK_STR(got.code, "E_RANGE");
    RK_CHECK_STR(got.message, "offer.quantity: must be 1..10000000, got -5");
    RK_CHECK(rk_outbox_next_dead(ob, 3, &number, &got, buf, sizeof buf, &len) == RK_EOF);

    /* Resend 3: pending again under its number, held with code "", due now. */
    RK_CHECK(rk_outbox_resend(ob, 9, 500, &n) == RK_OK && n == 0);
    RK_CHECK(rk_outbox_resend(ob, 3, 500, &n) == RK_OK && n == 1);
    RK_CHECK(rk_outbox_held(ob, 3, &got, &found) == RK_OK && found && got.retry_ns == 500 &&
             got.code[0] == '\0' && got.attempts == 0);
    RK_CHECK(rk_outbox_get(ob, 3, buf, sizeof buf, &len) == RK_OK &&
             memcmp(buf, "event-2", 7) == 0);
    RK_CHECK(rk_outbox_status(ob, &st) == RK_OK && st.pending == 2 && st.held == 0);
    RK_CHECK(rk_outbox_ack(ob, 3, 12, 13, &was_held) == RK_OK && was_held);
    /* Discard: 2 is gone for good; --all on an empty table deletes nothing. */
    RK_CHECK(rk_outbox_discard(ob, 0, &n) == RK_OK && n == 1);
    RK_CHECK(rk_outbox_discard(ob, 0, &n) == RK_OK && n == 0);
    RK_CHECK(rk_outbox_status(ob, &st) == RK_OK && st.rejected == 0 && st.pending == 1 &&
             st.acked == 2);
    rk_outbox_close(&ob);
    remove_dir(dir);
}

static void test_resend_all(void)
{
    char dir[64], buf[64];
    struct rk_outbox *ob;
    struct rk_outbox_refusal r = refusal("E_TYPE", "x", 1), got;
    uint64_t n, number;
    size_t len;

    temp_dir(dir, sizeof dir);
    RK_CHECK(rk_outbox_open(dir, &ob, NULL, 0) == RK_OK);
    RK_CHECK(add_n(ob, 5) == RK_OK);
    for (uint64_t i = 1; i <= 5; i++)
        RK_CHECK(rk_outbox_reject(ob, i, &r) == RK_OK);
    RK_CHECK(rk_outbox_next(ob, 0, &number, buf, sizeof buf, &len) == RK_EOF);
    RK_CHECK(rk_outbox_resend(ob, 0, 9, &n) == RK_OK && n == 5);
    RK_CHECK(rk_outbox_next_dead(ob, 0, &number, &got, buf, sizeof buf, &len) == RK_EOF);
    n = 0;
    for (number = 0; rk_outbox_next_held(ob, number, &number, &got) == RK_OK;)
        n++;
    RK_CHECK(n == 5);
    rk_outbox_close(&ob);
    remove_dir(dir);
}

/* An outbox as agents wrote it before dead letters: "events", "meta" and
 * "tags" only. */
static void test_old_layout_opens(void)
{
    char dir[64], buf[64];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi events, meta, tags;
    unsigned char key[8], next[8];
    MDB_val k = {8, key}, v = {5, "old-1"}, nk = {4, "next"}, nv = {8, next};
    struct rk_outbox *ob;
    struct rk_outbox_status st;
    uint64_t number, first;
    size_t len;
    const void *ev = "new-2";
    size_t evlen = 5;

    temp_dir(dir, sizeof dir);
    RK_CHECK(mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 3) == 0 &&
             mdb_env_open(env, dir, 0, 0600) == 0 && mdb_txn_begin(env, NULL, 0, &txn) == 0);
    RK_CHECK(mdb_dbi_open(txn, "events", MDB_CREATE, &events) == 0 &&
             mdb_dbi_open(txn, "meta", MDB_CREATE, &meta) == 0 &&
             mdb_dbi_open(txn, "tags", MDB_CREATE, &tags) == 0);
    rk_be_put(key, 1, 8);
    rk_be_put(next, 2, 8);
    RK_CHECK(mdb_put(txn, events, &k, &v, 0) == 0 && mdb_put(txn, meta, &nk, &nv, 0) == 0);
    RK_CHECK(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);

    RK_CHECK(rk_outbox_open(dir, &ob, NULL, 0) == RK_OK);
    RK_CHECK(rk_outbox_status(ob, &st) == RK_OK && st.pending == 1 && st.held == 0 &&
             st.rejected == 0 && st.last_number == 1);
    RK_CHECK(rk_outbox_next(ob, 0, &number, buf, sizeof buf, &len) == RK_OK && number == 1 &&
             len == 5 && memcmp(buf, "old-1", 5) == 0);
    RK_CHECK(rk_outbox_add(ob, &ev, &evlen, 1, &first) == RK_OK && first == 2);
    rk_outbox_close(&ob);
    remove_dir(dir);
}

int main(void)
{
    RK_RUN(test_hold_reject_resend_discard);
    RK_RUN(test_resend_all);
    RK_RUN(test_old_layout_opens);
    return rk_test_result();
}

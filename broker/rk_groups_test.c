#include "rk_groups.h"
#include "rk_test.h"
#include "rk_wire.h"

#include <stdio.h>
#include <string.h>

struct seen {
    char keys[8][RK_WIRE_SUBKEY_MAX];
    uint64_t prev[8];
    int n;
};

static void record(void *arg, const char *key, size_t key_len, uint64_t prev)
{
    struct seen *s = arg;
    snprintf(s->keys[s->n], sizeof s->keys[0], "%.*s", (int)key_len, key);
    s->prev[s->n++] = prev;
}

static uint64_t prev_of(const struct seen *s, const char *key)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->keys[i], key) == 0)
            return s->prev[i];
    return UINT64_MAX;
}

static void subscribe(struct rk_groups *g, const char *key, int on, uint64_t head,
                      enum rk_groups_notice_rc want)
{
    char msg[RK_WIRE_SUBKEY_MAX + 1];
    msg[0] = (char)on;
    memcpy(msg + 1, key, strlen(key));
    RK_CHECK(rk_groups_notice(g, msg, strlen(key) + 1, head) == want);
}

/* Matches an event on `topic` (seq) into s, emptied first. */
static void match(struct rk_groups *g, const char *topic, uint64_t seq, struct seen *s)
{
    s->n = 0;
    rk_groups_match(g, topic, NULL, seq, record, s);
}

static void test_prev_is_exact_per_filter(void)
{
    struct rk_groups *g = rk_groups_new();
    struct seen s = {0};
    subscribe(g, "~\n", 1, 10, RK_GROUPS_ADDED);
    subscribe(g, "~aid.offer/27/|aid.request/27/\n", 1, 10, RK_GROUPS_ADDED);
    subscribe(g, "~aid.request/27/\n", 1, 10, RK_GROUPS_ADDED);
    subscribe(g, "~aid.request/27/\n", 1, 10, RK_GROUPS_UNCHANGED);
    subscribe(g, "aid.request/", 1, 10, RK_GROUPS_BAD_KEY);
    RK_CHECK(rk_groups_count(g) == 3);

    match(g, "aid.request/27/271004", 11, &s);
    RK_CHECK(s.n == 3);
    RK_CHECK(prev_of(&s, "~\n") == 10 && prev_of(&s, "~aid.request/27/\n") == 10);
    match(g, "kpi.update/43/431001", 12, &s);
    RK_CHECK(s.n == 1 && prev_of(&s, "~\n") == 11);
    match(g, "aid.offer/27/272078", 13, &s);
    RK_CHECK(s.n == 2);
    RK_CHECK(prev_of(&s, "~aid.offer/27/|aid.request/27/\n") == 11);
    RK_CHECK(prev_of(&s, "~\n") == 12);
    match(g, "aid.request/28/281000", 14, &s);
    RK_CHECK(s.n == 1);

    /* a group made later starts at the head it was made at */
    subscribe(g, "~aid.request/28/\n", 1, 14, RK_GROUPS_ADDED);
    match(g, "aid.request/28/281000", 15, &s);
    RK_CHECK(prev_of(&s, "~aid.request/28/\n") == 14);

    subscribe(g, "~\n", 0, 15, RK_GROUPS_REMOVED);
    subscribe(g, "~\n", 0, 15, RK_GROUPS_UNCHANGED);
    match(g, "kpi.update/43/431001", 16, &s);
    RK_CHECK(s.n == 0);
    s.n = 0;
    rk_groups_each(g, record, &s);
    RK_CHECK(s.n == 3);
    rk_groups_destroy(&g);
    RK_CHECK(g == NULL);
}

/* Two prefixes of one group that both match send the event once. */
static void test_overlapping_prefixes_once(void)
{
    struct rk_groups *g = rk_groups_new();
    struct seen s = {0};
    subscribe(g, "~aid.|kpi.update/43/\n", 1, 0, RK_GROUPS_ADDED);
    subscribe(g, "~aid.|aid.offer/\n", 1, 0, RK_GROUPS_ADDED);
    match(g, "aid.offer/27/271004", 1, &s);
    RK_CHECK(s.n == 2);
    rk_groups_destroy(&g);
}

/* Many groups: the table grows and removal leaves the rest intact. */
static void test_many_groups(void)
{
    struct rk_groups *g = rk_groups_new();
    char key[64];
    struct seen s = {0};
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "~kpi.update/%02d/%06d\n", i % 47 + 1, i);
        subscribe(g, key, 1, 0, RK_GROUPS_ADDED);
    }
    for (int i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof key, "~kpi.update/%02d/%06d\n", i % 47 + 1, i);
        subscribe(g, key, 0, 0, RK_GROUPS_REMOVED);
    }
    RK_CHECK(rk_groups_count(g) == 2500);
    match(g, "kpi.update/08/000007", 1, &s);
    RK_CHECK(s.n == 1);
    match(g, "kpi.update/09/000008", 2, &s);
    RK_CHECK(s.n == 0);
    rk_groups_destroy(&g);
}

/* Every subscriber counts: the group goes with the last one, and its
 * prev is kept while any remain. */
static void test_group_counts_subscribers(void)
{
    struct rk_groups *g = rk_groups_new();
    struct seen s = {0};
    subscribe(g, "~kpi.\n", 1, 5, RK_GROUPS_ADDED);
    subscribe(g, "~kpi.\n", 1, 5, RK_GROUPS_UNCHANGED);
    subscribe(g, "~kpi.\n", 1, 5, RK_GROUPS_UNCHANGED);
    subscribe(g, "~kpi.\n", 0, 5, RK_GROUPS_UNCHANGED);
    subscribe(g, "~kpi.\n", 0, 5, RK_GROUPS_UNCHANGED);
    match(g, "kpi.update/43/431001", 6, &s);
    RK_CHECK(s.n == 1 && prev_of(&s, "~kpi.\n") == 5);
    subscribe(g, "~kpi.\n", 0, 6, RK_GROUPS_REMOVED);
    RK_CHECK(rk_groups_count(g) == 0);
    subscribe(g, "~kpi.\n", 0, 6, RK_GROUPS_UNCHANGED);
    subscribe(g, "~kpi.\n", 1, 9, RK_GROUPS_ADDED);
    match(g, "kpi.update/43/431001", 10, &s);
    RK_CHECK(s.n == 1 && prev_of(&s, "~kpi.\n") == 9);
    rk_groups_destroy(&g);
}

/* An aid event reaches a group by either of its topics, once. */
static void test_requester_topic(void)
{
    struct rk_groups *g = rk_groups_new();
    struct seen s = {0};
    subscribe(g, "~aid.offer/for/30/\n", 1, 0, RK_GROUPS_ADDED);
    subscribe(g, "~aid.offer/27/|aid.offer/for/30/\n", 1, 0, RK_GROUPS_ADDED);
    subscribe(g, "~aid.offer/30/\n", 1, 0, RK_GROUPS_ADDED);
    rk_groups_match(g, "aid.offer/27/271004", "aid.offer/for/30/304280", 1, record, &s);
    RK_CHECK(s.n == 2 && prev_of(&s, "~aid.offer/for/30/\n") == 0 &&
             prev_of(&s, "~aid.offer/27/|aid.offer/for/30/\n") == 0);
    s.n = 0;
    rk_groups_match(g, "aid.offer/27/271004", "aid.offer/for/28/281000", 2, record, &s);
    RK_CHECK(s.n == 1 && prev_of(&s, "~aid.offer/27/|aid.offer/for/30/\n") == 1);
    s.n = 0;
    rk_groups_match(g, "aid.offer/30/304280", "", 3, record, &s);
    RK_CHECK(s.n == 1 && prev_of(&s, "~aid.offer/30/\n") == 0);
    s.n = 0;
    rk_groups_match(g, "aid.offer/28/281000", "aid.offer/for/30/304018", 4, record, &s);
    RK_CHECK(s.n == 2 && prev_of(&s, "~aid.offer/for/30/\n") == 1 &&
             prev_of(&s, "~aid.offer/27/|aid.offer/for/30/\n") == 2);
    rk_groups_destroy(&g);
}

int main(void)
{
    RK_RUN(test_requester_topic);
    RK_RUN(test_group_counts_subscribers);
    RK_RUN(test_prev_is_exact_per_filter);
    RK_RUN(test_overlapping_prefixes_once);
    RK_RUN(test_many_groups);
    return rk_test_result();
}

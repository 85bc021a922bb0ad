/* The tools' filter options as topic prefixes: the publisher's options keep
 * their prefixes, the requester's give requester topics (PROTOCOL.md 3.3),
 * and what a set of OR-ed prefixes cannot say is refused, naming the option. */
#include "rk_test.h"
#include "rk_topics.h"

#include <stdio.h>
#include <string.h>

static int topics(const struct rk_topic_query *q, char out[][RK_WIRE_TOPIC_MAX], char *why)
{
    why[0] = '\0';
    return rk_topics_for(q, out, 8, why, 256);
}

static int has(char t[][RK_WIRE_TOPIC_MAX], int n, const char *want)
{
    for (int i = 0; i < n; i++)
        if (strcmp(t[i], want) == 0)
            return 1;
    return 0;
}

static void test_publisher_unchanged(void)
{
    char t[8][RK_WIRE_TOPIC_MAX], why[256];
    struct rk_topic_query q = {.prefecture = "30"};
    RK_CHECK(topics(&q, t, why) == 8 && has(t, 8, "kpi.update/30/") && has(t, 8, "aid.offer/30/"));
    q = (struct rk_topic_query){.family = "aid", .municipality = "304280"};
    RK_CHECK(topics(&q, t, why) == 7 && has(t, 7, "aid.accept/30/304280"));
    q = (struct rk_topic_query){0};
    RK_CHECK(topics(&q, t, why) == 0);
}

static void test_requester_topics(void)
{
    char t[8][RK_WIRE_TOPIC_MAX], why[256];
    struct rk_topic_query q = {.requester_prefecture = "30"};
    RK_CHECK(topics(&q, t, why) == 7 && has(t, 7, "aid.request/for/30/") &&
             has(t, 7, "aid.offer/for/30/") && has(t, 7, "aid.withdraw/for/30/") &&
             !has(t, 7, "kpi.update/for/30/"));
    q = (struct rk_topic_query){.requester = "304280", .type = "aid.dispatch"};
    RK_CHECK(topics(&q, t, why) == 1 && strcmp(t[0], "aid.dispatch/for/30/304280") == 0);
    q = (struct rk_topic_query){.requester = "304280", .requester_prefecture = "30",
                                .family = "aid"};
    RK_CHECK(topics(&q, t, why) == 7 && has(t, 7, "aid.fulfil/for/30/304280"));
}

static void test_refusals(void)
{
    char t[8][RK_WIRE_TOPIC_MAX], why[256];
    struct { struct rk_topic_query q; const char *says; } cases[] = {
        {{.requester_prefecture = "30", .prefecture = "27"}, "--requester-prefecture: not with --prefecture"},
        {{.requester = "304280", .municipality = "271004"}, "--requester: not with --municipality"},
        {{.requester = "304280", .family = "kpi"}, "--requester: only disaster-support"},
        {{.requester_prefecture = "30", .type = "kpi.update"}, "not --type kpi.update"},
        {{.requester = "304280", .requester_prefecture = "27"}, "--requester 304280 is not in --requester-prefecture 27"},
        {{.requester = "30428"}, "--requester: must be 6 digits"},
        {{.requester_prefecture = "Wakayama"}, "--requester-prefecture: must be 2 digits"},
        {{.prefecture = "99"}, "--prefecture: no such prefecture: 99"},
        {{.requester_prefecture = "00"}, "--requester-prefecture: no such prefecture: 00"},
        {{.municipality = "271005"}, "check digit is wrong (271004 would be right)"},
        {{.requester = "481001"}, "its prefecture 48 is not 01..47"},
        {{.municipality = "271012"}, "no local government has this code"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = topics(&cases[i].q, t, why);
        if (n != -1 || !strstr(why, cases[i].says)) {
            fprintf(stderr, "case %zu: %d \"%s\", want \"%s\"\n", i, n, why, cases[i].says);
            RK_CHECK(0);
        }
    }
}

int main(void)
{
    RK_RUN(test_publisher_unchanged);
    RK_RUN(test_requester_topics);
    RK_RUN(test_refusals);
    return rk_test_result();
}

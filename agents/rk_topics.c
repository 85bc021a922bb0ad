#include "rk_topics.h"
#include "rk_muni.h"
#include "rk_event.h"

#include <stdio.h>
#include <string.h>

static int check_digits(const char *opt, const char *v, size_t len, char *why, size_t why_len)
{
    if (v && (strlen(v) != len || strspn(v, "0123456789") != len)) {
        snprintf(why, why_len, "--%s: must be %zu digits, got \"%s\"", opt, len, v);
        return -1;
    }
    if (v && len == 2 && !rk_muni_prefecture(v)) {
        snprintf(why, why_len, "--%s: no such prefecture: %s (prefecture codes are 01..47, "
                 "e.g. 27 for Osaka, 30 for Wakayama)", opt, v);
        return -1;
    }
    if (!v || len != 6)
        return 0;
    switch (rk_muni_validate(v, len)) {
    case RK_MUNI_OK:
        return 0;
    case RK_MUNI_PREFECTURE:
        snprintf(why, why_len, "--%s: %s: its prefecture %.2s is not 01..47", opt, v, v);
        return -1;
    case RK_MUNI_CHECK_DIGIT:
        snprintf(why, why_len, "--%s: %s: the check digit is wrong (%.5s%c would be right); "
                 "a typo?", opt, v, v, rk_muni_check_digit(v));
        return -1;
    default:
        snprintf(why, why_len, "--%s: %s: no local government has this code", opt, v);
        return -1;
    }
}

/* The event types the query spans; returns their number or -1. */
static int types_for(const struct rk_topic_query *q, const char *types[8], char *why,
                     size_t why_len)
{
    int n = 0;
    if (q->type) {
        if (rk_event_type_parse(q->type, strlen(q->type)) == RK_EV_NONE) {
            snprintf(why, why_len, "--type: must be kpi.update or aid.request|offer|accept|"
                     "dispatch|fulfil|cancel|withdraw, got \"%s\"", q->type);
            return -1;
        }
        if (q->family && strncmp(q->type, q->family, strlen(q->family)) != 0) {
            snprintf(why, why_len, "--type %s is not in --family %s", q->type, q->family);
            return -1;
        }
        types[n++] = q->type;
        return n;
    }
    if (q->family && strcmp(q->family, "kpi") != 0 && strcmp(q->family, "aid") != 0) {
        snprintf(why, why_len, "--family: must be kpi or aid, got \"%s\"", q->family);
        return -1;
    }
    for (int t = RK_EV_KPI_UPDATE; t <= RK_EV_AID_WITHDRAW; t++) {
        const char *name = rk_event_type_name((enum rk_event_type)t);
        if (!q->family || strncmp(name, q->family, strlen(q->family)) == 0)
            types[n++] = name;
    }
    return n;
}

/* The place options: checked, and which pair (publisher or requester). */
static int check_places(const struct rk_topic_query *q, char *why, size_t why_len)
{
    if (check_digits("prefecture", q->prefecture, 2, why, why_len) ||
        check_digits("municipality", q->municipality, 6, why, why_len) ||
        check_digits("requester-prefecture", q->requester_prefecture, 2, why, why_len) ||
        check_digits("requester", q->requester, 6, why, why_len))
        return -1;
    if (q->municipality && q->prefecture && strncmp(q->municipality, q->prefecture, 2) != 0) {
        snprintf(why, why_len, "--municipality %s is not in --prefecture %s", q->municipality,
                 q->prefecture);
        return -1;
    }
    if (q->requester && q->requester_prefecture &&
        strncmp(q->requester, q->requester_prefecture, 2) != 0) {
        snprintf(why, why_len, "--requester %s is not in --requester-prefecture %s",
                 q->requester, q->requester_prefecture);
        return -1;
    }
    if ((q->requester || q->requester_prefecture) && (q->prefecture || q->municipality)) {
        snprintf(why, why_len, "--%s: not with --%s: a filter selects an event when any of "
                 "its topics matches, so publisher and requester together would mean either "
                 "one; use one of them", q->requester ? "requester" : "requester-prefecture",
                 q->prefecture ? "prefecture" : "municipality");
        return -1;
    }
    if ((q->requester || q->requester_prefecture) &&
        ((q->family && strcmp(q->family, "kpi") == 0) ||
         (q->type && strncmp(q->type, "aid.", 4) != 0))) {
        snprintf(why, why_len, "--%s: only disaster-support (aid.*) events have a requester, "
                 "not --%s %s", q->requester ? "requester" : "requester-prefecture",
                 q->type ? "type" : "family", q->type ? q->type : q->family);
        return -1;
    }
    return 0;
}

int rk_topics_for(const struct rk_topic_query *q, char topics[][RK_WIRE_TOPIC_MAX], int max,
                  char *why, size_t why_len)
{
    const char *types[8];
    char pref[3] = "";
    if (check_places(q, why, why_len))
        return -1;
    int by_requester = q->requester || q->requester_prefecture;
    const char *muni = by_requester ? q->requester : q->municipality;
    const char *pp = by_requester ? q->requester_prefecture : q->prefecture;
    if (!q->family && !q->type && !pp && !muni)
        return 0;
    struct rk_topic_query typed = *q;
    if (by_requester && !q->family && !q->type)
        typed.family = "aid"; /* only aid events have a requester topic */
    int ntypes = types_for(&typed, types, why, why_len);
    if (ntypes < 0)
        return -1;
    if (ntypes > max) {
        snprintf(why, why_len, "too many topics for this filter");
        return -1;
    }
    if (muni || pp)
        memcpy(pref, muni ? muni : pp, 2);
    for (int i = 0; i < ntypes; i++)
        snprintf(topics[i], RK_WIRE_TOPIC_MAX, "%s/%s%s%s%s", types[i],
                 by_requester ? RK_TOPIC_FOR : "", pref, pref[0] ? "/" : "", muni ? muni : "");
    return ntypes;
}

/*
 * rk_topics - filter options of the command-line tools as topic prefixes.
 *
 * Live topics are "<type>/<pp>/<mmmmmm>" (PROTOCOL.md 3.3), so a filter
 * on family, event type, prefecture and municipality is a set of prefixes:
 * "every aid event in Osaka prefecture" is the seven "aid.<x>/27/". An aid
 * event also has a requester topic, "<type>/for/<pp>/<mmmmmm>" of its
 * request's requester, so "every aid event about requests of Wakayama
 * prefecture, whoever published it" is the seven "aid.<x>/for/30/". The
 * same prefixes select on the live feed (ZMQ_SUBSCRIBE) and in replay.
 */
#ifndef RK_TOPICS_H
#define RK_TOPICS_H

#include <stddef.h>

#include "rk_wire.h"

/* Each field may be NULL (no restriction). */
struct rk_topic_query {
    const char *family;       /* "kpi" or "aid" */
    const char *type;         /* e.g. "aid.request" */
    const char *prefecture;   /* two digits, e.g. "27" */
    const char *municipality; /* six digits, e.g. "271004" */
    /* the requester of the event's request (aid events only); not with
     * prefecture or municipality, since prefixes are OR-ed */
    const char *requester_prefecture; /* two digits, e.g. "30" */
    const char *requester;            /* six digits, e.g. "304280" */
};

/* Writes the prefixes selecting `q` into topics[0..] (at most 8 are ever
 * needed) and returns how many; 0 means "everything". On a bad value or
 * combination returns -1 and writes a sentence naming the option to
 * `why`, e.g. "--prefecture: must be 2 digits, got \"Osaka\"". */
int rk_topics_for(const struct rk_topic_query *q, char topics[][RK_WIRE_TOPIC_MAX], int max,
                  char *why, size_t why_len);

#endif

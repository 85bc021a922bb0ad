/*
 * rk_asof - what every entity looked like at one moment, for an auditor.
 *
 * KPIs come from a broker snapshot (3.5 of PROTOCOL.md): for each KPI of a
 * municipality and fiscal year, the latest update received by then. Aid
 * requests need their whole history, not just their last event, so the aid
 * events up to the snapshot's sequence are replayed and folded through the
 * lifecycle (rk_aid). Both parts are consistent with one sequence number.
 *
 * Output, JSON lines (one object per entity, then a summary):
 *   {"kind":"kpi","kpi_id":..,"municipality":..,"fiscal_year":..,"name":..,"unit":..,
 *    "baseline":{..},"target":{..},"current":{..},"seq":..,"recv_time":..}
 *   {"kind":"request","request_id":..,"requester":..,"resource":..,"unit":..,"version":..,
 *    "quantity":..,"urgency":..,"data_class":..,"state":..,"accepted":..,"dispatched":..,
 *    "fulfilled":..,"in_transit":..,"offers":{"OFR-..":{"offerer":..,"quantity":..,
 *    "state":..,"accepted":..,"dispatched":..,"fulfilled":..}}}
 *   {"kind":"refused","seq":..,"event_id":..,"code":..,"field":..,"message":..}
 *       a stored aid event the lifecycle does not accept (a log written
 *       before the broker enforced it)
 *   {"as_of":{"time":..,"seq":..,"kpis":..,"requests":..,"by_state":{..},"refused":..}}
 * or the same as aligned text lines for people (--format table).
 */
#ifndef RK_ASOF_H
#define RK_ASOF_H

#include <stdint.h>
#include <stdio.h>

#include "renkei.h"
#include "rk_render.h"

struct rk_asof_query {
    const char *endpoint;      /* the broker's replay socket */
    const struct rk_client_options *client; /* its keys; NULL: plain */
    int timeout_ms;            /* per reply */
    int64_t at_ns;             /* the moment: events received at or before it */
    const char *family;        /* "kpi", "aid" or NULL for both */
    const char *prefecture;    /* two digits, or NULL: the publisher (KPIs) or
                                * the requester (aid requests) */
    const char *municipality;  /* six digits, or NULL; as prefecture */
    const char *requester_prefecture; /* two digits, or NULL: aid requests
                                * made in it only, and no KPIs (which have
                                * no requester); not with the two above */
    const char *requester;     /* six digits, or NULL; as requester_prefecture */
    const char *request_id;    /* one aid request, or NULL */
    const char *kpi_id;        /* one KPI, or NULL */
};

/* Prints the state as of q->at_ns on `out` in format `fmt`. Returns 0; -1
 * with a sentence in `why` when the query is invalid (a bad prefecture or
 * municipality), the broker refused, or it did not answer (then errno is
 * ETIMEDOUT). */
int rk_asof_print(const struct rk_asof_query *q, FILE *out, enum rk_render_format fmt,
                  char *why, size_t why_len);

#endif

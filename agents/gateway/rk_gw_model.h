/*
 * rk_gw_model - what the gateway knows, in memory, behind one mutex: the
 * requests (the broker's state of each, with the deadline and location of
 * its latest aid.request), the towns (when each last published), the KPIs
 * (the latest kpi.update of each KPI, municipality and fiscal year), and a
 * ring of the latest events for the live stream.
 *
 * One writer (the follower thread, rk_gw_follow) and any number of readers
 * (the HTTP threads). Every function takes the lock itself; the reading
 * functions hand out copies (strings the caller frees, JSON the caller
 * decrefs), never pointers into the model. Nothing here is a fold of the
 * lifecycle: request states come whole from the broker's "state" answer.
 *
 * Shapes (the JSON API's, see deploy/man/renkei-gateway.8):
 *   request: request_id, requester, requester_name, prefecture,
 *     prefecture_name, resource, unit, urgency, data_class, version,
 *     quantity, offered, accepted, dispatched, received, in_transit, state,
 *     offers[], deadline, location{lat,lon,place}, note, created_at,
 *     updated_at, last_seq
 *   town: code, name, prefecture, last_published, last_seq, silent, events
 *     (those of the start's window, --town-window, and every one since)
 *   kpi: kpi_id, municipality, municipality_name, fiscal_year,
 *     policy_area, name, unit, aggregation, baseline, target, current,
 *     project, region, seq, recv_time
 */
#ifndef RK_GW_MODEL_H
#define RK_GW_MODEL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct rk_gw_model;

/* `ring` is how many of the latest events the stream keeps for resuming
 * clients (at least 16); fewer when their lines pass 64 MiB together. */
struct rk_gw_model *rk_gw_model_new(size_t ring);
void rk_gw_model_destroy(struct rk_gw_model **mp);

/* ---- the follower's side */

/* Takes a request's state as the broker's "state" gave it (`st` is
 * borrowed), replacing the state part and keeping the event part. */
void rk_gw_model_set_state(struct rk_gw_model *m, json_t *st);

/* Takes one stored event (`ev` the event as JSON, borrowed): the town's
 * last publish, the request's details for an aid.request (the highest
 * version wins, so replaying an older one changes nothing), the KPI value
 * for a kpi.update (the later seq wins). */
void rk_gw_model_apply(struct rk_gw_model *m, uint64_t seq, int64_t recv_ns, json_t *ev);

/* As rk_gw_model_apply, without counting the event in its town's
 * "events" (for the start's read of every aid.request, which the read of
 * the towns' window counts already). */
void rk_gw_model_apply_uncounted(struct rk_gw_model *m, uint64_t seq, int64_t recv_ns,
                                 json_t *ev);

/* A town known to have published at `recv_ns` (from a scan at start);
 * counted in its "events". */
void rk_gw_model_town(struct rk_gw_model *m, const char *code, uint64_t seq, int64_t recv_ns);

/* Appends an event to the stream ring as one SSE data line (seq, recv_time,
 * topic, event and, for an aid event, the request's state as it is now)
 * and wakes the stream readers. Seqs must increase. */
void rk_gw_model_push(struct rk_gw_model *m, uint64_t seq, int64_t recv_ns, const char *topic,
                      json_t *ev);

/* Every event below `next` has been applied (ticks move it too). */
void rk_gw_model_set_position(struct rk_gw_model *m, uint64_t next);

/* The follower's view of the broker, for /api/status. */
void rk_gw_model_set_link(struct rk_gw_model *m, int connected, const char *why);

/* Wakes every stream reader for good (at shutdown). */
void rk_gw_model_close(struct rk_gw_model *m);

/* ---- the readers' side */

/* Request filters; NULL members select everything. */
struct rk_gw_req_filter {
    const char *prefecture;  /* 2 digits, of the requester */
    const char *requester;   /* 6 digits */
    const char *resource;
    const char *urgency;
    const char *state;
};

/* {"requests": [...], "count": N, "seq": S}: every request the filter
 * selects, in the order the gateway first saw them, as of position S - 1 (S = the position:
 * follow the stream from S). Caller frees. */
char *rk_gw_model_requests(struct rk_gw_model *m, const struct rk_gw_req_filter *f);

/* One request (a deep copy; caller decrefs), or NULL. */
json_t *rk_gw_model_request(struct rk_gw_model *m, const char *id);

/* {"seq", "silent_after_s", "towns": [...]}: every town seen, silent when
 * it last published more than silent_s seconds before now_ns. */
char *rk_gw_model_towns(struct rk_gw_model *m, int64_t now_ns, int64_t silent_s);

/* {"seq", "kpis": [...]}, those of municipality `muni` and/or region
 * `region` (NULL: all). */
char *rk_gw_model_kpis(struct rk_gw_model *m, const char *muni, const char *region);

/* {"seq", "requests", "towns", "kpis", "broker": {"connected", "error"},
 * "stream": {"first_seq", "last_seq"}}. */
char *rk_gw_model_status(struct rk_gw_model *m);

/* The stream from `from`: waits up to `wait_ms` for an event at or after
 * it, then copies the first one's line into *line (caller frees) and its
 * seq into *seq. Returns 0, ETIMEDOUT (none yet), ERANGE (`from` is older
 * than the ring holds: the client must take the state again), or ECANCELED
 * once the model is closed. */
int rk_gw_model_next(struct rk_gw_model *m, uint64_t from, int wait_ms, char **line,
                     uint64_t *seq);

/* The position (see rk_gw_model_set_position). */
uint64_t rk_gw_model_position(struct rk_gw_model *m);

#endif

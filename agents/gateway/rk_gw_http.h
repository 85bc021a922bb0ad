/*
 * rk_gw_http - the gateway's HTTP server (libmicrohttpd): the JSON API,
 * the live stream as server-sent events, and the board's static files.
 *
 *   GET /api/requests[?prefecture=NN&requester=CODE&resource=R&urgency=U&state=S]
 *   GET /api/requests/{request_id}      the request and its timeline
 *   GET /api/towns[?silent_after=SECONDS]
 *   GET /api/kpis[?municipality=CODE&region=NAME]
 *   GET /api/events?from=SEQ[&limit=N]  NDJSON, one stored event a line
 *   GET /api/stream[?from=SEQ]          text/event-stream, id: = seq
 *   GET /api/asof?time=RFC3339[&prefecture=NN]  NDJSON: every KPI and request as
 *                                       of then (rk_asof, as renkei-replay --as-of)
 *   GET /api/status
 *   POST /api/events                    one event or an array, as JSON, with
 *                                       "Authorization: Bearer TOKEN" (rk_gw_post)
 *   GET /anything-else                  a file of the web directory
 *
 * Every answer of /api is JSON (UTF-8, non-ASCII as \u escapes); an error
 * is {"error": {"code", "field", "reason"}} with a 4xx or 5xx status. The
 * stream resumes where a client left off: EventSource sends the last id
 * it saw as Last-Event-ID, which wins over ?from. An id older than the
 * gateway's ring of recent events gets one "reset" event: the client takes
 * /api/requests again and follows from its seq.
 *
 * The timeline and /api/events are read from the broker's log at each
 * call (a reader per call, on the shared ZeroMQ context), so they are
 * complete whatever the gateway has kept.
 *
 * Threads: libmicrohttpd runs one thread per connection; each reads the
 * model through its locking functions.
 */
#ifndef RK_GW_HTTP_H
#define RK_GW_HTTP_H

#include <stdint.h>

#include "renkei.h"
#include "rk_gw_model.h"
#include "rk_gw_post.h"

struct rk_gw_http_options {
    const char *bind;      /* an IPv4 address, e.g. "127.0.0.1" */
    uint16_t port;
    const char *web_dir;   /* the board's files */
    const char *replay;    /* the broker's replay endpoint */
    struct rk_client_options client; /* keys and the shared ZeroMQ context */
    int64_t silent_s;      /* a town is silent after this long (default of
                            * /api/towns' silent_after) */
    int timeout_ms;        /* one broker answer */
    struct rk_gw_post *post; /* NULL: POST is refused */
    const char *tls_cert, *tls_key; /* PEM files: HTTPS (GnuTLS); NULL: plain HTTP */
};

struct rk_gw_http;

/* Starts listening. The options' strings and `m` must outlive the server.
 * Returns 0, or an errno value with a sentence in `why` (EADDRINUSE: the
 * port is taken; EINVAL: a bad bind address; ENOTSUP: TLS asked of a
 * libmicrohttpd without it; a file's errno when a TLS file cannot be read). */
int rk_gw_http_start(struct rk_gw_model *m, const struct rk_gw_http_options *o,
                     struct rk_gw_http **out, char *why, size_t why_len);

/* Stops listening and waits for every connection thread (close the model
 * first, so that streams end); no-op on NULL. */
void rk_gw_http_stop(struct rk_gw_http **hp);

#endif

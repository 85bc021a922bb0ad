/*
 * rk_metrics - the broker's counters, and the HTTP endpoint that serves
 * them: GET /metrics (Prometheus text format 0.0.4) and GET /healthz (200
 * "ok" while the log takes writes, 503 with the reason when it does not).
 *
 * The ingest thread records (rk_metrics_*); libmicrohttpd's own thread
 * reads. Every value is a relaxed atomic: a scrape may see one counter a
 * batch ahead of another, never a torn value. Recording costs a few atomic
 * adds per batch, not per event, except the per-reason refusal counter.
 *
 * The endpoint is off unless an address is given; a bare port means
 * loopback (127.0.0.1:PORT). Only GET (and HEAD) of the two paths are
 * served; anything else is 404 or 405.
 */
#ifndef RK_METRICS_H
#define RK_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct rk_metrics;

/* A new set of zeroed counters; aborts when out of memory. */
struct rk_metrics *rk_metrics_new(void);

/* Stops the endpoint if it runs and frees everything; *mp = NULL. */
void rk_metrics_destroy(struct rk_metrics **mp);

/* Serves /metrics and /healthz on `addr`: "PORT" (loopback), "HOST:PORT"
 * with HOST an IPv4 address ("0.0.0.0" for every interface). Returns 0, or
 * -1 with a sentence in `why` (bad address, port in use). */
int rk_metrics_serve(struct rk_metrics *m, const char *addr, char *why, size_t why_len);

/* One committed batch: `events` stored, commit took `commit_ns`. */
void rk_metrics_batch(struct rk_metrics *m, unsigned events, int64_t commit_ns);

/* One publish refused with wire code `code` (E_RANGE, E_STATE, ...). */
void rk_metrics_refused(struct rk_metrics *m, const char *code);

/* One retried publish answered with its original acknowledgement. */
void rk_metrics_duplicate(struct rk_metrics *m);

/* The log's state after a commit attempt: `writable` 0 with `why` (static
 * or long-lived text) when the last commit failed. */
void rk_metrics_log(struct rk_metrics *m, uint64_t last_seq, uint64_t map_size,
                    uint64_t map_used, int writable, const char *why);

/* Totals kept elsewhere, copied in by the ingest thread now and then. */
/* The log's identity, shown as renkei_log_info{log_id="..."} 1. Call
 * before rk_metrics_serve; copied. */
void rk_metrics_log_id(struct rk_metrics *m, const char *log_id);

void rk_metrics_replayed(struct rk_metrics *m, uint64_t events);
void rk_metrics_connections(struct rk_metrics *m, int64_t publishers, int64_t subscribers);

/* One SIGHUP reload of the ACL: `ok` 1 when it loaded, 0 when it failed. */
void rk_metrics_acl_reload(struct rk_metrics *m, int ok);

/* At most this many tenants are shown; the ACL's first ones. */
#define RK_METRICS_TENANTS 512

/* Adds a tenant to the renkei_tenant_* series (name copied; a known one
 * is left as it is). The broker adds the ACL's tenants, or "-" without an
 * ACL, so that a tenant that never publishes shows 0. Thread-safe. */
void rk_metrics_tenant(struct rk_metrics *m, const char *name);

/* One event of `tenant` ("" or NULL: "-") stored, received at recv_ns.
 * A tenant not added with rk_metrics_tenant is not counted. Thread-safe. */
void rk_metrics_published(struct rk_metrics *m, const char *tenant, int64_t recv_ns);

/* The /metrics text into buf (NUL-terminated); returns its length, or the
 * length it needs when that is >= len. For tests and the endpoint. */
size_t rk_metrics_render(struct rk_metrics *m, char *buf, size_t len);

#endif

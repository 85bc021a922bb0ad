/*
 * rk_refusal - every refusal the broker makes, logged and counted.
 *
 * Each refusal (a publish, a subscription, a replay, a connection) is
 * counted at once (rk_refusal_total, for /metrics) and logged at warn:
 *     ts=... level=warn msg=publish_refused count=1 key=K tenant=T
 *     address=A code=E_FORBIDDEN why="..."
 * Nothing is sampled: refusals are summed per (what, key, code). The first
 * of a pair after a quiet interval is logged at once with count=1; the
 * ones after it in the same interval are summed into one line when the
 * interval ends (count=N, the latest's tenant, address and reason). A pair
 * quiet for a whole interval is forgotten, so its next refusal is again
 * logged at once. When more pairs than the table holds are active, all are
 * logged at once and the table starts empty: lines, never lost counts.
 *
 * Process-wide state behind a mutex: the ZAP, replay and ingest threads
 * all refuse. Values from clients are quoted with rk_diag_quote.
 */
#ifndef RK_REFUSAL_H
#define RK_REFUSAL_H

#include <stdint.h>

enum rk_refusal_what {
    RK_REFUSED_PUBLISH,
    RK_REFUSED_SUBSCRIPTION,
    RK_REFUSED_REPLAY,
    RK_REFUSED_CONNECTION,
    RK_REFUSED_WHATS
};

/* One refusal. Any pointer may be NULL or "" (logged as "-"). `key` is
 * the client's Z85 CURVE key, `address` its IP (or IP:port), `why` the
 * sentence the client got (any bytes; quoted in the log). */
struct rk_refusal {
    enum rk_refusal_what what;
    const char *key, *tenant, *address, *code, *why;
};

/* Counts and logs (or sums) one refusal. Thread-safe. */
void rk_refusal_note(const struct rk_refusal *r);

/* Logs the sums of the interval if it is over (or at once with `force`,
 * at shutdown). Call now and then from any thread. */
void rk_refusal_flush(int64_t now_ns, int force);

/* Refusals of that kind since the start. Thread-safe. */
uint64_t rk_refusal_total(enum rk_refusal_what what);

#endif

/*
 * rk_broker - the broker: opens the modules along an event's path and runs
 * the loop that drives them.
 *
 * One thread owns the loop. Each turn rk_ingest takes the publishes waiting
 * on the ingest ROUTER (up to batch_max) and checks each; rk_apply stores
 * the admitted batch in ONE write transaction; only after that commit
 * rk_ack answers the publishers and rk_feed relays the stored events on
 * the feed (XPUB). Between turns rk_upkeep runs retention and the index.
 * Replay is served by rk_replay on its own thread. ARCHITECTURE.md draws it.
 */
#ifndef RK_BROKER_H
#define RK_BROKER_H

#include <signal.h>

#include "rk_log.h"
#include "rk_wire.h" /* RK_DEFAULT_INGEST, _FEED, _REPLAY */
#define RK_DEFAULT_BATCH_MAX 1024

struct rk_broker_config {
    const char *ingest_endpoint;   /* ROUTER: publishes in, acks out */
    const char *feed_endpoint;     /* XPUB: live events out */
    const char *replay_endpoint;   /* ROUTER: replay requests */
    const char *data_dir;          /* LMDB environment directory; created if missing */
    enum rk_log_durability durability;
    int batch_max;                 /* most publishes per write transaction */
    uint64_t map_max;              /* cap on the LMDB map in bytes; 0 = none */
    int64_t retain_age_ns;         /* delete events received longer ago; 0 = keep */
    uint64_t retain_size;          /* delete the oldest while the log's tables use
                                    * more bytes than this; 0 = keep */
    int max_message;               /* bytes; a larger publish is refused, a larger
                                    * frame (ingest, replay) drops the peer */
    const char *curve_key;         /* secret key file; NULL = plain sockets */
    const char *acl;               /* ACL file (rk_acl); NULL = none */
    int insecure_no_curve;         /* plain sockets allowed off loopback */
    const char *http;              /* /metrics and /healthz: "PORT" or "IPV4:PORT";
                                    * NULL = off */
};

/* Runs the broker until *stop becomes non-zero (set it from a signal
 * handler), then commits and acknowledges what it has received, closes,
 * and returns 0. Returns -1 after logging the reason when it cannot start
 * (data directory, log, or an endpoint) or the log fails for good. When
 * *reload becomes non-zero (SIGHUP) it rereads the ACL file and sets it
 * back to 0; `reload` may be NULL. */
int rk_broker_run(const struct rk_broker_config *cfg, volatile sig_atomic_t *stop,
                  volatile sig_atomic_t *reload);

#endif

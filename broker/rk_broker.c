#include "rk_broker.h"
#include "rk_ack.h"
#include "rk_apply.h"
#include "rk_diag.h"
#include "rk_feed.h"
#include "rk_ingest.h"
#include "rk_metrics.h"
#include "rk_refusal.h"
#include "rk_replay.h"
#include "rk_security.h"
#include "rk_sock.h"
#include "rk_time.h"
#include "rk_upkeep.h"

#include <errno.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define POLL_MS 100
/* Failed writes are summed: one append_failed line per interval, the
 * first after a quiet spell at once, as refused publishes are. */
#define FAIL_LOG_EVERY_NS (10 * 1000000000LL)

/* Writes that failed and are not yet logged. */
struct write_failures {
    int rc;                         /* the latest one's error; 0 while writes go */
    int64_t logged_ns;
    unsigned long long batches, events;   /* since the last line */
};

/* The event's path: ingest admits a batch, apply stores it, ack answers
 * the publishers, feed relays it to subscribers. */
struct rk_broker {
    const struct rk_broker_config *cfg;
    void *zctx;
    struct rk_log *log;
    struct rk_security *security;
    struct rk_ingest *ingest;
    struct rk_apply *apply;
    struct rk_ack *ack;
    struct rk_feed *feed;
    struct rk_replay *replay;
    struct rk_upkeep *upkeep;
    struct rk_metrics *metrics;
    struct rk_ingest_batch batch;
    int64_t publishers, subscribers;
    struct write_failures failures;
};

/* What /metrics and /healthz say of the log after a commit (rc its result). */
static void publish_log_state(struct rk_broker *b, int rc)
{
    rk_metrics_log(b->metrics, rk_log_last_seq(b->log), rk_log_map_size(b->log),
                   rk_log_map_used(b->log), rc == 0, rc ? rk_ack_storage_text(rc) : NULL);
}

/* Says so when the map grew since rk_log_map_grown said `before`. */
static void log_map_growth(struct rk_broker *b, unsigned before)
{
    if (rk_log_map_grown(b->log) != before)
        RK_DIAG(RK_DIAG_INFO, "map_grown", "map_size_mib=%llu",
                (unsigned long long)(rk_log_map_size(b->log) >> 20));
}

static void migration_progress(void *arg, uint64_t records, uint64_t of)
{
    (void)arg;
    RK_DIAG(RK_DIAG_INFO, "migrating", "records=%llu of=%llu why=\"building the aid state "
            "tables of a log from an older renkei, once\"", (unsigned long long)records,
            (unsigned long long)of);
}

static int open_log(struct rk_broker *b)
{
    const struct rk_broker_config *cfg = b->cfg;
    struct rk_log_options lopt = {.durability = cfg->durability, .map_max = cfg->map_max};
    struct rk_lifecycle_stats st;
    char why[512];
    int64_t t0 = rk_time_now();
    int rc;
    if ((rc = rk_log_open(&b->log, cfg->data_dir, &lopt, why, sizeof why)) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "log_open_failed", "dir=%s why=\"%s\"", cfg->data_dir, why);
        return rc;
    }
    /* A new identity of a log that had one: subscribers' positions in the
     * old history mean nothing here, and they will say so. */
    if (rk_log_id_reason(b->log))
        RK_DIAG(rk_log_id_previous(b->log)[0] ? RK_DIAG_WARN : RK_DIAG_INFO, "new_log_id",
                "log_id=%s previous_log_id=%s last_seq=%llu why=\"%s\"", rk_log_id(b->log),
                rk_log_id_previous(b->log)[0] ? rk_log_id_previous(b->log) : "none",
                (unsigned long long)rk_log_last_seq(b->log), rk_log_id_reason(b->log));
    if (rk_log_id_marker_error(b->log))
        RK_DIAG(RK_DIAG_WARN, "log_identity_marker_failed", "why=\"%s\"",
                rk_log_id_marker_error(b->log));
    if ((rc = rk_log_open_write_error(b->log)) != 0) {
        RK_DIAG(RK_DIAG_WARN, "log_read_only", "dir=%s error=\"%s\" why=\"%s: replay, "
                "snapshot, state and the feed work; publishes are refused with E_STORAGE "
                "until a write succeeds (each publish tries)\"", cfg->data_dir,
                rk_strerror(rc), rk_ack_storage_text(rc));
        b->failures.rc = rc;
    }
    if ((rc = rk_apply_open(&b->apply, b->log, migration_progress, NULL, &st)) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "state_open_failed", "why=\"%s\"", rk_strerror(rc));
        return rc;
    }
    /* refused: aid events stored before enforcement existed, or damaged;
     * they stay in the log but change no request's state */
    if (st.migrated)
        RK_DIAG(st.refused ? RK_DIAG_WARN : RK_DIAG_INFO, "migrated", "requests=%zu "
                "aid_events=%llu refused=%llu ms=%lld", st.requests,
                (unsigned long long)st.folded, (unsigned long long)st.refused,
                (long long)((rk_time_now() - t0) / 1000000));
    return 0;
}

/* The renkei_tenant_* series: the ACL's tenants, or "-" without one. */
static void add_tenants(struct rk_metrics *metrics, struct rk_acl_slot *slot)
{
    struct rk_acl *acl = slot ? rk_acl_slot_get(slot) : NULL;
    if (!acl)
        rk_metrics_tenant(metrics, "-");
    for (size_t i = 0; acl && i < rk_acl_tenant_count(acl); i++)
        rk_metrics_tenant(metrics, rk_acl_tenant_name(rk_acl_tenant_at(acl, i)));
    rk_acl_release(acl);
}

static int open_network(struct rk_broker *b)
{
    const struct rk_broker_config *cfg = b->cfg;
    char why[512];
    b->zctx = zmq_ctx_new();
    if (rk_security_open(&b->security, b->zctx, cfg) != 0)
        return -1;
    const char *secret = rk_security_secret(b->security);
    struct rk_acl_slot *acl = rk_security_acl(b->security);
    struct rk_ingest_options io = {.endpoint = cfg->ingest_endpoint,
                                   .max_message = cfg->max_message, .curve_secret = secret,
                                   .acl = acl, .batch_max = (size_t)cfg->batch_max};
    b->metrics = rk_metrics_new();
    rk_metrics_log_id(b->metrics, rk_log_id(b->log));
    add_tenants(b->metrics, acl);
    if (rk_ingest_open(&b->ingest, b->zctx, &io) != 0 ||
        rk_feed_open(&b->feed, b->zctx, cfg->feed_endpoint, secret, acl) != 0)
        return -1;
    rk_feed_set_log_id(b->feed, rk_log_id(b->log));
    b->ack = rk_ack_new(rk_ingest_socket(b->ingest), (size_t)cfg->batch_max, b->metrics);
    rk_ingest_set_ack(b->ingest, b->ack);
    if (rk_replay_start_secure(&b->replay, b->zctx, b->log, cfg->replay_endpoint, secret, acl,
                               why, sizeof why) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "bind_failed", "role=replay why=\"%s\"", why);
        return -1;
    }
    if (cfg->http && rk_metrics_serve(b->metrics, cfg->http, why, sizeof why) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "http_failed", "why=\"%s\"", why);
        return -1;
    }
    if (cfg->http)
        RK_DIAG(RK_DIAG_INFO, "http_listening", "addr=%s paths=/metrics,/healthz", cfg->http);
    return 0;
}

static int broker_open(struct rk_broker *b, const struct rk_broker_config *cfg)
{
    b->cfg = cfg;
    if (open_log(b) != 0 || open_network(b) != 0)
        return -1;
    publish_log_state(b, b->failures.rc);
    rk_ingest_batch_init(&b->batch, (size_t)cfg->batch_max);
    b->upkeep = rk_upkeep_new(b->log, b->apply, cfg->retain_age_ns, cfg->retain_size);
    return 0;
}

static void broker_close(struct rk_broker *b)
{
    rk_upkeep_destroy(&b->upkeep);
    rk_replay_stop(&b->replay);
    rk_metrics_destroy(&b->metrics);
    rk_ingest_batch_free(&b->batch);
    rk_ingest_close(&b->ingest);
    rk_feed_close(&b->feed);
    rk_ack_destroy(&b->ack);
    rk_security_close(&b->security);
    if (b->zctx)
        zmq_ctx_term(b->zctx);
    rk_apply_destroy(&b->apply);
    rk_log_destroy(&b->log);
}

/* Each change is logged by rk_sock, with its address; the totals are in
 * /metrics. */
static void drain_monitors(struct rk_broker *b)
{
    b->publishers += rk_ingest_connections(b->ingest);
    b->subscribers += rk_feed_connections(b->feed);
    rk_metrics_connections(b->metrics, b->publishers, b->subscribers);
}

/* One event of a pubs: its part of the "outcomes" sent after its last. */
static void answer_in_pubs(struct rk_broker *b, struct rk_ingest_msg *m,
                           const struct rk_apply_item *it, int rc, int64_t recv_ns)
{
    if (rc)
        rk_ack_pubs_refused(b->ack, "E_STORAGE", rk_ack_storage_text(rc), 0);
    else if (it->outcome == RK_APPLY_STORED || it->outcome == RK_APPLY_DUPLICATE)
        rk_ack_pubs_stored(b->ack, it->rec.seq, it->outcome == RK_APPLY_DUPLICATE,
                           it->rec.recv_ns);
    else
        rk_ack_pubs_refused(b->ack, it->code, it->message, it->expected);
    if (m->pubs_index + 1 == m->pubs_count)
        rk_ack_pubs_end(b->ack, &m->ident, m->corr, recv_ns);
    if (!rc && it->outcome == RK_APPLY_STORED) {
        rk_metrics_published(b->metrics, m->tenant, it->rec.recv_ns);
        rk_feed_relay_bytes(b->feed, m->topic, it->requester, it->rec.event, it->rec.event_len,
                            it->rec.seq, it->rec.recv_ns);
    }
}

/* Every admitted publish is answered once its batch is settled; stored
 * ones are relayed after their acknowledgement. */
static void answer(struct rk_broker *b, int rc)
{
    int64_t recv_ns = 0;
    for (size_t i = 0; i < b->batch.n && !rc && !recv_ns; i++)
        if (b->batch.items[i].outcome == RK_APPLY_STORED)
            recv_ns = b->batch.items[i].rec.recv_ns; /* one commit, one time */
    for (size_t i = 0; i < b->batch.n; i++) {
        struct rk_ingest_msg *m = &b->batch.msgs[i];
        struct rk_apply_item *it = &b->batch.items[i];
        rk_ack_sender(b->ack, m->key, m->tenant, m->address);
        if (m->pubs_count) {
            answer_in_pubs(b, m, it, rc, recv_ns);
        } else if (rc) {
            rk_ack_refuse(b->ack, &m->ident, m->corr, "E_STORAGE", rk_ack_storage_text(rc));
        } else if (it->outcome == RK_APPLY_DUPLICATE) {
            rk_ack_duplicate(b->ack, &m->ident, m->corr, it->rec.seq, it->rec.recv_ns);
        } else if (it->outcome == RK_APPLY_REFUSED) {
            rk_ack_refuse(b->ack, &m->ident, m->corr, it->code, it->message);
        } else if (it->outcome == RK_APPLY_OUT_OF_ORDER) {
            rk_ack_out_of_order(b->ack, &m->ident, m->corr, it->expected, it->message);
        } else {
            rk_ack_stored(b->ack, &m->ident, m->group_ack, m->corr, it->rec.seq, it->rec.recv_ns);
            rk_metrics_published(b->metrics, m->tenant, it->rec.recv_ns);
            rk_feed_relay(b->feed, m->topic, it->requester, &m->event, it->rec.seq,
                          it->rec.recv_ns);
        }
    }
    rk_ack_flush(b->ack);
}

/* "append_failed batches=N events=E why=...": the batches the log could
 * not store since the last such line, why the latest. */
static void log_failures(struct rk_broker *b, int64_t now, int force)
{
    struct write_failures *f = &b->failures;
    if (!f->batches || (!force && now - f->logged_ns < FAIL_LOG_EVERY_NS))
        return;
    RK_DIAG(RK_DIAG_ERROR, "append_failed", "batches=%llu events=%llu why=\"%s\"",
            f->batches, f->events, rk_strerror(f->rc));
    f->batches = f->events = 0;
    f->logged_ns = now;
}

/* Stores the batch. Every batch tries, also while the log fails: the
 * first one after space returns is stored, and a failed try on a full
 * disk costs one transaction that LMDB aborts at its first write. */
static int store(struct rk_broker *b, int64_t now)
{
    struct write_failures *f = &b->failures;
    struct rk_apply_stats st;
    unsigned grown = rk_log_map_grown(b->log);
    int rc = rk_apply_batch(b->apply, b->batch.items, b->batch.n, now, &st);
    log_map_growth(b, grown);
    if (rc)
        goto failed;
    rk_metrics_batch(b->metrics, (unsigned)st.stored, rk_time_now() - now);
    if (f->rc) {
        log_failures(b, now, 1);
        RK_DIAG(RK_DIAG_INFO, "log_writable", "last_seq=%llu why=\"a write succeeded "
                "again; publishes are stored\"", (unsigned long long)rk_log_last_seq(b->log));
        f->rc = 0;
    }
    publish_log_state(b, 0);
    return 0;
failed:
    f->rc = rc;
    f->batches++;
    f->events += b->batch.n;
    publish_log_state(b, rc);
    log_failures(b, now, 0);
    return rc;
}

/* Takes what waits, stores it in one transaction, answers, relays. */
static void ingest_turn(struct rk_broker *b)
{
    int64_t now = rk_time_now();
    rk_ingest_take(b->ingest, &b->batch, now);
    if (b->batch.n == 0)
        return;
    answer(b, store(b, now));
    rk_ingest_batch_clear(&b->batch);
}

/* SIGHUP: the ACL file again. Connections stay; every message is checked
 * against the new one at once. Live subscriptions were allowed when they
 * were made, so when some key may subscribe to less than before, the feed
 * is bound anew and every subscriber fills the moment's gap from the log. */
static int reload_acl(struct rk_broker *b)
{
    int shrunk;
    struct rk_acl_slot *slot = rk_security_acl(b->security);
    int rc = rk_security_reload(b->security, &shrunk);
    if (slot) {
        rk_metrics_acl_reload(b->metrics, rc == 0);
        add_tenants(b->metrics, slot);
    }
    if (!shrunk)
        return 0;
    b->subscribers = 0;
    if (rk_feed_rebind(b->feed) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "feed_rebind_failed", "endpoint=%s why=\"cannot bind the feed "
                "again; stopping\"", b->cfg->feed_endpoint);
        return -1;
    }
    return 0;
}

/* The chain head in hex, for the log lines an operator may copy elsewhere. */
static const char *head_hex(const struct rk_broker *b, char out[2 * RK_LOG_HASH_BYTES + 1])
{
    return sodium_bin2hex(out, 2 * RK_LOG_HASH_BYTES + 1, rk_log_head_hash(b->log),
                          RK_LOG_HASH_BYTES);
}

/* Everything between two polls but taking publishes. */
static void periodic(struct rk_broker *b)
{
    int64_t now = rk_time_now();
    unsigned grown = rk_log_map_grown(b->log);
    rk_feed_tick(b->feed, rk_log_last_seq(b->log), now);
    rk_upkeep_turn(b->upkeep, now);
    rk_metrics_replayed(b->metrics, rk_replay_events_sent(b->replay));
    rk_refusal_flush(now, 0);
    rk_sock_log_flush(now, 0);
    log_failures(b, now, 0);
    log_map_growth(b, grown); /* index flushes and prunes grow it too */
}

static int loop(struct rk_broker *b, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload)
{
    zmq_pollitem_t items[4] = {
        {rk_ingest_socket(b->ingest), 0, ZMQ_POLLIN, 0},
        {rk_feed_socket(b->feed), 0, ZMQ_POLLIN, 0},
        {rk_ingest_monitor(b->ingest), 0, ZMQ_POLLIN, 0},
        {rk_feed_monitor(b->feed), 0, ZMQ_POLLIN, 0},
    };
    while (!*stop) {
        if (zmq_poll(items, 4, POLL_MS) < 0) {
            if (errno == EINTR)
                continue;
            RK_DIAG(RK_DIAG_ERROR, "poll_failed", "why=\"%s\"", zmq_strerror(errno));
            return -1;
        }
        if (reload && *reload) {
            *reload = 0;
            if (reload_acl(b) != 0)
                return -1;
            items[1].socket = rk_feed_socket(b->feed);
            items[3].socket = rk_feed_monitor(b->feed);
            continue;
        }
        if (items[0].revents & ZMQ_POLLIN)
            ingest_turn(b);
        if (items[1].revents & ZMQ_POLLIN)
            rk_feed_notices(b->feed, rk_log_last_seq(b->log));
        if ((items[2].revents | items[3].revents) & ZMQ_POLLIN)
            drain_monitors(b);
        periodic(b);
    }
    /* Whatever already arrived is stored and acknowledged before we go. */
    ingest_turn(b);
    return 0;
}

int rk_broker_run(const struct rk_broker_config *cfg, volatile sig_atomic_t *stop,
                  volatile sig_atomic_t *reload)
{
    char hex[2 * RK_LOG_HASH_BYTES + 1];
    struct rk_broker b = {0};
    int rc = -1;

    if (broker_open(&b, cfg) != 0)
        goto out;
    RK_DIAG(RK_DIAG_INFO, "ready",
            "ingest=%s feed=%s replay=%s data_dir=%s durability=%s map_size_mib=%llu "
            "last_seq=%llu chain_head=%s log_id=%s log_epoch=%llu",
            cfg->ingest_endpoint, cfg->feed_endpoint, cfg->replay_endpoint, cfg->data_dir,
            cfg->durability == RK_LOG_OS ? "os" : "full",
            (unsigned long long)(rk_log_map_size(b.log) >> 20),
            (unsigned long long)rk_log_last_seq(b.log), head_hex(&b, hex), rk_log_id(b.log),
            (unsigned long long)rk_log_epoch(b.log));
    rc = loop(&b, stop, reload);
    rk_refusal_flush(rk_time_now(), 1);
    rk_sock_log_flush(rk_time_now(), 1);
    log_failures(&b, rk_time_now(), 1);
    struct rk_ack_counts c = rk_ack_counts(b.ack);
    if (rc == 0)
        RK_DIAG(RK_DIAG_INFO, "stopped",
                "last_seq=%llu chain_head=%s accepted=%llu refused=%llu duplicates=%llu",
                (unsigned long long)rk_log_last_seq(b.log), head_hex(&b, hex), c.accepted,
                c.refused, c.duplicates);
out:
    broker_close(&b);
    return rc;
}

#include "rk_security.h"
#include "rk_diag.h"
#include "rk_text.h"
#include "rk_keys.h"
#include "rk_zap.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct rk_security {
    const struct rk_broker_config *cfg;
    char curve_secret[RK_KEY_Z85_LEN + 1]; /* "" = plain sockets */
    struct rk_acl_slot *acl;               /* NULL without CURVE */
    struct rk_zap *zap;
};

/* Plain sockets are for loopback: anyone on a network could read the feed
 * and publish in any town's name. */
int rk_security_endpoint_is_local(const char *ep)
{
    static const char *const local[] = {"ipc://", "inproc://", "tcp://127.", "tcp://localhost:",
                                        "tcp://[::1]:"};
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        if (strncmp(ep, local[i], strlen(local[i])) == 0)
            return 1;
    return 0;
}

static int check_plain_endpoints(const struct rk_broker_config *cfg)
{
    const char *eps[3] = {cfg->ingest_endpoint, cfg->feed_endpoint, cfg->replay_endpoint};
    for (int i = 0; i < 3; i++) {
        if (rk_security_endpoint_is_local(eps[i]))
            continue;
        if (!cfg->insecure_no_curve) {
            RK_DIAG(RK_DIAG_ERROR, "insecure_endpoint", "endpoint=%s why=\"not loopback, and no "
                    "CURVE: give --curve-key FILE and --acl FILE (deploy/README.md), or, on a "
                    "closed test network only, --insecure-no-curve yes\"", eps[i]);
            return EINVAL;
        }
        RK_DIAG(RK_DIAG_WARN, "INSECURE", "endpoint=%s why=\"--insecure-no-curve: anyone who "
                "can reach this endpoint can read every event and publish for any "
                "municipality\"", eps[i]);
    }
    return 0;
}

static int check_pairing(const struct rk_broker_config *cfg)
{
    if (!cfg->curve_key && cfg->acl) {
        RK_DIAG(RK_DIAG_ERROR, "acl_without_curve", "why=\"--acl needs --curve-key: without "
                "CURVE there are no keys to check\"");
        return EINVAL;
    }
    if (cfg->curve_key && !cfg->acl) {
        RK_DIAG(RK_DIAG_ERROR, "curve_without_acl", "why=\"--curve-key needs --acl FILE "
                "listing the client keys and what each may do (deploy/README.md)\"");
        return EINVAL;
    }
    return 0;
}

static int start_curve(struct rk_security *s, void *zctx)
{
    const struct rk_broker_config *cfg = s->cfg;
    struct rk_acl *acl;
    char why[512], pub[RK_KEY_Z85_LEN + 1];
    if (rk_keys_read_secret(cfg->curve_key, s->curve_secret, why, sizeof why) != 0 ||
        rk_acl_load(cfg->acl, &acl, why, sizeof why) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "security_failed", "why=\"%s\"", why);
        return EACCES;
    }
    s->acl = rk_acl_slot_new(acl);
    if (rk_zap_start(&s->zap, zctx, s->acl) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "zap_failed", "why=\"%s\"", zmq_strerror(errno));
        return errno ? errno : EIO;
    }
    rk_keys_public_of(s->curve_secret, pub);
    RK_DIAG(RK_DIAG_INFO, "curve", "public_key=%s acl=%s tenants=%zu keys=%zu", pub, cfg->acl,
            rk_acl_tenant_count(acl), rk_acl_key_count(acl));
    return 0;
}

int rk_security_open(struct rk_security **out, void *zctx, const struct rk_broker_config *cfg)
{
    struct rk_security *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->cfg = cfg;
    *out = s;
    int rc = check_pairing(cfg);
    if (!rc)
        rc = cfg->curve_key ? start_curve(s, zctx) : check_plain_endpoints(cfg);
    return rc;
}

void rk_security_close(struct rk_security **sp)
{
    struct rk_security *s = *sp;
    if (!s)
        return;
    rk_zap_stop(&s->zap);
    rk_acl_slot_destroy(&s->acl);
    sodium_memzero(s->curve_secret, sizeof s->curve_secret);
    free(s);
    *sp = NULL;
}

const char *rk_security_secret(const struct rk_security *s)
{
    return s->curve_secret[0] ? s->curve_secret : NULL;
}

struct rk_acl_slot *rk_security_acl(const struct rk_security *s)
{
    return s->acl;
}

int rk_security_reload(struct rk_security *s, int *shrunk)
{
    struct rk_acl *acl, *old;
    char why[512];
    *shrunk = 0;
    if (!s->acl) {
        RK_DIAG(RK_DIAG_INFO, "reload", "why=\"no --acl: nothing to reload\"");
        return 0;
    }
    int rc = rk_acl_load(s->cfg->acl, &acl, why, sizeof why);
    if (rc != 0) {
        char q[RK_TEXT_SIZE(sizeof why) + 2];
        RK_DIAG(RK_DIAG_ERROR, "acl_reload_failed", "why=%s stays=previous_acl",
                rk_diag_quote(q, sizeof q, why, strlen(why)));
        return rc;
    }
    old = rk_acl_slot_swap(s->acl, acl);
    *shrunk = rk_acl_subscriptions_shrink(old, acl);
    RK_DIAG(RK_DIAG_INFO, "acl_reloaded", "tenants=%zu keys=%zu feed_rebound=%d",
            rk_acl_tenant_count(acl), rk_acl_key_count(acl), *shrunk);
    rk_acl_release(old);
    return 0;
}

#include "rk_zap.h"
#include "rk_diag.h"
#include "rk_refusal.h"
#include "rk_text.h"
#include "rk_time.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define POLL_MS 100
#define ACCEPTED_KEYS 64
#define LOG_EVERY_NS (10 * 1000000000LL)

struct rk_zap {
    void *rep;
    struct rk_acl_slot *acl;
    pthread_t thread;
    atomic_int stop;
    atomic_uint_fast64_t refused;
    struct accepted {
        char key[RK_KEY_Z85_LEN + 1];
        unsigned long long count;   /* handshakes not yet logged */
        int64_t logged_ns;
    } accepted[ACCEPTED_KEYS];
};

/* A request is 7 frames: version, request id, domain, address, identity,
 * mechanism, then the mechanism's credentials (CURVE: the 32-byte key). */
#define ZAP_FRAMES 7

static void reply(struct rk_zap *z, zmq_msg_t *request_id, const char *code, const char *text,
                  const char *user)
{
    zmq_send(z->rep, "1.0", 3, ZMQ_SNDMORE);
    zmq_msg_send(request_id, z->rep, ZMQ_SNDMORE);
    zmq_send(z->rep, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(z->rep, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(z->rep, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(z->rep, "", 0, 0);
}

/* ZAP's refusals are no wire replies; their codes say which check failed. */
static void log_refusal(struct rk_zap *z, const char *address, const char *key, const char *code,
                        const char *why)
{
    struct rk_refusal r = {RK_REFUSED_CONNECTION, key, NULL, address, code, why};
    atomic_fetch_add(&z->refused, 1);
    rk_refusal_note(&r);
}

/* "connection_accepted count=N key=K tenant=T address=A": a key's
 * handshakes, the first after a quiet interval at once, the others of a
 * client that flaps counted into its next line. Few keys are active at
 * once; more than the table holds are logged each time. */
static void log_accepted(struct rk_zap *z, const char *address, const char *key,
                         const char *tenant)
{
    int64_t now = rk_time_now();
    struct accepted *slot = &z->accepted[0];
    char qt[RK_TEXT_SIZE(72) + 2], qa[RK_TEXT_SIZE(64) + 2];
    for (int i = 0; i < ACCEPTED_KEYS; i++) {
        struct accepted *a = &z->accepted[i];
        if (strcmp(a->key, key) == 0) {
            slot = a;
            break;
        }
        if (a->logged_ns < slot->logged_ns)
            slot = a;
    }
    if (strcmp(slot->key, key) != 0) {
        snprintf(slot->key, sizeof slot->key, "%s", key);
        slot->count = 0;
        slot->logged_ns = 0;
    }
    slot->count++;
    if (now - slot->logged_ns < LOG_EVERY_NS)
        return;
    RK_DIAG(RK_DIAG_INFO, "connection_accepted", "count=%llu key=%s tenant=%s address=%s",
            slot->count, key, rk_diag_quote(qt, sizeof qt, tenant, strlen(tenant)),
            rk_diag_quote(qa, sizeof qa, address, strlen(address)));
    slot->count = 0;
    slot->logged_ns = now;
}

static void answer(struct rk_zap *z, zmq_msg_t *f)
{
    char address[64] = "", key[RK_KEY_Z85_LEN + 1] = "";
    size_t alen = zmq_msg_size(&f[3]) < sizeof address ? zmq_msg_size(&f[3]) : sizeof address - 1;
    memcpy(address, zmq_msg_data(&f[3]), alen);
    if (zmq_msg_size(&f[5]) != 5 || memcmp(zmq_msg_data(&f[5]), "CURVE", 5) != 0 ||
        zmq_msg_size(&f[6]) != 32) {
        log_refusal(z, address, "-", "E_MECHANISM", "not CURVE");
        reply(z, &f[1], "400", "CURVE only", "");
        return;
    }
    zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
    struct rk_acl *acl = rk_acl_slot_get(z->acl);
    const struct rk_acl_tenant *t = acl ? rk_acl_find(acl, key) : NULL;
    if (t) {
        log_accepted(z, address, key, rk_acl_tenant_name(t));
        reply(z, &f[1], "200", "OK", key);
    } else {
        log_refusal(z, address, key, "E_FORBIDDEN", "key not in the ACL");
        reply(z, &f[1], "400", "key not in the ACL", "");
    }
    rk_acl_release(acl);
}

static void *zap_main(void *arg)
{
    struct rk_zap *z = arg;
    zmq_pollitem_t item = {z->rep, 0, ZMQ_POLLIN, 0};
    zmq_msg_t f[ZAP_FRAMES + 1];
    for (int i = 0; i <= ZAP_FRAMES; i++)
        zmq_msg_init(&f[i]);
    while (!atomic_load(&z->stop)) {
        if (zmq_poll(&item, 1, POLL_MS) <= 0)
            continue;
        int n = 0, more = 1;
        while (more && zmq_msg_recv(&f[n < ZAP_FRAMES ? n : ZAP_FRAMES], z->rep, 0) >= 0) {
            more = zmq_msg_more(&f[n < ZAP_FRAMES ? n : ZAP_FRAMES]);
            n++;
        }
        if (n == ZAP_FRAMES)
            answer(z, f);
        else if (n >= 2) /* libzmq never sends this; answer so REP stays in step */
            reply(z, &f[1], "500", "malformed ZAP request", "");
    }
    for (int i = 0; i <= ZAP_FRAMES; i++)
        zmq_msg_close(&f[i]);
    return NULL;
}

int rk_zap_start(struct rk_zap **out, void *zctx, struct rk_acl_slot *acl)
{
    struct rk_zap *z = calloc(1, sizeof *z);
    int linger = 0;
    if (!z)
        abort();
    *out = NULL;
    z->acl = acl;
    atomic_init(&z->stop, 0);
    atomic_init(&z->refused, 0);
    z->rep = zmq_socket(zctx, ZMQ_REP);
    if (!z->rep || zmq_setsockopt(z->rep, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(z->rep, ZAP_ENDPOINT) != 0)
        goto fail;
    if (pthread_create(&z->thread, NULL, zap_main, z) != 0)
        goto fail;
    *out = z;
    return 0;
fail:
    {
        int e = errno;
        if (z->rep)
            zmq_close(z->rep);
        free(z);
        errno = e;
    }
    return -1;
}

void rk_zap_stop(struct rk_zap **zp)
{
    struct rk_zap *z = *zp;
    if (!z)
        return;
    atomic_store(&z->stop, 1);
    pthread_join(z->thread, NULL);
    zmq_close(z->rep);
    free(z);
    *zp = NULL;
}

int rk_zap_curve_server(void *socket, const char *secret_key)
{
    int on = 1;
    if (zmq_setsockopt(socket, ZMQ_CURVE_SERVER, &on, sizeof on) != 0 ||
        zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, secret_key, RK_KEY_Z85_LEN) != 0 ||
        zmq_setsockopt(socket, ZMQ_ZAP_DOMAIN, "renkei", 6) != 0)
        return -1;
    return 0;
}

uint64_t rk_zap_refused(const struct rk_zap *z)
{
    return atomic_load(&z->refused);
}

/* Keys are per object: two publishers in one process with different keys,
 * a reader and a subscriber with keys of their own, each seen by a CURVE
 * server under its own key. The server is a stub in a thread: a ROUTER and
 * an XPUB speaking CURVE, and a ZAP handler that lets in the keys it is
 * told and names each connection by its key (ZeroMQ's User-Id). */
#include "rk_client.h"
#include "rk_pub.h"
#include "rk_reader.h"
#include "rk_sub.h"
#include "rk_test.h"
#include "rk_wire.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <zmq.h>

#define KEY_LEN 41

struct keypair {
    char public[KEY_LEN], secret[KEY_LEN];
};

/* What the server received: the command, the key it came under, and the
 * event's first bytes. */
struct seen {
    enum rk_wire_cmd cmd;
    char user[KEY_LEN];
    char body[16];
};

struct server {
    void *ctx, *zap, *router, *xpub;
    char dir[64], ingest[128], feed[128];
    struct keypair key;
    char allowed[4][KEY_LEN];
    int nallowed;
    pthread_mutex_t mu;
    struct seen seen[64];
    int nseen;
    atomic_int stop;
    pthread_t thread;
};

static struct keypair make_keys(void)
{
    struct keypair k;
    if (zmq_curve_keypair(k.public, k.secret) != 0)
        abort();
    return k;
}

/* Up to `max` frames of one message; the rest are dropped. */
static int recv_frames(void *sock, zmq_msg_t *frames, int max)
{
    int n = 0, more = 1;
    while (more && n < max) {
        zmq_msg_init(&frames[n]);
        if (zmq_msg_recv(&frames[n], sock, 0) < 0) {
            zmq_msg_close(&frames[n]);
            return n;
        }
        more = zmq_msg_more(&frames[n++]);
    }
    while (more) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        more = zmq_msg_recv(&extra, sock, 0) >= 0 && zmq_msg_more(&extra);
        zmq_msg_close(&extra);
    }
    return n;
}

static void close_frames(zmq_msg_t *frames, int n)
{
    for (int i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
}

/* ZAP (ZeroMQ RFC 27): frame 6 of a CURVE request is the client's key. */
static void answer_zap(struct server *s)
{
    zmq_msg_t f[8];
    char key[KEY_LEN] = "";
    const char *status = "400";
    int n = recv_frames(s->zap, f, 8);
    if (n >= 7 && zmq_msg_size(&f[6]) == 32)
        zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
    for (int i = 0; i < s->nallowed; i++)
        if (strcmp(key, s->allowed[i]) == 0)
            status = "200";
    zmq_send(s->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(s->zap, n > 1 ? zmq_msg_data(&f[1]) : "", n > 1 ? zmq_msg_size(&f[1]) : 0, ZMQ_SNDMORE);
    zmq_send(s->zap, status, 3, ZMQ_SNDMORE);
    zmq_send(s->zap, "", 0, ZMQ_SNDMORE);
    zmq_send(s->zap, key, strlen(key), ZMQ_SNDMORE);
    zmq_send(s->zap, "", 0, 0);
    close_frames(f, n);
}

static void note(struct server *s, enum rk_wire_cmd cmd, zmq_msg_t *hdr, zmq_msg_t *body)
{
    const char *user = zmq_msg_gets(hdr, "User-Id");
    pthread_mutex_lock(&s->mu);
    if (s->nseen < 64) {
        struct seen *e = &s->seen[s->nseen++];
        e->cmd = cmd;
        snprintf(e->user, sizeof e->user, "%s", user ? user : "");
        if (body)
            snprintf(e->body, sizeof e->body, "%.*s", (int)zmq_msg_size(body),
                     (const char *)zmq_msg_data(body));
    }
    pthread_mutex_unlock(&s->mu);
}

/* A publish gets an ack; anything else (a replay) an error, so that the
 * client learns at once that it was heard. */
static void answer_router(struct server *s)
{
    zmq_msg_t f[4];
    struct rk_wire_hdr h, r = {0};
    unsigned char buf[RK_WIRE_HDR_MAX];
    int n = recv_frames(s->router, f, 4);
    if (n >= 2 && rk_wire_decode(zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), &h) == 0) {
        note(s, h.cmd, &f[1], n >= 3 ? &f[2] : NULL);
        r.corr = h.corr;
        if (h.cmd == RK_CMD_PUB) {
            r.cmd = RK_CMD_ACK;
            r.seq = (uint64_t)s->nseen;
            r.recv_ns = 1;
        } else {
            r.cmd = RK_CMD_ERR;
            strcpy(r.code, "E_TEST");
            strcpy(r.message, "the stub serves no replay");
        }
        size_t len = rk_wire_encode(&r, buf, sizeof buf);
        zmq_send(s->router, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), ZMQ_SNDMORE);
        zmq_send(s->router, buf, len, 0);
    }
    close_frames(f, n);
}

/* Ticks on the feed, as the broker sends every 200 ms; subscriptions are
 * noted under their key. */
static void feed_step(struct server *s)
{
    struct rk_wire_hdr t = {.cmd = RK_CMD_TICK, .recv_ns = 1};
    unsigned char buf[RK_WIRE_HDR_MAX];
    zmq_msg_t sub;
    zmq_msg_init(&sub);
    while (zmq_msg_recv(&sub, s->xpub, ZMQ_DONTWAIT) >= 0)
        note(s, RK_CMD_NONE, &sub, NULL);
    zmq_msg_close(&sub);
    size_t len = rk_wire_encode(&t, buf, sizeof buf);
    zmq_send(s->xpub, "~\n", 2, ZMQ_SNDMORE);
    zmq_send(s->xpub, buf, len, 0);
}

static void *serve(void *arg)
{
    struct server *s = arg;
    zmq_pollitem_t items[] = {{s->zap, 0, ZMQ_POLLIN, 0}, {s->router, 0, ZMQ_POLLIN, 0}};
    while (!atomic_load(&s->stop)) {
        if (zmq_poll(items, 2, 20) > 0) {
            if (items[0].revents & ZMQ_POLLIN)
                answer_zap(s);
            if (items[1].revents & ZMQ_POLLIN)
                answer_router(s);
        }
        feed_step(s);
    }
    return NULL;
}

static void *curve_socket(struct server *s, int type, const char *endpoint)
{
    int one = 1, linger = 0;
    void *sock = zmq_socket(s->ctx, type);
    zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, s->key.secret, 40);
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(sock, endpoint) != 0)
        abort();
    return sock;
}

static void server_start(struct server *s, const char *const *allowed, int nallowed)
{
    memset(s, 0, sizeof *s);
    strcpy(s->dir, "/tmp/rk-client-test-XXXXXX");
    if (!mkdtemp(s->dir))
        abort();
    snprintf(s->ingest, sizeof s->ingest, "ipc://%s/ingest", s->dir);
    snprintf(s->feed, sizeof s->feed, "ipc://%s/feed", s->dir);
    s->key = make_keys();
    for (int i = 0; i < nallowed; i++)
        strcpy(s->allowed[i], allowed[i]);
    s->nallowed = nallowed;
    pthread_mutex_init(&s->mu, NULL);
    s->ctx = zmq_ctx_new();
    s->zap = zmq_socket(s->ctx, ZMQ_REP);
    if (zmq_bind(s->zap, "inproc://zeromq.zap.01") != 0)
        abort();
    s->router = curve_socket(s, ZMQ_ROUTER, s->ingest);
    s->xpub = curve_socket(s, ZMQ_XPUB, s->feed);
    pthread_create(&s->thread, NULL, serve, s);
}

static void server_stop(struct server *s)
{
    char path[200];
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    zmq_close(s->zap);
    zmq_close(s->router);
    zmq_close(s->xpub);
    zmq_ctx_term(s->ctx);
    pthread_mutex_destroy(&s->mu);
    snprintf(path, sizeof path, "%s/ingest", s->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/feed", s->dir);
    unlink(path);
    rmdir(s->dir);
}

/* How many messages of `cmd` (with `body`, when not NULL) came under `user`. */
static int count_seen(struct server *s, enum rk_wire_cmd cmd, const char *body, const char *user)
{
    int n = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nseen; i++)
        n += s->seen[i].cmd == cmd && strcmp(s->seen[i].user, user) == 0 &&
             (!body || strcmp(s->seen[i].body, body) == 0);
    pthread_mutex_unlock(&s->mu);
    return n;
}

static int publish(struct rk_pub *p, const char *body, int timeout_ms)
{
    struct rk_pub_result res;
    int rc = rk_pub_publish(p, body, strlen(body), timeout_ms, &res);
    return rc == 0 && res.ok ? 0 : -1;
}

static void test_two_publishers_two_keys(void)
{
    struct keypair a = make_keys(), b = make_keys(), stranger = make_keys();
    const char *allowed[] = {a.public, b.public};
    struct server s;
    struct rk_pub *pa = NULL, *pb = NULL, *ps = NULL;
    void *ctx = zmq_ctx_new();

    server_start(&s, allowed, 2);
    struct rk_client_options as_a = {s.key.public, a.secret, ctx};
    struct rk_client_options as_b = {s.key.public, b.secret, NULL};
    struct rk_client_options as_stranger = {s.key.public, stranger.secret, ctx};
    RK_CHECK(rk_pub_open(s.ingest, &as_a, &pa) == 0);
    RK_CHECK(rk_pub_open(s.ingest, &as_b, &pb) == 0);
    /* Made after both, on A's context: a key set last must change nothing. */
    RK_CHECK(rk_pub_open(s.ingest, &as_stranger, &ps) == 0);
    RK_CHECK(publish(pa, "from-a", 5000) == 0);
    RK_CHECK(publish(pb, "from-b", 5000) == 0);
    /* Refused by ZAP: no answer (ETIMEDOUT), or no connection to queue on
     * while ZeroMQ tries again (EAGAIN). */
    RK_CHECK(publish(ps, "from-stranger", 500) != 0 && (errno == ETIMEDOUT || errno == EAGAIN));
    RK_CHECK(publish(pa, "from-a", 5000) == 0);
    RK_CHECK(count_seen(&s, RK_CMD_PUB, "from-a", a.public) == 2);
    RK_CHECK(count_seen(&s, RK_CMD_PUB, "from-b", b.public) == 1);
    RK_CHECK(count_seen(&s, RK_CMD_PUB, "from-a", b.public) == 0);
    RK_CHECK(count_seen(&s, RK_CMD_PUB, "from-stranger", stranger.public) == 0);
    rk_pub_destroy(&pa);
    rk_pub_destroy(&pb);
    rk_pub_destroy(&ps);
    zmq_ctx_term(ctx);
    server_stop(&s);
}

/* The reader a subscriber makes to fill gaps uses the subscriber's keys. */
static void test_reader_and_subscriber_keys(void)
{
    struct keypair a = make_keys(), b = make_keys();
    const char *allowed[] = {a.public, b.public};
    struct server s;
    struct rk_reader *r = NULL;
    struct rk_sub *sub = NULL;
    struct rk_record rec;
    struct rk_delivery d;

    server_start(&s, allowed, 2);
    struct rk_client_options as_a = {s.key.public, a.secret, NULL};
    struct rk_client_options as_b = {s.key.public, b.secret, NULL};
    RK_CHECK(rk_reader_open(s.ingest, &as_b, &r) == 0);
    RK_CHECK(rk_reader_next(r, 5000, &rec) == -1 && errno == EPROTO);
    RK_CHECK_STR(rk_reader_error(r), "E_TEST: the stub serves no replay");
    RK_CHECK(count_seen(&s, RK_CMD_REPLAY, NULL, b.public) == 1);

    RK_CHECK(rk_sub_open(s.feed, s.ingest, &as_a, &sub) == 0);
    RK_CHECK(rk_sub_start(sub, 1, 5000) == 0);
    RK_CHECK(rk_sub_next(sub, 5000, &d) == -1 && errno == EPROTO);
    RK_CHECK(count_seen(&s, RK_CMD_NONE, NULL, a.public) >= 1); /* the subscription */
    RK_CHECK(count_seen(&s, RK_CMD_REPLAY, NULL, a.public) == 1);
    RK_CHECK(count_seen(&s, RK_CMD_REPLAY, NULL, b.public) == 1);
    rk_sub_destroy(&sub);
    rk_reader_destroy(&r);
    server_stop(&s);
}

static void test_check_says_why(void)
{
    struct keypair k = make_keys();
    struct rk_client_options plain = {0}, alone = {.client_key = k.secret};
    struct rk_client_options missing = {"/nonexistent/broker.pub", k.secret, NULL};
    struct rk_client_options bad_own = {k.public, "not a key", NULL};
    struct rk_client_options good = {k.public, k.secret, NULL};
    struct rk_pub *p = NULL;
    char why[400];

    RK_CHECK(rk_client_check(NULL, why, sizeof why) == 0);
    RK_CHECK(rk_client_check(&plain, why, sizeof why) == 0);
    RK_CHECK(rk_client_check(&good, why, sizeof why) == 0);
    RK_CHECK(rk_client_check(&alone, why, sizeof why) == -1 && errno == EINVAL);
    RK_CHECK(strstr(why, "go together") != NULL);
    RK_CHECK(rk_client_check(&missing, why, sizeof why) == -1);
    RK_CHECK_STR(why, "broker key: /nonexistent/broker.pub: No such file or directory");
    RK_CHECK(rk_client_check(&bad_own, why, sizeof why) == -1);
    RK_CHECK(strncmp(why, "own key: not a key: ", 20) == 0);
    RK_CHECK(rk_pub_open("ipc:///tmp/rk-nowhere", &missing, &p) == -1 && errno == EINVAL);
    RK_CHECK(p == NULL);
}

static void test_wipe(void)
{
    struct keypair k = make_keys();
    struct rk_client_options o = {k.public, k.secret, NULL};
    struct rk_client_keys keys;
    static const struct rk_client_keys zero;

    RK_CHECK(rk_client_keys_load(&o, &keys, NULL, 0) == 0);
    RK_CHECK(keys.on && strcmp(keys.secret, k.secret) == 0 && strcmp(keys.server, k.public) == 0);
    RK_CHECK(strcmp(keys.public, k.public) == 0);
    rk_client_keys_wipe(&keys);
    RK_CHECK(memcmp(&keys, &zero, sizeof keys) == 0);
}

/* rk_sub_set_log_id takes 32 lowercase hex digits or nothing; a
 * subscriber never started cannot restart on a new log. */
static void test_log_id_arguments(void)
{
    struct rk_sub *s = NULL;
    RK_CHECK(rk_sub_open("ipc:///nonexistent/feed", "ipc:///nonexistent/replay", NULL, &s) == 0);
    if (!s)
        return;
    RK_CHECK(rk_sub_log_id(s)[0] == '\0');
    RK_CHECK(rk_sub_set_log_id(s, "9c1e04b2a55f6d7e8f90a1b2c3d4e5f6") == 0);
    RK_CHECK(strcmp(rk_sub_log_id(s), "9c1e04b2a55f6d7e8f90a1b2c3d4e5f6") == 0);
    errno = 0;
    RK_CHECK(rk_sub_set_log_id(s, "9C1E04B2A55F6D7E8F90A1B2C3D4E5F6") == -1 && errno == EINVAL);
    RK_CHECK(rk_sub_set_log_id(s, "9c1e04b2") == -1 && errno == EINVAL);
    RK_CHECK(rk_sub_set_log_id(s, "9c1e04b2a55f6d7e8f90a1b2c3d4e5f6a") == -1);
    RK_CHECK(strcmp(rk_sub_log_id(s), "9c1e04b2a55f6d7e8f90a1b2c3d4e5f6") == 0);
    RK_CHECK(rk_sub_set_log_id(s, NULL) == 0 && rk_sub_log_id(s)[0] == '\0');
    RK_CHECK(rk_sub_restart_new_log(s, 1) == -1 && errno == EINVAL);
    rk_sub_destroy(&s);
}

int main(void)
{
    RK_RUN(test_two_publishers_two_keys);
    RK_RUN(test_reader_and_subscriber_keys);
    RK_RUN(test_check_says_why);
    RK_RUN(test_wipe);
    RK_RUN(test_log_id_arguments);
    return rk_test_result();
}

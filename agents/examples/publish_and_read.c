/*
 * A program of another team, built against the installed client library
 * (msgpack-c builds its events; the library itself needs no msgpack):
 *
 *   cc publish_and_read.c $(pkg-config --cflags --libs renkei msgpack) -o publish_and_read
 *   ./publish_and_read tcp://127.0.0.1:7701 tcp://127.0.0.1:7703 271004
 *
 * It publishes three KPI updates for one municipality with completion
 * callbacks, one more with the blocking helper, then reads the log back
 * from the first of them and prints each stored event's sequence number.
 *
 * With a broker that speaks CURVE, three more arguments: the broker's
 * public key, the publisher's secret key and the reader's. Each object has
 * its own: a town's key may publish for the town, an auditor's read it.
 *
 *   ./publish_and_read ... 271004 broker.pub town.key auditor.key
 */
#include <msgpack.h>
#include <renkei.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void pack_kv(msgpack_packer *pk, const char *k, const char *v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void pack_point(msgpack_packer *pk, const char *k, int value, int fy)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_map(pk, 2);
    msgpack_pack_str_with_body(pk, "value", 5);
    msgpack_pack_int(pk, value);
    msgpack_pack_str_with_body(pk, "fy", 2);
    msgpack_pack_int(pk, fy);
}

/* A kpi.update (PROTOCOL.md 4.2) of municipality `muni`, number i. */
static void make_event(msgpack_sbuffer *sb, const char *muni, int i)
{
    char id[64], kpi[64], now[32];
    time_t t = time(NULL);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    snprintf(id, sizeof id, "%s-example-%ld-%d", muni, (long)t, i);
    snprintf(kpi, sizeof kpi, "KPI-%s-900", muni);
    msgpack_packer pk;
    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 13);
    pack_kv(&pk, "type", "kpi.update");
    pack_kv(&pk, "event_id", id);
    pack_kv(&pk, "municipality", muni);
    pack_kv(&pk, "sent_at", now);
    pack_kv(&pk, "kpi_id", kpi);
    pack_kv(&pk, "policy_area", "a.b");
    pack_kv(&pk, "name", "example");
    pack_kv(&pk, "unit", "件");
    pack_kv(&pk, "aggregation", "annual");
    msgpack_pack_str_with_body(&pk, "fiscal_year", 11);
    msgpack_pack_int(&pk, 2024);
    pack_point(&pk, "baseline", 10, 2020);
    pack_point(&pk, "target", 20, 2027);
    pack_point(&pk, "current", 10 + i, 2024);
}

struct outcome {
    int done, ok;
    unsigned long long seq;
};

static void on_done(void *arg, const struct rk_pub_result *res)
{
    struct outcome *o = arg;
    o->done = 1;
    o->ok = res->ok;
    o->seq = (unsigned long long)res->seq;
    if (!res->ok)
        fprintf(stderr, "refused: %s: %s\n", res->code, res->message);
}

int main(int argc, char **argv)
{
    struct outcome out[3] = {{0}};
    struct rk_pub_result res;
    struct rk_pub *pub = NULL;
    struct rk_reader *reader = NULL;
    struct rk_client_options as_publisher = {0}, as_reader = {0};
    struct rk_record rec;
    msgpack_sbuffer sb;
    char why[512];
    int waiting = 3, rc = 1;

    if (argc != 4 && argc != 7) {
        fprintf(stderr, "usage: %s INGEST_ENDPOINT REPLAY_ENDPOINT MUNICIPALITY "
                "[BROKER_KEY PUBLISHER_KEY READER_KEY]\n", argv[0]);
        return 2;
    }
    if (argc == 7) {
        as_publisher = (struct rk_client_options){.broker_key = argv[4], .client_key = argv[5]};
        as_reader = (struct rk_client_options){.broker_key = argv[4], .client_key = argv[6]};
    }
    if (rk_client_check(&as_publisher, why, sizeof why) != 0 ||
        rk_client_check(&as_reader, why, sizeof why) != 0) {
        fprintf(stderr, "%s\n", why);
        return 2;
    }
    msgpack_sbuffer_init(&sb);
    if (rk_pub_open(argv[1], &as_publisher, &pub) != 0 ||
        rk_reader_open(argv[2], &as_reader, &reader) != 0) {
        perror("connect");
        goto done;
    }
    for (int i = 0; i < 3; i++) {
        make_event(&sb, argv[3], i);
        if (rk_pub_send_cb(pub, sb.data, sb.size, on_done, &out[i]) != 0)
            goto done;
    }
    while (waiting > 0) {
        int n = rk_pub_dispatch(pub, 10000);
        if (n < 0) {
            fprintf(stderr, "no answer from the broker\n");
            goto done;
        }
        waiting -= n;
    }
    make_event(&sb, argv[3], 3);
    if (rk_pub_publish(pub, sb.data, sb.size, 10000, &res) != 0) {
        fprintf(stderr, "no answer from the broker\n");
        goto done;
    }
    if (!res.ok) {
        fprintf(stderr, "refused: %s: %s\n", res.code, res.message);
        goto done;
    }
    for (int i = 0; i < 3; i++)
        printf("published %d: %s seq %llu\n", i, out[i].ok ? "stored" : "refused", out[i].seq);
    printf("published 3: stored seq %llu\n", (unsigned long long)res.seq);

    rk_reader_seek(reader, out[0].seq, res.seq);
    while ((rc = rk_reader_next(reader, 10000, &rec)) == 0)
        printf("read seq %llu, %zu bytes\n", (unsigned long long)rec.seq, rec.event_len);
    if (rc != RK_READER_EOF) {
        fprintf(stderr, "reading: %s\n", errno == EPROTO ? rk_reader_error(reader) : strerror(errno));
        rc = 1;
        goto done;
    }
    rc = 0;
done:
    rk_reader_destroy(&reader);
    rk_pub_destroy(&pub);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

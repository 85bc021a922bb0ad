/* Fuzz target: header frames, the first bytes every socket of the broker
 * decodes (ingest, replay) and every client decodes (ack, evt, end, live,
 * tick, acks). A header that decodes must encode again and decode to the
 * same command; an "acks" must yield exactly the pairs it counted, and
 * encode again. The same bytes are also read as the records frame of an
 * "evts": each record read must stay inside the input and encode again to
 * a record that reads back the same. */
#include "rk_wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_acks(struct rk_wire_hdr *h)
{
    size_t n = h->nacks, got = 0;
    uint64_t *pairs = malloc(2 * n * sizeof *pairs + 1);
    unsigned char *buf = malloc(RK_WIRE_ACKS_SIZE(n));
    if (!pairs || !buf)
        abort();
    while (rk_wire_acks_next(h, &pairs[2 * got], &pairs[2 * got + 1]) == 0)
        if (++got > n)
            abort();
    if (got != n || rk_wire_encode_acks(h->recv_ns, pairs, n, buf, RK_WIRE_ACKS_SIZE(n)) == 0)
        abort();
    free(pairs);
    free(buf);
    return 0;
}

static void check_records(const uint8_t *data, size_t size)
{
    const unsigned char *p = data;
    size_t left = size;
    struct rk_wire_record rec, again;
    while (rk_wire_record_next(&p, &left, &rec) == 0) {
        const unsigned char *ev = rec.event;
        if (ev < data || ev + rec.event_len > data + size || (size_t)(p - data) + left != size)
            abort();
        size_t cap = rec.event_len + RK_WIRE_RECORD_OVERHEAD;
        unsigned char *buf = malloc(cap);
        const unsigned char *q = buf;
        size_t n = buf ? rk_wire_record_put(&rec, buf, cap) : 0;
        if (n == 0 || rk_wire_record_next(&q, &n, &again) != 0 || n != 0 ||
            again.seq != rec.seq || again.recv_ns != rec.recv_ns ||
            again.event_len != rec.event_len || memcmp(again.event, rec.event, rec.event_len) ||
            again.publisher_len != rec.publisher_len)
            abort();
        free(buf);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_records(data, size);
    struct rk_wire_hdr h, again;
    unsigned char buf[RK_WIRE_HDR_MAX];
    if (rk_wire_decode(data, size, &h) != 0 || h.cmd == RK_CMD_NONE)
        return 0;
    if (h.cmd == RK_CMD_ACKS)
        return check_acks(&h);
    size_t n = rk_wire_encode(&h, buf, sizeof buf);
    if (n == 0 || rk_wire_decode(buf, n, &again) != 0 || again.cmd != h.cmd ||
        again.corr != h.corr)
        abort();
    return 0;
}

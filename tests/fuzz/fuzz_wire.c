/* Fuzz target: header frames, the first bytes every socket of the broker
 * decodes (ingest, replay) and every client decodes (ack, evt, end, live,
 * tick, acks). A header that decodes must encode again and decode to the
 * same command; an "acks" must yield exactly the pairs it counted, and
 * encode again. */
#include "rk_wire.h"

#include <stdint.h>
#include <stdlib.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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

/* Fuzz target: header frames, the first bytes every socket of the broker
 * decodes (ingest, replay) and every client decodes (ack, evt, end, live,
 * tick). A header that decodes must encode again and decode to the same
 * command. */
#include "rk_wire.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rk_wire_hdr h, again;
    unsigned char buf[RK_WIRE_HDR_MAX];
    if (rk_wire_decode(data, size, &h) != 0 || h.cmd == RK_CMD_NONE)
        return 0;
    size_t n = rk_wire_encode(&h, buf, sizeof buf);
    if (n == 0 || rk_wire_decode(buf, n, &again) != 0 || again.cmd != h.cmd ||
        again.corr != h.corr)
        abort();
    return 0;
}

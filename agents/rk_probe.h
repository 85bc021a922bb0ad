/*
 * rk_probe - why a broker does not answer: the tools ask this after a
 * timeout, and print its sentence instead of a list of guesses.
 *
 * rk_probe connects one DEALER socket, with the same keys, to the endpoint
 * and reads libzmq's socket monitor until the first decisive event:
 *   ZMQ_EVENT_HANDSHAKE_FAILED_AUTH (value: the ZAP status, 400): the
 *     broker's ACL refused this client's key (RK_PROBE_KEY_REFUSED);
 *   ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL / _PROTOCOL: the CURVE handshake
 *     failed, so --broker-key is not the broker's key, or one side speaks
 *     CURVE and the other does not (RK_PROBE_HANDSHAKE);
 *   ZMQ_EVENT_HANDSHAKE_SUCCEEDED: the connection works; the broker was
 *     only slow (RK_PROBE_OK);
 *   ZMQ_EVENT_CONNECT_RETRIED without ZMQ_EVENT_CONNECTED: nothing listens
 *     there, the connection is refused (RK_PROBE_NOTHING_LISTENS);
 *   ZMQ_EVENT_CONNECTED and then nothing until `wait_ms`: something
 *     listens and does not speak (RK_PROBE_SILENT).
 * A TCP host name that does not resolve is found first, with getaddrinfo
 * (RK_PROBE_UNKNOWN_HOST).
 * Used by renkei-agent, renkei-sub and renkei-replay; not in renkei.h.
 */
#ifndef RK_PROBE_H
#define RK_PROBE_H

#include "renkei.h"

#include <stddef.h>

enum rk_probe_result {
    RK_PROBE_OK,
    RK_PROBE_KEY_REFUSED,
    RK_PROBE_HANDSHAKE,
    RK_PROBE_NOTHING_LISTENS,
    RK_PROBE_UNKNOWN_HOST,
    RK_PROBE_SILENT,
    RK_PROBE_ERROR           /* the probe itself could not run */
};

/* Probes `endpoint` with a socket of `zmq_type` (ZMQ_DEALER for ingest
 * and replay, ZMQ_SUB for the feed: libzmq refuses mismatched socket
 * types in the handshake) and the keys of `o` (NULL: plain) for at most
 * `wait_ms`, and puts into `why` one sentence saying what happened and
 * what to do, naming `option` (the tool's option for the endpoint, e.g.
 * "--broker") and, for a refused key, this client's public key. `timeout_ms`
 * is the wait that ran out before, for the sentence. Any thread; blocks. */
enum rk_probe_result rk_probe(const char *endpoint, int zmq_type,
                              const struct rk_client_options *o, const char *option,
                              int timeout_ms, int wait_ms, char *why, size_t why_len);

#endif

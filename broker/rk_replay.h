/*
 * rk_replay - the replay server: a thread that answers "replay" requests
 * from the log, apart from the ingest thread so reads never stall writes.
 *
 * The thread owns a ROUTER socket bound to the replay endpoint and one end
 * of an inproc PAIR pipe; rk_replay_stop() sends it a stop word on the pipe
 * and joins it, so its end is observable (the zactor shape).
 *
 * Flow control is by request: a client asks for at most
 * RK_REPLAY_LIMIT_MAX events, receives them and an "end" carrying the next
 * sequence, then asks again. Each batch uses its own short read
 * transaction, so a long replay does not pin old pages. A client that sets
 * RK_WIRE_REPLAY_PACKED gets its events many to a message ("evts"). A client is
 * expected to keep one request outstanding; replies beyond the socket's
 * high-water mark are dropped, which the client sees as a short batch.
 */
#ifndef RK_REPLAY_H
#define RK_REPLAY_H

#include <stddef.h>

#include "rk_acl.h"
#include "rk_log.h"

struct rk_replay;

/* Binds `endpoint` with a ROUTER socket in context `zctx` and starts the
 * thread, which reads `log` (borrowed: it must outlive the replay server).
 * Returns 0, or -1 with a reason in `why` (bind failures name the
 * endpoint and errno text). */
int rk_replay_start(struct rk_replay **out, void *zctx, struct rk_log *log,
                    const char *endpoint, char *why, size_t why_len);

/* The same on a CURVE socket (`secret_key`, Z85) whose requests are
 * checked against `acl` (borrowed): a key the ACL does not list, or a
 * request for topics the key's tenant may not replay, is answered
 * E_FORBIDDEN. */
int rk_replay_start_secure(struct rk_replay **out, void *zctx, struct rk_log *log,
                           const char *endpoint, const char *secret_key,
                           struct rk_acl_slot *acl, char *why, size_t why_len);

/* Events sent so far (replay and snapshot batches); any thread may ask. */
uint64_t rk_replay_events_sent(const struct rk_replay *rp);

/* Stops the thread, closes its sockets and frees *rp (set to NULL). */
void rk_replay_stop(struct rk_replay **rp);

#endif

/*
 * rk_gw_follow - the gateway's follower: one thread that keeps the model
 * (rk_gw_model) current with the broker, like any subscriber.
 *
 * Start. (1) The state of every request from the broker's "state"
 * (rk_gw_state), keeping the smallest seq S of its pages; (2) the log
 * up to now read once through a reader filtered on "aid.request/" for
 * each request's deadline and location (the state does not hold them),
 * and on receive time for the last `town_window_s` seconds for the towns'
 * last publishes; (3) the latest kpi.update of every KPI from a snapshot.
 * Then rk_sub follows from S + 1: it reads the log from there and goes
 * live, without gaps, across broker restarts (it fills what it missed
 * from the replay socket). Events between S and the start's other reads
 * come twice; every step below takes a value, not a change, so the second
 * time changes nothing.
 *
 * Keeping request state current. The broker's fold is the only fold: the
 * gateway never computes a state from events. For every aid event it
 * asks the broker for that request's state again. Events are taken in
 * batches (everything rk_sub has ready, up to 1000), the distinct requests
 * of a batch asked at once (pipelined "state" with request_id), and the
 * batch is then pushed to the stream with each request's new state. The
 * answer reflects at least the event (PROTOCOL.md 3.6, handover to live).
 * So the cost is one "state" per distinct request per batch: under load
 * batches grow and the asks per event fall. The other choice, taking the
 * whole state again every so often, costs a read of every request each
 * time whether one changed or a thousand, and leaves the board behind by
 * up to its period; it is not taken.
 *
 * Threads: rk_gw_follow_start runs the follower in its own thread; its
 * objects (subscriber, state socket, readers) are used only there.
 */
#ifndef RK_GW_FOLLOW_H
#define RK_GW_FOLLOW_H

#include "renkei.h"
#include "rk_gw_model.h"

struct rk_gw_follow_options {
    const char *feed, *replay;         /* broker endpoints */
    struct rk_client_options client;   /* keys; zmq_ctx is the gateway's */
    int64_t town_window_s;             /* how far back the start reads towns */
    int timeout_ms;                    /* one broker answer, before a retry */
};

struct rk_gw_follow;

/* Starts the follower thread on `m` (which must outlive it). The options'
 * strings must outlive it too. Returns 0, or an errno value (EINVAL: bad
 * endpoints or keys). It keeps trying while the broker is down, saying so
 * through rk_gw_model_set_link and on stderr. */
int rk_gw_follow_start(struct rk_gw_model *m, const struct rk_gw_follow_options *o,
                       struct rk_gw_follow **out);

/* Stops the thread, waits for it, frees everything; no-op on NULL. */
void rk_gw_follow_stop(struct rk_gw_follow **fp);

#endif

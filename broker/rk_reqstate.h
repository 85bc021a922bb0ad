/*
 * rk_reqstate - the broker's answer to "state" (PROTOCOL.md 3.6): the
 * current state of the disaster-support requests a filter selects, read
 * from the log's state tables (rk_lifecycle keeps them), so that no client
 * has to fold the lifecycle itself. One batch is consistent with one
 * sequence number: every event up to it and none after is reflected. With
 * an at_seq below the head, that is at_seq: a request changed since is
 * folded from its events up to at_seq (the entity index finds them)
 * through rk_aid, the rules the broker stored them by, so all the pages of
 * one state agree on one moment.
 *
 * Thread-safety: any thread with its own reader; the replay thread uses it.
 */
#ifndef RK_REQSTATE_H
#define RK_REQSTATE_H

#include "rk_log.h"
#include "rk_wire.h"

#include <msgpack.h>
#include <stddef.h>

/* A batch stops early (cursor not empty) once its frame is this big. */
#define RK_REQSTATE_FRAME_MAX (1u << 20)

/* Answers `req` (cmd RK_CMD_STATE) from a new read snapshot of `log`:
 * fills *reply (cmd RK_CMD_REQS: seq, cursor, count) and appends the
 * requests, a MessagePack array, to `frame`. Returns 0, or EINVAL when the
 * filter asks for what a state cannot select, or at_seq is before what
 * retention kept of a request (E_PRUNED): code and why filled, an "err"
 * for the client; or an error of the log (rk_err.h). */
int rk_reqstate_answer(struct rk_log *log, const struct rk_wire_hdr *req,
                       struct rk_wire_hdr *reply, msgpack_sbuffer *frame, char code[32],
                       char *why, size_t why_len);

#endif

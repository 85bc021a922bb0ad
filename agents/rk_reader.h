/*
 * rk_reader - reading the broker's log through its replay socket.
 *
 * A reader is an iterator over a sequence range. It fetches the range in
 * batches of at most RK_REPLAY_LIMIT_MAX events, asking for them packed
 * many to a message ("evts"). Without a filter it keeps two requests
 * outstanding once the broker is seen to pack, so the broker reads the
 * next batch while this one is consumed; otherwise one. Either way
 * neither side buffers more than two batches however long the range is.
 *
 * Not thread-safe: use one rk_reader per thread.
 */
#ifndef RK_READER_H
#define RK_READER_H

#include <stddef.h>
#include <stdint.h>

#include "rk_wire.h"

#define RK_READER_EOF 1

struct rk_reader;

/* One stored event. `event` points into the reader and stays valid until
 * the next call on that reader. */
struct rk_record {
    uint64_t seq;
    int64_t recv_ns;
    const void *event;
    size_t event_len;
    const char *publisher;  /* the CURVE key that published it, Z85; "" if none */
};

/* Creates a reader connected to the replay endpoint. Returns 0 or -1 with
 * errno. */
int rk_reader_new(const char *endpoint, struct rk_reader **out);
/* The same on a ZeroMQ context the caller owns and terminates after
 * destroying the reader; for programs holding many readers. */
int rk_reader_new_in(void *zctx, const char *endpoint, struct rk_reader **out);
void rk_reader_destroy(struct rk_reader **rp);

/* Restarts iteration at sequence `from` (>= 1) up to `to` inclusive
 * (0 = up to the end of the log as it is when the last batch is read). */
void rk_reader_seek(struct rk_reader *r, uint64_t from, uint64_t to);

/* Next record. Returns 0 with *rec filled, RK_READER_EOF when the range is
 * exhausted, or -1 with errno: ETIMEDOUT when the broker did not answer
 * within `timeout_ms`, EPROTO when it answered with an error (the text is
 * in rk_reader_error()). */
int rk_reader_next(struct rk_reader *r, int timeout_ms, struct rk_record *rec);

/* Sets the filter (copied; NULL clears it) for the batches asked from now
 * on: receive-time bounds, topic prefixes, request or KPI id, applied by
 * the broker (struct rk_wire_filter in rk_wire.h). With from_ns the reader
 * starts at the first event received at or after it, found by bisection,
 * not by scanning. Call rk_reader_seek first; seek keeps the filter. */
void rk_reader_filter(struct rk_reader *r, const struct rk_wire_filter *f);

/* The next sequence the range iteration would look at: once it returned
 * RK_READER_EOF, every event below this was read or passed over by the
 * filter. */
uint64_t rk_reader_position(const struct rk_reader *r);

/* The broker's last sequence number as of the latest batch (0 before any). */
uint64_t rk_reader_head(const struct rk_reader *r);

/* Switches the reader to a snapshot: from now on rk_reader_next returns,
 * for each entity (a KPI of one municipality and fiscal year, or an aid
 * request), its latest event at or before sequence `at` (0 = the log's
 * head when the first batch is read) that the filter selects, in entity
 * order (not sequence order), then RK_READER_EOF. With a to_time in the
 * filter the snapshot is of the last event received by then. Every batch
 * reads the same state however much is published meanwhile.
 * rk_reader_seek returns to sequence iteration. */
void rk_reader_snapshot(struct rk_reader *r, uint64_t at);

/* The sequence the snapshot is consistent with: every event up to it and
 * none after it is reflected. Known once the first batch has arrived (0
 * before, and for an empty log). To follow on live, apply events from
 * this sequence + 1. */
uint64_t rk_reader_snapshot_seq(const struct rk_reader *r);

/* "<code>: <message>" of the last error reply, or "". */
const char *rk_reader_error(const struct rk_reader *r);

#endif

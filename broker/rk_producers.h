/*
 * rk_producers - the highest number the broker has admitted per producer.
 *
 * Idempotent publishing needs, for each producer id, the last number taken
 * into the log, including numbers in the batch not yet committed (the log
 * itself knows only committed ones). This is a cache in front of the log's
 * producer index: a slot starts empty, the broker fills it from the log on
 * first use, and may clear the whole table at any time (after a failed
 * commit, or when it grows past RK_PRODUCERS_MAX so that a client inventing
 * ids cannot grow memory without bound).
 *
 * Single-threaded: the broker's ingest thread owns it.
 */
#ifndef RK_PRODUCERS_H
#define RK_PRODUCERS_H

#include "rk_wire.h"

#include <stddef.h>
#include <stdint.h>

#define RK_PRODUCERS_MAX 100000
#define RK_PRODUCER_ID_MAX RK_WIRE_PRODUCER_MAX

struct rk_producers;

/* Returns a new empty table (aborts when out of memory). */
struct rk_producers *rk_producers_new(void);
void rk_producers_destroy(struct rk_producers **tp);

/* The slot of producer `id` (`len` bytes, 1..RK_PRODUCER_ID_MAX). A slot
 * made by this call has *fresh = 1 and value 0; fill it before use. The
 * pointer is valid until the next call of any rk_producers_* function.
 * Returns NULL for a bad length. */
uint64_t *rk_producers_slot(struct rk_producers *t, const char *id, size_t len, int *fresh);

/* Forgets every slot. */
void rk_producers_clear(struct rk_producers *t);

/* Number of slots in use. */
size_t rk_producers_count(const struct rk_producers *t);

#endif

/*
 * rk_forward - store and forward: renkei.h's rk_forward part (its
 * documentation is there), and the spool's part, which only renkei-agent
 * uses: adding a file's events exactly once, by the file's name.
 *
 * A spool file leaves its directory in steps that are each safe to repeat
 * after a crash (agent_main.c says which): its events go in together with
 * its name (a tag) in one transaction, and the tag is dropped once the file
 * is gone. A tag found before the first step means an earlier try got past
 * it. The functions below are rk_outbox's (rk_outbox.h) on the forwarder's
 * outbox; errors as in renkei.h, with rk_forward_error() naming the step.
 */
#ifndef RK_FORWARD_H
#define RK_FORWARD_H

#include "renkei.h"
#include "rk_outbox.h"

/* Refusals (renkei-agent's choice, also the library's): a refusal that may
 * pass later holds the event, every other makes it a dead letter. The
 * codes and why are one table at the top of rk_forward.c:
 *   held, and nothing new goes out meanwhile: E_STORAGE, E_NOT_LEADER;
 *   held, other events go on: E_FORBIDDEN;
 *   held a day at most, then a dead letter, other events go on: the
 *     lifecycle codes another event can change (E_STATE, E_VERSION,
 *     E_QUANTITY, E_IN_TRANSIT, E_UNKNOWN_REQUEST, E_UNKNOWN_OFFER,
 *     E_UNKNOWN_DISPATCH).
 * A held event is tried again 1 s after its first refusal, then after 2,
 * 4, ... s, at most 5 min apart; at once when a forwarder connects (a new
 * run may follow the fix) and when an earlier held event of the outbox is
 * acknowledged.
 *
 * Order. The broker stores a producer's numbers in order only (PROTOCOL.md
 * 3.2), and the outbox number is the producer number, so the broker stores
 * events in outbox order, with one exception: an event held for its own
 * reason (E_FORBIDDEN, a lifecycle code) does not hold back the events
 * after it. The broker used its number refusing it, so when it is due it
 * goes out as a new event: renumbered to the end of the outbox
 * (rk_outbox_renumber) once every pending event before it has gone out,
 * and so stored after them. Stopping everything behind it instead would
 * let one event a key may never send (or one whose request was cancelled
 * meanwhile) stop the agent for good. Nothing is lost this way: an event
 * after a held one that depends on it is refused with a lifecycle code,
 * held in turn, and tried again as soon as the held one is stored. While
 * an event is held for E_STORAGE or E_NOT_LEADER (the broker takes
 * nothing now, and used no number) no new event goes out, and it is sent
 * again under its own number. An E_ORDER (an earlier publish was lost with
 * a connection) makes the next pump reconnect at once and send again from
 * the oldest pending event. */

/* 1 when a refusal with `code` holds the event, 0 when it makes it a dead
 * letter. */
int rk_forward_code_retryable(const char *code);

/* As rk_forward_add, and records `tag` (1..255 bytes, copied) in the same
 * transaction; n may be 0 (only the tag); a NULL tag makes it
 * rk_forward_add. */
int rk_forward_add_tagged(struct rk_forward *f, const void *const *events, const size_t *lens,
                          size_t n, const char *tag, uint64_t *first);

/* Sets *found to 1 when `tag` is recorded, to 0 when not. On an error
 * *found is 0 but means nothing: the caller must not act on either
 * answer. */
int rk_forward_has_tag(struct rk_forward *f, const char *tag, int *found);

/* Forgets `tag`; RK_OK also when it was not recorded. */
int rk_forward_drop_tag(struct rk_forward *f, const char *tag);

/* The outbox's own status (held events and dead letters included), read
 * in one snapshot. */
int rk_forward_outbox_status(struct rk_forward *f, struct rk_outbox_status *st);

/* Flushes to disk what earlier calls committed: before acting on a tag an
 * earlier, perhaps crashed, run recorded. */
int rk_forward_sync(struct rk_forward *f);

#endif

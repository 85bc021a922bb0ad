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

/* Flushes to disk what earlier calls committed: before acting on a tag an
 * earlier, perhaps crashed, run recorded. */
int rk_forward_sync(struct rk_forward *f);

#endif

/*
 * rk_cursor - the snapshot and state cursors the broker hands out
 * (PROTOCOL.md 3.5, 3.6): a position in its order, then a tag of
 * RK_CURSOR_TAG bytes, a BLAKE2b hash keyed by the log's identity over the
 * command and the position. A cursor the broker did not write for this log
 * (garbage, cut short, taken from another log, or from a snap for a state)
 * fails rk_cursor_open and is refused, instead of being read as a position
 * and answered as a complete, empty result. The identity is no secret:
 * this guards against mistakes; a client that forges a tag only positions
 * its own read, within what its ACL lets it read anyway.
 * Pure functions; any thread.
 */
#ifndef RK_CURSOR_H
#define RK_CURSOR_H

#include <stddef.h>

#define RK_CURSOR_TAG 8

/* The cursor for position pos[0..len) of command `kind` ('s' snap, 'r'
 * state) into out (room for len + RK_CURSOR_TAG); returns its length. An
 * empty position (the end) stays an empty cursor. */
size_t rk_cursor_seal(const char *log_id, char kind, const void *pos, size_t len,
                      unsigned char *out);

/* Checks `cur` (len bytes, not empty) against log_id and kind. Returns 0
 * with *pos_len (the position is cur[0..*pos_len)), or -1. */
int rk_cursor_open(const char *log_id, char kind, const unsigned char *cur, size_t len,
                   size_t *pos_len);

#endif

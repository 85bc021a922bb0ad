/*
 * rk_json - converting between JSON (jansson) and MessagePack events.
 *
 * Publishers may write events as JSON; the wire carries MessagePack. The
 * mapping is direct: object -> map, array -> array, string -> str,
 * integer -> int, real -> float64, true/false -> bool, null -> nil.
 * The reverse maps bin to a base64-free hex string "0x..." (events never
 * contain bin; this only keeps odd bytes printable).
 */
#ifndef RK_JSON_H
#define RK_JSON_H

#include <jansson.h>
#include <msgpack.h>

/* Appends the MessagePack encoding of `j` to `out`. Returns 0, or -1 when
 * `j` nests deeper than 32 levels. */
int rk_json_to_msgpack(const json_t *j, msgpack_sbuffer *out);

/* Decodes one MessagePack value from [buf, buf+len) into a new JSON value
 * (caller owns the reference; json_decref it). NULL when the bytes are not
 * one complete MessagePack value or map keys are not strings. */
json_t *rk_msgpack_to_json(const void *buf, size_t len);

#endif

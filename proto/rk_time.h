/*
 * rk_time - RFC 3339 timestamps and the broker's clock.
 *
 * Times inside renkei are int64 nanoseconds since 1970-01-01T00:00:00Z.
 * Events carry RFC 3339 text with seconds and an explicit offset
 * ("2026-02-17T11:02:06+09:00" or "...Z"); fractional seconds are allowed.
 */
#ifndef RK_TIME_H
#define RK_TIME_H

#include <stddef.h>
#include <stdint.h>

#define RK_NS_PER_SEC 1000000000LL

/* Parses the `len` bytes at `s` as RFC 3339 date-time with seconds and an
 * offset (Z, z or +hh:mm/-hh:mm); 'T', 't' or ' ' separate date and time.
 * Checks field ranges and the day of month (leap years included); leap
 * second 60 is refused, and so is an instant outside 1677-09-22..2262-04-11,
 * which nanoseconds in 64 bits cannot hold. Returns 0 and stores the instant
 * in *ns, or -1. */
int rk_time_parse(const char *s, size_t len, int64_t *ns);

/* Writes `ns` as "YYYY-MM-DDThh:mm:ss.uuuuuuZ" (27 chars + NUL) to `out`,
 * which must hold RK_TIME_TEXT_MAX bytes. */
#define RK_TIME_TEXT_MAX 32
void rk_time_format(int64_t ns, char *out);

/* Wall clock now, ns since the epoch (CLOCK_REALTIME). */
int64_t rk_time_now(void);

#endif

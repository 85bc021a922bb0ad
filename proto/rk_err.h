/*
 * rk_err - the one error convention of the whole tree.
 *
 * Every function that can fail returns an int:
 *   RK_OK (0)          success;
 *   a positive value   an errno value (ENOENT, ENOSPC, EIO, ...);
 *   -30800..-30780     an LMDB code (MDB_MAP_FULL, MDB_READERS_FULL, ...),
 *                      passed through unchanged;
 *   -29999..-29900     one of renkei's own codes below.
 * Never negate an LMDB code or an errno value: the sign tells the families
 * apart. A yes/no answer (found, already there) is an out-parameter, never a
 * return value, so that a failure cannot be mistaken for an answer.
 *
 * rk_strerror() names any of these; the string is static.
 * Thread-safety: every function here may be called from any thread.
 */
#ifndef RK_ERR_H
#define RK_ERR_H

#define RK_OK 0
#define RK_EOF (-29901)      /* a walk has no more items: not a failure */
#define RK_EBADREC (-29990)  /* a stored record's layout is inconsistent */
#define RK_ESCHEMA (-29989)  /* stored data of a format this build cannot read */
#define RK_EFORMAT (-29988)  /* input (a file, a message) is not what it should be */

/* Text for any code above, any LMDB code and any errno value. */
const char *rk_strerror(int err);

#endif

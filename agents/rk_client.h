/*
 * rk_client - the connection options of renkei.h (struct
 * rk_client_options) made ready for sockets: the keys read and decoded
 * once, set on each socket an object makes, and wiped when it is done.
 *
 * Inside the library only; programs see rk_client_check in renkei.h.
 * Each object holds its own struct rk_client_keys: nothing here is
 * process-wide, so objects with different keys live side by side.
 */
#ifndef RK_CLIENT_H
#define RK_CLIENT_H

#include "renkei.h"
#include "rk_keys.h"

struct rk_client_keys {
    int on;                              /* 0: plain sockets */
    char server[RK_KEY_Z85_LEN + 1];     /* the broker's public key */
    char public[RK_KEY_Z85_LEN + 1];     /* ours, derived from the secret */
    char secret[RK_KEY_Z85_LEN + 1];
};

/* Reads and checks the keys of `o` (NULL: plain) into *k. Returns 0, or -1
 * with errno EINVAL and a sentence in `why` (may be NULL); *k is then
 * wiped. */
int rk_client_keys_load(const struct rk_client_options *o, struct rk_client_keys *k,
                        char *why, size_t why_len);

/* Sets CURVE on a socket just made, before it connects (nothing when the
 * keys are off). Returns 0 or -1 with errno from zmq_setsockopt. */
int rk_client_keys_apply(const struct rk_client_keys *k, void *socket);

/* Options naming the keys in *k (Z85, as the open functions take them)
 * and `zmq_ctx`, for an object that makes further objects with the same
 * keys: valid while *k is. */
struct rk_client_options rk_client_keys_options(const struct rk_client_keys *k, void *zmq_ctx);

/* Overwrites *k so that no copy of the secret outlives its holder. */
void rk_client_keys_wipe(struct rk_client_keys *k);

#endif

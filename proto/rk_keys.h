/*
 * rk_keys - CURVE key files.
 *
 * A key is ZeroMQ's Z85 text form of a Curve25519 key: 40 characters.
 * renkei-keys writes a keypair as two files: NAME.key holds the secret
 * key (mode 0600) and NAME.pub the public key, each one line. A secret
 * key file is all a program needs: the public key is derived from it.
 */
#ifndef RK_KEYS_H
#define RK_KEYS_H

#include <stddef.h>

#define RK_KEY_Z85_LEN 40

/* 1 when `z85` is 40 characters that decode as a Z85 key. */
int rk_keys_valid(const char *z85);

/* Reads the key in the file at `path`: 40 Z85 characters, optionally
 * followed by a newline. Returns 0 with the key NUL-terminated in `out`, or
 * -1 with a sentence naming the file and the problem in `why`. */
int rk_keys_read(const char *path, char out[RK_KEY_Z85_LEN + 1], char *why, size_t why_len);

/* Reads a secret key file as rk_keys_read does, and refuses what is
 * plainly a public key, since both are 40 Z85 characters: a name ending in
 * ".pub", a file anyone may read (renkei-keys writes NAME.key 0600 and
 * NAME.pub 0644), or a key whose public key differs from the NAME.pub
 * beside NAME.key. Same returns as rk_keys_read; `why` says what to give
 * instead. */
int rk_keys_read_secret(const char *path, char out[RK_KEY_Z85_LEN + 1], char *why,
                        size_t why_len);

/* Takes a key given on a command line: either 40 Z85 characters or the
 * path of a key file. Same returns as rk_keys_read. */
int rk_keys_resolve(const char *arg, char out[RK_KEY_Z85_LEN + 1], char *why, size_t why_len);

/* The public key of a secret key. Returns 0, or -1 when `secret` is not a
 * key. */
int rk_keys_public_of(const char *secret, char out[RK_KEY_Z85_LEN + 1]);

/* Makes a keypair and writes DIR/NAME.key (0600, refused if it exists)
 * and DIR/NAME.pub (0644). Returns 0 with the public key in `public_out`,
 * or -1 with the reason in `why`. */
int rk_keys_create(const char *dir, const char *name, char public_out[RK_KEY_Z85_LEN + 1],
                   char *why, size_t why_len);

#endif

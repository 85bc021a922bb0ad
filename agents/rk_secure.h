/*
 * rk_secure - CURVE for the client library.
 *
 * A broker started with a key (renkei-broker --curve-key) speaks only
 * CURVE: each client proves its own key and checks the broker's. Call
 * rk_secure_client once, before making publishers, subscribers or readers;
 * every socket the library makes afterwards uses those keys. Without the
 * call, sockets are plain (the loopback quickstart).
 */
#ifndef RK_SECURE_H
#define RK_SECURE_H

#include <stddef.h>

/* `broker_key` is the broker's public key and `my_key` this client's
 * secret key, each 40 Z85 characters or the path of a key file
 * (renkei-keys). Returns 0, or -1 with a sentence in `why`. Not
 * thread-safe: call it before starting threads. */
int rk_secure_client(const char *broker_key, const char *my_key, char *why, size_t why_len);

/* For the tools' --broker-key and --key options: both NULL leaves CURVE
 * off; both set turns it on; one alone, or a bad key, prints why to
 * stderr after "<prog>: " and returns -1. */
int rk_secure_options(const char *prog, const char *broker_key, const char *my_key);

/* The help lines of those options, for the tools' --help. */
#define RK_SECURE_HELP \
    "      --broker-key KEY     the broker's public key (Z85, or a .pub file): speak\n" \
    "                           CURVE, as a broker started with --curve-key needs\n" \
    "      --key FILE           this client's secret key file (renkei-keys)\n"
#define RK_SECURE_OPT_BROKER_KEY 1001
#define RK_SECURE_OPT_KEY 1002
#define RK_SECURE_LONGOPTS \
    {"broker-key", required_argument, NULL, RK_SECURE_OPT_BROKER_KEY}, \
    {"key", required_argument, NULL, RK_SECURE_OPT_KEY}

/* Whether rk_secure_client is in effect. */
int rk_secure_on(void);

/* Sets the CURVE options on a socket the library has just made (nothing
 * when CURVE is off). Returns 0 or -1 with errno from zmq_setsockopt. */
int rk_secure_apply(void *socket);

#endif

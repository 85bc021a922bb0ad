/*
 * rk_toolopt - the key options every command-line tool shares,
 * --broker-key and --key, turned into the library's connection options.
 * For the tools only: not part of the installed library.
 */
#ifndef RK_TOOLOPT_H
#define RK_TOOLOPT_H

#include "renkei.h"

/* The help lines of those options, for the tools' --help. */
#define RK_TOOLOPT_KEYS_HELP \
    "      --broker-key KEY     the broker's public key (Z85, or a .pub file): speak\n" \
    "                           CURVE, as a broker started with --curve-key needs\n" \
    "      --key FILE           this client's secret key file (renkei-keys)\n"

/* getopt_long entries (the caller includes <getopt.h>) and their values. */
#define RK_TOOLOPT_BROKER_KEY 1001
#define RK_TOOLOPT_KEY 1002
#define RK_TOOLOPT_VERSION 1099 /* --version: every tool prints "NAME VERSION" */
#define RK_TOOLOPT_KEYS_LONGOPTS \
    {"broker-key", required_argument, NULL, RK_TOOLOPT_BROKER_KEY}, \
    {"key", required_argument, NULL, RK_TOOLOPT_KEY}

/* Fills the keys of *o from the options' values: both NULL leaves CURVE
 * off; both set turns it on once the keys are checked (o points at the
 * arguments, which must outlive it). One alone, or a bad key, prints why
 * to stderr after "<prog>: " and returns -1. */
int rk_toolopt_keys(const char *prog, const char *broker_key, const char *key,
                    struct rk_client_options *o);

/* Checks that `endpoint`, given to option `opt` (e.g. "--broker"), names
 * a ZeroMQ transport. Without "://" prints a hint naming the tcp:// form
 * (renkei-agent: --broker 127.0.0.1:7701: no transport; write
 * tcp://127.0.0.1:7701) and returns -1; else 0. */
int rk_toolopt_endpoint(const char *prog, const char *opt, const char *endpoint);

/* The words of a command line (NULL-ended) as one shell line a user can
 * paste: each word quoted with '...' when it holds anything but
 * A-Z a-z 0-9 and - _ . / : @ % + = ,. Writes into buf (truncated to
 * fit, NUL-terminated) and returns buf. */
char *rk_toolopt_shell_line(char *buf, size_t len, const char *const *words);

#endif

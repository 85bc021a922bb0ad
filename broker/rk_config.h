/*
 * rk_config - renkei-broker's settings: the built-in defaults, then an INI
 * file (--config FILE), then the command-line options. Each later source
 * wins, whatever the order of the options on the command line.
 *
 * Every setting is one row of the table `keys[]` in rk_config.c: its
 * [section] and key in the file, its option, its type and bounds, the
 * field it sets, its default, and its help. The file parser, the option
 * parser, --help and --check-config all read that table, so a key and its
 * option share one validation and one error text. Adding a setting is a
 * field (in struct rk_config or struct rk_broker_config) plus one row.
 *
 * File syntax: rk_ini's (rk_ini.h; renkei.conf(5), FILE SYNTAX), the same
 * as the ACL file's: `[section]` headers, `key = value` lines, whole-line
 * comments starting with # or ;, trailing comments after " #" or " ;", no
 * continuation lines. A line rk_ini rejects, a key outside a section, an
 * unknown section or key, a key set twice and a bad value are all errors.
 * A section may appear more than once; its keys add up.
 *
 * Errors are written to a caller's stream, one line each, naming the
 * place, the key and the reason:
 *   renkei.conf:7: durability: must be full or os, got "fsync"
 *   renkei-broker: --durability: must be full or os, got "fsync"
 * A function that reports errors still applies every valid value, and
 * reports every error it finds rather than only the first.
 *
 * Not thread-safe: the option parser uses getopt's globals. The file
 * parser has no global state.
 */
#ifndef RK_CONFIG_H
#define RK_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rk_broker.h"
#include "rk_diag.h"
#include "rk_ini.h"

/* Longest line the file parser accepts, newline excluded: rk_ini's, which
 * is also the ACL file's. */
#define RK_CONFIG_LINE_MAX RK_INI_LINE_MAX

/* rk_config_set() results besides 0. */
#define RK_CONFIG_EUNKNOWN 1   /* no such [section] key */
#define RK_CONFIG_EVALUE 2     /* the value is invalid; `why` says how */

/* Room for the rows of the table in rk_config.c (checked there). */
#define RK_CONFIG_KEYS_MAX 32

/* Where a setting's value came from, in struct rk_config's `origin`. */
#define RK_CONFIG_DEFAULT 0    /* the built-in default */
#define RK_CONFIG_OPTION (-1)  /* the command line; > 0: that line of the file */

struct rk_config {
    /* What rk_broker_run() takes. Its strings are heap copies owned by this
     * struct (never literals or argv), freed by rk_config_release(). */
    struct rk_broker_config broker;
    /* The caller applies it to rk_diag_threshold before starting. */
    enum rk_diag_level log_level;
    /* Per row of the table: RK_CONFIG_DEFAULT, RK_CONFIG_OPTION or the
     * line of the --config file that set it, for rk_config_check's
     * messages. */
    int origin[RK_CONFIG_KEYS_MAX];
};

/* What the command line asked for besides settings. */
struct rk_config_cli {
    const char *config_path; /* --config FILE, or NULL; points into argv */
    int check_only;          /* --check-config: validate, summarise, exit */
    int help;                /* --help: the settings were not parsed */
    int version;             /* --version: the settings were not parsed */
};

/* Sets every field of `cfg` to its default. Pair with rk_config_release(). */
void rk_config_init(struct rk_config *cfg);

/* Frees the strings `cfg` owns and zeroes it. Safe to call twice. */
void rk_config_release(struct rk_config *cfg);

/* Sets `[section] key` from its text form, as in the file. Returns 0;
 * RK_CONFIG_EUNKNOWN if there is no such key; or RK_CONFIG_EVALUE, with the
 * reason (e.g. `must be full or os, got "fsync"`) in `why`, and the field
 * unchanged. */
int rk_config_set(struct rk_config *cfg, const char *section, const char *key,
                  const char *value, char *why, size_t why_len);

/* Applies the INI file at `path` over `cfg`. Returns 0 when the file was
 * read and every line was valid; otherwise -1, after writing one line per
 * problem to `err` ("PATH:LINE: KEY: REASON", "PATH:LINE: REASON" for a
 * line rk_ini rejects, or "PATH: cannot read: ..."). */
int rk_config_load(struct rk_config *cfg, const char *path, FILE *err);

/* The whole command line: finds --config, --check-config, --help and
 * --version first; unless help or version was asked for, loads the file
 * (if any) and then applies the other options over it. GNU getopt may
 * reorder argv. Returns 0, or -1 after writing every problem to `err`
 * (file errors, bad option values, unknown options, stray arguments). */
int rk_config_parse_args(struct rk_config *cfg, int argc, char **argv,
                         struct rk_config_cli *cli, FILE *err);

/* What a start would find wrong with settings that parse, checked as the
 * user running it: the key file, the ACL file and the data directory exist
 * and can be read (written); curve_key holds a secret key and not a public
 * one (rk_keys_read_secret); curve_key and acl go together; every
 * endpoint's directory (ipc) exists; an endpoint off loopback has CURVE or
 * insecure_no_curve = yes. Writes one line per problem to `err`:
 *   FILE:LINE: key: reason        (set in the --config file FILE)
 *   renkei-broker: --flag: reason (set by an option)
 *   renkei-broker: key: reason    (the default)
 * and returns the number of problems (0: a start would get past them). */
int rk_config_check(const struct rk_config *cfg, const char *config_path, FILE *err);

/* Writes the option lines of --help, from the table. */
void rk_config_print_options(FILE *out);

/* Writes every setting on one line as key=value pairs in table order,
 * without a newline; values with spaces are quoted. */
void rk_config_print_summary(const struct rk_config *cfg, FILE *out);

/* The i-th row of the table: its key, and its section in *section.
 * NULL when i is past the end. Lets tests and tools walk every key. */
const char *rk_config_key_at(size_t i, const char **section);

/* "123", "800K", "64M", "2G", "1T" (powers of 1024; k/m/g/t also) to bytes.
 * Returns 0, or -1 for anything else, for an overflow, or below 1M. */
int rk_config_parse_size(const char *text, uint64_t *out);

#endif

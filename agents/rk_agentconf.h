/*
 * rk_agentconf - renkei-agent's configuration file (--config FILE), so that
 * a service (deploy/renkei-agent@.service, one instance per municipality)
 * takes its broker and its keys from /etc/renkei/agent/CODE.conf rather
 * than from a command line anyone can read in `ps`.
 *
 * The file is read by rk_ini (the same syntax as renkei.conf(5)); one
 * section, [agent], with these keys, each the value of the option of the
 * same name (renkei-agent(1), CONFIGURATION FILE):
 *   broker       ingest endpoint          (--broker)
 *   broker_key   broker's public key      (--broker-key)
 *   key          this agent's secret key  (--key)
 *   outbox       outbox directory         (--outbox)
 *   spool        spool directory          (--spool)
 *   timeout      milliseconds             (--timeout)
 *   window       publishes in flight      (--window)
 *   metrics_file node_exporter textfile   (--metrics-file)
 * An option on the command line wins over the file.
 *
 * Errors are printed to the caller's stream as "FILE:LINE: key: reason"
 * (or "FILE: cannot read: ..."), every one found, not only the first.
 * Not thread-safe in rk_agentconf_find (reads argv only); no global state.
 */
#ifndef RK_AGENTCONF_H
#define RK_AGENTCONF_H

#include <stdio.h>

/* The settings a file gave; NULL / 0 for a key it did not set. The
 * strings are heap copies owned by the struct. */
struct rk_agentconf {
    char *broker, *broker_key, *key, *outbox, *spool, *metrics_file;
    int timeout_ms, window;
};

/* The FILE of "--config FILE" or "--config=FILE" in argv (before a "--"),
 * the last one if given twice, or NULL. Points into argv. */
const char *rk_agentconf_find(int argc, char **argv);

/* Reads the file at `path` into *c (zeroed first). Returns 0, or -1 after
 * writing every problem to `err`; *c then holds what was valid and must
 * still be released. */
int rk_agentconf_load(const char *path, struct rk_agentconf *c, FILE *err);

/* Frees what *c owns and zeroes it; safe twice. */
void rk_agentconf_release(struct rk_agentconf *c);

#endif

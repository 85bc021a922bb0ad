/*
 * rk_gw_post - events posted over HTTP by towns that cannot run an agent,
 * published to the broker in the name of the tenant their token stands for.
 *
 * The token file (--tokens) has one line per token:
 *     <token> <tenant> [<secret key file>]
 * (blank lines and lines starting with '#' are skipped). A token is 32 to
 * 128 characters of A-Z a-z 0-9 - _ . ~ (e.g. `openssl rand -hex 32`). The
 * key file is that tenant's own secret key (renkei-keys), so the gateway
 * publishes with the tenant's key and the broker's ACL gives a posted event
 * exactly the rights of that tenant: a token grants nothing the tenant's key
 * would not. Without a key file the event goes out on a plain connection,
 * for a broker without CURVE (loopback only). The file must not be readable
 * by group or others: it holds credentials.
 *
 * Each tenant has one publisher, made at the first post and kept; posts of
 * one tenant are published one batch at a time (a mutex per tenant), posts
 * of different tenants side by side.
 *
 * Threads: rk_gw_post_publish may be called from any thread.
 */
#ifndef RK_GW_POST_H
#define RK_GW_POST_H

#include <jansson.h>
#include <stddef.h>

#define RK_GW_POST_BATCH_MAX 1000

struct rk_gw_post;

/* Reads the token file `path`. `ingest` is the broker's ingest endpoint and
 * `broker_key` its public key (NULL: plain); both must outlive the object.
 * Returns 0, or an errno value with a sentence in `why` naming the file and
 * line (EACCES: readable by others; EINVAL: a malformed line). */
int rk_gw_post_open(const char *path, const char *ingest, const char *broker_key,
                    int timeout_ms, struct rk_gw_post **out, char *why, size_t why_len);
void rk_gw_post_close(struct rk_gw_post **pp);

/* The tenant of the bearer token `token`, compared in constant time, or
 * NULL (unknown token). The string lives as long as the object. */
const char *rk_gw_post_tenant(const struct rk_gw_post *p, const char *token);

/* Publishes `events` (a JSON object, or an array of 1..RK_GW_POST_BATCH_MAX
 * objects) as `tenant`. Returns a new JSON array (caller decrefs) with one
 * result per event, in order: {"ok": true, "seq", "recv_time"} or
 * {"ok": false, "code", "field", "reason"} (the broker's refusal, or
 * E_JSON for an event that cannot be encoded, or E_BROKER when the broker
 * did not answer in time). */
json_t *rk_gw_post_publish(struct rk_gw_post *p, const char *tenant, json_t *events);

#endif

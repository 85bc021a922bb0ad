/*
 * rk_acl - who may do what on a CURVE broker.
 *
 * The ACL file (INI; deploy/README.md has a full example) is read by
 * rk_ini, with the same rules as the config file (renkei.conf(5), FILE
 * SYNTAX), and has one section per tenant:
 *
 *   [tenant osaka-city]
 *   key = <Z85 public key>            ; one line per key; at least one
 *   publish = 271004                  ; municipality codes it may publish
 *                                     ; for; "27*" is every one of
 *                                     ; prefecture 27, "*" any
 *   subscribe = aid. kpi.update/27/   ; live topic prefixes; "*" = all
 *   replay = aid.                     ; replay and snapshot topic prefixes
 *
 * Values are separated by spaces or commas; a missing list allows nothing.
 * A tenant has one section (a second one is an error) and a section
 * without keys adds no tenant; repeated key, publish, subscribe or replay
 * lines add to what the lines before gave.
 * A request to read (a subscription or a replay) is allowed when each of
 * its topic prefixes starts with an allowed one; a request for everything
 * (no prefixes) needs "*".
 *
 * An rk_acl is immutable once loaded. rk_acl_slot holds the current one
 * for the broker's threads and swaps it on reload; readers take a
 * reference and give it back, so a reload never pulls one from under them.
 */
#ifndef RK_ACL_H
#define RK_ACL_H

#include <stddef.h>

#include "rk_keys.h"
#include "rk_wire.h"

struct rk_acl;
struct rk_acl_tenant;

/* Reads the file into *out, which the caller releases with
 * rk_acl_release(). Returns RK_OK; or RK_EFORMAT, with "FILE:LINE: reason"
 * (or "FILE: reason") in `why`, for the first bad line or for an ACL with
 * no key; or an errno value when the file cannot be read ("FILE: cannot
 * read: ..."). On failure *out is NULL. Any thread may load; the result is
 * the caller's until it hands it to a slot. */
int rk_acl_load(const char *path, struct rk_acl **out, char *why, size_t why_len);

/* The tenant of a client key (Z85), or NULL when the ACL does not list it.
 * Valid while the caller holds the rk_acl. */
const struct rk_acl_tenant *rk_acl_find(const struct rk_acl *acl, const char *key);

const char *rk_acl_tenant_name(const struct rk_acl_tenant *t);
size_t rk_acl_key_count(const struct rk_acl *acl);
size_t rk_acl_tenant_count(const struct rk_acl *acl);
/* Tenant i (0 <= i < rk_acl_tenant_count), in the file's order. */
const struct rk_acl_tenant *rk_acl_tenant_at(const struct rk_acl *acl, size_t i);

/* Whether the tenant may publish events claiming `municipality` (6 digits). */
int rk_acl_may_publish(const struct rk_acl_tenant *t, const char *municipality);

enum rk_acl_read { RK_ACL_SUBSCRIBE, RK_ACL_REPLAY };

/* Whether the tenant may read the topics selected by the `n` prefixes
 * (n == 0: every topic). */
int rk_acl_may_read(const struct rk_acl_tenant *t, enum rk_acl_read what,
                    const char (*prefixes)[RK_WIRE_TOPIC_MAX], unsigned n);

/* 1 when some key `old` lets subscribe is missing from `new` or may
 * subscribe to something else there: live subscriptions made under `old`
 * must then be made again. */
int rk_acl_subscriptions_shrink(const struct rk_acl *old, const struct rk_acl *new);

/* ---- the broker's current ACL, shared by its threads */

struct rk_acl_slot;

/* Takes ownership of `acl` (may be NULL: no ACL). */
struct rk_acl_slot *rk_acl_slot_new(struct rk_acl *acl);
void rk_acl_slot_destroy(struct rk_acl_slot **sp);

/* The current ACL with a reference the caller gives back with
 * rk_acl_release, or NULL when there is none. Thread-safe. */
struct rk_acl *rk_acl_slot_get(struct rk_acl_slot *s);
void rk_acl_release(struct rk_acl *acl);

/* Makes `acl` current (taking ownership) and returns the previous one with
 * a reference, for comparison; release it. Thread-safe. */
struct rk_acl *rk_acl_slot_swap(struct rk_acl_slot *s, struct rk_acl *acl);

#endif

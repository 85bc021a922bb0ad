#include "rk_acl.h"
#include "rk_err.h"
#include "rk_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static char path[64];

static void write_acl(const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void make_key(char pub[41])
{
    char secret[41];
    zmq_curve_keypair(pub, secret);
}

static int load_err(const char *text, const char *want)
{
    struct rk_acl *acl;
    char why[512];
    write_acl(text);
    int rc = rk_acl_load(path, &acl, why, sizeof why);
    if (rc == 0) {
        rk_acl_release(acl);
        return 0;
    }
    if (!strstr(why, want))
        fprintf(stderr, "why=\"%s\", want \"%s\"\n", why, want);
    return strstr(why, want) != NULL;
}

static void test_rights(void)
{
    char k1[41], k2[41], text[1024], why[256];
    struct rk_acl *acl;
    make_key(k1);
    make_key(k2);
    snprintf(text, sizeof text,
             "; comment\n[tenant osaka-pref-hq]\nkey = %s\npublish = 27*, 281000\n"
             "subscribe = *\nreplay = aid.request/27/ kpi.\n\n"
             "[tenant research]\nkey = %s\nsubscribe = kpi.\n", k1, k2);
    write_acl(text);
    RK_CHECK(rk_acl_load(path, &acl, why, sizeof why) == 0);
    if (!acl)
        return;
    const struct rk_acl_tenant *hq = rk_acl_find(acl, k1), *re = rk_acl_find(acl, k2);
    RK_CHECK(hq && re && rk_acl_find(acl, "nope") == NULL);
    RK_CHECK_STR(rk_acl_tenant_name(hq), "osaka-pref-hq");
    RK_CHECK(rk_acl_may_publish(hq, "271004") && rk_acl_may_publish(hq, "272078"));
    RK_CHECK(rk_acl_may_publish(hq, "281000") && !rk_acl_may_publish(hq, "281001"));
    RK_CHECK(!rk_acl_may_publish(hq, "261009") && !rk_acl_may_publish(re, "271004"));

    const char want_all[1][RK_WIRE_TOPIC_MAX] = {""};
    const char osaka_req[2][RK_WIRE_TOPIC_MAX] = {"aid.request/27/271004", "kpi.update/27/"};
    const char offers[1][RK_WIRE_TOPIC_MAX] = {"aid.offer/27/"};
    const char wide[1][RK_WIRE_TOPIC_MAX] = {"aid.request/"};
    RK_CHECK(rk_acl_may_read(hq, RK_ACL_SUBSCRIBE, want_all, 0));
    RK_CHECK(!rk_acl_may_read(hq, RK_ACL_REPLAY, want_all, 0));
    RK_CHECK(rk_acl_may_read(hq, RK_ACL_REPLAY, osaka_req, 2));
    RK_CHECK(!rk_acl_may_read(hq, RK_ACL_REPLAY, offers, 1));
    RK_CHECK(!rk_acl_may_read(hq, RK_ACL_REPLAY, wide, 1)); /* wider than allowed */
    RK_CHECK(!rk_acl_may_read(re, RK_ACL_SUBSCRIBE, offers, 1));
    RK_CHECK(!rk_acl_may_read(re, RK_ACL_REPLAY, osaka_req + 1, 1)); /* no replay list */

    /* the slot, and what a reload changes */
    struct rk_acl_slot *slot = rk_acl_slot_new(acl);
    struct rk_acl *held = rk_acl_slot_get(slot), *next, *old;
    snprintf(text, sizeof text, "[tenant osaka-pref-hq]\nkey = %s\npublish = 27*\nsubscribe = *\n", k1);
    write_acl(text);
    RK_CHECK(rk_acl_load(path, &next, why, sizeof why) == 0);
    old = rk_acl_slot_swap(slot, next);
    RK_CHECK(old == acl && rk_acl_subscriptions_shrink(old, next)); /* research is gone */
    RK_CHECK(!rk_acl_subscriptions_shrink(next, old));
    RK_CHECK(rk_acl_find(held, k2) != NULL); /* what a thread holds stays valid */
    rk_acl_release(old);
    rk_acl_release(held);
    rk_acl_slot_destroy(&slot);
}

static void test_errors_name_the_line(void)
{
    char k[41], text[512];
    make_key(k);
    RK_CHECK(load_err("[tenant a]\nkey = short\n", ":2: key: \"short\" is not a public key"));
    RK_CHECK(load_err("[people a]\nkey = x\n", ":2: [people a]: sections are [tenant NAME]"));
    snprintf(text, sizeof text, "[tenant a]\nkey = %s\npublish = 27\n", k);
    RK_CHECK(load_err(text, ":3: publish: \"27\" is neither"));
    snprintf(text, sizeof text, "[tenant a]\nkey = %s\nsubscribe = a|b\n", k);
    RK_CHECK(load_err(text, ":3: subscribe: \"a|b\" is not a topic prefix"));
    snprintf(text, sizeof text, "[tenant a]\nkey = %s\n[tenant b]\nkey = %s\n", k, k);
    RK_CHECK(load_err(text, ":4: key: "));
    snprintf(text, sizeof text, "[tenant a]\nkey = %s\nread = *\n", k);
    RK_CHECK(load_err(text, ":3: unknown key \"read\""));
    RK_CHECK(load_err("[tenant a]\npublish = 271004\n", "no tenant has a key"));
    RK_CHECK(load_err("", "no tenant has a key"));
}

/* libinih read a long line in pieces (199 bytes without --config, 4095
 * with), so the tail of a comment could become a key line: here it gave
 * tenant a the right to publish for every town. */
static void test_comment_grants_nothing(void)
{
    char k[41], text[1024];
    struct rk_acl *acl = NULL;
    char why[512];
    make_key(k);
    snprintf(text, sizeof text, "[tenant a]\nkey = %s\n# %0197dpublish = *\n", k, 0);
    write_acl(text);
    RK_CHECK(rk_acl_load(path, &acl, why, sizeof why) == RK_OK);
    const struct rk_acl_tenant *t = acl ? rk_acl_find(acl, k) : NULL;
    RK_CHECK(t && !rk_acl_may_publish(t, "271004"));
    rk_acl_release(acl);
}

/* libinih cut section names at 49 bytes: two tenants whose names began
 * alike became one, each key with the other's rights. */
static void test_long_tenant_names(void)
{
    char k1[41], k2[41], text[1024], why[512];
    /* 64 bytes: one too many; the first 63 are a valid name */
    const char *name64 = "kansai-union-disaster-coordination-office-osaka-bay-area-branch1";
    struct rk_acl *acl = NULL;
    make_key(k1);
    make_key(k2);
    RK_CHECK(strlen(name64) == 64);
    snprintf(text, sizeof text, "[tenant %.63s]\nkey = %s\npublish = 271004\n"
             "[tenant %.62sX]\nkey = %s\n", name64, k1, name64, k2);
    write_acl(text);
    RK_CHECK(rk_acl_load(path, &acl, why, sizeof why) == RK_OK);
    if (!acl)
        return;
    RK_CHECK(rk_acl_tenant_count(acl) == 2);
    const struct rk_acl_tenant *t1 = rk_acl_find(acl, k1), *t2 = rk_acl_find(acl, k2);
    RK_CHECK(t1 && t2 && t1 != t2);
    RK_CHECK(t1 && strlen(rk_acl_tenant_name(t1)) == 63);
    RK_CHECK(t2 && !rk_acl_may_publish(t2, "271004"));
    rk_acl_release(acl);
    snprintf(text, sizeof text, "[tenant %s]\nkey = %s\n", name64, k1);
    RK_CHECK(load_err(text, ":2: [tenant kansai-union"));
    RK_CHECK(load_err(text, "]: sections are [tenant NAME] (NAME at most 63 bytes)"));
}

static void test_sections_and_codes(void)
{
    char k1[41], k2[41], text[1024], why[512];
    struct rk_acl *acl = (struct rk_acl *)1;
    make_key(k1);
    make_key(k2);
    /* A tenant's second section is an error, next to it or further down:
     * libinih merged the first kind and split the second. */
    snprintf(text, sizeof text, "[tenant a]\nkey = %s\n[tenant a]\nkey = %s\n", k1, k2);
    RK_CHECK(load_err(text, ":4: [tenant a]: a second section for this tenant (the first is "
                      "on line 1); keep all of a tenant's lines in one section"));
    snprintf(text, sizeof text, "[tenant a]\nkey = %s\n[tenant b]\nkey = %s\n\n[tenant a]\n"
             "subscribe = *\n", k1, k2);
    RK_CHECK(load_err(text, ":7: [tenant a]: a second section"));
    /* A section without keys adds nobody, as before. */
    snprintf(text, sizeof text, "[tenant gone]\n; key = retired\n[tenant a]\nkey = %s\n", k1);
    write_acl(text);
    RK_CHECK(rk_acl_load(path, &acl, why, sizeof why) == RK_OK);
    RK_CHECK(acl && rk_acl_tenant_count(acl) == 1);
    rk_acl_release(acl);
    /* rk_err codes: a bad file, an unreadable one. */
    write_acl("[tenant a]\nkey = short\n");
    RK_CHECK(rk_acl_load(path, &acl, why, sizeof why) == RK_EFORMAT && acl == NULL);
    RK_CHECK(rk_acl_load("/nonexistent/acl.ini", &acl, why, sizeof why) == ENOENT);
    RK_CHECK_STR(why, "/nonexistent/acl.ini: cannot read: No such file or directory");
}

int main(void)
{
    snprintf(path, sizeof path, "/tmp/rk-acl-test-%d.ini", (int)getpid());
    RK_RUN(test_rights);
    RK_RUN(test_errors_name_the_line);
    RK_RUN(test_comment_grants_nothing);
    RK_RUN(test_long_tenant_names);
    RK_RUN(test_sections_and_codes);
    unlink(path);
    return rk_test_result();
}

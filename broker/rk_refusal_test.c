/* rk_refusal: counted at once, logged at once for a new (what, key, code),
 * summed after; nothing lost when more pairs than the table holds are
 * active; client bytes quoted. The log goes to a temporary file that the
 * checks read back. */
#include "rk_diag.h"
#include "rk_refusal.h"
#include "rk_test.h"
#include "rk_time.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char logpath[] = "/tmp/rk-refusal-test-XXXXXX";

/* The sum of count= over the lines holding every one of the needles. */
static unsigned long long counted(const char *a, const char *b, int *lines)
{
    char line[2048];
    unsigned long long sum = 0;
    FILE *f = fopen(logpath, "r");
    *lines = 0;
    while (f && fgets(line, sizeof line, f)) {
        const char *c = strstr(line, " count=");
        if (!c || !strstr(line, a) || (b && !strstr(line, b)))
            continue;
        (*lines)++;
        sum += strtoull(c + 7, NULL, 10);
    }
    if (f)
        fclose(f);
    return sum;
}

static void note(enum rk_refusal_what what, const char *key, const char *code, const char *why)
{
    struct rk_refusal r = {what, key, "osaka-city", "192.0.2.7", code, why};
    rk_refusal_note(&r);
}

static void test_summed_per_key_and_code(void)
{
    int lines;
    for (int i = 0; i < 3; i++)
        note(RK_REFUSED_PUBLISH, "KEYA", "E_FORBIDDEN", "may not publish for 304280");
    note(RK_REFUSED_PUBLISH, "KEYB", "E_FORBIDDEN", "may not publish for 281000");
    note(RK_REFUSED_PUBLISH, "KEYA", "E_RANGE", "request.quantity: must be > 0");
    fflush(stderr);
    /* the first of each pair at once */
    RK_CHECK(counted("key=KEYA ", "code=E_FORBIDDEN", &lines) == 1 && lines == 1);
    RK_CHECK(counted("key=KEYB ", "code=E_FORBIDDEN", &lines) == 1 && lines == 1);
    RK_CHECK(counted("key=KEYA ", "code=E_RANGE", &lines) == 1 && lines == 1);
    rk_refusal_flush(rk_time_now(), 1);
    fflush(stderr);
    RK_CHECK(counted("key=KEYA ", "code=E_FORBIDDEN", &lines) == 3 && lines == 2);
    RK_CHECK(counted("level=warn msg=publish_refused", "tenant=\"osaka-city\" "
                     "address=\"192.0.2.7\"", &lines) == 5);
    RK_CHECK(rk_refusal_total(RK_REFUSED_PUBLISH) == 5);
    RK_CHECK(rk_refusal_total(RK_REFUSED_REPLAY) == 0);
}

static void test_many_keys_none_lost(void)
{
    char key[16];
    int lines;
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 300; i++) {
            snprintf(key, sizeof key, "MANY%03d", i);
            note(RK_REFUSED_SUBSCRIPTION, key, "E_FORBIDDEN", "topics outside");
        }
    rk_refusal_flush(rk_time_now(), 1);
    fflush(stderr);
    RK_CHECK(counted("msg=subscription_refused", "key=MANY", &lines) == 600);
    RK_CHECK(rk_refusal_total(RK_REFUSED_SUBSCRIPTION) == 600);
}

static void test_quoted(void)
{
    char line[2048];
    int found = 0;
    note(RK_REFUSED_REPLAY, "KEYQ", "E_FORBIDDEN", "a \"quote\"\nlevel=error msg=forged");
    fflush(stderr);
    FILE *f = fopen(logpath, "r");
    while (f && fgets(line, sizeof line, f)) {
        RK_CHECK(strncmp(line, "level=error", 11) != 0);
        if (strstr(line, "key=KEYQ "))
            found = strstr(line, "why=\"a \\\"quote\\\"\\x0alevel=error msg=forged\"") != NULL;
    }
    if (f)
        fclose(f);
    RK_CHECK(found);
}

int main(void)
{
    int fd = mkstemp(logpath);
    if (fd < 0 || !freopen(logpath, "w", stderr))
        return 1;
    close(fd);
    RK_RUN(test_summed_per_key_and_code);
    RK_RUN(test_many_keys_none_lost);
    RK_RUN(test_quoted);
    int rc = rk_test_result();
    FILE *f = fopen(logpath, "r");
    char line[2048];
    if (rc)     /* show the log the checks read */
        while (f && fgets(line, sizeof line, f))
            fputs(line, stdout);
    if (f)
        fclose(f);
    unlink(logpath);
    return rc;
}

/*
 * rk_test.h - the smallest harness that does the job.
 *
 * A test file defines functions `static void test_x(void)` and lists them in
 * main() with RK_RUN(test_x). RK_CHECK records a failure and carries on, so
 * one run shows every broken rule; main() returns rk_test_result().
 */
#ifndef RK_TEST_H
#define RK_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rk_test_failures;
static int rk_test_checks;

#define RK_CHECK(cond) do { \
        rk_test_checks++; \
        if (!(cond)) { \
            rk_test_failures++; \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        } \
    } while (0)

#define RK_CHECK_STR(got, want) do { \
        const char *rk_g_ = (got), *rk_w_ = (want); \
        rk_test_checks++; \
        if (rk_g_ == NULL || strcmp(rk_g_, rk_w_) != 0) { \
            rk_test_failures++; \
            fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__, \
                    rk_g_ ? rk_g_ : "(null)", rk_w_); \
        } \
    } while (0)

#define RK_RUN(fn) do { \
        int rk_before_ = rk_test_failures; \
        fn(); \
        fprintf(stderr, "%s %s\n", rk_test_failures == rk_before_ ? "ok  " : "FAIL", #fn); \
    } while (0)

static inline int rk_test_result(void)
{
    fprintf(stderr, "%d checks, %d failed\n", rk_test_checks, rk_test_failures);
    if (rk_test_checks == 0)
        return 1;   /* a test that checked nothing is a broken test */
    return rk_test_failures ? 1 : 0;
}

/* Path of a file in the team's shared fixtures, or NULL when unset. */
static inline const char *rk_test_shared(const char *name, char *buf, size_t len)
{
    const char *dir = getenv("RK_SHARED_DATA");
    if (!dir)
        return NULL;
    snprintf(buf, len, "%s/%s", dir, name);
    return buf;
}

#endif

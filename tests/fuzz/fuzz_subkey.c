/* Fuzz target: what a subscriber sends the feed: XPUB subscribe and
 * unsubscribe messages, parsed into subscription groups, then matched. */
#include "rk_groups.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void count(void *arg, const char *key, size_t key_len, uint64_t prev)
{
    (void)key;
    (void)key_len;
    if (prev >= 100)
        abort(); /* prev is the head a group was made at, or an earlier seq */
    (*(int *)arg)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const topics[] = {"aid.request/27/271004", "kpi.update/43/431001", ""};
    struct rk_groups *g = rk_groups_new();
    int n = 0;
    rk_groups_notice(g, data, size, 7);
    for (uint64_t i = 0; i < 3; i++)
        rk_groups_match(g, topics[i], NULL, 8 + i, count, &n);
    rk_groups_each(g, count, &n);
    if (size && data[0] == 1) {
        unsigned char *off = malloc(size);
        if (!off)
            abort();
        for (size_t i = 0; i < size; i++)
            off[i] = i ? data[i] : 0;
        rk_groups_notice(g, off, size, 11);
        free(off);
        if (rk_groups_count(g) != 0)
            abort(); /* unsubscribing what was subscribed removes it */
    }
    rk_groups_destroy(&g);
    return 0;
}

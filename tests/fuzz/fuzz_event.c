/* Fuzz target: event frames as the broker's ingest takes them: validation,
 * then for what passes, the topic, the aid fields (which must extract from
 * anything validation passed) and the lifecycle state machine. */
#include "rk_aid.h"
#include "rk_event.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_NS 1795400000000000000LL /* 2026-11: the corpus' sent_at are near it */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rk_event_info info;
    struct rk_verror err;
    struct rk_aid_event ev, parsed;
    char topic[RK_TOPIC_MAX], why[256];

    enum rk_verr v = rk_event_validate(data, size, NOW_NS, &info, &err);
    enum rk_verr p = rk_aid_event_parse(data, size, &parsed, why, sizeof why);
    if (v != RK_V_OK)
        return 0;
    rk_event_topic(&info, topic);
    if (rk_aid_event_validate(data, size, NOW_NS, NULL, &ev, NULL) != RK_V_OK)
        abort(); /* validation promised these fields */
    (void)p;
    struct rk_aid *a = rk_aid_new();
    struct rk_aid_refusal r;
    rk_aid_begin(a);
    rk_aid_apply(a, &ev, &r);
    rk_aid_apply(a, &ev, &r); /* the same event twice: a duplicate */
    rk_aid_rollback(a);
    rk_aid_destroy(&a);
    return 0;
}

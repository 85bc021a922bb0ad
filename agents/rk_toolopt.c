#include "rk_toolopt.h"

#include <stdio.h>

int rk_toolopt_keys(const char *prog, const char *broker_key, const char *key,
                    struct rk_client_options *o)
{
    char why[400];
    if (!broker_key != !key) {
        fprintf(stderr, "%s: --broker-key and --key go together: CURVE needs the broker's "
                "public key and this client's secret key\n", prog);
        return -1;
    }
    o->broker_key = broker_key;
    o->client_key = key;
    if (rk_client_check(o, why, sizeof why) != 0) {
        fprintf(stderr, "%s: %s\n", prog, why);
        return -1;
    }
    return 0;
}

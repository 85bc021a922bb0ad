#include "rk_err.h"

#include <lmdb.h>

const char *rk_strerror(int err)
{
    switch (err) {
    case RK_OK:
        return "success";
    case RK_EOF:
        return "no more items";
    case RK_EBADREC:
        return "a stored record is malformed (the log is damaged)";
    case RK_ESCHEMA:
        return "the data was written by a newer renkei: upgrade this program";
    case RK_EFORMAT:
        return "the input is not in the expected format";
    default:
        /* LMDB's codes, and errno values through strerror. */
        return mdb_strerror(err);
    }
}

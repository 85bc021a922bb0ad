#include "rk_muni.h"
#include "rk_muni_table.h"

#include <stdlib.h>
#include <string.h>

int rk_muni_check_digit(const char *code)
{
    static const int weight[5] = {6, 5, 4, 3, 2};
    int sum = 0;
    for (int i = 0; i < 5; i++) {
        if (code[i] < '0' || code[i] > '9')
            return -1;
        sum += weight[i] * (code[i] - '0');
    }
    return '0' + (11 - sum % 11) % 10;
}

static int row_cmp(const void *key, const void *elem)
{
    const struct rk_muni_row *row = elem;
    return memcmp(key, row->code, 6);
}

static const struct rk_muni_row *find(const char *code)
{
    return bsearch(code, rk_muni_rows, rk_muni_nrows, sizeof rk_muni_rows[0], row_cmp);
}

int rk_muni_prefecture(const char *code)
{
    if (code[0] < '0' || code[0] > '9' || code[1] < '0' || code[1] > '9')
        return 0;
    int pref = (code[0] - '0') * 10 + (code[1] - '0');
    return pref >= 1 && pref <= RK_MUNI_PREFECTURES ? pref : 0;
}

enum rk_muni_status rk_muni_validate(const char *code, size_t len)
{
    if (len != 6)
        return RK_MUNI_FORMAT;
    for (size_t i = 0; i < 6; i++)
        if (code[i] < '0' || code[i] > '9')
            return RK_MUNI_FORMAT;
    if (!rk_muni_prefecture(code))
        return RK_MUNI_PREFECTURE;
    if (rk_muni_check_digit(code) != code[5])
        return RK_MUNI_CHECK_DIGIT;
    if (!find(code))
        return RK_MUNI_UNKNOWN;
    return RK_MUNI_OK;
}

const char *rk_muni_name(const char *code)
{
    if (strlen(code) != 6)
        return NULL;
    const struct rk_muni_row *row = find(code);
    return row ? row->name : NULL;
}

size_t rk_muni_count(void)
{
    return rk_muni_nrows;
}

const char *rk_muni_code_at(size_t i)
{
    return i < rk_muni_nrows ? rk_muni_rows[i].code : NULL;
}

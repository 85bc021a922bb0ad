/*
 * rk_muni - Japanese local-government codes (全国地方公共団体コード).
 *
 * A code is six ASCII digits: JIS X 0401 prefecture (01-47), three digits of
 * JIS X 0402, and a check digit. The check digit over d1..d5 is
 * (11 - (6d1 + 5d2 + 4d3 + 3d4 + 2d5) mod 11) mod 10.
 *
 * The table of codes that exist is compiled in from proto/data/municipalities.csv
 * (1,959 rows, vintage 2024-01-01); nothing is read at run time.
 */
#ifndef RK_MUNI_H
#define RK_MUNI_H

#include <stddef.h>

/* Why a code was refused; 0 means valid. */
enum rk_muni_status {
    RK_MUNI_OK = 0,
    RK_MUNI_FORMAT,        /* not exactly six ASCII digits */
    RK_MUNI_PREFECTURE,    /* first two digits outside 01..47 */
    RK_MUNI_CHECK_DIGIT,   /* sixth digit does not match */
    RK_MUNI_UNKNOWN,       /* well formed, but no such local government */
};

#define RK_MUNI_PREFECTURES 47

/* The prefecture (1..RK_MUNI_PREFECTURES) the first two characters of
 * `code` name, or 0 when they are not two ASCII digits in that range. */
int rk_muni_prefecture(const char *code);

/* The check digit ('0'..'9') for the first five digits of `code`, or -1
 * when those are not five ASCII digits. */
int rk_muni_check_digit(const char *code);

/* Checks `code` (a string of `len` bytes, not necessarily terminated) for
 * format, prefecture range, check digit and existence, in that order. */
enum rk_muni_status rk_muni_validate(const char *code, size_t len);

/* Official name (UTF-8, e.g. "大阪市") of an existing code, or NULL. The
 * string is static. */
const char *rk_muni_name(const char *code);

/* Number of codes in the compiled table, and the i-th code (static string). */
size_t rk_muni_count(void);
const char *rk_muni_code_at(size_t i);

#endif

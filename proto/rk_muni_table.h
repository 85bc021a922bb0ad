/* rk_muni_table - the generated code table; only rk_muni.c reads it. */
#ifndef RK_MUNI_TABLE_H
#define RK_MUNI_TABLE_H

struct rk_muni_row {
    char code[7];       /* six digits, rows sorted by code */
    const char *name;   /* official name, UTF-8 */
};

extern const struct rk_muni_row rk_muni_rows[];
extern const unsigned rk_muni_nrows;

#endif

# cmake -DIN=municipalities.csv -DOUT=rk_muni_table.c -P gen_muni_table.cmake
# Emits the sorted code/name table that rk_muni.c searches. The CSV has no
# quoted fields, so splitting on commas is exact.
cmake_policy(SET CMP0007 NEW)
file(STRINGS "${IN}" lines ENCODING UTF-8)
list(REMOVE_AT lines 0)
list(SORT lines)
set(body "")
set(n 0)
foreach(line IN LISTS lines)
  string(REPLACE "," ";" f "${line}")
  list(GET f 0 code)
  list(GET f 3 name)
  string(APPEND body "    {\"${code}\", \"${name}\"},\n")
  math(EXPR n "${n} + 1")
endforeach()
file(WRITE "${OUT}" "/* Generated from proto/data/municipalities.csv; do not edit. */\n"
  "#include \"rk_muni_table.h\"\n"
  "const struct rk_muni_row rk_muni_rows[] = {\n${body}};\n"
  "const unsigned rk_muni_nrows = ${n};\n")

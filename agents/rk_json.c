#include "rk_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32

static int pack(msgpack_packer *pk, const json_t *j, int depth)
{
    if (depth > MAX_DEPTH)
        return -1;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach((json_t *)j, key, val) {
            size_t n = strlen(key);
            msgpack_pack_str(pk, n);
            msgpack_pack_str_body(pk, key, n);
            if (pack(pk, val, depth + 1))
                return -1;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, val)
            if (pack(pk, val, depth + 1))
                return -1;
        return 0;
    }
    case JSON_STRING: {
        size_t n = json_string_length(j);
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, json_string_value(j), n);
        return 0;
    }
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, json_integer_value(j));
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(j));
    case JSON_TRUE:
        return msgpack_pack_true(pk);
    case JSON_FALSE:
        return msgpack_pack_false(pk);
    case JSON_NULL:
        return msgpack_pack_nil(pk);
    }
    return -1;
}

int rk_json_to_msgpack(const json_t *j, msgpack_sbuffer *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    return pack(&pk, j, 0);
}

static json_t *from_object(const msgpack_object *o);

static json_t *from_map(const msgpack_object_map *m)
{
    json_t *obj = json_object();
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        char key[256];
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size >= sizeof key)
            goto fail;
        memcpy(key, k->via.str.ptr, k->via.str.size);
        key[k->via.str.size] = '\0';
        json_t *v = from_object(&m->ptr[i].val);
        if (!v)
            goto fail;
        json_object_set_new(obj, key, v);
    }
    return obj;
fail:
    json_decref(obj);
    return NULL;
}

static json_t *from_object(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return json_real((double)o->via.u64);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR:
        return json_stringn(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *arr = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            json_t *v = from_object(&o->via.array.ptr[i]);
            if (!v) {
                json_decref(arr);
                return NULL;
            }
            json_array_append_new(arr, v);
        }
        return arr;
    }
    case MSGPACK_OBJECT_MAP:
        return from_map(&o->via.map);
    case MSGPACK_OBJECT_BIN: {
        char *hex = malloc(2 * o->via.bin.size + 3);
        if (!hex)
            abort();
        strcpy(hex, "0x");
        for (uint32_t i = 0; i < o->via.bin.size; i++)
            sprintf(hex + 2 + 2 * i, "%02x", (unsigned char)o->via.bin.ptr[i]);
        json_t *s = json_string(hex);
        free(hex);
        return s;
    }
    default:
        return NULL;
    }
}

json_t *rk_msgpack_to_json(const void *buf, size_t len)
{
    msgpack_unpacked u;
    size_t off = 0;
    json_t *j = NULL;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, buf, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len)
        j = from_object(&u.data);
    msgpack_unpacked_destroy(&u);
    return j;
}

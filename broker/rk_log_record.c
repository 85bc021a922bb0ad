#include "rk_log_impl.h"
#include "rk_be.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* Decodes the stored value `val` of key `seq`; checks the lengths add up. */
int rk_log__parse_record(uint64_t seq, const MDB_val *val, struct rk_log_view *v)
{
    const unsigned char *p = val->mv_data;
    if (val->mv_size < REC_HDR || p[0] != REC_FORMAT)
        return RK_LOG_EBADREC;
    size_t plen = (size_t)rk_be_get(p + OFF_PUBLEN, 2);
    size_t prodlen = p[OFF_PRODLEN];
    size_t entlen = p[OFF_ENTLEN];
    size_t elen = (size_t)rk_be_get(p + OFF_EVLEN, 4);
    if (REC_HDR + plen + prodlen + entlen + elen != val->mv_size)
        return RK_LOG_EBADREC;
    v->seq = seq;
    v->recv_ns = (int64_t)rk_be_get(p + OFF_RECV, 8);
    v->producer_seq = rk_be_get(p + OFF_PSEQ, 8);
    v->hash = p + OFF_HASH;
    v->publisher = p + REC_HDR;
    v->publisher_len = plen;
    v->producer = p + REC_HDR + plen;
    v->producer_len = prodlen;
    v->tags.type = p[OFF_TYPE];
    v->tags.fiscal_year = (uint16_t)rk_be_get(p + OFF_FY, 2);
    memcpy(v->tags.municipality, p + OFF_MUNI, 6);
    v->tags.entity = (const char *)p + REC_HDR + plen + prodlen;
    v->tags.entity_len = entlen;
    v->event = p + REC_HDR + plen + prodlen + entlen;
    v->event_len = elen;
    v->raw = p;
    v->raw_len = val->mv_size;
    return 0;
}

void rk_log_chain_hash(const unsigned char prev[RK_LOG_HASH_BYTES],
                       const struct rk_log_view *v, unsigned char out[RK_LOG_HASH_BYTES])
{
    crypto_generichash_state st;
    unsigned char key[8];
    const unsigned char *raw = v->raw;
    rk_be_put(key, v->seq, 8);
    crypto_generichash_init(&st, NULL, 0, RK_LOG_HASH_BYTES);
    crypto_generichash_update(&st, prev, RK_LOG_HASH_BYTES);
    crypto_generichash_update(&st, key, sizeof key);
    crypto_generichash_update(&st, raw, OFF_HASH);
    crypto_generichash_update(&st, raw + REC_HDR, v->raw_len - REC_HDR);
    crypto_generichash_final(&st, out, RK_LOG_HASH_BYTES);
}

/* Writes one record straight into the map (MDB_RESERVE) and chains it. */
int rk_log__write_record(MDB_cursor *cur, struct rk_log_rec *rec, uint64_t seq, int64_t recv_ns,
                      unsigned char head[RK_LOG_HASH_BYTES])
{
    unsigned char key[8];
    MDB_val k = {8, key}, v;
    struct rk_log_view view;
    int rc;

    const struct rk_log_tags *t = &rec->tags;
    if (rec->event_len > UINT32_MAX || rec->publisher_len > UINT16_MAX ||
        rec->producer_len > RK_LOG_PRODUCER_MAX || (rec->producer_len && !rec->producer_seq) ||
        t->entity_len > RK_LOG_ENTITY_MAX)
        return EINVAL;
    rk_be_put(key, seq, 8);
    v.mv_size = REC_HDR + rec->publisher_len + rec->producer_len + t->entity_len + rec->event_len;
    v.mv_data = NULL;
    rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc)
        return rc;
    unsigned char *p = v.mv_data;
    p[0] = REC_FORMAT;
    p[OFF_PRODLEN] = (unsigned char)rec->producer_len;
    rk_be_put(p + OFF_PUBLEN, rec->publisher_len, 2);
    rk_be_put(p + OFF_EVLEN, rec->event_len, 4);
    rk_be_put(p + OFF_RECV, (uint64_t)recv_ns, 8);
    rk_be_put(p + OFF_PSEQ, rec->producer_seq, 8);
    p[OFF_TYPE] = t->type;
    p[OFF_ENTLEN] = (unsigned char)t->entity_len;
    rk_be_put(p + OFF_FY, t->fiscal_year, 2);
    memcpy(p + OFF_MUNI, t->municipality, 6);
    unsigned char *q = p + REC_HDR;
    if (rec->publisher_len)
        memcpy(q, rec->publisher, rec->publisher_len);
    q += rec->publisher_len;
    if (rec->producer_len)
        memcpy(q, rec->producer, rec->producer_len);
    q += rec->producer_len;
    if (t->entity_len)
        memcpy(q, t->entity, t->entity_len);
    q += t->entity_len;
    memcpy(q, rec->event, rec->event_len);
    rc = rk_log__parse_record(seq, &v, &view);
    if (rc)
        return rc;
    rk_log_chain_hash(head, &view, head);
    memcpy(p + OFF_HASH, head, RK_LOG_HASH_BYTES);
    rec->seq = seq;
    rec->recv_ns = recv_ns;
    return 0;
}

/* What retention has deleted: the last pruned sequence and its chain hash,
 * so verification can start after it. "pruned" in meta; absent = none. */
int rk_log__read_pruned(MDB_txn *txn, MDB_dbi meta, uint64_t *seq, unsigned char hash[RK_LOG_HASH_BYTES])
{
    MDB_val k = {6, "pruned"}, v;
    int rc = mdb_get(txn, meta, &k, &v);
    *seq = 0;
    memset(hash, 0, RK_LOG_HASH_BYTES);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (v.mv_size != 8 + RK_LOG_HASH_BYTES)
        return RK_LOG_EBADREC;
    *seq = rk_be_get(v.mv_data, 8);
    memcpy(hash, (unsigned char *)v.mv_data + 8, RK_LOG_HASH_BYTES);
    return 0;
}

/* One record against what the chain so far predicts; fills v->why. */
static int check_record(struct rk_log_verdict *v, const struct rk_log_view *view,
                        const unsigned char prev[RK_LOG_HASH_BYTES], int64_t prev_recv)
{
    unsigned char want[RK_LOG_HASH_BYTES];
    if (view->seq != v->last_seq + 1) {
        snprintf(v->why, sizeof v->why, "sequence gap: record %llu follows %llu",
                 (unsigned long long)view->seq, (unsigned long long)v->last_seq);
        return -1;
    }
    if (view->recv_ns < prev_recv) {
        snprintf(v->why, sizeof v->why, "receive time goes back from the previous record");
        return -1;
    }
    rk_log_chain_hash(prev, view, want);
    if (memcmp(want, view->hash, RK_LOG_HASH_BYTES) != 0) {
        snprintf(v->why, sizeof v->why,
                 "chain hash does not match: the record or one before it was altered");
        return -1;
    }
    return 0;
}

int rk_log_verify(struct rk_log *log, struct rk_log_verdict *v, rk_log_progress_fn progress,
                  uint64_t every, void *arg)
{
    return rk_log_verify_to(log, 0, v, progress, every, arg);
}

int rk_log_verify_to(struct rk_log *log, uint64_t to_seq, struct rk_log_verdict *v,
                     rk_log_progress_fn progress, uint64_t every, void *arg)
{
    struct rk_log_reader *r;
    struct rk_log_view view;
    int64_t prev_recv = 0;
    int rc;

    memset(v, 0, sizeof *v);
    rc = rk_log_reader_open(log, 1, &r);
    if (rc)
        return rc;
    /* After retention the chain starts from the last deleted record's hash. */
    rc = rk_log__read_pruned(r->txn, log->meta, &v->last_seq, v->head);
    v->first_seq = v->last_seq + 1;
    while (rc == 0 && (rc = rk_log_reader_next(r, &view)) == 0) {
        if (check_record(v, &view, v->head, prev_recv) != 0) {
            v->bad_seq = view.seq;
            break;
        }
        memcpy(v->head, view.hash, RK_LOG_HASH_BYTES);
        v->last_seq = view.seq;
        prev_recv = view.recv_ns;
        if (++v->records % (every ? every : UINT64_MAX) == 0 && progress)
            progress(v->records, arg);
        if (to_seq && view.seq >= to_seq)
            break;
    }
    if (rc == RK_LOG_EBADREC) {
        v->bad_seq = v->last_seq + 1;
        snprintf(v->why, sizeof v->why, "record is malformed (its lengths do not add up)");
        rc = 0;
    } else if (rc == RK_LOG_EOF) {
        rc = 0;
    }
    rk_log_reader_destroy(&r);
    return rc;
}

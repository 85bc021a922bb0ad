#include "rk_log_impl.h"
#include "rk_be.h"
#include "rk_event.h"
#include "rk_muni.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* How far the entity index reaches; a log without the key was written by a
 * broker that indexed in the append's transaction, so all of it. */
static int read_indexed(MDB_txn *txn, MDB_dbi meta, uint64_t head, uint64_t *indexed,
                        int *present)
{
    return rk_log__read_mark(txn, meta, "indexed", head, indexed, present);
}

struct catch_up {
    struct rk_log *log;
    MDB_txn *txn;
    uint64_t places;    /* the places index's reach before the catch-up */
};

void rk_log__queues_clear(struct rk_log *log)
{
    log->iq.n = 0;
    log->pq.n = 0;
}

static int catch_up_record(void *arg, const struct rk_log_view *v)
{
    struct catch_up *c = arg;
    int rc = 0;
    if (v->seq > c->log->indexed)
        rc = rk_log__entries_add(&c->log->iq, &v->tags, v->seq);
    if (!rc && v->seq > c->places)
        rc = rk_log__places_add(&c->log->pq, &v->tags, v->seq);
    if (rc || c->log->iq.n + c->log->pq.n < INDEX_QUEUE_MAX)
        return rc;
    rc = rk_log__index_write(c->log, c->txn, v->seq);
    rk_log__queues_clear(c->log);
    return rc;
}

/* After a crash the entries that were waiting are lost with the process;
 * they are read again from the records, which are all there. The places
 * index can reach less far than the entity index: the whole log the first
 * time a log written before it is opened, or what a broker that predates
 * it appended since. That part is read too. */
int rk_log__index_catch_up(struct rk_log *log, MDB_txn *txn)
{
    struct catch_up c = {log, txn, 0};
    int present, places_present;
    rk_log__queues_clear(log); /* a retry after MDB_MAP_FULL must not queue twice */
    int rc = read_indexed(txn, log->meta, log->last_seq, &log->indexed, &present);
    if (!rc)
        rc = rk_log__read_mark(txn, log->meta, "places", 0, &c.places, &places_present);
    /* Nothing to do, and nothing written: a full disk must not stop a start. */
    if (rc || (present && places_present && log->indexed == log->last_seq &&
               c.places == log->last_seq))
        return rc;
    uint64_t from = (c.places < log->indexed ? c.places : log->indexed) + 1;
    if ((rc = rk_log__each_record_from(txn, log->events, from, catch_up_record, &c)))
        return rc;
    /* Writes the keys even when nothing waited: without them readers would
     * take the index for complete while the next entries wait. */
    if ((rc = rk_log__index_write(log, txn, log->last_seq)))
        return rc;
    rk_log__queues_clear(log);
    log->indexed = log->last_seq;
    return 0;
}

size_t rk_log_entity_key(const struct rk_log_tags *t, unsigned char key[RK_LOG_ENTITY_KEY_MAX])
{
    size_t n = 0;
    if (t->entity_len == 0 || t->entity_len > RK_LOG_ENTITY_MAX)
        return 0;
    if (t->type == RK_EV_KPI_UPDATE) {
        key[n++] = 'K';
        memcpy(key + n, t->municipality, 6);
        n += 6;
        rk_be_put(key + n, t->fiscal_year, 2);
        n += 2;
    } else {
        key[n++] = 'A';
    }
    /* The length byte makes no entity's key a prefix of another's. */
    key[n++] = (unsigned char)t->entity_len;
    memcpy(key + n, t->entity, t->entity_len);
    return n + t->entity_len;
}

int rk_log__entries_add(struct entry_list *l, const struct rk_log_tags *tags, uint64_t seq)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        struct index_entry *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    struct index_entry *e = &l->v[l->n];
    size_t n = rk_log_entity_key(tags, e->key);
    if (n == 0)
        return 0;
    e->len = (unsigned char)n;
    e->seq = seq;
    l->n++;
    return 0;
}

int rk_log__places_add(struct place_list *l, const struct rk_log_tags *tags, uint64_t seq)
{
    int pp = rk_muni_prefecture(tags->municipality);
    if (!pp)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        uint64_t *s = realloc(l->seq, cap * sizeof *s);
        if (!s)
            return ENOMEM;
        l->seq = s;
        unsigned char *p = realloc(l->pp, cap);
        if (!p)
            return ENOMEM;
        l->pp = p;
        l->cap = cap;
    }
    l->seq[l->n] = seq;
    l->pp[l->n++] = (unsigned char)pp;
    return 0;
}

/* Writes the waiting places entries: for each prefecture, one chunk keyed
 * (pp, its first sequence) whose value is its sequences in order, u64 BE.
 * A bucket pass keeps each prefecture's sequences in the queue's order,
 * which is the log's. */
static int places_write(struct rk_log *log, MDB_txn *txn)
{
    const struct place_list *q = &log->pq;
    size_t start[RK_MUNI_PREFECTURES + 2] = {0};
    unsigned char key[9];
    int rc = 0;
    if (q->n == 0)
        return 0;
    unsigned char *buf = malloc(q->n * 8);
    if (!buf)
        return ENOMEM;
    for (size_t i = 0; i < q->n; i++)
        start[q->pp[i] + 1]++;
    for (unsigned pp = 1; pp <= RK_MUNI_PREFECTURES + 1; pp++)
        start[pp] += start[pp - 1];
    size_t at[RK_MUNI_PREFECTURES + 1];
    memcpy(at, start, sizeof at);
    for (size_t i = 0; i < q->n; i++)
        rk_be_put(buf + 8 * at[q->pp[i]]++, q->seq[i], 8);
    for (unsigned pp = 1; pp <= RK_MUNI_PREFECTURES && !rc; pp++) {
        size_t n = start[pp + 1] - start[pp];
        if (n == 0)
            continue;
        key[0] = (unsigned char)pp;
        memcpy(key + 1, buf + 8 * start[pp], 8);
        MDB_val k = {sizeof key, key}, v = {8 * n, buf + 8 * start[pp]};
        rc = mdb_put(txn, log->places, &k, &v, 0);
    }
    free(buf);
    return rc;
}

static int key_cmp(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0; /* `after` is NULL for the first entity */
    return c ? c : (alen > blen) - (alen < blen);
}

/* The order of the index's keys. No entity key is a prefix of another, so
 * comparing the keys then the sequences is LMDB's memcmp order of
 * key || sequence. */
static int entry_cmp(const void *a, const void *b)
{
    const struct index_entry *x = a, *y = b;
    int c = key_cmp(x->key, x->len, y->key, y->len);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Writes the waiting entries in key order, where each put through the
 * cursor mostly lands on the page the last one dirtied, and records that
 * the index reaches `through`. The caller empties the queue once the
 * transaction commits. The value of an entry is empty. */
int rk_log__index_write(struct rk_log *log, MDB_txn *txn, uint64_t through)
{
    unsigned char key[RK_LOG_ENTITY_KEY_MAX + 8];
    MDB_cursor *cur;
    MDB_val k, v = {0, NULL};
    int rc = mdb_cursor_open(txn, log->entities, &cur);
    if (rc)
        return rc;
    /* The queue's order does not matter: sort it in place. */
    if (log->iq.n > 1)
        qsort(log->iq.v, log->iq.n, sizeof *log->iq.v, entry_cmp);
    for (size_t i = 0; i < log->iq.n && !rc; i++) {
        const struct index_entry *e = &log->iq.v[i];
        memcpy(key, e->key, e->len);
        rk_be_put(key + e->len, e->seq, 8);
        k = (MDB_val){e->len + 8u, key};
        rc = mdb_cursor_put(cur, &k, &v, 0);
    }
    mdb_cursor_close(cur);
    if (rc || (rc = places_write(log, txn)) ||
        (rc = rk_log__write_mark(txn, log->meta, "places", through)))
        return rc;
    return rk_log__write_mark(txn, log->meta, "indexed", through);
}

/* Entries wait until many have gathered, or for RK_LOG_INDEX_LAG_NS. */
int rk_log__index_due(struct rk_log *log, int64_t now_ns)
{
    size_t n = log->iq.n + log->pq.n;
    return n >= INDEX_QUEUE_MAX || (n && now_ns - log->iq_since_ns >= RK_LOG_INDEX_LAG_NS);
}


static int index_commit(struct rk_log *log)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(log->env, NULL, 0, &txn);
    if (rc)
        return rc;
    if ((rc = rk_log__index_write(log, txn, log->last_seq))) {
        mdb_txn_abort(txn);
        return rc;
    }
    if ((rc = mdb_txn_commit(txn)))
        return rc;
    rk_log__queues_clear(log);
    log->indexed = log->last_seq;
    return 0;
}

int rk_log_index_flush(struct rk_log *log, int64_t now_ns, int force)
{
    int rc;
    if (log->readonly || log->indexed == log->last_seq || !(force || rk_log__index_due(log, now_ns)))
        return 0;
    if ((rc = rk_log__finish_open(log)))
        return rc;
    while ((rc = index_commit(log)) == MDB_MAP_FULL)
        if ((rc = rk_log__grow_map(log)))
            return rc;
    return rc;
}

void rk_log__places_close(struct rk_log_reader *r)
{
    for (unsigned i = 0; i < r->nwalks; i++)
        mdb_cursor_close(r->walks[i].cur);
    r->nwalks = 0;
}

/* Takes the chunk the cursor just read (rc its result) when it belongs to
 * the walk's prefecture; otherwise the walk is over (seqs NULL). */
static int walk_load(struct place_walk *w, int rc, const MDB_val *k, const MDB_val *v)
{
    w->seqs = NULL;
    w->n = w->i = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (k->mv_size != 9 || *(const unsigned char *)k->mv_data != w->pp)
        return 0;
    if (v->mv_size == 0 || v->mv_size % 8)
        return RK_LOG_EBADREC;
    w->seqs = v->mv_data;
    w->n = v->mv_size / 8;
    return 0;
}

static uint64_t walk_seq(const struct place_walk *w)
{
    return rk_be_get(w->seqs + 8 * w->i, 8);
}

static int walk_step(struct place_walk *w)
{
    MDB_val k, v;
    if (++w->i < w->n)
        return 0;
    return walk_load(w, mdb_cursor_get(w->cur, &k, &v, MDB_NEXT), &k, &v);
}

/* Puts the walk on its first sequence >= from. The chunk that starts
 * before `from` may hold some, so it is looked at first. */
static int walk_start(struct place_walk *w, uint64_t from)
{
    unsigned char key[9];
    MDB_val k = {sizeof key, key}, v;
    key[0] = (unsigned char)w->pp;
    rk_be_put(key + 1, from, 8);
    int rc = mdb_cursor_get(w->cur, &k, &v, MDB_SET_RANGE);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    rc = mdb_cursor_get(w->cur, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
    if ((rc = walk_load(w, rc, &k, &v)))
        return rc;
    if (!w->seqs) { /* no earlier chunk of this prefecture */
        k = (MDB_val){sizeof key, key};
        return walk_load(w, mdb_cursor_get(w->cur, &k, &v, MDB_SET_RANGE), &k, &v);
    }
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rk_be_get(w->seqs + 8 * mid, 8) < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    w->i = lo;
    if (lo < w->n)
        return 0;
    w->i = w->n - 1; /* all before `from`: the next chunk starts after it */
    return walk_step(w);
}

int rk_log_reader_places_start(struct rk_log_reader *r, uint64_t mask, uint64_t from,
                               uint64_t *reach)
{
    int rc = 0;
    rk_log__places_close(r);
    *reach = r->places_reach = 0;
    if (!r->log->has_places)
        return 0;
    if ((rc = rk_log__read_mark(r->txn, r->log->meta, "places", 0, &r->places_reach, NULL)))
        return rc;
    for (unsigned pp = 1; pp <= RK_MUNI_PREFECTURES && !rc; pp++) {
        if (!(mask >> pp & 1))
            continue;
        struct place_walk *w = &r->walks[r->nwalks];
        *w = (struct place_walk){.pp = pp};
        if ((rc = mdb_cursor_open(r->txn, r->log->places, &w->cur)))
            break;
        r->nwalks++;
        rc = walk_start(w, from);
    }
    if (rc) {
        rk_log__places_close(r);
        r->places_reach = 0;
        return rc;
    }
    *reach = r->places_reach;
    return 0;
}

int rk_log_reader_places_next(struct rk_log_reader *r, uint64_t *seq)
{
    struct place_walk *first = NULL;
    for (unsigned i = 0; i < r->nwalks; i++)
        if (r->walks[i].seqs && (!first || walk_seq(&r->walks[i]) < walk_seq(first)))
            first = &r->walks[i];
    if (!first || walk_seq(first) > r->places_reach)
        return RK_LOG_EOF;
    *seq = walk_seq(first);
    return walk_step(first);
}

static int entity_cursor(struct rk_log_reader *r)
{
    return r->ent ? 0 : mdb_cursor_open(r->txn, r->log->entities, &r->ent);
}

/* Index keys are an entity key followed by a big-endian sequence. */
static int split_index_key(const MDB_val *k, size_t *prefix_len, uint64_t *seq)
{
    if (k->mv_size <= 8 || k->mv_size > RK_LOG_ENTITY_KEY_MAX + 8)
        return RK_LOG_EBADREC;
    *prefix_len = k->mv_size - 8;
    *seq = rk_be_get((const unsigned char *)k->mv_data + *prefix_len, 8);
    return 0;
}

/* Moves the index cursor to the first key of `prefix` with a sequence
 * >= `seq` (or past the entity), then one step back: the entity's last
 * record before `seq`. Sets *found to 0 when it has none. */
static int entity_last_before(MDB_cursor *cur, const unsigned char *prefix, size_t len,
                              uint64_t seq, uint64_t *found)
{
    unsigned char key[RK_LOG_ENTITY_KEY_MAX + 8];
    MDB_val k = {len + 8, key}, v;
    size_t plen;
    uint64_t s;
    memcpy(key, prefix, len);
    rk_be_put(key + len, seq, 8);
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    rc = mdb_cursor_get(cur, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
    *found = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc || (rc = split_index_key(&k, &plen, &s)))
        return rc;
    if (plen == len && memcmp(k.mv_data, prefix, len) == 0)
        *found = s;
    return 0;
}

/* rk_log_reader_entity_next over the index alone. */
static int index_next(struct rk_log_reader *r, const void *after, size_t after_len, uint64_t at,
                      struct rk_log_entity *e)
{
    unsigned char key[RK_LOG_ENTITY_KEY_MAX + 8];
    MDB_val k = {after_len + 8, key}, v;
    int rc = entity_cursor(r);
    if (rc)
        return rc;
    if (after_len > RK_LOG_ENTITY_KEY_MAX || at == UINT64_MAX)
        return EINVAL;
    if (after_len)
        memcpy(key, after, after_len);
    memset(key + after_len, 0xff, 8); /* past every record of `after` */
    rc = after_len ? mdb_cursor_get(r->ent, &k, &v, MDB_SET_RANGE)
                   : mdb_cursor_get(r->ent, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if ((rc = split_index_key(&k, &e->key_len, &e->seq)))
            return rc;
        memcpy(e->key, k.mv_data, e->key_len);
        if ((rc = entity_last_before(r->ent, e->key, e->key_len, at + 1, &e->seq)))
            return rc;
        if (e->seq)
            return 0;
        /* Every record of this entity is after `at`: skip to the next. */
        memcpy(key, e->key, e->key_len);
        memset(key + e->key_len, 0xff, 8);
        k = (MDB_val){e->key_len + 8, key};
        rc = mdb_cursor_get(r->ent, &k, &v, MDB_SET_RANGE);
    }
    return rc == MDB_NOTFOUND ? RK_LOG_EOF : rc;
}

/* rk_log_reader_entity_prev over the index alone. */
static int index_prev(struct rk_log_reader *r, const struct rk_log_entity *e, uint64_t seq,
                      uint64_t *prev)
{
    int rc = entity_cursor(r);
    if (rc)
        return rc;
    rc = entity_last_before(r->ent, e->key, e->key_len, seq, prev);
    if (rc == 0 && *prev == 0)
        return RK_LOG_EOF;
    return rc;
}

static int tail_record(void *arg, const struct rk_log_view *v)
{
    return rk_log__entries_add(arg, &v->tags, v->seq);
}

/* Reads the entries of the records after the index's reach. The index
 * trails by at most INDEX_QUEUE_MAX entries or RK_LOG_INDEX_LAG_NS of
 * appends, so this is a short walk at the end of the log. */
static int read_tail(struct rk_log_reader *r)
{
    int rc;
    if (r->tail_read)
        return 0;
    if ((rc = read_indexed(r->txn, r->log->meta, r->head, &r->indexed, NULL)))
        return rc;
    if (r->indexed < r->head &&
        (rc = rk_log__each_record_from(r->txn, r->events, r->indexed + 1, tail_record, &r->tail))) {
        r->tail.n = 0;
        return rc;
    }
    if (r->tail.n > 1)
        qsort(r->tail.v, r->tail.n, sizeof *r->tail.v, entry_cmp);
    r->tail_read = 1;
    return 0;
}

/* The first tail entity whose key sorts after `after` and that has a
 * record at or before `at`: 1 with *e filled, or 0. */
static int tail_next(const struct rk_log_reader *r, const void *after, size_t after_len,
                     uint64_t at, struct rk_log_entity *e)
{
    size_t lo = 0, hi = r->tail.n;
    while (lo < hi) { /* the first entry past `after` */
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(r->tail.v[mid].key, r->tail.v[mid].len, after, after_len) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    e->seq = 0;
    for (size_t i = lo; i < r->tail.n; i++) {
        const struct index_entry *t = &r->tail.v[i];
        if (t->seq <= at) {
            memcpy(e->key, t->key, t->len);
            e->key_len = t->len;
            e->seq = t->seq;
        }
        int last_of_entity = i + 1 == r->tail.n || key_cmp(t->key, t->len, r->tail.v[i + 1].key,
                                                          r->tail.v[i + 1].len) != 0;
        if (last_of_entity && e->seq)
            return 1;
    }
    return 0;
}

uint64_t rk_log_reader_indexed(struct rk_log_reader *r)
{
    uint64_t indexed;
    return read_indexed(r->txn, r->log->meta, r->head, &indexed, NULL) ? 0 : indexed;
}

int rk_log_reader_entity_next(struct rk_log_reader *r, const void *after, size_t after_len,
                              uint64_t at, struct rk_log_entity *e)
{
    struct rk_log_entity in_tail;
    int rc = read_tail(r);
    if (rc)
        return rc;
    if (after_len > RK_LOG_ENTITY_KEY_MAX || at == UINT64_MAX)
        return EINVAL;
    rc = index_next(r, after, after_len, at < r->indexed ? at : r->indexed, e);
    if (rc && rc != RK_LOG_EOF)
        return rc;
    if (at <= r->indexed || !tail_next(r, after, after_len, at, &in_tail))
        return rc;
    /* The smaller key comes first; for the same entity the tail's record
     * is the later one. */
    if (rc == RK_LOG_EOF || key_cmp(in_tail.key, in_tail.key_len, e->key, e->key_len) <= 0)
        *e = in_tail;
    return 0;
}

int rk_log_reader_entity_prev(struct rk_log_reader *r, const struct rk_log_entity *e,
                              uint64_t seq, uint64_t *prev)
{
    int rc = read_tail(r);
    if (rc)
        return rc;
    if (e->key_len > RK_LOG_ENTITY_KEY_MAX)
        return EINVAL;
    size_t lo = 0, hi = r->tail.n;
    while (lo < hi) { /* the first tail entry at or after (e->key, seq) */
        size_t mid = lo + (hi - lo) / 2;
        const struct index_entry *t = &r->tail.v[mid];
        int c = key_cmp(t->key, t->len, e->key, e->key_len);
        if (c < 0 || (c == 0 && t->seq < seq))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0 && key_cmp(r->tail.v[lo - 1].key, r->tail.v[lo - 1].len, e->key, e->key_len) == 0) {
        *prev = r->tail.v[lo - 1].seq;
        return 0;
    }
    return index_prev(r, e, seq <= r->indexed ? seq : r->indexed + 1, prev);
}

/* Keeps the queued entries whose sequence is in (after, through]. */
void rk_log__keep_queued(struct rk_log *log, uint64_t after, uint64_t through)
{
    size_t kept = 0;
    for (size_t i = 0; i < log->iq.n; i++)
        if (log->iq.v[i].seq > after && log->iq.v[i].seq <= through)
            log->iq.v[kept++] = log->iq.v[i];
    log->iq.n = kept;
    kept = 0;
    for (size_t i = 0; i < log->pq.n; i++)
        if (log->pq.seq[i] > after && log->pq.seq[i] <= through) {
            log->pq.seq[kept] = log->pq.seq[i];
            log->pq.pp[kept++] = log->pq.pp[i];
        }
    log->pq.n = kept;
}

/* Entries still waiting for records that retention deleted must not be
 * written: they would name records that are gone. */
void rk_log__drop_queued(struct rk_log *log, uint64_t through)
{
    rk_log__keep_queued(log, through, UINT64_MAX);
}

void rk_log__drop_queued_after(struct rk_log *log, uint64_t last)
{
    rk_log__keep_queued(log, 0, last);
}

/* Puts the cursor on prefecture pp's first chunk when retention deleted
 * every record in it (through `through`): 0, or MDB_NOTFOUND. */
static int places_stale_chunk(MDB_cursor *cur, unsigned pp, uint64_t through)
{
    unsigned char key[9] = {(unsigned char)pp};
    MDB_val k = {sizeof key, key}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc)
        return rc;
    if (k.mv_size != 9 || *(const unsigned char *)k.mv_data != pp || v.mv_size < 8 ||
        rk_be_get((const unsigned char *)v.mv_data + v.mv_size - 8, 8) > through)
        return MDB_NOTFOUND;
    return 0;
}

/* Deletes the places chunks whose every record retention deleted. A chunk
 * that straddles `through` stays: readers skip the records that are gone. */
int rk_log__places_prune(struct rk_log *log, MDB_txn *txn, uint64_t through)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, log->places, &cur);
    if (rc)
        return rc;
    for (unsigned pp = 1; pp <= RK_MUNI_PREFECTURES && !rc; pp++) {
        while ((rc = places_stale_chunk(cur, pp, through)) == 0 &&
               (rc = mdb_cursor_del(cur, 0)) == 0)
            ;
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    mdb_cursor_close(cur);
    return rc;
}

/*
 * rk_log_identity.c - the log's identity (rk_log.h, "log_id").
 *
 * A log is the same log only while it is the very file its last writer
 * left. Two things can make a second history that shares sequence numbers
 * with the first: a restored backup (the broker writes seq 20 again, to a
 * new event) and a copy that is written to (two brokers, two seq 20s).
 * Neither can be seen from inside the LMDB file alone, since a copy is
 * byte for byte the original. So the writer keeps a witness beside the
 * data: the marker file "log-identity" in the data directory holds the
 * identity, the writer epoch and the inode of data.mdb as the last writer
 * left them, and "meta" holds the identity and epoch too. The epoch is
 * bumped in both at every open for writing and again at every clean close.
 *
 *   plain restart           marker and meta agree, same inode: same identity
 *   mdb_copy into a new dir no marker there: new identity
 *   cp -a of the whole dir  the copy's data.mdb has another inode: new identity
 *   backup put back in place (cp over data.mdb, same inode): the backup's
 *                           epoch is the one of the session it was taken in;
 *                           the marker moved on at that session's close (or
 *                           at a later open): new identity
 *
 * Any doubt gives a new identity: a subscriber then stops and says so,
 * which costs an operator a look; the other mistake costs a silent fork.
 * So does a crash between the meta commit and the marker's rename (a
 * window of one fsync), and with durability=os a power cut that loses the
 * epoch's commit: rightly so, since it may have lost acknowledged events
 * whose numbers the log will give again.
 * What this cannot see: a restore of the whole disk, marker included (a VM
 * snapshot), and a backup taken during the session that a crash (kill -9,
 * power cut) ended, put back over data.mdb in place. deploy/README.md's
 * restore puts the backup in a fresh directory (new inode, no marker), and
 * deleting the marker always forces a new identity.
 */
#include "rk_log_impl.h"
#include "rk_be.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARKER_NAME "log-identity"

struct marker {
    char id[RK_LOG_ID_HEX];
    unsigned long long epoch, inode;
};

static void marker_path(const struct rk_log *log, char *buf, size_t len, const char *suffix)
{
    snprintf(buf, len, "%s/" MARKER_NAME "%s", log->dir, suffix);
}

/* 1 with *m when the marker is there and well formed, else 0. */
static int marker_read(const struct rk_log *log, struct marker *m)
{
    char path[4200], buf[256];
    marker_path(log, path, sizeof path, "");
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return sscanf(buf, "log_id=%32[0-9a-f]\nepoch=%llu\ninode=%llu\n", m->id, &m->epoch,
                  &m->inode) == 3 && strlen(m->id) == 32;
}

/* Written whole or not at all (a new file renamed over the old), after
 * the meta commit it describes. */
static int marker_write(const struct rk_log *log)
{
    char path[4200], tmp[4200], buf[256];
    marker_path(log, path, sizeof path, "");
    marker_path(log, tmp, sizeof tmp, ".new");
    int n = snprintf(buf, sizeof buf,
                     "log_id=%s\nepoch=%llu\ninode=%llu\n"
                     "# renkei-broker's witness that data.mdb is the file it last wrote.\n"
                     "# Delete this file to give the log a new identity.\n",
                     log->id_hex, (unsigned long long)log->epoch, (unsigned long long)log->inode);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return errno;
    int rc = write(fd, buf, (size_t)n) == n && fsync(fd) == 0 ? 0 : (errno ? errno : EIO);
    close(fd);
    if (!rc && rename(tmp, path) != 0)
        rc = errno;
    if (rc) {
        unlink(tmp);
        return rc;
    }
    if ((fd = open(log->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
}

static int read_id(MDB_txn *txn, MDB_dbi meta, unsigned char id[RK_LOG_ID_BYTES], int *present)
{
    MDB_val k = {6, "log_id"}, v;
    int rc = mdb_get(txn, meta, &k, &v);
    *present = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (v.mv_size != RK_LOG_ID_BYTES)
        return RK_LOG_EBADREC;
    memcpy(id, v.mv_data, RK_LOG_ID_BYTES);
    *present = 1;
    return 0;
}

static int write_id(MDB_txn *txn, MDB_dbi meta, const unsigned char id[RK_LOG_ID_BYTES])
{
    MDB_val k = {6, "log_id"}, v = {RK_LOG_ID_BYTES, (void *)id};
    return mdb_put(txn, meta, &k, &v, 0);
}

static void set_hex(struct rk_log *log, const unsigned char id[RK_LOG_ID_BYTES])
{
    sodium_bin2hex(log->id_hex, sizeof log->id_hex, id, RK_LOG_ID_BYTES);
}

int rk_log__identity_read(struct rk_log *log, MDB_txn *txn)
{
    unsigned char id[RK_LOG_ID_BYTES];
    int present, rc = read_id(txn, log->meta, id, &present);
    if (!rc && present)
        set_hex(log, id);
    return rc;
}

/* Whether the file is the one the marker describes; if not, why. */
static const char *why_new(const struct rk_log *log, int present, const struct marker *m,
                           int have_marker)
{
    if (!present)
        return log->last_seq ? "first open by a renkei with log identities" : "new log";
    if (!have_marker)
        return "no " MARKER_NAME " beside data.mdb: a copy or a restored backup";
    if (strcmp(m->id, log->id_hex) != 0)
        return MARKER_NAME " names another log: data.mdb was replaced";
    if (m->inode != log->inode)
        return "data.mdb is another file than the one last written: a copy";
    if (m->epoch != log->epoch)
        return "data.mdb is older than its last writer left it: a restored backup";
    return NULL;
}

int rk_log__identity_open(struct rk_log *log, MDB_txn *txn, const char *dir)
{
    unsigned char id[RK_LOG_ID_BYTES];
    struct marker m = {0};
    struct stat st;
    int present, fd, rc;

    if (!(log->dir = strdup(dir)))
        abort();
    if ((rc = mdb_env_get_fd(log->env, &fd)) != 0)
        return rc;
    if (fstat(fd, &st) != 0)
        return errno;
    log->inode = (uint64_t)st.st_ino;
    if ((rc = read_id(txn, log->meta, id, &present)) != 0 ||
        (rc = rk_log__read_mark(txn, log->meta, "epoch", 0, &log->epoch, NULL)) != 0)
        return rc;
    if (present)
        set_hex(log, id);
    int have_marker = marker_read(log, &m);
    log->id_why = why_new(log, present, &m, have_marker);
    if (log->id_why) {
        memcpy(log->prev_hex, log->id_hex, sizeof log->prev_hex);
        randombytes_buf(id, sizeof id);
        set_hex(log, id);
        log->epoch = 0;
        if ((rc = write_id(txn, log->meta, id)) != 0)
            return rc;
    }
    log->epoch++;
    return rk_log__write_mark(txn, log->meta, "epoch", log->epoch);
}

/* A marker that cannot be written (a full disk) does not keep the broker
 * from starting: it can still serve reads. The next open then finds the
 * marker behind and gives a new identity, the safe side. */
int rk_log__identity_commit(struct rk_log *log)
{
    int rc = marker_write(log);
    if (rc)
        snprintf(log->marker_error, sizeof log->marker_error,
                 "cannot write %s/" MARKER_NAME ": %s; the next start will give the log a "
                 "new identity", log->dir, strerror(rc));
    return 0;
}

const char *rk_log_id_marker_error(const struct rk_log *log)
{
    return log->marker_error[0] ? log->marker_error : NULL;
}

/* A clean close moves the epoch on, so a backup taken during this session
 * no longer matches the marker. A failure only costs a new identity at the
 * next open. */
void rk_log__identity_close(struct rk_log *log)
{
    MDB_txn *txn;
    if (log->readonly || !log->dir || !log->id_hex[0])
        return;
    if (mdb_txn_begin(log->env, NULL, 0, &txn) != 0)
        return;
    if (rk_log__write_mark(txn, log->meta, "epoch", log->epoch + 1) != 0) {
        mdb_txn_abort(txn);
        return;
    }
    if (mdb_txn_commit(txn) != 0)
        return;
    log->epoch++;
    marker_write(log);
}

const char *rk_log_id(const struct rk_log *log)
{
    return log->id_hex;
}

const char *rk_log_id_previous(const struct rk_log *log)
{
    return log->prev_hex;
}

const char *rk_log_id_reason(const struct rk_log *log)
{
    return log->id_why;
}

uint64_t rk_log_epoch(const struct rk_log *log)
{
    return log->epoch;
}

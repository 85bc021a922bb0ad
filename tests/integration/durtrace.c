/* Preloaded into the broker by it57: a trace, in order, of what reaches the
 * disk and what reaches the publishers, so the test can check that every
 * acknowledgement follows the sync of the commit holding its event.
 *
 * RK_DURTRACE_FILE names the trace (one text line per call, appended) and
 * RK_DURTRACE_FILE.pages receives the bytes of every write to data.mdb,
 * back to back, so the test can find the write that stored each event.
 * Recorded:
 *
 *   open     of a file named data.mdb: its flags (O_DSYNC: each write on
 *            that descriptor is synchronous, LMDB's meta page descriptor)
 *   write    pwrite, pwrite64, write, writev, pwritev on such a descriptor:
 *            file offset, length, result, where its bytes are in .pages
 *   sync     fdatasync, fsync on such a descriptor; sync_file_range on it;
 *            msync (any map: LMDB calls it only with MDB_WRITEMAP)
 *   close    of such a descriptor
 *   ack      zmq_send / zmq_msg_send / zmq_sendmsg of a frame that is an
 *            "ack" or "acks" header ([1, "ack", corr, seq, recv_ns] or
 *            [1, "acks", 0, recv_ns, [corr, seq, ...]]): the seqs it gives
 *
 * Each line starts "B E TB TE TID": B and E are numbers from one counter
 * taken on entry to the call and on its return (they order calls across
 * threads), TB and TE CLOCK_MONOTONIC nanoseconds, TID the thread.
 *
 * RK_DURTRACE_SKIP_SYNC=1 turns those syncs into no-ops that succeed at
 * once, recorded with skipped=1: the broker then acknowledges without
 * anything reaching the disk, which the test must notice. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_FD 4096

static atomic_uint_fast64_t counter;
static atomic_int tracked[MAX_FD];      /* 0: not data.mdb; else open number */
static atomic_int opens;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int trace_fd = -1, pages_fd = -1, trace_failed;
static uint64_t pages_off;

static uint64_t tick(void)
{
    return atomic_fetch_add(&counter, 1) + 1;
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static long tid(void)
{
    return syscall(SYS_gettid);
}

static int skip_sync(void)
{
    const char *s = getenv("RK_DURTRACE_SKIP_SYNC");
    return s && s[0] == '1';
}

/* Raw system calls for the trace itself, so it never passes through the
 * functions below (nor a sanitizer's interceptors). */
static void put_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        long w = syscall(SYS_write, fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            trace_failed = 1;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Opens the trace on first use; call with `lock` held. */
static int trace_ready(void)
{
    if (trace_fd >= 0)
        return 1;
    const char *path = getenv("RK_DURTRACE_FILE");
    if (!path || trace_failed)
        return 0;
    char pages[4096];
    snprintf(pages, sizeof pages, "%s.pages", path);
    int saved = errno;
    trace_fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                            0644);
    pages_fd = (int)syscall(SYS_openat, AT_FDCWD, pages,
                            O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (trace_fd < 0 || pages_fd < 0)
        trace_failed = 1;
    errno = saved;
    return !trace_failed;
}

/* One trace line: the common prefix, then `fmt`. The payload (iov, n), if
 * any, goes to .pages and its place is appended as "pages=OFF+LEN". */
static void record(uint64_t b, uint64_t e, uint64_t tb, uint64_t te, const struct iovec *iov,
                   int niov, size_t payload, const char *fmt, ...)
{
    char line[8192];
    int saved = errno;
    int n = snprintf(line, sizeof line, "%llu %llu %llu %llu %ld ", (unsigned long long)b,
                     (unsigned long long)e, (unsigned long long)tb, (unsigned long long)te,
                     tid());
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&lock);
    if (trace_ready()) {
        if (iov && payload > 0) {
            n += snprintf(line + n, sizeof line - (size_t)n, " pages=%llu+%zu",
                          (unsigned long long)pages_off, payload);
            size_t left = payload;
            for (int i = 0; i < niov && left > 0; i++) {
                size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
                put_all(pages_fd, iov[i].iov_base, k);
                left -= k;
            }
            pages_off += payload;
        }
        if (n > (int)sizeof line - 2)
            n = (int)sizeof line - 2;
        line[n++] = '\n';
        put_all(trace_fd, line, (size_t)n);
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
}

static int open_no(int fd)
{
    return fd >= 0 && fd < MAX_FD ? atomic_load(&tracked[fd]) : 0;
}

static int is_data_file(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return path && strcmp(slash ? slash + 1 : path, "data.mdb") == 0;
}

/* The next definition of `name` (libc's, or a sanitizer's interceptor),
 * looked up on first use; `type` is a typedef of its pointer type. */
#define REAL(name, type)                                                                        \
    static type real_##name;                                                                   \
    if (!real_##name)                                                                          \
        real_##name = (type)dlsym(RTLD_NEXT, #name)

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*fd_fn)(int);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef ssize_t (*pwritev_fn)(int, const struct iovec *, int, off_t);
typedef int (*sfr_fn)(int, off_t, off_t, unsigned);
typedef int (*msync_fn)(void *, size_t, int);
typedef int (*zsend_fn)(void *, const void *, size_t, int);
typedef void *(*zdata_fn)(void *);
typedef size_t (*zsize_fn)(void *);
typedef int (*zmsgsend_fn)(void *, void *, int);

/* ---- opening and closing data.mdb */

static int after_open(int fd, const char *path, int flags, uint64_t b, uint64_t tb)
{
    uint64_t e = tick(), te = now_ns();
    if (fd < 0 || fd >= MAX_FD || !is_data_file(path))
        return fd;
    int no = atomic_fetch_add(&opens, 1) + 1;
    atomic_store(&tracked[fd], no);
    record(b, e, tb, te, NULL, 0, 0, "open fd=%d file=%d flags=0x%x dsync=%d path=%s", fd, no,
           (unsigned)flags, (flags & O_DSYNC) == O_DSYNC ? 1 : 0, path);
    return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

/* Defines the wrapper `name` of an open call: `params` its parameter list,
 * `args` what it passes on. A macro, not a function, because the mode is a
 * variadic argument and only the wrapper itself can read it. */
#define TRACED_OPEN(name, type, params, args)                                                  \
    int name params                                                                            \
    {                                                                                          \
        REAL(name, type);                                                                      \
        va_list ap;                                                                            \
        va_start(ap, flags);                                                                   \
        mode_t mode = mode_arg(flags, ap);                                                     \
        va_end(ap);                                                                            \
        uint64_t b = tick(), tb = now_ns();                                                    \
        return after_open(real_##name args, path, flags, b, tb);                               \
    }

TRACED_OPEN(open, open_fn, (const char *path, int flags, ...), (path, flags, mode))
TRACED_OPEN(open64, open_fn, (const char *path, int flags, ...), (path, flags, mode))
TRACED_OPEN(openat, openat_fn, (int dirfd, const char *path, int flags, ...),
            (dirfd, path, flags, mode))
TRACED_OPEN(openat64, openat_fn, (int dirfd, const char *path, int flags, ...),
            (dirfd, path, flags, mode))

int close(int fd)
{
    REAL(close, fd_fn);
    int no = open_no(fd);
    if (!no)
        return real_close(fd);
    uint64_t b = tick(), tb = now_ns();
    atomic_store(&tracked[fd], 0);
    int rc = real_close(fd);
    record(b, tick(), tb, now_ns(), NULL, 0, 0, "close fd=%d file=%d ret=%d", fd, no, rc);
    return rc;
}

/* ---- writes to data.mdb */

/* A call on a descriptor: its open number (0: not data.mdb, so nothing is
 * recorded) and, if traced, the counter and clock on entry. */
struct span {
    int no;
    uint64_t b, tb;
};

static struct span span_begin(int fd)
{
    struct span s = {open_no(fd), 0, 0};
    if (s.no) {
        s.b = tick();
        s.tb = now_ns();
    }
    return s;
}

static size_t iov_len(const struct iovec *iov, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    return len;
}

/* Records the write that span `s` began, if traced: the bytes (iov, niov)
 * given at `off`, `ret` its result. */
static void write_done(const struct span *s, const char *call, int fd, long long off,
                       ssize_t ret, const struct iovec *iov, int niov)
{
    if (!s->no)
        return;
    uint64_t e = tick(), te = now_ns();
    size_t len = iov_len(iov, niov);
    record(s->b, e, s->tb, te, iov, niov, ret > 0 ? (size_t)ret : 0,
           "write fd=%d file=%d call=%s off=%lld len=%zu ret=%zd", fd, s->no, call, off, len, ret);
}

/* write_done for a call given one buffer. */
static void buf_done(const struct span *s, const char *call, int fd, long long off,
                     const void *buf, size_t n, ssize_t ret)
{
    struct iovec v = {(void *)buf, n};
    write_done(s, call, fd, off, ret, &v, 1);
}

/* The file offset a write without one starts at; asked only if traced. */
static long long position(const struct span *s, int fd)
{
    return s->no ? (long long)syscall(SYS_lseek, fd, 0, SEEK_CUR) : 0;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    REAL(pwrite, pwrite_fn);
    struct span s = span_begin(fd);
    ssize_t r = real_pwrite(fd, buf, n, off);
    buf_done(&s, "pwrite", fd, (long long)off, buf, n, r);
    return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    REAL(pwrite64, pwrite_fn);
    struct span s = span_begin(fd);
    ssize_t r = real_pwrite64(fd, buf, n, off);
    buf_done(&s, "pwrite64", fd, (long long)off, buf, n, r);
    return r;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    REAL(write, write_fn);
    struct span s = span_begin(fd);
    long long off = position(&s, fd);
    ssize_t r = real_write(fd, buf, n);
    buf_done(&s, "write", fd, off, buf, n, r);
    return r;
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    REAL(writev, writev_fn);
    struct span s = span_begin(fd);
    long long off = position(&s, fd);
    ssize_t r = real_writev(fd, iov, n);
    write_done(&s, "writev", fd, off, r, iov, n);
    return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    REAL(pwritev, pwritev_fn);
    struct span s = span_begin(fd);
    ssize_t r = real_pwritev(fd, iov, n, off);
    write_done(&s, "pwritev", fd, (long long)off, r, iov, n);
    return r;
}

/* ---- syncs */

static int sync_fd(const char *call, int fd, int (*real)(int))
{
    int no = open_no(fd);
    if (!no)
        return real(fd);
    uint64_t b = tick(), tb = now_ns();
    int skipped = skip_sync();
    int rc = skipped ? 0 : real(fd);
    record(b, tick(), tb, now_ns(), NULL, 0, 0, "sync fd=%d file=%d call=%s ret=%d skipped=%d",
           fd, no, call, rc, skipped);
    return rc;
}

int fdatasync(int fd)
{
    REAL(fdatasync, fd_fn);
    return sync_fd("fdatasync", fd, real_fdatasync);
}

int fsync(int fd)
{
    REAL(fsync, fd_fn);
    return sync_fd("fsync", fd, real_fsync);
}

int sync_file_range(int fd, off_t off, off_t n, unsigned flags)
{
    REAL(sync_file_range, sfr_fn);
    int no = open_no(fd);
    if (!no)
        return real_sync_file_range(fd, off, n, flags);
    uint64_t b = tick(), tb = now_ns();
    int skipped = skip_sync();
    int rc = skipped ? 0 : real_sync_file_range(fd, off, n, flags);
    record(b, tick(), tb, now_ns(), NULL, 0, 0,
           "sync fd=%d file=%d call=sync_file_range ret=%d skipped=%d off=%lld len=%lld "
           "flags=0x%x",
           fd, no, rc, skipped, (long long)off, (long long)n, flags);
    return rc;
}

int msync(void *addr, size_t n, int flags)
{
    REAL(msync, msync_fn);
    uint64_t b = tick(), tb = now_ns();
    int skipped = skip_sync();
    int rc = skipped ? 0 : real_msync(addr, n, flags);
    record(b, tick(), tb, now_ns(), NULL, 0, 0,
           "msync addr=%p len=%zu flags=0x%x ret=%d skipped=%d", addr, n, (unsigned)flags, rc,
           skipped);
    return rc;
}

/* ---- acknowledgements handed to ZeroMQ */

struct mp {
    const unsigned char *p;
    size_t n, off;
};

/* The next `len` bytes as a big-endian number. */
static int mp_be(struct mp *m, size_t len, uint64_t *out)
{
    if (m->n - m->off < len)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++)
        v = v << 8 | m->p[m->off++];
    *out = v;
    return 0;
}

/* A MessagePack integer (positive fixint, uint 8-64, int 8-64 >= 0). */
static int mp_uint(struct mp *m, uint64_t *out)
{
    if (m->off >= m->n)
        return -1;
    unsigned char c = m->p[m->off++];
    size_t len;
    if (c < 0x80) {
        *out = c;
        return 0;
    }
    if (c >= 0xcc && c <= 0xcf)
        len = (size_t)1 << (c - 0xcc);
    else if (c >= 0xd0 && c <= 0xd3)
        len = (size_t)1 << (c - 0xd0);
    else
        return -1;
    return mp_be(m, len, out);
}

/* An array header: its element count. */
static int mp_array(struct mp *m, uint64_t *count)
{
    if (m->off >= m->n)
        return -1;
    unsigned char c = m->p[m->off++];
    size_t len;
    if ((c & 0xf0) == 0x90) {
        *count = c & 0x0f;
        return 0;
    }
    if (c == 0xdc)
        len = 2;
    else if (c == 0xdd)
        len = 4;
    else
        return -1;
    return mp_be(m, len, count);
}

static int mp_lit(struct mp *m, const char *s)
{
    size_t len = strlen(s);
    if (m->n - m->off < 1 + len || m->p[m->off] != (0xa0 | len) ||
        memcmp(m->p + m->off + 1, s, len) != 0)
        return -1;
    m->off += 1 + len;
    return 0;
}

/* Records the frame if it is an "ack" or "acks" header. */
static void maybe_ack(const char *call, const void *buf, size_t n, uint64_t b, uint64_t tb)
{
    static const unsigned char ack[] = {0x95, 0x01, 0xa3, 'a', 'c', 'k'};
    static const unsigned char acks[] = {0x95, 0x01, 0xa4, 'a', 'c', 'k', 's'};
    int is_ack = n >= sizeof ack && memcmp(buf, ack, sizeof ack) == 0;
    int is_acks = n >= sizeof acks && memcmp(buf, acks, sizeof acks) == 0;
    if (!is_ack && !is_acks)
        return; /* the common case: any other frame */
    char seqs[6000];
    size_t used = 0;
    uint64_t count, corr, seq, x;
    struct mp m = {buf, n, 1};
    int ok = mp_uint(&m, &x) == 0 && x == 1;
    const char *form = is_acks ? "acks" : "ack";
    ok = ok && mp_lit(&m, form) == 0 && mp_uint(&m, &corr) == 0;
    seqs[0] = '\0';
    if (ok && form[3] == '\0') {
        ok = mp_uint(&m, &seq) == 0;
        if (ok)
            used = (size_t)snprintf(seqs, sizeof seqs, "%llu", (unsigned long long)seq);
    } else if (ok) {
        ok = mp_uint(&m, &x) == 0 && mp_array(&m, &count) == 0 && count % 2 == 0;
        for (uint64_t i = 0; ok && i < count / 2; i++) {
            ok = mp_uint(&m, &corr) == 0 && mp_uint(&m, &seq) == 0;
            if (ok && used + 24 < sizeof seqs)
                used += (size_t)snprintf(seqs + used, sizeof seqs - used, "%s%llu",
                                         used ? "," : "", (unsigned long long)seq);
            else if (ok)
                ok = 0; /* more than the line holds: say so, not a short list */
        }
    }
    record(b, tick(), tb, now_ns(), NULL, 0, 0, "ack call=%s form=%s ok=%d seqs=%s", call, form,
           ok, seqs[0] ? seqs : "-");
}

int zmq_send(void *sock, const void *buf, size_t n, int flags)
{
    REAL(zmq_send, zsend_fn);
    maybe_ack("zmq_send", buf, n, tick(), now_ns());
    return real_zmq_send(sock, buf, n, flags);
}

static void msg_ack(const char *call, void *msg)
{
    REAL(zmq_msg_data, zdata_fn);
    REAL(zmq_msg_size, zsize_fn);
    uint64_t b = tick(), tb = now_ns();
    maybe_ack(call, real_zmq_msg_data(msg), real_zmq_msg_size(msg), b, tb);
}

int zmq_msg_send(void *msg, void *sock, int flags)
{
    REAL(zmq_msg_send, zmsgsend_fn);
    msg_ack("zmq_msg_send", msg);
    return real_zmq_msg_send(msg, sock, flags);
}

int zmq_sendmsg(void *sock, void *msg, int flags)
{
    REAL(zmq_sendmsg, zmsgsend_fn);
    msg_ack("zmq_sendmsg", msg);
    return real_zmq_sendmsg(sock, msg, flags);
}

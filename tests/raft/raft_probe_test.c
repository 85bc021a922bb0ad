/* The Raft engine renkei builds its replicated group on (libraft 0.22 from
 * Debian's bookworm-backports, deploy/install-deps.sh) as it is installed
 * here: three nodes on one libuv loop, each with its own data directory and
 * a TCP transport on loopback, bootstrap one configuration, elect a leader
 * with pre-vote on and the timeouts the group will use, and commit one
 * entry carrying a batch of event bytes, which every node's state machine
 * applies with the same bytes at the same index. Then the leader's node is
 * closed and the two others elect a new leader that commits a second entry.
 *
 * Not a test of renkei's cluster mode (there is none yet): it fails when
 * the engine is missing, is the 0.15 of bookworm main, or cannot elect and
 * commit on this machine, which is what the group issue depends on. */
#include "rk_test.h"

#include <raft.h>
#include <raft/uv.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define NODES 3
#define ELECTION_MS 300
#define HEARTBEAT_MS 30

struct node {
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm fsm;
    char dir[64], address[32];
    int open;                   /* started and not yet closing */
    unsigned applied;           /* entries applied */
    raft_index last_index;
    char last[64];              /* the last entry's bytes, as text */
};

static struct node nodes[NODES];
static uv_loop_t loop;

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct node *n = fsm->data;
    n->applied++;
    n->last_index = n->raft.last_applied + 1;
    snprintf(n->last, sizeof n->last, "%.*s", (int)buf->len, (const char *)buf->base); /* to the pad */
    *result = NULL;
    return 0;
}

static int node_open(struct node *n, unsigned i, unsigned port_base)
{
    snprintf(n->dir, sizeof n->dir, "/tmp/rk-raft-probe-XXXXXX");
    if (!mkdtemp(n->dir))
        return -1;
    snprintf(n->address, sizeof n->address, "127.0.0.1:%u", port_base + i);
    n->fsm = (struct raft_fsm){.version = 1, .data = n, .apply = fsm_apply};
    int rc;
    n->transport.version = 1;
    if ((rc = raft_uv_tcp_init(&n->transport, &loop)) != 0 ||
        (rc = raft_uv_init(&n->io, &loop, n->dir, &n->transport)) != 0) {
        fprintf(stderr, "raft_uv: %s\n", raft_strerror(rc));
        return -1;
    }
    raft_uv_set_segment_size(&n->io, 8u << 20); /* 8 MiB: larger ones ran out of room */
    if ((rc = raft_init(&n->raft, &n->io, &n->fsm, i + 1, n->address)) != 0) {
        fprintf(stderr, "raft_init: %s\n", raft_strerror(rc));
        return -1;
    }
    raft_set_election_timeout(&n->raft, ELECTION_MS);
    raft_set_heartbeat_timeout(&n->raft, HEARTBEAT_MS);
    raft_set_pre_vote(&n->raft, true);
    n->open = 1;
    return 0;
}

static void closed(struct raft *r)
{
    struct node *n = (struct node *)((char *)r - offsetof(struct node, raft));
    raft_uv_close(&n->io);
    raft_uv_tcp_close(&n->transport);
}

static int leader(void)
{
    for (int i = 0; i < NODES; i++)
        if (nodes[i].open && raft_state(&nodes[i].raft) == RAFT_LEADER)
            return i;
    return -1;
}

/* Runs the loop until `done` holds or `ms` have passed. */
static int run_until(int (*done)(void), int ms)
{
    for (int t = 0; t < ms && !done(); t += 10) {
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_sleep(10);
    }
    return done();
}

static int has_leader(void)
{
    return leader() >= 0;
}

static unsigned want_applied;
static int all_applied(void)
{
    for (int i = 0; i < NODES; i++)
        if (nodes[i].open && nodes[i].applied < want_applied)
            return 0;
    return 1;
}

static int applied_status = 1;
static void applied_cb(struct raft_apply *req, int status, void *result)
{
    (void)result;
    applied_status = status;
    free(req);
}

static int propose(int at, const char *text)
{
    /* libraft takes an entry's length only in multiples of 8 bytes: the
     * group's entries will carry their own length and be padded so. */
    size_t len = (strlen(text) + 7) / 8 * 8;
    struct raft_buffer buf = {.len = len, .base = raft_malloc(len)};
    struct raft_apply *req = malloc(sizeof *req);
    if (!buf.base || !req)
        abort();
    memset(buf.base, 0, len);
    memcpy(buf.base, text, strlen(text));
    applied_status = 1;
    int rc = raft_apply(&nodes[at].raft, req, &buf, 1, applied_cb);
    if (rc)
        fprintf(stderr, "raft_apply on node %d: %s\n", at + 1, raft_errmsg(&nodes[at].raft));
    return rc;
}

static void check_same(unsigned entries, const char *text)
{
    for (int i = 0; i < NODES; i++) {
        if (!nodes[i].open)
            continue;
        RK_CHECK(nodes[i].applied == entries);
        RK_CHECK_STR(nodes[i].last, text);
        RK_CHECK(nodes[i].last_index == nodes[leader()].last_index);
    }
}

static void test_elect_commit_failover(void)
{
    struct raft_configuration conf;
    unsigned port_base = 20000 + (unsigned)(getpid() % 20000);
    RK_CHECK(uv_loop_init(&loop) == 0);
    raft_configuration_init(&conf);
    for (unsigned i = 0; i < NODES; i++) {
        RK_CHECK(node_open(&nodes[i], i, port_base) == 0);
        RK_CHECK(raft_configuration_add(&conf, i + 1, nodes[i].address, RAFT_VOTER) == 0);
    }
    for (int i = 0; i < NODES; i++) {
        RK_CHECK(raft_bootstrap(&nodes[i].raft, &conf) == 0);
        RK_CHECK(raft_start(&nodes[i].raft) == 0);
    }
    raft_configuration_close(&conf);

    RK_CHECK(run_until(has_leader, 10000));
    int first = leader();
    fprintf(stderr, "leader: node %d\n", first + 1);
    RK_CHECK(first >= 0 && propose(first, "batch 1: seq 1..256") == 0);
    want_applied = 1;
    RK_CHECK(run_until(all_applied, 10000) && applied_status == 0);
    check_same(1, "batch 1: seq 1..256");

    /* The leader's node goes; the two left elect one and commit. */
    nodes[first].open = 0;
    raft_close(&nodes[first].raft, closed);
    uint64_t t0 = uv_hrtime();
    RK_CHECK(run_until(has_leader, 10000) && leader() != first);
    fprintf(stderr, "failover: node %d leads %.0f ms after node %d closed\n", leader() + 1,
            (double)(uv_hrtime() - t0) / 1e6, first + 1);
    RK_CHECK(propose(leader(), "batch 2: seq 257..300") == 0);
    want_applied = 2;
    RK_CHECK(run_until(all_applied, 10000) && applied_status == 0);
    check_same(2, "batch 2: seq 257..300");

    for (int i = 0; i < NODES; i++)
        if (nodes[i].open) {
            nodes[i].open = 0;
            raft_close(&nodes[i].raft, closed);
        }
    while (uv_run(&loop, UV_RUN_NOWAIT))
        ;
    uv_loop_close(&loop);
    for (int i = 0; i < NODES; i++) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", nodes[i].dir);
        RK_CHECK(system(cmd) == 0);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* libraft writes sockets with writev */
    RK_RUN(test_elect_commit_failover);
    return rk_test_result();
}

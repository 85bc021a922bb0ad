"""Signals while a commit waits for the disk.

With durability full a group commit syncs twice, and the signal handlers
do not restart system calls: a SIGHUP (systemctl reload) or a second
SIGTERM may land while the broker is inside a commit, or inside the
commit an idempotent retry forces (its original may be in the batch). The
broker must go on: the reload happens, the retry is answered as a
duplicate, and a stop still acknowledges what was admitted and exits 0.
(A writer thread for the commit, tried and reverted, aborted here.)

Every sync is made slow (a preloaded shim, slowsync.c) so the commit is
surely still running when the signal comes."""
import json
import os
import signal
import time

import msgpack
import zmq

import harness

SLOW_MS = 1500


def start_slow(b):
    harness.start_preloaded(b, "rk_slowsync.so", {"RK_SLOW_SYNC_MS": str(SLOW_MS)})


def syncing(b):
    """True while a thread of the broker sleeps in the shim's nanosleep,
    that is, inside a sync of a commit (the broker sleeps nowhere else
    but in an ACL rebind, which these tests do not do). The kernel names
    the function a blocked thread waits in in /proc/PID/task/TID/wchan."""
    task = f"/proc/{b.proc.pid}/task"
    try:
        tids = os.listdir(task)
    except FileNotFoundError:
        return False
    for tid in tids:
        try:
            with open(f"{task}/{tid}/wchan") as f:
                if "nanosleep" in f.read():
                    return True
        except (FileNotFoundError, ProcessLookupError):
            pass
    return False


def wait_syncing(b, what, alive=True):
    """Until the broker is in a sync (or has exited: with `alive`, a failure)."""
    harness.wait_for(lambda: syncing(b) or b.proc.poll() is not None, what, timeout=60,
                     interval=0.01)
    if alive:
        assert b.proc.poll() is None, f"broker exited with {b.proc.returncode}:\n{b.log()[-2000:]}"


def replies(sock, n, timeout_ms):
    got = []
    deadline = time.monotonic() + timeout_ms / 1000
    while len(got) < n and time.monotonic() < deadline:
        if sock.poll(100):
            got.append(msgpack.unpackb(sock.recv_multipart()[0]))
    return got


def event(tag):
    ev = json.loads(harness.valid_scenario_lines(1)[0])
    return msgpack.packb(harness.renamed(ev, tag))


def reload_during_retry(b, ctx):
    start_slow(b)
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(b.ingest)
    body = event("sig-retry")
    s.send_multipart([msgpack.packb([1, "pub", 1, "prod-sig", 1]), body])
    wait_syncing(b, "the first commit to be in its slow sync")
    s.send_multipart([msgpack.packb([1, "pub", 2, "prod-sig", 1]), body])
    # Kept: nothing outside the broker shows the retry reaching its socket;
    # this lets it arrive while the commit (2 syncs of SLOW_MS) still runs.
    time.sleep(0.3)
    inside = syncing(b)
    mark = b.log_mark()
    b.proc.send_signal(signal.SIGHUP)
    got = replies(s, 2, 4 * SLOW_MS + 10000)
    assert b.proc.poll() is None, f"broker exited with {b.proc.returncode}:\n{b.log()[-2000:]}"
    assert [r[:4] for r in got] == [[1, "ack", 1, 1], [1, "ack", 2, 1]], got
    b.wait_log("reload", after=mark)  # the reload is handled
    b.stop()
    print(f"SIGHUP sent {'inside' if inside else 'outside'} a commit's sync")


def stop_during_commit(b, ctx):
    start_slow(b)
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(b.ingest)
    s.send_multipart([msgpack.packb([1, "pub", 7]), event("sig-stop-1")])
    wait_syncing(b, "the first commit to be in its slow sync")
    s.send_multipart([msgpack.packb([1, "pub", 8]), event("sig-stop-2")])
    # Kept: nothing outside the broker shows pub 8 reaching its socket;
    # this lets it queue behind the commit (2 syncs of SLOW_MS) still running.
    time.sleep(0.1)
    b.proc.send_signal(signal.SIGTERM)
    # The queued publish is being stored (or the first commit still runs).
    wait_syncing(b, "a commit in its slow sync for the second stop", alive=False)
    b.proc.send_signal(signal.SIGTERM)   # an impatient second stop
    rc = b.proc.wait(4 * SLOW_MS / 1000 + 20)
    got = replies(s, 2, 2000)
    assert rc == 0, f"broker exited with {rc}:\n{b.log()[-2000:]}"
    assert sorted(r[2] for r in got) == [7, 8] and all(r[1] == "ack" for r in got), got
    b.proc = None


def test(b):
    ctx = zmq.Context()
    other = harness.Broker()
    try:
        reload_during_retry(b, ctx)
        stop_during_commit(other, ctx)
    finally:
        other.cleanup()
        ctx.destroy(linger=0)


harness.run(test)

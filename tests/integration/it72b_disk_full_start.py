"""A broker killed on a full disk starts again on it, read-only.

The data directory sits on a small tmpfs. Publishing fills it; then kill -9
and start on the still-full disk. The broker must come up (before, it
stopped at `log_open_failed ... No space left on device`, so nothing could
be read until space was freed): replay, snapshot, state and the live feed
work; a publish gets E_STORAGE saying the disk is full; /healthz answers
503 with that reason; the storage errors are summed in the log, not one
line per batch. Once the filesystem grows, the next publish is stored with
the next sequence number, /healthz says ok, and after another kill the
chain verifies.

Mounting needs root; a non-root run re-executes itself in a user and mount
namespace (unshare -rm), where it is root for its own mounts only; where
neither works, the test says so and is skipped (exit 77 is not used by
ctest here, so it exits 0 with the reason on stdout)."""
import json
import os

import harness

SIZE_MIB = 12


def test(b):
    harness.on_small_tmpfs(b, SIZE_MIB, run, skip="it72b")


def fill(b, base):
    acked, n = [], 0
    while True:
        assert n < 20000, f"{SIZE_MIB} MiB never filled up after {n} events"
        results = harness.publish_big_requests(b, base, n, 500)
        n += 500
        acked += [r for r in results if r["ok"]]
        if any(not r["ok"] for r in results):
            return acked, n


def fill_up(path):
    """Writes a file until the filesystem has no byte left; returns its size."""
    size = 0
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 16, 4096, 512, 1):
            while True:
                try:
                    size += f.write(b"\0" * chunk)
                except OSError:
                    break
    return size


def run(b, fs):
    port = harness.free_port()
    b.data = os.path.join(fs, "data")
    b.extra = ["--http", str(port)]
    b.start()
    base = json.loads(harness.valid_scenario_lines(1)[0])
    acked, n = fill(b, base)
    b.kill()
    # Whatever room the refused writes left goes too: the disk is full to
    # the last block when the broker starts.
    filler = os.path.join(fs, "filler")
    filled = fill_up(filler)

    # On the full disk: it starts. When the open itself needed room (the
    # index's trailing part after the kill) it says it is read-only.
    b.start()
    read_only = b.records("log_read_only")
    assert all("full" in r["why"] and r["error"] == "No space left on device"
               for r in read_only), read_only
    assert b.ready["last_seq"] == str(acked[-1]["seq"]), (b.ready, acked[-1])
    stored, _ = b.replay_all()
    assert [e["seq"] for e in stored] == [r["seq"] for r in acked]
    snap, _ = b.replay_all("--snapshot")
    assert snap[-1]["snapshot"]["seq"] == acked[-1]["seq"], snap[-1]
    if read_only:
        status, text = harness.http_get(port, "/healthz")
        assert status == 503 and "full" in text, (status, text)

    sub = b.subscriber("--idle", "6000", "--family", "aid")
    mark = b.log_mark()
    # A few may still fit in pages LMDB had freed, as in it72; then refused.
    tried = harness.publish_big_requests(b, base, n, 300)
    n += 300
    refused = [r for r in tried if not r["ok"]]
    early = [r for r in tried if r["ok"]]
    assert refused and all(r["code"] == "E_STORAGE" and "disk" in r["error"] and
                           "full" in r["error"] for r in refused), tried[:3]
    assert tried[:len(early)] == early, "stored after a refusal on a disk still full"
    status, text = harness.http_get(port, "/healthz")
    assert status == 503 and "full" in text, (status, text)
    failed = b.records("append_failed", after=mark)
    # The failed writes are summed: a handful of lines, not one per batch.
    assert 1 <= len(failed) <= 3, failed
    assert all(r["why"] == "No space left on device" for r in failed), failed
    assert b.proc.poll() is None

    # Space again (the filler alone may be a few blocks): publishing
    # resumes at the next sequence number.
    os.unlink(filler)
    harness.mount_tmpfs(fs, SIZE_MIB * 4, remount=True, quiet=True)
    later = harness.wait_for(lambda: harness.publish_big_requests(b, base, n, 1),
                             "a publish to be stored after space came back",
                             until=lambda rs: rs[0]["ok"])
    acked += early
    assert later[0]["seq"] == acked[-1]["seq"] + 1, later
    more = harness.publish_big_requests(b, base, n + 1, 20)
    assert [r["seq"] for r in more] == list(range(later[0]["seq"] + 1, later[0]["seq"] + 21)), more
    b.wait_log("log_writable", after=mark)
    assert harness.http_get(port, "/healthz")[0] == 200, harness.http_get(port, "/healthz")
    live = sub.wait()
    assert [e["seq"] for e in live] == [r["seq"] for r in early + later + more], live[:3]

    b.kill()
    b.start()
    assert not b.records("log_read_only"), b.log()
    stored, _ = b.replay_all()
    assert [e["seq"] for e in stored] == [r["seq"] for r in acked + later + more]
    rc, verdict, out = harness.verify_log(b.data)
    assert rc == 0 and verdict["ok"] and verdict["records"] == len(stored), out
    print(f"full after {len(acked) - len(early)} events ({SIZE_MIB} MiB, {filled} bytes of "
          f"filler after kill -9); started {'read-only' if read_only else 'writable'}; "
          f"{len(early)} more fitted, {len(refused)} refused with {len(failed)} append_failed "
          f"line(s); {1 + len(more)} stored once space came back")


harness.in_private_mount_namespace("it72b", skip=True)
harness.run(test)

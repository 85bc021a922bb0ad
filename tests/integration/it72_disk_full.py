"""A disk that is truly full: the data directory sits on a small tmpfs.

Publishing fills it until the broker answers E_STORAGE naming the full disk.
Then: every acknowledged event is stored exactly once, reads (replay,
snapshot) and the live feed go on, and further publishes are refused
cleanly. Once the filesystem grows, publishing resumes with no gap in the
sequence numbers; after a kill -9 the chain verifies.

Mounting needs root; a non-root run re-executes itself in a user and mount
namespace (unshare -rm), where it is root for its own mounts only."""
import json
import os

import harness

SIZE_MIB = 12


def test(b):
    harness.on_small_tmpfs(b, SIZE_MIB, run)


def run(b, fs):
    b.data = os.path.join(fs, "data")
    b.start()
    base = json.loads(harness.valid_scenario_lines(1)[0])
    sub = b.subscriber("--idle", "4000", "--family", "aid")

    acked, refused, n = [], [], 0
    while not refused:
        assert n < 20000, f"{SIZE_MIB} MiB never filled up after {n} events"
        for r in harness.publish_big_requests(b, base, n, 500):
            (acked if r["ok"] else refused).append(r)
        n += 500
    assert all(r["code"] == "E_STORAGE" and "disk" in r["error"] and "full" in r["error"]
               for r in refused), refused[:3]
    assert any("No space left on device" in r.get("why", "")
               for r in b.records("append_failed", level="error")), b.log()[-2000:]
    assert b.proc.poll() is None, "broker died on a full disk"

    # Nothing acknowledged is lost or doubled; reads go on.
    stored, _ = b.replay_all()
    assert [e["seq"] for e in stored] == [r["seq"] for r in acked]
    assert [e["event"]["event_id"] for e in stored] == [r["event_id"] for r in acked]
    snap, _ = b.replay_all("--snapshot")
    assert snap[-1]["snapshot"]["seq"] == acked[-1]["seq"], snap[-1]

    # Still full: refused again, cleanly. A few may still fit: a commit that
    # failed part way can leave the file longer than the log, and LMDB
    # writes into that length without asking the disk for more. What is
    # acknowledged is stored like the rest.
    again = harness.publish_big_requests(b, base, n, 50)
    assert any(not r["ok"] for r in again), "the disk was no longer full"
    assert all(r["ok"] or r["code"] == "E_STORAGE" for r in again), again[:3]
    acked += [r for r in again if r["ok"]]
    stored_again = {r["event_id"] for r in again if r["ok"]}

    # More space: publishing resumes where the sequence left off. The first
    # 50 are the requests just sent: those refused left no trace in the
    # lifecycle state, so they are new requests still (no
    # E_DUPLICATE_REQUEST); those stored are now duplicates.
    harness.mount_tmpfs(fs, SIZE_MIB * 4, remount=True)
    later = harness.publish_big_requests(b, base, n, 200)
    dups = [r for r in later if r["event_id"] in stored_again]
    assert all(not r["ok"] and r["code"] == "E_DUPLICATE_REQUEST" for r in dups), dups[:3]
    later = [r for r in later if r["event_id"] not in stored_again]
    assert all(r["ok"] for r in later), [r for r in later if not r["ok"]][:3]
    first = acked[-1]["seq"] + 1
    assert [r["seq"] for r in later] == list(range(first, first + len(later)))

    live = sub.wait()
    assert [e["seq"] for e in live] == [r["seq"] for r in acked + later], \
        "the live subscriber missed or repeated events around the full disk"

    b.kill()
    b.start()
    stored, _ = b.replay_all()
    assert [e["seq"] for e in stored] == [r["seq"] for r in acked + later]
    rc, verdict, out = harness.verify_log(b.data)
    assert rc == 0 and verdict["ok"] and verdict["records"] == len(stored), out
    print(f"disk full after {len(acked)} events ({SIZE_MIB} MiB); "
          f"{len(refused) + len(again) - len(stored_again)} refused; {len(later)} more after "
          f"growing the disk")


harness.in_private_mount_namespace("it72")
harness.run(test)

"""Retention by age and by size, for deployments that archive elsewhere.

By age: events older than --retain-age are deleted by the running broker;
what is left is the newest contiguous part of the log, it still verifies
(from the last deleted record's hash), and publishing goes on after a
restart with the next sequence number. By size: the log is brought under
--retain-size, oldest first. The default keeps everything: covered by every
other test, whose logs are read back whole."""
import json
import subprocess
import time

import harness


def events(base, tag, n, note=""):
    for i in range(n):
        ev = dict(base)
        ev["event_id"] = f"{tag}-{i}"
        ev["request_id"] = f"REQ-{tag}-{i}"
        if note:
            ev["note"] = note
        yield json.dumps(ev, ensure_ascii=False)


def publish(b, base, tag, n, note=""):
    _, results, _ = b.agent("send", stdin="\n".join(events(base, tag, n, note)) + "\n", check_rc=0)
    return [r["seq"] for r in results]


def verify(b):
    p = subprocess.run([harness.tool("renkei-replay"), "--verify", "--data-dir", b.data],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)


def first_seq(b):
    out, _ = b.replay_all()
    return out[0]["seq"] if out else 0


def by_age(b, base):
    b.extra = ["--durability", "os", "--retain-age", "5s"]
    b.start()
    old = publish(b, base, "old", 100)
    time.sleep(5.5)  # kept: outliving --retain-age 5s is the test
    new = publish(b, base, "new", 100)
    harness.wait_for(lambda: first_seq(b), "the old events to be deleted", interval=0.1,
                     until=lambda first: first == new[0])
    pruned = b.wait_log("pruned")
    assert int(pruned["records"]) >= 1 and int(pruned["total"]) >= int(pruned["records"]), pruned
    stored, _ = b.replay_all()
    assert [e["seq"] for e in stored] == new, (stored[:1], new[:1])
    verdict = verify(b)
    assert verdict["ok"] and verdict["first_seq"] == new[0] and verdict["records"] == len(new), verdict
    snap, _ = b.replay_all("--snapshot")
    assert all(e["seq"] in new for e in snap[:-1]), "a snapshot still shows deleted events"
    b.stop()
    b.start()
    after = publish(b, base, "after", 5)
    assert after == list(range(new[-1] + 1, new[-1] + 6)), after
    assert old[-1] < new[0]
    b.stop()


def by_size(b, base):
    b.data += "-size"
    b.extra = ["--durability", "os", "--retain-size", "2M"]
    b.start()
    seqs = publish(b, base, "big", 3000, note="y" * 2000)   # about 7 MB of events
    # Passes run every second: wait until one changes nothing.
    def settled():
        before = first_seq(b)
        time.sleep(1.5)  # kept: a pass (every 1 s) that deletes nothing is the condition
        return before > 1 and first_seq(b) == before
    harness.wait_for(settled, "size pruning to settle", timeout=60, interval=0.1)
    stored, _ = b.replay_all()
    kept = [e["seq"] for e in stored]
    assert kept == seqs[len(seqs) - len(kept):], "what is left is not the newest, contiguous part"
    assert 100 < len(kept) < 1500, f"{len(kept)} of 3000 kept under 2M"
    verdict = verify(b)
    assert verdict["ok"] and verdict["records"] == len(kept), verdict
    print(f"retain-size 2M kept {len(kept)} of {len(seqs)} events of ~2.3 KB")


def test(b):
    base = json.loads(harness.valid_scenario_lines(1)[0])
    by_age(b, base)
    by_size(b, base)


harness.run(test)

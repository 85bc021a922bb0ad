"""Capacity: the LMDB map grows by itself; at the configured cap publishes are
refused with E_STORAGE while replay and live reads go on, nothing acknowledged
is lost, and a restart with a larger cap resumes."""
import json
import subprocess

import harness


def test(b):
    b.extra = ["--map-max", "4M", "--durability", "os"]
    b.start()
    assert b.ready["map_size_mib"] == "1", b.ready

    lines = harness.new_request_lines("cap", 16000)  # more than 4 MiB holds
    rc, results, err = b.agent("send", stdin="\n".join(lines) + "\n")
    assert rc == 1, (rc, err[-500:])
    stored = [r for r in results if r["ok"]]
    refused = [r for r in results if not r["ok"]]
    assert stored and refused, (len(stored), len(refused))
    assert all(r["code"] == "E_STORAGE" and "map-max" in r["error"] for r in refused), refused[:3]
    grown = [r["map_size_mib"] for r in b.records("map_grown")]
    assert grown == ["2", "4"], grown

    # Reads go on while full, and hold exactly what was acknowledged.
    events, _ = b.replay_all()
    assert [e["seq"] for e in events] == [r["seq"] for r in stored]
    assert [e["event"]["event_id"] for e in events] == [r["event_id"] for r in stored]

    # A restart with a larger cap resumes where the log ended.
    b.stop()
    b.extra = ["--map-max", "64M", "--durability", "os"]
    b.start()
    rc, more, _ = b.agent("send", stdin="\n".join(harness.new_request_lines("after", 200)) + "\n", check_rc=0)
    assert more[0]["seq"] == len(stored) + 1, more[0]
    p = subprocess.run([harness.tool("renkei-replay"), "--verify", "--data-dir", b.data],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and json.loads(p.stdout)["records"] == len(stored) + len(more), p.stdout


harness.run(test)

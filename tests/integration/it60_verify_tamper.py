"""Tamper evidence: renkei-replay --verify accepts an intact log, prints the
chain head the broker also logs, and names the first record after one byte
of a stored event is flipped in the real LMDB file on disk."""
import json
import os
import re
import subprocess

import harness


def verify(b):
    p = subprocess.run([harness.tool("renkei-replay"), "--verify", "--data-dir", b.data],
                       capture_output=True, text=True, timeout=120)
    harness.check_clean("renkei-replay --verify", p.stderr)
    return p.returncode, json.loads(p.stdout), p.stderr


def test(b):
    b.start()
    lines = harness.valid_scenario_lines(40)
    b.agent("send", stdin="\n".join(lines) + "\n", check_rc=0)

    # Verification runs beside a live broker.
    rc, out, err = verify(b)
    assert rc == 0 and out["ok"] and out["records"] == 40 and out["last_seq"] == 40, (out, err)
    head = out["chain_head"]
    assert re.fullmatch(r"[0-9a-f]{64}", head), head
    assert head in err

    b.stop()
    stopped = b.record("stopped")
    assert stopped["chain_head"] == head, stopped

    # Flip one byte inside record 17's event, in the file itself. LMDB's
    # copy-on-write leaves stale copies of pages in free space, so the event
    # id can occur more than once; flip it everywhere so the live copy is hit.
    target = json.loads(lines[16])["event_id"].encode()
    path = os.path.join(b.data, "data.mdb")
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        hits = [m.start() for m in re.finditer(re.escape(target), data)]
        assert hits, "event id not found in data.mdb"
        for start in hits:
            data[start + len(target) - 1] ^= 0x01
        f.seek(0)
        f.write(data)

    rc, out, err = verify(b)
    assert rc == 1 and out["ok"] is False, (out, err)
    assert out["bad_seq"] == 17 and out["records_good"] == 16, out
    assert "record 17" in err and "altered" in err, err

    # A directory without a log is a clear usage error, not a crash.
    p = subprocess.run([harness.tool("renkei-replay"), "--verify", "--data-dir", b.dir + "/none"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--data-dir" in p.stderr, (p.returncode, p.stderr)

    # The broker still starts on the damaged log (it reports, it does not refuse).
    b.start()


harness.run(test)

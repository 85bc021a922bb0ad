"""Tamper evidence: renkei-replay --verify accepts an intact log, prints the
chain head the broker also logs, and names the first record after one byte
of a stored event is flipped in the real LMDB file on disk."""
import json
import os
import re
import subprocess

import harness


def verify(b, *args):
    p = subprocess.run([harness.tool("renkei-replay"), "--verify", "--data-dir", b.data, *args],
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

    # An auditor's check against a head written down at seq 20: --to names
    # the record, --expect-head the hash; the whole log's head is another.
    rc, at20, err = verify(b, "--to", "20")
    assert rc == 0 and at20["last_seq"] == 20 and at20["records"] == 20, (at20, err)
    assert at20["chain_head"] != head, at20
    rc, out, err = verify(b, "--to", "20", "--expect-head", at20["chain_head"].upper())
    assert rc == 0 and out["ok"], (out, err)
    rc, out, err = verify(b, "--to", "20", "--expect-head", head)
    assert rc == 1 and not out["ok"] and "not the expected" in err, (out, err)
    rc, out, err = verify(b, "--to", "41")
    assert rc == 1 and not out["ok"] and "ends at seq 40, before --to 41" in err, (out, err)

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

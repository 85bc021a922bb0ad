"""A hot backup of a running broker's log, under load, restores and
verifies (the procedure of deploy/README.md: mdb_copy -c while the broker
runs, then renkei-replay --verify on the copy).

Publishers keep going while mdb_copy copies the live LMDB environment (a
consistent read snapshot, so the broker is not paused). The copy's chain
must verify; it must hold at least everything acknowledged before the copy
began, as a gap-free prefix of the live log; and a broker started on the
restored copy continues with the next sequence number."""
import json
import os
import subprocess
import threading

import harness
from harness import Broker


def verify(data_dir):
    p = subprocess.run([harness.tool("renkei-replay"), "--verify", "--data-dir", data_dir],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)


def test(b):
    b.start()
    _, first, _ = b.agent("send", stdin="\n".join(harness.new_request_lines("pre", 10000)) + "\n", check_rc=0)
    acked_before = max(r["seq"] for r in first)

    done = threading.Event()
    during = []

    def load():
        k = 0
        while not done.is_set():
            _, res, _ = b.agent("send", stdin="\n".join(harness.new_request_lines(f"load{k}-", 500)) + "\n",
                                check_rc=0)
            during.extend(res)
            k += 1
    t = threading.Thread(target=load)
    t.start()
    # The copy starts while publishes are being committed.
    harness.wait_for(lambda: during or not t.is_alive(), "the first load batch acknowledged",
                     timeout=120, interval=0.01)
    backup = os.path.join(b.dir, "backup")
    os.mkdir(backup)
    try:
        subprocess.run(["mdb_copy", "-c", b.data, backup], check=True, capture_output=True,
                       timeout=120)
    finally:
        done.set()
        t.join()
    assert during, "no load ran during the copy"

    v = verify(backup)
    assert v["ok"] and v["last_seq"] >= acked_before and v["first_seq"] == 1, v
    live = verify(b.data)
    assert live["last_seq"] > acked_before

    # The restored copy serves, and continues the sequence.
    r = Broker()
    try:
        r.data = backup
        r.start()
        stored, _ = r.replay_all()
        assert [e["seq"] for e in stored] == list(range(1, v["last_seq"] + 1))
        live_events, _ = b.replay_all("--to", str(v["last_seq"]))
        assert [e["event"] for e in stored] == [e["event"] for e in live_events], \
            "the backup is not a prefix of the live log"
        _, res, _ = r.agent("send", stdin=harness.new_request_lines("after", 1)[0] + "\n", check_rc=0)
        assert res[0]["seq"] == v["last_seq"] + 1, res
    finally:
        r.cleanup()
    print(f"backup under load: {v['last_seq']} records (>= {acked_before} acked before), "
          f"{len(during)} published during the copy")


harness.run(test)

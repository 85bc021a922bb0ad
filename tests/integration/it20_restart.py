"""Restart on the same data directory: history kept, sequence continues.
Then a SIGKILL: everything acknowledged before it is still there."""
import json

import harness


def aid_events(start, n):
    lines = harness.valid_scenario_lines(start + n)[start:]
    return "\n".join(lines) + "\n", [json.loads(l)["event_id"] for l in lines]


def test(b):
    b.start()
    text, ids = aid_events(0, 10)
    _, res, _ = b.agent("send", stdin=text, check_rc=0)
    assert [r["seq"] for r in res] == list(range(1, 11))
    b.stop()

    b.start()
    assert b.ready["last_seq"] == "10", (b.ready, b.log())
    stored, _ = b.replay_all()
    assert [e["event"]["event_id"] for e in stored] == ids
    text, more_ids = aid_events(10, 5)
    _, res, _ = b.agent("send", stdin=text, check_rc=0)
    assert [r["seq"] for r in res] == list(range(11, 16)), res

    # An acknowledgement means committed: a kill -9 right after loses nothing.
    text, last_ids = aid_events(15, 20)
    _, res, _ = b.agent("send", stdin=text, check_rc=0)
    assert [r["seq"] for r in res] == list(range(16, 36))
    b.kill()
    b.start()
    assert b.ready["last_seq"] == "35", (b.ready, b.log())
    stored, _ = b.replay_all()
    assert [e["seq"] for e in stored] == list(range(1, 36))
    assert [e["event"]["event_id"] for e in stored] == ids + more_ids + last_ids


harness.run(test)

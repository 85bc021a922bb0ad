"""Topic filters select by family, prefecture and municipality; a subscriber
that starts from seq 1 after the fact gets the history, then the live feed."""
import json

import harness


def test(b):
    b.start()
    lines = harness.valid_scenario_lines(60)
    events = [json.loads(l) for l in lines]
    want_wakayama = [e["event_id"] for e in events if e["municipality"].startswith("30")]
    want_kushimoto_req = [e["event_id"] for e in events
                          if e["municipality"] == "304280" and e["type"] == "aid.request"]
    assert want_wakayama and want_kushimoto_req

    wakayama = b.subscriber("--prefecture", "30", "--count", str(len(want_wakayama)))
    kushimoto = b.subscriber("--type", "aid.request", "--municipality", "304280",
                             "--count", str(len(want_kushimoto_req)))
    kpi_only = b.subscriber("--family", "kpi", "--idle", "1500")
    table = b.subscriber("--prefecture", "30", "--format", "table", "--count",
                         str(len(want_wakayama)))

    half = len(lines) // 2
    b.agent("send", stdin="\n".join(lines[:half]) + "\n", check_rc=0)
    # A late subscriber from seq 1: sees the first half from the log, then live.
    late = b.subscriber("--from", "1", "--count", str(len(lines)))
    b.agent("send", stdin="\n".join(lines[half:]) + "\n", check_rc=0)

    got = wakayama.wait()
    assert [e["event"]["event_id"] for e in got] == want_wakayama
    assert all(e["topic"].split("/")[1] == "30" for e in got)
    assert wakayama.summary() == (len(want_wakayama), 0, 0)

    # The operator's table: a header, then one line per event with the
    # municipality's name and code, the type, and the request's gist.
    out, _ = table.proc.communicate(timeout=60)
    rows = out.splitlines()
    assert rows[0].split()[:3] == ["SEQ", "RECEIVED", "(UTC)"], rows[0]
    assert len(rows) == 1 + len(want_wakayama)
    by_id = {e["event_id"]: e for e in events}
    for row, eid in zip(rows[1:], want_wakayama):
        e = by_id[eid]
        assert f"({e['municipality']})" in row and e["type"] in row, row
        if e["type"] == "aid.request":
            assert e["request_id"] in row and e["resource"] in row and str(e["quantity"]) in row, row
    assert "串本町(304280)" in out, out

    got = kushimoto.wait()
    assert [e["event"]["event_id"] for e in got] == want_kushimoto_req
    assert kpi_only.wait() == []
    got = late.wait()
    assert [e["seq"] for e in got] == list(range(1, len(lines) + 1))
    assert [e["event"]["event_id"] for e in got] == [e["event_id"] for e in events]


harness.run(test)

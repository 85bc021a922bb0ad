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

    half = len(lines) // 2
    b.agent("send", stdin="\n".join(lines[:half]) + "\n", check_rc=0)
    # A late subscriber from seq 1: sees the first half from the log, then live.
    late = b.subscriber("--from", "1", "--count", str(len(lines)))
    b.agent("send", stdin="\n".join(lines[half:]) + "\n", check_rc=0)

    got = wakayama.wait()
    assert [e["event"]["event_id"] for e in got] == want_wakayama
    assert all(e["topic"].split("/")[1] == "30" for e in got)
    got = kushimoto.wait()
    assert [e["event"]["event_id"] for e in got] == want_kushimoto_req
    assert kpi_only.wait() == []
    got = late.wait()
    assert [e["seq"] for e in got] == list(range(1, len(lines) + 1))
    assert [e["event"]["event_id"] for e in got] == [e["event_id"] for e in events]


harness.run(test)

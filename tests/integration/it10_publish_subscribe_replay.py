"""One event's whole path: agent -> broker -> LMDB -> live subscriber -> replay."""
import json
import os

import harness


def test(b):
    b.start()
    sub = b.subscriber("--count", "35")

    # 25 KPI updates from the CSV the demo ships.
    kpi_csv = os.path.join(harness.SOURCE, "deploy", "demo", "kpi_updates_synthetic.csv")
    _, kpi_results, _ = b.agent("kpi", kpi_csv, check_rc=0)
    assert len(kpi_results) == 25 and all(r["ok"] for r in kpi_results), kpi_results

    # 10 disaster-support events as JSON lines on stdin.
    lines = harness.valid_scenario_lines(10)
    _, aid_results, _ = b.agent("send", stdin="\n".join(lines) + "\n", check_rc=0)
    assert [r["event_id"] for r in aid_results] == [json.loads(l)["event_id"] for l in lines]

    # A bad event is refused with the field and the reason, and not stored.
    bad = json.loads(lines[0])
    bad["quantity"] = -5
    bad["event_id"] = "bad-1"
    rc, bad_results, _ = b.agent("event", json.dumps(bad))
    assert rc == 1, bad_results
    assert bad_results[0]["ok"] is False and bad_results[0]["code"] == "E_RANGE", bad_results
    assert "quantity" in bad_results[0]["error"] and "-5" in bad_results[0]["error"], bad_results

    results = kpi_results + aid_results
    seqs = [r["seq"] for r in results]
    assert seqs == list(range(1, 36)), seqs

    live = sub.wait()
    assert [e["seq"] for e in live] == seqs
    assert [e["event"]["event_id"] for e in live] == [r["event_id"] for r in results]
    assert live[0]["topic"] == "kpi.update/28/281000", live[0]
    assert live[25]["topic"] == "aid.request/30/300004", live[25]
    assert live[25]["event"] == json.loads(lines[0]), "stored bytes changed the event"

    stored, summary = b.replay_all()
    assert [e["seq"] for e in stored] == seqs
    assert [e["event"] for e in stored] == [e["event"] for e in live]
    assert [e["recv_time"] for e in stored] == [e["recv_time"] for e in live]
    assert "ends at seq 35" in summary, summary

    part, _ = b.replay_all("--from", "30", "--to", "32")
    assert [e["seq"] for e in part] == [30, 31, 32]


harness.run(test)

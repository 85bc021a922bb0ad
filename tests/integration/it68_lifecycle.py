"""The broker enforces the disaster-support lifecycle.

The shared disaster scenario is fed in its order through renkei-agent, each
run of consecutive events of one municipality by that municipality's own
agent process. Midway the broker is killed with SIGKILL, later stopped
cleanly; each time it restarts it must find every request's state as its
log implies it (the state is kept in LMDB with the records, committed with
them, so a kill loses no part of it). Every event the scenario's oracle accepts must be stored; the six
it refuses must be refused by the broker with the same code, field and
reason; the requests' final states (renkei-replay --as-of, which folds the
stored log) must equal disaster_scenario_expected.json. Then a few events
that break the lifecycle in the ways PROTOCOL.md 4.3 names are refused too,
and their refusals store nothing."""
import itertools
import json

import harness

KILL_AFTER = 100    # scenario lines before the SIGKILL
STOP_AFTER = 150    # ... and before a clean stop


def short(event_type):
    return event_type[4:]  # "aid.offer" -> "offer", as in the broker's messages


def publish_by_municipality(b, numbered):
    """numbered: [(line, event dict)] in scenario order. Returns {line: result}."""
    results = {}
    for muni, group in itertools.groupby(numbered, key=lambda x: x[1]["municipality"]):
        group = list(group)
        text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for _, e in group)
        _, res, _ = b.agent("send", stdin=text)
        assert len(res) == len(group), (muni, res)
        # Results come as replies arrive (a refusal before the batch's acks).
        for (line, e), r in zip(group, sorted(res, key=lambda r: r["line"])):
            assert r["event_id"] == e["event_id"], (r, e)
            results[line] = r
    return results


def test(b):
    expected = harness.scenario_expected()
    events = [(i, json.loads(l)) for i, l in enumerate(harness.scenario_lines(), 1)]
    b.start()
    results = publish_by_municipality(b, events[:KILL_AFTER])
    b.kill()
    b.start()
    # The state lives in LMDB beside the records: a start rebuilds nothing.
    assert b.ready and not b.records("migrated") and not b.records("migrating"), b.log()
    results |= publish_by_municipality(b, events[KILL_AFTER:STOP_AFTER])
    b.stop()
    b.start()
    results |= publish_by_municipality(b, events[STOP_AFTER:])

    refused = {r["event_id"] for r in expected["rejected"]}
    want = {r["event_id"]: (r["code"], f"{short(e['type'])}.{r['field']}: {r['message']}")
            for r in expected["rejected"] for _, e in events if e["event_id"] == r["event_id"]}
    got = {r["event_id"]: (r["code"], r["error"]) for r in results.values() if not r["ok"]}
    assert got == want, (got, want)
    acked = [results[i] for i, e in events if e["event_id"] not in refused]
    assert all(r["ok"] for r in acked)
    assert [r["seq"] for r in acked] == list(range(1, len(acked) + 1)), "gap or reorder"

    # The stored log folds to the expected end state, with nothing to refuse.
    stored, _ = b.replay_all()
    assert len(stored) == expected["summary"]["accepted"] == len(acked), len(stored)
    last = stored[-1]["recv_time"][:-1] + "999Z"
    out, _ = b.replay_all("--as-of", last)
    states = {}
    for line in out[:-1]:
        assert line["kind"] == "request", line
        states[line.pop("request_id")] = line
        line.pop("kind")
    assert states == expected["final_states"], "final request states differ"
    assert out[-1]["as_of"]["refused"] == 0, out[-1]

    # More ways to break it, each against the state the scenario left.
    cancelled = next(k for k, v in expected["final_states"].items() if v["state"] == "cancelled")
    fulfilled = next(k for k, v in expected["final_states"].items() if v["state"] == "fulfilled")
    open_req = next(k for k, v in expected["final_states"].items() if v["state"] == "open")
    req = expected["final_states"][open_req]
    offerer = next(m for m in ("271004", "281000", "261009") if m != req["requester"])
    base = {"sent_at": events[-1][1]["sent_at"]}
    bad = [
        ("E_STATE", {"type": "aid.offer", "municipality": offerer, "request_id": cancelled,
                     "offer_id": "OFR-X-1", "resource": expected["final_states"][cancelled]["resource"],
                     "quantity": 1, "unit": expected["final_states"][cancelled]["unit"]}),
        ("E_UNKNOWN_REQUEST", {"type": "aid.offer", "municipality": offerer,
                               "request_id": "REQ-NOBODY-001", "offer_id": "OFR-X-2",
                               "resource": "water.drinking", "quantity": 1, "unit": "L"}),
        ("E_STATE", {"type": "aid.cancel", "municipality": expected["final_states"][fulfilled]["requester"],
                     "request_id": fulfilled, "reason": "too late"}),
        ("E_UNKNOWN_OFFER", {"type": "aid.withdraw", "municipality": offerer,
                             "request_id": open_req, "offer_id": "OFR-NEVER-MADE",
                             "reason": "never offered"}),
        ("E_SELF_OFFER", {"type": "aid.offer", "municipality": req["requester"],
                          "request_id": open_req, "offer_id": "OFR-X-3",
                          "resource": req["resource"], "quantity": 1, "unit": req["unit"]}),
    ]
    lines = [json.dumps({**base, **e, "event_id": f"{e['municipality']}-bad{i}"}, ensure_ascii=False)
             for i, (_, e) in enumerate(bad)]
    _, res, _ = b.agent("send", stdin="\n".join(lines) + "\n", check_rc=1)
    res.sort(key=lambda r: r["line"])
    assert [r["code"] for r in res] == [code for code, _ in bad], res
    assert all(not r["ok"] and r["error"] for r in res), res
    after, _ = b.replay_all()
    assert len(after) == len(stored), "a refused event was stored"


harness.run(test)

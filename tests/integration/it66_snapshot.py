"""Snapshots: the latest event per entity as of a sequence number.

Every snapshot the broker serves is checked against the same selection made
in Python over the unfiltered log: per entity (kpi_id x municipality x
fiscal year, or request_id) the last event at or before the snapshot's
sequence that the filter selects. Then the handover: while a publisher keeps
publishing, a client loads a snapshot and follows the live feed from the
sequence after it; its state must equal the state of the whole log."""
import copy
import json
import os
import re
import subprocess
import threading
import time

import harness


def entity(e):
    ev = e["event"]
    if ev["type"] == "kpi.update":
        return ("K", ev["kpi_id"], ev["municipality"], ev["fiscal_year"])
    return ("A", ev["request_id"])


def model(events, at, pred=lambda e: True):
    """entity -> seq of its latest selected event with seq <= at."""
    latest = {}
    for e in events:
        if e["seq"] <= at and pred(e):
            latest[entity(e)] = e["seq"]
    return latest


def snapshot(b, *args):
    out, err = b.replay_all("--snapshot", *args)
    assert out and "snapshot" in out[-1], out[-1:]
    trailer = out[-1]["snapshot"]
    events = out[:-1]
    assert trailer["entities"] == len(events), trailer
    got = {}
    for e in events:
        key = entity(e)
        assert key not in got, f"entity {key} twice in one snapshot"
        got[key] = e["seq"]
    return got, trailer["seq"], events


def kpi_events(template, n, round_no):
    """n updates of distinct KPIs, cycling through municipalities."""
    munis = ["281000", "271004", "261009", "304280", "292010"]
    for i in range(n):
        ev = copy.deepcopy(template)
        ev["event_id"] = f"snap-{round_no}-{i}"
        ev["kpi_id"] = f"KPI-SNAP-{i % 1500:04d}"
        ev["municipality"] = munis[i % len(munis)]
        ev["current"]["value"] = round_no * 100000 + i
        yield json.dumps(ev, ensure_ascii=False)


def test(b):
    b.start()
    kpi_csv = os.path.join(harness.SOURCE, "deploy", "demo", "kpi_updates_synthetic.csv")
    b.agent("kpi", kpi_csv, check_rc=0)
    b.agent("send", stdin="\n".join(harness.valid_scenario_lines()) + "\n")
    log, _ = b.replay_all()
    head = log[-1]["seq"]

    # Whole log, then as of earlier sequence numbers.
    for at in (head, 1, 26, 120, head - 3):
        args = ("--at", str(at)) if at != head else ()
        got, seq, _ = snapshot(b, *args)
        assert seq == at, (seq, at)
        assert got == model(log, at), f"snapshot at {at} differs from the log"

    # Filters select events; each entity keeps its latest selected one.
    def ev(e):
        return e["event"]
    cases = [
        (["--prefecture", "30"], lambda e: ev(e)["municipality"].startswith("30")),
        (["--type", "aid.request"], lambda e: ev(e)["type"] == "aid.request"),
        (["--family", "kpi"], lambda e: ev(e)["type"] == "kpi.update"),
        (["--municipality", "304280"], lambda e: ev(e)["municipality"] == "304280"),
        (["--request", "REQ-304280-001"], lambda e: ev(e).get("request_id") == "REQ-304280-001"),
        (["--kpi", "KPI-281000-101"], lambda e: ev(e).get("kpi_id") == "KPI-281000-101"),
    ]
    for args, pred in cases:
        got, seq, events = snapshot(b, *args, "--at", str(head - 10))
        want = model(log, head - 10, pred)
        assert want, f"{args}: the fixture selects nothing; the case proves nothing"
        assert got == want, f"{args}: {sorted(got.items())} != {sorted(want.items())}"
    # The request updated twice: its snapshot by type is version 3.
    got, _, events = snapshot(b, "--type", "aid.request", "--request", "REQ-304280-001")
    assert [e["event"]["version"] for e in events] == [3], events

    # --until: the state as of a receive time.
    # Receive times print in microseconds; ask for the last nanosecond of
    # mid's microsecond, so "at or before" means the same on both sides.
    mid = log[150]
    assert mid["recv_time"].endswith("Z") and len(mid["recv_time"].split(".")[1]) == 7, mid
    got, seq, _ = snapshot(b, "--until", mid["recv_time"][:-1] + "999Z")
    last_by_then = max(e["seq"] for e in log if e["recv_time"] <= mid["recv_time"])
    assert seq == last_by_then, (seq, last_by_then)
    assert got == model(log, seq)

    # Handover under load: more entities than one batch (1,000) holds, and a
    # publisher that keeps going while the snapshot is taken.
    template = next(e["event"] for e in log if e["event"]["type"] == "kpi.update")
    b.agent("send", stdin="\n".join(kpi_events(template, 3000, 1)) + "\n", check_rc=0)
    later = list(kpi_events(template, 3000, 2))
    publisher = threading.Thread(
        target=lambda: b.agent("send", stdin="\n".join(later) + "\n", check_rc=0))
    before = len(log) + 3000
    publisher.start()
    # Take the snapshot once the publisher is under way, so it lands mid-stream.
    while True:
        got, at, snap_events = snapshot(b)
        if at > before or not publisher.is_alive():
            break
    sub = b.subscriber("--from", str(at + 1), "--idle", "5000")
    publisher.join()
    final_log, _ = b.replay_all()
    follow = sub.wait()
    assert [e["seq"] for e in follow] == [e["seq"] for e in final_log if e["seq"] > at], \
        "the live feed after the snapshot missed or repeated events"
    state = {entity(e): e for e in snap_events}
    for e in follow:
        state[entity(e)] = e
    final = {k: e["seq"] for k, e in state.items()}
    assert final == model(final_log, final_log[-1]["seq"]), "snapshot + live != the whole log"
    assert len(final) > 1500, len(final)
    # Whether the snapshot landed mid-stream depends on timing; say which.
    print(f"snapshot at {at} of {final_log[-1]['seq']} (mid-stream: {at < final_log[-1]['seq']}): "
          f"{len(snap_events)} entities; {len(follow)} live events after it")

    # The same in one client: renkei-sub --snapshot, started mid-stream.
    again = list(kpi_events(template, 3000, 3))
    started = threading.Event()

    def publish_slowly():
        for i in range(0, len(again), 100):
            b.agent("send", stdin="\n".join(again[i:i + 100]) + "\n", check_rc=0)
            started.set()
            time.sleep(0.1)  # kept: publishing slowly (the snapshot lands mid-stream) is the test

    publisher = threading.Thread(target=publish_slowly)
    publisher.start()
    started.wait()
    sub = b.subscriber("--snapshot", "--idle", "5000")
    publisher.join()
    lines = sub.wait()
    m = re.search(r"snapshot of (\d+) events, consistent with seq (\d+)", sub.stderr())
    assert m, sub.stderr()
    n_snap, at = int(m.group(1)), int(m.group(2))
    whole, _ = b.replay_all()
    assert lines[:n_snap] and all(e["seq"] <= at for e in lines[:n_snap])
    assert {entity(e): e["seq"] for e in lines[:n_snap]} == model(whole, at)
    assert [e["seq"] for e in lines[n_snap:]] == [e["seq"] for e in whole if e["seq"] > at], \
        "renkei-sub --snapshot: the events after the snapshot missed or repeated some"
    print(f"renkei-sub --snapshot at {at} of {whole[-1]['seq']}: {n_snap} entities, "
          f"{len(lines) - n_snap} events after it")
    assert len(lines) > n_snap, "the snapshot did not land mid-stream: the handover went untested"


harness.run(test)

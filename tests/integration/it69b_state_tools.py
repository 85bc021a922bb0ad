"""Request state through the library and the tools (PROTOCOL.md 3.6): the
broker's fold is the only fold.

The shared disaster scenario is published. Then `renkei-replay --state`
(JSON lines, and the table) must say, request for request, what the
broker says on the wire (a raw "state" client, as it69) and what the
scenario oracle (disaster_scenario_expected.json) says the final states
are, consistent with the log's head; its requester and request filters
select exactly those requests. `renkei-sub --state` prints the same state
first, consistent with seq S, and then every event stored after S, with
no gap and nothing twice, including events stored while it starts. Under
load, states of more than one page (3,000 requests) are each consistent
with their seq (the broker answers every page at the first one's moment,
at_seq); an older moment is the broker's own fold of a request's events,
and E_PRUNED where retention deleted them."""
import json
import os
import signal
import subprocess
import threading
import time

import msgpack
import zmq

import harness

TIMEOUT_MS = 10000


def wire_state(b, flt=None, at=None):
    """Every page of the broker's own answer: {request_id: map}, seqs; with
    `at`, each page asks for the state after event `at` (3.6 at_seq)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(b.replay)
    got, seqs, cursor, corr = {}, [], b"", 0
    while True:
        corr += 1
        tail = [flt or {}, at] if at is not None else ([flt] if flt else [])
        sock.send(msgpack.packb([1, "state", corr, 7, cursor] + tail, use_bin_type=True))
        assert sock.poll(TIMEOUT_MS), "no reply to state"
        frames = sock.recv_multipart()
        head = msgpack.unpackb(frames[0], raw=False)
        assert head[1] == "reqs", head
        seqs.append(head[3])
        cursor = head[4]
        for r in msgpack.unpackb(frames[1], raw=False):
            got[r["request_id"]] = r
        if not cursor:
            break
    sock.close()
    ctx.term()
    return got, seqs, head


def as_expected(r):
    r = dict(r)
    r.pop("request_id")
    r["offers"] = {o.pop("offer_id"): o for o in (dict(x) for x in r["offers"])}
    return r


def is_summary(line):
    return isinstance(line.get("state"), dict)


def replay_state(b, *args):
    lines, err = b.replay_all("--state", *args)
    assert lines and is_summary(lines[-1]), lines[-1:]
    summary = lines[-1]["state"]
    reqs = {}
    for l in lines[:-1]:
        assert l.pop("kind") == "request", l
        assert l.pop("state_seq") == summary["seq"], l
        reqs[l["request_id"]] = l
    assert summary["requests"] == len(reqs), summary
    return reqs, summary, err


def check_replay_state(b, stored, expected):
    wire, seqs, head = wire_state(b)
    assert set(seqs) == {stored}, seqs
    reqs, summary, err = replay_state(b)
    assert summary["seq"] == stored, summary
    assert summary["log_id"] == head[6] == b.ready["log_id"], (summary, head)
    assert reqs == wire, "renkei-replay --state differs from the broker's answer"
    assert {k: as_expected(v) for k, v in reqs.items()} == expected
    want_by = {}
    for v in expected.values():
        want_by[v["state"]] = want_by.get(v["state"], 0) + 1
    assert {k: n for k, n in summary["by_state"].items() if n} == want_by, summary
    assert f"consistent with seq {stored}" in err, err
    # filters: the requester (prefecture, town) and one request
    for opt, val in (("--prefecture", "30"), ("--municipality", "304018")):
        part, _, _ = replay_state(b, opt, val)
        want = {k for k, v in expected.items() if v["requester"].startswith(val)}
        assert want and set(part) == want, (opt, sorted(part), sorted(want))
    one = sorted(expected)[3]
    part, _, _ = replay_state(b, "--request", one)
    assert list(part) == [one] and part[one] == wire[one]
    # the table for people: one line per request, with its state, and a summary
    p = subprocess.run([harness.tool("renkei-replay"), "--replay", b.replay, "--state",
                        "--format", "table"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = p.stdout.splitlines()
    for rid, v in expected.items():
        line = next((r for r in rows if r.startswith(rid + " ")), None)
        assert line and f" {v['state']} " in line, (rid, line)
    assert rows[-1].startswith(f"{len(expected)} requests as of log seq {stored}"), rows[-1]
    # what a state cannot select is refused, naming the option
    p = subprocess.run([harness.tool("renkei-replay"), "--replay", b.replay, "--state",
                        "--kpi", "KPI-1"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--state" in p.stderr, p.stderr
    return wire


def check_sub_state(b, stored, wire):
    """State first, consistent with S, then the events after S: no gap."""
    extra = harness.new_request_lines("itstate", 6)
    path = os.path.join(b.dir, "sub-state.jsonl")
    last = stored + len(extra)
    sub = b.subscriber("--state", stdout_path=path)
    # after its state: these come through the feed (or the replay after S)
    b.agent("send", stdin="\n".join(extra[:3]) + "\n", check_rc=0)
    b.agent("send", stdin="\n".join(extra[3:]) + "\n", check_rc=0)

    def last_seq():
        with open(path) as f:
            lines = f.read().splitlines()
        return json.loads(lines[-1]).get("seq") if lines else None
    harness.wait_for(last_seq, "renkei-sub --state to print the last event",
                     until=lambda v: v == last)
    sub.proc.send_signal(signal.SIGTERM)
    out = sub.wait()
    states = [l for l in out if l.get("kind") == "request"]
    summary = next(l["state"] for l in out if is_summary(l))
    events = [l for l in out if "seq" in l and "event" in l]
    s = summary["seq"]
    assert s == stored, summary
    assert summary["requests"] == len(states), summary
    assert out.index(next(l for l in out if is_summary(l))) == len(states), \
        "the state comes first, then its summary, then events"
    # the state is the broker's: the scenario's requests as the wire says,
    # plus the new ones published before S
    got = {l["request_id"]: {k: v for k, v in l.items() if k not in ("kind", "state_seq")}
           for l in states}
    assert got == wire, "renkei-sub --state differs from the broker's answer"
    # then every event after S, in order, none missing, none twice
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(s + 1, stored + len(extra) + 1)), (s, seqs)
    assert "consistent with seq" in sub.stderr(), sub.stderr()


def check_consistent_under_load(b):
    """More than one page (limit 1000 each), taken while requests are made
    and cancelled: whatever the pages' own seqs, the result is the state
    at its one seq S: a request is there iff its aid.request is at or
    below S, cancelled iff its cancel is. (The test reads those two facts
    from the log; the tool folds nothing.)"""
    base = harness.new_requests("itload", 2600)
    harness.publish_pipelined(b.ingest, [msgpack.packb(e) for e in base])
    cancels = [{"type": "aid.cancel", "event_id": e["event_id"] + "-x",
                "municipality": e["municipality"], "sent_at": e["sent_at"],
                "request_id": e["request_id"], "reason": "not needed any more"}
               for e in base[::3]]
    fresh = harness.new_requests("itlate", 600)
    mixed = [x for pair in zip(cancels, fresh) for x in pair]
    done = threading.Event()
    published = []

    def load():
        try:
            for i in range(0, len(mixed), 4):  # small commits, spread over the states
                if stop.is_set():
                    return
                published.extend(harness.publish_pipelined(
                    b.ingest, [msgpack.packb(e) for e in mixed[i:i + 4]]))
        finally:
            done.set()
    stop = threading.Event()
    t = threading.Thread(target=load)
    t.start()
    runs = []
    try:
        while not done.is_set() or not runs:
            reqs, summary, _ = replay_state(b)
            runs.append((reqs, summary["seq"]))
    finally:
        stop.set()
        t.join()
    made, cancelled = {}, {}
    events, _ = b.replay_all("--family", "aid")
    for e in events:
        ev = e["event"]
        if ev["type"] == "aid.request" and ev["version"] == 1:
            made[ev["request_id"]] = e["seq"]
        elif ev["type"] == "aid.cancel":
            cancelled[ev["request_id"]] = e["seq"]
    assert len(runs) >= 2, "the load ended before a second state"
    for reqs, s in runs:
        want = {rid for rid, seq in made.items() if seq <= s}
        assert set(reqs) == want, (s, len(reqs), len(want))
        for rid, r in reqs.items():
            gone = cancelled.get(rid, s + 1) <= s
            assert (r["state"] == "cancelled") == gone, (rid, r["state"], s)
    # the broker's own answer at an older moment (at_seq, 3.6): a request
    # cancelled at seq c was not cancelled at c - 1, and the pages of a state
    # asked at_seq all say that seq
    rid, c = next((rid, c) for rid, c in cancelled.items() if c > made[rid] + 1)
    for at, want in ((c - 1, "open"), (c, "cancelled")):
        got, seqs, _ = wire_state(b, {"request_id": rid}, at)
        assert seqs == [at] and got[rid]["state"] == want, (rid, at, seqs, got)
    got, seqs, _ = wire_state(b, None, c - 1)
    assert set(seqs) == {c - 1} and len(seqs) > 1, seqs
    assert set(got) == {r for r, seq in made.items() if seq <= c - 1}
    assert got[rid]["state"] == "open"
    seqs = sorted({s for _, s in runs})
    print(f"{len(runs)} states of up to {max(len(r) for r, _ in runs)} requests under load, "
          f"at {len(seqs)} different seqs, each consistent with its own")


def check_pruned_moment():
    """A state at an older moment needs the request's events up to then:
    when retention deleted them, the broker says E_PRUNED, never a state
    missing the request or folded from half its history."""
    b = harness.Broker(extra=["--durability", "os", "--retain-age", "2s"])
    try:
        b.start()
        first = harness.new_requests("itprune", 1)[0]
        assert publish_events(b, [first]) == [1]
        time.sleep(2.5)  # kept: outliving --retain-age 2s is the point
        later = publish_events(b, harness.new_requests("itkeep", 3))
        harness.wait_for(lambda: b.replay_all()[0][0]["seq"], "seq 1 to be deleted",
                         interval=0.1, until=lambda s: s == later[0])
        cancel = {"type": "aid.cancel", "event_id": first["event_id"] + "-x",
                  "municipality": first["municipality"], "sent_at": first["sent_at"],
                  "request_id": first["request_id"], "reason": "not needed any more"}
        (c,) = publish_events(b, [cancel])
        rid = first["request_id"]
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(b.replay)
        for corr, at in ((1, c - 1), (2, 0)):
            sock.send(msgpack.packb([1, "state", corr, 10, b"", {"request_id": rid}, at],
                                    use_bin_type=True))
            assert sock.poll(TIMEOUT_MS)
            frames = sock.recv_multipart()
            head = msgpack.unpackb(frames[0], raw=False)
            if at:
                assert head[1] == "err" and head[3] == "E_PRUNED" and rid in head[4], head
            else:
                assert head[1] == "reqs" and head[3] == c, head
                assert msgpack.unpackb(frames[1], raw=False)[0]["state"] == "cancelled"
        sock.close()
        ctx.term()
        reqs, summary, _ = replay_state(b)
        assert summary["seq"] == c and reqs[rid]["state"] == "cancelled", summary
        b.stop()
    finally:
        b.cleanup()


def publish_events(b, events):
    return harness.publish_pipelined(b.ingest, [msgpack.packb(e) for e in events])


def test(b):
    expected = harness.scenario_expected()["final_states"]
    b.start()
    _, res, _ = b.agent("send", stdin="".join(l + "\n" for l in harness.scenario_lines()))
    stored = sum(1 for r in res if r["ok"])
    assert stored == harness.scenario_expected()["summary"]["accepted"], stored
    wire = check_replay_state(b, stored, expected)
    check_sub_state(b, stored, wire)
    check_consistent_under_load(b)
    check_pruned_moment()


if __name__ == "__main__":
    harness.run(test)

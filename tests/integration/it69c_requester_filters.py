"""Filters by the requester (PROTOCOL.md 3.3, "requester topic"): Wakayama's
disaster centre follows every event about requests made in its prefecture,
the offers and dispatches other prefectures publish for them included, and
nothing else; the same on the live feed, through replay, snapshot, state
and renkei-replay --as-of. The publisher's filters (--prefecture,
--municipality) keep their meaning. Then a subscriber with a requester
filter that stalls: the gap it finds is filled from replay with the same
prefixes, every event once, in order."""
import json
import os
import signal
import subprocess
import time

import msgpack
import zmq

import harness

TIMEOUT_MS = harness.STATE_TIMEOUT_MS


def stamp(ns):
    secs, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def requesters(events):
    """request_id -> requester: the municipality of its first aid.request."""
    out = {}
    for e in events:
        if e["type"] == "aid.request":
            out.setdefault(e["request_id"], e["municipality"])
    return out


def raw_live(b, key):
    """A SUB written from the spec, subscribed to `key`."""
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.connect(b.feed)
    sub.setsockopt(zmq.SUBSCRIBE, key)
    return sub


def raw_live_collect(sub, count):
    got = []
    while len(got) < count:
        assert sub.poll(TIMEOUT_MS), f"live: {len(got)} of {count}"
        frames = sub.recv_multipart()
        head = msgpack.unpackb(frames[1], raw=False)
        if head[1] == "live":
            got.append((head, msgpack.unpackb(frames[2], raw=False)))
    return got


def raw_replay(b, topics):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(b.replay)
    seqs, frm, corr = [], 1, 0
    while True:
        corr += 1
        sock.send(msgpack.packb([1, "replay", corr, frm, 0, 7, {"topics": topics}]))
        while True:
            assert sock.poll(TIMEOUT_MS), "replay: no answer"
            frames = sock.recv_multipart()
            head = msgpack.unpackb(frames[0], raw=False)
            assert head[1] in ("evt", "end"), head
            if head[1] == "evt":
                seqs.append(head[3])
                continue
            break
        frm = head[3]
        if frm > head[4]:
            return seqs


def check_scenario(b):
    sub_for_30 = b.subscriber("--requester-prefecture", "30", "--idle", "60000",
                              "--count", "1000000", stdout_path=os.path.join(b.dir, "for30.jsonl"))
    sub_by_30 = b.subscriber("--prefecture", "30", "--idle", "60000", "--count", "1000000",
                             stdout_path=os.path.join(b.dir, "by30.jsonl"))
    sub_for_town = b.subscriber("--requester", "304280", "--type", "aid.offer", "--idle",
                                "60000", "--count", "1000000",
                                stdout_path=os.path.join(b.dir, "for304280.jsonl"))
    raw_key = b"~aid.dispatch/for/30/|aid.offer/for/30/\n"
    raw = raw_live(b, raw_key)
    harness.wait_for(lambda: raw.poll(50) and msgpack.unpackb(raw.recv_multipart()[1])[1] ==
                     "tick", "the raw subscriber's first tick")

    _, res, _ = b.agent("send", stdin="".join(l + "\n" for l in harness.scenario_lines()))
    stored = sum(1 for r in res if r["ok"])
    assert stored == harness.scenario_expected()["summary"]["accepted"], stored
    everything, _ = b.replay_all()
    assert len(everything) == stored
    req_of = requesters(e["event"] for e in everything)
    final = harness.scenario_expected()["final_states"]
    # the oracle's requesters, not only ours
    assert {k: final[k]["requester"] for k in final} == req_of

    def about(pred):
        return [e["seq"] for e in everything
                if e["event"]["type"].startswith("aid.") and pred(req_of[e["event"]["request_id"]])]

    want_30 = about(lambda r: r.startswith("30"))
    by_others = [e["seq"] for e in everything if e["seq"] in set(want_30)
                 and not e["event"]["municipality"].startswith("30")]
    assert len(by_others) >= 20, "too few events by other prefectures: a weak scenario"
    want_by_30 = [e["seq"] for e in everything if e["event"]["municipality"].startswith("30")]
    want_town_offers = [e["seq"] for e in everything if e["event"]["type"] == "aid.offer"
                        and req_of[e["event"]["request_id"]] == "304280"]
    assert want_town_offers

    # live, through the tools
    harness.wait_for(lambda: (sub_for_30.received(), sub_by_30.received(),
                              sub_for_town.received()), "the subscribers to have it all",
                     until=lambda c: c[0] >= len(want_30) and c[1] >= len(want_by_30)
                     and c[2] >= len(want_town_offers))
    for s in (sub_for_30, sub_by_30, sub_for_town):
        s.proc.send_signal(signal.SIGTERM)
    got = lambda s: [json.loads(l)["seq"] for l in open(s.stdout_path)]
    assert got(sub_for_30) == want_30, "live --requester-prefecture 30"
    assert got(sub_by_30) == want_by_30, "live --prefecture 30 (the publisher) changed meaning"
    assert got(sub_for_town) == want_town_offers, "live --requester 304280 --type aid.offer"

    # live, raw: the key of the spec, headers as 3.3 says
    want_raw = [e["seq"] for e in everything if e["seq"] in set(want_30)
                and e["event"]["type"] in ("aid.offer", "aid.dispatch")]
    live = raw_live_collect(raw, len(want_raw))
    assert [h[3] for h, _ in live] == want_raw
    prev = None
    for head, ev in live:
        assert head[6] == f"{ev['type']}/{ev['municipality'][:2]}/{ev['municipality']}", head
        if prev is not None:
            assert head[5] == prev, ("prev is the key's previous event", head)
        prev = head[3]
    raw.close()

    # replay, through the tool and raw
    events, _ = b.replay_all("--requester-prefecture", "30")
    assert [e["seq"] for e in events] == want_30, "replay --requester-prefecture 30"
    events, _ = b.replay_all("--requester", "304280", "--type", "aid.offer")
    assert [e["seq"] for e in events] == want_town_offers
    events, _ = b.replay_all("--prefecture", "30")
    assert [e["seq"] for e in events] == want_by_30, "replay --prefecture changed meaning"
    assert raw_replay(b, ["aid.offer/for/30/", "aid.dispatch/for/30/"]) == want_raw
    # a prefix on both kinds of topic at once: the union, each event once
    both = sorted(set(want_raw) | {e["seq"] for e in everything
                                   if e["event"]["type"] == "aid.offer"
                                   and e["event"]["municipality"].startswith("27")})
    assert raw_replay(b, ["aid.dispatch/for/30/", "aid.offer/27/", "aid.offer/for/30/"]) == both

    # snapshot: each Wakayama request's last event
    last = {}
    for e in everything:
        if e["seq"] in set(want_30):
            last[e["event"]["request_id"]] = e["seq"]
    events, _ = b.replay_all("--snapshot", "--requester-prefecture", "30")
    assert sorted(e["seq"] for e in events if "seq" in e) == sorted(last.values())

    # --as-of now and --state: the same requests; --as-of --prefecture (the
    # publisher of each request's aid.request) names the same ones
    wak = {k: v for k, v in final.items() if v["requester"].startswith("30")}
    now = stamp(time.time_ns())
    for args in (["--requester-prefecture", "30"], ["--prefecture", "30", "--family", "aid"]):
        out, _ = b.replay_all("--as-of", now, *args)
        reqs = {l["request_id"]: l for l in out if l.get("kind") == "request"}
        assert set(reqs) == set(wak), args
        assert not [l for l in out if l.get("kind") == "kpi"], args
        for k, v in reqs.items():
            assert v["state"] == wak[k]["state"] and v["fulfilled"] == wak[k]["fulfilled"], k
    out, _ = b.replay_all("--state", "--requester-prefecture", "30")
    assert {l["request_id"] for l in out if l.get("kind") == "request"} == set(wak)

    # combinations that cannot be said are refused, naming the options
    for args, words in ((["--requester-prefecture", "30", "--prefecture", "27"], "not with"),
                        (["--requester", "304280", "--family", "kpi"], "requester"),
                        (["--requester-prefecture", "3"], "--requester-prefecture: must be 2")):
        p = subprocess.run([harness.tool("renkei-replay"), "--replay", b.replay] + args,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and words in p.stderr, (args, p.returncode, p.stderr)


def heavy_copies(n):
    """n renamed copies of the valid scenario, each event with a long note,
    so that a stalled reader's socket buffers (bytes) fill with fewer
    messages than the broker's high-water mark (messages) lets through."""
    base = [json.loads(l) for l in harness.valid_scenario_lines()]
    out = []
    for i in range(n):
        for e in base:
            e = harness.renamed(e, f"gap{i}")
            e["note"] = "x" * 2000
            out.append(e)
    return out


def check_gap(b):
    copies = heavy_copies(150)
    req_of = requesters(copies)
    out = lambda name: os.path.join(b.dir, name)
    events, _ = b.replay_all()
    head = events[-1]["seq"]
    mine = [i for i, e in enumerate(copies) if req_of[e["request_id"]].startswith("30")]
    fast = b.subscriber("--requester-prefecture", "30", "--count", str(len(mine)), "--idle",
                        "60000", stdout_path=out("gap-fast.jsonl"))
    stalled = b.subscriber("--requester-prefecture", "30", "--count", str(len(mine)), "--idle",
                           "60000", stdout_path=out("gap-stalled.jsonl"))
    os.kill(stalled.proc.pid, signal.SIGSTOP)
    seqs = harness.publish_pipelined(b.ingest, [msgpack.packb(e) for e in copies])
    assert seqs == list(range(head + 1, head + 1 + len(copies)))
    want = [seqs[i] for i in mine]
    assert len(want) > len(copies) // 3
    got = fast.wait(timeout=180)
    assert [e["seq"] for e in got] == want, "fast requester subscriber"
    os.kill(stalled.proc.pid, signal.SIGCONT)
    got = stalled.wait(timeout=180)
    assert [e["seq"] for e in got] == want, "stalled requester subscriber: missed or repeated"
    events_out, gaps, filled = stalled.summary()
    print(f"stalled requester subscriber: {events_out} events, {gaps} gaps filled "
          f"({filled} events read from the log)")
    assert gaps >= 1 and filled > 0, "the stall caused no gap: the test did not test gap filling"


def test(b):
    b.start()
    check_scenario(b)
    check_gap(b)


harness.run(test)

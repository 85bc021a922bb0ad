"""Subscriptions that are not subscription keys (PROTOCOL.md 3.3) receive
nothing, with or without an ACL: `""` (which libzmq's prefix matching
would give every key's messages), `"~"`, `"~aid."` (a prefix of the key
`~aid.\\n`), a bare topic prefix, and bytes that are not text. Each raw
socket also subscribes to a real key, the sentinel, after its raw one: the
sentinel's ticks show the broker has read the raw subscription, and a raw
socket must receive the sentinel's messages and nothing else. Honest
subscribers on `~\\n` and `~aid.\\n` receive the event. The broker logs
the ignored subscriptions, summed, with the bytes quoted."""
import json
import os

import msgpack
import zmq

import harness

RAW = [b"", b"~", b"~aid.", b"aid.request/27/", b"~aid.\xff\x00\"\n"]
SENTINEL = b"~kpi.sentinel\n"
# The longest key there is (641 bytes: 16 prefixes of 39): just within the
# feed's frame limit, with CURVE too. It must be served.
LONGEST = b"~" + b"|".join(b"kpi.update/%02d/" % i + b"9" * 25 for i in range(16)) + b"\n"
assert len(LONGEST) == 641


def socket(ctx, curve, subs, endpoint):
    s = ctx.socket(zmq.SUB)
    s.linger = 0
    if curve:
        s.curve_serverkey, s.curve_publickey, s.curve_secretkey = curve
    for sub in subs:
        s.setsockopt(zmq.SUBSCRIBE, sub)
    s.connect(endpoint)
    return s


def drain(sock, into):
    while sock.poll(0):
        into.append(sock.recv_multipart())
    return into


def head_after(got, key, seq):
    """A tick on `key` whose head is at least `seq`, among the messages."""
    return any(m[0] == key and msgpack.unpackb(m[1])[1] == "tick" and
               msgpack.unpackb(m[1])[3] >= seq for m in got)


def event(tag):
    e = harness.new_requests(tag, 1)[0]
    e["municipality"] = "271004"
    e["request_id"] = f"REQ-271004-{tag}"
    return json.dumps(e, ensure_ascii=False)


def run(b, curve, agent_args, label):
    ctx = zmq.Context()
    mark = b.log_mark()
    raws = [(raw, socket(ctx, curve, [raw, SENTINEL], b.feed)) for raw in RAW]
    honest = {k: socket(ctx, curve, [k], b.feed) for k in (b"~\n", b"~aid.\n", LONGEST)}
    got = {id(s): [] for _, s in raws}
    for raw, s in raws:
        harness.wait_for(lambda: head_after(drain(s, got[id(s)]), SENTINEL, 0),
                         f"{label}: the sentinel's tick on the socket of {raw!r}")
    for k, s in honest.items():
        harness.wait_for(lambda: s.poll(0), f"{label}: a tick on {k!r}")
    _, res, _ = b.agent(*agent_args, "event", event(label.replace("+", "-")), check_rc=0)
    seq = res[0]["seq"]
    for k, s in list(honest.items())[:2]:
        seen = []
        harness.wait_for(lambda: any(m[0] == k and msgpack.unpackb(m[1])[1] == "live" and
                                     msgpack.unpackb(m[1])[3] == seq for m in drain(s, seen)),
                         f"{label}: {k!r} to receive seq {seq}")
    # Each raw socket has heard the sentinel's tick of a head at least seq:
    # the event went out before it, and would have reached it by now.
    for raw, s in raws:
        harness.wait_for(lambda: head_after(drain(s, got[id(s)]), SENTINEL, seq),
                         f"{label}: the sentinel's tick after seq {seq} for {raw!r}")
        keys = {m[0] for m in got[id(s)]}
        assert keys == {SENTINEL}, f"{label}: the raw subscription {raw!r} received {keys}"
    b.wait_log("feed_subscription_ignored", after=mark)
    for s in [s for _, s in raws] + list(honest.values()):
        s.close()
    ctx.term()
    # The rest are summed into the line written when the feed closes.
    b.stop()
    lines = b.records("feed_subscription_ignored", after=mark)
    assert sum(int(r["count"]) for r in lines) == len(RAW), lines
    assert len(lines) <= 2, lines
    # Each line quotes the latest one's bytes: the record decodes to them.
    raw_texts = [r.decode("utf-8", errors="replace") for r in RAW]
    for r in lines:
        assert r["subscription"] in raw_texts and r["bytes"] == str(len(
            RAW[raw_texts.index(r["subscription"])])), r
    print(f"{label}: {len(RAW)} raw subscriptions received nothing; log: {lines}")


def test(b):
    b.start()
    run(b, None, [], "plain")

    d = b.dir
    pub = {n: harness.new_keys(d, n) for n in ("broker", "hq")}
    sec = open(os.path.join(d, "hq.key")).read().strip()
    harness.secure_on_tcp(b, f"[tenant hq]\nkey = {pub['hq']}\npublish = 27*\nsubscribe = *\n"
                             "replay = *\n")
    b.start()
    agent = ["--broker-key", os.path.join(d, "broker.pub"), "--key", os.path.join(d, "hq.key")]
    run(b, (pub["broker"].encode(), pub["hq"].encode(), sec.encode()), agent, "curve+acl")


harness.run(test)

"""Idempotent publishing in order (PROTOCOL.md 3.2): a retried (producer,
number) is stored once and answered with its original acknowledgement, also
across a broker restart and from a new connection; a number above the next
is refused with E_ORDER naming the next, and stores nothing; a refusal for
the event's content uses its number, and a retry of it gets the same
refusal; "ping" is answered with "pong"."""
import json

import msgpack
import zmq

import harness

PRODUCER = "agent-304280-test"


class Client(harness.Dealer):
    def send(self, event, number=None, producer=PRODUCER):
        self.corr += 1
        hdr = [1, "pub", self.corr] + ([producer, number] if number is not None else [])
        self.sock.send_multipart([msgpack.packb(hdr), msgpack.packb(event)])
        return self.corr

    def publish(self, event, number=None, producer=PRODUCER):
        corr = self.send(event, number, producer)
        r = self.reply()
        assert r[2] == corr, r
        return r


def events(n):
    base = json.loads(harness.scenario_lines(2)[1])  # 串本町's water request
    out = []
    for i in range(n):
        e = harness.renamed(base, f"idem{i}")  # a new request each, not a second v1
        e["event_id"] = f"304280-idem-{i}"
        out.append(e)
    return out


def test(b):
    b.start()
    ctx = zmq.Context()
    ev = events(16)
    c = Client(ctx, b.ingest)

    # 1..10 pipelined in one burst, so they share group-commit batches.
    corrs = [c.send(ev[i], i + 1) for i in range(10)]
    acks = {}
    for _ in corrs:
        r = c.reply()
        assert r[1] == "ack", r
        acks[r[2]] = (r[3], r[4])
    first = [acks[k] for k in corrs]
    assert [s for s, _ in first] == list(range(1, 11)), first

    # A retry inside the same burst as new events: acked with the original.
    c.send(ev[10], 11)
    retry_corr = c.send(ev[4], 5)
    replies = {r[2]: r for r in (c.reply(), c.reply())}
    assert replies[retry_corr][1:] == ["ack", retry_corr, *first[4]], replies

    # Restart the broker; retry from a brand-new connection.
    b.stop()
    b.start()
    c2 = Client(ctx, b.ingest)
    r = c2.publish(ev[2], 3)
    assert r[1] == "ack" and (r[3], r[4]) == first[2], (r, first[2])
    r = c2.publish(ev[10], 11)
    assert r[1] == "ack" and r[3] == 11, r

    # Skipping ahead is refused: 13 after 11 names 12 as the next, in a sixth
    # element, and uses nothing up.
    r = c2.publish(ev[11], 13)
    assert r[1] == "err" and r[3] == "E_ORDER" and r[5] == 12, r
    assert "expected 12" in r[4], r
    r = c2.publish(ev[11], 12)
    assert r[1] == "ack" and r[3] == 12, r
    r = c2.publish(ev[12], 13)
    assert r[1] == "ack" and r[3] == 13, r
    r = c2.publish(ev[11], 12)
    assert r[1] == "ack" and r[3] == 12, r

    # Bad producer fields are refused with a reason; nothing is stored.
    r = c2.publish(ev[0], 1, producer="has space")
    assert r[1] == "err" and r[3] == "E_PRODUCER", r
    r = c2.publish(ev[0], 0)
    assert r[1] == "err" and r[3] == "E_HEADER", r
    # An invalid event is refused and uses its number: its retry, even
    # with valid bytes, gets the same code; the next number goes on.
    bad = dict(ev[13], quantity=-5)
    r = c2.publish(bad, 14)
    assert r[1] == "err" and r[3] == "E_RANGE", r
    r = c2.publish(ev[13], 14)
    assert r[1] == "err" and r[3] == "E_RANGE" and "when first sent" in r[4], r
    r = c2.publish(ev[13], 15)
    assert r[1] == "ack" and r[3] == 14, r
    b.stop()
    b.start()
    c3 = Client(ctx, b.ingest)
    r = c3.publish(ev[13], 14)
    assert r[1] == "err" and r[3] == "E_RANGE", r  # durable
    # A number below the last that holds nothing is refused for good.
    r = c3.publish(ev[15], 2, producer=PRODUCER + "-b")
    assert r[1] == "ack" and r[3] == 15, r
    r = c3.publish(ev[15], 1, producer=PRODUCER + "-b")
    assert r[1] == "err" and r[3] == "E_NUMBER", r
    c2 = c3

    # ping: answered at once with its corr.
    c2.corr += 1
    c2.sock.send_multipart([msgpack.packb([1, "ping", c2.corr])])
    assert c2.reply() == [1, "pong", c2.corr]

    # Publishers without a producer id are unaffected.
    r = c2.publish(ev[14])
    assert r[1] == "ack" and r[3] == 16, r

    stored, _ = b.replay_all()
    ids = [e["event"]["event_id"] for e in stored]
    assert [e["seq"] for e in stored] == list(range(1, 17)), ids
    assert ids == [f"304280-idem-{i}" for i in range(14)] + ["304280-idem-15",
                                                             "304280-idem-14"], ids
    ctx.destroy(linger=0)


harness.run(test)

"""Publish batches on the wire (PROTOCOL.md 3.2, "pubs"): one message
carries many events, and one "outcomes" reply answers each of them in runs.

Checked against a real broker: a batch is stored in order with consecutive
seqs and answered with one run; invalid events inside a numbered batch are
refused in place (their numbers used) while the others are stored; a retry
of the whole batch is answered from the records (retries and the first
refusals); a batch whose first number is above the producer's next gets one
E_ORDER run; a frame that does not hold `count` values, or a count of 0 or
over 1024, is refused whole; a live subscriber receives every stored event
and replay gives back the exact bytes; a single "pub" still works."""
import json

import msgpack
import zmq

import harness

PRODUCER = "it59-batches"


class Client(harness.Dealer):
    def pubs(self, events, first=None, frame=None, count=None):
        self.corr += 1
        hdr = [1, "pubs", self.corr, len(events) if count is None else count]
        if first is not None:
            hdr += [PRODUCER, first]
        body = b"".join(events) if frame is None else frame
        self.sock.send_multipart([msgpack.packb(hdr), body])
        r = self.reply()
        assert r[2] == self.corr, r
        return r


def expand(reply, n):
    """Per event: ("stored", seq) | ("retry", seq, recv_ns) | ("refused", code, expected)."""
    assert reply[1] == "outcomes", reply
    out, at = [], 0
    for run in reply[4]:
        first, count = run[0], run[1]
        assert first == at and count >= 1, (run, at)
        for i in range(count):
            if isinstance(run[2], int) and len(run) == 3:
                out.append(("stored", run[2] + i))
            elif isinstance(run[2], int):
                out.append(("retry", run[2] + i, run[3]))
            else:
                out.append(("refused", run[2], run[4] if len(run) > 4 else None))
        at += count
    assert at == n, (at, n)
    return out


def events(tag, n):
    return [msgpack.packb(e) for e in harness.new_requests(tag, n)]


def test(b):
    b.start()
    ctx = zmq.Context()
    c = Client(ctx, b.ingest)
    live = b.subscriber("--family", "aid", stdout_path=b.dir + "/live.jsonl")

    # 100 unnumbered events: one run, consecutive seqs.
    first = events("a", 100)
    r = c.pubs(first)
    assert len(r[4]) == 1 and r[4][0][:2] == [0, 100], r
    got = expand(r, 100)
    assert got == [("stored", 1 + i) for i in range(100)], got

    # Numbered, with two invalid events inside: refused in place.
    mixed = events("b", 10)
    bad = harness.new_requests("b-bad", 2)
    bad[0]["quantity"] = -5
    bad[1]["urgency"] = "whenever"
    mixed[3], mixed[7] = msgpack.packb(bad[0]), msgpack.packb(bad[1])
    got = expand(c.pubs(mixed, first=1), 10)
    assert [g[0] for g in got] == ["stored"] * 3 + ["refused"] + ["stored"] * 3 + \
        ["refused"] + ["stored"] * 2, got
    assert got[3][1] == "E_RANGE" and got[7][1] == "E_VOCAB", got
    seqs = [g[1] for g in got if g[0] == "stored"]
    assert seqs == list(range(101, 109)), seqs

    # The same batch again: retries and the first refusals, nothing stored.
    again = expand(c.pubs(mixed, first=1), 10)
    assert [g[0] for g in again] == ["retry"] * 3 + ["refused"] + ["retry"] * 3 + \
        ["refused"] + ["retry"] * 2, again
    assert [g[1] for g in again if g[0] == "retry"] == seqs, again

    # Above the next number (11): one E_ORDER run naming it.
    got = expand(c.pubs(events("c", 5), first=20), 5)
    assert got == [("refused", "E_ORDER", 11)] * 5, got

    # Refused whole: a frame that is not `count` values; counts 0 and 1025.
    two = events("d", 2)
    for frame, count, code in ((b"".join(two), 3, "E_FRAMES"),
                               (b"".join(two) + b"\x81", 2, "E_FRAMES"),
                               (b"".join(two), 0, "E_HEADER"),
                               (b"".join(two), 1025, "E_HEADER")):
        r = c.pubs(two, frame=frame, count=count)
        assert r[1] == "err" and r[3] == code, (count, r)

    # A single pub still works, after the batches.
    c.corr += 1
    c.sock.send_multipart([msgpack.packb([1, "pub", c.corr]), two[0]])
    assert c.sock.poll(10000)
    r = msgpack.unpackb(c.sock.recv_multipart()[0], raw=False)
    assert r[1] == "ack" and r[3] == 109, r

    stored, _ = b.replay_all()
    assert len(stored) == 109, len(stored)
    want = first + [e for i, e in enumerate(mixed) if i not in (3, 7)] + [two[0]]
    ids = [msgpack.unpackb(e)["event_id"] for e in want]
    assert [e["event"]["event_id"] for e in stored] == ids
    harness.wait_for(live.received, "the subscriber to receive all 109", until=lambda n: n >= 109)
    live.proc.terminate()
    assert [e["seq"] for e in live.wait()] == list(range(1, 110))
    ctx.destroy(linger=0)


if __name__ == "__main__":
    harness.run(test)

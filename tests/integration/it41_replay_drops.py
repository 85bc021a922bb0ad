"""The client side of lost replay replies. PROTOCOL.md 3.4 lets the replay
socket drop replies past its window; the client must notice and ask again.
A stand-in replay server, written from the spec, serves a log of 3,000
events packed 100 to an "evts" and drops the messages each case names;
renkei-replay must still print every event exactly once, in order, and
a snapshot every entity exactly once.

The cases are the ones the real broker cannot be made to hit on demand:
the first message of a batch the client asked for ahead (no gap is visible
inside that batch), a message inside a batch, and one inside a snapshot
batch, where the client asks again and must skip exactly what it has."""
import json
import os
import subprocess
import tempfile
import threading

import msgpack
import zmq

import harness

HEAD = 3000
LIMIT = 1000
PACK = 100


def body(seq):
    return msgpack.packb({"event_id": f"e-{seq}", "n": seq})


class FakeReplay(threading.Thread):
    """Answers replay and snap; drop(kind, start, pack_index, times_served)
    says which "evts" to leave out. Snapshot cursors are the next seq."""

    def __init__(self, endpoint, drop):
        super().__init__(daemon=True)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.sock.bind(endpoint)
        self.drop = drop
        self.served = {}
        self.dropped = 0
        self.stop = False

    def send_batch(self, ident, corr, kind, start, seqs):
        key = (kind, start)
        self.served[key] = self.served.get(key, 0) + 1
        for i in range(0, len(seqs), PACK):
            if self.drop(kind, start, i // PACK, self.served[key]):
                self.dropped += 1
                continue
            pack = seqs[i:i + PACK]
            records = b"".join(msgpack.packb([q, 1795400000000000000 + q, body(q)])
                               for q in pack)
            self.sock.send_multipart([ident, msgpack.packb([1, "evts", corr, len(pack)]), records])

    def run(self):
        while not self.stop:
            if not self.sock.poll(100):
                continue
            ident, hdr = self.sock.recv_multipart()
            h = msgpack.unpackb(hdr)
            assert len(h) == 8 and h[7] & 1, f"the client did not ask for packed replies: {h}"
            corr = h[2]
            if h[1] == "replay":
                start = max(h[3], 1)
                seqs = list(range(start, min(start + LIMIT, HEAD + 1)))
                self.send_batch(ident, corr, "replay", start, seqs)
                nxt = seqs[-1] + 1 if seqs else start
                self.sock.send_multipart(
                    [ident, msgpack.packb([1, "end", corr, nxt, HEAD, len(seqs)])])
            else:
                start = int(h[5].decode() or "1")
                seqs = list(range(start, min(start + LIMIT, HEAD + 1)))
                self.send_batch(ident, corr, "snap", start, seqs)
                cursor = str(seqs[-1] + 1).encode() if seqs[-1] < HEAD else b""
                self.sock.send_multipart(
                    [ident, msgpack.packb([1, "snapend", corr, HEAD, cursor, len(seqs)])])

    def close(self):
        self.stop = True
        self.join()
        self.ctx.destroy(linger=0)


def replay(endpoint, *args):
    p = subprocess.run([harness.tool("renkei-replay"), "--replay", endpoint, "--timeout", "10000"]
                       + list(args), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"renkei-replay exit {p.returncode}: {p.stderr}"
    harness.check_clean("renkei-replay", p.stderr)
    return [json.loads(line) for line in p.stdout.splitlines()]


def case(name, drop, args, check):
    endpoint = f"ipc://{tempfile.mkdtemp(prefix='rk-it41-')}/replay"
    fake = FakeReplay(endpoint, drop)
    fake.start()
    try:
        lines = replay(endpoint, *args)
    finally:
        fake.close()
    assert fake.dropped >= 1, f"{name}: the case dropped nothing"
    check(name, [l for l in lines if "seq" in l], fake)
    print(f"{name}: {fake.dropped} message(s) dropped, {len(lines)} lines, all there")


def whole_log_in_order(name, events, fake):
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, HEAD + 1)), f"{name}: {len(seqs)} events, first wrong at " \
        f"{next((i for i, s in enumerate(seqs) if s != i + 1), None)}"
    assert all(e["event"]["n"] == e["seq"] for e in events), name


def every_entity_once(name, events, fake):
    seqs = sorted(e["seq"] for e in events)
    assert seqs == list(range(1, HEAD + 1)), \
        f"{name}: {len(seqs)} records, {len(set(seqs))} distinct of {HEAD}"
    assert fake.served[("snap", 1)] == 2, f"{name}: the batch was not asked again: {fake.served}"


def test():
    # The client asks for 1, then 1,001 and 2,001 together: the batch at
    # 2,001 is the one asked ahead. Its first message is lost, once.
    case("first message of a batch asked ahead",
         lambda kind, start, i, n: start == 2001 and i == 0 and n == 1,
         [], whole_log_in_order)
    case("a message inside a batch",
         lambda kind, start, i, n: start == 1001 and i == 4 and n == 1,
         [], whole_log_in_order)
    case("the last message of a batch",
         lambda kind, start, i, n: start == 1 and i == 9 and n == 1,
         [], whole_log_in_order)
    case("a message inside a snapshot batch",
         lambda kind, start, i, n: kind == "snap" and start == 1 and i == 3 and n == 1,
         ["--snapshot"], every_entity_once)


if __name__ == "__main__":
    test()

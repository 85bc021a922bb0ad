"""A client written from PROTOCOL.md alone (Python, pyzmq + msgpack), and
hostile input: the broker answers or drops it, never crashes, and keeps
serving well-behaved clients."""
import json
import signal
import time

import msgpack
import zmq

import harness

TIMEOUT_MS = 10000


def recv(sock):
    if not sock.poll(TIMEOUT_MS):
        raise AssertionError("no reply from broker")
    return sock.recv_multipart()


def test(b):
    b.start()
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(b.ingest)

    event = json.loads(harness.valid_scenario_lines(1)[0])
    body = msgpack.packb(event)

    # The worked example: header bytes 93 01 a3 'pub' 01.
    assert msgpack.packb([1, "pub", 1]) == bytes.fromhex("9301a370756201")
    dealer.send_multipart([bytes.fromhex("9301a370756201"), body])
    (hdr,) = recv(dealer)
    ack = msgpack.unpackb(hdr)
    assert ack[:4] == [1, "ack", 1, 1], ack
    assert isinstance(ack[4], int) and ack[4] > 1_700_000_000 * 10**9

    hostile = [
        [b"\xc1"],                                     # never-used byte, one frame
        [b"not msgpack at all", body],                 # header garbage
        [msgpack.packb([2, "pub", 5]), body],          # unknown version
        [msgpack.packb([1, "nope", 6]), body],         # unknown command
        [msgpack.packb([1, "pub", 7])],                # missing event frame
        [msgpack.packb([1, "pub", 8]), body, body],    # one frame too many
        [msgpack.packb([1, "pub", 9]), b"\x91" * 5000],            # deep nesting
        [msgpack.packb([1, "pub", 10]), b"\xdf\xff\xff\xff\xff"],  # map claims 4G entries
        [msgpack.packb([1, "pub", 11]), b"\xdb\xff\xff\xff\xf0ab"],  # str claims 4 GiB
        [msgpack.packb([1, "pub", 12]), msgpack.packb({"type": "aid.request", "x": "y" * 20000})],
        [msgpack.packb([1, "pub", 13]), msgpack.packb([1, 2, 3])],
        [msgpack.packb([1, "pub", 14]), b""],
    ]
    # Headers that cannot be read are answered with corr 0 (three of them:
    # 0xc1, garbage, version 2); the others echo their corr.
    expected = sorted([(0, "E_HEADER")] * 3 + [
        (6, "E_COMMAND"), (7, "E_FRAMES"), (8, "E_FRAMES"), (9, "E_DECODE"),
        (10, "E_DECODE"), (11, "E_DECODE"), (12, "E_TOO_LONG"), (13, "E_TYPE"),
        (14, "E_DECODE")])
    for frames in hostile:
        dealer.send_multipart(frames)
    replies = []
    for _ in range(len(hostile)):
        (hdr,) = recv(dealer)
        reply = msgpack.unpackb(hdr)
        assert reply[0] == 1 and reply[1] == "err", reply
        assert isinstance(reply[4], str) and reply[4], reply
        replies.append((reply[2], reply[3]))
    assert sorted(replies) == expected, replies

    # An oversized message is dropped by the transport (the connection is
    # closed); the broker lives on and a new client is served.
    dealer.send_multipart([msgpack.packb([1, "pub", 15]), b"\x00" * 200_000])
    fresh = ctx.socket(zmq.DEALER)
    fresh.linger = 0
    fresh.connect(b.ingest)
    again = harness.renamed(event, "again")  # a new request, not a second version 1
    fresh.send_multipart([msgpack.packb([1, "pub", 42]), msgpack.packb(again)])
    ack = msgpack.unpackb(recv(fresh)[0])
    assert ack[:4] == [1, "ack", 42, 2], ack

    # Replay socket, raw: one batch of everything, then "end".
    rep = ctx.socket(zmq.DEALER)
    rep.linger = 0
    rep.connect(b.replay)
    log_id = b.ready["log_id"]  # a later element of end, tick, snapend, reqs (3.7)
    rep.send_multipart([msgpack.packb([1, "replay", 77, 1, 0, 1000])])
    evt = recv(rep)
    h = msgpack.unpackb(evt[0])
    assert h[:4] == [1, "evt", 77, 1] and evt[1] == body, h
    h = msgpack.unpackb(recv(rep)[0])
    assert h[:4] == [1, "evt", 77, 2], h
    end = msgpack.unpackb(recv(rep)[0])
    assert end == [1, "end", 77, 3, 2, 2, log_id], end
    # Packed (flags bit 0 after a filter, here empty): one "evts" holding
    # both records, [seq, recv_ns, event as bin], then the same "end".
    rep.send_multipart([msgpack.packb([1, "replay", 78, 1, 0, 1000, {}, 1])])
    evts = recv(rep)
    h = msgpack.unpackb(evts[0])
    assert h == [1, "evts", 78, 2] and len(evts) == 2, h
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(evts[1])
    records = list(unpacker)
    assert [r[0] for r in records] == [1, 2] and len(records[0]) == 3, records
    assert records[0][2] == body and records[1][2] == msgpack.packb(again), records
    assert records[0][1] <= records[1][1] and records[0][1] > 0, records
    end = msgpack.unpackb(recv(rep)[0])
    assert end == [1, "end", 78, 3, 2, 2, log_id], end
    # The same request from a client that did not set the flag still gets
    # one "evt" per record; a filter that selects nothing sends no "evts".
    rep.send_multipart([msgpack.packb([1, "replay", 79, 2, 0, 1000, {"kpi_id": "none"}, 1])])
    end = msgpack.unpackb(recv(rep)[0])
    assert end == [1, "end", 79, 3, 2, 0, log_id], end
    # A later batch of a range bounded by from_time starts at its from_seq,
    # not again at the first record of that time.
    rep.send_multipart([msgpack.packb([1, "replay", 80, 2, 0, 1, {"from_time": 1}, 1])])
    evts = recv(rep)
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(evts[1])
    assert [r[0] for r in unpacker] == [2], "continued at the time bound, not at from_seq"
    end = msgpack.unpackb(recv(rep)[0])
    assert end == [1, "end", 80, 3, 2, 1, log_id], end
    rep.send_multipart([b"\x93\x01\xa3pub\x01"])
    err = msgpack.unpackb(recv(rep)[0])
    assert err[1] == "err" and err[3] == "E_COMMAND", err

    # Live feed, raw: subscription key, header, event bytes. A bare topic
    # prefix is not a key and gets nothing; ticks come on the key too.
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.setsockopt(zmq.SUBSCRIBE, b"~aid.request/30/\n")
    sub.connect(b.feed)
    stray = ctx.socket(zmq.SUB)
    stray.linger = 0
    stray.setsockopt(zmq.SUBSCRIBE, b"aid.request/30/")
    stray.connect(b.feed)
    tick = None
    while tick is None:
        assert sub.poll(5000), "no tick within 5 s"
        frames = sub.recv_multipart()
        hdr = msgpack.unpackb(frames[1])
        if hdr[1] == "tick":
            tick = hdr
    assert frames[0] == b"~aid.request/30/\n" and len(frames) == 2, frames
    assert tick[:3] == [1, "tick", 0] and tick[3] >= 2 and tick[5] <= tick[3], tick
    assert tick[6:] == [b.ready["log_id"]], tick
    seen = []
    for i in range(3):
        one = harness.renamed(event, f"live{i}")
        fresh.send_multipart([msgpack.packb([1, "pub", 100 + i]), msgpack.packb(one)])
        ack = msgpack.unpackb(recv(fresh)[0])
        assert ack[1] == "ack", ack
        while True:
            assert sub.poll(5000), "no live event"
            got = sub.recv_multipart()
            live = msgpack.unpackb(got[1])
            if live[1] == "live":
                break
        seen.append(live[3])
        assert got[0] == b"~aid.request/30/\n", got[0]
        topic = f"aid.request/30/{event['municipality']}"
        assert live[:3] == [1, "live", 0] and live[3] == ack[3] and live[6] == topic, live
        assert msgpack.unpackb(got[2])["type"] == "aid.request"
    # prev chains the filter's events: each names the one before it.
    assert seen == sorted(seen)
    assert live[5] == seen[1], (live, seen)
    assert not stray.poll(300), "a bare prefix subscription received something"

    # Gathered acknowledgements: pubs with flag 1 may be answered by "acks",
    # [1, "acks", 0, recv_ns, [corr, seq, ...]], one per commit; a pub
    # without the flag still gets its own "ack". The broker is paused while
    # they are sent so that they wait for it together, as under load.
    b.proc.send_signal(signal.SIGSTOP)
    for i in range(50):
        one = harness.renamed(event, f"acks{i}")
        flagged = [1, "pub", 200 + i, 1] if i != 25 else [1, "pub", 200 + i]
        fresh.send_multipart([msgpack.packb(flagged), msgpack.packb(one)])
    # Kept: the 50 must leave this process's ZeroMQ queue for the stopped
    # broker's socket buffers before it resumes; nothing shows when they have.
    time.sleep(0.2)
    b.proc.send_signal(signal.SIGCONT)
    acked, singles, messages = {}, [], 0
    while len(acked) < 50:
        h = msgpack.unpackb(recv(fresh)[0])
        if h[1] == "ack":
            singles.append(h[2])
            acked[h[2]] = h[3]
            continue
        assert h[:3] == [1, "acks", 0] and len(h[4]) % 2 == 0 and h[4], h
        messages += 1
        for corr, seq in zip(h[4][::2], h[4][1::2]):
            assert corr not in acked, (corr, h)
            acked[corr] = seq
    assert singles == [225], singles
    assert sorted(acked) == list(range(200, 250)), sorted(acked)
    seqs = [acked[c] for c in range(200, 250)]
    assert seqs == list(range(seqs[0], seqs[0] + 50)), seqs
    assert messages <= 10, f"{messages} acks messages for 49 flagged events sent together"
    ctx.destroy(linger=0)


harness.run(test)

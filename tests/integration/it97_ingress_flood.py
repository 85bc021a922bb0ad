"""Hostile ingress: one client floods the broker with every kind of bad
message (wrong frame counts, bytes that are not MessagePack, nesting 100,000
deep, maps and strings that claim gigabytes, wrong types, messages over
--max-message) from several connections, never reading the replies, while
an honest publisher publishes. The broker stays up and bounded in memory,
every honest event is stored once, and the refusals are counted, not
logged one by one."""
import threading
import time

import msgpack
import zmq

import harness

HONEST = 20_000


def bad_messages():
    hdr = msgpack.packb([1, "pub", 1])
    yield [hdr]                                              # no event frame
    yield [hdr, b"x", b"y"]                                  # one frame too many
    yield [b"\xc1\xc1\xc1", b"\x80"]                         # not MessagePack
    yield [hdr, b"\x91" * 100_000]                           # nesting 100k deep
    yield [hdr, b"\xdf\xff\xff\xff\xff"]                     # a map of 4G pairs
    yield [hdr, b"\xdb\xff\xff\xff\xff" + b"a" * 10]         # a string of 4 GB
    yield [hdr, msgpack.packb([1, 2, 3])]                    # an array, not a map
    yield [hdr, msgpack.packb({"type": 7, "event_id": []})]  # wrong types
    yield [msgpack.packb([1, "pub", "corr"]), b"\x80"]       # a header of wrong types
    yield [hdr, msgpack.packb({"k" * 300: "v" * 16000})]     # too long
    yield [hdr, b"\x00" * 70_000]                            # over --max-message


def flood(endpoint, stop, sent):
    """Until `stop`: sent[0] counts the messages sent, sent[1] the connections."""
    ctx = zmq.Context()
    socks = []
    try:
        while not stop.is_set():
            s = ctx.socket(zmq.DEALER)
            s.linger = 0
            s.sndhwm = 1000
            s.connect(endpoint)
            socks.append(s)
            sent[1] += 1
            for _ in range(200):
                for m in bad_messages():
                    try:
                        s.send_multipart(m, zmq.NOBLOCK)
                        sent[0] += 1
                    except zmq.Again:
                        pass
            if len(socks) > 8:  # new connections too: the big ones get dropped
                socks.pop(0).close()
    finally:
        for s in socks:
            s.close()
        ctx.term()


def test(b):
    harness.small_asan_quarantine(8)
    b.start()
    events = [msgpack.packb(e) for e in harness.new_requests("honest", HONEST)]
    stop, sent = threading.Event(), [0, 0]
    before = harness.rss_kib(b.proc.pid)
    with harness.PeakSampler(b.proc.pid) as peak:
        t = threading.Thread(target=flood, args=(b.ingest, stop, sent))
        t.start()
        # The flood is in full swing: it has dropped its oldest connection for
        # a new one (it keeps 9), and the broker has refused some of it.
        harness.wait_for(lambda: sent[1] >= 10 or not t.is_alive(),
                         "the flood to open its tenth connection")
        b.wait_log("publish_refused")
        t0 = time.monotonic()
        seqs = harness.publish_pipelined(b.ingest, events)
        secs = time.monotonic() - t0
        stop.set()
        t.join()
    grown = (peak.peak - before) / 1024
    print(f"{HONEST} honest events in {secs:.1f} s beside {sent[0]} hostile messages; "
          f"broker RssAnon +{grown:.0f} MiB")
    assert sent[0] > 10_000, "the flood did not flood"
    assert len(seqs) == HONEST and len(set(seqs)) == HONEST
    stored, _ = b.replay_all()
    assert len(stored) == HONEST, len(stored)
    assert grown < 200, f"the flood grew the broker by {grown:.0f} MiB"
    # The refusals are summed into a few lines, not one per message.
    lines = b.records("publish_refused")
    assert 0 < len(lines) < 50, len(lines)
    assert b.proc.poll() is None, "the broker died"


harness.run(test)

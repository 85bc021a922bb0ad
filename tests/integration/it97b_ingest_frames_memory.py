"""A publish of many frames that each fit --max-message but add up to
100 MB (1,600 frames of 64,000 bytes) is refused with E_TOO_LONG and its
corr, and nothing of it is stored; then four such at once.

What this measures is a limit of libzmq, not a bound of the broker: a
multipart message becomes readable in its pipe only once its last frame
has arrived (ypipe never flushes an incomplete item), and the high-water
mark counts whole messages, so libzmq holds all 100 MB before rk_ingest
sees the first frame. Measured: +98 MiB of RssAnon for one, +366 MiB for
four at once. The broker adds nothing to that (it drops each frame as it
reads it), which is what the bound below holds it to: at most the
messages themselves, with a quarter for malloc's slack. Without CURVE the
ingest socket is loopback-only; with CURVE only keys in the ACL get past
the handshake (deploy/README.md, "Memory")."""

import msgpack
import zmq

import harness

FRAME, FRAMES = 64_000, 1_600
MESSAGE_MIB = FRAME * FRAMES / (1 << 20)
# libzmq holds each message whole (above); a copy by the broker would pass this.
SLACK = 1.25


def send_big(ctx, endpoint, corr, chunk):
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.sndhwm = 0
    s.connect(endpoint)
    s.send_multipart([msgpack.packb([1, "pub", corr])] + [chunk] * FRAMES, copy=False)
    return s


def reply(s, corr):
    assert s.poll(120_000), f"no reply to the 100 MB publish {corr}"
    (hdr,) = s.recv_multipart()
    r = msgpack.unpackb(hdr)
    assert r[1] == "err" and r[2] == corr and r[3] == "E_TOO_LONG", r
    assert "max_message" in r[4], r
    s.close()


def test(b):
    harness.small_asan_quarantine(4)
    b.extra = ["--max-message", "65536"]
    b.start()
    ctx = zmq.Context()
    chunk = zmq.Frame(b"x" * FRAME)  # one buffer, sent 1,600 times without a copy
    idle = harness.rss_kib(b.proc.pid)
    with harness.PeakSampler(b.proc.pid) as one:
        reply(send_big(ctx, b.ingest, 1, chunk), 1)
    with harness.PeakSampler(b.proc.pid) as four:
        socks = [send_big(ctx, b.ingest, 10 + i, chunk) for i in range(4)]
        for i, s in enumerate(socks):
            reply(s, 10 + i)
    ctx.term()
    after = harness.rss_kib(b.proc.pid)
    print(f"1,600 frames of 64,000 bytes: RssAnon idle {idle} KiB, peak {one.peak} KiB "
          f"(+{(one.peak - idle) / 1024:.1f} MiB); four at once: peak {four.peak} KiB "
          f"(+{(four.peak - idle) / 1024:.1f} MiB); after {after} KiB")
    assert one.peak - idle <= SLACK * MESSAGE_MIB * 1024, one.peak - idle
    assert four.peak - idle <= 4 * SLACK * MESSAGE_MIB * 1024, four.peak - idle
    stored, _ = b.replay_all()
    assert stored == [], stored
    b.wait_log("publish_oversize")


harness.run(test)

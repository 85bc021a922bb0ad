"""A broker at its map cap (--map-max) restarts: after it filled its map
and was killed with SIGKILL, it starts again (read-only if its own start-up
writes do not fit), serves every event it acknowledged, and refuses new
publishes with E_STORAGE naming the cap."""
import msgpack
import zmq

import harness


def publish_until_full(b, events):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(b.ingest)
    acked, refused = [], None
    for i, e in enumerate(events, 1):
        s.send_multipart([msgpack.packb([1, "pub", i]), e])
        assert s.poll(10000), "no reply"
        r = msgpack.unpackb(s.recv_multipart()[0])
        if r[1] == "ack":
            acked.append(r[3])
        else:
            refused = r
            break
    s.close()
    return acked, refused


def test(b):
    b.extra = ["--map-max", "2M", "--durability", "os"]
    b.start()
    events = [msgpack.packb(dict(e, note="x" * 2000)) for e in harness.new_requests("cap", 3000)]
    acked, refused = publish_until_full(b, events)
    assert acked and refused and refused[3] == "E_STORAGE", (len(acked), refused)
    assert "map-max" in refused[4], refused
    b.kill()
    b.start()
    stored, _ = b.replay_all()
    assert [e["seq"] for e in stored] == acked, (len(stored), len(acked))
    _, again = publish_until_full(b, events[len(acked):len(acked) + 1])
    assert again and again[3] == "E_STORAGE" and "map-max" in again[4], again


harness.run(test)

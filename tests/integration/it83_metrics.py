"""GET /metrics and /healthz (renkei-broker --http): the counters scraped
during a run match what was published, refused (by reason), retried and
replayed; connections are counted; /healthz is 200 while the log takes
writes and 503, with the reason, once the log is full."""
import json

import msgpack
import zmq

import harness
from harness import Broker


def scrape(port):
    status, text = harness.http_get(port, "/metrics")
    assert status == 200, status
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test(b):
    port = harness.free_port()
    b.extra = ["--http", str(port)]
    b.start()
    assert b.record("http_listening")["addr"] == str(port), b.log()

    ctx = zmq.Context()
    pub = ctx.socket(zmq.DEALER)
    pub.linger = 0
    pub.connect(b.ingest)
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.setsockopt(zmq.SUBSCRIBE, b"~\n")
    sub.connect(b.feed)

    def rpc(event, corr, producer=None, number=None):
        hdr = [1, "pub", corr] + ([producer, number] if producer else [])
        pub.send_multipart([msgpack.packb(hdr), msgpack.packb(event)])
        assert pub.poll(10000)
        return msgpack.unpackb(pub.recv_multipart()[0])

    good = harness.new_requests("m", 40)
    _, res, _ = b.agent("send", stdin="\n".join(json.dumps(e, ensure_ascii=False) for e in good)
                        + "\n", check_rc=0)
    # Idempotent publishes, then three retries of stored numbers.
    for i in range(5):
        assert rpc(harness.new_requests("idem", 5)[i], 100 + i, "metrics-test", i + 1)[1] == "ack"
    for i in range(3):
        assert rpc(harness.new_requests("idem", 5)[i], 200 + i, "metrics-test", i + 1)[1] == "ack"
    # Refusals: 2 of validation (E_RANGE), 1 of the lifecycle (E_UNKNOWN_REQUEST).
    bad = dict(good[0], event_id="bad-1", request_id="REQ-BAD-1", quantity=-5)
    assert rpc(bad, 300)[3] == "E_RANGE"
    assert rpc(dict(bad, event_id="bad-2"), 301)[3] == "E_RANGE"
    offer = {"type": "aid.offer", "event_id": "bad-3", "municipality": "271004",
             "sent_at": good[0]["sent_at"], "request_id": "REQ-NOBODY-9", "offer_id": "OFR-9",
             "resource": "water.drinking", "quantity": 5, "unit": "L"}
    assert rpc(offer, 302)[3] == "E_UNKNOWN_REQUEST"
    stored, _ = b.replay_all()
    assert len(stored) == 45

    # Connection counts and the replay total follow within a poll.
    m = harness.wait_for(lambda: scrape(port), "the subscriber and the replay in /metrics",
                         until=lambda m: m["renkei_subscriber_connections"] >= 1
                         and m["renkei_events_replayed_total"] >= 45)
    assert m["renkei_events_ingested_total"] == 45, m
    assert m["renkei_events_duplicate_total"] == 3, m
    assert m['renkei_events_rejected_total{reason="E_RANGE"}'] == 2, m
    assert m['renkei_events_rejected_total{reason="E_UNKNOWN_REQUEST"}'] == 1, m
    assert sum(v for k, v in m.items() if k.startswith("renkei_events_rejected_total")) == 3
    assert m["renkei_log_last_seq"] == 45
    assert m["renkei_events_replayed_total"] >= 45
    assert m["renkei_publisher_connections"] >= 1, m
    assert m["renkei_ingest_batch_events_sum"] == 45
    assert m['renkei_commit_seconds_bucket{le="+Inf"}'] == m["renkei_ingest_batch_events_count"]
    assert 0 < m["renkei_log_map_used_bytes"] <= m["renkei_log_map_size_bytes"]
    assert harness.http_get(port, "/healthz") == (200, "ok\n")
    assert harness.http_get(port, "/nothing")[0] == 404
    ctx.destroy(linger=0)

    # The logs: refusals with their reason, summed per (key, code) (the
    # first at once, the rest at the interval's end or at shutdown),
    # connections with their address; no line per published event.
    b.stop()
    log = b.log()
    ranges = b.records("publish_refused", code="E_RANGE")
    assert ranges[0]["why"].startswith("request.quantity: must be"), log
    assert sum(int(r["count"]) for r in ranges) == 2, log
    assert b.records("publish_refused", count=1, code="E_UNKNOWN_REQUEST"), log
    assert b.records("connection_opened", socket="ingest"), log
    assert len(log.splitlines()) < 30, f"{len(log.splitlines())} log lines for 48 publishes"

    # A full log: /healthz turns 503 and says why.
    port2 = harness.free_port()
    full = Broker(extra=["--map-max", "1M", "--durability", "os", "--http", str(port2)])
    try:
        full.start()
        lines = [json.dumps(e, ensure_ascii=False) for e in harness.new_requests("full", 6000)]
        rc, res, _ = full.agent("send", stdin="\n".join(lines) + "\n")
        refused = [r for r in res if not r["ok"]]
        assert refused and all(r["code"] == "E_STORAGE" for r in refused), refused[:2]
        # A small batch may still fit after a big one failed: make the last
        # commit attempt one that fails, then ask.
        for i in range(100):
            big = dict(harness.new_requests(f"last{i}-", 1)[0], note="x" * 2000)
            _, last, _ = full.agent("send", stdin=json.dumps(big) + "\n")
            if not last[0]["ok"]:
                break
        assert last[0]["code"] == "E_STORAGE", last
        refused += last
        status, text = harness.http_get(port2, "/healthz")
        assert status == 503 and "full" in text, (status, text)
        m = scrape(port2)
        assert m['renkei_events_rejected_total{reason="E_STORAGE"}'] == len(refused)
        assert m["renkei_log_writable"] == 0
    finally:
        full.cleanup()


harness.run(test)

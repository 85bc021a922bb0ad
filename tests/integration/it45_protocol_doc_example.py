"""proto/PROTOCOL.md section 6 is executable: its bytes are what the broker does.

Reads the hex dumps and the JSON of the worked example from the document,
sends them to a real broker, and compares the replies byte for byte (the
receive time and sequence number are the broker's, so those are checked by
shape). If the document and the code drift apart, this fails.
"""
import json
import os
import re
import shutil

import msgpack
import zmq

import harness


def section(text, title):
    start = text.index(title)
    end = text.index("\n## ", start + 1)
    return text[start:end]


def hex_blocks(text):
    """Every fenced block made of 'offset  hex bytes' lines, as bytes."""
    blocks, current, fenced = [], None, False
    for line in text.splitlines():
        if line.startswith("```"):
            if fenced and current:
                blocks.append(bytes.fromhex("".join(current)))
            fenced, current = not fenced, []
        elif fenced and current is not None:
            if re.match(r"^[0-9a-f]{4}  ([0-9a-f]{2} ?)+$", line):
                current.append(line[6:])
            else:
                current = None  # not a hex dump
    return blocks


def test(b):
    doc = open(os.path.join(harness.SOURCE, "proto", "PROTOCOL.md"), encoding="utf-8").read()
    example = section(doc, "## 6. Worked example")
    pub_hdr, event_bytes, ack_example, err_example = hex_blocks(example)[:4]  # then 6.1
    event_json = json.loads(re.search(r"```json\n(.*?)```", example, re.S).group(1))

    # The document's bytes are what any MessagePack library produces.
    assert pub_hdr == msgpack.packb([1, "pub", 1])
    assert msgpack.unpackb(event_bytes) == event_json
    assert len(event_bytes) == 284
    assert msgpack.unpackb(ack_example) == [1, "ack", 1, 42, 1771308000123456789]

    b.start()
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(b.ingest)
    dealer.send_multipart([pub_hdr, event_bytes])
    assert dealer.poll(10000), "no reply to the worked example's publish"
    (ack,) = dealer.recv_multipart()
    ack = msgpack.unpackb(ack)
    assert ack[:4] == [1, "ack", 1, 1] and len(ack) == 5, ack

    # The refused offer of the example: the reply must be the document's bytes.
    offer = {"type": "aid.offer", "event_id": "271004-0001", "municipality": "271004",
             "sent_at": "2026-02-17T15:05:00+09:00", "request_id": "REQ-304018-001",
             "offer_id": "OFR-271004-001", "resource": "goods.generator", "quantity": -5,
             "unit": "piece"}
    dealer.send_multipart([msgpack.packb([1, "pub", 2]), msgpack.packb(offer)])
    assert dealer.poll(10000)
    (err,) = dealer.recv_multipart()
    assert err == err_example, (err, err_example)

    # Stored unchanged: the replay returns the same event.
    stored, _ = b.replay_all()
    assert [e["event"] for e in stored] == [event_json]
    dealer.close()
    batch_example(b, ctx, doc, event_bytes)
    ctx.destroy(linger=0)


def batch_example(b, ctx, doc, event_bytes):
    """Section 6.1 on an empty log: the pubs header is the document's, and
    the reply is the document's but for the receive time."""
    example = section(doc, "### 6.1 A batch")
    pubs_hdr, outcomes_example = hex_blocks(example)
    assert pubs_hdr == msgpack.packb([1, "pubs", 7, 2, "agent-304018", 1])
    doc_reply = msgpack.unpackb(outcomes_example)
    second = event_bytes.replace(b"304018-0001", b"304018-0002")
    assert len(second) == 284 and second[0x23:0x27] == b"0002"
    b.stop()
    shutil.rmtree(b.data)
    b.start()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(b.ingest)
    for attempt in ("first", "again"):
        dealer.send_multipart([pubs_hdr, event_bytes + second])
        assert dealer.poll(10000), "no reply to the worked example's pubs"
        reply = msgpack.unpackb(dealer.recv_multipart()[0])
        assert reply[:3] == doc_reply[:3] and isinstance(reply[3], int), reply
        runs = reply[4]
        if attempt == "first":
            assert runs == doc_reply[4], (runs, doc_reply[4])
            recv_ns = reply[3]
        else:
            assert runs[0] == [0, 1, 1, recv_ns], runs
            assert runs[1][:3] == [1, 1, "E_DUPLICATE_REQUEST"], runs
            assert "when first sent" in runs[1][3], runs
    dealer.close()


harness.run(test)

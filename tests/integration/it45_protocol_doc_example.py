"""proto/PROTOCOL.md section 6 is executable: its bytes are what the broker does.

Reads the hex dumps and the JSON of the worked example from the document,
sends them to a real broker, and compares the replies byte for byte (the
receive time and sequence number are the broker's, so those are checked by
shape). If the document and the code drift apart, this fails.
"""
import json
import os
import re

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
    pub_hdr, event_bytes, ack_example, err_example = hex_blocks(example)
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
    ctx.destroy(linger=0)


harness.run(test)

#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets (committed under corpus/):
valid examples of every input, from the scenario fixture and PROTOCOL.md.
Run from anywhere; needs Debian's python3-msgpack."""
import json
import os

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "fixtures", "disaster_scenario.jsonl")


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def events():
    with open(FIXTURE) as f:
        for i, line in enumerate(f):
            if i % 4 == 0:  # a quarter covers every type and stays small
                write("event", f"scenario-{i:03d}", msgpack.packb(json.loads(line)))


def headers():
    flt = {"topics": ["aid.request/27/", "kpi."], "from_time": 1, "to_time": 2**62,
           "request_id": "REQ-271004-001"}
    for name, h in {
        "pub": [1, "pub", 7], "pub-idem": [1, "pub", 8, "agent-271004", 42],
        "pub-flags": [1, "pub", 7, 1], "pub-idem-flags": [1, "pub", 8, "agent-271004", 42, 1],
        "acks": [1, "acks", 0, 1795400000000000000, [7, 1001, 8, 1003, 300, 70000]],
        "ack": [1, "ack", 7, 1001, 1795400000000000000],
        "err": [1, "err", 7, "E_RANGE", "offer.quantity: must be 1..10000000, got -5"],
        "replay": [1, "replay", 9, 1, 0, 1000], "replay-filter": [1, "replay", 9, 1, 0, 1000, flt],
        "evt": [1, "evt", 9, 5, 1795400000000000000], "end": [1, "end", 9, 6, 10, 5],
        "live": [1, "live", 0, 10, 1795400000000000000, 7, "aid.request/27/271004"],
        "tick": [1, "tick", 0, 10, 1795400000000000000, 10],
        "snap": [1, "snap", 3, 0, 1000, b""], "snap-filter": [1, "snap", 3, 5, 10, b"\x01\x02", flt],
        "snapend": [1, "snapend", 3, 5, b"", 4], "unknown": [1, "what", 5],
        "replay-packed": [1, "replay", 9, 1, 0, 1000, {}, 1],
        "snap-packed": [1, "snap", 3, 5, 10, b"", flt, 1], "evts": [1, "evts", 9, 2],
        "state": [1, "state", 4, 100, b""],
        "state-filter": [1, "state", 4, 100, b"REQ-1", {"requester": "27", "request_id": "R"}],
        "reqs": [1, "reqs", 4, 198, b"REQ-304018-001", 5],
        "replay-16": [1, "replay", 9, 1, 0, 10, {"topics": ["aid.x%d/" % i for i in range(16)]}],
        # a later element: the log identity (PROTOCOL.md 3.7), state's at_seq (3.6)
        "tick-id": [1, "tick", 0, 10, 1795400000000000000, 10, "9c1e04b2a55f6d7e8f90a1b2c3d4e5f6"],
        "end-id": [1, "end", 9, 6, 10, 5, "9c1e04b2a55f6d7e8f90a1b2c3d4e5f6"],
        "snapend-id": [1, "snapend", 3, 5, b"", 4, "9c1e04b2a55f6d7e8f90a1b2c3d4e5f6"],
        "reqs-id": [1, "reqs", 4, 198, b"", 5, "9c1e04b2a55f6d7e8f90a1b2c3d4e5f6"],
        "state-at": [1, "state", 4, 100, b"", {}, 77],
    }.items():
        write("wire", name, msgpack.packb(h))
    # the records frame after an "evts": one plain record, one with a publisher
    key = "rq:rw)L[J5sU6wz1.W4*{(J7j&aA7bJsJ[Dz#iKz"
    body = msgpack.packb({"type": "kpi.update", "v": 1})
    write("wire", "records", msgpack.packb([5, 1795400000000000000, body]) +
          msgpack.packb([6, 1795400000000000001, body * 20, key]))


def subkeys():
    for name, k in {
        "all": b"\x01~\n", "osaka-aid": b"\x01~aid.offer/27/|aid.request/27/\n",
        "kumamoto-kpi": b"\x01~kpi.update/43/431001\n", "bare-prefix": b"\x01aid.",
        "unsubscribe": b"\x00~aid.\n",
        "sixteen": b"\x01~" + b"|".join(b"aid.x%d/" % i for i in range(16)) + b"\n",
    }.items():
        write("subkey", name, k)


events()
headers()
subkeys()

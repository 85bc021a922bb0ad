"""The broker says each request's state (PROTOCOL.md 3.6), read from its
state tables, so no client folds the lifecycle itself.

The shared disaster scenario is published; then a client written from the
spec asks "state" over the replay socket: in pages, all of it must equal
the scenario oracle's final states (disaster_scenario_expected.json); a
requester filter (prefecture, municipality) selects exactly those
requests; request_id selects one; filters a state cannot honour are
refused with E_HEADER naming the field, and so is an empty filter value
in replay, snap and state (it used to be read as "no filter"). After a SIGKILL and restart the
answer is the same, and it is consistent with the log's head."""
import msgpack
import zmq

import harness

TIMEOUT_MS = 10000


def ask(sock, corr, limit, cursor=b"", flt=None):
    hdr = [1, "state", corr, limit, cursor] + ([flt] if flt is not None else [])
    sock.send(msgpack.packb(hdr, use_bin_type=True))
    if not sock.poll(TIMEOUT_MS):
        raise AssertionError("no reply to state")
    frames = sock.recv_multipart()
    head = msgpack.unpackb(frames[0], raw=False)
    assert head[2] == corr, head
    return head, frames


def state_all(sock, limit, flt=None):
    """Every page; returns {request_id: state} and the seqs of the pages."""
    got, seqs, cursor, corr = {}, [], b"", 100
    while True:
        corr += 1
        head, frames = ask(sock, corr, limit, cursor, flt)
        assert head[1] == "reqs", head
        _, _, _, seq, cursor, count = head[:6]  # later fields: log_id (3.7)
        reqs = msgpack.unpackb(frames[1], raw=False)
        assert len(frames) == 2 and len(reqs) == count <= limit, (head, len(reqs))
        seqs.append(seq)
        for r in reqs:
            assert r["request_id"] not in got, "a request came twice"
            got[r.pop("request_id")] = r
        if not cursor:
            return got, seqs


def as_expected(r):
    """A wire state in the oracle's shape: offers keyed by offer_id."""
    r = dict(r)
    r["offers"] = {o.pop("offer_id"): o for o in (dict(x) for x in r["offers"])}
    return r


def check_errors(sock):
    for flt, field in [({"topics": ["aid."]}, "filter.topics"),
                       ({"kpi_id": "K-1"}, "filter.kpi_id"),
                       ({"requester": "3"}, "filter.requester")]:
        head, _ = ask(sock, 7, 10, b"", flt)
        assert head[1] == "err" and head[3] == "E_HEADER" and head[4].startswith(field), head
    # a replay with the state-only key is refused, not widened
    sock.send(msgpack.packb([1, "replay", 8, 1, 0, 10, {"requester": "30"}]))
    assert sock.poll(TIMEOUT_MS)
    head = msgpack.unpackb(sock.recv_multipart()[0], raw=False)
    assert head[1] == "err" and head[3] == "E_HEADER" and "requester" in head[4], head
    # an empty value is no filter: refused, never read as "everything"
    for hdr in ([1, "replay", 11, 1, 0, 10, {"request_id": ""}],
                [1, "replay", 12, 1, 0, 10, {"topics": [""]}],
                [1, "snap", 13, 0, 10, b"", {"kpi_id": ""}],
                [1, "state", 14, 10, b"", {"requester": ""}]):
        sock.send(msgpack.packb(hdr, use_bin_type=True))
        assert sock.poll(TIMEOUT_MS)
        head = msgpack.unpackb(sock.recv_multipart()[0], raw=False)
        assert head[1] == "err" and head[3] == "E_HEADER", (hdr, head)


def test(b):
    expected = harness.scenario_expected()["final_states"]
    b.start()
    _, res, _ = b.agent("send", stdin="".join(l if l.endswith("\n") else l + "\n"
                                              for l in harness.scenario_lines()))
    stored = sum(1 for r in res if r["ok"])
    assert stored == harness.scenario_expected()["summary"]["accepted"], stored
    ctx = zmq.Context()
    for round_ in ("running", "after SIGKILL"):
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(b.replay)
        got, seqs = state_all(sock, 5)
        assert len(seqs) >= 5 and set(seqs) == {stored}, (round_, seqs)
        assert {k: as_expected(v) for k, v in got.items()} == expected, round_
        for prefix in ("30", "304018", "27"):
            part, _ = state_all(sock, 1000, {"requester": prefix})
            want = {k for k, v in expected.items() if v["requester"].startswith(prefix)}
            assert set(part) == want and want, (prefix, sorted(part), sorted(want))
        one = next(iter(expected))
        head, frames = ask(sock, 9, 10, b"", {"request_id": one})
        reqs = msgpack.unpackb(frames[1], raw=False)
        assert head[5] == 1 and head[4] == b"" and reqs[0]["request_id"] == one, head
        head, frames = ask(sock, 10, 10, b"", {"request_id": "REQ-NOT-THERE"})
        assert head[1] == "reqs" and head[5] == 0 and msgpack.unpackb(frames[1]) == [], head
        check_errors(sock)
        sock.close()
        b.kill()
        b.start()
    ctx.term()


if __name__ == "__main__":
    harness.run(test)

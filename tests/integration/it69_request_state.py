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

TIMEOUT_MS = harness.STATE_TIMEOUT_MS


ask, state_all, as_expected = harness.state_ask, harness.state_all, harness.state_as_expected


def check_cursors(sock):
    """A cursor the broker did not write for this log (garbage, a page's
    cursor cut short, a state cursor given to snap) is refused, never read
    as a position: the old broker answered garbage with a complete, empty
    page. A cursor it wrote is taken."""
    head, _ = ask(sock, 20, 2)
    good = head[4]
    assert good, head  # more than 2 requests: there is a next page
    for bad in (b"\x01\x02garbage", good[:-1], b"REQ-304280-001"):
        head, _ = ask(sock, 21, 2, bad)
        assert head[1] == "err" and head[3] == "E_HEADER" and head[4].startswith("cursor:"), \
            (bad, head)
    head, _ = ask(sock, 22, 2, good)
    assert head[1] == "reqs", head
    sock.send(msgpack.packb([1, "snap", 23, 0, 10, good], use_bin_type=True))
    assert sock.poll(TIMEOUT_MS)
    head = msgpack.unpackb(sock.recv_multipart()[0], raw=False)
    assert head[1] == "err" and head[3] == "E_HEADER" and head[4].startswith("cursor:"), head


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
        check_cursors(sock)
        sock.close()
        b.kill()
        b.start()
    ctx.term()


if __name__ == "__main__":
    harness.run(test)

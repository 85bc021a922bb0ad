"""Ordered producers under crashes (PROTOCOL.md 3.2).

A client written to the spec alone, with ZeroMQ's automatic reconnect left
on (the default), publishes the shared disaster scenario under one
producer, many publishes in flight. In each of 10 rounds the broker is
SIGKILLed once at a random point and restarted while the client goes on
sending: publishes queued on the dead connection then reach the new broker
before the client's resends of the lost ones. The client does only what
the spec says: on E_ORDER it sends again from the number the broker names,
oldest first; on silence it asks "ping" and resends its unanswered ones in
order. Every round must end with the request states of an uninterrupted
run (the scenario oracle's), and the log must hold each accepted event
once, in the scenario's order."""
import json
import random
import shutil
import threading
import time

import msgpack
import zmq

import harness

ROUNDS = 10
WINDOW = 16
SILENCE_S = 1.0
PRODUCER = "it58-scenario"


class SpecClient:
    """One producer, numbers 1..n for the scenario's events in order."""

    def __init__(self, ctx, endpoint, events):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(endpoint)
        self.events = events
        self.outcome = [None] * len(events)   # ("ack", seq) or ("err", code)
        self.last_corr = [0] * len(events)    # corr of each event's latest send
        self.by_corr = {}
        self.corr = 0
        self.next = 0                          # index of the next event to send
        self.rewinds = 0

    def _send(self, i):
        self.corr += 1
        self.last_corr[i] = self.corr
        self.by_corr[self.corr] = i
        hdr = [1, "pub", self.corr, PRODUCER, i + 1]
        self.sock.send_multipart([msgpack.packb(hdr), self.events[i]])

    def _in_flight(self):
        return sum(1 for i in range(self.next) if self.outcome[i] is None)

    def _rewind(self, i):
        """Sends again from event i, in order (the spec's rule)."""
        if i < self.next:
            self.next = i
            self.rewinds += 1

    def _reply(self, r):
        if r[1] == "pong":
            return
        i = self.by_corr.get(r[2])
        if i is None:
            return
        if r[1] == "ack":
            self.outcome[i] = ("ack", r[3])
        elif r[1] == "acks":
            return
        elif r[3] == "E_ORDER":
            want = r[5] - 1
            # Resent already since this publish went out? Then the gap is
            # being filled; otherwise send again from the number named.
            if self.outcome[want] is None and self.last_corr[want] < r[2]:
                self._rewind(want)
        elif r[3] == "E_STORAGE":
            self._rewind(i)
        else:
            self.outcome[i] = ("err", r[3])

    def run(self, on_ack=None, deadline_s=120):
        deadline = time.monotonic() + deadline_s
        quiet_since = time.monotonic()
        while any(o is None for o in self.outcome):
            assert time.monotonic() < deadline, "the client did not finish"
            while self.next < len(self.events) and self._in_flight() < WINDOW:
                if self.outcome[self.next] is None:
                    self._send(self.next)
                self.next += 1
            if self.sock.poll(100):
                quiet_since = time.monotonic()
                while self.sock.poll(0):
                    self._reply(msgpack.unpackb(self.sock.recv_multipart()[0], raw=False))
                if on_ack:
                    on_ack(sum(1 for o in self.outcome if o is not None))
            elif time.monotonic() - quiet_since > SILENCE_S:
                # Silence: the broker may be gone. Resend the unanswered
                # ones oldest first (the spec's rule after a lost link).
                self.corr += 1
                self.sock.send_multipart([msgpack.packb([1, "ping", self.corr])])
                first = next((i for i, o in enumerate(self.outcome) if o is None), None)
                if first is not None:
                    self._rewind(first)
                quiet_since = time.monotonic()


def publish_with_kill(b, ctx, events, kill_after):
    state = {"killed": False, "restart": None}

    def on_ack(answered):
        if kill_after is not None and not state["killed"] and answered >= kill_after:
            state["killed"] = True
            b.kill()
            state["restart"] = threading.Thread(target=b.start)
            state["restart"].start()

    c = SpecClient(ctx, b.ingest, events)
    c.run(on_ack)
    if state["restart"]:
        state["restart"].join()
    assert kill_after is None or state["killed"], "the kill did not happen"
    c.sock.close()
    return c


def final_states(b, ctx):
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(b.replay)
    got, _ = harness.state_all(sock, 1000)
    sock.close()
    return {k: harness.state_as_expected(v) for k, v in got.items()}


def test(b):
    expected = harness.scenario_expected()
    lines = harness.scenario_lines()
    events = [msgpack.packb(json.loads(l)) for l in lines]
    accepted_ids = [json.loads(l)["event_id"] for i, l in enumerate(lines, 1)
                    if i not in {r["line"] for r in expected["rejected"]}]
    rng = random.Random(58)
    ctx = zmq.Context()
    for round_ in range(ROUNDS + 1):
        kill_after = None if round_ == 0 else rng.randrange(5, len(events) - 5)
        shutil.rmtree(b.data, ignore_errors=True)  # a fresh log each round
        b.start()
        c = publish_with_kill(b, ctx, events, kill_after)
        label = f"round {round_} (kill after {kill_after} answers, {c.rewinds} rewinds)"
        refused = sorted(i + 1 for i, o in enumerate(c.outcome) if o[0] == "err")
        assert refused == sorted(r["line"] for r in expected["rejected"]), (label, refused)
        assert final_states(b, ctx) == expected["final_states"], label
        stored, _ = b.replay_all()
        ids = [e["event"]["event_id"] for e in stored]
        assert ids == accepted_ids, (label, ids)
        print(label, "ok", flush=True)
        b.stop()
    ctx.term()


if __name__ == "__main__":
    harness.run(test)

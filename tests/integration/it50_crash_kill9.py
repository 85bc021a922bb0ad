"""Crash safety: publishers publish continuously while the broker is killed
with SIGKILL at random moments, over several rounds. After each restart every
acknowledged event is in the log exactly once, at the sequence its ack gave,
sequence numbers have no gap, and the hash chain verifies. Retries use
idempotent producer numbers, so events in doubt at the kill are stored once.
"""
import json
import random
import signal
import subprocess
import threading
import time

import msgpack
import zmq

import harness

ROUNDS = 5
PUBLISHERS = 3
WINDOW = 64
RATE = 1500  # events/s per publisher: enough to be mid-batch at every kill,
             # few enough that replaying the log each round stays quick


class Publisher(threading.Thread):
    """Raw DEALER client with a producer id; resends what is unacknowledged
    after each reconnect, as an agent's outbox would."""

    def __init__(self, broker, index, base_events, stop):
        super().__init__(daemon=True)
        self.broker, self.index, self.stop = broker, index, stop
        self.base = base_events
        self.producer = f"crash-p{index}"
        self.next_number = 1
        self.unacked = {}      # number -> packed event
        self.acked = {}        # number -> (seq, event_id)
        self.errors = []
        self.tokens, self.refilled = 0.0, time.monotonic()

    def make_event(self, number):
        e = dict(self.base[number % len(self.base)])
        e["event_id"] = f"crash-{self.index}-{number}"
        return msgpack.packb(e)

    def run(self):
        ctx = zmq.Context()
        try:
            while not self.stop.is_set():
                self.session(ctx)
        finally:
            ctx.destroy(linger=0)

    def session(self, ctx):
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(self.broker.ingest)
        in_flight = 0
        for number, body in sorted(self.unacked.items()):  # resend what is in doubt
            sock.send_multipart([msgpack.packb([1, "pub", number, self.producer, number]), body])
            in_flight += 1
        quiet_since = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()  # token bucket: RATE per second, bursts of WINDOW
            self.tokens = min(WINDOW, self.tokens + (now - self.refilled) * RATE)
            self.refilled = now
            while in_flight < WINDOW and self.tokens >= 1:
                self.tokens -= 1
                n = self.next_number
                self.next_number += 1
                body = self.make_event(n)
                self.unacked[n] = body
                sock.send_multipart([msgpack.packb([1, "pub", n, self.producer, n]), body])
                in_flight += 1
            if not sock.poll(5 if in_flight < WINDOW else 200):
                if in_flight and time.monotonic() - quiet_since > 1.0:
                    break  # the broker is gone: reconnect and resend
                continue
            quiet_since = time.monotonic()
            reply = msgpack.unpackb(sock.recv_multipart()[0])
            in_flight -= 1
            if reply[1] != "ack":
                self.errors.append(reply)
                continue
            number = reply[2]
            self.unacked.pop(number, None)
            if number in self.acked and self.acked[number][0] != reply[3]:
                self.errors.append(("two acks disagree", number, self.acked[number], reply))
            self.acked[number] = (reply[3], f"crash-{self.index}-{number}")
        sock.close(linger=0)


def check_log(b, pubs, round_no, seed):
    # Publishers keep going meanwhile: only acks seen before the replay
    # starts are sure to be inside it.
    acks = [dict(p.acked) for p in pubs]
    stored, _ = b.replay_all()
    seqs = [e["seq"] for e in stored]
    assert seqs == list(range(1, len(seqs) + 1)), f"seed {seed} round {round_no}: gap in {seqs[:5]}..."
    ids = [e["event"]["event_id"] for e in stored]
    dups = {i for i in ids if ids.count(i) > 1} if len(ids) != len(set(ids)) else set()
    assert not dups, f"seed {seed} round {round_no}: stored twice: {sorted(dups)[:5]}"
    at = {e["event"]["event_id"]: e["seq"] for e in stored}
    acked = 0
    for acked_by_one in acks:
        for number, (seq, event_id) in acked_by_one.items():
            acked += 1
            assert at.get(event_id) == seq, \
                f"seed {seed} round {round_no}: acked {event_id} at {seq}, log has {at.get(event_id)}"
    v = subprocess.run([harness.tool("renkei-replay"), "--verify", "--data-dir", b.data],
                       capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, f"seed {seed} round {round_no}: {v.stdout} {v.stderr}"
    assert json.loads(v.stdout)["records"] >= len(stored)  # publishing goes on
    return len(stored), acked


def test(b):
    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    print(f"seed {seed}")
    base = [json.loads(l) for l in harness.scenario_lines()]
    b.start()
    stop = threading.Event()
    pubs = [Publisher(b, i, base, stop) for i in range(PUBLISHERS)]
    for p in pubs:
        p.start()
    for round_no in range(1, ROUNDS + 1):
        time.sleep(rnd.uniform(0.2, 1.5))
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait()
        b.proc = None
        b.start()
        # Before publishers catch up, the restarted log must already be whole.
        ready = [l for l in b.log().splitlines() if "msg=ready" in l][-1]
        stored, acked = check_log(b, pubs, round_no, seed)
        assert f"last_seq={stored}" in ready or stored >= int(ready.split("last_seq=")[1].split()[0])
        print(f"round {round_no}: {stored} stored, {acked} acknowledged before the check")
    # Let every publisher drain its doubts into the last broker, then check all.
    deadline = time.monotonic() + 30
    while any(p.unacked for p in pubs) and time.monotonic() < deadline:
        time.sleep(0.1)
        if all(len(p.unacked) <= WINDOW for p in pubs):
            break
    stop.set()
    for p in pubs:
        p.join(timeout=10)
    stored, acked = check_log(b, pubs, "final", seed)
    errors = [e for p in pubs for e in p.errors]
    assert not errors, f"seed {seed}: refusals: {errors[:5]}"
    assert acked > 1000, f"too little traffic to mean anything: {acked} acknowledged"
    print(f"final: {stored} stored, {acked} acknowledged, {ROUNDS} kills")


harness.run(test)

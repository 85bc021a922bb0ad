"""Crash safety: publishers publish continuously while the broker is killed
with SIGKILL at random moments, over several rounds, and restarted on the same
data directory. After each restart:

- the log holds sequence numbers 1..N with no gap or duplicate, N is the
  last_seq of the broker's "ready" line, and the hash chain verifies;
- the log only grows: what it held before the kill is still there, in place;
- every acknowledged event is in the log exactly once, at the seq and
  recv_ns its ack gave, byte for byte as sent;
- no event is stored twice, and nothing is stored that was never sent.

Two kinds of publisher run side by side (raw pyzmq DEALERs, pipelined):

- plain ones ([1, "pub", corr]) never retry: what was in flight at a kill is
  "in doubt", may or may not be stored, but never twice; the test counts how
  many in-doubt events made it;
- idempotent ones ([1, "pub", corr, producer, number]) resend everything
  unacknowledged after each reconnect, as an agent's outbox would: each is
  then stored exactly once and acknowledged with its original seq.

The kill moments come from a seeded random.Random; the seed is printed and
RK_CRASH_SEED=<seed> (and RK_CRASH_ROUNDS=<n>) repeat a run's schedule.
"""
import json
import os
import random
import subprocess
import sys
import threading
import time

import msgpack
import zmq

import harness

ROUNDS = int(os.environ.get("RK_CRASH_ROUNDS", "5"))
PLAIN, IDEMPOTENT = 2, 2   # publisher threads of each kind
WINDOW = 64                # publishes in flight per publisher
RATES = (1500, 6000)       # events/s per publisher, chosen per round: enough
                           # to be mid-batch at every kill (the higher one fills
                           # batches), few enough to keep each check quick
REPLY_TIMEOUT_S = 30       # a live broker must answer every publish by then


class Control:
    """What the main thread tells the publishers."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.gate = threading.Event()   # set: connect and publish; clear: park
        self.draining = False           # no new events; finish what is in flight
        self.rate = RATES[0]            # events/s per publisher


class Publisher(threading.Thread):
    """A raw DEALER client. Between kills it publishes at ctl.rate with up to
    WINDOW in flight; when the gate closes it drops its socket (so nothing
    queued in it can reach the next broker) and parks until it reopens."""

    def __init__(self, ctl, index, base, idempotent):
        super().__init__(daemon=True, name=f"pub{index}")
        self.ctl, self.index, self.base, self.idempotent = ctl, index, base, idempotent
        self.producer = f"crash-p{index}" if idempotent else None
        self.parked = threading.Event()
        self.done = False
        self.next_n = 1
        self.sent = {}         # event_id -> hash of the bytes sent
        self.in_flight = {}    # corr -> event_id (each corr used once)
        self.acked = {}        # event_id -> (seq, recv_ns)
        self.in_doubt = set()  # plain: in flight at a kill, never resent
        self.unacked = {}      # idempotent: number -> bytes, until acked
        self.resent = 0
        self.errors = []       # anything but a consistent ack
        self.corr = 0
        self.session_acks = 0  # acks since the gate last opened (reset while parked)
        self.tokens, self.refilled = 0.0, time.monotonic()

    def event_id(self, n):
        e = self.base[(n - 1) % len(self.base)]
        return f"{e['municipality']}-p{self.index}-{n}"

    def make_event(self, n):
        # Each pass over the base is a fresh lifecycle: its ids get the
        # publisher and the pass, so the broker accepts every event.
        cycle = (n - 1) // len(self.base)
        e = harness.renamed(self.base[(n - 1) % len(self.base)], f"p{self.index}c{cycle}")
        e["event_id"] = self.event_id(n)
        return e["event_id"], msgpack.packb(e)

    def send(self, sock, n, body, event_id):
        self.corr += 1
        hdr = [1, "pub", self.corr] + ([self.producer, n] if self.idempotent else [])
        sock.send_multipart([msgpack.packb(hdr), body])
        self.in_flight[self.corr] = event_id

    def on_reply(self, frames):
        reply = msgpack.unpackb(frames[0])
        event_id = self.in_flight.pop(reply[2], None) if len(reply) > 2 else None
        if event_id is None or reply[:2] != [1, "ack"] or len(reply) < 5:
            self.errors.append(("unexpected reply", event_id, reply))
            return
        got = (reply[3], reply[4])
        if event_id in self.acked and self.acked[event_id] != got:
            self.errors.append(("two acks disagree", event_id, self.acked[event_id], got))
        self.acked[event_id] = got
        self.session_acks += 1
        if self.idempotent:
            self.unacked.pop(int(event_id.rsplit("-", 1)[1]), None)

    def run(self):
        ctx = zmq.Context()
        try:
            while True:
                self.ctl.gate.wait()
                if self.done:
                    break
                self.session(ctx)  # returns when the gate closes, or drained
                self.parked.set()
                if self.done:
                    break
        except BaseException as e:  # reported by the main thread
            self.errors.append(("publisher crashed", repr(e)))
            self.parked.set()
        finally:
            ctx.destroy(linger=0)

    def session(self, ctx):
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.sndhwm = sock.rcvhwm = 0
        sock.connect(self.ctl.endpoint)
        for n, body in sorted(self.unacked.items()):  # idempotent: resend the doubts
            self.send(sock, n, body, self.event_id(n))
            self.resent += 1
        quiet_since = time.monotonic()
        while self.ctl.gate.is_set():
            now = time.monotonic()
            if self.ctl.draining:
                if not self.in_flight:
                    self.done = True
                    break
                if now - quiet_since > REPLY_TIMEOUT_S:
                    self.errors.append(("no reply from a live broker", sorted(self.in_flight.values())[:5]))
                    self.done = True
                    break
            else:
                self.tokens = min(WINDOW, self.tokens + (now - self.refilled) * self.ctl.rate)
                self.refilled = now
                while len(self.in_flight) < WINDOW and self.tokens >= 1:
                    self.tokens -= 1
                    n = self.next_n
                    self.next_n += 1
                    event_id, body = self.make_event(n)
                    self.sent[event_id] = hash(body)
                    if self.idempotent:
                        self.unacked[n] = body
                    self.send(sock, n, body, event_id)
            if sock.poll(10):
                while True:
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.on_reply(frames)
                quiet_since = time.monotonic()
        sock.close(linger=0)
        # Whatever is still in flight may or may not be stored.
        if not self.idempotent:
            self.in_doubt.update(self.in_flight.values())
        self.in_flight.clear()


def replay_log(ctx, endpoint, fail):
    """The whole log over the raw replay protocol: [(seq, recv_ns, bytes)].
    Fails on a missing seq, a repeated one, or one out of order."""
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvhwm = 0
    sock.connect(endpoint)
    records, want, corr, head, stuck, suspect = [], 1, 0, None, 0, None
    try:
        while head is None or want <= head:
            corr += 1
            sock.send(msgpack.packb([1, "replay", corr, want, 0, 1000]))
            first, dropped, before = True, False, want
            while True:
                if not sock.poll(30000):
                    fail(f"replay: no answer to a request from seq {want}")
                frames = sock.recv_multipart()
                h = msgpack.unpackb(frames[0])
                if h[1] == "err":
                    fail(f"replay refused: {h}")
                if h[2] != corr:
                    fail(f"replay: reply for corr {h[2]}, asked {corr}: {h}")
                if h[1] == "end":
                    head = h[4]
                    break
                seq = h[3]
                if seq == want and not dropped:
                    records.append((seq, h[4], frames[1]))
                    want += 1
                elif seq < want:
                    fail(f"replay: seq {seq} again or out of order, after {want - 1}")
                elif first and suspect == want:
                    # Twice the first stored seq >= want was not want: it is missing.
                    fail(f"gap: seq {want} is missing, the log goes on at {seq} ({h})")
                else:
                    # A reply dropped by flow control, or a gap: ask again.
                    suspect = want if first else suspect
                    dropped = True
                first = False
            stuck = stuck + 1 if want == before else 0
            if stuck > 3:
                fail(f"replay makes no progress at seq {want}, head_seq {head}")
    finally:
        sock.close(linger=0)
    return records


class Checker:
    """The invariants, over the whole history, each time the publishers are
    parked and the broker is up."""

    def __init__(self, b, pubs, seed):
        self.b, self.pubs, self.seed = b, pubs, seed
        self.ctx = zmq.Context()
        self.prev_ids = []
        self.label = ""

    def fail(self, msg):
        raise AssertionError(f"seed {self.seed} {self.label}: {msg}\n"
                             f"(repeat with RK_CRASH_SEED={self.seed} RK_CRASH_ROUNDS={ROUNDS})")

    def check(self, label, restarted=True):
        """restarted: the broker has just started and nobody has published
        to it since, so its ready line must name the log's last seq."""
        self.label = label
        fail = self.fail
        errors = [(p.name,) + e for p in self.pubs for e in p.errors]
        if errors:
            fail(f"publishers saw {len(errors)} bad replies, e.g. {errors[:5]}")
        ready = self.b.ready  # the fields of this run's ready record
        ready_last = int(ready["last_seq"])

        records = replay_log(self.ctx, self.b.replay, fail)
        n = len(records)
        if [r[0] for r in records] != list(range(1, n + 1)):  # replay_log ensures it
            fail("seqs are not 1..N")
        if ready_last != n if restarted else ready_last > n:
            fail(f"the broker's ready line says last_seq={ready_last}, replay finds {n} records: {ready}")
        for (s1, t1, _), (s2, t2, _) in zip(records, records[1:]):
            if t2 < t1:
                fail(f"recv_ns decreases from seq {s1} ({t1}) to seq {s2} ({t2})")

        v = subprocess.run([harness.tool("renkei-replay"), "--verify", "--data-dir", self.b.data],
                           capture_output=True, text=True, timeout=120)
        harness.check_clean("renkei-replay --verify", v.stderr)
        if v.returncode != 0:
            fail(f"hash chain: exit {v.returncode}: {v.stdout} {v.stderr}")
        verdict = json.loads(v.stdout)
        if not verdict["ok"] or verdict["records"] != n or verdict["last_seq"] != n:
            fail(f"hash chain verify disagrees with replay ({n} records): {verdict}")

        at, ids = {}, []
        sent = {}
        for p in self.pubs:
            sent.update(p.sent)
        for seq, recv_ns, body in records:
            event_id = msgpack.unpackb(body)["event_id"]
            ids.append(event_id)
            if event_id in at:
                fail(f"{event_id} stored twice: seq {at[event_id][0]} and seq {seq}")
            at[event_id] = (seq, recv_ns)
            if event_id not in sent:
                fail(f"seq {seq} holds {event_id}, which no publisher sent")
            if sent[event_id] != hash(body):
                fail(f"seq {seq}: {event_id} stored with other bytes than were sent")
        if ids[:len(self.prev_ids)] != self.prev_ids:
            k = next(i for i, (x, y) in enumerate(zip(ids, self.prev_ids)) if x != y) \
                if len(ids) >= len(self.prev_ids) else len(ids)
            fail(f"the log changed below its old end {len(self.prev_ids)}: at seq {k + 1} "
                 f"it held {self.prev_ids[k]}, now {ids[k] if k < len(ids) else 'nothing'}")
        self.prev_ids = ids

        acked = lost = 0
        for p in self.pubs:
            bad = [(i, a, at.get(i)) for i, a in p.acked.items() if at.get(i) != a]
            if bad:
                fail(f"{len(bad)} acknowledged events of {p.name} are not where their ack "
                     f"said, as (event_id, (seq, recv_ns) acked, (seq, recv_ns) in log or None): "
                     f"{sorted(bad, key=lambda x: x[1])[:10]}")
            acked += len(p.acked)
            lost += sum(1 for i in p.sent if i not in at)
        plain_doubt = set().union(*(p.in_doubt for p in self.pubs if not p.idempotent))
        plain_doubt_stored = sum(1 for i in plain_doubt if i in at)
        idem_doubt = [p.event_id(k) for p in self.pubs if p.idempotent for k in p.unacked]
        idem_doubt_stored = sum(1 for i in idem_doubt if i in at)
        stats = dict(stored=n, acked=acked, plain_in_doubt=len(plain_doubt),
                     plain_in_doubt_stored=plain_doubt_stored, idem_unacked=len(idem_doubt),
                     idem_unacked_stored=idem_doubt_stored, not_stored=lost,
                     resent=sum(p.resent for p in self.pubs))
        print(f"{label}: " + " ".join(f"{k}={v}" for k, v in stats.items()), flush=True)
        return stats


def test(b):
    seed = int(os.environ.get("RK_CRASH_SEED") or random.randrange(1 << 30))
    rnd = random.Random(seed)
    print(f"seed {seed} rounds {ROUNDS} (repeat: RK_CRASH_SEED={seed})", flush=True)
    # Idempotent publishers resend in order whatever a kill left unacked, so
    # they publish whole lifecycles (offers, accepts, ... that need earlier
    # events): after each restart the broker must have rebuilt every
    # request's state from the log to accept them. A plain publisher never
    # resends what was in flight at a kill, so it publishes only events that
    # need no other: new requests.
    lifecycle = [json.loads(l) for l in harness.valid_scenario_lines()]
    independent = [e for e in lifecycle if e["type"] == "aid.request" and e["version"] == 1]
    b.start()
    ctl = Control(b.ingest)
    pubs = [Publisher(ctl, i, lifecycle if i >= PLAIN else independent, idempotent=i >= PLAIN)
            for i in range(PLAIN + IDEMPOTENT)]
    chk = Checker(b, pubs, seed)
    for p in pubs:
        p.start()

    def park_all(label):
        ctl.gate.clear()
        for p in pubs:
            if not p.parked.wait(60):
                chk.label = label
                chk.fail(f"{p.name} did not stop publishing")

    def release_all():
        for p in pubs:
            p.parked.clear()
            p.session_acks = 0
        ctl.gate.set()

    killed_logs = []
    doubts = {}  # idempotent publisher -> the numbers unacknowledged at the last kill
    try:
        release_all()
        for round_no in range(1, ROUNDS + 1):
            ctl.rate = rnd.choice(RATES)
            label = f"round {round_no}/{ROUNDS} ({ctl.rate}/s per publisher)"
            # Publish for a random while, and until this broker has acknowledged
            # something, so that every kill lands in a running stream.
            time.sleep(rnd.uniform(0.2, 1.5))  # kept: the random kill moment is the test
            try:
                harness.wait_for(lambda: all(p.session_acks for p in pubs),
                                 "an ack from this broker to every publisher", timeout=60,
                                 interval=0.01)
            except AssertionError as e:
                chk.label = label
                chk.fail(f"{e}: " + str({p.name: (p.session_acks, len(p.in_flight)) for p in pubs}))
            b.kill()  # SIGKILL, wait, and no sanitizer report in its log
            killed_logs.append(b.log_path)
            park_all(label)
            try:
                b.start()
            except AssertionError as e:
                chk.label = label
                chk.fail(f"the broker did not restart after SIGKILL: {e}")
            chk.check(label)
            doubts = {p: set(p.unacked) for p in pubs if p.idempotent}
            release_all()

        # Let the idempotent publishers resend their doubts (the last kill's
        # unacknowledged events) and this broker answer them, then drain.
        def doubts_left():
            return {p.name: sorted(n for n in d if n in p.unacked)[:5] for p, d in doubts.items()
                    if any(n in p.unacked for n in d)}
        try:
            harness.wait_for(lambda: not doubts_left() and all(p.session_acks for p in pubs),
                             "the last kill's doubts acknowledged after resending", timeout=60)
        except AssertionError as e:
            chk.label = "drain"
            chk.fail(f"{e}: doubts still unacknowledged {doubts_left()}, acks "
                     + str({p.name: p.session_acks for p in pubs}))
        ctl.draining = True
        for p in pubs:
            p.join(REPLY_TIMEOUT_S + 30)
            if p.is_alive():
                chk.label = "drain"
                chk.fail(f"{p.name} still has {len(p.in_flight)} publishes unanswered")
        stats = chk.check("after the last kill, drained", restarted=False)
        left = {p.name: sorted(p.unacked)[:5] for p in pubs if p.unacked}
        if left:
            chk.fail(f"idempotent events never acknowledged despite resending: {left}")
        if stats["not_stored"] != stats["plain_in_doubt"] - stats["plain_in_doubt_stored"]:
            chk.fail(f"events neither acknowledged nor in doubt are missing: {stats}")
        if stats["acked"] < ROUNDS * len(pubs):
            chk.fail(f"too little traffic to mean anything: {stats}")

        # A clean stop and start keeps it all.
        b.stop()
        b.start()
        chk.check("after a clean restart")
        print(f"ok: {ROUNDS} SIGKILLs, {stats['stored']} events stored, {stats['acked']} "
              f"acknowledged, {stats['plain_in_doubt']} plain publishes in doubt of which "
              f"{stats['plain_in_doubt_stored']} were stored, {stats['resent']} idempotent "
              f"resends", flush=True)
    except BaseException:
        for path in killed_logs[-2:]:
            with open(path, errors="replace") as f:
                tail = f.read().splitlines()[-15:]
            sys.stderr.write(f"---- {os.path.basename(path)} (killed), last lines ----\n"
                             + "\n".join(tail) + "\n")
        raise
    finally:
        ctl.gate.clear()  # on a failure, publishers drop their sockets first
        for p in pubs:
            p.parked.wait(5)
            p.done = True
        ctl.gate.set()
        chk.ctx.destroy(linger=0)


harness.run(test)

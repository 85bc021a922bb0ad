"""A replay of a long log neither grows memory on either side nor stalls
ingest.

N events are loaded, then read back three ways while the broker's anonymous
resident memory (RssAnon: heap and stacks; the LMDB file it maps is
file-backed and not counted) is sampled every 20 ms:

1. renkei-replay over the whole log, its stdout read by a deliberately slow
   consumer, while a publisher publishes LIVE more events: every one is
   acknowledged while the replay is still running, and the replay delivers
   exactly seqs 1..N in order. renkei-replay's own peak RSS is bounded too.
2. A reader that asks for the whole log and then does not read for a while:
   when it resumes it gets one batch and "end", and going on from next_seq
   reads every event once, in order.
3. A greedy reader that sends a request for every batch of the log at once
   (against the SHOULD of PROTOCOL.md 3.4) and does not read: the broker
   drops what does not fit the client's window instead of queueing it,
   ingest goes on meanwhile, and re-asking for what was dropped completes
   the log with no gap and no duplicate.

Only memory growth, counts and order are asserted, never speed: the test
must hold on a loaded 2-core machine and under ASan.
"""
import os
import subprocess
import threading
import time

import msgpack
import zmq

import harness

N = 300_000           # events loaded: 3-9 s plain, 6-13 s ASan on a busy 2-core machine
LIVE = 2_000          # published while renkei-replay runs
LATE = 500            # published while the greedy reader is stalled
BATCH = 1000          # RK_REPLAY_LIMIT_MAX, PROTOCOL.md 3.4
REPLAY_MIN_S = 6.0    # the slow consumer stretches renkei-replay to at least this
STALL_S = 2.0         # how long the stalled readers do not read
TIMEOUT_MS = 30000

# The bound on memory growth, for the broker's RssAnon and renkei-replay's
# peak RSS alike. Served in batches, either side holds about one batch:
# 1,000 events of ~300 bytes (below) plus ZeroMQ's per-message overhead,
# under 1 MiB. Measured growth: 0.6-1 MiB plain (the same at N = 600,000);
# 6-18 MiB under ASan with its quarantine capped below (ASan's shadow and
# size-class regions, which grow slowly with N). Buffering the replay
# instead (no high-water mark, the whole range in one answer, a reader
# asking ahead of what it consumed) costs at least the events' bytes,
# N * ~300 B = ~87 MiB, and more with ZeroMQ's per-message allocations: a
# broker without its high-water mark grew by 140 MiB here, one answering
# whole ranges by 113 MiB. 32 MiB sits between with a margin either way.
BOUND_KIB = 32 * 1024

# ASan keeps freed blocks in a quarantine of up to 256 MiB before reusing
# them, which a replay of N events fills: RSS would grow by that much in a
# correct broker. Cap it for this test (use-after-free is still caught within
# the last 4 MiB freed; other tests run with the default). No effect without ASan.
os.environ["ASAN_OPTIONS"] = ":".join(
    o for o in (os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=4",
                "thread_local_quarantine_size_kb=256") if o)

# Publishing municipalities in nine prefectures (all in municipalities.csv).
MUNIS = ["271004", "281000", "272078", "261009", "304280", "300004", "360007",
         "431001", "011002", "131016", "401307", "231002"]
NOTE = "県南部の避難所へ配送。到着時刻は道路状況により前後する見込み。"


def sent_at(ahead_s=0):
    t = time.gmtime(time.time() + 9 * 3600 + ahead_s)
    return time.strftime("%Y-%m-%dT%H:%M:%S+09:00", t)


def event_id(tag, i):
    return f"{tag}-{i:07d}"


def make_event(tag, i, when):
    """Event i (1-based) of a stream: a KPI update, or a step of one support
    request's lifecycle: request, offer, accept (PROTOCOL.md 4.2, 4.3). The
    ids carry the stream's tag, so every stream is accepted by the broker.
    `when`: (sent_at, a request's deadline)."""
    now, deadline = when
    muni = MUNIS[i % len(MUNIS)]
    env = {"event_id": event_id(tag, i), "sent_at": now}
    j = i // 4
    requester, offerer = MUNIS[(j + 1) % len(MUNIS)], MUNIS[j % len(MUNIS)]
    request, offer = f"REQ-{tag}-{j}", f"OFR-{tag}-{j}"
    kind = i % 4
    if kind == 0:
        return {"type": "kpi.update", **env, "municipality": muni,
                "kpi_id": f"KPI-{muni}-{i % 40 + 1:03d}",
                "policy_area": "u.A.c", "name": "圏域内の創業者数（年間）", "unit": "人",
                "aggregation": "annual", "fiscal_year": 2024,
                "baseline": {"value": 772, "fy": 2016, "label": "H28"},
                "target": {"value": 1000, "fy": 2027},
                "current": {"value": 780 + i % 300, "fy": 2024, "as_of": "2025-03"},
                "region": "熊本連携中枢都市圏", "project": "創業支援事業"}
    if kind == 1:
        return {"type": "aid.request", **env, "municipality": requester, "request_id": request,
                "version": 1, "resource": "water.drinking", "quantity": 2000 + i % 50 * 100,
                "unit": "L", "urgency": "high", "deadline": deadline,
                "location": {"lat": 33.4758, "lon": 135.7837, "place": "町立体育館"},
                "note": NOTE}
    if kind == 2:
        return {"type": "aid.offer", **env, "municipality": offerer, "request_id": request,
                "offer_id": offer, "resource": "water.drinking", "quantity": 2000, "unit": "L",
                "note": NOTE}
    return {"type": "aid.accept", **env, "municipality": requester, "request_id": request,
            "offer_id": offer, "quantity": 2000, "note": NOTE}


def stream(tag, n):
    when = (sent_at(), sent_at(6 * 3600))  # sent_at, and a request's deadline
    return (msgpack.packb(make_event(tag, i, when)) for i in range(1, n + 1))


def expected_id(seq):
    """The event_id stored under seq: one publisher per phase, so in order."""
    if seq <= N:
        return event_id("it75", seq)
    if seq <= N + LIVE:
        return event_id("it75live", seq - N)
    return event_id("it75late", seq - N - LIVE)


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


# ---- 1. renkei-replay, a slow consumer, and ingest meanwhile

def run_replay_tool(b, to, on_progress=None, min_s=0.0):
    """renkei-replay --to `to`, stdout read here: every line's seq must be the
    next one. Throttled so the whole run takes at least min_s. Returns
    (count, finish time, peak RSS in KiB).

    The peak RSS is the process's VmHWM, sampled while it runs. It only
    rises, and reading stops for a moment when ~400 lines (more than the
    pipe holds) are left, so renkei-replay is sampled alive with every batch
    received. Not wait4's ru_maxrss: Linux carries a process's peak across
    fork and exec, so that would report this Python test's own RSS."""
    err_path = os.path.join(b.dir, f"replay-{time.monotonic_ns()}.err")
    with open(err_path, "w") as err:
        p = subprocess.Popen([harness.tool("renkei-replay"), "--replay", b.replay,
                              "--to", str(to), "--timeout", str(TIMEOUT_MS)],
                             stdout=subprocess.PIPE, stderr=err)
    b.children.append(p)
    fd = p.stdout.fileno()
    count, tail, t0, paused = 0, b"", time.monotonic(), False
    with harness.PeakSampler(p.pid, field="VmHWM") as hwm:
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            for line in lines:
                count += 1
                if not line.startswith(b'{"seq":%d,' % count):
                    raise AssertionError(f"line {count} of the replay: {line[:200]!r}")
                if count % 4999 == 0:  # spot check that each seq holds its own event
                    assert b'"event_id":"%s"' % expected_id(count).encode() in line, line
            if on_progress:
                on_progress(count)
            if not paused and count >= to - 400:
                paused = True
                time.sleep(0.1)   # kept: not reading while the sampler sees it, every batch in
            ahead = count * min_s / to - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)  # kept: the slow consumer is the test
        p.wait()
    done = time.monotonic()
    p.stdout.close()
    with open(err_path, errors="replace") as f:
        err_text = f.read()
    harness.check_clean("renkei-replay", err_text)
    assert p.returncode == 0 and not tail, (p.returncode, err_text, tail[:200])
    return count, done, hwm.peak


def replay_with_ingest(b, pid, base):
    # renkei-replay's own memory: a run over 1,000 events is the baseline.
    small, _, client_base = run_replay_tool(b, BATCH)
    assert small == BATCH

    state = {"progress": 0}
    started = threading.Event()

    def publisher():
        started.wait()
        try:
            state["seqs"] = harness.publish_pipelined(b.ingest, stream("it75live", LIVE))
            state["acked_at"] = time.monotonic()
            state["acked_progress"] = state["progress"]
        except BaseException as e:  # re-raised in the main thread
            state["error"] = e

    def progress(count):
        state["progress"] = count
        if count >= N // 20:
            started.set()   # the replay is well under way

    t = threading.Thread(target=publisher)
    t.start()
    try:
        with harness.PeakSampler(pid) as s:
            t0 = time.monotonic()
            count, done, client_peak = run_replay_tool(b, N, progress, REPLAY_MIN_S)
    finally:
        started.set()
        t.join()
    if "error" in state:
        raise state["error"]
    print(f"renkei-replay: {count} events in {done - t0:.1f} s; broker RssAnon "
          f"{mib(base)} -> peak {mib(s.peak)} (+{mib(s.peak - base)}, {s.samples} samples); "
          f"renkei-replay peak RSS {mib(client_peak)} (1,000 events: {mib(client_base)}); "
          f"{LIVE} acks done at {state['acked_progress'] * 100 // N}% of the replay, "
          f"{done - state['acked_at']:.1f} s before its end")
    assert count == N, count
    assert state["seqs"] == list(range(N + 1, N + LIVE + 1)), state["seqs"][:5]
    # Ordering, not speed: the replay runs for REPLAY_MIN_S at least, the
    # publisher starts 5 % into it, and LIVE acks take well under a second.
    assert state["acked_at"] < done and state["acked_progress"] < N, state
    assert s.peak - base < BOUND_KIB, f"broker RssAnon grew by {mib(s.peak - base)}"
    assert client_peak - client_base < BOUND_KIB, \
        f"renkei-replay peak RSS {mib(client_peak)}; {mib(client_base)} for 1,000 events"


# ---- 2. and 3. raw readers (PROTOCOL.md 3.4)

def recv(sock, timeout_ms=TIMEOUT_MS):
    if not sock.poll(timeout_ms):
        return None
    frames = sock.recv_multipart()
    return msgpack.unpackb(frames[0]), frames[1:]


def check_evt(h, rest, got):
    seq = h[3]
    assert h[1] == "evt" and len(rest) == 1, h
    want = expected_id(seq).encode()
    assert want in rest[0], (seq, rest[0][:120])
    got.append(seq)


class Reader(harness.Dealer):
    def ask(self, from_seq, to_seq=0):
        self.corr += 1
        self.sock.send(msgpack.packb([1, "replay", self.corr, from_seq, to_seq, BATCH]))
        return self.corr

    def batch(self, got):
        """The answer to the outstanding request: its evts appended to got;
        returns the "end" header."""
        while True:
            r = recv(self.sock)
            assert r is not None, "no reply from the replay socket"
            h, rest = r
            assert h[2] == self.corr, (h, self.corr)
            if h[1] == "end":
                return h
            check_evt(h, rest, got)

    def read(self, from_seq, to_seq, got):
        """Reads from_seq..to_seq (0: the end of the log), one request
        outstanding, as renkei-replay does; returns the last head_seq."""
        nxt = from_seq
        while True:
            self.ask(nxt, to_seq)
            first = len(got)
            end = self.batch(got)
            seqs = got[first:]
            assert seqs == list(range(nxt, nxt + len(seqs))), (nxt, seqs[:3], seqs[-3:])
            # A batch cut short at the window: go on after the last seq received.
            nxt = end[3] if len(seqs) == end[5] else nxt + len(seqs)
            if nxt > end[4] or (to_seq and nxt > to_seq):
                return end[4]


def stalled_reader(b, ctx, pid, base, total):
    rd = Reader(ctx, b.replay)
    got = []
    with harness.PeakSampler(pid) as s:
        rd.ask(1)                  # the whole log ...
        time.sleep(STALL_S)        # ... and nothing read meanwhile (kept: the stall is the test)
        end = rd.batch(got)
        first = len(got)
        # One batch, full or cut short at the window, from seq 1, then "end".
        assert 0 < first <= BATCH and got == list(range(1, first + 1)), got[:3]
        assert end[5] >= first and (first < end[5] or end[3] == first + 1), (first, end)
        head = rd.read(first + 1, 0, got)
    print(f"stalled reader: {first} events + end {end} after {STALL_S} s; "
          f"{len(got)} events in all; broker RssAnon peak +{mib(s.peak - base)}")
    assert head == total and got == list(range(1, total + 1)), (head, len(got))
    assert s.peak - base < BOUND_KIB, f"broker RssAnon grew by {mib(s.peak - base)}"


def wait_broker_idle(pid, quiet_s=0.5, limit_s=60):
    """Until the broker has used no CPU for quiet_s: it has answered (and
    dropped) what it was asked."""
    deadline = time.monotonic() + limit_s
    ticks = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)  # kept: a quiet_s without CPU use is the condition
        now = cpu_ticks(pid)
        if now == ticks:
            return
        ticks = now
    raise AssertionError(f"broker still busy after {limit_s} s")


def greedy_reader(b, ctx, pid, base, total):
    rd = Reader(ctx, b.replay)
    nreq = (total + BATCH - 1) // BATCH
    ranges = {}
    with harness.PeakSampler(pid) as s:
        for k in range(nreq):
            lo, hi = 1 + k * BATCH, min((k + 1) * BATCH, total)
            ranges[rd.ask(lo, hi)] = (lo, hi)
        # Ingest goes on while a replay client is stalled: LATE acks arrive
        # before the reader reads anything.
        late = harness.publish_pipelined(b.ingest, stream("it75late", LATE))
        time.sleep(STALL_S)  # kept: the stall is the test; then the broker must go idle too
        wait_broker_idle(pid)
        # Resume: take whatever the broker kept for us, until it is quiet.
        got, ends = [], 0
        while (r := recv(rd.sock, 1000)) is not None:
            h, rest = r
            lo, hi = ranges[h[2]]
            if h[1] == "end":
                ends += 1
                continue
            assert lo <= h[3] <= hi, (h, lo, hi)
            check_evt(h, rest, got)
        delivered = len(got)
        assert len(set(got)) == delivered and got == sorted(got), "duplicate or disorder"
        # Ask again, one request at a time, for what was dropped.
        have = set(got)
        missing = [q for q in range(1, total + 1) if q not in have]
        runs, start = [], None
        for i, q in enumerate(missing):
            if start is None:
                start = q
            if i + 1 == len(missing) or missing[i + 1] != q + 1:
                runs.append((start, q))
                start = None
        for lo, hi in runs:
            rd.read(lo, hi, got)
    print(f"greedy reader: {nreq} requests, {delivered} events and {ends} ends delivered "
          f"after the stall, the rest dropped and asked again in {len(runs)} ranges; "
          f"broker RssAnon peak +{mib(s.peak - base)}")
    assert s.peak - base < BOUND_KIB, f"broker RssAnon grew by {mib(s.peak - base)}"
    assert sorted(got) == list(range(1, total + 1)) and len(got) == total, len(got)
    # The stall outlasted the broker's work (it went idle), so everything
    # beyond the client's window of about one batch (plus socket buffers) was
    # dropped, not queued.
    assert delivered < total // 4, delivered
    return late


def test(b):
    b.extra = ["--durability", "os"]
    b.start()
    pid = b.proc.pid
    t0 = time.monotonic()
    seqs = harness.publish_pipelined(b.ingest, stream("it75", N))
    assert seqs == list(range(1, N + 1)), "load: acks out of order"
    base = harness.rss_kib(pid)
    print(f"loaded {N} events in {time.monotonic() - t0:.1f} s; broker RssAnon {mib(base)}")

    replay_with_ingest(b, pid, base)
    ctx = zmq.Context.instance()
    try:
        stalled_reader(b, ctx, pid, base, N + LIVE)
        late = greedy_reader(b, ctx, pid, base, N + LIVE)
        assert late == list(range(N + LIVE + 1, N + LIVE + LATE + 1)), late[:5]
        # The log ends with the late events, each once.
        tail = []
        head = Reader(ctx, b.replay).read(N + LIVE + 1, 0, tail)
        assert head == N + LIVE + LATE and tail == late, (head, len(tail))
    finally:
        ctx.destroy(linger=0)


harness.run(test)

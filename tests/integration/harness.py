"""Shared helpers for renkei's integration tests.

Each test starts the real renkei-broker in a fresh temporary directory with
ipc:// endpoints (no ports to collide), waits for its "msg=ready" log line,
and drives it with the real tools. On failure the broker's log is printed.
Sanitizer reports in any process's stderr fail the test.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ.get("RK_BIN_DIR", "")
SOURCE = os.environ.get("RK_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.environ.get("RK_SHARED_DATA", os.path.join(SOURCE, "..", "shared", "data"))
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def tool(name):
    return os.path.join(BIN, name)


def check_clean(label, text):
    for mark in SANITIZER_MARKS:
        if mark in text:
            raise AssertionError(f"{label}: sanitizer report:\n{text}")


class Broker:
    """A renkei-broker process on ipc:// endpoints under a temp directory."""

    def __init__(self, workdir=None, extra=()):
        self.dir = workdir or tempfile.mkdtemp(prefix="rk-it-")
        self.data = os.path.join(self.dir, "data")
        self.ingest = f"ipc://{self.dir}/ingest"
        self.feed = f"ipc://{self.dir}/feed"
        self.replay = f"ipc://{self.dir}/replay"
        self.extra = list(extra)
        self.proc = None
        self.log_path = None
        self.starts = 0
        self.children = []  # background tools, killed at cleanup

    def command(self):
        """The broker's command line; a test may start it another way."""
        return [tool("renkei-broker"), "--ingest", self.ingest, "--feed", self.feed,
                "--replay", self.replay, "--data-dir", self.data] + self.extra

    def start(self, timeout=15):
        self.starts += 1
        self.log_path = os.path.join(self.dir, f"broker-{self.starts}.log")
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "msg=ready" in self.log():
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"broker exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"broker not ready within {timeout}s:\n{self.log()}")

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        """Stops the broker; on SIGTERM it must exit 0 with a clean log."""
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=30)
        self.proc = None
        if sig == signal.SIGTERM:
            assert rc == 0, f"broker exit {rc} after SIGTERM:\n{self.log()}"
            assert "msg=stopped" in self.log(), self.log()
        check_clean("broker", self.log())
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    def cleanup(self):
        for child in self.children:
            if child.poll() is None:
                child.kill()
                child.wait()
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- the real tools, pointed at this broker

    def agent(self, *args, stdin=None, check_rc=None):
        p = subprocess.run([tool("renkei-agent"), "--broker", self.ingest, "--json"] + list(args),
                           input=stdin, capture_output=True, text=True, timeout=120)
        check_clean("renkei-agent", p.stderr)
        if check_rc is not None:
            assert p.returncode == check_rc, f"agent exit {p.returncode}, want {check_rc}:\n{p.stdout}\n{p.stderr}"
        return p.returncode, [json.loads(l) for l in p.stdout.splitlines()], p.stderr

    def replay_all(self, *args):
        p = subprocess.run([tool("renkei-replay"), "--replay", self.replay] + list(args),
                           capture_output=True, text=True, timeout=120)
        check_clean("renkei-replay", p.stderr)
        assert p.returncode == 0, f"replay exit {p.returncode}: {p.stderr}"
        return [json.loads(l) for l in p.stdout.splitlines()], p.stderr

    def subscriber(self, *args, stdout_path=None):
        return Subscriber(self, args, stdout_path)


class Subscriber:
    """renkei-sub in the background; waits until it has fixed its start point.
    Output goes to a pipe, or appended to `stdout_path` (needed for more
    than a pipe's worth of lines, or to resume with --cursor)."""

    STARTED = ("following from seq", "resuming from seq", "starting with a snapshot")

    def __init__(self, broker, args, stdout_path=None):
        self.err_path = os.path.join(broker.dir, f"sub-{time.monotonic_ns()}.err")
        self.err = open(self.err_path, "w")
        self.stdout_path = stdout_path
        out = open(stdout_path, "a") if stdout_path else subprocess.PIPE
        self.proc = subprocess.Popen(
            [tool("renkei-sub"), "--feed", broker.feed, "--replay", broker.replay] + list(args),
            stdout=out, stderr=self.err, text=True)
        if stdout_path:
            out.close()
        broker.children.append(self.proc)
        deadline = time.monotonic() + 15
        while not any(s in self.stderr() for s in self.STARTED):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"subscriber did not start:\n{self.stderr()}")
            time.sleep(0.02)

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def wait(self, timeout=60):
        out, _ = self.proc.communicate(timeout=timeout)
        check_clean("renkei-sub", self.stderr())
        assert self.proc.returncode == 0, f"sub exit {self.proc.returncode}: {self.stderr()}"
        if self.stdout_path:
            with open(self.stdout_path) as f:
                out = f.read()
        return [json.loads(l) for l in out.splitlines()]

    def summary(self):
        """(events, gaps, events filled) from the exit line on stderr."""
        m = re.search(r"renkei-sub: (\d+) events, (\d+) gaps filled from the log \((\d+) events\)",
                      self.stderr())
        assert m, f"no summary line:\n{self.stderr()}"
        return tuple(int(x) for x in m.groups())


def scenario_lines(n=None):
    """The shared disaster scenario as JSON lines, the six events the
    lifecycle refuses included (scenario_expected() lists them)."""
    with open(os.path.join(SHARED, "disaster_scenario.jsonl"), encoding="utf-8") as f:
        lines = [l for l in f.read().splitlines() if l.strip()]
    return lines if n is None else lines[:n]


def scenario_expected():
    """disaster_scenario_expected.json: final states and the refusals."""
    with open(os.path.join(SHARED, "disaster_scenario_expected.json"), encoding="utf-8") as f:
        return json.load(f)


def valid_scenario_lines(n=None):
    """The scenario without the events the broker refuses: every line is
    accepted when published in order into an empty log."""
    refused = {r["line"] for r in scenario_expected()["rejected"]}
    lines = [l for i, l in enumerate(scenario_lines(), 1) if i not in refused]
    return lines if n is None else lines[:n]


def new_requests(tag, n):
    """n event dicts that depend on no other event, so the broker accepts
    them in any order: the scenario's aid.request version 1 events, renamed
    with `tag` and a number so each is a new request."""
    firsts = [json.loads(l) for l in valid_scenario_lines()]
    firsts = [e for e in firsts if e["type"] == "aid.request" and e["version"] == 1]
    return [renamed(firsts[i % len(firsts)], f"{tag}{i}") for i in range(n)]


def new_request_lines(tag, n):
    """new_requests as JSON lines, for renkei-agent."""
    return [json.dumps(e, ensure_ascii=False) for e in new_requests(tag, n)]


def outbox_status(box):
    """renkei-agent --outbox BOX --json status, as a dict."""
    p = subprocess.run([tool("renkei-agent"), "--outbox", box, "--json", "status"],
                       capture_output=True, text=True, timeout=30)
    check_clean("renkei-agent status", p.stderr)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def free_port():
    """A TCP port on loopback that nothing listens on just now."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, what, timeout=60, interval=0.05):
    """Polls pred() until it is true; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


ID_FIELDS = ("event_id", "request_id", "offer_id", "dispatch_id")


def renamed(event, tag):
    """A copy of the event dict with every id suffixed by `tag`: the valid
    scenario renamed with one tag is a fresh, valid lifecycle again, so a
    test can publish it many times over."""
    e = dict(event)
    for k in ID_FIELDS:
        if k in e:
            e[k] = f"{e[k]}-{tag}"
    return e


def run(test, make_broker=None):
    """Runs `test(broker)` with a fresh broker (Broker(), or make_broker());
    cleans up; exit code for ctest."""
    b = make_broker() if make_broker else Broker()
    try:
        test(b)
        b.stop()
    except BaseException:
        if b.log_path and os.path.exists(b.log_path):
            sys.stderr.write("---- broker log ----\n" + b.log() + "\n")
        raise
    finally:
        b.cleanup()
    print(f"ok {os.path.basename(sys.argv[0])}")


# ---- helpers for load and memory tests (it75)

def rss_kib(pid, field="RssAnon"):
    """One line of /proc/PID/status in KiB (RssAnon: the process's own heap and
    stacks, not the file-backed LMDB pages it maps; VmHWM: its peak resident
    set), or None once it has exited (a zombie has no memory lines)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


class PeakSampler:
    """Samples a process's RssAnon (or another field of rss_kib) every
    `interval` seconds in a thread and keeps the peak; use as a context
    manager around the work to watch."""

    def __init__(self, pid, interval=0.02, field="RssAnon"):
        self.pid, self.interval, self.field = pid, interval, field
        self.peak = rss_kib(pid, field)
        self.samples = 1
        assert self.peak is not None, f"no {field} in /proc/{pid}/status"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.interval):
            v = rss_kib(self.pid, self.field)
            if v is not None:
                self.peak = max(self.peak, v)
                self.samples += 1

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        v = rss_kib(self.pid, self.field)  # the last word, after the work
        if v is not None:
            self.peak = max(self.peak, v)
        return False


def publish_pipelined(endpoint, events, window=256, timeout_ms=30000):
    """Publishes the MessagePack events (an iterable of bytes) on one DEALER,
    keeping up to `window` publishes in flight, as PROTOCOL.md 3.2 allows.
    Every one must be acknowledged; returns their seqs in publishing order."""
    import msgpack
    import zmq
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    seqs = []
    it = iter(events)
    sent = acked = 0
    more = True
    try:
        while more or acked < sent:
            while more and sent - acked < window:
                body = next(it, None)
                if body is None:
                    more = False
                    break
                sent += 1
                seqs.append(None)
                sock.send_multipart([msgpack.packb([1, "pub", sent]), body], copy=False)
            if acked == sent:
                continue
            if not sock.poll(timeout_ms):
                raise AssertionError(f"no reply within {timeout_ms} ms; {acked} of {sent} acked")
            while True:
                try:
                    (hdr,) = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                r = msgpack.unpackb(hdr)
                if r[1] != "ack":
                    raise AssertionError(f"publish {r[2]} refused: {r}")
                if not 1 <= r[2] <= sent or seqs[r[2] - 1] is not None:
                    raise AssertionError(f"unexpected reply {r}")
                seqs[r[2] - 1] = r[3]
                acked += 1
    finally:
        sock.close()
    return seqs

"""Helpers for the renkei-gateway tests: the real gateway process pointed at
a harness.Broker, its HTTP API, and the broker's own "state" answer
(PROTOCOL.md 3.6) to compare the gateway and the board against."""
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request

import msgpack
import zmq

import harness

BUILD = os.environ.get("RK_BUILD_DIR", os.path.join(harness.SOURCE, "build", "plain"))
WEB = os.path.join(BUILD, "share", "renkei", "web")


class Gateway:
    """renkei-gateway on a free loopback port, following broker `b`."""

    made = []  # every gateway of this test, for dumping logs on a failure

    def __init__(self, b, *extra):
        Gateway.made.append(self)
        self.name = f"gateway{len(Gateway.made)}"
        self.b = b
        self.port = harness.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra = list(extra)
        self.ssl = None  # an ssl.SSLContext for a gateway with --tls-cert
        self.starts = 0
        self.proc = None

    def start(self):
        self.starts += 1
        self.log_path = os.path.join(self.b.dir, f"{self.name}-{self.starts}.log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [harness.tool("renkei-gateway"), "--feed", self.b.feed, "--replay", self.b.replay,
                 "--port", str(self.port), "--web", WEB] + self.extra, stdout=log, stderr=log)
        self.b.children.append(self.proc)
        harness.wait_log_file(self.log_path, "ready", proc=self.proc)
        harness.wait_log_file(self.log_path, "following", proc=self.proc)
        return self

    def log(self):
        return harness.read_log(self.log_path)

    def dump(self):
        """Every run's log on stderr, for a failing test."""
        import sys
        for i in range(1, self.starts + 1):
            path = os.path.join(self.b.dir, f"{self.name}-{i}.log")
            if os.path.exists(path):
                sys.stderr.write(f"---- {self.name} log {i} ----\n{harness.read_log(path)}\n")

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=30)
        self.proc = None
        harness.check_clean("renkei-gateway", self.log())
        if sig == signal.SIGTERM:
            assert rc == 0, f"gateway exit {rc}:\n{self.log()}"
            assert harness.log_records(self.log(), "stopped"), self.log()
        return rc

    def get(self, path, headers=None):
        """(status, body as text) of GET path."""
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.ssl) as r:
                return r.status, r.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8")

    def json(self, path):
        status, body = self.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def error(self, path, status, field):
        """Asserts GET path fails with `status` and an error naming `field`."""
        got, body = self.get(path)
        assert got == status, (path, got, body)
        err = json.loads(body)["error"]
        assert err["field"] == field and err["reason"] and err["code"], (path, err)
        return err

    def stream(self, path, n, headers=None, timeout=30):
        """The first `n` SSE messages of GET path, as (event, id, data)."""
        req = urllib.request.Request(self.url + path, headers=headers or {})
        out, cur = [], {}
        with urllib.request.urlopen(req, timeout=timeout, context=self.ssl) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream"), r.headers
            for raw in r:
                line = raw.decode("utf-8").rstrip("\n")
                if not line:
                    if "data" in cur:
                        out.append((cur.get("event", "message"), cur.get("id"), cur["data"]))
                        if len(out) == n:
                            return out
                    cur = {}
                    continue
                if line.startswith(":"):
                    continue
                key, _, value = line.partition(": ")
                cur[key] = value
        return out


def run(test):
    """harness.run(test) for a gateway test: when it fails, every gateway it
    made has its logs written to stderr too."""
    def logged(b):
        try:
            test(b)
        except BaseException:
            for gw in Gateway.made:
                gw.dump()
            raise
    harness.run(logged)


def broker_states(b):
    """{request_id: state} from the broker's "state" answer, every page."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(b.replay)
    got, cursor, corr = {}, b"", 0
    try:
        while True:
            corr += 1
            sock.send(msgpack.packb([1, "state", corr, 1000, cursor], use_bin_type=True))
            assert sock.poll(10000), "no answer to state"
            frames = sock.recv_multipart()
            head = msgpack.unpackb(frames[0], raw=False)
            assert head[1] == "reqs" and head[2] == corr, head
            for r in msgpack.unpackb(frames[1], raw=False):
                got[r["request_id"]] = r["state"]
            cursor = head[4]
            if not cursor:
                return got
    finally:
        sock.close()


def count_states(states):
    counts = {"open": 0, "in_progress": 0, "fulfilled": 0, "cancelled": 0}
    for s in states.values():
        counts[s] += 1
    return counts


def publish_lines(b, lines):
    """Publishes JSON lines through renkei-agent; every one must be stored."""
    _, res, err = b.agent("send", stdin="".join(l + "\n" for l in lines))
    assert len(res) == len(lines) and all(r["ok"] for r in res), (res, err)
    return [r["seq"] for r in res]


def publish_scenario(b):
    """The shared scenario; the events its lifecycle refuses are refused."""
    _, res, _ = b.agent("send", stdin="".join(l + "\n" for l in harness.scenario_lines()))
    stored = sum(1 for r in res if r["ok"])
    assert stored == harness.scenario_expected()["summary"]["accepted"], stored
    return stored


def publish_kpis(b):
    """The demo's synthetic KPI updates (deploy/demo)."""
    path = os.path.join(harness.SOURCE, "deploy", "demo", "kpi_updates_synthetic.csv")
    rc, res, err = b.agent("kpi", path)
    assert rc == 0 and res and all(r["ok"] for r in res), (rc, res, err)
    return len(res)

"""Shared helpers for renkei's integration tests.

Each test starts the real renkei-broker in a fresh temporary directory with
ipc:// endpoints (no ports to collide), waits for its "msg=ready" log line,
and drives it with the real tools. On failure the broker's log is printed.
Sanitizer reports in any process's stderr fail the test.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
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

    def start(self, timeout=15):
        self.starts += 1
        self.log_path = os.path.join(self.dir, f"broker-{self.starts}.log")
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [tool("renkei-broker"), "--ingest", self.ingest, "--feed", self.feed,
             "--replay", self.replay, "--data-dir", self.data] + self.extra,
            stdout=log, stderr=log)
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

    def subscriber(self, *args):
        return Subscriber(self, args)


class Subscriber:
    """renkei-sub in the background; waits until it has fixed its start point."""

    def __init__(self, broker, args):
        self.err_path = os.path.join(broker.dir, f"sub-{time.monotonic_ns()}.err")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(
            [tool("renkei-sub"), "--feed", broker.feed, "--replay", broker.replay] + list(args),
            stdout=subprocess.PIPE, stderr=self.err, text=True)
        broker.children.append(self.proc)
        deadline = time.monotonic() + 15
        while "following from seq" not in self.stderr():
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
        return [json.loads(l) for l in out.splitlines()]


def scenario_lines(n=None):
    with open(os.path.join(SHARED, "disaster_scenario.jsonl"), encoding="utf-8") as f:
        lines = [l for l in f.read().splitlines() if l.strip()]
    return lines if n is None else lines[:n]


def run(test):
    """Runs `test(broker)` with a fresh broker; cleans up; exit code for ctest."""
    b = Broker()
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

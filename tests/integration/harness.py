"""Shared helpers for renkei's integration tests.

Each test starts the real renkei-broker in a fresh temporary directory with
ipc:// endpoints (no ports to collide), waits for its ready record (the
broker logs logfmt on stderr: `ts=... level=info msg=ready ... last_seq=N`),
and drives it with the real tools. On failure the broker's log is printed.
Sanitizer reports in any process's stderr fail the test.

Tests wait for conditions, not for time: wait_for() polls a predicate,
Broker.wait_log() waits for a log record. A plain time.sleep() in a test is
there only where the passing of time is itself the point, and says why.
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


# ---- waiting for conditions

def wait_for(get, what, timeout=60, interval=0.05, until=bool):
    """Polls get() every `interval` seconds until until(value) holds, and
    returns that value. After `timeout` seconds raises AssertionError naming
    `what` and the last value observed. With the default `until`, get is a
    predicate whose true result is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if until(value):
            return value
        if time.monotonic() > deadline:
            shown = repr(value)
            if len(shown) > 2000:
                shown = shown[:2000] + "..."
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                 f"last observed: {shown}")
        time.sleep(interval)


# ---- the broker's log: logfmt records

def parse_logfmt(line):
    """One logfmt line as a dict, or None when the line is not a record.

    A record is space-separated key=value pairs whose first three keys are
    ts, level and msg. A value is either bare (up to the next space) or in
    double quotes, where it may hold spaces and the escapes \\" \\\\ and \\xHH
    (a byte: rk_diag_quote's). Anything else (a sanitizer report, a
    library's own text, a torn line) is not a record."""
    rec, i, n = {}, 0, len(line)
    while i < n:
        if line[i] == " ":
            i += 1
            continue
        eq = line.find("=", i)
        if eq <= i:
            return None
        key = line[i:eq]
        if " " in key or '"' in key:
            return None
        i = eq + 1
        if i < n and line[i] == '"':
            i += 1
            out = bytearray()
            while True:
                if i >= n:
                    return None  # unterminated quote
                c = line[i]
                if c == "\\" and line[i + 1:i + 2] == "x" and \
                        re.fullmatch(r"[0-9a-fA-F]{2}", line[i + 2:i + 4]):
                    out.append(int(line[i + 2:i + 4], 16))
                    i += 4
                elif c == "\\" and i + 1 < n:
                    out += {"n": "\n", "t": "\t"}.get(line[i + 1], line[i + 1]).encode()
                    i += 2
                elif c == '"':
                    i += 1
                    break
                else:
                    out += c.encode()
                    i += 1
            if i < n and line[i] != " ":
                return None  # text glued to the closing quote
            value = out.decode("utf-8", errors="replace")
        else:
            end = line.find(" ", i)
            end = n if end < 0 else end
            value = line[i:end]
            if '"' in value:
                return None
            i = end
        rec[key] = value
    if list(rec)[:3] != ["ts", "level", "msg"]:
        return None
    return rec


def log_records(text, msg=None, start=0, whole=False, **fields):
    """The records among the complete lines of `text` from character offset
    `start` on, with that msg (any when None) and those field values
    (compared as text). A line is complete once its newline is written;
    `whole`: the text is all there will be (a finished process's stderr),
    so its last line counts without one."""
    out = []
    end = len(text) if whole else text.rfind("\n") + 1
    for line in text[start:end].splitlines():
        rec = parse_logfmt(line)
        if rec is None or (msg is not None and rec["msg"] != msg):
            continue
        if all(rec.get(k) == str(v) for k, v in fields.items()):
            out.append(rec)
    return out


def read_log(path):
    with open(path, errors="replace") as f:
        return f.read()


class _Exited(AssertionError):
    """The process writing a log exited before writing the record awaited."""


def wait_log_file(path, msg, timeout=60, start=0, proc=None, **fields):
    """Waits until the log file at `path` holds, after character offset
    `start`, a record with that msg and field values; returns its fields.
    Fails at once, with the log, if `proc` (the process writing it) exits
    first."""
    want = f"msg={msg}" + "".join(f" {k}={v}" for k, v in fields.items())

    def found():
        exited = proc is not None and proc.poll() is not None
        recs = log_records(read_log(path), msg, start, **fields)  # read after the poll
        if recs:
            return recs[0]
        if exited:
            raise _Exited(f"exited with {proc.returncode} before logging {want}:\n"
                          f"{read_log(path)}")
        return None
    try:
        return wait_for(found, f"the log record {want} in {path}", timeout=timeout, interval=0.02)
    except _Exited:
        raise
    except AssertionError as e:
        raise AssertionError(f"{e}\n---- log ----\n{read_log(path)}") from None


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

    def start(self, timeout=60):
        """Starts the broker and waits for its ready record; returns self.
        The record's fields (last_seq, chain_head, map_size_mib, ...) are
        then in self.ready. Fails at once if the broker exits first."""
        self.starts += 1
        self.log_path = os.path.join(self.dir, f"broker-{self.starts}.log")
        self.ready = None
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log)
        try:
            self.ready = wait_log_file(self.log_path, "ready", timeout=timeout, proc=self.proc)
        except AssertionError as e:
            raise AssertionError(f"broker not ready: {e}") from None
        return self

    def log(self):
        """The whole log of the current run, as text (for failure messages)."""
        return read_log(self.log_path)

    def log_mark(self):
        """A position in the current log: where the next record will start.
        Pass it as `after` to wait_log or records to see only later ones."""
        text = self.log()
        return text.rfind("\n") + 1

    def records(self, msg=None, after=0, **fields):
        """The current log's records with that msg and field values, as
        dicts, oldest first."""
        return log_records(self.log(), msg, after, **fields)

    def record(self, msg, after=0, **fields):
        """The one record with that msg (and fields); fails unless exactly one."""
        recs = self.records(msg, after, **fields)
        assert len(recs) == 1, f"{len(recs)} records msg={msg} {fields or ''}:\n{self.log()}"
        return recs[0]

    def wait_log(self, msg, timeout=60, after=0, **fields):
        """Waits for a record with that msg and field values after position
        `after` (log_mark()) of the current log; returns its fields. Fails
        at once if the broker exits first."""
        return wait_log_file(self.log_path, msg, timeout=timeout, start=after,
                             proc=self.proc, **fields)

    def stop(self, sig=signal.SIGTERM):
        """Stops the broker; on SIGTERM it must exit 0 with a clean log."""
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=30)
        self.proc = None
        if sig == signal.SIGTERM:
            assert rc == 0, f"broker exit {rc} after SIGTERM:\n{self.log()}"
            assert self.records("stopped"), self.log()
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

    STARTED = ("following from seq", "resuming from seq", "starting with a snapshot",
               "starting with the state")

    def __init__(self, broker, args, stdout_path=None):
        self.err_path = os.path.join(broker.dir, f"sub-{time.monotonic_ns()}.err")
        self.err = open(self.err_path, "w")
        self.stdout_path = stdout_path
        self._read_to = os.path.getsize(stdout_path) if stdout_path and \
            os.path.exists(stdout_path) else 0
        self._received = 0
        out = open(stdout_path, "a") if stdout_path else subprocess.PIPE
        self.proc = subprocess.Popen(
            [tool("renkei-sub"), "--feed", broker.feed, "--replay", broker.replay] + list(args),
            stdout=out, stderr=self.err, text=True)
        if stdout_path:
            out.close()
        broker.children.append(self.proc)

        def started():
            exited = self.proc.poll() is not None
            text = self.stderr()  # read after the poll: all it wrote before exiting
            if any(s in text for s in self.STARTED):
                return True
            assert not exited, f"subscriber exited with {self.proc.returncode}:\n{text}"
            return False
        wait_for(started, "renkei-sub to fix its start point", timeout=60, interval=0.02)

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def received(self):
        """How many events (complete lines) it has written to stdout_path so
        far, read on from where the last call stopped. Only with stdout_path;
        counts from the size the file had when this subscriber started."""
        assert self.stdout_path, "received() needs stdout_path"
        with open(self.stdout_path, "rb") as f:
            f.seek(self._read_to)
            chunk = f.read()
        self._read_to += len(chunk)
        self._received += chunk.count(b"\n")
        return self._received

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


# ---- the broker's request state (PROTOCOL.md 3.6), as a client reads it

STATE_TIMEOUT_MS = 10000


def state_ask(sock, corr, limit, cursor=b"", flt=None):
    """One "state" request on a replay DEALER; returns (header, frames)."""
    import msgpack
    hdr = [1, "state", corr, limit, cursor] + ([flt] if flt is not None else [])
    sock.send(msgpack.packb(hdr, use_bin_type=True))
    if not sock.poll(STATE_TIMEOUT_MS):
        raise AssertionError("no reply to state")
    frames = sock.recv_multipart()
    head = msgpack.unpackb(frames[0], raw=False)
    assert head[2] == corr, head
    return head, frames


def state_all(sock, limit, flt=None):
    """Every page; returns {request_id: state} and the seqs of the pages."""
    import msgpack
    got, seqs, cursor, corr = {}, [], b"", 100
    while True:
        corr += 1
        head, frames = state_ask(sock, corr, limit, cursor, flt)
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


def state_as_expected(r):
    """A wire state in the oracle's shape: offers keyed by offer_id."""
    r = dict(r)
    r["offers"] = {o.pop("offer_id"): o for o in (dict(x) for x in r["offers"])}
    return r


def http_get(port, path, timeout=10):
    """GET http://127.0.0.1:PORT/PATH (the broker's --http, for instance):
    (status, body text); an error status is returned, not raised."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# ---- a truly full disk: a small tmpfs (it72, it72b)

def in_private_mount_namespace(name, skip=False):
    """Lets test `name` mount a tmpfs: unless it runs as root already, it is
    executed again under unshare -rm, root of its own user and mount
    namespace (for its own mounts only). Without unshare(1) it ends with
    the reason: skipped ("SKIPPED ..." on stdout, exit 0) if `skip`, else
    failed."""
    if os.geteuid() == 0:
        return
    unshare = shutil.which("unshare")
    if not unshare:
        why = f"{name}: needs root or unshare(1) to mount a small tmpfs"
        if skip:
            print(f"SKIPPED {why}")
            sys.exit(0)
        sys.exit(why)
    os.execv(unshare, [unshare, "-rm", sys.executable] + sys.argv)


def mount_tmpfs(path, mib, remount=False, quiet=False):
    """Mounts a tmpfs of `mib` MiB at path (remount: resizes the one there);
    quiet: mount's own messages are captured, not shown."""
    opts = f"size={mib}m" + (",remount" if remount else "")
    args = ["mount", "-o", opts, path] if remount else \
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path]
    subprocess.run(args, check=True, capture_output=quiet)


def on_small_tmpfs(b, mib, body, skip=None):
    """Calls body(b, fs) with a tmpfs of `mib` MiB mounted at fs (in b.dir),
    then kills broker b if it runs and unmounts fs. skip: the test's name,
    when a tmpfs that cannot be mounted skips the test (mounted quietly,
    "SKIPPED ..." on stdout) rather than fails it."""
    fs = os.path.join(b.dir, "fs")
    os.mkdir(fs)
    try:
        mount_tmpfs(fs, mib, quiet=skip is not None)
    except (subprocess.CalledProcessError, OSError) as e:
        if skip is None:
            raise
        print(f"SKIPPED {skip}: cannot mount a tmpfs here ({e}); run as root to test this")
        return
    try:
        body(b, fs)
    finally:
        if b.proc is not None:
            b.proc.kill()
            b.proc.wait()
            b.proc = None
        subprocess.run(["umount", fs], check=False)


def big_requests(base, start, n):
    """Aid requests of about 2.3 KB each, so a few thousand fill the disk:
    event dict `base` as JSON lines numbered start .. start + n - 1."""
    for i in range(start, start + n):
        ev = dict(base)
        ev["event_id"] = f"full-{i}"
        ev["request_id"] = f"REQ-FULL-{i}"
        ev["note"] = f"{i:08d} " + "x" * 2000
        yield json.dumps(ev, ensure_ascii=False)


def publish_big_requests(b, base, start, n):
    """big_requests(base, start, n) through renkei-agent send to broker b:
    the n results (one each, checked)."""
    _, results, _ = b.agent("send", stdin="\n".join(big_requests(base, start, n)) + "\n")
    assert len(results) == n, f"{len(results)} results for {n} events"
    return results


# ---- a test library preloaded into the broker (it56, it57)

def sanitized():
    """True in the ASan/UBSan build (ctest sets RK_SANITIZE)."""
    return os.environ.get("RK_SANITIZE", "OFF") not in ("", "OFF", "0")


def start_preloaded(b, shim, env):
    """Starts broker b with the test library `shim` (a file in BIN, such as
    rk_slowsync.so) preloaded and the variables in dict env set; the
    environment is as before once it runs, so only the broker gets them."""
    env = dict(env, LD_PRELOAD=os.path.join(BIN, shim))
    if sanitized():
        # the shim comes before the sanitizer runtime in the library list
        env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        b.start(timeout=60)
    finally:
        for k, v in saved.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v


class TcpRelay:
    """Relays every TCP connection made to 127.0.0.1:self.port (a free port)
    to target_port on loopback, a thread for each direction. record: every
    byte it carries is kept in self.seen (read it holding self.lock).
    cut() drops the connections it carries and refuses new ones until
    restore(): a dropped link, with both ends still up."""

    def __init__(self, target_port, record=False):
        import socket
        self.target = target_port
        self.record = record
        self.seen = bytearray()
        self.lock = threading.Lock()
        self.conns = []
        self.down = False
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with self.lock:
                if self.down:
                    c.close()
                    continue
                u = socket.create_connection(("127.0.0.1", self.target))
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                if self.record:
                    with self.lock:
                        self.seen += data
                b.sendall(data)
        except OSError:
            pass
        _shut(a, b)

    def cut(self):
        with self.lock:
            self.down = True
            _shut(*self.conns)
            self.conns = []

    def restore(self):
        with self.lock:
            self.down = False


def _shut(*socks):
    import socket
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Dealer:
    """A DEALER on `endpoint` (a broker socket) for tests that speak the
    wire protocol themselves: self.corr counts their requests, reply()
    reads a one-frame answer."""

    def __init__(self, ctx, endpoint):
        import zmq
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(endpoint)
        self.corr = 0

    def reply(self):
        """The next answer's header, unpacked; fails after 10 s without."""
        import msgpack
        assert self.sock.poll(10000), "no reply within 10 s"
        (hdr,) = self.sock.recv_multipart()
        return msgpack.unpackb(hdr, raw=False)


def new_keys(d, name):
    """renkei-keys --dir d name: a new CURVE key pair, d/name.key (secret)
    and d/name.pub; returns the public key as it printed it."""
    p = subprocess.run([tool("renkei-keys"), "--dir", d, name], capture_output=True,
                       text=True, check=True)
    return p.stdout.strip()


def secure_on_tcp(b, acl_text):
    """Readies broker b for CURVE and an ACL: acl_text written to
    b.dir/acl.ini, its three sockets on free loopback TCP ports, and b.extra
    set to --curve-key b.dir/broker.key (made beforehand, with
    new_keys(b.dir, "broker")) --acl. Returns the ACL's path; b is not
    started."""
    acl = os.path.join(b.dir, "acl.ini")
    with open(acl, "w") as f:
        f.write(acl_text)
    ports = [free_port() for _ in range(3)]
    b.ingest, b.feed, b.replay = (f"tcp://127.0.0.1:{p}" for p in ports)
    b.extra = ["--curve-key", os.path.join(b.dir, "broker.key"), "--acl", acl]
    return acl


def small_asan_quarantine(mib):
    """For a test that bounds the broker's memory, before it starts: in the
    sanitize build AddressSanitizer keeps up to 256 MiB of freed memory in
    quarantine, which would read as growth; one of `mib` MiB keeps the
    bound meaningful."""
    if sanitized():
        os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                      f":quarantine_size_mb={mib}"
                                      ":thread_local_quarantine_size_kb=64")


def verify_log(data_dir, timeout=120):
    """renkei-replay --verify --data-dir data_dir: (exit code, its JSON
    verdict, its stdout)."""
    p = subprocess.run([tool("renkei-replay"), "--verify", "--data-dir", data_dir],
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, json.loads(p.stdout), p.stdout

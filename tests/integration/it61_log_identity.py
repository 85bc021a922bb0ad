"""A restored backup is a new log, and no subscriber follows it silently
(PROTOCOL.md 3.7, deploy/README.md section 6).

The issue this answers: after a backup was restored, seq 20 went to a new
event, and a live subscriber and a --cursor archive kept the old seq 20
and skipped the new one without a word. Here:

- every log has an identity, in the ready line, in ticks, replay ends,
  snapshot ends, state replies and /metrics; a restart (SIGTERM or
  SIGKILL) keeps it;
- events 1..19, a hot backup (mdb_copy -c, the guide's backup), events
  20..24, all archived by `renkei-sub --cursor`; then the guide's restore
  commands, taken from deploy/README.md and run as written (systemctl and
  chown mapped onto this test's broker): the broker warns new_log_id with
  the previous identity; the live subscriber stops with exit 4 naming both
  identities; the new log stores a different event as seq 20; the cursor
  run stops the same way; with --restart-on-new-log it marks the break
  and archives the new log from seq 1, new seq 20 included;
- a cursor of the log's own identity beyond its head is refused too; an
  old cursor file (position only) is accepted and gains the identity;
- mdb_copy of the live log started as a second broker, and a backup
  copied over data.mdb in place, both get new identities; the original
  keeps its own."""
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request

import msgpack
import zmq

import harness
from harness import Broker

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def sub_run(b, *args, stdout=None, timeout=60):
    """renkei-sub to completion: (exit status, stdout text, stderr)."""
    p = subprocess.run([harness.tool("renkei-sub"), "--feed", b.feed, "--replay", b.replay]
                       + list(args), stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    harness.check_clean("renkei-sub", p.stderr)
    return p.returncode, p.stdout if stdout is None else None, p.stderr


def cursor_of(path):
    with open(path) as f:
        text = f.read()
    m = re.fullmatch(r"(\d{20}) ([0-9a-f]{32})\n", text)
    assert m, repr(text)
    return int(m.group(1)), m.group(2)


def restore_block():
    """The shell block after "To restore" in deploy/README.md."""
    with open(os.path.join(harness.SOURCE, "deploy", "README.md"), encoding="utf-8") as f:
        text = f.read()
    at = text.index("To restore")
    block = text[text.index("```sh\n", at) + 6:]
    return block[:block.index("```")].strip().splitlines()


def run_restore(b, backup):
    """The guide's restore: its shell lines as one script, as written but
    for the paths and the owner (this test's user, not renkei); systemctl
    stop/start are this broker's stop and start; journalctl is the broker's
    own log."""
    lines = restore_block()
    assert lines[0].startswith("systemctl stop") and lines[-2].startswith("systemctl start"), lines
    assert lines[-1].startswith("journalctl"), lines
    script = "\n".join(l for l in lines[1:-2]).replace("/var/lib/renkei", b.data).replace(
        "/backup/renkei-2026-02-17", backup).replace("chown -R renkei:", "chown -R \"$(id -un)\":")
    assert "mdb_copy" in script and "mv " in script and "chown" in script, script
    b.stop()
    subprocess.run(["bash", "-euc", script], check=True, timeout=60)
    assert os.path.isdir(b.data + ".replaced-" + time.strftime("%Y-%m-%d")), os.listdir(b.dir)
    b.start()
    assert b.records("new_log_id") and b.records("ready"), b.log()


def wire_ids(b):
    """The log identity as the replay socket and the feed say it."""
    ctx = zmq.Context()
    d = ctx.socket(zmq.DEALER)
    d.linger = 0
    d.connect(b.replay)
    got = {}
    for hdr, reply in (([1, "replay", 1, 1, 0, 10], "end"),
                       ([1, "snap", 2, 0, 10, b""], "snapend"),
                       ([1, "state", 3, 10, b""], "reqs")):
        d.send(msgpack.packb(hdr, use_bin_type=True))
        while True:
            assert d.poll(10000), f"no {reply}"
            head = msgpack.unpackb(d.recv_multipart()[0], raw=False)
            if head[1] == reply:
                got[reply] = head[6]
                break
    s = ctx.socket(zmq.SUB)
    s.linger = 0
    s.connect(b.feed)
    s.setsockopt(zmq.SUBSCRIBE, b"~\n")
    while "tick" not in got:
        assert s.poll(10000), "no tick"
        frames = s.recv_multipart()
        head = msgpack.unpackb(frames[1], raw=False)
        if head[1] == "tick":
            got["tick"] = head[6]
    d.close()
    s.close()
    ctx.term()
    return got


def publish(b, tag, n):
    _, res, _ = b.agent("send", stdin="\n".join(harness.new_request_lines(tag, n)) + "\n",
                        check_rc=0)
    return [r["seq"] for r in res]


def test(b):
    port = harness.free_port()
    b.extra = ["--http", str(port)]
    b.start()
    first = b.ready["log_id"]
    assert HEX32.match(first), b.ready
    assert b.record("new_log_id")["why"] == "new log", b.log()
    for stop in (b.stop, b.kill):
        stop()
        b.start()
        assert b.ready["log_id"] == first and not b.records("new_log_id"), b.log()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert f'renkei_log_info{{log_id="{first}"}} 1' in r.read().decode(), "no renkei_log_info"

    assert publish(b, "before", 19) == list(range(1, 20))
    assert set(wire_ids(b).values()) == {first}
    archive = os.path.join(b.dir, "archive.jsonl")
    cursor = os.path.join(b.dir, "archive.cursor")
    live = b.subscriber("--cursor", cursor, "--from", "1", stdout_path=archive)
    harness.wait_for(live.received, "the archive to hold 19 events", until=lambda n: n >= 19)
    # one told beforehand to start over on a new log, following live
    relaxed_out = os.path.join(b.dir, "relaxed.jsonl")
    relaxed = b.subscriber("--from", "1", "--restart-on-new-log", stdout_path=relaxed_out)
    harness.wait_for(relaxed.received, "the relaxed one to hold 19", until=lambda n: n >= 19)
    harness.wait_for(lambda: cursor_of(cursor), "the cursor at 20 of the first log",
                     until=lambda c: c == (20, first))

    backup = os.path.join(b.dir, "backup")  # the guide's backup, section 6
    os.mkdir(backup)
    subprocess.run(["mdb_copy", "-c", b.data, backup], check=True, timeout=60)
    p = subprocess.run([harness.tool("renkei-replay"), "--verify", "--data-dir", backup],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout)["log_id"] == first, p.stdout
    old = publish(b, "after", 5)
    assert old == list(range(20, 25))
    harness.wait_for(live.received, "the archive to hold 24 events", until=lambda n: n >= 24)

    run_restore(b, backup)
    second = b.ready["log_id"]
    assert HEX32.match(second) and second != first, b.ready
    warn = b.record("new_log_id")
    assert warn["level"] == "warn" and warn["previous_log_id"] == first, warn
    assert warn["last_seq"] == "19" and "restored backup" in warn["why"], warn

    # the live archive stops, saying what happened, instead of skipping
    rc = live.proc.wait(timeout=60)
    err = live.stderr()
    assert rc == 4, (rc, err)
    assert first in err and second in err and "restored from a backup" in err, err
    assert "--restart-on-new-log" in err, err

    new20 = publish(b, "forked", 1)
    assert new20 == [20], new20
    # the relaxed one marked the break and read the new log from seq 1
    def relaxed_lines():
        with open(relaxed_out) as f:
            return [json.loads(l) for l in f.read().splitlines()]
    harness.wait_for(relaxed_lines, "the relaxed subscriber to print the new seq 20",
                     until=lambda ls: any("new_log" in l for l in ls) and
                     ls[-1].get("seq") == 20 and "new_log" not in ls[-1] and
                     ls[-1]["event"]["request_id"].endswith("forked0"))
    lines = relaxed_lines()
    at = next(i for i, l in enumerate(lines) if "new_log" in l)
    assert [l["seq"] for l in lines[:at]] == list(range(1, 25)), lines[:at]
    assert lines[at]["new_log"]["log_id"] == second and \
        lines[at]["new_log"]["previous_log_id"] == first, lines[at]
    assert [l["seq"] for l in lines[at + 1:]] == list(range(1, 21))
    assert "warning" in relaxed.stderr() and first in relaxed.stderr(), relaxed.stderr()
    relaxed.proc.terminate()
    relaxed.wait()
    assert set(wire_ids(b).values()) == {second}
    with open(archive) as f:
        before = [json.loads(l) for l in f]
    assert [e["seq"] for e in before] == list(range(1, 25))

    # the cursor run, later: the same refusal, naming both logs and seqs
    rc, _, err = sub_run(b, "--cursor", cursor, "--idle", "300")
    assert rc == 4 and first in err and second in err and "seq 25" in err, (rc, err)
    assert cursor_of(cursor) == (25, first), "a refused run moved the cursor"

    # told to, it starts over on the new log and marks the break
    with open(archive, "a") as out:
        rc, _, err = sub_run(b, "--cursor", cursor, "--restart-on-new-log", "--count", "20",
                             stdout=out)
    assert rc == 0 and "warning" in err and "starting over" in err, (rc, err)
    with open(archive) as f:
        lines = [json.loads(l) for l in f]
    mark, after = lines[24], lines[25:]
    assert mark["new_log"]["log_id"] == second, mark
    assert mark["new_log"]["previous_log_id"] == first, mark
    assert [e["seq"] for e in after] == list(range(1, 21)), [e.get("seq") for e in after]
    assert after[19]["event"]["request_id"].endswith("forked0"), after[19]
    assert after[19]["event"] != before[19]["event"], "the new seq 20 is another event"
    assert cursor_of(cursor) == (21, second)
    rc, _, err = sub_run(b, "--cursor", cursor, "--idle", "300")
    assert rc == 0 and f"log {second}" in err, err

    # a cursor of this log beyond its head: refused as well
    ahead = os.path.join(b.dir, "ahead.cursor")
    with open(ahead, "w") as f:
        f.write("%020d %s\n" % (1000, second))
    rc, _, err = sub_run(b, "--cursor", ahead, "--idle", "300")
    assert rc == 4 and "ends at seq 20" in err and "1000" in err, (rc, err)
    # an old cursor file (the position alone) is taken and gains the identity
    oldc = os.path.join(b.dir, "old.cursor")
    with open(oldc, "w") as f:
        f.write("%020d\n" % 18)
    rc, out, err = sub_run(b, "--cursor", oldc, "--count", "3")
    assert rc == 0 and [json.loads(l)["seq"] for l in out.splitlines()] == [18, 19, 20], err
    assert cursor_of(oldc) == (21, second)

    # a copy of the live log, written to by a second broker: a new identity
    other = Broker()
    try:
        os.makedirs(other.data)
        subprocess.run(["mdb_copy", "-c", b.data, other.data], check=True, timeout=60)
        other.start()
        assert other.ready["log_id"] not in (first, second), other.ready
        assert other.record("new_log_id")["previous_log_id"] == second
        other.stop()
    finally:
        other.cleanup()
    # a backup copied over data.mdb in place (the same file, older content)
    b.stop()
    shutil.copyfile(os.path.join(backup, "data.mdb"), os.path.join(b.data, "data.mdb"))
    b.start()
    assert b.ready["log_id"] not in (first, second), b.ready
    assert b.record("new_log_id")["previous_log_id"] == first, b.log()


if __name__ == "__main__":
    harness.run(test)

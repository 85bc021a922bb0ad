"""renkei-agent run --spool while its outbox fails: no spool file is lost.

A preloaded shim (lmdbfail.c) makes LMDB fail on the outbox's record of a
spool file's name while a trigger file says so; everything else in the
outbox works. For each step where a file leaves the spool:

1. the lookup "is this file in the outbox already?" fails
   (MDB_READERS_FULL): the file stays, whole, and so does the file after it
   (no overtaking); the agent says why and keeps running;
2. storing the file's events fails (MDB_MAP_FULL): the file stays;
3. forgetting the file's name once its events are in fails (MDB_TXN_FULL):
   the agent is then stopped, a new file of the same name is dropped, and
   the agent restarted without the failure must take that file too.

Each time, once the failure is gone, every event reaches the broker
exactly once, in file order. The agent's reports on stdout come line by
line, as they happen (a journal must not get them at exit)."""
import json
import os
import signal
import subprocess

import harness

SHIM = os.path.join(harness.BIN, "rk_lmdbfail.so")
MDB_READERS_FULL, MDB_MAP_FULL, MDB_TXN_FULL = -30790, -30792, -30788


class Agent:
    """renkei-agent run --spool with the shim, its stderr in a file."""

    def __init__(self, b, box, spool, trigger, n):
        self.err_path = os.path.join(b.dir, f"agent-{n}.err")
        env = dict(os.environ, LD_PRELOAD=SHIM, RK_LMDB_FAIL_FILE=trigger)
        if os.environ.get("RK_SANITIZE", "OFF") not in ("", "OFF", "0"):
            # the shim comes before the sanitizer runtime in the library list
            env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
        results = os.path.join(b.dir, "results.jsonl")
        with open(self.err_path, "w") as err, open(results, "a") as out:
            self.proc = subprocess.Popen(
                [harness.tool("renkei-agent"), "--broker", b.ingest, "--outbox", box, "--json",
                 "--timeout", "1000", "--spool", spool, "run"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        b.children.append(self.proc)
        harness.wait_for(lambda: "taking *.jsonl files" in self.stderr()
                         or self.proc.poll() is not None, "the agent to start")
        self.alive()

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def alive(self):
        rc = self.proc.poll()
        assert rc is None, f"agent exited with {rc}:\n{self.stderr()}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        harness.check_clean("renkei-agent", self.stderr())
        assert rc == 0, (rc, self.stderr())


def drop(spool, name, events):
    text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events)
    tmp = os.path.join(spool, "." + name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.rename(tmp, os.path.join(spool, name))
    return text


def fail(trigger, op, code):
    with open(trigger, "w") as f:
        f.write(f"{op} {code}\n")


def wait_refusal(agent, spool, name, text, complaint):
    """Waits until the agent has complained about `name` twice (a retry),
    or has removed it; then the file must still be there, unchanged."""
    path = os.path.join(spool, name)
    harness.wait_for(lambda: agent.stderr().count(f"{name}: ") >= 2 or not os.path.exists(path)
                     or agent.proc.poll() is not None, f"the agent to refuse to take {name}",
                     timeout=30)
    agent.alive()
    assert os.path.exists(path), (f"{name} was removed while the outbox failed: its events "
                                  f"are lost (or the shim had no effect: is liblmdb a shared "
                                  f"library of renkei-agent?)\n{agent.stderr()}")
    with open(path, encoding="utf-8") as f:
        assert f.read() == text, f"{name} changed"
    for words in complaint:
        assert words in agent.stderr(), (words, agent.stderr())
    agent.alive()


def reports(b):
    with open(os.path.join(b.dir, "results.jsonl"), encoding="utf-8") as f:
        return sum(1 for l in f if '"ok":true' in l)


def stored_ids(b):
    stored, _ = b.replay_all()
    return [e["event"]["event_id"] for e in stored]


def delivered(b, agent, box, want):
    harness.wait_for(lambda: harness.outbox_status(box)["acked"] >= len(want)
                     or agent.proc.poll() is not None, f"{len(want)} acks", timeout=60)
    agent.alive()
    got = stored_ids(b)
    assert got == want, f"lost, doubled or out of order: {len(got)} stored, {len(want)} expected"
    assert harness.outbox_status(box)["pending"] == 0


def test(b):
    box, spool = os.path.join(b.dir, "outbox"), os.path.join(b.dir, "spool")
    trigger = os.path.join(b.dir, "lmdb-fail")
    os.mkdir(spool)
    b.start()
    agent = Agent(b, box, spool, trigger, 1)
    want = []

    warm = harness.new_requests("warm", 5)
    drop(spool, "000-warm.jsonl", warm)
    want += [e["event_id"] for e in warm]
    delivered(b, agent, box, want)

    # 1. The lookup fails: neither this file nor the next may go.
    fail(trigger, "get", MDB_READERS_FULL)
    x, y = harness.new_requests("x", 40), harness.new_requests("y", 10)
    x_text, y_text = drop(spool, "001-x.jsonl", x), drop(spool, "002-y.jsonl", y)
    wait_refusal(agent, spool, "001-x.jsonl", x_text,
                 ["cannot look up whether it was taken", "MDB_READERS_FULL", "kept"])
    with open(os.path.join(spool, "002-y.jsonl"), encoding="utf-8") as f:
        assert f.read() == y_text, "002-y.jsonl overtook 001-x.jsonl"
    assert harness.outbox_status(box)["last_number"] == len(warm), harness.outbox_status(box)
    os.unlink(trigger)
    want += [e["event_id"] for e in x + y]
    delivered(b, agent, box, want)
    harness.wait_for(lambda: not os.listdir(spool), "the spool emptied")

    # 2. Storing the events fails.
    fail(trigger, "put", MDB_MAP_FULL)
    z = harness.new_requests("z", 20)
    z_text = drop(spool, "003-z.jsonl", z)
    wait_refusal(agent, spool, "003-z.jsonl", z_text,
                 ["cannot store its events", "MDB_MAP_FULL", "kept"])
    assert harness.outbox_status(box)["last_number"] == len(want), harness.outbox_status(box)
    os.unlink(trigger)
    want += [e["event_id"] for e in z]
    delivered(b, agent, box, want)

    # 3. Forgetting the name fails, then the agent stops: a new file of
    # that name must not be mistaken for the old one.
    fail(trigger, "del", MDB_TXN_FULL)
    w1 = harness.new_requests("w1-", 15)
    drop(spool, "004-w.jsonl", w1)
    want += [e["event_id"] for e in w1]
    delivered(b, agent, box, want)
    harness.wait_for(lambda: agent.stderr().count("004-w.jsonl: ") >= 2
                     or agent.proc.poll() is not None, "the name kept")
    agent.alive()
    assert "MDB_TXN_FULL" in agent.stderr(), agent.stderr()
    assert any("004-w.jsonl" in n for n in os.listdir(spool)), "the file went before its name"
    agent.stop()
    w2 = harness.new_requests("w2-", 15)
    drop(spool, "004-w.jsonl", w2)
    os.unlink(trigger)
    agent = Agent(b, box, spool, trigger, 2)
    want += [e["event_id"] for e in w2]
    delivered(b, agent, box, want)
    harness.wait_for(lambda: not os.listdir(spool), "the spool emptied")
    # A service's reports reach its journal as they happen, not at its exit.
    harness.wait_for(lambda: reports(b) == len(want), "every report on stdout", timeout=10)
    agent.stop()


harness.run(test)

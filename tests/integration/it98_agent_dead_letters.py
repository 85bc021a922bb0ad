"""renkei-agent --outbox never deletes a refused event.

A real broker with CURVE keys and an ACL, on TCP:
1. A refusal for good (E_DUPLICATE_REQUEST: the broker's log already holds
   that request) makes a dead letter: `rejected` lists it with its code,
   message, local refusal time and the event itself; it survives an agent
   restart and a kill -9 of a running agent; once the cause is gone (the
   broker's log restored without that request) `resend` puts it back and
   `flush` stores it; `discard` deletes another one for good.
2. An E_FORBIDDEN refusal (the town's key may not publish for a
   municipality yet: the key-rotation slip) holds the event in `run
   --spool`; the refusal line reaches the agent's stdout pipe while the
   agent still runs; once the ACL allows it (rewritten, SIGHUP) the agent's
   own retry stores it, without any command, and the held aid.cancel that
   depends on it after it. A one-shot send with a held
   event still sends the others (exit 3); the next flush tries it at once.
"""
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading

import harness

LOCAL_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


def acl_text(pubs, also=""):
    return f"""
[tenant town]
key = {pubs['town']}
publish = 271004{also}
subscribe = *
replay = *
"""


def request(tag, municipality="271004"):
    e = harness.new_requests(tag, 1)[0]
    e["municipality"] = municipality
    e["request_id"] = f"REQ-{municipality}-{tag}"
    e["event_id"] = f"EVT-{municipality}-{tag}"
    return e


class Agent:
    """renkei-agent --outbox BOX with the town's key."""

    def __init__(self, b, box, key_args):
        self.b, self.box, self.key_args = b, box, key_args

    def args(self, *more):
        return [harness.tool("renkei-agent"), "--broker", self.b.ingest, "--outbox", self.box,
                "--timeout", "3000"] + self.key_args + list(more)

    def run(self, *more, stdin=None, rc=None):
        p = subprocess.run(self.args(*more), input=stdin, capture_output=True, text=True,
                           timeout=120)
        harness.check_clean("renkei-agent", p.stderr)
        if rc is not None:
            assert p.returncode == rc, (more, p.returncode, p.stdout, p.stderr)
        return p

    def rejected(self):
        p = self.run("rejected", rc=0)
        return [json.loads(l) for l in p.stdout.splitlines()]


def stored_event_ids(b, key_args):
    out, _ = b.replay_all(*key_args)
    return [e["event"]["event_id"] for e in out]


def dead_letters(b, ag, key_args):
    dup = request("dup")
    # Stored first by someone else: the agent's copy is a duplicate for good.
    _, res, _ = b.agent(*key_args, "event", json.dumps(dup), check_rc=0)
    assert res[0]["ok"], res
    fine = request("fine")
    p = ag.run("--json", "send", stdin=json.dumps(dup) + "\n" + json.dumps(fine) + "\n", rc=1)
    res = [json.loads(l) for l in p.stdout.splitlines()]
    bad = [r for r in res if not r["ok"]]
    assert len(res) == 2 and len(bad) == 1, res
    assert bad[0]["code"] == "E_DUPLICATE_REQUEST" and bad[0]["rejected"] is True, bad
    assert bad[0]["outbox_number"] == 1, bad

    st = harness.outbox_status(ag.box)
    assert (st["pending"], st["held"], st["rejected"], st["refused"], st["acked"]) == \
        (0, 0, 1, 1, 1), st
    (d,) = ag.rejected()
    assert d["outbox_number"] == 1 and d["producer_number"] == 1, d
    assert d["producer"] == st["producer"], (d, st)
    assert d["code"] == "E_DUPLICATE_REQUEST" and d["message"] == bad[0]["error"], (d, bad)
    assert LOCAL_ISO.match(d["refused_at"]), d
    assert d["event"] == dup, d

    # An agent restart (flush) neither loses nor sends it.
    ag.run("flush", rc=0)
    assert ag.rejected() == [d]
    # A running agent killed with SIGKILL, after it stored more.
    more = [request(f"k{i}") for i in range(20)]
    p = subprocess.Popen(ag.args("run"), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    p.stdin.write("".join(json.dumps(e) + "\n" for e in more))
    p.stdin.flush()
    harness.wait_for(lambda: harness.outbox_status(ag.box)["acked"], "the 20 acks",
                     until=lambda n: n == 21)
    p.kill()
    p.wait()
    p.stderr.close()
    p.stdin.close()
    assert ag.rejected() == [d]

    # The cause goes: the log is restored to one without that request.
    b.stop()
    shutil.rmtree(b.data)
    b.start()
    out = ag.run("resend", "1", rc=0).stdout
    assert "resent 1" in out, out
    st = harness.outbox_status(ag.box)
    assert (st["rejected"], st["held"], st["pending"]) == (0, 0, 1), st
    assert ag.rejected() == []
    p = ag.run("--json", "flush", rc=0)
    res = [json.loads(l) for l in p.stdout.splitlines()]
    # The broker used number 1 refusing it: it goes out as a new event,
    # under the outbox's next number.
    last = harness.outbox_status(ag.box)["last_number"]
    assert last > 21 and [(r["outbox_number"], r["ok"]) for r in res] == [(last, True)], res
    assert stored_event_ids(b, ag.key_args) == [dup["event_id"]]
    st = harness.outbox_status(ag.box)
    assert (st["pending"], st["held"], st["rejected"]) == (0, 0, 0), st

    # Discard: the same request again is a duplicate now; deleted for good.
    p = ag.run("--json", "event", json.dumps(dup), rc=1)
    number = json.loads(p.stdout)["outbox_number"]
    assert [x["outbox_number"] for x in ag.rejected()] == [number]
    p = ag.run("discard", "999", rc=1)
    assert "no dead letter #999" in p.stderr, p.stderr
    assert "discarded 1 " in ag.run("discard", str(number), rc=0).stdout
    assert ag.rejected() == []
    assert "discarded 0 " in ag.run("discard", "--all", rc=0).stdout
    assert harness.outbox_status(ag.box)["rejected"] == 0
    assert ag.run("resend", rc=2).returncode == 2  # neither numbers nor --all


def held_forbidden(b, ag, acl, pubs):
    spool = os.path.join(b.dir, "spool")
    os.mkdir(spool)
    p = subprocess.Popen(ag.args("--json", "--spool", spool, "run"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()

    def read():
        for line in p.stdout:
            lines.put((json.loads(line), p.poll() is None))
    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def next_line():
        try:
            return lines.get(timeout=60)
        except queue.Empty:
            raise AssertionError("no result line from the running agent") from None

    other = request("other", "304280")   # the key may not publish for 304280 yet
    own = request("own")
    # Depends on `other`: it must be stored after it, however the retries go.
    cancel = {"type": "aid.cancel", "event_id": "EVT-304280-cancel", "municipality": "304280",
              "sent_at": other["sent_at"], "request_id": other["request_id"],
              "reason": "resolved locally"}
    tmp = os.path.join(spool, "in.tmp")
    with open(tmp, "w") as f:
        f.write("".join(json.dumps(e) + "\n" for e in (other, own, cancel)))
    os.rename(tmp, os.path.join(spool, "001.jsonl"))
    got = {}
    for _ in range(3):
        line, running = next_line()
        assert running, "a result line came only when the agent exited"
        got[line["event_id"]] = line
    h = got[other["event_id"]]
    assert h["ok"] is False and h["held"] is True and h["code"] == "E_FORBIDDEN", h
    assert "304280" in h["error"] and LOCAL_ISO.match(h["retry_at"]), h
    assert got[own["event_id"]]["ok"] is True, got
    assert got[cancel["event_id"]]["held"] is True, got
    st = harness.outbox_status(ag.box)
    assert st["held"] == 2 and st["rejected"] == 0, st
    assert st["held_last"]["code"] == "E_FORBIDDEN" and LOCAL_ISO.match(st["next_retry"]), st

    # A one-shot send: the held event does not stop the others; exit 3.
    one = Agent(b, os.path.join(b.dir, "box3"), ag.key_args)
    early = request("early", "304280")
    rest = [request(f"r{i}") for i in range(300)]
    text = "".join(json.dumps(e) + "\n" for e in [early] + rest)
    p3 = one.run("--json", "--window", "16", "send", stdin=text, rc=3)
    res = [json.loads(l) for l in p3.stdout.splitlines()]
    assert sum(r["ok"] for r in res) == 300 and [r["event_id"] for r in res if not r["ok"]] == \
        [early["event_id"]], p3.stdout[-2000:]
    assert "held" in p3.stderr, p3.stderr
    st = harness.outbox_status(one.box)
    assert (st["pending"], st["held"], st["acked"]) == (0, 1, 300), st

    # The operator fixes the ACL; the agent is not touched.
    with open(acl, "w") as f:
        f.write(acl_text(pubs, ", 304280"))
    mark = b.log_mark()
    b.proc.send_signal(signal.SIGHUP)
    b.wait_log("acl_reloaded", after=mark)
    while True:  # held again (a retry before the reload) or stored
        line, running = next_line()
        assert running and (line["ok"] or line.get("held")), line
        if line["ok"]:
            got[line["event_id"]] = line
        if got[other["event_id"]]["ok"] and got[cancel["event_id"]]["ok"]:
            break
    st = harness.outbox_status(ag.box)
    assert (st["pending"], st["held"], st["rejected"]) == (0, 0, 0), st
    assert stored_event_ids(b, ag.key_args)[-2:] == [other["event_id"], cancel["event_id"]]
    # The one-shot's held event goes at the next run, at once.
    p3 = one.run("--json", "flush", rc=0)
    assert [json.loads(l)["event_id"] for l in p3.stdout.splitlines()] == [early["event_id"]]
    assert harness.outbox_status(one.box)["held"] == 0
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 0
    reader.join(timeout=30)
    err = p.stderr.read()
    p.stderr.close()
    harness.check_clean("renkei-agent run --spool", err)


def test(b):
    d = b.dir
    pubs = {n: harness.new_keys(d, n) for n in ("broker", "town")}
    acl = harness.secure_on_tcp(b, acl_text(pubs))
    b.start()
    key_args = ["--broker-key", os.path.join(d, "broker.pub"), "--key",
                os.path.join(d, "town.key")]
    dead_letters(b, Agent(b, os.path.join(d, "box"), key_args), key_args)
    held_forbidden(b, Agent(b, os.path.join(d, "box2"), key_args), acl, pubs)


if __name__ == "__main__":
    harness.run(test)

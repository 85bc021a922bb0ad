"""renkei-agent run --spool DIR: the daemon of deploy/renkei-agent@.service.

Finished *.jsonl files dropped into the spool (written elsewhere, renamed
in) are taken in name order, each whole into the outbox, then removed; a
bad line is reported with its file and line number while the rest go. With
the broker down, files are still taken (the outbox keeps them), the agent
is killed with SIGKILL, restarted, and once the broker is back every event
is stored once, in file order. SIGTERM stops the daemon with exit 0 even
while the broker is down."""
import json
import os
import signal
import subprocess

import harness


def drop(spool, name, lines):
    tmp = os.path.join(spool, "." + name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(tmp, os.path.join(spool, name))


def start_agent(b, box, spool, out):
    return subprocess.Popen([harness.tool("renkei-agent"), "--broker", b.ingest, "--outbox", box,
                             "--json", "--timeout", "1000", "--spool", spool, "run"],
                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, text=True)


def test(b):
    box, spool = os.path.join(b.dir, "outbox"), os.path.join(b.dir, "spool")
    os.mkdir(spool)
    results = open(os.path.join(b.dir, "results.jsonl"), "w+", encoding="utf-8")
    b.start()
    agent = start_agent(b, box, spool, results)
    a, bb, c = harness.new_requests("a", 100), harness.new_requests("b", 50), harness.new_requests("c", 100)
    drop(spool, "001-a.jsonl", [json.dumps(e, ensure_ascii=False) for e in a])
    drop(spool, "002-b.jsonl", [json.dumps(e, ensure_ascii=False) for e in bb[:20]] + ["{not json"]
         + [json.dumps(e, ensure_ascii=False) for e in bb[20:]])
    drop(spool, "003-c.jsonl", [json.dumps(e, ensure_ascii=False) for e in c])
    harness.wait_for(lambda: harness.outbox_status(box)["acked"] == 250, "250 acknowledgements")
    assert sorted(os.listdir(spool)) == [], os.listdir(spool)
    results.seek(0)
    refused = [json.loads(l) for l in results if '"ok":false' in l]
    assert [(r["file"], r["line"], r["code"]) for r in refused] == [("002-b.jsonl", 21, "E_JSON")], refused
    stored, _ = b.replay_all()
    want = [e["event_id"] for e in a + bb + c]
    assert [e["event"]["event_id"] for e in stored] == want

    # Broker down: files are still taken, and survive the agent's SIGKILL.
    b.kill()
    d = harness.new_requests("d", 100)
    drop(spool, "004-d.jsonl", [json.dumps(e, ensure_ascii=False) for e in d])
    harness.wait_for(lambda: not os.listdir(spool), "the file taken while the broker is down")
    assert harness.outbox_status(box)["pending"] == 100, harness.outbox_status(box)
    agent.send_signal(signal.SIGKILL)
    agent.wait()
    agent = start_agent(b, box, spool, results)
    e = harness.new_requests("e", 30)
    drop(spool, "005-e.jsonl", [json.dumps(x, ensure_ascii=False) for x in e])
    harness.wait_for(lambda: harness.outbox_status(box)["pending"] == 130, "the next file in the outbox")
    b.start()
    harness.wait_for(lambda: harness.outbox_status(box)["pending"] == 0, "the backlog sent")
    stored, _ = b.replay_all()
    want += [x["event_id"] for x in d + e]
    assert [x["event"]["event_id"] for x in stored] == want, "lost, doubled or out of order"

    # SIGTERM with the broker down: a prompt, clean exit.
    b.kill()
    drop(spool, "006-f.jsonl", [json.dumps(x, ensure_ascii=False) for x in harness.new_requests("f", 5)])
    harness.wait_for(lambda: not os.listdir(spool), "the last file taken")
    agent.send_signal(signal.SIGTERM)
    rc = agent.wait(timeout=15)
    err = agent.stderr.read()
    harness.check_clean("renkei-agent", err)
    assert rc == 0, (rc, err)
    assert harness.outbox_status(box)["pending"] == 5


harness.run(test)

"""renkei-agent --outbox: store and forward, nothing lost, nothing doubled.

1. The broker is down while the agent publishes: every event waits in the
   outbox (status says how many), the agent exits 3; the broker comes up,
   `flush` sends them, each is stored once, in order.
2. `run` (the daemon) reads events from a pipe while the broker is killed
   with SIGKILL and restarted twice: it waits the broker out and delivers
   everything, once, in order.
3. The agent itself is killed with SIGKILL while events are in flight, with
   some acknowledged, some sent but unanswered and some not yet sent; a
   new `run` on the same outbox sends what is left first: again every
   event once, in input order.
"""
import json
import os
import signal
import subprocess
import threading
import time

import harness

N_DOWN = 300
N_RUN = 3000
N_KILL = 20000


def ids(text_lines):
    return [json.loads(l)["event_id"] for l in text_lines]


def agent(b, box, *args, quiet=False):
    """quiet: results go to /dev/null, so a test feeding stdin need not
    read stdout at the same time (a full pipe would stall the agent)."""
    return subprocess.Popen([harness.tool("renkei-agent"), "--broker", b.ingest, "--outbox", box,
                             "--json", "--timeout", "1000"] + list(args),
                            stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stored_ids(b):
    out, _ = b.replay_all()
    got = [e["event"]["event_id"] for e in out]
    assert len(got) == len(set(got)), "an event was stored twice"
    assert [e["seq"] for e in out] == list(range(1, len(out) + 1))
    return got


def same(got, want, what):
    if got == want:
        return
    i = next((k for k, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
    missing = sorted(set(want) - set(got), key=want.index)
    raise AssertionError(f"{what}: {len(got)} stored, {len(want)} expected; first difference at "
                         f"{i}: got {got[i:i + 3]}, want {want[i:i + 3]}; missing {missing[:5]}")


def broker_down(b, box):
    sent = harness.new_request_lines("down", N_DOWN)
    p = agent(b, box, "send")
    out, err = p.communicate("\n".join(sent) + "\n", timeout=120)
    harness.check_clean("renkei-agent", err)
    assert p.returncode == 3, (p.returncode, err)
    assert "wait in the outbox" in err, err
    st = harness.outbox_status(box)
    assert st["pending"] == N_DOWN and st["last_acked"] is None, st
    assert st["producer"].startswith("agent-"), st

    b.start()
    p = agent(b, box, "flush")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, (p.returncode, err)
    results = [json.loads(l) for l in out.splitlines()]
    assert [r["outbox_number"] for r in results] == list(range(1, N_DOWN + 1))
    same(stored_ids(b), ids(sent), "after the broker came up")
    st = harness.outbox_status(box)
    assert st["pending"] == 0 and st["acked"] == N_DOWN, st
    assert st["last_acked"]["seq"] == N_DOWN and st["last_acked"]["number"] == N_DOWN, st
    return ids(sent)


def broker_restarts(b, box, before):
    sent = harness.new_request_lines("run", N_RUN)
    p = agent(b, box, "run", quiet=True)
    third = N_RUN // 3

    def give(k):
        p.stdin.write("\n".join(sent[k * third:(k + 1) * third]) + "\n")
        p.stdin.flush()
    acked = lambda: harness.outbox_status(box)["acked"]
    give(0)
    harness.wait_for(acked, "acks of the first part", timeout=120,
                     until=lambda n: n > len(before))
    b.kill()
    give(1)             # while the broker is down: kept, retried
    # Kept: the broker stays down past the agent's --timeout 1000, so the agent
    # times out, backs off and reconnects; outlasting that is the test.
    time.sleep(1.5)
    down = acked()      # nothing is acknowledged while the broker is down
    b.start()
    harness.wait_for(acked, "acks from the restarted broker", timeout=120,
                     until=lambda n: n > down)
    b.kill()            # likely while the backlog goes out
    time.sleep(0.5)     # kept: a second outage, shorter than --timeout, is the test
    b.start()
    give(2)
    p.stdin.close()
    p.wait(timeout=180)
    err = p.stderr.read()
    harness.check_clean("renkei-agent run", err)
    assert p.returncode == 0, (p.returncode, err[-2000:])
    same(stored_ids(b), before + ids(sent), "across broker restarts")
    assert harness.outbox_status(box)["pending"] == 0
    return before + ids(sent)


def agent_killed(b, box, before):
    sent = harness.new_request_lines("kill", N_KILL)
    p = agent(b, box, "run", quiet=True)

    def feed():
        try:
            for i in range(0, N_KILL, 100):
                p.stdin.write("\n".join(sent[i:i + 100]) + "\n")
                p.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # killed: the rest was never given to it
    writer = threading.Thread(target=feed)
    writer.start()
    def mid_work():
        st = harness.outbox_status(box)
        return st["acked"] > N_DOWN + N_RUN + 100 and st["pending"] > 0
    harness.wait_for(mid_work, "acknowledgements with events still pending")
    p.send_signal(signal.SIGKILL)
    p.wait()
    writer.join()
    given = harness.outbox_status(box)["last_number"] - (N_DOWN + N_RUN)  # what reached the outbox
    st = harness.outbox_status(box)
    left = st["pending"]
    stored = len(stored_ids(b)) - len(before)
    print(f"killed with {given} events in its outbox: {left} pending, {stored} stored")
    assert given < N_KILL, "the agent had read everything: no kill mid-stream"

    # A new run sends what is left first, then what it reads: the events the
    # killed one never read are given again by the caller, as a spool would.
    p = agent(b, box, "run")
    out, err = p.communicate("\n".join(sent[given:]) + "\n", timeout=180)
    harness.check_clean("renkei-agent run", err)
    assert p.returncode == 0, (p.returncode, err[-2000:])
    same(stored_ids(b), before + ids(sent), "across the agent's kill")
    st = harness.outbox_status(box)
    assert st["pending"] == 0, st


def test(b):
    box = os.path.join(b.dir, "outbox")
    done = broker_down(b, box)
    done = broker_restarts(b, box, done)
    agent_killed(b, box, done)


harness.run(test)

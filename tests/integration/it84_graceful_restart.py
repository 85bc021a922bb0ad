"""A graceful restart under load (systemctl restart: SIGTERM, then start).

An agent with an outbox publishes continuously from a pipe while the broker
is stopped with SIGTERM twice and started again. Each stop must end with
exit 0 and msg=stopped after committing and acknowledging what had
arrived; afterwards the agent's outbox drains by itself, and the log holds
every event exactly once, in the order given. Also: what the broker had
acknowledged before each stop is in the log after it."""
import json
import os
import subprocess
import threading
import time

import harness

N = 6000


def test(b):
    box = os.path.join(b.dir, "outbox")
    sent = harness.new_request_lines("gr", N)
    b.start()
    agent = subprocess.Popen([harness.tool("renkei-agent"), "--broker", b.ingest, "--outbox", box,
                              "--timeout", "1000", "run"], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def feed():
        for i in range(0, N, 50):
            agent.stdin.write("\n".join(sent[i:i + 50]) + "\n")
            agent.stdin.flush()
            time.sleep(0.03)  # kept: a steady trickle spanning both restarts is the test
        agent.stdin.close()
    writer = threading.Thread(target=feed)
    writer.start()

    def status():  # None until the agent has made its outbox
        return harness.outbox_status(box) if os.path.exists(os.path.join(box, "data.mdb")) else None

    acked = 0
    for _ in range(2):
        # Under load: this broker run has acknowledged some of it.
        st = harness.wait_for(status, "acks from this broker run", timeout=120,
                              until=lambda st, was=acked: st is not None and st["acked"] > was)
        acked = st["acked"]
        assert st["last_number"] < N, "the load was over before the stop"
        t0 = time.monotonic()
        b.stop()                         # SIGTERM: exit 0 and msg=stopped, asserted
        took = time.monotonic() - t0
        assert took < 10, f"stop took {took:.1f} s"
        b.start()
        stored, _ = b.replay_all()
        assert len(stored) >= acked, (len(stored), acked)
    writer.join()
    assert agent.wait(timeout=120) == 0, agent.stderr.read()
    assert harness.outbox_status(box)["pending"] == 0
    stored, _ = b.replay_all()
    got = [e["event"]["event_id"] for e in stored]
    want = [json.loads(l)["event_id"] for l in sent]
    assert got == want, f"{len(got)} stored of {N}; lost, doubled or reordered"
    print(f"{N} events through two graceful restarts under load")


harness.run(test)

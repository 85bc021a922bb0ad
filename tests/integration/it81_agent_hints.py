"""renkei-agent's errors say what happened and its hints work as printed:
an endpoint without a scheme gets the tcp:// form (renkei-sub and
renkei-replay too); when the broker (a CURVE
broker on TCP, the secured setup) is down, the agent prints the command
that sends what waits in its outbox, with this run's config file or
endpoint and keys, and that command, run as printed once the broker is up,
sends the events (exit 0)."""
import json
import os
import re
import shlex
import subprocess

import harness


def agent(*args, stdin=None):
    p = subprocess.run([harness.tool("renkei-agent")] + list(args), input=stdin,
                       capture_output=True, text=True, timeout=120)
    harness.check_clean("renkei-agent", p.stderr)
    return p


def hint(stderr):
    m = re.search(r"\(e\.g\. (renkei-agent .*? flush)\)", stderr)
    assert m, stderr
    return m.group(1)


def test(b):
    ev = json.loads(harness.valid_scenario_lines(1)[0])

    p = agent("--broker", "127.0.0.1:18701", "event", json.dumps(ev))
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "--broker 127.0.0.1:18701: no transport; write tcp://127.0.0.1:18701" in p.stderr, \
        p.stderr
    print("it81:", p.stderr.strip().splitlines()[0])
    for tool, opt in (("renkei-sub", "--feed"), ("renkei-sub", "--replay"),
                      ("renkei-replay", "--replay")):
        p = subprocess.run([harness.tool(tool), opt, "127.0.0.1:18702"], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 2 and f"{opt} 127.0.0.1:18702: no transport; write " \
            "tcp://127.0.0.1:18702" in p.stderr, (tool, opt, p.returncode, p.stderr)

    d = b.dir
    # A mistake in the config file: FILE:LINE: key: reason, exit 2.
    bad = os.path.join(d, "bad.conf")
    with open(bad, "w", encoding="utf-8") as f:
        f.write("[agent]\nbroker = tcp://127.0.0.1:1\nbrokr_key = x\ntimeout = soon\n")
    p = agent("--config", bad, "event", json.dumps(ev))
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert f"{bad}:3: brokr_key: unknown key in [agent]" in p.stderr, p.stderr
    assert f'{bad}:4: timeout: must be 1..86400000, got "soon"' in p.stderr, p.stderr
    p = agent("--config", os.path.join(d, "missing.conf"), "event", json.dumps(ev))
    assert p.returncode == 2 and "missing.conf: cannot read" in p.stderr, p.stderr

    harness.new_keys(d, "broker")
    town = harness.new_keys(d, "town")
    acl = os.path.join(d, "acl.ini")
    with open(acl, "w", encoding="utf-8") as f:
        f.write(f"[tenant town]\nkey = {town}\npublish = *\nreplay = *\n")
    port = harness.free_port()
    ep = f"tcp://127.0.0.1:{port}"
    b.ingest = ep
    b.extra = ["--curve-key", os.path.join(d, "broker.key"), "--acl", acl]
    conf = os.path.join(d, "agent.conf")
    with open(conf, "w", encoding="utf-8") as f:
        f.write(f"[agent]\nbroker = {ep}\nbroker_key = {d}/broker.pub\nkey = {d}/town.key\n")

    cases = (("config", ["--config", conf]),
             ("options", ["--broker", ep, "--broker-key", os.path.join(d, "broker.pub"),
                          "--key", os.path.join(d, "town.key")]))
    printed = []
    for i, (label, how) in enumerate(cases):
        box = os.path.join(d, f"town's box {label}")  # printed quoted, pasted as is
        e = harness.renamed(ev, f"h{i}")
        p = agent(*how, "--outbox", box, "--timeout", "300", "event", json.dumps(e))
        assert p.returncode == 3, (p.returncode, p.stderr)   # nobody listens yet
        cmd = hint(p.stderr)
        print(f"it81: hint ({label}): {cmd}")
        assert ("--config" in cmd) == (label == "config") and "--outbox" in cmd, cmd
        printed.append((cmd, e["event_id"]))

    b.start()
    for cmd, event_id in printed:
        assert shlex.split(cmd)[0] == "renkei-agent"
        # Pasted into a shell as printed, the programs on PATH.
        p = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, PATH=harness.BIN + ":" + os.environ["PATH"]))
        assert p.returncode == 0, (cmd, p.returncode, p.stderr)
        assert event_id in p.stdout, p.stdout
    r = subprocess.run([harness.tool("renkei-replay"), "--replay", b.replay, "--broker-key",
                        os.path.join(d, "broker.pub"), "--key", os.path.join(d, "town.key")],
                       capture_output=True, text=True, timeout=60)
    got = sorted(json.loads(l)["event"]["event_id"] for l in r.stdout.splitlines())
    assert got == sorted(e for _, e in printed), (got, r.stderr)


harness.run(test)

"""Errors that say what happened (issue 20, item 5): against a real CURVE
broker with an ACL, renkei-agent, renkei-sub and renkei-replay tell apart a
key the ACL refuses (ZAP), a wrong broker key, no keys for a CURVE broker,
nothing listening, an unknown host and a port where something listens and
never speaks; a .pub given as --key is refused at once; a subscription
outside the ACL is refused with the broker's reason, without waiting out a
timeout."""
import json
import os
import socket
import subprocess
import time

import harness

MESSAGES = {
    "refused key": "refused this client's key (ZAP status 400): its public key",
    "wrong broker key": "the CURVE handshake with",
    "no keys": "speaks CURVE: give --broker-key",
    "nothing listening": "nothing listens at",
    "unknown host": 'unknown host "no-such-host.invalid"',
    "silent": "accepted the connection but never answered",
}


def keys(d, name):
    p = subprocess.run([harness.tool("renkei-keys"), "--dir", d, name], capture_output=True,
                       text=True, check=True)
    return p.stdout.strip()


def run(tool, *args):
    p = subprocess.run([harness.tool(tool)] + list(args), capture_output=True, text=True,
                       timeout=120)
    harness.check_clean(tool, p.stderr)
    return p


def test(b):
    d = b.dir
    pubs = {n: keys(d, n) for n in ("broker", "town", "stranger")}
    acl = os.path.join(d, "acl.ini")
    with open(acl, "w") as f:
        f.write(f"[tenant town]\nkey = {pubs['town']}\npublish = *\nsubscribe = aid.\n"
                f"replay = aid.\n")
    ports = [harness.free_port() for _ in range(3)]
    b.ingest, b.feed, b.replay = (f"tcp://127.0.0.1:{p}" for p in ports)
    b.extra = ["--curve-key", os.path.join(d, "broker.key"), "--acl", acl]
    b.start()
    k = lambda broker, me: ["--broker-key", os.path.join(d, broker), "--key",
                            os.path.join(d, me)]
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts (the kernel does) and never speaks
    dead = f"tcp://127.0.0.1:{harness.free_port()}"
    cases = {
        "refused key": (b.ingest, k("broker.pub", "stranger.key")),
        "wrong broker key": (b.ingest, k("town.pub", "town.key")),
        "no keys": (b.ingest, []),
        "nothing listening": (dead, k("broker.pub", "town.key")),
        "unknown host": ("tcp://no-such-host.invalid:7701", k("broker.pub", "town.key")),
        "silent": (f"tcp://127.0.0.1:{silent.getsockname()[1]}", k("broker.pub", "town.key")),
    }
    ev = json.dumps(harness.new_requests("err", 1)[0], ensure_ascii=False)
    for name, (ep, args) in cases.items():
        p = run("renkei-agent", "--broker", ep, "--timeout", "1000", *args, "event", ev)
        line = p.stderr.splitlines()[0]
        print(f"it81b agent, {name}: {line}")
        assert p.returncode == 3, (name, p.returncode, p.stderr)
        assert "no answer from the broker" not in line, line  # the old guess for all
        for other, text in MESSAGES.items():
            assert (text in line) == (other == name), (name, other, line)
        if name == "refused key":
            assert pubs["stranger"] in line, line
    # The same words from the readers, on the replay socket.
    for name in ("refused key", "wrong broker key", "nothing listening"):
        ep, args = cases[name]
        ep = b.replay if ep == b.ingest else ep
        p = run("renkei-replay", "--replay", ep, "--timeout", "1000", *args)
        print(f"it81b replay, {name}: {p.stderr.strip()}")
        assert p.returncode == 3 and MESSAGES[name] in p.stderr, (name, p.stderr)
        p = run("renkei-sub", "--feed", b.feed, "--replay", ep, "--count", "1", *args)
        print(f"it81b sub, {name}: {p.stderr.strip()}")
        assert p.returncode == 3 and MESSAGES[name] in p.stderr, (name, p.stderr)

    # A public key as --key: refused before anything is sent.
    for tool, opt in (("renkei-agent", ["--broker", b.ingest, "event", ev]),
                      ("renkei-sub", ["--feed", b.feed, "--replay", b.replay]),
                      ("renkei-replay", ["--replay", b.replay])):
        p = run(tool, *k("broker.pub", "town.pub"), *opt)
        print(f"it81b {tool}, .pub as --key: {p.stderr.strip()}")
        assert p.returncode == 2 and "a public key file (.pub); give the secret key" \
            in p.stderr, (tool, p.returncode, p.stderr)

    # A subscription outside the ACL: refused with the broker's reason (the
    # replay socket's answer), not a timeout.
    t0 = time.monotonic()
    p = run("renkei-sub", "--feed", b.feed, "--replay", b.replay, "--family", "kpi",
            "--count", "1", *k("broker.pub", "town.key"))
    secs = time.monotonic() - t0
    print(f"it81b sub, forbidden topics ({secs:.1f} s): {p.stderr.strip()}")
    assert p.returncode == 1 and p.stdout == "", (p.returncode, p.stderr)
    assert "refused: the broker refuses these topics to this key (E_FORBIDDEN: filter.topics: " \
           "tenant town may replay only" in p.stderr, p.stderr
    b.wait_log("subscription_refused", tenant="town", key=pubs["town"])
    silent.close()


harness.run(test)

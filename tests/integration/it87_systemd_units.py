"""deploy/renkei-broker.service and deploy/renkei-agent@.service: the
hardening a prefecture's IT office expects is there, and the very command
lines the units run work: the broker's ExecStartPre and ExecStart on the
example configuration (with ipc endpoints instead of TCP ports), SIGTERM
as `systemctl stop` sends it (exit 0 within TimeoutStopSec), and the
agent instance 304280 taking a spool file into its outbox and the broker."""
import configparser
import json
import os
import re
import shlex
import signal
import subprocess

import harness

HARDENING = ("ProtectSystem", "ReadWritePaths", "StateDirectory", "NoNewPrivileges",
             "PrivateTmp", "ProtectHome", "Restart")


def unit(name):
    p = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    p.optionxform = str
    p.read(os.path.join(harness.SOURCE, "deploy", name), encoding="utf-8")
    return p


def command(line, subst):
    for k, v in subst.items():
        line = line.replace(k, v)
    return shlex.split(line)


def seconds(text):
    m = re.fullmatch(r"(\d+)s", text)
    assert m, text
    return int(m.group(1))


def test(b):
    broker, agent = unit("renkei-broker.service"), unit("renkei-agent@.service")
    for u in (broker, agent):
        svc = u["Service"]
        missing = [k for k in HARDENING if k not in svc]
        assert not missing, missing
        assert svc["Restart"] == "on-failure" and svc["ProtectSystem"] == "strict"
        assert "DynamicUser" in svc or "User" in svc
    state = os.path.join(b.dir, "var-lib")
    os.makedirs(os.path.join(state, "renkei-agent", "304280", "spool"))

    # The broker's command lines, on the shipped example configuration.
    with open(os.path.join(harness.SOURCE, "deploy", "renkei.conf.example"), encoding="utf-8") as f:
        conf = f.read()
    for role, ep in (("ingest", b.ingest), ("feed", b.feed), ("replay", b.replay)):
        conf = re.sub(rf"^{role} = .*$", f"{role} = {ep}", conf, flags=re.M)
    conf_path = os.path.join(b.dir, "renkei.conf")
    with open(conf_path, "w", encoding="utf-8") as f:
        f.write(conf)
    subst = {"/usr/local/sbin/": harness.BIN + "/", "/usr/local/bin/": harness.BIN + "/",
             "/etc/renkei/renkei.conf": conf_path, "%S": state, "%i": "304280",
             "${RENKEI_BROKER}": b.ingest}
    pre = subprocess.run(command(broker["Service"]["ExecStartPre"], subst), capture_output=True,
                         text=True, timeout=30)
    assert pre.returncode == 0, pre.stderr
    log_path = os.path.join(b.dir, "unit-broker.log")
    with open(log_path, "w") as log:
        bp = subprocess.Popen(command(broker["Service"]["ExecStart"], subst), stdout=log,
                              stderr=log)
    b.children.append(bp)  # killed at cleanup if the test fails
    ready = harness.wait_log_file(log_path, "ready", proc=bp)
    assert ready["data_dir"] == f"{state}/renkei", ready

    # The agent instance 304280, spool to broker.
    ap = subprocess.Popen(command(agent["Service"]["ExecStart"], subst), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    b.children.append(ap)
    ev = json.loads(harness.valid_scenario_lines(1)[0])
    spool = os.path.join(state, "renkei-agent", "304280", "spool")
    with open(os.path.join(spool, ".x"), "w", encoding="utf-8") as f:
        f.write(json.dumps(ev, ensure_ascii=False) + "\n")
    os.rename(os.path.join(spool, ".x"), os.path.join(spool, "one.jsonl"))
    stored = harness.wait_for(lambda: b.replay_all()[0], "the spooled event in the broker's log",
                              timeout=60)
    assert [e["event"]["event_id"] for e in stored] == [ev["event_id"]]

    for proc, u in ((ap, agent), (bp, broker)):
        proc.send_signal(signal.SIGTERM)  # systemctl stop
        rc = proc.wait(timeout=seconds(u["Service"]["TimeoutStopSec"]))
        assert rc == 0, rc
    assert harness.log_records(harness.read_log(log_path), "stopped", whole=True), \
        harness.read_log(log_path)
    harness.check_clean("broker", harness.read_log(log_path))


harness.run(test)

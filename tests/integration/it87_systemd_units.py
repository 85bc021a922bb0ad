"""deploy/renkei-broker.service.in and deploy/renkei-agent@.service.in, as
`cmake --install` writes them for the prefix of the install (the configured
one, and another given with --prefix): the hardening a prefecture's
IT office expects is there, `systemd-analyze verify` finds nothing to say
(when systemd is installed), and the very command lines the units run work
as the units' user, renkei, in the secured setup the guide describes (its
commands of sections 2, 2a and 4 are taken from deploy/README.md, between
the it87:* markers, and run as written, with an editor and systemctl stood
in for): a
CURVE broker whose secret key stays 0600 root and reaches the service as a
systemd credential ($CREDENTIALS_DIRECTORY, %d), and the agent instance
304280 taking its broker and keys from /etc/renkei/agent/304280.conf, a
spool file going into its outbox and the broker's log."""
import configparser
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import tempfile

import harness

HARDENING = ("ProtectSystem", "ReadWritePaths", "StateDirectory", "NoNewPrivileges",
             "PrivateTmp", "ProtectHome", "Restart")
USER = "renkei"


def installed_units(prefix=None):
    """The units as `cmake --install` writes them, into a scratch DESTDIR."""
    build = os.environ["RK_BUILD_DIR"]
    root = tempfile.mkdtemp(prefix="rk-it87-install-")
    try:
        cmd = ["cmake", "--install", build] + (["--prefix", prefix] if prefix else [])
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=240,
                           env=dict(os.environ, DESTDIR=root))
        assert p.returncode == 0, p.stdout + p.stderr
        where = (prefix or cache_value(build, "CMAKE_INSTALL_PREFIX")) + "/lib/systemd/system"
        out = {}
        for name in ("renkei-broker.service", "renkei-agent@.service"):
            with open(root + where + "/" + name, encoding="utf-8") as f:
                out[name] = f.read()
        assert os.path.isdir(root + "/etc/renkei/agent")
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def unit(text):
    p = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    p.optionxform = str
    p.read_string(text)
    return p


def command(line, subst):
    for k, v in subst.items():
        line = line.replace(k, v)
    return shlex.split(line)


def seconds(text):
    m = re.fullmatch(r"(\d+)s", text)
    assert m, text
    return int(m.group(1))


def cache_value(build, name):
    with open(os.path.join(build, "CMakeCache.txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split("=", 1)[1].strip()
    raise AssertionError(f"{name} not in the CMake cache of {build}")


def check_units_text(broker, agent, prefix):
    for u in (broker, agent):
        svc = u["Service"]
        missing = [k for k in HARDENING if k not in svc]
        assert not missing, missing
        assert svc["Restart"] == "on-failure" and svc["ProtectSystem"] == "strict"
        assert svc["User"] == USER and "DynamicUser" not in svc
    bs, ags = broker["Service"], agent["Service"]
    assert bs["LoadCredential"] == "broker.key:/etc/renkei/broker.key", bs["LoadCredential"]
    for k in ("ExecStartPre", "ExecStart"):
        assert bs[k].startswith(prefix + "/sbin/renkei-broker "), (k, bs[k], prefix)
        assert "--curve-key %d/broker.key" in bs[k], bs[k]
    assert ags["ExecStart"].startswith(prefix + "/bin/renkei-agent --config /etc/renkei/agent/%i.conf "), \
        ags["ExecStart"]
    assert bs["StateDirectoryMode"] == "0700"


def check_other_prefix():
    """Installed with another --prefix: the units follow it."""
    texts = installed_units("/opt/renkei-it87")
    check_units_text(unit(texts["renkei-broker.service"]), unit(texts["renkei-agent@.service"]),
                     "/opt/renkei-it87")


def verify_with_systemd(work, texts, prefix):
    if not shutil.which("systemd-analyze"):
        print("it87: systemd-analyze not installed: skipping systemd-analyze verify")
        return
    d = os.path.join(work, "units")
    man = os.path.join(work, "man")
    os.makedirs(d)
    for sec in ("1", "5", "8"):
        os.makedirs(os.path.join(man, "man" + sec))
    for page in os.listdir(os.path.join(harness.SOURCE, "deploy", "man")):
        shutil.copy(os.path.join(harness.SOURCE, "deploy", "man", page),
                    os.path.join(man, "man" + page.rsplit(".", 1)[1], page))
    for name, text in texts.items():
        # verify wants the programs to exist: point at the build's.
        text = text.replace(prefix + "/sbin/", harness.BIN + "/").replace(prefix + "/bin/",
                                                                          harness.BIN + "/")
        with open(os.path.join(d, name), "w", encoding="utf-8") as f:
            f.write(text)
    p = subprocess.run(["systemd-analyze", "verify", os.path.join(d, "renkei-broker.service"),
                        os.path.join(d, "renkei-agent@304280.service")],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, MANPATH=man))
    assert p.returncode == 0 and not p.stderr.strip(), (p.returncode, p.stdout, p.stderr)
    print("it87: systemd-analyze verify: no findings")


def ensure_user():
    """The unit's user, created as the guide (and the package) does."""
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pass
    p = subprocess.run(["useradd", "--system", "--user-group", "--home-dir", "/nonexistent",
                        "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                       capture_output=True, text=True)
    # Another test may have made it meanwhile (exit 9: exists).
    assert p.returncode in (0, 9), p.stderr
    return pwd.getpwnam(USER)


def as_user(cmd):
    return ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups", "--no-new-privs",
            "--"] + cmd


def guide_block(name, lang="sh"):
    with open(os.path.join(harness.SOURCE, "deploy", "README.md"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(rf"<!-- {name} -->\s*```{lang}\n(.*?)```\s*<!-- /{name} -->", text, re.S)
    assert m, f"deploy/README.md has no ```{lang} block between <!-- {name} --> markers"
    return m.group(1)


def run_guide(work, name, subst, edits):
    """Runs a block of the guide with sh -e, as written but for `subst`;
    $EDITOR writes the file's content from `edits`, systemctl only logs."""
    script = guide_block(name)
    for k, v in subst.items():
        script = script.replace(k, v)
    tools = os.path.join(work, "guide-bin")
    os.makedirs(tools, exist_ok=True)
    with open(os.path.join(tools, "edits.json"), "w", encoding="utf-8") as f:
        json.dump(edits, f)
    with open(os.path.join(tools, "editor"), "w") as f:
        f.write("#!/usr/bin/python3\nimport json, sys\n"
                f"edits = json.load(open({os.path.join(tools, 'edits.json')!r}))\n"
                "open(sys.argv[1], 'w').write(edits[sys.argv[1]])\n")
    with open(os.path.join(tools, "systemctl"), "w") as f:
        f.write(f"#!/bin/sh\necho \"$@\" >> {os.path.join(tools, 'systemctl.log')}\n")
    for t in ("editor", "systemctl"):
        os.chmod(os.path.join(tools, t), 0o755)
    p = subprocess.run(["sh", "-e", "-c", script], cwd=work, capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, EDITOR=os.path.join(tools, "editor"),
                                             PATH=f"{tools}:{harness.BIN}:{os.environ['PATH']}"))
    assert p.returncode == 0, (name, p.stdout, p.stderr)
    return p


def run_as_unit_user(b, broker, agent, prefix):
    pw = ensure_user()
    work = b.dir
    os.chmod(work, 0o755)
    etc = os.path.join(work, "etc", "renkei")
    os.makedirs(os.path.dirname(etc))
    ports = {r: harness.free_port() for r in ("ingest", "feed", "replay")}
    subst = {"/etc/renkei": etc, "/usr/local/share/doc/renkei/": harness.SOURCE + "/deploy/"}
    conf = guide_block("it87:conf", "ini")
    for (role, port), guide_port in zip(ports.items(), (7701, 7702, 7703)):
        conf = conf.replace(f"{role} = tcp://0.0.0.0:{guide_port}\n",
                            f"{role} = tcp://0.0.0.0:{port}\n")
    conf = conf.replace("/etc/renkei", etc)
    assert all(f":{port}\n" in conf for port in ports.values()), conf
    # Section 2: the broker's keys, its config as 2a gives it; the ACL
    # lists, for now, only the prefecture's own reader.
    hq = os.path.join(work, "hq")
    os.makedirs(hq)
    hq_pub = harness.new_keys(hq, "hq")
    acl = f"[tenant osaka-pref-disaster-hq]\nkey = {hq_pub}\nsubscribe = *\nreplay = *\n"
    p = run_guide(work, "it87:broker", subst, {f"{etc}/renkei.conf": conf,
                                               f"{etc}/acl.ini": acl})
    assert ": ok: " in p.stdout, p.stdout
    broker_pub = open(os.path.join(etc, "broker.pub")).read().strip()
    assert os.stat(os.path.join(etc, "broker.key")).st_mode & 0o777 == 0o600
    assert os.stat(os.path.join(etc, "broker.key")).st_uid == 0
    # Section 4, on the town's machine: broker.pub as received.
    shutil.copy(os.path.join(etc, "broker.pub"), os.path.join(work, "broker.pub"))
    ingest = f"tcp://127.0.0.1:{ports['ingest']}"
    run_guide(work, "it87:agent", dict(subst, **{"tcp://broker.pref.example.lg.jp:7701": ingest}),
              {})
    with open(os.path.join(work, "guide-bin", "systemctl.log")) as f:
        assert f.read().split() == ["enable", "--now", "renkei-agent@304280"]
    key = os.path.join(etc, "agent", "304280.key")
    assert os.stat(key).st_uid == pw.pw_uid and os.stat(key).st_mode & 0o777 == 0o600
    # 2a, a new municipality: its .pub line into the ACL.
    town_pub = open(os.path.join(etc, "agent", "304280.pub")).read().strip()
    with open(os.path.join(etc, "acl.ini"), "a", encoding="utf-8") as f:
        f.write(f"\n[tenant kushimoto-town]\nkey = {town_pub}\npublish = 304280\n"
                "subscribe = *\nreplay = *\n")

    # What systemd makes before ExecStart: the state directories (owned by
    # the user) and the credentials directory (the key copied, 0400, owned
    # by the user; the original stays 0600 root).
    state = os.path.join(work, "var-lib")
    for d, mode in (("renkei", 0o700), ("renkei-agent", 0o755), ("renkei-agent/304280", 0o770),
                    ("renkei-agent/304280/spool", 0o770)):
        os.makedirs(os.path.join(state, d), exist_ok=True)
        os.chown(os.path.join(state, d), pw.pw_uid, pw.pw_gid)
        os.chmod(os.path.join(state, d), mode)
    creds = os.path.join(work, "credentials", "renkei-broker.service")
    os.makedirs(creds)
    shutil.copy(os.path.join(etc, "broker.key"), os.path.join(creds, "broker.key"))
    os.chmod(os.path.join(creds, "broker.key"), 0o400)
    os.chown(os.path.join(creds, "broker.key"), pw.pw_uid, pw.pw_gid)
    os.chown(creds, pw.pw_uid, pw.pw_gid)
    os.chmod(creds, 0o500)

    subst = {prefix + "/sbin/": harness.BIN + "/", prefix + "/bin/": harness.BIN + "/",
             "/etc/renkei/": etc + "/", "%d": creds, "%S": state, "%i": "304280"}
    os.chmod(etc, 0o755)
    env = dict(os.environ, CREDENTIALS_DIRECTORY=creds)
    bs = broker["Service"]
    pre = subprocess.run(as_user(command(bs["ExecStartPre"], subst)), capture_output=True,
                         text=True, timeout=30, env=env)
    assert pre.returncode == 0, pre.stdout + pre.stderr
    print("it87: ExecStartPre as renkei:", pre.stdout.strip()[:200], "...")
    # Without the credential (the old unit's way: the 0600 root file read
    # directly) the same check refuses, rather than a start failing in a loop.
    direct = [os.path.join(etc, "broker.key") if w == "@KEY@" else w
              for w in command(bs["ExecStartPre"].replace("%d/broker.key", "@KEY@"), subst)]
    bad = subprocess.run(as_user(direct), capture_output=True, text=True, timeout=30, env=env)
    assert bad.returncode == 2 and f"not readable by {USER} (Permission denied)" in bad.stderr, \
        (bad.returncode, bad.stderr)
    print("it87: the root-only key read directly as renkei:", bad.stderr.strip())
    log_path = os.path.join(work, "unit-broker.log")
    with open(log_path, "w") as log:
        bp = subprocess.Popen(as_user(command(bs["ExecStart"], subst)), stdout=log, stderr=log,
                              env=env)
    b.children.append(bp)  # killed at cleanup if the test fails
    ready = harness.wait_log_file(log_path, "ready", proc=bp)
    assert ready["data_dir"] == f"{state}/renkei", ready
    curve = harness.log_records(harness.read_log(log_path), "curve")
    assert curve and curve[0]["public_key"] == broker_pub, harness.read_log(log_path)
    assert os.stat(os.path.join(state, "renkei", "data.mdb")).st_uid == pw.pw_uid
    print(f"it87: broker as uid {pw.pw_uid} ({USER}), key from the credential:",
          f"public_key={curve[0]['public_key']}")

    ap = subprocess.Popen(as_user(command(agent["Service"]["ExecStart"], subst)),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    b.children.append(ap)
    ev = json.loads(harness.valid_scenario_lines(1)[0])
    ev["municipality"] = "304280"
    spool = os.path.join(state, "renkei-agent", "304280", "spool")
    with open(os.path.join(spool, ".x"), "w", encoding="utf-8") as f:
        f.write(json.dumps(ev, ensure_ascii=False) + "\n")
    os.rename(os.path.join(spool, ".x"), os.path.join(spool, "one.jsonl"))

    def stored():
        p = subprocess.run([harness.tool("renkei-replay"), "--replay",
                            f"tcp://127.0.0.1:{ports['replay']}", "--broker-key", broker_pub,
                            "--key", os.path.join(etc, "agent", "304280.key")],
                           capture_output=True, text=True, timeout=60)
        return [json.loads(l)["event"]["event_id"] for l in p.stdout.splitlines()]
    got = harness.wait_for(stored, "the spooled event in the broker's log", timeout=60)
    assert got == [ev["event_id"]], got
    print("it87: agent as renkei, config /etc/renkei/agent/304280.conf: event", got[0], "stored")

    for proc, u in ((ap, agent), (bp, broker)):
        proc.send_signal(signal.SIGTERM)  # systemctl stop
        rc = proc.wait(timeout=seconds(u["Service"]["TimeoutStopSec"]))
        assert rc == 0, (rc, proc.stderr.read() if proc.stderr else "")
    ap.stderr.close()
    text = harness.read_log(log_path)
    assert harness.log_records(text, "stopped", whole=True), text
    harness.check_clean("broker", text)


def test(b):
    build = os.environ["RK_BUILD_DIR"]
    prefix = cache_value(build, "CMAKE_INSTALL_PREFIX")
    texts = installed_units()
    for n, t in texts.items():
        assert "@RK_" not in t, n
    broker, agent = unit(texts["renkei-broker.service"]), unit(texts["renkei-agent@.service"])
    check_units_text(broker, agent, prefix)
    check_other_prefix()
    verify_with_systemd(b.dir, texts, prefix)
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("it87: not root (or no setpriv): skipping the run as the unit's user")
        return
    run_as_unit_user(b, broker, agent, prefix)


harness.run(test)

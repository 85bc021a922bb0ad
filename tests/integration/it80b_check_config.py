"""renkei-broker --check-config does what a start would: each mistake an
administrator made following the guide is caught, printed as
FILE:LINE: key: reason, with exit 2; a sound secured configuration passes.
The broker itself refuses a public key given as curve_key, and
renkei-keys --public refuses a public key file."""
import os
import pwd
import shutil
import subprocess

import harness


def write(path, text, mode=None):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)


def check(conf, *extra, user=None):
    cmd = [harness.tool("renkei-broker"), "--config", conf, "--check-config"] + list(extra)
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    harness.check_clean("renkei-broker --check-config", p.stderr)
    return p


def conf_text(d, **over):
    lines = {"ingest": "tcp://0.0.0.0:17701", "feed": "tcp://0.0.0.0:17702",
             "replay": "tcp://0.0.0.0:17703", "data_dir": os.path.join(d, "data"),
             "curve_key": os.path.join(d, "broker.key"), "acl": os.path.join(d, "acl.ini")}
    lines.update(over)
    return "[broker]\n" + "".join(f"{k} = {v}\n" for k, v in lines.items() if v is not None)


def line_of(text, key):
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith(key + " ="):
            return n
    raise AssertionError(key)


def expect(d, name, text, key, reason, *extra, user=None):
    conf = os.path.join(d, name + ".conf")
    write(conf, text)
    os.chmod(conf, 0o644)
    p = check(conf, *extra, user=user)
    want = f"{conf}:{line_of(text, key)}: {key}: "
    assert p.returncode == 2, (name, p.returncode, p.stdout, p.stderr)
    assert p.stdout == "", (name, p.stdout)
    hit = [l for l in p.stderr.splitlines() if l.startswith(want) and reason in l]
    assert hit, (name, want, reason, p.stderr)
    print(f"it80b: {name}: exit 2: {hit[0]}")


def test(b):
    d = b.dir
    os.chmod(d, 0o755)
    pub = harness.new_keys(d, "broker")
    town = harness.new_keys(d, "304280")
    write(os.path.join(d, "acl.ini"), f"[tenant kushimoto-town]\nkey = {town}\npublish = 304280\n",
          0o644)

    good = os.path.join(d, "good.conf")
    write(good, conf_text(d))
    p = check(good)
    assert p.returncode == 0 and ": ok: " in p.stdout, (p.stdout, p.stderr)

    expect(d, "missing-acl", conf_text(d, acl=os.path.join(d, "nope.ini")), "acl",
           "No such file or directory")
    expect(d, "missing-key", conf_text(d, curve_key=os.path.join(d, "nope.key")), "curve_key",
           "No such file or directory")
    expect(d, "key-without-acl", conf_text(d, acl=None), "curve_key", "needs acl")
    expect(d, "acl-without-key", conf_text(d, curve_key=None, ingest="tcp://127.0.0.1:17701",
                                           feed="tcp://127.0.0.1:17702",
                                           replay="tcp://127.0.0.1:17703"),
           "acl", "needs curve_key")
    expect(d, "open-without-curve", conf_text(d, curve_key=None, acl=None), "ingest",
           "not loopback and there is no curve_key")
    expect(d, "tpc", conf_text(d, feed="tpc://0.0.0.0:17702"), "feed",
           'unknown transport "tpc"')
    expect(d, "no-port", conf_text(d, replay="tcp://0.0.0.0"), "replay",
           "tcp://HOST:PORT")
    expect(d, "ipc-dir", conf_text(d, ingest="ipc:///nonexistent-dir/ingest"), "ingest",
           "does not exist")
    expect(d, "pub-as-key", conf_text(d, curve_key=os.path.join(d, "broker.pub")), "curve_key",
           "a public key file (.pub)")
    # The same public key copied under a secret key's name keeps cp's 0644.
    shutil.copy(os.path.join(d, "broker.pub"), os.path.join(d, "copied.key"))
    expect(d, "pub-renamed", conf_text(d, curve_key=os.path.join(d, "copied.key")), "curve_key",
           "readable by every user")
    write(os.path.join(d, "bad-acl.ini"), "[tenant x]\nkey = not-a-key\n", 0o644)
    expect(d, "acl-not-loading", conf_text(d, acl=os.path.join(d, "bad-acl.ini")), "acl",
           "does not load: " + os.path.join(d, "bad-acl.ini") + ":2")

    # An option names the option instead of a line.
    p = check(good, "--curve-key", os.path.join(d, "broker.pub"))
    assert p.returncode == 2 and "renkei-broker: --curve-key: " in p.stderr, p.stderr

    # Readable by the user who runs it: the service's user cannot read the
    # 0600 root key (the unit hands it over as a credential instead).
    if os.geteuid() == 0 and shutil.which("setpriv"):
        try:
            pwd.getpwnam("renkei")
            user = "renkei"
        except KeyError:
            user = "nobody"
        os.makedirs(os.path.join(d, "data"))
        os.chown(os.path.join(d, "data"), pwd.getpwnam(user).pw_uid, -1)
        expect(d, "unreadable-key", conf_text(d), "curve_key",
               f"not readable by {user} (Permission denied)", user=user)
        expect(d, "unwritable-data", conf_text(d, data_dir="/var/lib/it80b-none/data",
                                               curve_key=None, acl=None,
                                               ingest="tcp://127.0.0.1:17701",
                                               feed="tcp://127.0.0.1:17702",
                                               replay="tcp://127.0.0.1:17703"),
               "data_dir", f"not writable by {user}", user=user)
    else:
        print("it80b: not root: skipping the checks as another user")

    # A start refuses the public key too, rather than run under another key.
    p = subprocess.run([harness.tool("renkei-broker"), "--config", good, "--curve-key",
                        os.path.join(d, "copied.key"), "--ingest", b.ingest, "--feed", b.feed,
                        "--replay", b.replay], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, p.stderr
    assert harness.log_records(p.stderr, "security_failed", whole=True), p.stderr
    assert "readable by every user" in p.stderr, p.stderr

    # renkei-keys --public refuses a public key; a secret key still works.
    p = subprocess.run([harness.tool("renkei-keys"), "--public", os.path.join(d, "broker.pub")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "a public key file (.pub)" in p.stderr, (p.returncode, p.stderr)
    print("it80b: renkei-keys --public broker.pub: exit 1:", p.stderr.strip())
    p = subprocess.run([harness.tool("renkei-keys"), "--public", os.path.join(d, "broker.key")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.strip() == pub, (p.stdout, p.stderr)


harness.run(test)

"""The Debian package: `cpack -G DEB` on this build makes a .deb that
installs under /usr with both units (naming /usr/bin and /usr/sbin, where
the package puts the programs), the man pages, the example configuration and
/etc/renkei; its postinst makes the system user renkei (run here with
stand-ins for getent/useradd/systemctl, so the machine is not touched).
The package's files are extracted into a throwaway root (dpkg-deb -x, no
maintainer scripts) and its broker runs from there. lintian, when
installed, must report no errors."""
import os
import shutil
import subprocess
import tempfile

import harness

WANT = ["./etc/renkei/", "./etc/renkei/agent/",
        "./usr/sbin/renkei-broker", "./usr/bin/renkei-agent", "./usr/bin/renkei-sub",
        "./usr/bin/renkei-replay", "./usr/bin/renkei-keys",
        "./usr/lib/systemd/system/renkei-broker.service",
        "./usr/lib/systemd/system/renkei-agent@.service",
        "./usr/share/doc/renkei/renkei.conf.example",
        "./usr/share/man/man1/renkei-agent.1", "./usr/share/man/man1/renkei-keys.1",
        "./usr/share/man/man1/renkei-sub.1", "./usr/share/man/man1/renkei-replay.1",
        "./usr/share/man/man5/renkei.conf.5", "./usr/share/man/man8/renkei-broker.8",
        "./usr/include/renkei/renkei.h", "./usr/lib/pkgconfig/renkei.pc"]


def run_postinst(script, work, user_exists):
    """postinst configure with stand-ins on PATH that log their arguments."""
    bin_dir = os.path.join(work, "fake-bin")
    os.makedirs(bin_dir, exist_ok=True)
    log = os.path.join(work, "calls.log")
    open(log, "w").close()
    for name, rc in (("getent", 0 if user_exists else 2), ("useradd", 0), ("chmod", 0),
                     ("systemctl", 0)):
        with open(os.path.join(bin_dir, name), "w") as f:
            f.write(f"#!/bin/sh\necho {name} \"$@\" >> {log}\nexit {rc}\n")
        os.chmod(os.path.join(bin_dir, name), 0o755)
    p = subprocess.run(["/bin/sh", script, "configure", ""], capture_output=True, text=True,
                       env={"PATH": bin_dir + ":/usr/bin:/bin"}, timeout=30)
    assert p.returncode == 0, p.stderr
    with open(log) as f:
        return f.read().splitlines()


def test(b):
    build = os.environ["RK_BUILD_DIR"]
    out = tempfile.mkdtemp(prefix="rk-it93-")
    try:
        p = subprocess.run(["cpack", "-G", "DEB", "-B", out], cwd=build, capture_output=True,
                           text=True, timeout=600)
        assert p.returncode == 0, p.stdout + p.stderr
        debs = [f for f in os.listdir(out) if f.endswith(".deb")]
        assert len(debs) == 1, os.listdir(out)
        deb = os.path.join(out, debs[0])
        contents = subprocess.run(["dpkg-deb", "--contents", deb], capture_output=True, text=True,
                                  check=True).stdout
        print("it93: dpkg-deb --contents", debs[0])
        print(contents)
        files = [line.split()[5] for line in contents.splitlines()]
        missing = [w for w in WANT if w not in files]
        assert not missing, missing
        assert not [f for f in files if f.startswith("./usr/local")], files

        field = lambda name: subprocess.run(["dpkg-deb", "--field", deb, name],
                                            capture_output=True, text=True, check=True).stdout.strip()
        assert field("Package") == "renkei" and "libzmq5" in field("Depends"), field("Depends")

        root = os.path.join(out, "root")
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        for unit, prog in (("renkei-broker.service", "/usr/sbin/renkei-broker"),
                           ("renkei-agent@.service", "/usr/bin/renkei-agent")):
            with open(os.path.join(root, "usr/lib/systemd/system", unit), encoding="utf-8") as f:
                text = f.read()
            execs = [l.split("=", 1)[1].split()[0] for l in text.splitlines()
                     if l.startswith(("ExecStart=", "ExecStartPre="))]
            assert execs and all(e == prog for e in execs), (unit, execs)
            assert os.access(root + prog, os.X_OK), prog
        v = subprocess.run([os.path.join(root, "usr/sbin/renkei-broker"), "--version"],
                           capture_output=True, text=True, timeout=30)
        assert v.returncode == 0 and v.stdout.startswith("renkei-broker "), v
        # The packaged broker works: a start on loopback, a stop.
        c = harness.Broker()
        try:
            c.command = lambda: [os.path.join(root, "usr/sbin/renkei-broker"), "--ingest",
                                 c.ingest, "--feed", c.feed, "--replay", c.replay,
                                 "--data-dir", c.data]
            c.start()
            c.stop()
        finally:
            c.cleanup()

        ctl = os.path.join(out, "control")
        subprocess.run(["dpkg-deb", "-e", deb, ctl], check=True)
        calls = run_postinst(os.path.join(ctl, "postinst"), out, user_exists=False)
        made = [c for c in calls if c.startswith("useradd ")]
        assert len(made) == 1 and "--system" in made[0] and made[0].endswith(" renkei"), calls
        calls = run_postinst(os.path.join(ctl, "postinst"), out, user_exists=True)
        assert not [c for c in calls if c.startswith("useradd ")], calls
        print("it93: postinst makes the user:", made[0])

        if shutil.which("lintian"):
            lint = subprocess.run(["lintian", "--no-tag-display-limit", deb], capture_output=True,
                                  text=True, timeout=600)
            print(lint.stdout)
            assert not [l for l in lint.stdout.splitlines() if l.startswith("E:")], lint.stdout
        else:
            print("it93: lintian not installed: skipping it")
    finally:
        shutil.rmtree(out, ignore_errors=True)


harness.run(test)

"""deploy/README.md, section 6: the backup commands, taken from the guide
itself (the fenced block between the it82b:backup markers) and run as
written, with /var/lib/renkei pointed at a running broker's log and /backup
at a scratch directory, from a shell whose umask is Debian's 022. The copy
must verify, open in a broker with every event, and be readable by its
owner alone: the directories 0700, the file 0600."""
import json
import os
import re
import stat
import subprocess

import harness

N = 40


def guide_block(name):
    with open(os.path.join(harness.SOURCE, "deploy", "README.md"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(rf"<!-- {name} -->\s*```sh\n(.*?)```\s*<!-- /{name} -->", text, re.S)
    assert m, f"deploy/README.md has no ```sh block between <!-- {name} --> markers"
    return m.group(1)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test(b):
    b.start()
    lines = harness.valid_scenario_lines()[:N]
    b.agent("send", stdin="".join(l + "\n" for l in lines), check_rc=0)
    script = guide_block("it82b:backup")
    backup_root = os.path.join(b.dir, "backup")
    run = script.replace("/var/lib/renkei", b.data).replace("/backup", backup_root)
    print("it82b: the guide's commands:\n" + script)
    p = subprocess.run(["sh", "-e", "-c", run], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PATH=harness.BIN + ":" + os.environ["PATH"]),
                       preexec_fn=lambda: os.umask(0o022))
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    copies = os.listdir(backup_root)
    assert len(copies) == 1 and copies[0].startswith("renkei-"), copies
    copy = os.path.join(backup_root, copies[0])
    verified = json.loads(p.stdout.strip().splitlines()[-1])
    assert verified.get("records") == N or verified.get("last_seq") == N, verified
    assert mode(backup_root) == 0o700, oct(mode(backup_root))
    assert mode(copy) == 0o700, oct(mode(copy))
    for f in os.listdir(copy):
        assert mode(os.path.join(copy, f)) & 0o077 == 0, (f, oct(mode(os.path.join(copy, f))))
    assert mode(os.path.join(copy, "data.mdb")) == 0o600
    print(f"it82b: {copy}: dir {oct(mode(copy))}, data.mdb {oct(mode(os.path.join(copy, 'data.mdb')))},"
          f" verify: {p.stdout.strip()}")
    b.stop()

    # The copy opens: a broker on it serves every event.
    c = harness.Broker()
    try:
        c.data = copy
        c.start()
        assert c.ready["last_seq"] == str(N), c.ready
        stored, _ = c.replay_all()
        assert len(stored) == N, len(stored)
        c.stop()
    finally:
        c.cleanup()


harness.run(test)

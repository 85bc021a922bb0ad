"""Config file: a broker started with only --config takes its endpoints, data
directory, durability and log level from the file and acknowledges a publish;
an option overrides the file wherever --config appears; --check-config exits 2
naming FILE:LINE for a bad file, and a bad file stops the broker starting."""
import json
import os
import subprocess

import harness
from harness import Broker


class ConfigBroker(Broker):
    """A Broker whose only settings are --config FILE, plus the options in
    self.before (ahead of --config) and self.extra (after it)."""

    def __init__(self):
        super().__init__()
        self.conf = os.path.join(self.dir, "renkei.conf")
        self.before = []

    def command(self):
        return [harness.tool("renkei-broker")] + self.before + ["--config", self.conf] + self.extra


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def check_config(*args):
    p = subprocess.run([harness.tool("renkei-broker"), "--check-config"] + list(args),
                       capture_output=True, text=True, timeout=30)
    harness.check_clean("renkei-broker --check-config", p.stderr)
    return p


def test(b):
    write(b.conf, f"""# it80: everything from the file
[broker]
ingest = {b.ingest}
feed = {b.feed}    # trailing comment
replay = {b.replay}
data_dir = {b.data}
durability = os
log_level = debug
""")
    p = check_config("--config", b.conf)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"{b.conf}: ok: ") and "durability=os" in p.stdout, p.stdout

    # Started with nothing but --config; the ready record shows the file's values.
    b.start()
    ready = b.ready
    for key, want in (("ingest", b.ingest), ("feed", b.feed), ("replay", b.replay),
                      ("data_dir", b.data), ("durability", "os")):
        assert ready.get(key) == want, (key, want, ready)
    assert b.record("config_loaded")["file"] == b.conf, b.log()
    sub = b.subscriber("--count", "1")
    line = harness.valid_scenario_lines(1)[0]
    _, results, _ = b.agent("event", line, check_rc=0)
    assert results[0]["ok"] and results[0]["seq"] == 1, results
    assert results[0]["event_id"] == json.loads(line)["event_id"], results
    live = sub.wait()
    assert [e["seq"] for e in live] == [1], live
    # log_level = debug took effect: the subscription is logged at debug.
    b.wait_log("feed_group", level="debug", added=1)  # the subscription, logged at debug
    stored, _ = b.replay_all()
    assert [e["seq"] for e in stored] == [1], stored
    assert os.path.exists(os.path.join(b.data, "data.mdb"))
    b.stop()

    # An option overrides the file, before --config or after it.
    other = os.path.join(b.dir, "other-data")
    b.before = ["--data-dir", other]
    b.extra = ["--durability", "full"]
    b.start()
    ready = b.ready
    assert ready["data_dir"] == other and ready["durability"] == "full", ready
    assert ready["ingest"] == b.ingest, ready   # the rest still from the file
    _, results, _ = b.agent("event", line, check_rc=0)
    assert results[0]["seq"] == 1, results   # a fresh log in the other directory
    assert os.path.exists(os.path.join(other, "data.mdb"))
    b.stop()

    # --check-config names FILE:LINE, the key and the reason, and exits 2.
    bad_conf = os.path.join(b.dir, "bad.conf")
    write(bad_conf, "[broker]\n# comment\ndurability = fsync\ncolour = blue\n[metrics]\n")
    p = check_config("--config", bad_conf)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert p.stdout == "", p.stdout
    assert f'{bad_conf}:3: durability: must be full or os, got "fsync"' in p.stderr, p.stderr
    assert f"{bad_conf}:4: colour: unknown key in [broker]" in p.stderr, p.stderr
    assert f"{bad_conf}:5: [metrics]: unknown section" in p.stderr, p.stderr

    # The same file stops the broker from starting, with the same errors.
    p = subprocess.run([harness.tool("renkei-broker"), "--config", bad_conf],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert f"{bad_conf}:3: durability:" in p.stderr, p.stderr
    assert not harness.log_records(p.stderr, "ready", whole=True), p.stderr

    # A bad option value is refused with the key's reason text.
    p = check_config("--config", b.conf, "--durability", "fsync")
    assert p.returncode == 2
    assert 'renkei-broker: --durability: must be full or os, got "fsync"' in p.stderr, p.stderr

    # The shipped example passes as it stands.
    example = os.path.join(harness.SOURCE, "deploy", "renkei.conf.example")
    p = check_config("--config", example)
    assert p.returncode == 0 and ": ok: " in p.stdout, (p.stdout, p.stderr)


harness.run(test, ConfigBroker)

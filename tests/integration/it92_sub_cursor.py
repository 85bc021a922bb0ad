"""renkei-sub --cursor: killed with SIGKILL at random moments while events
are published, and restarted each time with the same cursor, it prints every
event exactly once, in order; so does a filtered one. A cursor made by a run
killed before its first event still resumes where that run started."""
import os
import random
import signal
import threading
import time

import msgpack

import harness

N = 20_000


def seqs_in(path):
    import json
    with open(path) as f:
        return [json.loads(l)["seq"] for l in f]


def test(b):
    b.start()
    rng = random.Random(os.environ.get("RK_SEED", "92"))
    reqs = harness.new_requests("cur", N)
    events = [msgpack.packb(e) for e in reqs]
    path = lambda name: os.path.join(b.dir, name)

    # A cursor made "now", killed before anything was published.
    first = b.subscriber("--cursor", path("early.cursor"), stdout_path=path("early.jsonl"))
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    assert os.path.getsize(path("early.cursor")) == 54  # seq, space, log identity, newline

    seqs = []
    done = threading.Event()

    def publish():
        # In slices, so the publishing spans the kills and restarts.
        for i in range(0, N, 500):
            seqs.extend(harness.publish_pipelined(b.ingest, events[i:i + 500]))
            time.sleep(0.15)  # kept: pacing, so the publishing spans the kills, is the test
        done.set()

    t = threading.Thread(target=publish)
    t.start()
    kinds = {
        "all": ["--from", "1"],
        "filtered": ["--from", "1", "--prefecture", "30"],
        "early": [],
    }
    kills = 0
    while not done.is_set():
        procs = [b.subscriber("--cursor", path(f"{name}.cursor"), *args,
                              stdout_path=path(f"{name}.jsonl")) for name, args in kinds.items()]
        time.sleep(rng.uniform(0.1, 0.6))  # kept: the random kill moment is the test
        for s in procs:
            s.proc.send_signal(signal.SIGKILL)
            s.proc.wait()
        kills += 1
    t.join()
    assert seqs == list(range(1, N + 1))
    # The last runs go to the end of the log and stop when it is quiet.
    for name, args in kinds.items():
        s = b.subscriber("--cursor", path(f"{name}.cursor"), *args, "--idle", "1500",
                         stdout_path=path(f"{name}.jsonl"))
        s.wait(timeout=120)
        assert "resuming from seq" in s.stderr(), s.stderr()
    print(f"{kills} SIGKILLs of each subscriber during {N} publishes")
    assert kills >= 5

    got = seqs_in(path("all.jsonl"))
    assert got == seqs, f"all: {len(got)} lines, {len(set(got))} distinct, want {N}"
    assert seqs_in(path("early.jsonl")) == seqs
    wakayama = [s for s, e in zip(seqs, reqs) if e["municipality"].startswith("30")]
    assert seqs_in(path("filtered.jsonl")) == wakayama
    with open(path("all.cursor")) as f:
        assert f.read() == "%020d %s\n" % (N + 1, b.ready["log_id"])

    # The moment a kill can hit between printing an event and moving the
    # cursor, made on purpose: the cursor lags the output by 3 events, and
    # a half-written line follows. The output file decides.
    with open(path("all.cursor"), "w") as f:
        f.write("%020d %s\n" % (N - 2, b.ready["log_id"]))
    with open(path("all.jsonl"), "a") as f:
        f.write('{"seq": 99')
    more = harness.new_requests("cur-more", 10)
    seqs += harness.publish_pipelined(b.ingest, [msgpack.packb(e) for e in more])
    s = b.subscriber("--cursor", path("all.cursor"), "--idle", "1500",
                     stdout_path=path("all.jsonl"))
    s.wait(timeout=60)
    assert f"resuming from seq {N + 1}" in s.stderr(), s.stderr()
    assert seqs_in(path("all.jsonl")) == seqs


harness.run(test)

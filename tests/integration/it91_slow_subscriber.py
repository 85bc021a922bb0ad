"""A subscriber that stops reading (SIGSTOP) while publishing runs at full
speed: publishers are not held up, the other subscribers get everything,
broker memory stays bounded by the feed's high-water mark, and once the
stalled subscriber resumes it catches up from the log with every event once,
in order."""
import os
import signal
import time

import msgpack

import harness

N = 100_000  # per phase; the stalled reader's socket buffers hold about 40k


def test(b):
    b.start()
    reqs = harness.new_requests("slow", 2 * N)
    events = [msgpack.packb(e) for e in reqs]
    out = lambda name: os.path.join(b.dir, name)
    # Each stops once it has every event it should get. An idle timeout
    # alone let a subscriber that had caught up give up while the test still
    # waited for the stalled one between the phases (seen under ASan on a
    # loaded machine): it then "missed" all of phase B. The long idle is
    # only a backstop for a test that fails.
    in_30 = sum(1 for e in reqs if e["municipality"].startswith("30"))
    fast = b.subscriber("--count", str(2 * N), "--idle", "60000",
                        stdout_path=out("fast.jsonl"))
    fast_filtered = b.subscriber("--prefecture", "30", "--count", str(in_30), "--idle", "60000",
                                 stdout_path=out("filtered.jsonl"))
    stalled = b.subscriber("--count", str(2 * N), "--idle", "60000",
                           stdout_path=out("stalled.jsonl"))

    # Phase A, nobody stalled: what N events cost the broker anyway (its
    # request states, buffers).
    in_30_a = sum(1 for e in reqs[:N] if e["municipality"].startswith("30"))
    before = harness.rss_kib(b.proc.pid)
    seqs = harness.publish_pipelined(b.ingest, events[:N])
    # Measured once the fan-out is done: every subscriber has phase A.
    counts = lambda: {"fast": fast.received(), "filtered": fast_filtered.received(),
                      "stalled": stalled.received()}
    harness.wait_for(counts, "every subscriber to have phase A", timeout=120,
                     until=lambda c: c["fast"] >= N and c["filtered"] >= in_30_a
                     and c["stalled"] >= N)
    grown_a = harness.rss_kib(b.proc.pid) - before

    # Phase B: the same with one subscriber stopped, once it is on the live feed
    # (it has all of phase A, above).
    os.kill(stalled.proc.pid, signal.SIGSTOP)
    before = harness.rss_kib(b.proc.pid)
    with harness.PeakSampler(b.proc.pid) as peak:
        t0 = time.monotonic()
        seqs += harness.publish_pipelined(b.ingest, events[N:])
        secs = time.monotonic() - t0
        # The fan-out is over (what the stalled one cannot take is dropped):
        # the others have everything.
        harness.wait_for(counts, "the other subscribers to have phase B", timeout=120,
                         until=lambda c: c["fast"] >= 2 * N and c["filtered"] >= in_30)
    grown_b = peak.peak - before
    print(f"phase A: +{grown_a / 1024:.1f} MiB; phase B (stalled subscriber, {N} events in "
          f"{secs:.1f} s): +{grown_b / 1024:.1f} MiB broker RssAnon")
    assert seqs == list(range(1, 2 * N + 1))
    # Queueing everything for the stalled reader would cost about 40 MiB more
    # (N messages); the 300-message mark costs next to nothing.
    extra_mib = (grown_b - grown_a) / 1024
    assert extra_mib < 16, f"a stalled subscriber cost the broker {extra_mib:.0f} MiB"

    got = fast.wait(timeout=120)
    assert [e["seq"] for e in got] == seqs
    wakayama = [s for s, e in zip(seqs, reqs) if e["municipality"].startswith("30")]
    got = fast_filtered.wait(timeout=120)
    assert [e["seq"] for e in got] == wakayama
    assert all(e["topic"].split("/")[1] == "30" for e in got)

    os.kill(stalled.proc.pid, signal.SIGCONT)
    got = stalled.wait(timeout=180)
    assert [e["seq"] for e in got] == seqs, "stalled subscriber: missed or repeated events"
    events_out, gaps, filled = stalled.summary()
    print(f"stalled subscriber: {events_out} events, {gaps} gaps filled ({filled} events "
          f"read from the log)")
    assert gaps >= 1, "the stall caused no gap: the test did not test gap filling"


harness.run(test)

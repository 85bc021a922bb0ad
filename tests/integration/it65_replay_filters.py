"""Replay bounded by receive time and filtered on the broker: family, type,
prefecture, municipality, request id and KPI id, each checked against the
same selection made in Python over the unfiltered log."""
import json
import os
import time

import subprocess

import harness


def stamp(ns):
    """RFC 3339 in UTC with nanoseconds, as --since/--until take it."""
    secs, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_recv(text):
    """The replay's recv_time ("...T..:..:..uuuuuuZ") back to ns (microseconds)."""
    base, frac = text[:-1].split(".")
    secs = int(time.mktime(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))) - time.timezone
    return secs * 10**9 + int(frac.ljust(9, "0"))


def test(b):
    b.start()
    kpi_csv = os.path.join(harness.SOURCE, "deploy", "demo", "kpi_updates_synthetic.csv")
    b.agent("kpi", kpi_csv, check_rc=0)
    lines = harness.valid_scenario_lines()
    # Three separate batches of the scenario, with pauses, so receive times differ.
    chunks = [lines[:70], lines[70:140], lines[140:]]
    for chunk in chunks:
        time.sleep(0.05)  # kept: time passing between batches makes receive times differ
        b.agent("send", stdin="\n".join(chunk) + "\n")
    everything, _ = b.replay_all()
    assert len(everything) > 200

    def expect(pred):
        return [e["seq"] for e in everything if pred(e)]

    def got(*args):
        events, _ = b.replay_all(*args)
        return [e["seq"] for e in events]

    ev = lambda e: e["event"]
    cases = [
        (["--family", "kpi"], lambda e: ev(e)["type"] == "kpi.update"),
        (["--family", "aid"], lambda e: ev(e)["type"].startswith("aid.")),
        (["--type", "aid.offer"], lambda e: ev(e)["type"] == "aid.offer"),
        (["--prefecture", "30"], lambda e: ev(e)["municipality"].startswith("30")),
        (["--family", "aid", "--prefecture", "36"],
         lambda e: ev(e)["type"].startswith("aid.") and ev(e)["municipality"].startswith("36")),
        (["--municipality", "304280"], lambda e: ev(e)["municipality"] == "304280"),
        (["--request", "REQ-304280-001"], lambda e: ev(e).get("request_id") == "REQ-304280-001"),
        (["--kpi", "KPI-271004-101"], lambda e: ev(e).get("kpi_id") == "KPI-271004-101"),
        (["--type", "aid.accept", "--request", "REQ-304280-001"],
         lambda e: ev(e)["type"] == "aid.accept" and ev(e).get("request_id") == "REQ-304280-001"),
        (["--municipality", "011002"], lambda e: False),  # 札幌市: publishes nothing here
    ]
    def check_cases():
        for args, pred in cases:
            want = expect(pred)
            assert got(*args) == want, (args, got(*args), want)
            assert want or args == ["--municipality", "011002"], f"{args} selects nothing: a weak case"

    check_cases()
    # A code that names no municipality is refused with the reason, never
    # read as a filter that happens to match nothing.
    for bad, says in (("999999", "prefecture 99 is not 01..47"),
                      ("271005", "check digit is wrong")):
        p = subprocess.run([harness.tool("renkei-replay"), "--replay", b.replay,
                            "--municipality", bad], capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and says in p.stderr, (bad, p.returncode, p.stderr)
    # Filters that pin a prefecture read the places index as far as it
    # reaches (it trails the log by up to 0.2 s) and the records after it.
    # Again once the index holds the first batches and a later one is not
    # yet in it, from the start and from the middle of the log.
    time.sleep(0.6)  # kept: the index's lag is internal; nothing shows it has caught up
    before = len(everything)
    # The same rows again would store nothing new (renkei-agent kpi numbers
    # rows by their content): the late batch is the file with a new note.
    late_csv = os.path.join(b.dir, "late.csv")
    with open(kpi_csv, encoding="utf-8") as f, open(late_csv, "w", encoding="utf-8") as out:
        out.write(f.read().replace("synthetic ", "late synthetic "))
    b.agent("kpi", late_csv, check_rc=0)
    everything, _ = b.replay_all()
    assert len(everything) > before, "the late batch was not stored"
    check_cases()
    middle = everything[len(everything) // 2]["seq"]
    for args, pred in cases:
        want = [s for s in expect(pred) if s >= middle]
        assert got("--from", str(middle), *args) == want, (args, middle)
    want = [s for s in expect(lambda e: ev(e)["municipality"].startswith("30")) if s <= middle]
    assert got("--prefecture", "30", "--to", str(middle)) == want and want

    # Time bounds: pick the receive times of the three aid batches.
    times = sorted({parse_recv(e["recv_time"]) for e in everything})
    assert len(times) >= 3, times
    lo, hi = times[1], times[-2] if len(times) > 3 else times[1]
    want = [e["seq"] for e in everything if lo <= parse_recv(e["recv_time"]) <= hi + 999]
    sel = got("--since", stamp(lo), "--until", stamp(hi + 999))
    assert sel == want and sel, (sel, want)
    # Combined with a filter and a sequence bound.
    want = [s for s in want if everything[s - 1]["event"]["type"] == "aid.fulfil" and s <= want[-1] - 3]
    sel = got("--since", stamp(lo), "--until", stamp(hi + 999), "--type", "aid.fulfil",
              "--to", str(max(want) if want else 1))
    assert sel == want, (sel, want)
    # A window before the log began and one after it ends are empty.
    assert got("--until", "2001-01-01T00:00:00Z") == []
    assert got("--since", stamp(times[-1] + 10**9)) == []


harness.run(test)

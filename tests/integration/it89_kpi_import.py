"""renkei-agent kpi reads what towns have: the shared KPI fixtures saved as
Excel does, as "CSV UTF-8" (a byte order mark) and as plain "CSV" on
Japanese Windows (CP932, made here by iconv), import whole into a real
broker with their Japanese text intact; --encoding names the encoding;
importing a file again stores nothing new and the summary says so; one
changed figure is stored as one new update; renkei-agent(1) lists the
columns."""
import csv
import io
import os
import re
import subprocess

import harness


def fixture(name):
    with open(os.path.join(harness.SHARED, name), "rb") as f:
        return f.read()


def cp932(data):
    p = subprocess.run(["iconv", "-f", "UTF-8", "-t", "CP932"], input=data, capture_output=True,
                       check=True)
    return p.stdout


def kpi(b, path, *extra):
    p = subprocess.run([harness.tool("renkei-agent"), "--broker", b.ingest] + list(extra) +
                       ["kpi", path], capture_output=True, text=True, timeout=120)
    harness.check_clean("renkei-agent", p.stderr)
    return p


def write(b, name, data):
    path = os.path.join(b.dir, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def rows(data):
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def test(b):
    b.start()
    samples, updates = fixture("kpi_samples.csv"), fixture("kpi_updates_synthetic.csv")
    n_samples, n_updates = len(rows(samples)), len(rows(updates))
    assert n_samples > 3 and n_updates > 10

    # CSV UTF-8 with a byte order mark.
    bom = write(b, "bom.csv", b"\xef\xbb\xbf" + samples)
    p = kpi(b, bom)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"{n_samples} stored, 0 already stored before" in p.stderr, p.stderr
    stored, _ = b.replay_all()
    assert len(stored) == n_samples
    names = {e["event"]["kpi_id"]: e["event"]["name"] for e in stored}
    assert names == {r["kpi_id"]: r["kpi_name"] for r in rows(samples)}, names

    # CP932, detected: every row, with its Japanese text intact.
    sjis_bytes = cp932(updates)
    assert sjis_bytes != updates, "the fixture has no Japanese text to convert"
    sjis = write(b, "sjis.csv", sjis_bytes)
    p = kpi(b, sjis)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "read as cp932, converted to UTF-8" in p.stderr, p.stderr
    assert f"{n_updates} stored, 0 already stored before" in p.stderr, p.stderr
    print("it89: CP932 import:", p.stderr.strip().replace("\n", " | "))
    stored, _ = b.replay_all()
    assert len(stored) == n_samples + n_updates, len(stored)
    new = [e["event"] for e in stored[n_samples:]]
    want = rows(updates)
    assert [(e["kpi_id"], e["name"], e["unit"], e["current"]["fy"]) for e in new] == \
        [(r["kpi_id"], r["kpi_name"], r["unit"], int(r["current_fy"])) for r in want], new[:2]
    assert all(re.fullmatch(r"KPI-[0-9]+-[0-9]+:FY[0-9]{4}:[0-9a-f]{16}", e["event_id"])
               for e in new), new[0]["event_id"]

    # The same file again, named: nothing new, and the summary says so.
    last = len(stored)
    p = kpi(b, sjis, "--encoding", "cp932")
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"0 stored, {n_updates} already stored before" in p.stderr, p.stderr
    assert p.stdout.count("already ") == n_updates, p.stdout
    print("it89: the same file again:", p.stderr.strip().splitlines()[-1])
    stored, _ = b.replay_all()
    assert len(stored) == last, len(stored)
    # ... and the UTF-8 one again, through a different encoding of the same rows.
    p = kpi(b, bom)
    assert f"0 stored, {n_samples} already stored before" in p.stderr, p.stderr

    # One figure changed: one new update.
    changed = updates.replace(b",431,2021,", b",432,2021,", 1)
    assert changed != updates
    p = kpi(b, write(b, "changed.csv", changed))
    assert f"1 stored, {n_updates - 1} already stored before" in p.stderr, p.stderr
    stored, _ = b.replay_all()
    assert len(stored) == last + 1 and stored[-1]["event"]["current"]["value"] == 432

    # Named wrongly, or neither encoding: refused with the line and byte.
    p = kpi(b, sjis, "--encoding", "utf-8")
    assert p.returncode == 2 and "line 2: byte" in p.stderr and "--encoding cp932" in p.stderr, \
        p.stderr
    p = kpi(b, write(b, "junk.csv", b"kpi_id,city_code\n\x81\xff\xfe\n"))
    assert p.returncode == 2 and "not CP932/Shift_JIS either" in p.stderr, p.stderr
    p = kpi(b, bom, "--encoding", "latin1")
    assert p.returncode == 2 and "--encoding: must be auto, utf-8 or cp932" in p.stderr, p.stderr

    # renkei-agent(1) documents every column the fixtures' header has that
    # the importer reads, and gives an example.
    page = subprocess.run(["groff", "-man", "-Tutf8", "-P-c", "-P-b", "-P-u",
                           os.path.join(harness.SOURCE, "deploy", "man", "renkei-agent.1")],
                          capture_output=True, text=True, check=True).stdout
    section = page[page.index("\nKPI CSV\n"):page.index("\nCONFIGURATION FILE\n")]
    for col in ("kpi_id", "city_code", "policy_area_code", "kpi_name", "unit", "aggregation",
                "baseline_value", "baseline_fy", "target_value", "target_fy", "current_value",
                "current_fy", "project_name", "region_name", "note", "current_as_of",
                "target_fy_from", "current_fy_from", "baseline_label", "current_label"):
        assert col in section, col
    assert "Example" in section and "CP932" in section


harness.run(test)

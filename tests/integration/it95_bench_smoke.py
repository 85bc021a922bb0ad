"""renkei-bench still works end to end: every workload runs on a small load
and reports sane figures with every event accounted for. Speeds are not
checked here (the machine is shared); the benchmark prints them."""
import json
import subprocess

import harness


def test(b):
    p = subprocess.run([harness.tool("renkei-bench"), "--events", "4000", "--replay-events",
                        "8000", "--w2-events", "3000", "--w4-events", "1000", "--subscribers",
                        "40", "--json"], capture_output=True, text=True, timeout=280)
    assert p.returncode == 0, f"renkei-bench exit {p.returncode}:\n{p.stderr[-4000:]}"
    lines = [json.loads(l) for l in p.stdout.splitlines()]
    by = {}
    for l in lines:
        by.setdefault(l["workload"], []).append(l)
    assert sorted(by) == ["W1", "W1fill", "W2", "W3", "W3+ingest", "W3filtered", "W3requester",
                          "W4"], sorted(by)
    assert len(by["W1"]) == 4 and all(l["events"] == 4000 and l["events_per_s"] > 0
                                      for l in by["W1"])
    assert {(l["durability"], l["publishers"]) for l in by["W1"]} == \
        {("full", 1), ("full", 4), ("os", 1), ("os", 4)}
    assert by["W3"][0]["events"] == 8000
    assert by["W3filtered"][0]["delivered"] == 8000 // 5  # prefecture 28: a fifth
    # the request, offer and acceptance of a fifth of the blocks of four
    assert by["W3requester"][0]["delivered"] == 8000 // 4 // 5 * 3
    assert [l["subscribers"] for l in by["W2"]] == [1, 100]
    for l in by["W2"]:
        assert l["delivered"] == 3000 * l["subscribers"], l
        assert 0 < l["p50_ms"] <= l["p99_ms"] <= l["p999_ms"] <= l["max_ms"], l
    assert by["W4"][0]["exact"] is True and by["W4"][0]["subscribers"] == 40
    for l in lines:
        assert l["broker_peak_rss_mib"] is None or l["broker_peak_rss_mib"] > 0, l


harness.run(test)

"""1,000 concurrent subscribers on one broker with a mix of filters (family,
type, prefecture, municipality, their mixes, one that matches nothing),
following while events are ingested: renkei-bench's W4 checks that each
receives exactly the events its filter selects, in order, and exits 1
otherwise."""
import json
import subprocess

import harness


def test(b):
    p = subprocess.run([harness.tool("renkei-bench"), "--only", "w4", "--w4-events", "5000",
                        "--subscribers", "1000", "--json"],
                       capture_output=True, text=True, timeout=280)
    assert p.returncode == 0, f"renkei-bench exit {p.returncode}:\n{p.stderr[-4000:]}"
    (line,) = [json.loads(l) for l in p.stdout.splitlines()]
    print(line)
    assert line["workload"] == "W4" and line["subscribers"] == 1000 and line["exact"] is True
    assert line["events"] == 5000 and line["empty_filters"] == 100
    # Each subscriber's share is fixed by the generator; all of them together
    # get well over a million deliveries.
    assert line["delivered"] > 1_000_000, line


harness.run(test)

"""renkei-gateway's speed, against a real broker: prints numbers, asserts
nothing about them (a program, not a test; run by hand from the build tree):

    RK_BUILD_DIR=build/plain RK_BIN_DIR=build/plain/bin \\
        /usr/bin/python3 tests/bench/gateway_bench.py [N_REQUESTS] [N_TOWNS]

1. follow: N new requests from N_TOWNS towns published pipelined; the time
   until the gateway's position passes the last one (each aid event makes
   the gateway ask the broker for that request's state again);
2. GET: requests per second of a few API calls, with wrk when it is
   installed (Debian's wrk), 2 threads, 16 connections, 5 s each;
3. the board in headless chromium with all those requests and towns: load
   time (page to every row shown) and the time from publishing one more
   event to its row on the board."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import msgpack  # noqa: E402

import gateway  # noqa: E402
import harness  # noqa: E402


def towns(n):
    path = os.path.join(harness.SOURCE, "proto", "data", "municipalities.csv")
    with open(path, encoding="utf-8") as f:
        rows = [l.split(",") for l in f.read().splitlines()[1:]]
    codes = [r[0] for r in rows if r[5] not in ("prefecture", "ward")]
    return codes[:n]


def requests(n, codes, tag):
    base = harness.new_requests(tag, 1)[0]
    out = []
    for i in range(n):
        e = dict(base)
        code = codes[i % len(codes)]
        e.update(municipality=code, request_id=f"REQ-{code}-{tag}{i}", event_id=f"{code}-{tag}{i}")
        out.append(e)
    return out


def follow(gw, b, events):
    packed = [msgpack.packb(e) for e in events]
    t0 = time.monotonic()
    seqs = harness.publish_pipelined(b.ingest, packed, window=512)
    t_pub = time.monotonic() - t0
    harness.wait_for(lambda: gw.json("/api/status")["seq"] > seqs[-1], "the gateway caught up",
                     timeout=600, interval=0.01)
    t_all = time.monotonic() - t0
    print(f"follow: {len(events)} aid.request events published in {t_pub:.2f} s "
          f"({len(events) / t_pub:.0f}/s); gateway caught up after {t_all:.2f} s "
          f"({len(events) / t_all:.0f} events/s followed, each with a state ask)")


def wrk(gw, path):
    p = subprocess.run(["wrk", "-t2", "-c16", "-d5s", gw.url + path], capture_output=True,
                       text=True, timeout=60)
    line = next((l for l in p.stdout.splitlines() if l.startswith("Requests/sec")), p.stdout)
    print(f"GET {path}: {line.split()[-1]} requests/s (wrk -t2 -c16 -d5s)")


def board(gw, b, codes):
    sys.path.insert(0, os.path.dirname(__file__))
    from it77_board_browser import browser, rows  # noqa: E402
    d = browser()
    try:
        t0 = time.monotonic()
        d.get(gw.url + "/")
        want = gw.json("/api/requests")["count"]
        harness.wait_for(lambda: d.execute_script(
            "return document.body.dataset.ready === '1' && renkeiBoard.markers === "
            f"{want} && document.getElementById('count-all').textContent === '{want}'"),
            "every request counted and on the map", timeout=300)
        load = time.monotonic() - t0
        (one,) = requests(1, codes, "bench-live")
        t0 = time.monotonic()
        harness.publish_pipelined(b.ingest, [msgpack.packb(one)])
        harness.wait_for(lambda: d.execute_script(
            f"return renkeiBoard.requests.has('{one['request_id']}') && "
            f"document.getElementById('count-all').textContent === '{want + 1}'"),
            "the new request counted on the board", timeout=60, interval=0.01)
        upd = time.monotonic() - t0
        ntowns = len(gw.json("/api/towns")["towns"])
        print(f"board: {want} requests, {ntowns} towns: loaded in {load * 1000:.0f} ms; "
              f"a new event on the board {upd * 1000:.0f} ms after publishing")
    finally:
        d.quit()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    ntowns = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    b = harness.Broker(extra=["--durability", "os"])
    try:
        b.start()
        gw = gateway.Gateway(b).start()
        codes = towns(ntowns)
        follow(gw, b, requests(n, codes, "bench"))
        if os.environ.get("RK_BENCH_ONLY") == "follow":
            return
        if subprocess.run(["which", "wrk"], capture_output=True).returncode == 0:
            rid = f"REQ-{codes[0]}-bench0"
            for path in ("/api/status", "/api/requests", f"/api/requests?requester={codes[0]}",
                         f"/api/requests/{rid}", "/api/kpis", "/index.html"):
                wrk(gw, path)
        else:
            print("GET: wrk not installed (apt-get install wrk), skipped")
        board(gw, b, codes)
        gw.stop()
        b.stop()
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()

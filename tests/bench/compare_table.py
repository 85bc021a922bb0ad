"""The ratio table of tests/bench/compare.sh: reads OUT/renkei-R.jsonl
(renkei-bench --json) and OUT/peers-R.txt (bench-peers result lines) of
each round R, and prints, per workload, renkei's rate, the peer's, and the
ratio renkei/peer as the median of the per-round ratios with their range.
Also renkei's W1 as a fraction of the floor relay's, and the filtered
replay's rate per delivered event against the unfiltered one."""
import json
import statistics
import sys


def load(out, rounds):
    per_round = []
    for r in range(1, rounds + 1):
        vals = {}
        with open(f"{out}/renkei-{r}.jsonl", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                if d["workload"] == "W1":
                    vals[("renkei", "W1", d["durability"], d["publishers"])] = d["events_per_s"]
                elif d["workload"] == "W3":
                    vals[("renkei", "W3")] = d["events_per_s"]
                elif d["workload"] == "W3filtered":
                    vals[("renkei", "W3filtered")] = d["delivered_per_s"]
                elif d["workload"] == "W2" and d["p99_ms"] is not None:
                    vals[("renkei", "W2", d["subscribers"])] = d["p99_ms"] * 1000
        with open(f"{out}/peers-{r}.txt", encoding="utf-8") as f:
            for line in f:
                if not line.startswith("peer=") or "status=" in line:
                    continue
                kv = dict(x.split("=", 1) for x in line.split())
                rate = float(kv["rate"].rstrip("/s"))
                if kv["workload"] == "W1":
                    vals[(kv["peer"], "W1", kv["durability"], int(kv["publishers"]))] = rate
                elif kv["workload"] == "W3":
                    vals[(kv["peer"], "W3")] = rate
                elif kv["workload"] == "W2" and "p99_us" in kv:
                    vals[(kv["peer"], "W2", kv["durability"])] = float(kv["p99_us"])
        per_round.append(vals)
    return per_round


def row(per_round, label, mine, theirs):
    ratios = [r[mine] / r[theirs] for r in per_round if mine in r and theirs in r and r[theirs]]
    if not ratios:
        print(f"{label:<44} {'-':>10} {'-':>10}   (not measured)")
        return
    a = statistics.median(r[mine] for r in per_round if mine in r)
    b = statistics.median(r[theirs] for r in per_round if theirs in r)
    print(f"{label:<44} {a:>10,.0f} {b:>10,.0f}   {statistics.median(ratios):5.2f}x "
          f"[{min(ratios):.2f}-{max(ratios):.2f}]")


def main():
    out, rounds = sys.argv[1], int(sys.argv[2])
    rounds_data = load(out, rounds)
    print(f"\nrenkei / peer, medians of {rounds} rounds (range of the per-round ratios)")
    print(f"{'workload (renkei vs peer)':<44} {'renkei/s':>10} {'peer/s':>10}   ratio")
    for p in (1, 4):
        row(rounds_data, f"W1 os P={p} vs Redis everysec",
            ("renkei", "W1", "os", p), ("redis", "W1", "a", p))
        row(rounds_data, f"W1 os P={p} vs JetStream",
            ("renkei", "W1", "os", p), ("nats", "W1", "a", p))
        row(rounds_data, f"W1 full P={p} vs Redis always",
            ("renkei", "W1", "full", p), ("redis", "W1", "b", p))
    print("\nW2 publish->receive p99 at 20,000 events/s, in microseconds: ratio renkei/peer, "
          "lower is better")
    row(rounds_data, "W2 p99, 1 subscriber, vs Redis streams (a)", ("renkei", "W2", 1),
        ("redis", "W2", "a"))
    row(rounds_data, "W2 p99, 1 subscriber, vs JetStream (a)", ("renkei", "W2", 1),
        ("nats", "W2", "a"))
    row(rounds_data, "W2 p99, 1 subscriber, vs floor", ("renkei", "W2", 1), ("floor", "W2", "none"))
    row(rounds_data, "W2 p99, 100 subscribers, vs 1 subscriber", ("renkei", "W2", 100),
        ("renkei", "W2", 1))
    print()
    row(rounds_data, "W3 replay vs Redis XRANGE", ("renkei", "W3"), ("redis", "W3"))
    row(rounds_data, "W3 replay vs JetStream ordered consumer", ("renkei", "W3"), ("nats", "W3"))
    row(rounds_data, "W3 filtered, per delivered event, vs W3", ("renkei", "W3filtered"),
        ("renkei", "W3"))
    print("\nrenkei as a fraction of the floor relay (W1, same round)")
    for d in ("os", "full"):
        for p in (1, 4):
            row(rounds_data, f"W1 {d} P={p} vs floor P={p}", ("renkei", "W1", d, p),
                ("floor", "W1", "none", p))


main()

#!/bin/sh
# compare.sh [ROUNDS] - renkei beside the peers a user would pick instead.
#
# Runs renkei-bench and the peer harness of ../shared/bench-peers (NATS
# JetStream, Redis Streams, the floor relay) on the same workload, one after
# the other in each round, ROUNDS times (default 3), then prints each
# workload's ratio renkei/peer: the median over the rounds and the range.
# The machine is noisy, so only ratios measured in the same round mean much.
#
# Pairs, at equal durability (see bench-peers/README.md):
#   W1 os   <-> Redis appendfsync everysec (a), JetStream default (a)
#   W1 full <-> Redis appendfsync always (b)   (JetStream 2.9 has no fsync-per-ack)
#   W2      <-> Redis Streams XREAD (a), JetStream push consumer (a), floor:
#           publish->receive p99 at 20,000 events/s, 1 subscriber (and
#           renkei's 100-subscriber p99 beside its own 1-subscriber one)
#   W3      <-> Redis XRANGE, JetStream ordered consumer
#   every renkei W1 figure also as a fraction of the floor relay's W1.
#
# Environment: N (W1 events, 200000), FILL (W3 events, 1000000),
# PEERS ("floor nats redis"), PEERS_DIR (../shared/bench-peers),
# RENKEI_BENCH (build/plain/bin/renkei-bench), OUT (where results go).
# Needs a built tree (cmake --build build/plain) and, for the peers, root to
# let run.sh install their Debian packages the first time.
set -eu
ROUNDS=${1:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
N=${N:-200000}
FILL=${FILL:-1000000}
PEERS=${PEERS:-"floor nats redis"}
PEERS_DIR=${PEERS_DIR:-$root/../shared/bench-peers}
RENKEI_BENCH=${RENKEI_BENCH:-$root/build/plain/bin/renkei-bench}
OUT=${OUT:-$root/build/compare-$(date +%Y%m%d-%H%M%S)}

if [ ! -x "$RENKEI_BENCH" ]; then
    echo "compare.sh: no $RENKEI_BENCH; build first: ./tests/run or cmake --build build/plain" >&2
    exit 2
fi
if [ ! -x "$PEERS_DIR/run.sh" ]; then
    echo "compare.sh: no peer harness at $PEERS_DIR (set PEERS_DIR)" >&2
    exit 2
fi
mkdir -p "$OUT"
echo "compare.sh: $ROUNDS rounds, results in $OUT" >&2
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r/$ROUNDS: renkei" >&2
    "$RENKEI_BENCH" --json --only w1,w2,w3 --events "$N" --replay-events "$FILL" \
        > "$OUT/renkei-$r.jsonl"
    echo "== round $r/$ROUNDS: peers ($PEERS)" >&2
    (cd "$PEERS_DIR" && PEERS="$PEERS" WORKLOADS="W1 W2 W3" N="$N" FILL="$FILL" \
        RESULTS="$OUT/peers-$r.txt" ./run.sh 1 > "$OUT/peers-$r.log" 2>&1) || {
        echo "compare.sh: the peer harness failed; see $OUT/peers-$r.log" >&2
        exit 1
    }
done
exec /usr/bin/python3 "$root/tests/bench/compare_table.py" "$OUT" "$ROUNDS"

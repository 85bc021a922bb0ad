#!/bin/sh
# The demonstration: installs what is missing, builds, starts a broker with
# no configuration, lets Kansai Union municipalities publish KPI updates and
# disaster-support events while a subscriber prints them live, then replays
# the stored history. Run from anywhere; data goes to ./renkei-data.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/deploy/install-deps.sh"
echo "== building renkei (build/plain)"
cmake -S "$root" -B "$root/build/plain" >/dev/null
cmake --build "$root/build/plain" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
bin="$root/build/plain/bin"
demo="$root/deploy/demo"
work=$(mktemp -d)
broker_pid= sub_pid= gateway_pid=
cleanup() {
    [ -n "$sub_pid" ] && kill "$sub_pid" 2>/dev/null || true
    [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null || true
    if [ -n "$broker_pid" ]; then
        kill -TERM "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "== starting renkei-broker (defaults: tcp://127.0.0.1:7701-7703, data in ./renkei-data)"
"$bin/renkei-broker" 2>"$work/broker.log" &
broker_pid=$!
i=0
until grep -q 'msg=ready' "$work/broker.log"; do
    if ! kill -0 "$broker_pid" 2>/dev/null || [ $i -gt 100 ]; then
        echo "renkei-broker did not start:" >&2
        cat "$work/broker.log" >&2
        echo "(is another broker already using ports 7701-7703?)" >&2
        exit 1
    fi
    i=$((i + 1)); sleep 0.1
done
first=$(sed -n 's/.*last_seq=\([0-9]*\).*/\1/p' "$work/broker.log" | head -n 1)
first=$((first + 1))

echo "== the disaster board (renkei-gateway): open http://127.0.0.1:${RENKEI_BOARD_PORT:-7780}/ in a browser"
"$bin/renkei-gateway" --port "${RENKEI_BOARD_PORT:-7780}" --web "$root/build/plain/share/renkei/web" \
    2>"$work/gateway.log" &
gateway_pid=$!
i=0
until grep -q 'msg=following' "$work/gateway.log"; do
    if ! kill -0 "$gateway_pid" 2>/dev/null || [ $i -gt 100 ]; then
        echo "renkei-gateway did not start (port ${RENKEI_BOARD_PORT:-7780} taken? set RENKEI_BOARD_PORT):" >&2
        cat "$work/gateway.log" >&2
        exit 1
    fi
    i=$((i + 1)); sleep 0.1
done

echo "== a disaster-response centre subscribes (renkei-sub --format table)"
"$bin/renkei-sub" --format table --idle 2000 2>"$work/sub.err" &
sub_pid=$!
until grep -q 'following from seq' "$work/sub.err"; do sleep 0.05; done

echo "== 6 Kansai Union members publish KPI updates (renkei-agent kpi)"
"$bin/renkei-agent" kpi "$demo/kpi_updates_synthetic.csv" >"$work/kpi.out"
sleep 0.5 # let the subscriber's lines come out before the next heading
echo "== Wakayama, Tokushima and their neighbours exchange aid requests and offers (renkei-agent send)"
"$bin/renkei-agent" send "$demo/aid_events.jsonl" >"$work/aid.out"
sleep 0.5
echo "== and one mistyped offer, refused with the field and the reason:"
"$bin/renkei-agent" event '{"type":"aid.offer","event_id":"271403-0001","municipality":"271403","sent_at":"2026-02-17T12:00:00+09:00","request_id":"REQ-304280-001","offer_id":"OFR-271403-001","resource":"water.drinking","quantity":-5,"unit":"L"}' || true

# The subscriber exits after 2 s without events.
wait "$sub_pid" 2>/dev/null || true; sub_pid=
tail -n 1 "$work/sub.err" | sed 's/^renkei-sub: /subscriber summary: /'
echo
echo "== audit: the stored history of this run (renkei-replay --from $first --format table)"
"$bin/renkei-replay" --from "$first" --format table
echo
if [ -t 0 ]; then
    echo "The board is live at http://127.0.0.1:${RENKEI_BOARD_PORT:-7780}/ (publish more with"
    echo "build/plain/bin/renkei-agent send FILE). Press Enter to stop the broker and the board."
    read -r _ || true
fi
echo "Done. The log stays in ./renkei-data; 'build/plain/bin/renkei-replay' prints all of it"
echo "as JSON lines once a broker runs again."

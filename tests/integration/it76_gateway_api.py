"""renkei-gateway's JSON API against a real broker playing the shared
disaster scenario and the demo's KPI updates.

The requests equal the broker's own "state" answer (the gateway folds
nothing), filters select exactly what they say, a request's timeline is
the log's events of that request, /api/events is the log as NDJSON, the
towns and KPIs are those published; bad input is refused with a JSON error
naming the field; the stream (SSE) carries each new event with the seq as
its id, resumes after Last-Event-ID, and says "reset" for an id older than
it keeps; after a SIGKILL and restart of the broker the gateway goes on
and misses nothing."""
import csv
import json
import os
import urllib.parse

import gateway
import harness


def check_requests(gw, b):
    got = gw.json("/api/requests")
    states = gateway.broker_states(b)
    assert {r["request_id"]: r["state"] for r in got["requests"]} == states, got
    assert got["count"] == len(states) and got["seq"] >= 1, got
    return got


def check_filters(gw, every):
    rs = every["requests"]
    one = next(r for r in rs if r["requester"] == "304280")
    for query, keep in [("state=open", lambda r: r["state"] == "open"),
                        ("state=fulfilled", lambda r: r["state"] == "fulfilled"),
                        ("prefecture=30", lambda r: r["requester"].startswith("30")),
                        ("requester=304280", lambda r: r["requester"] == "304280"),
                        ("urgency=critical", lambda r: r["urgency"] == "critical"),
                        ("resource=water.drinking", lambda r: r["resource"] == "water.drinking"),
                        ("prefecture=30&urgency=high",
                         lambda r: r["requester"].startswith("30") and r["urgency"] == "high")]:
        got = gw.json("/api/requests?" + query)["requests"]
        want = [r["request_id"] for r in rs if keep(r)]
        assert [r["request_id"] for r in got] == want and want, (query, got, want)
    assert one["requester_name"] == "串本町" and one["prefecture_name"] == "和歌山県", one
    assert one["location"]["lat"] and one["deadline"], one


def check_errors(gw):
    gw.error("/api/requests?state=bogus", 400, "state")
    gw.error("/api/requests?urgency=urgent", 400, "urgency")
    gw.error("/api/requests?prefecture=99", 400, "prefecture")
    gw.error("/api/requests?requester=123456", 400, "requester")
    err = gw.error("/api/requests?colour=red", 400, "query")
    assert "colour" in err["reason"], err
    gw.error("/api/requests/REQ-NOT-THERE", 404, "request_id")
    gw.error("/api/events", 400, "from")
    gw.error("/api/events?from=x", 400, "from")
    gw.error("/api/events?from=1&limit=0", 400, "limit")
    gw.error("/api/events?from=1&limit=10001", 400, "limit")
    gw.error("/api/towns?silent_after=0", 400, "silent_after")
    gw.error("/api/kpis?municipality=12", 400, "municipality")
    gw.error("/api/nothing", 404, "path")
    gw.error("/../etc/passwd", 404, "path")
    # Bytes that are not UTF-8, quoted back escaped: the answer is still JSON.
    err = gw.error("/api/requests?%FF%FE=1", 400, "query")
    assert "\\x" in err["reason"], err
    import urllib.request
    req = urllib.request.Request(gw.url + "/api/requests", data=b"{}", method="POST")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("POST was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 405 and json.loads(e.read())["error"]["field"] == "method"
    # Posting events is off without --tokens (it76b has it on).
    req = urllib.request.Request(gw.url + "/api/events", data=b"{}", method="POST")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("POST /api/events was accepted without --tokens")
    except urllib.error.HTTPError as e:
        err = json.loads(e.read())["error"]
        assert e.code == 405 and "--tokens" in err["reason"], err


def check_timeline(gw, b):
    rid = "REQ-304280-001"
    got = gw.json(f"/api/requests/{rid}")
    stored, _ = b.replay_all("--request", rid)
    assert [t["seq"] for t in got["timeline"]] == [e["seq"] for e in stored] and stored, got
    assert [t["event"] for t in got["timeline"]] == [e["event"] for e in stored]
    assert got["timeline"][0]["municipality_name"] == "串本町", got["timeline"][0]
    assert got["state"] == gateway.broker_states(b)[rid], got


def check_events(gw, b, stored):
    status, body = gw.get("/api/events?from=1&limit=50")
    lines = [json.loads(l) for l in body.splitlines()]
    assert status == 200 and [l["seq"] for l in lines] == list(range(1, 51)), body[:500]
    every, _ = b.replay_all()
    assert [l["event"] for l in lines] == [e["event"] for e in every[:50]]
    status, body = gw.get(f"/api/events?from={stored - 2}")
    assert [json.loads(l)["seq"] for l in body.splitlines()] == [stored - 2, stored - 1, stored]


def check_towns_kpis(gw, nkpis):
    towns = {t["code"]: t for t in gw.json("/api/towns")["towns"]}
    published = {json.loads(l)["municipality"] for l in harness.valid_scenario_lines()}
    assert published <= set(towns), published - set(towns)
    assert not any(t["silent"] for t in towns.values()), towns
    assert towns["304280"]["name"] == "串本町" and towns["304280"]["events"] >= 1
    # silent_after=1 and a town that published over a second ago: silent.
    # (The scenario was published before the gateway started; time passing is the point.)
    harness.wait_for(lambda: all(t["silent"] for t in gw.json("/api/towns?silent_after=1")["towns"]),
                     "every town silent after 1 s")
    kpis = gw.json("/api/kpis")["kpis"]
    path = os.path.join(harness.SOURCE, "deploy", "demo", "kpi_updates_synthetic.csv")
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    want = {(r["kpi_id"], r["city_code"], int(r["current_fy"])): float(r["current_value"])
            for r in rows}
    got = {(k["kpi_id"], k["municipality"], k["fiscal_year"]): k["current"]["value"] for k in kpis}
    assert got == want and len(rows) == nkpis, (got, want)
    one = gw.json("/api/kpis?municipality=281000")["kpis"]
    assert one and all(k["municipality"] == "281000" for k in one), one


def check_stream(gw, b):
    pos = gw.json("/api/requests")["seq"]
    line = harness.new_request_lines("it98s", 1)
    (seq,) = gateway.publish_lines(b, line)
    assert seq == pos, (seq, pos)
    ((kind, sid, data),) = gw.stream(f"/api/stream?from={pos}", 1)
    msg = json.loads(data)
    assert kind == "message" and int(sid) == seq == msg["seq"], (kind, sid, msg)
    assert msg["request"]["request_id"] == json.loads(line[0])["request_id"], msg
    assert msg["request"]["state"] == "open" and msg["topic"].startswith("aid.request/"), msg
    assert msg["town"]["code"] == msg["event"]["municipality"] and msg["town"]["last_published"], msg
    # Resuming: Last-Event-ID wins over ?from.
    ((_, sid, _),) = gw.stream("/api/stream?from=1", 1, {"Last-Event-ID": str(seq - 1)})
    assert int(sid) == seq, sid
    ((kind, _, data),) = gw.stream("/api/stream", 1, {"Last-Event-ID": "1"})
    assert kind == "reset" and json.loads(data)["seq"] >= seq, (kind, data)
    gw.error("/api/stream?from=0", 400, "from")
    status, body = gw.get("/api/stream", {"Last-Event-ID": "abc"})
    assert status == 400 and json.loads(body)["error"]["field"] == "Last-Event-ID", body


def check_restart(gw, b):
    b.kill()
    b.start()
    lines = harness.new_request_lines("it98r", 5)
    ids = {json.loads(l)["request_id"] for l in lines}
    gateway.publish_lines(b, lines)
    harness.wait_for(lambda: ids <= {r["request_id"] for r in gw.json("/api/requests")["requests"]},
                     "the requests published after the broker's restart on the gateway")
    check_requests(gw, b)
    harness.wait_for(lambda: gw.json("/api/status")["broker"]["connected"], "status connected")
    assert gw.proc.poll() is None, gw.log()


def check_asof(gw, last_scenario_seq):
    """/api/asof: the requests as they were when the scenario had been played,
    before the requests the later checks published."""
    import datetime
    # A microsecond before the first event after them (times go out in µs).
    status, body = gw.get(f"/api/events?from={last_scenario_seq + 1}&limit=1")
    after = json.loads(body.splitlines()[0])["recv_time"]
    then = (datetime.datetime.fromisoformat(after.replace("Z", "+00:00")) -
            datetime.timedelta(microseconds=1)).isoformat()
    status, body = gw.get("/api/asof?time=" + urllib.parse.quote(then))
    lines = [json.loads(l) for l in body.splitlines()]
    assert status == 200 and lines[-1]["as_of"]["seq"] == last_scenario_seq, (status, lines[-1:])
    reqs = {l["request_id"]: l["state"] for l in lines if l.get("kind") == "request"}
    expected = harness.scenario_expected()["final_states"]
    assert reqs == {k: v["state"] for k, v in expected.items()}, reqs
    status, body = gw.get("/api/asof?time=2001-01-01T00:00:00Z&prefecture=30")
    lines = [json.loads(l) for l in body.splitlines()]
    assert status == 200 and lines[-1]["as_of"]["requests"] == 0, lines
    gw.error("/api/asof", 400, "time")
    gw.error("/api/asof?time=yesterday", 400, "time")
    gw.error("/api/asof?time=2026-02-17T15:00:00%2B09:00&prefecture=48", 400, "prefecture")


def check_ring(b):
    """A gateway that keeps 16 events: a stream resuming inside them goes
    on; one resuming before them is told to take the state again."""
    gw = gateway.Gateway(b, "--ring", "16").start()
    seqs = gateway.publish_lines(b, harness.new_request_lines("it98ring", 20))
    harness.wait_for(lambda: gw.json("/api/status")["seq"] > seqs[-1], "the gateway at the head")
    ((_, sid, _),) = gw.stream("/api/stream", 1, {"Last-Event-ID": str(seqs[-3])})
    assert int(sid) == seqs[-2], (sid, seqs)
    ((kind, _, data),) = gw.stream("/api/stream", 1, {"Last-Event-ID": str(seqs[0])})
    assert kind == "reset" and json.loads(data)["seq"] == seqs[-1] + 1, (kind, data)
    assert gw.json("/api/status")["stream"] == {"resume_from": seqs[-16], "events": 16}
    gw.stop()


def check_openapi(gw):
    """agents/gateway/openapi.yaml names every path the gateway serves, and
    the gateway answers each of them as JSON or as the type it lists."""
    import yaml
    with open(os.path.join(harness.SOURCE, "agents", "gateway", "openapi.yaml"), encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    served = {"/api/requests", "/api/requests/{request_id}", "/api/towns", "/api/kpis",
              "/api/events", "/api/asof", "/api/stream", "/api/status"}
    assert set(spec["paths"]) == served, set(spec["paths"]) ^ served
    assert "post" in spec["paths"]["/api/events"]


def check_unit(b):
    """deploy/renkei-gateway.service.in (the unit cmake --install writes for
    its prefix): hardened, unprivileged, and its ExecStart runs."""
    import configparser
    import shlex
    import subprocess
    u = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    u.optionxform = str
    u.read(os.path.join(harness.SOURCE, "deploy", "renkei-gateway.service.in"), encoding="utf-8")
    svc = u["Service"]
    for k in ("User", "ProtectSystem", "NoNewPrivileges", "PrivateTmp", "Restart"):
        assert k in svc, k
    assert svc["User"] == "renkei", svc["User"]
    port = harness.free_port()
    line = (svc["ExecStart"].replace("@RK_SBINDIR@/", harness.BIN + "/")
            .replace("@RK_DATADIR@/renkei/web", gateway.WEB)
            .replace("$RENKEI_GATEWAY_OPTS", f"--feed {b.feed} --replay {b.replay} --port {port}"))
    log = os.path.join(b.dir, "unit-gateway.log")
    with open(log, "w") as f:
        p = subprocess.Popen(shlex.split(line), stdout=f, stderr=f)
    b.children.append(p)
    harness.wait_log_file(log, "following", proc=p)
    p.terminate()
    assert p.wait(timeout=30) == 0, harness.read_log(log)


def test(b):
    b.start()
    stored = gateway.publish_scenario(b)
    nkpis = gateway.publish_kpis(b)
    gw = gateway.Gateway(b).start()
    every = check_requests(gw, b)
    expected = harness.scenario_expected()["final_states"]
    assert {r["request_id"]: r["state"] for r in every["requests"]} == \
        {k: v["state"] for k, v in expected.items()}
    check_filters(gw, every)
    check_errors(gw)
    check_timeline(gw, b)
    check_events(gw, b, stored + nkpis)
    check_towns_kpis(gw, nkpis)
    check_stream(gw, b)
    check_restart(gw, b)
    check_asof(gw, stored + nkpis)
    check_openapi(gw)
    check_ring(b)
    check_unit(b)
    gw.stop()


if __name__ == "__main__":
    gateway.run(test)

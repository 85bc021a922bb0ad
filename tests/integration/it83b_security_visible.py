"""Security you can see (issue 20, item 4), on a real CURVE broker with an
ACL and the real tools:
- every refusal is a warn line with key, tenant, address, code and reason;
  refusals are summed per (key, code), never sampled: the counts of the
  lines add up to the refusals made, per key;
- connections opening and closing are logged with their address, a
  handshake with its tenant and key;
- /metrics counts each refusal code (E_FORBIDDEN is no "other"), refused
  connections, subscriptions and replays, ACL reloads and their failures,
  the build version, and per tenant the events published and when last."""
import json
import os
import signal
import subprocess
import urllib.request

import harness


def keys(dir, name):
    p = subprocess.run([harness.tool("renkei-keys"), "--dir", dir, name], capture_output=True,
                       text=True, check=True)
    return p.stdout.strip()


def event(tag, municipality):
    e = harness.new_requests(tag, 1)[0]
    e["municipality"] = municipality
    e["request_id"] = f"REQ-{municipality}-{tag}"
    return json.dumps(e, ensure_ascii=False)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def counted(b, msg, **fields):
    return sum(int(r["count"]) for r in b.records(msg, **fields))


def test(b):
    d = b.dir
    pubs = {n: keys(d, n) for n in ("broker", "osaka", "research", "kyoto", "stranger")}
    acl = os.path.join(d, "acl.ini")
    with open(acl, "w") as f:
        f.write(f"[tenant osaka-city]\nkey = {pubs['osaka']}\npublish = 271004\n"
                f"subscribe = aid.\nreplay = aid.\n\n"
                f"[tenant research]\nkey = {pubs['research']}\nsubscribe = kpi.\n\n"
                f"[tenant kyoto-city]\nkey = {pubs['kyoto']}\npublish = 261009\n")
    ports = [harness.free_port() for _ in range(4)]
    b.ingest, b.feed, b.replay = (f"tcp://127.0.0.1:{p}" for p in ports[:3])
    b.extra = ["--curve-key", os.path.join(d, "broker.key"), "--acl", acl,
               "--http", str(ports[3])]
    b.start()
    as_ = lambda who: ["--broker-key", os.path.join(d, "broker.pub"),
                       "--key", os.path.join(d, who + ".key")]

    b.agent(*as_("osaka"), "event", event("own", "271004"), check_rc=0)
    # Publishing for another town: 3 by osaka, 2 by research.
    for i in range(3):
        rc, res, _ = b.agent(*as_("osaka"), "event", event(f"spoof{i}", "304280"))
        assert res[0]["code"] == "E_FORBIDDEN", res
    for i in range(2):
        rc, res, _ = b.agent(*as_("research"), "event", event(f"r{i}", "281000"))
        assert res[0]["code"] == "E_FORBIDDEN", res
    # The first of each key is logged at once, with who and from where.
    first = b.wait_log("publish_refused", key=pubs["osaka"], code="E_FORBIDDEN")
    assert first["level"] == "warn" and first["tenant"] == "osaka-city", first
    assert first["address"] == "127.0.0.1", first
    assert first["why"] == "event.municipality: tenant osaka-city may not publish for 304280", first
    b.wait_log("publish_refused", key=pubs["research"], tenant="research", code="E_FORBIDDEN")

    # A stranger's key: refused at the handshake, with its address.
    rc, _, _ = b.agent(*as_("stranger"), "--timeout", "1500", "event", event("x", "271004"))
    assert rc != 0
    refused = b.wait_log("connection_refused", key=pubs["stranger"], code="E_FORBIDDEN")
    assert refused["address"] == "127.0.0.1" and refused["level"] == "warn", refused

    # A replay and two subscriptions outside research's ACL.
    p = subprocess.run([harness.tool("renkei-replay"), "--replay", b.replay] + as_("research"),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    rr = b.wait_log("replay_refused", key=pubs["research"], tenant="research",
                    code="E_FORBIDDEN")
    assert rr["address"] == "127.0.0.1", rr
    for _ in range(2):
        subprocess.run([harness.tool("renkei-sub"), "--feed", b.feed, "--replay", b.replay,
                        "--family", "aid", "--count", "1"] + as_("research"),
                       capture_output=True, text=True, timeout=60)
    sr = b.wait_log("subscription_refused", key=pubs["research"], tenant="research")
    assert sr["address"] == "127.0.0.1" and "aid." in sr["why"], sr

    # Connections: each with its address; handshakes with tenant and key.
    opened = b.records("connection_opened", socket="ingest")
    assert opened and all(r["address"].startswith("127.0.0.1:") for r in opened), opened
    acc = b.records("connection_accepted", key=pubs["osaka"], tenant="osaka-city")
    assert acc and acc[0]["address"] == "127.0.0.1", acc
    assert not b.records("connections"), "the old line without address is gone"

    # ACL reloads: one that loads, one that does not.
    mark = b.log_mark()
    b.proc.send_signal(signal.SIGHUP)
    b.wait_log("acl_reloaded", after=mark)
    with open(acl, "a") as f:
        f.write("[tenant broken\n")
    mark = b.log_mark()
    b.proc.send_signal(signal.SIGHUP)
    b.wait_log("acl_reload_failed", after=mark)

    m = scrape(ports[3])
    print("\n".join(f"{k} {v:g}" for k, v in m.items()
                    if "refused" in k or "acl_" in k or "tenant" in k or "build" in k
                    or ("rejected" in k and v)))
    assert m['renkei_events_rejected_total{reason="E_FORBIDDEN"}'] == 5, m
    assert m['renkei_events_rejected_total{reason="other"}'] == 0, m
    for code in ("E_ORDER", "E_NUMBER", "E_PRUNED"):
        assert f'renkei_events_rejected_total{{reason="{code}"}}' in m, code
    assert m["renkei_connections_refused_total"] >= 1, m
    assert m["renkei_replays_refused_total"] >= 1, m
    assert m["renkei_subscriptions_refused_total"] >= 2, m
    assert m["renkei_acl_reloads_total"] == 1 and m["renkei_acl_reload_failures_total"] == 1, m
    assert [k for k in m if k.startswith("renkei_build_info{version=")], m
    assert m['renkei_tenant_events_published_total{tenant="osaka-city"}'] == 1, m
    assert m['renkei_tenant_events_published_total{tenant="kyoto-city"}'] == 0, m
    assert m['renkei_tenant_last_publish_timestamp_seconds{tenant="kyoto-city"}'] == 0, m
    assert m['renkei_tenant_last_publish_timestamp_seconds{tenant="osaka-city"}'] > 1.7e9, m

    # Never sampled: after the final flush the lines' counts add up, per key.
    subs = m["renkei_subscriptions_refused_total"]
    b.stop()
    assert counted(b, "publish_refused", key=pubs["osaka"], code="E_FORBIDDEN") == 3, b.log()
    assert counted(b, "publish_refused", key=pubs["research"], code="E_FORBIDDEN") == 2, b.log()
    assert counted(b, "subscription_refused", key=pubs["research"]) == subs, b.log()
    for line in b.records("publish_refused"):
        assert line["level"] == "warn", line


harness.run(test)

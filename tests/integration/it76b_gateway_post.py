"""POST /api/events: a town that cannot run an agent posts JSON with a
bearer token; the gateway publishes it with that tenant's own CURVE key,
so the broker's ACL gives the post exactly the tenant's rights.

A real broker with CURVE and an ACL on TCP; tokens for two tenants. A
valid post is stored under the tenant's key and shows on the board's API;
a post for a town the tenant may not publish for is refused E_FORBIDDEN;
a batch answers per event, a schema error naming its field; malformed
JSON, a missing or unknown token are refused with a JSON error naming the
field; a token file readable by others stops the gateway at start."""
import json
import os
import secrets
import subprocess
import urllib.error
import urllib.request

import gateway
import harness


def post(gw, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    req = urllib.request.Request(gw.url + "/api/events", data=data, method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30, context=gw.ssl) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def event(tag, municipality):
    e = harness.new_requests(tag, 1)[0]
    e["municipality"] = municipality
    e["request_id"] = f"REQ-{municipality}-{tag}"
    return e


def test(b):
    d = b.dir
    pubs = {n: harness.new_keys(d, n) for n in ("broker", "osaka", "hyogo", "board")}
    harness.secure_on_tcp(b, f"""[tenant osaka-city]
key = {pubs['osaka']}
publish = 271004
replay = aid.

[tenant hyogo-hq]
key = {pubs['hyogo']}
publish = 28*

[tenant board]
key = {pubs['board']}
subscribe = *
replay = *
""")
    b.start()
    tok = {"osaka": secrets.token_hex(32), "hyogo": secrets.token_hex(32)}
    tokens = os.path.join(d, "tokens")
    with open(tokens, "w") as f:
        f.write("# token tenant keyfile\n")
        for t in ("osaka", "hyogo"):
            f.write(f"{tok[t]} {t} {os.path.join(d, t + '.key')}\n")
    os.chmod(tokens, 0o644)
    curve = ["--broker-key", os.path.join(d, "broker.pub"), "--key", os.path.join(d, "board.key")]
    p = subprocess.run([harness.tool("renkei-gateway"), "--web", gateway.WEB, "--tokens", tokens,
                        "--port", str(harness.free_port())] + curve,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "readable by others" in p.stderr, (p.returncode, p.stderr)
    os.chmod(tokens, 0o600)
    gw = gateway.Gateway(b, "--ingest", b.ingest, "--tokens", tokens, *curve).start()

    # A valid post: stored, under osaka's key, and on the board's API.
    status, body = post(gw, event("p1", "271004"), tok["osaka"])
    assert status == 200 and body["tenant"] == "osaka", body
    (res,) = body["results"]
    assert res["ok"] and res["seq"] >= 1 and res["recv_time"], res
    stored, _ = b.replay_all("--broker-key", os.path.join(d, "broker.pub"),
                             "--key", os.path.join(d, "board.key"))
    assert [e["publisher"] for e in stored if e["seq"] == res["seq"]] == [pubs["osaka"]], stored
    harness.wait_for(lambda: gw.json("/api/requests/REQ-271004-p1")["state"] == "open",
                     "the posted request on the gateway")

    # Another town's name: the broker's ACL refuses it, as it would the key.
    status, body = post(gw, event("p2", "304280"), tok["osaka"])
    assert status == 422 and body["results"][0]["code"] == "E_FORBIDDEN", body
    # A batch: each event answered; a schema error names its field.
    bad = dict(event("p3", "281000"), quantity=-5)
    status, body = post(gw, [event("p4", "281000"), bad], tok["hyogo"])
    assert status == 422 and body["tenant"] == "hyogo", body
    ok, refused = body["results"]
    assert ok["ok"] and not refused["ok"], body
    assert refused["code"] == "E_RANGE" and refused["field"] == "request.quantity", refused

    # Refusals by the gateway itself.
    for data, token, code, field, want in [
            (b'{"type": "aid.request",', tok["osaka"], "E_JSON", "body", 400),
            (b"[]", tok["osaka"], "E_JSON", "body", 400),
            (b"42", tok["osaka"], "E_JSON", "body", 400),
            (json.dumps(event("p5", "271004")).encode(), None, "E_AUTH", "Authorization", 401),
            (json.dumps(event("p6", "271004")).encode(), "x" * 64, "E_AUTH", "Authorization", 401)]:
        status, body = post(gw, data, token)
        assert status == want and body["error"]["code"] == code, (data, status, body)
        assert body["error"]["field"] == field and body["error"]["reason"], body
    stored, _ = b.replay_all("--broker-key", os.path.join(d, "broker.pub"),
                             "--key", os.path.join(d, "board.key"))
    ids = [e["event"].get("request_id") for e in stored]
    assert ids == ["REQ-271004-p1", "REQ-281000-p4"], ids
    gw.stop()
    check_tls(b, d, tok, curve)


def check_tls(b, d, tok, curve):
    """With --tls-cert and --tls-key the same API is served over HTTPS only."""
    import ssl
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    gw = gateway.Gateway(b, "--ingest", b.ingest, "--tokens", os.path.join(d, "tokens"),
                         "--tls-cert", cert, "--tls-key", key, *curve)
    gw.url = gw.url.replace("http://", "https://")
    gw.ssl = ssl.create_default_context(cafile=cert)
    gw.start()
    assert "url=https://" in gw.log(), gw.log()
    status, body = post(gw, event("t1", "271004"), tok["osaka"])
    assert status == 200 and body["results"][0]["ok"], body
    assert gw.json("/api/status")["broker"]["connected"] in (True, False)
    try:
        # Either refused outright or left unanswered: both are "nothing".
        urllib.request.urlopen(gw.url.replace("https://", "http://") + "/api/status", timeout=3)
        raise AssertionError("plain HTTP answered on the TLS port")
    except (urllib.error.URLError, ConnectionError, OSError) as e:
        assert not isinstance(e, urllib.error.HTTPError), e
    gw.stop()
    p = subprocess.run([harness.tool("renkei-gateway"), "--web", gateway.WEB, "--tls-cert", cert,
                        "--port", str(harness.free_port())], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0 and "--tls-key" in p.stderr, (p.returncode, p.stderr)


if __name__ == "__main__":
    gateway.run(test)

"""renkei-agent --metrics-file (issue 20, item 4): a node_exporter textfile
with the outbox's depth, held and rejected events, the acknowledged and
refused totals and the last acknowledgement's time, written by rename (no
temporary file left), following a real broker going away."""
import json
import os
import time

import harness


def read_metrics(path):
    values = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name.split("{")[0]] = float(value)
    return values


def test(b):
    b.start()
    d = b.dir
    outbox, path = os.path.join(d, "outbox"), os.path.join(d, "agent.prom")
    good = harness.new_requests("metrics", 2)
    # An offer for a request nobody made: E_UNKNOWN_REQUEST, held for a retry.
    bad = {"type": "aid.offer", "event_id": "held-1", "municipality": "271004",
           "sent_at": good[0]["sent_at"], "request_id": "REQ-NOBODY-9", "offer_id": "OFR-9",
           "resource": "water.drinking", "quantity": 5, "unit": "L"}
    lines = "\n".join(json.dumps(e, ensure_ascii=False) for e in good + [bad]) + "\n"
    t0 = time.time()
    rc, _, err = b.agent("--outbox", outbox, "--metrics-file", path, "send", stdin=lines)
    assert rc != 0, (rc, err)  # one held
    m = read_metrics(path)
    print("it85b:", m)
    assert m["renkei_agent_events_acked_total"] == 2, m
    assert m["renkei_agent_outbox_held"] == 1, m
    assert m["renkei_agent_outbox_rejected"] == 0 and m["renkei_agent_events_refused_total"] == 0
    assert m["renkei_agent_outbox_pending"] == 0, m
    assert m["renkei_agent_last_ack_timestamp_seconds"] >= t0 - 5, m
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert f'renkei_agent_outbox_pending{{outbox="{outbox}"}} 0' in text, text
    assert "# TYPE renkei_agent_events_acked_total counter" in text, text

    # The broker gone: what the agent could not send is the outbox's depth.
    b.stop()
    more = json.dumps(harness.new_requests("later", 1)[0], ensure_ascii=False) + "\n"
    rc, _, err = b.agent("--outbox", outbox, "--metrics-file", path, "--timeout", "500",
                         "send", stdin=more)
    assert rc != 0, (rc, err)
    m = read_metrics(path)
    assert m["renkei_agent_outbox_pending"] == 1 and m["renkei_agent_outbox_held"] == 1, m
    assert [n for n in os.listdir(d) if ".tmp." in n] == [], os.listdir(d)

    # The same from the config file (the unit's way).
    conf = os.path.join(d, "agent.conf")
    path2 = os.path.join(d, "agent2.prom")
    with open(conf, "w") as f:
        f.write(f"[agent]\noutbox = {outbox}\nmetrics_file = {path2}\n")
    rc, _, err = b.agent("--config", conf, "--timeout", "500", "flush")
    assert read_metrics(path2)["renkei_agent_outbox_pending"] == 1, (rc, err)

    # Without an outbox there is nothing to report: said, exit 2.
    rc, _, err = b.agent("--metrics-file", path, "send", stdin=more)
    assert rc == 2 and "--metrics-file: needs --outbox" in err, (rc, err)


harness.run(test)

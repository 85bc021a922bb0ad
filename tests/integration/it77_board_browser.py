"""The disaster board in a real browser (Debian's chromium, headless, driven
by chromium-driver through python3-selenium) against a real broker and
gateway playing the shared disaster scenario and the demo's KPI updates.

The board's counts per state equal the broker's "state" answer; a new
aid event shows on the board without a reload; after a SIGKILL and
restart of the broker, and after the gateway itself is restarted (the
board's event stream drops and comes back), nothing is missing; the KPI
table shows the fixtures' baseline, target and current values; a town
that stops publishing gets the silent marker. Screenshots of the board,
the map, a timeline, the towns and the KPI chart go to
<build>/screenshots/ for a person to look at. Load and update times are
printed, not asserted."""
import json
import os
import shutil
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

import gateway
import harness

SHOTS = os.path.join(gateway.BUILD, "screenshots")
SILENT_S = 6  # long enough that "not silent" is seen first even on a loaded CI machine


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    # CI runs as root, where chromium refuses its sandbox.
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1600,1000", "--lang=ja-JP", "--no-first-run"):
        o.add_argument(a)
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    d = webdriver.Chrome(service=service, options=o)
    d.set_script_timeout(30)
    return d


def board_counts(d):
    return {s: int(d.find_element(By.ID, f"count-{s}").text)
            for s in ("open", "in_progress", "fulfilled", "cancelled")}


def rows(d):
    """{request_id: state} of the table's rows."""
    return d.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#requests tbody tr')]"
        ".map(tr => [tr.dataset.requestId, tr.dataset.state]))")


def wait_rows(d, lines, what):
    """Waits (30 s at most) until every request of the JSON lines is a row."""
    ids = {json.loads(l)["request_id"] for l in lines}
    harness.wait_for(lambda: ids <= set(rows(d)), what, timeout=30)


def shot(d, name):
    path = os.path.join(SHOTS, name)
    d.save_screenshot(path)
    print(f"screenshot {path}")


def view(d, name):
    d.find_element(By.CSS_SELECTOR, f"nav button[data-view={name}]").click()


def wait_board_equals_broker(d, b, what):
    want = gateway.count_states(gateway.broker_states(b))
    harness.wait_for(lambda: board_counts(d) == want, f"{what}: board counts {want}",
                     timeout=30)
    assert rows(d) == gateway.broker_states(b), what


def check_live(d, b, tag):
    """A new request and then its cancel appear without reload; returns ms."""
    line = harness.new_request_lines(tag, 1)[0]
    rid = json.loads(line)["request_id"]
    t0 = time.monotonic()
    gateway.publish_lines(b, [line])
    harness.wait_for(lambda: rows(d).get(rid) == "open", f"{rid} open on the board", timeout=10)
    shown_ms = (time.monotonic() - t0) * 1000
    ev = json.loads(line)
    cancel = {"event_id": f"{ev['event_id']}-c", "type": "aid.cancel",
              "municipality": ev["municipality"], "sent_at": ev["sent_at"],
              "request_id": rid, "reason": "テスト: 要請取消"}
    gateway.publish_lines(b, [json.dumps(cancel, ensure_ascii=False)])
    harness.wait_for(lambda: rows(d).get(rid) == "cancelled", f"{rid} cancelled on the board",
                     timeout=10)
    return shown_ms


def check_kpis(d):
    view(d, "kpis")
    harness.wait_for(lambda: d.execute_script(
        "return document.querySelectorAll('#kpi-chart canvas').length > 0"), "the KPI chart drawn")
    import csv
    path = os.path.join(harness.SOURCE, "deploy", "demo", "kpi_updates_synthetic.csv")
    with open(path, encoding="utf-8") as f:
        latest = {}
        for r in csv.DictReader(f):
            key = (r["kpi_id"], r["city_code"])
            if key not in latest or int(latest[key]["current_fy"]) < int(r["current_fy"]):
                latest[key] = r
    shown = d.execute_script(
        "return [...document.querySelectorAll('#kpis tbody tr')].map(tr => "
        "[tr.dataset.kpiId, [...tr.cells].slice(4, 7).map(c => c.textContent.split('（')[0])])")
    got = sorted((k, tuple(float(x) for x in v)) for k, v in shown)
    want = sorted((r["kpi_id"], (float(r["baseline_value"]), float(r["target_value"]),
                                 float(r["current_value"]))) for r in latest.values())
    assert got == want, (got, want)
    harness.wait_for(lambda: d.execute_script(
        "return document.querySelectorAll('#kpi-years canvas').length > 0"), "the by-year chart")
    shot(d, "board-kpis.png")
    # One municipality's KPIs only.
    d.execute_script("const s = document.querySelector('#kpi-filter select');"
                     "s.value = 'm:281000'; s.dispatchEvent(new Event('change', {bubbles: true}));")
    kobe = d.execute_script("return [...document.querySelectorAll('#kpis tbody tr')]"
                            ".map(tr => tr.dataset.kpiId)")
    assert kobe == sorted(k for k, c in latest if c == "281000") and kobe, kobe
    shot(d, "board-kpis-kobe.png")
    d.execute_script("const s = document.querySelector('#kpi-filter select');"
                     "s.value = ''; s.dispatchEvent(new Event('change', {bubbles: true}));")


def check_dropped_stream(d, b, cutter):
    """The link to the gateway drops (the gateway stays up); events published
    meanwhile reach the board when the browser's EventSource comes back by
    itself with Last-Event-ID: resumed, not reloaded."""
    before = d.execute_script("return [renkeiBoard.opens, renkeiBoard.resets, renkeiBoard.live]")
    cutter.cut()
    harness.wait_for(lambda: d.execute_script("return renkeiBoard.source.readyState") != 1,
                     "the board to see its stream cut")
    lines = harness.new_request_lines("it99d", 3)
    gateway.publish_lines(b, lines)
    cutter.restore()
    wait_rows(d, lines, "events published during the cut on the board")
    after = d.execute_script("return [renkeiBoard.opens, renkeiBoard.resets, renkeiBoard.live]")
    # Came back by itself, no reload, and exactly the three new events came:
    # the stream went on after the last id the browser had, not from ?from.
    assert after[0] > before[0] and after[1] == before[1], (before, after)
    assert after[2] - before[2] == 3, (before, after)


def check_audit(d, b):
    """The audit view as of a minute from now: every request as the broker
    has it now (nothing is published meanwhile)."""
    view(d, "audit")
    d.execute_script("""
        const t = new Date(Date.now() + 60000), p = (n) => String(n).padStart(2, '0');
        document.querySelector('#audit-form input[name=time]').value =
          `${t.getFullYear()}-${p(t.getMonth() + 1)}-${p(t.getDate())}T${p(t.getHours())}:${p(t.getMinutes())}:${p(t.getSeconds())}`;
        document.querySelector('#audit-form button').click();""")
    want = gateway.broker_states(b)
    harness.wait_for(lambda: d.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#audit tbody tr')]"
        ".map(tr => [tr.dataset.requestId, tr.dataset.state]))"), "the audit table",
        until=lambda got: got == want, timeout=30)
    shot(d, "board-audit.png")


def check_silent(d, b):
    """One town publishes: it is not silent; then, SILENT_S seconds on without
    another event from it, it is."""
    view(d, "towns")
    line = harness.new_request_lines("it99q", 1)[0]
    code = json.loads(line)["municipality"]
    gateway.publish_lines(b, [line])
    sel = f"#towns tr[data-code='{code}']"
    harness.wait_for(lambda: d.execute_script(
        f"const r = document.querySelector(\"{sel}\"); return r && r.dataset.silent === 'false'"),
        f"town {code} not silent after publishing", timeout=10)
    shot(d, "board-towns-live.png")
    # Time passing is the point: the town says nothing more.
    harness.wait_for(lambda: d.execute_script(
        f"const r = document.querySelector(\"{sel}\"); return r && r.dataset.silent === 'true'"),
        f"town {code} marked silent", timeout=SILENT_S + 15)
    badge = d.find_element(By.ID, "silent-badge")
    assert badge.is_displayed() and "沈黙" in badge.text, badge.text
    shot(d, "board-towns.png")


def test(b):
    os.makedirs(SHOTS, exist_ok=True)
    b.start()
    gateway.publish_scenario(b)
    gateway.publish_kpis(b)
    gw = gateway.Gateway(b, "--silent-after", str(SILENT_S)).start()
    cutter = harness.TcpRelay(gw.port)  # cut() drops the link, the gateway stays up
    d = browser()
    try:
        t0 = time.monotonic()
        d.get(f"http://127.0.0.1:{cutter.port}/")
        harness.wait_for(lambda: d.execute_script("return document.body.dataset.ready === '1'"),
                         "the board loaded", timeout=30)
        load_ms = (time.monotonic() - t0) * 1000
        wait_board_equals_broker(d, b, "after the scenario")
        want = len(gateway.broker_states(b))
        harness.wait_for(lambda: d.execute_script(
            "return [renkeiBoard.outlines > 100, renkeiBoard.markers]"),
            "Natural Earth's outlines and a marker per request on the map",
            until=lambda v: v == [True, want])
        shot(d, "board-requests-map.png")
        live_ms = check_live(d, b, "it99a")
        check_dropped_stream(d, b, cutter)

        # The broker dies and comes back: the board follows on, no reload.
        b.kill()
        b.start()
        after_ms = check_live(d, b, "it99b")
        wait_board_equals_broker(d, b, "after the broker's SIGKILL and restart")

        # The gateway restarts: the stream drops; events published meanwhile
        # are on the board once it is back (resume or reset, never a gap).
        gw.stop()
        missed = harness.new_request_lines("it99g", 3)
        gateway.publish_lines(b, missed)
        gw.start()
        wait_rows(d, missed, "events of the gateway's downtime shown")
        wait_board_equals_broker(d, b, "after the gateway's restart")

        d.find_element(By.CSS_SELECTOR, "#requests tbody tr[data-request-id='REQ-304280-001']").click()
        harness.wait_for(lambda: d.execute_script(
            "return document.querySelectorAll('#timeline-events tr').length > 3"), "the timeline")
        shot(d, "board-timeline.png")
        d.find_element(By.ID, "timeline-close").click()

        check_kpis(d)
        check_audit(d, b)
        check_silent(d, b)
        print(f"board load {load_ms:.0f} ms (page to every request shown); new event to "
              f"its row {live_ms:.0f} ms, after a broker restart {after_ms:.0f} ms")
        # The stream cut when the gateway stopped is the one error expected.
        errors = [l for l in d.get_log("browser") if l["level"] == "SEVERE" and
                  "/api/stream" not in l["message"]]
        assert not errors, errors
    except BaseException:
        try:
            shot(d, "board-failure.png")
        finally:
            raise
    finally:
        d.quit()
    gw.stop()


if __name__ == "__main__":
    gateway.run(test)

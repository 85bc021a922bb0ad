"""Safe refusals (PROTOCOL.md 3.1, 3.2, 5): an event whose values hold
hostile bytes (invalid UTF-8, terminal escapes, CR LF, NUL, overlong forms,
surrogates, C1 controls, a backslash that looks like an escape) is refused
with an err message that is valid UTF-8 and quotes those bytes escaped
(\\\\ and \\xHH), so a strict MessagePack decoder reads every reply and
nothing reaches a terminal or the broker's log raw; E_HEADER carries the
corr whenever the header's first three elements could be read; a message
whose frames each fit --max-message but add up to more is answered
E_TOO_LONG with its corr, logged and counted in /metrics, and nothing of it
is stored (a single frame over the limit drops the connection: ZeroMQ's
own limit, PROTOCOL.md 2). Last, 1,500 randomly mutated
events (the issue's finding): every reply is safe text.

The test gathers every broken promise before it fails, so a run against an
older broker lists them all."""
import random
import urllib.request

import msgpack
import zmq
import zmq.utils.monitor

import harness

MAX_MESSAGE = 20480  # the smallest the broker takes, so oversize stays cheap
TIMEOUT_MS = 5000
CONTROLS = {chr(c) for c in list(range(0x20)) + list(range(0x7f, 0xa0))}


def escaped(raw):
    """PROTOCOL.md 5's escaping, written from the text: valid UTF-8
    characters kept, except controls; each byte of a control, of invalid
    UTF-8 or NUL as \\xHH; a backslash as \\\\."""
    out, i = [], 0
    while i < len(raw):
        for k in (1, 2, 3, 4):
            try:
                ch = raw[i:i + k].decode("utf-8")  # strict: no overlong, no surrogate
            except UnicodeDecodeError:
                continue
            if len(ch) == 1:
                break
        else:
            ch, k = None, 1
        if ch is None or ch in CONTROLS:
            out.append("".join(f"\\x{b:02x}" for b in raw[i:i + k]))
        else:
            out.append("\\\\" if ch == "\\" else ch)
        i += k
    return "".join(out)


def mp_str(raw):
    """A MessagePack str holding exactly these bytes, UTF-8 or not (msgpack
    itself would pack bytes as bin)."""
    n = len(raw)
    if n < 32:
        return bytes([0xa0 | n]) + raw
    if n < 256:
        return b"\xd9" + bytes([n]) + raw
    return b"\xda" + n.to_bytes(2, "big") + raw


def event_with(base, key, value):
    """The event `base` (a dict) with `key` set to `value`, both raw bytes
    packed as str."""
    pairs = [msgpack.packb(k) + msgpack.packb(v) for k, v in base.items()
             if k.encode() != key]
    pairs.append(mp_str(key) + mp_str(value))
    return bytes([0x80 | len(pairs)]) + b"".join(pairs)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


class Client:
    """One DEALER per request, so a dropped connection loses nothing else."""

    def __init__(self, ctx, endpoint, problems):
        self.ctx, self.endpoint, self.problems = ctx, endpoint, problems

    def ask(self, frames, what):
        """Sends one message; returns its reply strictly decoded, or None
        after noting why there was none."""
        s = self.ctx.socket(zmq.DEALER)
        s.linger = 0
        s.connect(self.endpoint)
        try:
            s.send_multipart(frames)
            if not s.poll(TIMEOUT_MS):
                self.problems.append(f"{what}: no reply")
                return None
            raw = s.recv_multipart()[0]
        finally:
            s.close()
        try:
            reply = msgpack.unpackb(raw, raw=False)  # strict UTF-8 for every str
        except (UnicodeDecodeError, ValueError) as e:
            self.problems.append(f"{what}: the reply is not valid MessagePack text ({e}): {raw!r}")
            return None
        if reply[1] == "err" and CONTROLS & set(reply[4]):
            self.problems.append(f"{what}: raw control characters in {reply[4]!r}")
        return reply


def expect(problems, what, reply, corr, code, contains=None):
    if reply is None:
        return
    if reply[:4] != [1, "err", corr, code]:
        problems.append(f"{what}: want [1, 'err', {corr}, {code!r}], got {reply}")
    elif contains is not None and contains not in reply[4]:
        problems.append(f"{what}: want {contains!r} in the message, got {reply[4]!r}")


def hostile_values(problems, ingest, base):
    """Each hostile value once, in a field whose error message quotes it."""
    cases = [
        (b"event_id", b"EVT\x1b[31m\xff\xfe\r\nfake: ack", "E_ID"),
        (b"municipality", b"27\x001004", "E_CODE_FORMAT"),           # NUL cut it short
        (b"colour\x1b[2J\r\nlevel=error", b"red", "E_UNKNOWN_FIELD"),  # a field name
        (b"resource", "水".encode() + b"\xe3\x81", "E_VOCAB"),        # kanji, then cut short
        (b"type", b"aid.\xc0\xaf", "E_EVENT_TYPE"),                    # overlong '/'
        (b"sent_at", b"2026\\x1b\x1b", "E_TIME"),                      # literal \x1b, real ESC
        (b"urgency", "\u0085high".encode(), "E_VOCAB"),                # C1 NEL
        (b"request_id", b"REQ\xed\xa0\x80", "E_ID"),                   # a surrogate
        (b"event_id", b"\x1b]0;owned\x07\xf4\x90\x80\x80", "E_ID"),    # OSC, > U+10FFFF
    ]
    messages = []
    for corr, (key, value, code) in enumerate(cases, 100):
        quoted = escaped(key if code == "E_UNKNOWN_FIELD" else value)
        reply = ingest.ask([msgpack.packb([1, "pub", corr]), event_with(base, key, value)],
                           f"{key!r}={value!r}")
        expect(problems, f"{key!r}={value!r}", reply, corr, code, f'"{quoted}"')
        messages.append(reply[4] if reply else None)
    # Invalid UTF-8 in a text is refused without quoting it: still strict.
    note = event_with(base, b"note", "備考".encode() + b"\xff\x00")
    expect(problems, "note", ingest.ask([msgpack.packb([1, "pub", 120]), note], "note"),
           120, "E_TEXT", "invalid UTF-8")
    # The escapes tell a literal backslash from an escape.
    if messages[5] and "2026\\\\x1b\\x1b" not in messages[5]:
        problems.append(f"a literal \\x1b reads like an escaped ESC: {messages[5]!r}")
    return messages


def bad_headers(problems, ingest, replay, body):
    """E_HEADER with the corr the client sent when the header's first three
    elements are 1, a str and a uint; 0 when they are not."""
    cases = [
        (ingest, [msgpack.packb([1, "replay", 4242, 1]), body], 4242),  # too short for replay
        (ingest, [msgpack.packb([1, "snap", 4243]), body], 4243),
        (ingest, [msgpack.packb([1, "pub", 4244, "producer-only"]), body], 4244),
        (ingest, [msgpack.packb([1, "pub", 4245, "p", 0]), body], 4245),  # number 0
        (ingest, [msgpack.packb([2, "pub", 4246]), body], 0),           # corr of version 2: unknown
        (ingest, [msgpack.packb([1, "pub", "4247"]), body], 0),         # not a uint
        (ingest, [b"\xc1", body], 0),
        (replay, [msgpack.packb([1, "replay", 5151, 1])], 5151),
        (replay, [msgpack.packb([1, "snap", 5152, 0, 10])], 5152),
        (replay, [msgpack.packb([1, "state", 5153])], 5153),
    ]
    for sock, frames, corr in cases:
        what = f"header {frames[0]!r}"
        expect(problems, what, sock.ask(frames, what), corr, "E_HEADER")


def oversize(problems, ingest, base):
    """Over --max-message in all, each frame within it: answered, with the
    corr, and never stored. A frame over the limit is not read at all
    (ZeroMQ drops the connection, as PROTOCOL.md 2 says); the broker lives
    on."""
    s = ingest.ctx.socket(zmq.DEALER)
    s.linger = 0
    mon = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
    s.connect(ingest.endpoint)
    s.send_multipart([msgpack.packb([1, "pub", 7000]), b"\x00" * (MAX_MESSAGE + 1024)])
    events = []
    while zmq.EVENT_DISCONNECTED not in events and mon.poll(TIMEOUT_MS):
        events.append(zmq.utils.monitor.recv_monitor_message(mon)["event"])
    if zmq.EVENT_DISCONNECTED not in events:
        problems.append(f"a frame over the limit: the connection stayed ({events})")
    s.disable_monitor()
    mon.close()
    s.close()
    # an event of 12 KiB behind a header of 10 KiB: each fits, both do not
    big_event = msgpack.packb(dict(base, note="x" * (12 << 10)))
    big_header = msgpack.packb([1, "pub", 7001, "producer-y", 1, 0, "p" * (10 << 10)])
    expect(problems, "big event", ingest.ask([big_header, big_event], "big event"), 7001,
           "E_TOO_LONG", "max_message")
    # A valid event behind a header padded with a trailing element: the
    # size alone refuses it.
    padded = msgpack.packb([1, "pub", 7002, "producer-x", 1, 0, "y" * (MAX_MESSAGE - 100)])
    good = msgpack.packb(harness.renamed(base, "padded"))
    expect(problems, "padded header", ingest.ask([padded, good], "padded header"), 7002,
           "E_TOO_LONG", "max_message")


def mutated(problems, ctx, endpoint, base, n=1500):
    """The issue's own finding: n events with a few random bytes changed
    (seeded), pipelined; every reply must decode strictly and show no
    control character. Some mutants are valid and stored: run it last."""
    rng = random.Random(43)
    body = msgpack.packb(dict(base, note="備考: 給水車 2 台"))
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(endpoint)
    for corr in range(1, n + 1):
        m = bytearray(body)
        for _ in range(rng.randint(1, 3)):
            m[rng.randrange(len(m))] = rng.choice([rng.randrange(256), 0x00, 0x1b, 0x0a, 0xff])
        s.send_multipart([msgpack.packb([1, "pub", corr]), bytes(m)])
    bad, got = [], set()
    while len(got) < n and s.poll(TIMEOUT_MS):
        raw = s.recv_multipart()[0]
        try:
            reply = msgpack.unpackb(raw, raw=False)
        except (UnicodeDecodeError, ValueError):
            bad.append(raw)
            continue
        got.add(reply[2])
        if reply[1] == "err" and CONTROLS & set(reply[4]):
            bad.append(raw)
    s.close()
    if bad:
        problems.append(f"{len(bad)} of {n} replies to mutated events not safe text, e.g. {bad[0]!r}")
    if len(got) + len(bad) < n:
        problems.append(f"{n - len(got) - len(bad)} of {n} mutated events got no reply")


def check_log(problems, b, first_message):
    with open(b.log_path, "rb") as f:
        raw = f.read()
    for n, line in enumerate(raw.split(b"\n"), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(f"log line {n} is not UTF-8 ({e}): {line!r}")
            continue
        if CONTROLS & set(text):
            problems.append(f"log line {n} holds a raw control character: {line!r}")
    # The first refusal is logged at once, its reason quoted: the record
    # reads back as exactly the message the client got.
    recs = b.records("publish_refused")
    if not recs or recs[0].get("why") != first_message:
        problems.append(f"first publish_refused record {recs[:1]} != the reply {first_message!r}")
    # Oversize messages have their own records (summed), so that other
    # refusals cannot hide them: both of ours are counted.
    over = b.records("publish_oversize", max_message=MAX_MESSAGE)
    if sum(int(r["count"]) for r in over) != 2:
        problems.append(f"publish_oversize records {over} do not count the 2 oversize messages")


def test(b):
    port = harness.free_port()
    b.extra = ["--http", str(port), "--max-message", str(MAX_MESSAGE)]
    b.start()
    problems = []
    ctx = zmq.Context()
    ingest = Client(ctx, b.ingest, problems)
    replay = Client(ctx, b.replay, problems)
    base = harness.new_requests("safe", 1)[0]
    before = scrape(port)

    messages = hostile_values(problems, ingest, base)
    b.wait_log("publish_refused")  # the first refusal: logged at once
    bad_headers(problems, ingest, replay, msgpack.packb(base))
    oversize(problems, ingest, base)  # last: the final summary names it

    after = scrape(port)
    key = 'renkei_events_rejected_total{reason="E_TOO_LONG"}'
    if after.get(key, 0) - before.get(key, 0) != 2:
        problems.append(f"{key}: {before.get(key)} -> {after.get(key)}, want +2")
    end = replay.ask([msgpack.packb([1, "replay", 9, 1, 0, 1000])], "replay")
    if end and (end[1] != "end" or end[4] != 0):
        problems.append(f"something was stored: {end}")
    mutated(problems, ctx, b.ingest, base)
    ctx.destroy(linger=0)

    b.stop()  # writes the refusals not yet logged
    check_log(problems, b, messages[0])
    assert not problems, "\n".join(["broken promises:"] + problems)


harness.run(test)

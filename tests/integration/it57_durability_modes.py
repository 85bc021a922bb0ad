"""The durability modes, proved from the broker's own system calls.

kill -9 (it50) cannot tell a commit that reached the disk from one still in
the page cache, so it cannot prove `durability=full`. Here a preloaded shim
(durtrace.c) records, in order, inside the real broker: every write to the
log's data.mdb with its bytes, every sync of it, and every "ack" / "acks"
handed to ZeroMQ with the seqs it acknowledges. The order of two records is
that of a counter taken on entry to and on return from each call, never of
their timing, so the checks hold on a slow or loaded machine.

What LMDB 0.9 does per commit (seen with strace -f on this broker):

  full  pwrite/writev of the dirty pages on data.mdb's main descriptor,
        fdatasync(that descriptor), then pwrite of the meta page on a second
        descriptor opened O_WRONLY|O_DSYNC (the write returns once on disk);
  os    (MDB_NOSYNC) the same page writes, then the meta page pwrite on the
        main descriptor; no fdatasync, fsync, msync or sync_file_range, and
        no write on the O_DSYNC descriptor, ever.

The check. For each event with seq s, the test knows its event_id from the
publisher, so W(s) is the earliest write to data.mdb whose bytes hold the
stored event (the MessagePack "event_id" key followed by its value): the
write of the commit that stored s. M(s) is the first write of a meta page
(either of the first two pages of the file) that begins after W(s) returned:
that commit's commit point. A write w is *durable at* a point t when it wrote
all its bytes and either its descriptor is O_DSYNC and it returned before t,
or a successful fdatasync/fsync of data.mdb began after w returned and
returned before t (a skipped or failed sync covers nothing; sync_file_range
and msync never count). For every acknowledgement A (the moment the broker
calls zmq_send / zmq_msg_send with it) of every seq s in it:

  ordered   (1) W(s) returned before A, and (2) M(s) exists and returned
            before A: the commit holding s was handed to the kernel, its
            commit point included, before s was acknowledged;
  durable   ordered, and (3) W(s) and M(s) are durable at A, and (4) every
            write to data.mdb that returned before A is durable at A: no
            acknowledgement is ever sent between a commit's page writes and
            its sync.

What each mode survives, as this measures:

  full  every acknowledged event's record and commit point had reached
        stable storage (as far as fdatasync and O_DSYNC promise) before the
        ack: it survives a power cut or a kernel crash. Asserted: durable.
  os    every acknowledged event's commit was complete in the kernel's page
        cache before the ack, but nothing is ever synced: it survives a crash
        of the broker (the kernel still writes the pages back), not a power
        cut or kernel crash, which can lose acknowledged events. Asserted:
        ordered; no sync of the data file at all; and `durable` fails for
        every ack, so the checker tells the two modes apart.

The test can fail. The full run's own trace, with each ack moved to where
its event's record write began, must fail both checks on every ack. And in a
third run, full mode with RK_DURTRACE_SKIP_SYNC=1,
the shim turns fdatasync/fsync into no-ops that succeed at once (recorded as
skipped), as a broker that acknowledged before syncing would behave; the
durable check must then report every ack. Not measured: whether the disk
honours a flush (the device's write cache), nor LMDB's MDB_WRITEMAP/msync
path, which the broker does not use (the check would fail on it, as no page
write would be seen).

Events come through both answers: renkei-agent (its publishes accept
"acks", one per commit) and raw DEALER publishes (one "ack" each)."""
import bisect
import collections
import os
import re

import msgpack

import harness

AGENT_EVENTS = 200
RAW_EVENTS = 100
INF = float("inf")
PAGE = os.sysconf("SC_PAGE_SIZE")   # LMDB's page size is the OS's


def start_traced(b, trace_path, skip_sync=False):
    """Starts the broker with the shim preloaded; only the broker gets it."""
    harness.start_preloaded(b, "rk_durtrace.so", {
        "RK_DURTRACE_FILE": trace_path, "RK_DURTRACE_SKIP_SYNC": "1" if skip_sync else "0"})


def publish(b, tag):
    """AGENT_EVENTS through renkei-agent, RAW_EVENTS raw; returns seq -> event_id."""
    ids = {}
    lines = harness.new_request_lines(f"{tag}a", AGENT_EVENTS)
    path = os.path.join(b.dir, f"{tag}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    _, results, err = b.agent("send", path, check_rc=0)
    assert len(results) == AGENT_EVENTS and all(r["ok"] for r in results), (results, err)
    for r in results:
        ids[r["seq"]] = r["event_id"]
    events = harness.new_requests(f"{tag}r", RAW_EVENTS)
    seqs = harness.publish_pipelined(b.ingest, (msgpack.packb(e) for e in events), window=32,
                                     timeout_ms=60000)
    for e, s in zip(events, seqs):
        assert s not in ids, f"seq {s} acknowledged twice"
        ids[s] = e["event_id"]
    assert len(ids) == AGENT_EVENTS + RAW_EVENTS
    return ids


class Trace:
    """The shim's records for the log at `data_dir`/data.mdb."""

    LINE = re.compile(r"(\d+) (\d+) (\d+) (\d+) (\d+) (\w+) (.*)")

    def __init__(self, path, data_dir):
        want = os.path.normpath(os.path.join(data_dir, "data.mdb"))
        with open(path + ".pages", "rb") as f:
            self.pages = f.read()
        self.files = {}     # open number -> {"dsync": bool}
        self.writes, self.syncs, self.msyncs, self.acks = [], [], [], []
        recs = []
        with open(path) as f:
            for line in f:
                m = self.LINE.fullmatch(line.rstrip("\n"))
                assert m, f"bad trace line {line!r}"
                r = dict(kv.split("=", 1) for kv in m.group(7).split(" "))
                r["b"], r["e"], r["kind"] = int(m.group(1)), int(m.group(2)), m.group(6)
                recs.append(r)
        recs.sort(key=lambda r: r["b"])
        for r in recs:
            if r["kind"] == "open" and os.path.normpath(r["path"]) == want:
                self.files[r["file"]] = {"dsync": r["dsync"] == "1"}
        for r in recs:
            k = r["kind"]
            if k == "msync":
                self.msyncs.append(r)
            elif k == "ack":
                assert r["ok"] == "1", f"an ack the shim could not read: {r}"
                r["seqs"] = [int(s) for s in r["seqs"].split(",")]
                self.acks.append(r)
            elif k in ("write", "sync") and r["file"] in self.files:
                (self.writes if k == "write" else self.syncs).append(r)
        for w in self.writes:
            w["off"], w["len"], w["ret"] = int(w["off"]), int(w["len"]), int(w["ret"])
            w["dsync"] = self.files[w["file"]]["dsync"]
            w["meta"] = 0 <= w["off"] < 2 * PAGE
            w["data"] = b""
            if "pages" in w:
                at, n = (int(x) for x in w["pages"].split("+"))
                w["data"] = self.pages[at:at + n]
        self.by_b = [w["b"] for w in self.writes]
        self._cover()

    def _cover(self):
        """Each write's `cov`: the point at which it became durable (INF:
        never). Syncs that count: fdatasync/fsync, returned 0, not skipped."""
        good = sorted((s for s in self.syncs if s["call"] in ("fdatasync", "fsync")
                       and s["ret"] == "0" and s["skipped"] == "0"), key=lambda s: s["b"])
        starts = [s["b"] for s in good]
        suffix_min_e = [INF] * (len(good) + 1)
        for i in range(len(good) - 1, -1, -1):
            suffix_min_e[i] = min(good[i]["e"], suffix_min_e[i + 1])
        for w in self.writes:
            if w["ret"] != w["len"]:
                w["cov"] = INF
            elif w["dsync"]:
                w["cov"] = w["e"]
            else:
                w["cov"] = suffix_min_e[bisect.bisect_right(starts, w["e"])]
        # for (4): the latest durability point among writes returned before t
        by_e = sorted(self.writes, key=lambda w: w["e"])
        self.e_sorted = [w["e"] for w in by_e]
        self.cov_prefix_max = []
        m = -1
        for w in by_e:
            m = max(m, w["cov"])
            self.cov_prefix_max.append(m)

    def record_write(self, event_id):
        """W: the earliest write holding the stored event's event_id."""
        pattern = b"\xa8event_id" + msgpack.packb(event_id)
        for w in self.writes:
            if pattern in w["data"]:
                return w
        return None

    def commit_point(self, w):
        """M: the first meta page write that begins after `w` returned."""
        for x in self.writes[bisect.bisect_right(self.by_b, w["e"]):]:
            if x["meta"]:
                return x
        return None

    def unsynced_before(self, t):
        """True when some write returned before t is not durable at t."""
        i = bisect.bisect_left(self.e_sorted, t)
        return i > 0 and self.cov_prefix_max[i - 1] >= t


def check(trace, ids, durable):
    """The violations of `ordered` (durable=False) or `durable`, one string
    each, and the number of acks with at least one."""
    out, bad_acks = [], 0
    cache = {}
    for a in trace.acks:
        t, bad = a["b"], []
        for s in a["seqs"]:
            if s not in cache:
                w = trace.record_write(ids[s])
                cache[s] = (w, trace.commit_point(w) if w else None)
            w, m = cache[s]
            if w is None:
                bad.append(f"seq {s}: no write to data.mdb holds it")
                continue
            if w["e"] >= t:
                bad.append(f"seq {s}: acked at #{t} before its record write #{w['b']}..#{w['e']}")
            if m is None or m["e"] >= t:
                bad.append(f"seq {s}: acked at #{t} before its commit point (meta write "
                           f"{'none' if m is None else '#%d..#%d' % (m['b'], m['e'])})")
            if durable:
                for what, x in (("record write", w), ("commit point", m)):
                    if x is not None and x["cov"] >= t:
                        bad.append(f"seq {s}: acked at #{t}, its {what} #{x['b']}..#{x['e']} "
                                   f"({x['call']} fd={x['fd']} off={x['off']}) not synced "
                                   f"before it ({'never' if x['cov'] == INF else 'at #%d' % x['cov']})")
        if durable and trace.unsynced_before(t):
            bad.append(f"ack at #{t} ({a['form']} {a['seqs'][:4]}...) sent while a write to "
                       f"data.mdb is not synced")
        if bad:
            bad_acks += 1
            out.extend(bad)
    return out, bad_acks


def traced_run(b, tag, durability, skip_sync=False):
    b.extra += ["--durability", durability]
    trace_path = os.path.join(b.dir, "durtrace")
    start_traced(b, trace_path, skip_sync)
    ids = publish(b, tag)
    b.stop()
    trace = Trace(trace_path, b.data)
    acked = {s for a in trace.acks for s in a["seqs"]}
    # non-vacuous: the shim saw the log's file, its writes and every ack
    assert len(trace.files) >= 1 and trace.writes, f"{durability}: no data.mdb writes traced"
    assert acked == set(ids), (f"{durability}: acks traced for {len(acked)} seqs, "
                               f"publishers got {len(ids)}; missing "
                               f"{sorted(set(ids) - acked)[:10]}, extra {sorted(acked - set(ids))[:10]}")
    forms = {a["form"] for a in trace.acks}
    assert forms == {"ack", "acks"}, f"{durability}: ack forms seen {forms}"
    print(f"{durability}{' (syncs skipped)' if skip_sync else ''}: {len(ids)} events, "
          f"{len(trace.acks)} ack messages, {len(trace.writes)} data.mdb writes "
          f"({sum(w['meta'] for w in trace.writes)} meta, "
          f"{sum(w['dsync'] for w in trace.writes)} O_DSYNC), "
          f"syncs {dict(collections.Counter(s['call'] + ('(skipped)' if s['skipped'] == '1' else '') for s in trace.syncs))}, "
          f"msyncs {len(trace.msyncs)}")
    return trace, ids


def full_mode(b):
    trace, ids = traced_run(b, "dfull", "full")
    bad, n = check(trace, ids, durable=True)
    assert not bad, f"full: {n} of {len(trace.acks)} acks violate durability:\n" + "\n".join(bad[:20])
    # what LMDB 0.9 does in this mode, so that a change of it is noticed
    assert any(s["call"] == "fdatasync" for s in trace.syncs), "full: no fdatasync of data.mdb"
    assert any(w["meta"] and w["dsync"] for w in trace.writes), \
        "full: no meta page written through the O_DSYNC descriptor"
    # the ordering half can fail too: the same trace with each ack moved to
    # the moment its first event's record write began (a broker that acks
    # what it received before committing it) fails both checks on every ack
    for a in trace.acks:
        a["b"] = min(trace.record_write(ids[s])["b"] for s in a["seqs"])
    for durable in (False, True):
        bad, n = check(trace, ids, durable)
        assert n == len(trace.acks), \
            f"full, acks moved before their commit: only {n} of {len(trace.acks)} reported"
    print(f"full, acks moved before their commit (synthetic): both checks report all {n} acks, "
          f"e.g. {bad[0]}")


def os_mode(b):
    trace, ids = traced_run(b, "dos", "os")
    assert not trace.syncs, f"os: data.mdb synced: {trace.syncs[:5]}"
    assert not trace.msyncs, f"os: msync called: {trace.msyncs[:5]}"
    assert not any(w["dsync"] for w in trace.writes), "os: a write on the O_DSYNC descriptor"
    bad, n = check(trace, ids, durable=False)
    assert not bad, f"os: {n} acks before their commit:\n" + "\n".join(bad[:20])
    # the checker discriminates: os mode is what `full` silently opened with
    # MDB_NOSYNC would do, and every ack of it must fail the durable check
    bad, n = check(trace, ids, durable=True)
    assert n == len(trace.acks), f"os: only {n} of {len(trace.acks)} acks fail the durable check"
    print(f"os: the durable check fails all {n} acks, e.g. {bad[0]}")


def skipped_syncs(b):
    """The negative self-check: full mode whose syncs do nothing."""
    trace, ids = traced_run(b, "dskip", "full", skip_sync=True)
    assert trace.syncs and all(s["skipped"] == "1" for s in trace.syncs), trace.syncs[:5]
    bad, n = check(trace, ids, durable=False)
    assert not bad, "skip: the order of writes and acks should be unchanged:\n" + "\n".join(bad[:20])
    bad, n = check(trace, ids, durable=True)
    assert n == len(trace.acks), \
        f"skip: the durable check missed acks sent without a sync: {n} of {len(trace.acks)}"
    print(f"negative self-check: syncs skipped, the durable check reports all {n} acks "
          f"({len(bad)} violations); first three:")
    for line in bad[:3]:
        print("  " + line)


def test(b):
    others = [harness.Broker(), harness.Broker()]
    try:
        full_mode(b)
        os_mode(others[0])
        skipped_syncs(others[1])
    except BaseException:
        for o in others:
            if o.log_path and os.path.exists(o.log_path):
                print(f"---- broker log ({o.dir}) ----\n" + o.log())
        raise
    finally:
        for o in others:
            o.cleanup()


harness.run(test)

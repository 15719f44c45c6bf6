"""Every DAMON record field of Linux 6.14 - 7.x (issue 16, target 5).

Trace inputs are generated here from the kernels' own ``TP_printk`` format strings
(docs/formats.md, "Every DAMON trace event", cites them) with a small printf of our own,
in the three text styles (tracefs ``trace_pipe``, ``perf script``, ``trace-cmd report``);
the expected rows are the generator's values, never the parser's. The sysfs side runs
against the fake kernel (tests/support/fake_kernel.py) with the newer kernels' files on,
and off (the VM's 6.12 layout).
"""
import json
import logging
import os
import random
import re

import numpy as np
import pytest

from damo_pipe.errors import RecordFormatError
from damo_pipe.formats.trace_text import TraceStreamParser, parse_trace_bytes

# -- the kernel format strings (copied from include/trace/events/damon.h) -------------
FMT_AGGREGATED = "target_id=%lu nr_regions=%u %lu-%lu: %u %u"
FMT_BEFORE_APPLY = "ctx_idx=%u scheme_idx=%u target_idx=%lu nr_regions=%u %lu-%lu: %u %u"
FMT_INTERVALS_TUNE = "sample_us=%lu"
FMT_ESZ = "ctx_idx=%u scheme_idx=%u esz=%lu"
#: Linux 7.0 (commit 804c26b961da): sz_applied printed under the name sz_tried
FMT_STAT_70 = ("ctx_idx=%u scheme_idx=%u nr_tried=%lu sz_tried=%lu nr_applied=%lu "
               "sz_tried=%lu sz_ops_filter_passed=%lu qt_exceeds=%lu nr_snapshots=%lu")
#: the fix ("mm/damon: fix damos_stat tracepoint format for sz_applied", 7.0.x stable)
FMT_STAT_FIXED = FMT_STAT_70.replace("sz_tried=%lu sz_ops", "sz_applied=%lu sz_ops")
#: the damonitor/linux tree (commit 3ae32ae1)
FMT_STAT_DAMONITOR = "ctx_idx=%u scheme_idx=%u stat=%lu %lu %lu %lu %lu %lu %lu"
#: damon/next (sj/linux): __print_hex of unsigned char probe_hits[nr_probes]
FMT_REGION_AGGREGATED = "target_id=%lu nr_regions=%u %lu-%lu: %u %u probe_hits=%s"

STAT_NAMES = ("nr_tried", "sz_tried", "nr_applied", "sz_applied", "sz_ops_filter_passed",
              "qt_exceeds", "nr_snapshots")


def kprintf(fmt, *args):
    """The kernel's vsnprintf for the conversions these formats use."""
    out, it = [], iter(args)
    for piece in re.split(r"(%lu|%u|%ld|%d|%s)", fmt):
        if piece in ("%lu", "%u", "%ld", "%d"):
            out.append("%d" % next(it))
        elif piece == "%s":
            out.append(str(next(it)))
        else:
            out.append(piece)
    return "".join(out)


def print_hex(data):
    """trace_print_hex_seq(..., concatenate=false) / libtraceevent's __print_hex: two
    lower-case hex digits per byte, one space between bytes (16-byte chunks joined by a
    space too)."""
    return " ".join("%02x" % b for b in data)


def style_line(style, ts, event, fields, cpu=1, pid=4242):
    """One trace line of ``event`` at time ``ts`` (seconds, a float) in a text style."""
    if style == "trace_pipe":
        return "     kdamond.0-%d     [%03d] ..... %12.6f: %s: %s" % (pid, cpu, ts, event, fields)
    if style == "perf_script":
        return "       kdamond.0 %7d [%03d] %12.6f: damon:%s: %s" % (pid, cpu, ts, event, fields)
    if style == "trace_cmd":
        return "       kdamond.0-%d  [%03d] %12.6f: %s:             %s" % (pid, cpu, ts, event,
                                                                         fields)
    raise ValueError(style)


STYLES = ("trace_pipe", "perf_script", "trace_cmd")


def ts_ns(ts):
    """The timestamp as written (``%12.6f``) read back like damo: int(float(s) * 1e9)."""
    return int(float("%.6f" % ts) * 1e9)


class Gen:
    """A generated trace: lines plus the values each event carried."""

    def __init__(self, style, seed=1, stat_fmt=FMT_STAT_FIXED, n_aggr=4, with_probes=True):
        rnd = random.Random(seed)
        self.lines = []
        self.snapshots = []       # [(end_ns, [(start, end, nr, age)])]
        self.esz, self.stat, self.tune, self.probe_rows, self.probe_hits = [], [], [], [], []
        ts = 100.0
        for k in range(n_aggr):
            ts += 0.1
            nr = rnd.randint(1, 5)
            addr = 0x7f0000000000
            regions = []
            for _ in range(nr):
                size = rnd.randint(1, 64) * 4096
                regions.append((addr, addr + size, rnd.randint(0, 20), rnd.randint(0, 99)))
                addr += size
            for s, e, acc, age in regions:
                self.lines.append(style_line(style, ts, "damon_aggregated",
                                             kprintf(FMT_AGGREGATED, 0, nr, s, e, acc, age)))
            self.snapshots.append((ts_ns(ts), regions))
            if with_probes:
                ts += 0.000001
                for s, e, acc, age in regions:
                    hits = bytes(rnd.randint(0, 255) for _ in range(rnd.choice((0, 2, 3, 17))))
                    self.lines.append(style_line(
                        style, ts, "damon_region_aggregated",
                        kprintf(FMT_REGION_AGGREGATED, 0, nr, s, e, acc, age, print_hex(hits))))
                    self.probe_rows.append((ts_ns(ts), 0, nr, s, e, acc, age, len(hits)))
                    self.probe_hits.extend(hits)
            ts += 0.000001
            for scheme in (0, 1):
                esz = rnd.randint(0, 1 << 40)
                self.lines.append(style_line(style, ts, "damos_esz",
                                             kprintf(FMT_ESZ, 0, scheme, esz)))
                self.esz.append((ts_ns(ts), 0, scheme, esz))
                vals = [rnd.randint(0, 1 << 50) for _ in STAT_NAMES]
                self.lines.append(style_line(style, ts, "damos_stat_after_apply_interval",
                                             kprintf(stat_fmt, 0, scheme, *vals)))
                self.stat.append((ts_ns(ts), 0, scheme, *vals))
            su = rnd.randint(100, 100000)
            self.lines.append(style_line(style, ts, "damon_monitor_intervals_tune",
                                         kprintf(FMT_INTERVALS_TUNE, su)))
            self.tune.append((ts_ns(ts), su))

    @property
    def text(self):
        return ("\n".join(self.lines) + "\n").encode()


def rows_of(side, table, columns):
    t = side[table]
    return list(zip(*[t[c].tolist() for c in columns]))


def check_side(side, g):
    assert rows_of(side, "trace_damos_esz", ("time_ns", "ctx_idx", "scheme_idx", "esz")) == g.esz
    assert rows_of(side, "trace_damos_stat", ("time_ns", "ctx_idx", "scheme_idx")
                   + STAT_NAMES) == g.stat
    assert rows_of(side, "trace_intervals_tune", ("time_ns", "sample_us")) == g.tune
    if g.probe_rows:
        assert rows_of(side, "trace_region_aggregated",
                       ("time_ns", "target_id", "nr_regions", "start", "end", "nr_accesses",
                        "age", "nr_probes")) == g.probe_rows
        if g.probe_hits:
            assert side["trace_region_probe_hits"]["hits"].tolist() == g.probe_hits
            assert side["trace_region_probe_hits"]["hits"].dtype == np.uint8


def parse_all(text, engine, lenient=False, piece=None):
    p = TraceStreamParser(engine=engine, lenient=lenient)
    if piece:
        chunks = []
        for i in range(0, len(text), piece):
            chunks += p.feed(text[i:i + piece])
    else:
        chunks = p.feed(text)
    chunks += p.finish()
    return p, chunks


# -- trace text -------------------------------------------------------------------------
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("stat_fmt", [FMT_STAT_70, FMT_STAT_FIXED, FMT_STAT_DAMONITOR],
                         ids=["linux-7.0", "fixed", "damonitor"])
def test_every_event_of_a_generated_trace(style, stat_fmt, engine):
    g = Gen(style, seed=len(style) + len(stat_fmt), stat_fmt=stat_fmt)
    p, chunks = parse_all(g.text, engine)
    # the snapshots are the damon_aggregated lines, unchanged by the lines between them
    recs = parse_trace_bytes(g.text, engine=engine)
    assert len(recs) == 1
    r = recs[0]
    assert r.snapshots.end_ns.tolist() == [e for e, _ in g.snapshots]
    got = [list(zip(*(c.tolist() for c in (x.start, x.end, x.nr_accesses, x.age))))
           for x in (r.snapshot_regions(k) for k in range(r.nr_snapshots))]
    assert got == [regs for _, regs in g.snapshots]
    check_side(p.take_side_rows(), g)
    assert p.unknown_events() == (0, None)
    assert p.take_side_rows() == {}     # handed over once


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_side_rows_do_not_depend_on_how_the_text_is_split(piece, engine):
    g = Gen("trace_pipe", seed=piece)
    p, _ = parse_all(g.text, engine, piece=piece)
    check_side(p.take_side_rows(), g)


def test_probe_hits_forms():
    # no probe: "probe_hits=" alone; 17 probes: two __print_hex chunks, one space apart
    for hits in (b"", b"\x13\x00", bytes(range(17))):
        line = style_line("perf_script", 1.5, "damon_region_aggregated",
                          kprintf(FMT_REGION_AGGREGATED, 3, 1, 4096, 8192, 2, 9, print_hex(hits)))
        text = (style_line("perf_script", 1.5, "damon_aggregated",
                           kprintf(FMT_AGGREGATED, 3, 1, 4096, 8192, 2, 9)) + "\n" + line
                + "\n").encode()
        for engine in ("python", "cython"):
            p, _ = parse_all(text, engine)
            side = p.take_side_rows()
            assert side["trace_region_aggregated"]["nr_probes"].tolist() == [len(hits)], engine
            got = side.get("trace_region_probe_hits", {"hits": np.zeros(0)})["hits"].tolist()
            assert got == list(hits), engine


def test_unknown_damon_events_are_counted_and_named(engine, caplog):
    g = Gen("perf_script", seed=5, with_probes=False)
    extra = [style_line("perf_script", 200.0, "damos_cache_update",
                        "ctx_idx=0 scheme_idx=0 nid=0 sz_applied=1 slot=2 delta=-3"),
             style_line("perf_script", 200.1, "damon_perf_ring_overflow", "cpu=3"),
             # not DAMON: ignored, not counted
             "       swapper     0 [000]   200.200000: sched:sched_switch: prev_comm=a",
             # a DAMON event of any name under perf's damon: system
             "       kdamond.0  4242 [001]   200.300000: damon:brand_new: x=1"]
    text = g.text + ("\n".join(extra) + "\n").encode()
    with caplog.at_level(logging.WARNING):
        p, _ = parse_all(text, engine)
    n, first = p.unknown_events()
    assert n == 3
    assert first[0] == len(g.lines) + 1 and "damos_cache_update" in first[1]
    msgs = [r.getMessage() for r in caplog.records if "does not know" in r.getMessage()]
    assert len(msgs) == 1 and "3 lines" in msgs[0] and "line %d" % (len(g.lines) + 1) in msgs[0]
    check_side(p.take_side_rows(), g)


@pytest.mark.parametrize("bad,what", [
    ("ctx_idx=0 scheme_idx=1", "fields"),
    ("ctx_idx=0 scheme_idx=1 esz=12x", "bad"),
    ("ctx_idx=0 scheme=1 esz=12", "scheme_idx"),
    ("ctx_idx=4294967296 scheme_idx=1 esz=12", "out of range"),     # %u
    ("ctx_idx=0 scheme_idx=1 esz=18446744073709551616", "out of range"),
    ("ctx_idx=0 scheme_idx=1 esz=12 extra=1", "fields"),
])
def test_a_damaged_side_line_is_an_error_naming_it_or_counted(bad, what, engine):
    g = Gen("trace_pipe", seed=9, with_probes=False)
    lines = list(g.lines)
    at = 3
    lines.insert(at, style_line("trace_pipe", 100.1, "damos_esz", bad))
    text = ("\n".join(lines) + "\n").encode()
    with pytest.raises(RecordFormatError, match=what) as ei:
        parse_all(text, engine)
    assert ei.value.line == at + 1
    p, _ = parse_all(text, engine, lenient=True)
    assert p.state.damaged_lines == 1 and p.state.first_damage == at + 1
    assert len(p.take_side_rows()["trace_damos_esz"]["esz"]) == len(g.esz)


def test_both_engines_agree_on_a_long_mixed_trace():
    # long enough for the compiled engine's two-thread split (>= 1 MiB)
    g = Gen("perf_script", seed=3, n_aggr=1500)
    text = g.text
    assert len(text) > 1 << 20
    out = {}
    for engine in ("python", "cython"):
        p, _ = parse_all(text, engine)
        out[engine] = p.take_side_rows()
        check_side(out[engine], g)


# -- convert ----------------------------------------------------------------------------
def test_convert_keeps_every_event_with_units(tmp_path, engine):
    from damo_pipe.archive.sidetables import list_side_tables, read_side_table
    from damo_pipe.convert import to_archive
    g = Gen("perf_script", seed=11)
    src = tmp_path / "t.txt"
    src.write_bytes(g.text + b"  kdamond.0  4242 [001]   300.000000: damon:damos_new_one: a=1\n")
    dst = tmp_path / "t.h5"
    to_archive(src, dst, engine=engine)
    side = {n: read_side_table(dst, n) for n in
            ("trace_damos_esz", "trace_damos_stat", "trace_intervals_tune",
             "trace_region_aggregated", "trace_region_probe_hits")}
    check_side(side, g)
    tables = {t["name"]: t for t in list_side_tables(dst)}
    units = json.loads(tables["trace_damos_stat"]["attrs"]["units_json"])
    assert units["sz_applied"] == "bytes" and units["nr_tried"] == "count"
    assert tables["trace_intervals_tune"]["attrs"]["format"] == FMT_INTERVALS_TUNE
    assert json.loads(tables["trace_intervals_tune"]["attrs"]["units_json"])["sample_us"] == "us"
    assert tables["trace_damos_esz"]["attrs"]["event"] == "damos_esz"
    import h5py
    with h5py.File(dst, "r") as f:
        assert int(f["collect"].attrs["trace_unknown_events"]) == 1
        assert "damos_new_one" in str(f["collect"].attrs["trace_unknown_first"])


def test_convert_of_a_plain_trace_adds_no_table(tmp_path):
    from damo_pipe.archive.sidetables import list_side_tables
    from damo_pipe.convert import to_archive
    g = Gen("trace_pipe", seed=2)
    src = tmp_path / "t.txt"
    src.write_bytes(b"".join(ln.encode() + b"\n" for ln in g.lines
                             if " damon_aggregated: " in ln))
    to_archive(src, tmp_path / "t.h5")
    assert list_side_tables(tmp_path / "t.h5") == []


# -- the live tracer --------------------------------------------------------------------
def test_live_tracer_records_the_events_in_an_swmr_archive(tmp_path, monkeypatch):
    from damo_pipe.archive import ArchiveWriter
    from damo_pipe.archive.sidetables import read_side_table
    from damo_pipe.collect import tracing
    from damo_pipe.collect.tracing import TracerOptions
    from damo_pipe.model import Record
    from tests.support.tracer_helpers import FakeTracefs, start_feeder

    monkeypatch.setenv("DAMO_PIPE_NO_REAL_SYSFS", "1")
    fake = FakeTracefs(tmp_path / "tracing", events=(
        "damon_aggregated", "damos_before_apply", "damon_monitor_intervals_tune",
        "damos_esz", "damos_stat_after_apply_interval")).install(monkeypatch)
    g = Gen("trace_pipe", seed=21, with_probes=False)
    path = tmp_path / "live.h5"
    w = ArchiveWriter(path, swmr=True)
    keys = {0: w.add_record(Record(target_id=0))}
    opts = TracerOptions(kind="tracefs", tracefs_root=str(fake.root))
    tables = tracing.open_trace_side_tables(opts, w)
    assert sorted(tables) == ["trace_damos_esz", "trace_damos_stat", "trace_intervals_tune"]
    w.flush()          # SWMR appending starts: no table could be added from now on
    h = tracing.start_tracer(opts, w, keys, flush_interval=0.001, side_tables=tables,
                             sigterm_exits=False)
    enabled = {ev for ev in fake.events
               if (fake.root / "instances").exists() and any(
                   (d / "events" / "damon" / ev / "enable").read_text().strip() == "1"
                   for d in (fake.root / "instances").iterdir())}
    assert {"damos_esz", "damos_stat_after_apply_interval"} <= enabled
    feeder = start_feeder(os.path.join(h.source.dir, "trace_pipe"), g.text, piece=777, seed=3)
    import time
    deadline = time.monotonic() + 20
    while feeder.is_alive() and time.monotonic() < deadline:
        h.poll()
        h.wait(0.01)
    h.poll()
    summary = h.stop()
    w.close()
    assert summary["side_rows"] == len(g.esz) + len(g.stat) + len(g.tune)
    assert summary["dropped_side_rows"] == 0 and summary["unknown_damon_lines"] == 0
    side = {n: read_side_table(path, n) for n in tables}
    check_side(side, g)


# -- the sysfs collector ----------------------------------------------------------------
@pytest.fixture
def root():
    import shutil

    from tests.support.collect import fast_tmpdir
    d = fast_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _record(k, root, out, *extra):
    from tests.support.collect import cli
    return cli(k, "record", "--ops", "paddr", "--regions", "1M-1025M", "-o", out,
               "--timeout", "1", *extra)


def test_collector_records_addr_unit_tuned_intervals_and_new_stats(root, tmp_path, monkeypatch):
    from damo_pipe.archive import read_archive_records
    from damo_pipe.archive.sidetables import list_side_tables, read_side_table
    from tests.support.fake_kernel import FakeKernel

    monkeypatch.setenv("DAMO_PIPE_NO_REAL_SYSFS", "1")
    monkeypatch.setenv("DAMO_PIPE_STATE_FILE", os.path.join(root, "owned.json"))
    # the kernel tunes to 2500/50000 us (the configured 5000/100000 halved)
    k = FakeKernel(os.path.join(root, "admin"), nr_regions=20, intervals_goal=True,
                   addr_unit=4096, new_stats=True, with_filter_passed=True).start()
    try:
        out = tmp_path / "n.h5"
        assert _record(k, root, out, "--monitoring_intervals_autotune") == 0
    finally:
        k.stop()
    assert not k.errors
    assert any(c == "update_tuned_intervals" for _, c in k.commands)
    ctx = read_side_table(out, "damon_context")
    assert ctx is not None and len(ctx["time_ns"]) >= 1
    assert set(ctx["addr_unit"].tolist()) == {4096}
    assert ctx["sample_us"][-1] == 2500 and ctx["aggr_us"][-1] == 50000 and ctx["tuned"].all()
    units = json.loads({t["name"]: t for t in list_side_tables(out)}["damon_context"]
                       ["attrs"]["units_json"])
    assert units["sample_us"] == "us" and units["time_ns"].startswith("ns")
    r = read_archive_records(out)[0]
    assert r.nr_snapshots >= 2
    # every snapshot states the tuned sampling interval and covers the tuned aggregation
    assert np.all(r.snapshots.sample_interval_us == 2500)
    assert np.all(r.snapshots.end_ns - r.snapshots.start_ns == 50000 * 1000)
    stats = read_side_table(out, "damos_stats")
    assert stats["nr_snapshots"].max() >= 1     # the kernel's counter, not zeros
    assert "max_nr_snapshots" in stats and "sz_ops_filter_passed" in stats


def test_collector_on_the_612_layout_records_no_new_field(root, tmp_path, monkeypatch):
    from damo_pipe.archive import read_archive_records
    from damo_pipe.archive.sidetables import list_side_tables
    from tests.support.fake_kernel import FakeKernel

    monkeypatch.setenv("DAMO_PIPE_NO_REAL_SYSFS", "1")
    monkeypatch.setenv("DAMO_PIPE_STATE_FILE", os.path.join(root, "owned.json"))
    k = FakeKernel(os.path.join(root, "admin"), nr_regions=20).start()
    try:
        out = tmp_path / "o.h5"
        assert _record(k, root, out) == 0
    finally:
        k.stop()
    assert not k.errors
    assert not any(c == "update_tuned_intervals" for _, c in k.commands)
    assert "damon_context" not in {t["name"] for t in list_side_tables(out)}
    r = read_archive_records(out)[0]
    assert r.nr_snapshots >= 2 and np.isnan(r.snapshots.sample_interval_us).all()
    assert np.all(r.snapshots.end_ns - r.snapshots.start_ns == 100000 * 1000)


def test_collector_without_autotuning_records_configured_intervals(root, tmp_path, monkeypatch):
    from damo_pipe.archive.sidetables import read_side_table
    from tests.support.fake_kernel import FakeKernel

    monkeypatch.setenv("DAMO_PIPE_NO_REAL_SYSFS", "1")
    monkeypatch.setenv("DAMO_PIPE_STATE_FILE", os.path.join(root, "owned.json"))
    k = FakeKernel(os.path.join(root, "admin"), nr_regions=20, intervals_goal=True).start()
    try:
        out = tmp_path / "c.h5"
        assert _record(k, root, out) == 0
    finally:
        k.stop()
    assert not any(c == "update_tuned_intervals" for _, c in k.commands)
    ctx = read_side_table(out, "damon_context")
    assert "addr_unit" not in ctx    # no addr_unit file: not recorded
    assert ctx["sample_us"].tolist() == [5000] and not ctx["tuned"].any()


def test_record_with_tracer_keeps_the_events_end_to_end(root, tmp_path, monkeypatch):
    """``damo-collect record --tracer tracefs``: the side tables are made with the
    records (before SWMR appending starts) and filled from the instance's trace_pipe."""
    import threading
    import time

    from damo_pipe.archive.sidetables import list_side_tables, read_side_table
    from tests.support.collect import cli
    from tests.support.fake_kernel import FakeKernel
    from tests.support.tracer_helpers import FakeTracefs, feed_fifo

    monkeypatch.setenv("DAMO_PIPE_NO_REAL_SYSFS", "1")
    monkeypatch.setenv("DAMO_PIPE_STATE_FILE", os.path.join(root, "owned.json"))
    fake = FakeTracefs(tmp_path / "tracing", events=(
        "damon_aggregated", "damon_monitor_intervals_tune", "damos_esz",
        "damos_stat_after_apply_interval")).install(monkeypatch)
    g = Gen("trace_pipe", seed=8, with_probes=False)
    stop = threading.Event()

    def feed():
        deadline = time.monotonic() + 30
        while not fake.instances_made and time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.01)
        if fake.instances_made:
            feed_fifo(os.path.join(fake.instances_made[0], "trace_pipe"), g.text, piece=500,
                      delay=0.001, stop=stop)

    k = FakeKernel(os.path.join(root, "admin"), nr_regions=20).start()
    th = threading.Thread(target=feed, daemon=True)
    th.start()
    out = tmp_path / "t.h5"
    try:
        rc = cli(k, "record", "--ops", "paddr", "--regions", "1M-1025M", "-o", out,
                 "--timeout", "2", "--tracer", "tracefs", "--tracefs_root", fake.root,
                 "--tracer_state_dir", tmp_path / "state", "--flush_interval", "0.2")
    finally:
        stop.set()
        th.join(10)
        k.stop()
    assert rc == 0
    names = {t["name"] for t in list_side_tables(out)}
    assert {"trace_damos_esz", "trace_damos_stat", "trace_intervals_tune"} <= names
    assert "trace_region_aggregated" not in names      # not enabled by default
    check_side({n: read_side_table(out, n) for n in names}, g)


def _before_apply_trace(style, ctx_scheme=((0, 2), (1, 0))):
    """damos_before_apply lines (one snapshot of 3 regions per (ctx, scheme)) and the
    expected side rows."""
    lines, rows = [], []
    ts = 50.0
    for ctx, scheme in ctx_scheme:
        ts += 0.1
        for i in range(3):
            s, e = 4096 * (i + 1), 4096 * (i + 2)
            lines.append(style_line(style, ts, "damos_before_apply", kprintf(
                FMT_BEFORE_APPLY, ctx, scheme, 7, 3, s, e, i, 10 + i)))
            rows.append((ts_ns(ts), ctx, scheme, 7, 3, s, e, i, 10 + i))
    return lines, rows


BEFORE_APPLY_COLS = ("time_ns", "ctx_idx", "scheme_idx", "target_idx", "nr_regions", "start",
                     "end", "nr_accesses", "age")


@pytest.mark.parametrize("style", STYLES)
def test_damos_before_apply_keeps_ctx_and_scheme(style, engine):
    lines, rows = _before_apply_trace(style)
    text = ("\n".join(lines) + "\n").encode()
    p, chunks = parse_all(text, engine)
    assert sum(c.nr_snapshots for _, c in chunks) == 2      # the snapshots, as before
    assert rows_of(p.take_side_rows(), "trace_damos_before_apply", BEFORE_APPLY_COLS) == rows


def test_damos_before_apply_with_a_garbled_scheme_field(engine):
    lines, rows = _before_apply_trace("perf_script")
    lines[1] = lines[1].replace("scheme_idx=2", "scheme_idx=2x")
    text = ("\n".join(lines) + "\n").encode()
    with pytest.raises(RecordFormatError, match="scheme_idx") as ei:
        parse_all(text, engine)
    assert ei.value.line == 2
    p, chunks = parse_all(text, engine, lenient=True)
    # the region fields were fine: the snapshot stays; the side row of the line is lost
    assert sum(c.nr_snapshots for _, c in chunks) == 2
    assert p.state.damaged_lines == 1 and p.state.first_damage == 2
    assert rows_of(p.take_side_rows(), "trace_damos_before_apply",
                   BEFORE_APPLY_COLS) == rows[:1] + rows[2:]


@pytest.mark.parametrize("side_first", [True, False])
def test_strict_errors_come_in_line_order(side_first, engine):
    agg = [style_line("trace_pipe", 10.0, "damon_aggregated",
                      kprintf(FMT_AGGREGATED, 0, 3, 4096 * i, 4096 * (i + 1), 1, 1))
           for i in range(1, 4)]
    bad_side = style_line("trace_pipe", 10.0, "damos_esz", "ctx_idx=0 scheme_idx=0 esz=z")
    # a snapshot of 3 regions cut after 2 lines by one of nr_regions=2: a grouping error
    bad_group = style_line("trace_pipe", 10.0, "damon_aggregated",
                           kprintf(FMT_AGGREGATED, 0, 2, 1 << 20, 2 << 20, 1, 1))
    if side_first:
        lines = [agg[0], bad_side, agg[1], bad_group]
        want, what = 2, "esz"
    else:
        lines = [agg[0], agg[1], bad_group, bad_side]
        want, what = 3, "incomplete snapshot"
    with pytest.raises(RecordFormatError, match=what) as ei:
        parse_all(("\n".join(lines) + "\n").encode(), engine)
    assert ei.value.line == want


@pytest.mark.parametrize("variant", [
    ("scheme_idx=2", "scheme_idx=4294967296"),      # out of %u: error
    ("scheme_idx=2", "scheme_idx=4294967295"),      # the largest %u: kept
    (": 1 11", ": 1 None"),                          # age written None (damo): -1
    (": 1 11", ": -1 11"),                           # a negative %u: error
    ("nr_regions=3", "nr_regions=3"),                # unchanged
])
@pytest.mark.parametrize("lenient", [False, True])
def test_damos_before_apply_engines_agree_on_odd_values(variant, lenient):
    from damo_pipe.formats import _trace_kernels as tk  # noqa: F401 - the compiled engine
    lines, _ = _before_apply_trace("trace_pipe")
    lines[1] = lines[1].replace(*variant)
    text = ("\n".join(lines) + "\n").encode()
    out = {}
    for engine in ("python", "cython"):
        try:
            p, chunks = parse_all(text, engine, lenient=lenient)
            out[engine] = (repr(p.take_side_rows()), p.state.damaged_lines,
                           [c.regions.age.tolist() for _, c in chunks])
        except RecordFormatError as e:
            out[engine] = ("error", str(e), e.line)
    assert out["python"] == out["cython"]


def test_no_record_but_unknown_damon_lines_is_one_error(engine, caplog):
    text = (style_line("perf_script", 1.0, "damon_aggregatedX", "target_id=0") + "\n").encode()
    with caplog.at_level(logging.WARNING):
        with pytest.raises(RecordFormatError, match="not a DAMON record.*1 line of DAMON "
                                                    "trace events .* not read"):
            parse_trace_bytes(text, engine=engine)
    assert not [r for r in caplog.records if "does not know" in r.getMessage()]

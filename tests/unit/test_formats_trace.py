"""Trace text readers (perf script, trace-cmd report, trace_pipe), both engines.

Expected values are computed in the test from FORMATS.md §4 (``int(float(ts) * 1e9)``,
mean-length first start), never taken from the code under test.
"""
import random

import numpy as np
import pytest

from damo_pipe.errors import RecordFormatError
from damo_pipe.formats import detect_format, read_records
from damo_pipe.formats.trace_text import TraceStreamParser, parse_trace_bytes


PERF = "       kdamond.0  4452 [001] {ts}: damon:damon_aggregated: target_id={t} nr_regions={n} {s}-{e}: {a}{age}\n"
TCMD = "       kdamond.0-4452  [001] .....  {ts}: damon_aggregated:     target_id={t} nr_regions={n} {s}-{e}: {a}{age}\n"
TCMD_NOLAT = "       kdamond.0-4452  [001] {ts}: damon_aggregated: target_id={t} nr_regions={n} {s}-{e}: {a}{age}\n"
PIPE = "       kdamond.0-207     [000] .....    {ts}: damon_aggregated: target_id={t} nr_regions={n} {s}-{e}: {a}{age}\n"
DAMOS = "       kdamond.0 47293 [000] {ts}: damon:damos_before_apply: ctx_idx=0 scheme_idx=1 target_idx={t} nr_regions={n} {s}-{e}: {a}{age}\n"


def lines(fmt, snaps, tid=0, with_age=True):
    """snaps: list of (ts string, [(s, e, a, age)])"""
    out = ""
    for ts, regions in snaps:
        for s, e, a, age in regions:
            out += fmt.format(ts=ts, t=tid, n=len(regions), s=s, e=e, a=a,
                              age=(" %s" % age) if with_age else "")
    return out


SNAPS = [
    ("1000.100140", [(4096, 8192, 0, 4), (8192, 16384, 19, 3)]),
    ("1000.200227", [(4096, 8192, 1, 5), (8192, 16384, 0, 0)]),
    ("1000.300999", [(4096, 12288, 6, 1), (12288, 16384, 5, 2)]),
]


def ns(ts):
    return int(float(ts) * 1e9)


def check_sample(r, with_age=True):
    ends = [ns(ts) for ts, _ in SNAPS]
    assert r.snapshots.end_ns.tolist() == ends
    span = float(ends[-1] - ends[0]) / 2
    assert r.first_start_ns == ends[0] - span
    assert r.snapshots.start_ns.tolist() == [int(ends[0] - span), ends[0], ends[1]]
    assert r.regions.nr_accesses.tolist() == [a for _, rs in SNAPS for _, _, a, _ in rs]
    ages = [g for _, rs in SNAPS for _, _, _, g in rs] if with_age else [-1] * 6
    assert r.regions.age.tolist() == ages
    assert r.snapshots.total_bytes.tolist() == [12288] * 3
    assert r.intervals is None


@pytest.mark.parametrize("fmt", [PERF, TCMD, TCMD_NOLAT, PIPE, DAMOS])
def test_layouts(engine, fmt):
    recs = parse_trace_bytes(lines(fmt, SNAPS, tid=3).encode(), engine=engine)
    assert len(recs) == 1 and recs[0].target_id == 3
    check_sample(recs[0])


def test_no_age(engine):
    recs = parse_trace_bytes(lines(PERF, SNAPS, with_age=False).encode(), engine=engine)
    check_sample(recs[0], with_age=False)


def test_none_age_and_cpu_empty_and_headers(engine):
    text = "cpus=2\nversion = 6\nCPU 1 is empty\nCPU 0 is empty\n" + lines(PERF, SNAPS)
    text = text.replace(": 19 3\n", ": 19 None\n")
    text += "       kdamond.0  4452 [001] 1000.400000: damon:damon_monitor_intervals_tune: sample_us=5000\n"
    text += "       kdamond.0  4452 [001] 1000.400001: sched:sched_switch: a b c d e\n"
    r = parse_trace_bytes(text.encode(), engine=engine)[0]
    assert r.regions.age.tolist()[:2] == [4, -1]
    assert r.nr_snapshots == 3
    assert np.isnan(r.snapshots.sample_interval_us).all()


def test_truncation_of_timestamps(engine):
    # values whose float*1e9 falls below the integer (FORMATS.md §4 / Q8)
    stamps = ["%d.%06d" % (1000 + i, (i * 7919) % 1000000) for i in range(200)]
    text = "".join(PERF.format(ts=ts, t=0, n=1, s=0, e=4096, a=1, age=" 1") for ts in stamps)
    r = parse_trace_bytes(text.encode(), engine=engine)[0]
    want = [int(float(ts) * 1e9) for ts in stamps]
    assert r.snapshots.end_ns.tolist() == want
    assert any(w % 1000 for w in want)  # the quirk is exercised


def test_interleaved_targets_grouped_per_target(engine):
    a = [(10, 20, 1, 1), (20, 30, 2, 2)]
    b = [(100, 200, 3, 3), (200, 300, 4, 4)]
    text = ""
    for ts in ("5.000001", "5.100001"):
        for i in range(2):
            text += PERF.format(ts=ts, t=1, n=2, s=a[i][0], e=a[i][1], a=a[i][2], age=" 1")
            text += PERF.format(ts=ts, t=2, n=2, s=b[i][0], e=b[i][1], a=b[i][2], age=" 1")
    recs = parse_trace_bytes(text.encode(), engine=engine)
    assert [r.target_id for r in recs] == [1, 2]
    for r, regs in zip(recs, (a, b)):
        assert r.nr_snapshots == 2
        assert r.regions.start.tolist() == [x[0] for x in regs] * 2


def test_fake_snapshot_removed(engine):
    text = lines(PERF, SNAPS[:1]) + PERF.format(ts="1000.200140", t=0, n=1, s=0, e=0, a=-1, age=" -1")
    r = parse_trace_bytes(text.encode(), engine=engine)[0]
    assert r.nr_snapshots == 1
    end = ns("1000.100140")
    assert r.first_start_ns == end - float(ns("1000.200140") - end)
    assert r.nr_regions == 2


def test_deduction_for_every_record(engine):
    """damo stops at the first record with < 2 snapshots (break); we do not."""
    text = PERF.format(ts="1.000000", t=1, n=1, s=0, e=4096, a=1, age=" 1")
    text += lines(PERF, SNAPS, tid=2)
    recs = parse_trace_bytes(text.encode(), engine=engine)
    assert recs[0].first_start_ns is None
    check_sample(recs[1])


@pytest.mark.parametrize("bad,what", [
    ("target_id=x nr_regions=1 0-4096: 1 1", "target"),
    ("target_id=0 nr_regions=1 04096: 1 1", "range"),
    ("target_id=0 nr_regions=1 a-4096: 1 1", "start"),
    ("target_id=0 nr_regions=1 0-4096: z 1", "nr_accesses"),
    ("target_id=0 nr_regions=1 0-4096: 1 q", "age"),
    ("target_id=0 nr_regions=1 0-99999999999999999999: 1 1", "end"),
])
def test_bad_values(engine, bad, what):
    text = lines(PERF, SNAPS) + "       kdamond.0  4452 [001] 1001.000000: damon:damon_aggregated: %s\n" % bad
    with pytest.raises(RecordFormatError) as ei:
        parse_trace_bytes(text.encode(), engine=engine, path="f.txt")
    assert ei.value.line == 7
    assert "f.txt" in str(ei.value)


def test_bad_timestamp_and_unsorted(engine):
    text = PERF.format(ts="1x.5", t=0, n=1, s=0, e=1, a=1, age=" 1")
    with pytest.raises(RecordFormatError, match="timestamp") as ei:
        parse_trace_bytes(text.encode(), engine=engine)
    assert ei.value.line == 1
    text = lines(PERF, SNAPS) + PERF.format(ts="999.0", t=0, n=1, s=0, e=1, a=1, age=" 1")
    with pytest.raises(RecordFormatError, match="time-sorted") as ei:
        parse_trace_bytes(text.encode(), engine=engine)
    assert ei.value.line == 7


def test_stream_parser_random_splits(engine):
    rng = random.Random(5)
    text = ""
    for k in range(40):
        n = rng.randint(1, 6)
        regs = [(i * 4096, (i + 1) * 4096, rng.randint(0, 20), rng.randint(0, 9)) for i in range(n)]
        text += lines(PERF, [("%d.%06d" % (2000 + k, rng.randint(0, 999999)), regs)], tid=k % 3)
    data = text.encode()
    whole = parse_trace_bytes(data, engine=engine)
    p = TraceStreamParser(engine=engine)
    got = {}
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 300)
        for key, ch in p.feed(data[pos:pos + step]):
            got.setdefault(key, []).append(ch)
        pos += step
    for key, ch in p.finish():
        got.setdefault(key, []).append(ch)
    assert [m.target_id for m in p.records] == [r.target_id for r in whole]
    for key, rec in enumerate(whole):
        ends = np.concatenate([c.snapshots.end_ns for c in got[key]])
        assert ends.tolist() == rec.snapshots.end_ns.tolist()
        starts = np.concatenate([c.snapshots.start_ns for c in got[key]])
        assert starts[1:].tolist() == rec.snapshots.start_ns[1:].tolist()
        assert p.first_starts.get(key) == rec.first_start_ns
        s = np.concatenate([c.regions.nr_accesses for c in got[key]])
        assert s.tolist() == rec.regions.nr_accesses.tolist()


def test_detect_text(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text(lines(TCMD, SNAPS))
    assert detect_format(p) == "perf_script"
    assert read_records(p)[0].nr_snapshots == 3


def test_file_windows(tmp_path, engine, monkeypatch):
    """mmap windows smaller than a line still parse (window grows)."""
    from damo_pipe.formats import trace_text
    p = tmp_path / "t.txt"
    p.write_text(lines(PERF, SNAPS) * 1)
    monkeypatch.setattr(trace_text, "READ_CHUNK", 50)
    with open(p, "rb") as f:
        gen = trace_text.iter_trace_chunks(f, path=p, engine=engine, read_size=50)
        _, parser = next(gen)
        chunks = list(gen)
    assert sum(c.nr_snapshots for _, c in chunks) == 3

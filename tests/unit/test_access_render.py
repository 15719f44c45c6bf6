"""`report access` template renderer on small synthetic records; expected texts are worked
out by hand from SEMANTICS-ACCESS.md (§2 expansion, §3 selection, §10.1 sorting, AQ1/AQ5/AQ9)."""
from __future__ import annotations

import io

import numpy as np
import pytest

from damo_pipe.analyze.access import (AccessCrash, AccessOptions, render_raw_form,
                                      render_report)
from damo_pipe.model import Intervals, IntervalsGoal, Record, RecordBuilder, RegionColumns

KiB = 1024
MiB = 1024 * KiB


def make_record(snapshots, target_id=0, filters=None):
    """snapshots: list of (start_ns, end_ns, [(start, end, samples, age), ...])."""
    meta = Record(target_id=target_id, kdamond_idx=0, context_idx=0,
                  intervals=Intervals(5000, 100000, 1000000, IntervalsGoal(0.0, 0, 0, 0)),
                  scheme_filters=filters or [])
    b = RecordBuilder(meta)
    for s, e, regions in snapshots:
        cols = RegionColumns(np.array([r[0] for r in regions], np.uint64),
                             np.array([r[1] for r in regions], np.uint64),
                             np.array([r[2] for r in regions], np.int64),
                             np.array([r[3] for r in regions], np.int64))
        b.add_snapshot(s, e, cols)
    return b.build()


# samples out of 20 per aggregation (100 ms / 5 ms): percent = samples*5
REGIONS = [(0, 4 * MiB, 4, 3), (4 * MiB, 5 * MiB, 0, 10), (5 * MiB, 7 * MiB, 4, 1)]


def rec1():
    return make_record([(10 ** 9, 10 ** 9 + 10 ** 8, REGIONS)])


def opts(engine, **kw):
    if engine == "cython":
        pytest.importorskip("damo_pipe.analyze._access_kernels")
    return AccessOptions(engine=engine, **kw)


def test_unknown_keyword_literal_and_backslash_n(engine):
    o = opts(engine, format_ops=[["set", "snapshot_head", r"<intervals>\nN=<number of regions>"],
                                 ["set", "region", ""], ["set", "snapshot_tail", ""],
                                 ["set", "record_tail", ""]])
    assert render_report([rec1()], o) == "<intervals>\nN=3"


def test_min_chars_defaults_win_aq5(engine):
    o = opts(engine, min_chars_for=[("<size>", 20), ("<temperature>", 15)],
             format_ops=[["set", "snapshot_head", ""], ["set", "region", "<size>|<temperature>|"],
                         ["set", "snapshot_tail", ""], ["set", "record_tail", ""]])
    lines = render_report([rec1()], o).split("\n")
    # <size> keeps its default width 11; <temperature> gets the new 15
    # temperatures: 20*100 + 300000*100 ; -(1000000*100) ; 20*100 + 100000*100
    assert lines == ["4.000 MiB  |30,002,000     |",
                     "1024.000 KiB|-100,000,000   |",
                     "2.000 MiB  |10,002,000     |"]


def test_sort_descending_keeps_ties_in_previous_order(engine):
    regions = [(0, 10, 4, 1), (10, 30, 0, 1), (30, 50, 8, 1), (50, 60, 0, 1)]
    rec = make_record([(0, 10 ** 8, regions)])
    o = opts(engine, sort_by=["size"], sort_dsc=["size"],
             format_ops=[["set", "snapshot_head", ""], ["set", "region", "<index>:<start address>"],
                         ["set", "snapshot_tail", ""], ["set", "record_tail", ""]])
    out = render_report([rec], o).split("\n")
    # sizes 10, 20, 20, 10 -> descending, ties (20: 10 then 30; 10: 0 then 50) keep order
    assert out == ["0  :10 B        ", "1  :30 B        ", "2  :0 B         ", "3  :50 B        "]


def test_two_keys_last_is_primary(engine):
    regions = [(0, 10, 4, 1), (10, 30, 0, 1), (30, 40, 8, 1), (40, 60, 4, 1)]
    rec = make_record([(0, 10 ** 8, regions)])
    o = opts(engine, sort_by=["size", "access_rate"],
             format_ops=[["set", "snapshot_head", ""], ["set", "region", "<start address>"],
                         ["set", "snapshot_tail", ""], ["set", "record_tail", ""]])
    out = [x.strip() for x in render_report([rec], o).split("\n")]
    # access rate asc primary (0, 20, 20, 40), size asc secondary among equal rates
    assert out == ["10 B", "0 B", "40 B", "30 B"]


def test_total_sz_only_has_no_blank_lines(engine):
    rec = make_record([(0, 10 ** 8, REGIONS), (10 ** 8, 2 * 10 ** 8, REGIONS[:1])])
    out = render_report([rec], opts(engine, total_sz_only=True))
    assert out == "7.000 MiB\n4.000 MiB\nrecord DAMON intervals: sample 5 ms, aggr 100 ms"


def test_default_detailed_layout(engine):
    out = render_report([rec1()], opts(engine)).split("\n")
    assert out[0].startswith("heatmap: ")
    assert out[1].startswith("# min/max temperatures: -100,000,000, 30,002,000, column size: ")
    assert out[2] == "intervals: sample 5 ms aggr 100 ms (max access hz 200)"
    assert out[3] == "0   addr 0 B          size 4.000 MiB   access 40 hz  age 300 ms       "
    assert out[4] == "1   addr 4.000 MiB    size 1024.000 KiB access 0 hz   age 1 s          "
    # bandwidth: (4 MiB*4 + 2 MiB*4) / 0.1 s = 240 MiB/s
    assert out[6] == "memory bw estimate: 240.000 MiB per second"
    assert out[7] == "total size: 7.000 MiB"
    assert out[8] == "record DAMON intervals: sample 5 ms, aggr 100 ms"


def test_df_percentiles_without_passed_bytes_crash_aq9(engine):
    o = opts(engine, format_ops=[["set", "snapshot_head", "<df-passed recency percentiles>"],
                                 ["set", "region", ""]])
    with pytest.raises(AccessCrash, match="ZeroDivisionError"):
        render_report([rec1()], o)


def test_recency_percentiles_by_hand(engine):
    o = opts(engine, style="recency-percentiles", percentiles_range=[0, 101, 50])
    out = render_report([rec1()], o).split("\n")
    # idle times: accessed regions 0 (6 MiB of 7 MiB), the idle 1 MiB region
    # 1 s + 100 ms = 1.100 s; bars: step = 1,100,000 / 20
    assert out[:5] == ["# total recency percentiles",
                       "<percentile> <idle time>",
                       "  0     0 ns  |                    |",
                       " 50     0 ns  |                    |",
                       "100  1.100 s  |********************|"]


def test_raw_form_layout():
    text = render_raw_form([rec1()])
    lines = text.split("\n")
    assert lines[0] == "base_time_absolute: 1 s"
    assert lines[1] == "data source: unknown"
    assert lines[3] == "monitoring_start:                0 ns"
    assert lines[5] == "monitoring_duration:           100 ms"
    assert lines[9] == "000000000000-000000400000 (   4.000 MiB)           4     3"
    assert text.endswith("\n")


def test_pager_newline_rule_aq1(monkeypatch):
    from damo_pipe.analyze.commands import report_access
    buf = io.StringIO()
    monkeypatch.setattr(report_access.sys, "stdout", buf)
    report_access._pager_print("\n".join(["x"] * 51))      # 50 newlines: print()
    assert buf.getvalue().endswith("x\n")
    buf.seek(0)
    buf.truncate()
    report_access._pager_print("\n".join(["x"] * 52))      # 51 newlines: less, verbatim
    assert buf.getvalue().endswith("x") and buf.getvalue().count("\n") == 51


def test_cli_errors(tmp_path, capsys, monkeypatch):
    from damo_pipe.analyze.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["report", "access", "--input", "missing.data"]) == 1
    out, err = capsys.readouterr()     # a missing file: the one wording of every command
    assert out == "" and err == "damo-analyze: error: missing.data: no such file\n"
    assert main(["report", "access", "--input", "."]) == 1     # not a file: damo's words
    assert capsys.readouterr().out == "--input handling failed (unsupported input)\n"
    rc = main(["report", "access"])
    err = capsys.readouterr().err
    assert rc != 0 and "damo-collect snapshot" in err and err.count("\n") == 1
    assert main(["report", "access", "--ls_record_format_keywords"]) == 0
    assert capsys.readouterr().out == \
        "use 'damo help access_format_options record_format_keywords' instead\n"


def test_cli_format_errors(tmp_path, capsys, monkeypatch):
    from damo_pipe.analyze.cli import main
    from damo_pipe.formats.writers import write_records
    path = tmp_path / "r.json"
    write_records([rec1()], str(path), "json")
    assert main(["report", "access", "--input", str(path), "--format", "set", "regionx", "a"]) == 1
    assert capsys.readouterr().out == \
        "format setting failed (wrong --format target area (regionx))\n"
    assert main(["report", "access", "--input", str(path), "--format", "put", "region", "a"]) == 1
    assert capsys.readouterr().out == "format setting failed (wrong --format action (put))\n"
    assert main(["report", "access", "--input", str(path), "--total_sz_only"]) == 0
    assert capsys.readouterr().out == \
        "7.000 MiB\nrecord DAMON intervals: sample 5 ms, aggr 100 ms\n"


@pytest.mark.parametrize("style", ["detailed", "temperature-percentiles", "recency-percentiles",
                                   "temperature-sz-hist", "recency-sz-hist", "hot"])
def test_cython_engine_does_not_fall_back(style, monkeypatch):
    """With ordinary values every aggregation runs in the Cython kernels."""
    pytest.importorskip("damo_pipe.analyze._access_kernels")
    from damo_pipe.analyze import access_kernels_py

    def boom(*a, **k):
        raise AssertionError("pure-Python twin used")
    for name in ("temperatures", "idle_times", "weighted_sum", "percentile_walk",
                 "histogram_rows", "snapshot_heatmap_pixels"):
        monkeypatch.setattr(access_kernels_py, name, boom)
    other = [(s, e, 20 - n, a + 2) for s, e, n, a in REGIONS]
    rec = make_record([(0, 10 ** 8, REGIONS), (10 ** 8, 2 * 10 ** 8, other)])
    text = render_report([rec], AccessOptions(engine="cython", style=style))
    assert "record DAMON intervals" in text


def test_numpy_sort_equals_python_sorted():
    """The argsort-based region order equals damo's successive sorted() calls."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from damo_pipe.analyze.access import Renderer

    keys = st.lists(st.sampled_from(["address", "access_rate", "age", "size", "temperature"]),
                    min_size=1, max_size=3)

    @settings(max_examples=80, deadline=None)
    @given(regs=st.lists(st.tuples(st.integers(1, 5), st.integers(0, 3), st.integers(0, 3)),
                         min_size=1, max_size=25),
           by=keys, dsc=st.lists(st.sampled_from(["address", "age", "size", "temperature",
                                                   "access_rate", "all"]), max_size=2))
    def check(regs, by, dsc):
        pos = 0
        rows = []
        for size, samples, age in regs:
            rows.append((pos, pos + size * 4096, samples, age))
            pos += size * 4096
        rec = make_record([(0, 10 ** 8, rows)])
        fast = Renderer([rec], AccessOptions(engine="auto", sort_by=by, sort_dsc=dsc))
        sv = fast.views[0].snapshots[0]
        assert fast.regions.sorted_regions(sv) == fast.regions.sorted_regions_py(sv)
    check()


def test_derive_percent_usec_fills_only_nulls():
    """§1 step 2: percent/usec are derived, but values a reader kept from the file win."""
    from types import SimpleNamespace
    from damo_pipe.analyze.access import derive_percent_usec
    iv = Intervals(100000, 2000000, 1000000, IntervalsGoal(400.0, 3, 5000, 10000000))
    regs = SimpleNamespace(nr_accesses=np.array([10, 7, 0], np.int64),
                           age=np.array([-1, 4, 2], np.int64),
                           age_usec=np.array([19000000.0, np.nan, np.nan]))
    pct, usec = derive_percent_usec(SimpleNamespace(intervals=iv, regions=regs))
    # max samples = 2 s / 100 ms = 20 -> percent = int(samples * 100.0 / 20)
    assert pct.tolist() == [50, 35, 0]
    assert usec.tolist() == [19000000, 4 * 2000000, 2 * 2000000]
    regs = SimpleNamespace(nr_accesses=np.array([3], np.int64), age=np.array([7], np.int64))
    iv = Intervals(5000, 100000, 1000000, None)
    pct, usec = derive_percent_usec(SimpleNamespace(intervals=iv, regions=regs))
    assert pct.tolist() == [15] and usec.tolist() == [700000]


# region templates: every value keyword; literal only; repeats; and two that damo's
# sequential replacement must expand region by region (a backslash, an unknown keyword)
BLOCK_TEMPLATES = [
    "<index> <start address> <end address> <size> <access rate> <access hz> <age> "
    "<temperature> <filters passed bytes>",
    "no keyword here",
    "<age>|<age>|<access hz>|<index>",
    r"<size>\n<age>",
    "<nope> <size>",
]


@pytest.mark.parametrize("eng", ["cython", "python"])
def test_region_block_equals_sequential_expansion(eng):
    """RegionLister.block (column-wise, memoised across snapshots, joined at once) gives
    damo's region lines: each region's template expanded keyword by keyword (§2.1) in
    sorted() order, joined with newlines; None for a snapshot without regions. Snapshots
    of different lengths under an intervals goal have different aggregation intervals."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from damo_pipe.analyze.access import Renderer
    from damo_pipe.analyze.access.region_list import REGION_TABLE
    if eng == "cython":
        pytest.importorskip("damo_pipe.analyze._access_kernels")

    region = st.tuples(st.integers(1, 3000), st.integers(0, 3), st.integers(0, 20),
                       st.integers(0, 40), st.integers(0, 2))
    snaps = st.lists(st.tuples(st.sampled_from([100, 100, 150, 250]),
                               st.lists(region, max_size=10)), min_size=1, max_size=4)
    keys = st.lists(st.sampled_from(["address", "access_rate", "age", "size", "temperature"]),
                    min_size=1, max_size=2)

    @settings(max_examples=60, deadline=None)
    @given(snaps=snaps, raw=st.booleans(), goal=st.booleans(), by=keys,
           dsc=st.lists(st.sampled_from(["age", "size", "all"]), max_size=1),
           wide=st.booleans())
    def check(snaps, raw, goal, by, dsc, wide):
        meta = Record(target_id=0, kdamond_idx=0, context_idx=0,
                      intervals=Intervals(5000, 100000, 1000000,
                                          IntervalsGoal(4.0, 3 if goal else 0, 0, 0)),
                      scheme_filters=[])
        b = RecordBuilder(meta)
        t = 0
        for dur_ms, regs in snaps:
            pos, rows = 1 << 40, []
            for kib, gap, samples, age, passed in regs:
                pos += gap * 4096
                rows.append((pos, pos + kib * 1024, samples, age, kib * 512 * passed))
                pos += kib * 1024
            cols = RegionColumns(np.array([r[0] for r in rows], np.uint64),
                                 np.array([r[1] for r in rows], np.uint64),
                                 np.array([r[2] for r in rows], np.int64),
                                 np.array([r[3] for r in rows], np.int64),
                                 np.array([r[4] for r in rows], np.uint64))
            b.add_snapshot(t, t + dur_ms * 10 ** 6, cols)
            t += dur_ms * 10 ** 6
        rec = b.build()
        wide_for = [("<temperature>", 70), ("<filters passed bytes>", 66)] if wide else []
        r = Renderer([rec], AccessOptions(engine=eng, raw=raw, sort_by=by, sort_dsc=dsc,
                                          min_chars_for=wide_for))
        for tpl in BLOCK_TEMPLATES:
            for sv in r.views[0].snapshots:
                order = r.regions.sorted_regions_py(sv)
                want = [r.expand(tpl, REGION_TABLE, (r, sv, ri, i)) for i, ri in enumerate(order)]
                assert r.regions.block(tpl, sv) == ("\n".join(want) if want else None)
    check()

"""Honest pictures and numbers (issue 14): properties of what the pictures and pages show,
not only that files exist. The records are built here, so every expected number is
known independently of the code under test."""
import json
import re

import numpy as np
import pytest

from damo_pipe.analyze import plots
from damo_pipe.analyze._chunks import RecordSource
from damo_pipe.analyze.cli import main
from damo_pipe.analyze.heatmap import compute_guides, compute_heatmaps
from damo_pipe.analyze.images import IMAGE_SCALE, IMAGE_SIZES, BatchOptions, write_images
from damo_pipe.analyze.summary import summarize_records
from damo_pipe.analyze.timebase import find_gaps, recording_origin, step_series
from damo_pipe.analyze.wss_timeline import timelines
from damo_pipe.archive import write_records
from damo_pipe.model import Intervals, Record, RecordBuilder, RegionColumns

T0 = 1_795_960_730_000_000_000          # a wall-clock start (ns)
AGGR = 100_000_000                      # 100 ms snapshots
BIG = (0x10000000, 0x10000000 + (64 << 20))          # 64 MiB, 5 samples/aggr over half
TINY = (0x7fff00000000, 0x7fff00000000 + (8 << 10))  # 8 KiB, 20 samples/aggr: dense
MISSING = {12, 13, 27}                  # snapshots not taken: three gaps (12-13 is one)


def busy_record(nr=40, missing=MISSING):
    """A big busy range (most total access) and a tiny dense corner (most access per
    byte) with unmapped space between them; the snapshots of ``missing`` are not taken
    (gaps); WSS of snapshot k: 32 MiB + 8 KiB, and 48 MiB + 8 KiB from k = 30 on."""
    meta = Record(target_id=7, kdamond_idx=0, context_idx=0, scheme_idx=0,
                  intervals=Intervals(5000, 100000, 1000000))
    b = RecordBuilder(meta)
    q = (BIG[1] - BIG[0]) // 4
    for k in range(nr):
        if k in missing:
            continue
        hot = 3 if k >= 30 else 2                # quarters of BIG accessed
        starts = [BIG[0] + i * q for i in range(4)] + [TINY[0]]
        ends = [BIG[0] + (i + 1) * q for i in range(4)] + [TINY[1]]
        acc = [5 if i < hot else 0 for i in range(4)] + [20]
        regs = RegionColumns(np.array(starts, np.uint64), np.array(ends, np.uint64),
                             np.array(acc, np.int64), np.full(5, 3, np.int64))
        b.add_snapshot(T0 + k * AGGR, T0 + (k + 1) * AGGR, regs)
    return b.build()


def expected_wss(k):
    return (32 << 20 if k < 30 else 48 << 20) + (8 << 10)


# -- time origin and gaps -------------------------------------------------------------
def test_gaps_are_found_and_break_the_lines():
    rec = busy_record()
    gaps = find_gaps(rec.snapshots.start_ns, rec.snapshots.end_ns)
    taken = [k for k in range(40) if k not in MISSING]
    # a gap before the snapshots taken after 11, 13 and 26: 12-13 missing is one gap
    assert [(taken[g.before - 1], taken[g.before]) for g in gaps] == [(11, 14), (26, 28)]
    assert [g.duration_ns for g in gaps] == [2 * AGGR, AGGR]
    x, y = step_series(rec.snapshots.start_ns, rec.snapshots.end_ns, np.arange(len(taken)),
                       gaps, T0)
    assert np.isnan(x).sum() == np.isnan(y).sum() == 2
    breaks = np.flatnonzero(np.isnan(x))
    # the line ends at the snapshot before the gap and starts again after it
    assert x[breaks[0] - 1] == pytest.approx(1.2) and x[breaks[0] + 1] == pytest.approx(1.4)
    assert x[breaks[1] - 1] == pytest.approx(2.7) and x[breaks[1] + 1] == pytest.approx(2.8)
    # no gap: contiguous snapshots join
    assert not find_gaps([0, 100, 200], [90, 190, 290])


def test_wss_over_time_covers_the_whole_recording():
    """damo's report wss skips 20 snapshots; the picture keeps all of them, on an x axis
    from the recording's start to its end, with the skipped part shaded on request."""
    rec = busy_record()
    src = RecordSource.of([rec])
    (tl,) = timelines(src, exclude_samples=20)
    taken = [k for k in range(40) if k not in MISSING]
    assert len(tl.wss_bytes) == len(taken)                     # not 40 - 20 - 3
    assert tl.wss_bytes.tolist() == [expected_wss(k) for k in taken]
    assert tl.skip_end_ns == T0 + (taken[19] + 1) * AGGR
    span = 40 * AGGR
    fig = plots.wss_timeline_figure([tl], origin_ns=T0, span_ns=span, mark_skipped=True)
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((0.0, span / 1e9))
    (line,) = ax.get_lines()
    x = line.get_xdata()
    assert np.nanmin(x) == pytest.approx(0.0) and np.nanmax(x) == pytest.approx(4.0)
    assert np.isnan(x).sum() == len(tl.gaps) == 2
    shaded = [p for p in ax.patches if p.get_width() > 0]
    assert len(shaded) == 1 and shaded[0].get_x() == pytest.approx(0.0)
    assert shaded[0].get_width() == pytest.approx((tl.skip_end_ns - T0) / 1e9)
    assert "first 20 snapshots" in " ".join(t.get_text() for t in ax.texts)
    plain = plots.wss_timeline_figure([tl], origin_ns=T0, span_ns=span).axes[0]
    assert not plain.patches and not plain.texts
    assert "from 2026-11-29 13:58:50" in plain.get_xlabel() and "UTC" in plain.get_xlabel()


# -- the heatmap picture's range and colours ------------------------------------------
def test_busiest_range_is_the_one_with_most_total_access():
    rec = busy_record()
    (guide,) = compute_guides([rec], with_heats=True)
    regs = guide.regions()
    assert [BIG[0], BIG[1]] in regs and [TINY[0], TINY[1]] in regs
    assert regs[guide.busiest_index()] == [BIG[0], BIG[1]]
    assert regs[guide.hottest_index()] == [TINY[0], TINY[1]]     # damo's: per byte
    (grid,) = compute_heatmaps([rec], resol=(20, 20), draw_range="busiest")
    assert (grid.a_start, grid.a_end) == BIG


def test_pictures_show_the_busiest_range_and_the_table_agrees(tmp_path):
    rec = busy_record()
    info = {}
    written = write_images([rec], str(tmp_path), BatchOptions(resol=(40, 40)), "t", info=info)
    assert set(written) == {"heatmap", "wss_dist", "wss_chron"}
    assert info["time_origin_ns"] == T0
    assert info["heatmap"]["address_range"] == list(BIG)
    assert info["heatmap"]["time_range_ns"] == [T0, T0 + 40 * AGGR]   # the whole recording
    summary = summarize_records([rec])
    hot = summary["targets"][0]["hottest_ranges"]
    assert BIG[0] <= hot[0]["start"] and hot[0]["end"] <= BIG[1]      # top row: in the picture
    # access x bytes x snapshots: quarters 0-1 of BIG, quarter 2 from snapshot 30, TINY
    q01, q2, tiny = 5 * (32 << 20) * 37, 5 * (16 << 20) * 10, 20 * (8 << 10) * 37
    assert (hot[0]["start"], hot[0]["end"]) == (BIG[0], BIG[0] + (32 << 20))
    assert hot[0]["access_share"] == pytest.approx(q01 / (q01 + q2 + tiny))
    assert [(r["start"], r["end"]) for r in hot] == [(hot[0]["start"], hot[0]["end"]), TINY]
    assert hot[0]["mean_access_hz"] == pytest.approx(hot[0]["mean_nr_accesses"] * 10)
    # every picture is drawn at its displayed size, with IMAGE_SCALE times the pixels
    from PIL import Image
    for kind, name in written.items():
        with Image.open(tmp_path / name) as im:
            assert im.size == tuple(IMAGE_SCALE * v for v in IMAGE_SIZES[kind])


def test_heatmap_colours_start_at_zero():
    heat = np.full((10, 10), 5.0)
    heat[0, 0] = 9.0
    heat[1, 1] = np.nan
    from damo_pipe.analyze.heatmap import HeatmapGrid
    grid = HeatmapGrid(heat=heat, t_start=T0 + AGGR, time_unit=AGGR, a_start=0x1000,
                       addr_unit=4096, unit="hz", t_end=T0 + 11 * AGGR, a_end=0x1000 + 40960)
    fig = plots.heatmap_figure(grid, origin_ns=T0)
    (im,) = fig.axes[0].get_images()
    assert (im.norm.vmin, im.norm.vmax) == (0.0, 9.0)
    assert fig.axes[0].get_xlim() == pytest.approx((0.1, 1.1))     # seconds from the start
    assert "Hz" in fig.axes[1].get_ylabel() and "gray: no snapshot" in fig.axes[1].get_ylabel()
    im2 = plots.heatmap_figure(grid, origin_ns=T0, vmax=20.0).axes[0].get_images()[0]
    assert (im2.norm.vmin, im2.norm.vmax) == (0.0, 20.0)


def test_report_heatmap_images(tmp_path, monkeypatch, capsys):
    """Images default to the busiest range; --draw_range all prints its files and draws
    them on one colour scale; the text output keeps damo's hottest range."""
    path = tmp_path / "r.h5"
    write_records([busy_record()], path)
    drawn = []
    real = plots.save_heatmap_image

    def spy(grid, out, **kw):
        drawn.append((grid, out, kw))
        real(grid, out, **kw)
    monkeypatch.setattr(plots, "save_heatmap_image", spy)
    assert main(["report", "heatmap", "-i", str(path), "--output", str(tmp_path / "h.png"),
                 "--resol", "20", "20"]) == 0
    assert capsys.readouterr().out == ""
    (grid, out, kw), = drawn
    assert (grid.a_start, grid.a_end) == BIG and kw["origin_ns"] == T0
    drawn.clear()
    assert main(["report", "heatmap", "-i", str(path), "--output", str(tmp_path / "a.png"),
                 "--resol", "20", "20", "--draw_range", "all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(drawn) == 2
    for n, (grid, out, kw) in enumerate(drawn):
        assert lines[n] == "%s: address range [%#x, %#x)" % (out, grid.a_start, grid.a_end)
        assert (tmp_path / ("a.%d.png" % n)).is_file()
    assert drawn[0][2]["vmax"] == drawn[1][2]["vmax"] == max(np.nanmax(g.heat) for g, _, _ in drawn)
    assert main(["report", "heatmap", "-i", str(path), "--output", "raw", "--resol", "4", "4",
                 "--abs_addr"]) == 0
    raw = capsys.readouterr().out.split()
    assert int(raw[1]) == TINY[0]          # damo's hottest (per byte) for the text


# -- one time style in info and the pages ---------------------------------------------
def test_info_lists_gaps_in_seconds_from_the_start(tmp_path, capsys):
    path = tmp_path / "r.h5"
    write_records([busy_record()], path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "time: from 2026-11-29 13:58:50" in out
    assert "  time: 0.000 s to 4.000 s (4.000 s)" in out
    assert "  gaps: 2 (0.300 s in all;" in out
    assert "    before snapshot 12: 1.200 s to 1.400 s (0.200 s)" in out
    assert "    before snapshot 25: 2.700 s to 2.800 s (0.100 s)" in out
    assert not re.search(r"\d{12,} ?ns", out)                 # no raw ns times


def test_report_html_page(tmp_path):
    path = tmp_path / "r.h5"
    write_records([busy_record()], path)
    out = tmp_path / "r.html"
    assert main(["report", "html", str(path), "-o", str(out), "--resol", "40", "40",
                 "--mark_skipped"]) == 0
    page = out.read_text()
    assert not re.search(r"\d{12,}\)? ?ns", page)            # times in seconds, not raw ns
    assert "from 2026-11-29 13:58:50" in page and " UTC" in page
    table = page[page.index('<table class="hottest">'):]
    table = table[:table.index("</table>")]
    assert "<th>in the heatmap</th>" in table and "mean access frequency (Hz)" in table
    first = table[table.index("<tbody>"):].split("</tr>")[0]
    assert first.endswith("<td>yes</td>")
    assert "[%#x, %#x)" % BIG in page                         # the heatmap caption names it
    assert "shaded: the first 20" in page
    gaps = re.search(r"<td>2 \(0\.300 s in all\): at 1\.200 s for 0\.200 s", page)
    assert gaps
    summary = summarize_records([busy_record()])
    assert json.dumps(summary["targets"][0]["gaps"])


def test_recording_origin_is_the_earliest_start():
    a, b = busy_record(), busy_record()
    b.snapshots.start_ns -= 5 * AGGR
    assert recording_origin([a, b]) == T0 - 5 * AGGR
    assert recording_origin([Record(target_id=1)]) is None

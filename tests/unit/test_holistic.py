"""report holistic: heatmap axis lines, the WSS lists (both engines; independent
reference for records of at most 200 snapshots), the report layout and its errors."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from damo_pipe.analyze import holistic as H
from damo_pipe.analyze._chunks import RecordSource
from damo_pipe.analyze.cli import main
from damo_pipe.model import Record, RecordBuilder, RegionColumns
from tests.support.fake_perf import empty_perf_data

MiB = 1 << 20


def test_heatmap_axes_follow_the_integer_units():
    # 10 s over 5 rows: 2 s per row; 80 MiB + 79 bytes over 80 columns: 1 MiB per column
    text = H.heatmap_axes_text([5_000_000_000, 15_000_000_000], [16 * MiB, 96 * MiB + 79], (5, 80))
    assert text.split("\n") == [
        "# x-axis: space [16.000000 MiB, 96.000000 MiB) (80.000 MiB)",
        "# y-axis: time [5 s, 15 s) (10 s)",
        "# resolution: 80x5 (1024.000 KiB and 2 s for each character)",
    ]
    # a deduced (float) start: floor division keeps floats, as damo's does
    text = H.heatmap_axes_text([0.5, 10.5], [0, 800], (10, 80))
    assert text.split("\n")[1:] == ["# y-axis: time [0 ns, 10 ns) (10 ns)",
                                     "# resolution: 80x10 (10 B and 1 ns for each character)"]


def rand_record(rng, nsnap, tid=0):
    b = RecordBuilder(Record(target_id=tid))
    t = 1_000_000_000
    for _ in range(nsnap):
        n = rng.randrange(1, 6)
        pts = sorted(rng.sample(range(0, 500), 2 * n))
        b.add_snapshot(t, t + 100_000_000, RegionColumns(
            np.array([pts[2 * i] * 4096 for i in range(n)], np.uint64),
            np.array([pts[2 * i + 1] * 4096 for i in range(n)], np.uint64),
            np.array([rng.randrange(0, 3) for _ in range(n)], np.int64)))
        t += 100_000_000
    return b.build()


def reference_wss(records):
    """damo's get_wss_dists(acc_thres=1, sz_thres=1) on unadjusted records, collapsed."""
    per_tid = {}
    for rec in records:
        vals = []
        for k in range(rec.nr_snapshots):
            lo, hi = rec.region_bounds(k)
            vals.append(sum(int(rec.regions.end[r]) - int(rec.regions.start[r])
                            for r in range(lo, hi) if int(rec.regions.nr_accesses[r]) >= 1))
        per_tid[rec.target_id] = vals
    out = {}
    for key, order in (("size", sorted), ("time", list)):
        total = []
        for vals in per_tid.values():
            for i, v in enumerate(order(vals)):
                if i < len(total):
                    total[i] += v
                else:
                    total.append(v)
        out[key] = total
    return out["size"], out["time"]


def test_wss_of_small_records_is_per_snapshot(engine):
    rng = random.Random(1)
    recs = [rand_record(rng, 40), rand_record(rng, 70, tid=1), rand_record(rng, 30, tid=1)]
    src = RecordSource.from_records(recs)
    src.snapshots_per_chunk = 16
    assert H.holistic_wss(src, engine) == reference_wss(recs)


def test_wss_of_large_records_is_adjusted_like_report_wss(engine):
    from damo_pipe.analyze.wss import collapse, compute_wss
    rng = random.Random(2)
    recs = [rand_record(rng, 150), rand_record(rng, 60, tid=1)]     # 210 > 200
    by_size, in_time = H.holistic_wss(RecordSource.from_records(recs), engine)
    assert by_size == collapse(compute_wss(recs, 1, 1, 1, 20, "size", engine))
    assert in_time == collapse(compute_wss(recs, 1, 1, 1, 20, "time", engine))
    assert len(in_time) == 130                        # the first 20 of each record skipped
    assert by_size != reference_wss(recs)[0]


@pytest.fixture
def recording(tmp_path):
    """damon.data (json) with its .mem_footprint beside it, no profile."""
    from damo_pipe.formats import write_records
    rng = random.Random(4)
    data = tmp_path / "damon.data"
    write_records([rand_record(rng, 12)], str(data), "json")
    fps = [{"time": 1.0 + k, "footprints": [
        {"pid": 7, "footprint": {"size": 1000 + k, "resident": 100 * k, "shared": 0, "trs": 0,
                                 "lrs": 0, "drs": 0, "dt": 0}},
        {"pid": None, "footprint": {"total": 4 << 20, "free": (2 << 20) - k, "available": 0,
                                    "buffers": 0, "cached": 0}}]} for k in range(8)]
    (tmp_path / "damon.data.mem_footprint").write_text(json.dumps(fps))
    return data


def test_short_report_without_perf_leaves_hotspots_out(recording, tmp_path, capsys):
    assert main(["report", "holistic", "--access_pattern", str(recording),
                 "--perf_path", str(tmp_path / "no-perf")]) == 0
    out = capsys.readouterr().out.split("\n")
    assert out[0] == "# Heatmap" and out[1].startswith("# target 0, address range ")
    i = out.index("# Memory Footprints Distribution")
    assert out[i + 1].split() == ["percentile", "0", "25", "50", "75", "100"]
    assert [line.split()[0] for line in out[i + 2:i + 6]] == ["wss", "rss", "vsz", "sys_used"]
    # vsz of 8 snapshots: (1000..1007) pages; the 50th percentile is the 5th value
    assert out[i + 4].split()[5:7] == ["3.922", "MiB"]          # 1004 * 4096 bytes
    assert "# Hotspot functions" not in out and out[i + 6:] == [""]


def test_long_report_needs_perf_and_footprints(recording, tmp_path, capsys):
    assert main(["report", "holistic", "--access_pattern", str(recording), "--long",
                 "--perf_path", str(tmp_path / "no-perf")]) == 1
    cap = capsys.readouterr()
    assert cap.out == "" and len(cap.err.strip().splitlines()) == 1 and "perf not found" in cap.err
    assert main(["report", "holistic", "--access_pattern", str(recording),
                 "--footprints", str(tmp_path / "none")]) == 1
    cap = capsys.readouterr()
    assert cap.out == "" and "no such file" in cap.err
    bad = tmp_path / "bad.mem_footprint"
    bad.write_text("[1, 2")
    assert main(["report", "holistic", "--access_pattern", str(recording),
                 "--footprints", str(bad)]) == 1
    cap = capsys.readouterr()
    assert cap.out == "" and str(bad) in cap.err and len(cap.err.strip().splitlines()) == 1


def test_long_report_layout_with_a_fake_perf(recording, tmp_path, capsys):
    import stat
    perf = tmp_path / "perf"
    perf.write_text("#!/bin/sh\nfor i in $(seq 1 40); do echo \"line $i\"; done\n")
    perf.chmod(perf.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "damon.data.profile").write_bytes(empty_perf_data())
    assert main(["report", "holistic", "--access_pattern", str(recording), "--long",
                 "--perf_path", str(perf)]) == 0
    out = capsys.readouterr().out.split("\n")
    assert out[:3] == ["Overall recorded access pattern", "===============================", ""]
    assert out[3:5] == ["kdamond_idx: 0", "context_idx: 0"]
    assert out.count("Sorted by size") == 1 and out.count("Sorted by time") == 1
    assert out.count("# <percentile> <wss>") == 2 and out.count("# <percentile> <sys_used>") == 2
    h = out.index("Hotspot functions")
    assert out[h + 3:h + 33] == ["line %d" % i for i in range(1, 31)]
    assert out[h + 33] == "# you can get above via 'damo report profile'"
    assert main(["report", "holistic", "--access_pattern", str(recording),
                 "--perf_path", str(perf)]) == 0
    out = capsys.readouterr().out.split("\n")
    h = out.index("# Hotspot functions")
    assert out[h + 1:] == ["line %d" % i for i in range(6, 22)] + [""]

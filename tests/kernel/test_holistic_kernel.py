"""The holistic view on a real DAMON kernel (inside tools/damon-vm; skipped elsewhere):
``damo-collect record`` with the CPU profile and the memory footprints, then ``report
holistic`` on the archive, and ``damo-collect monitor --count 2``.

The workload's writing happens in named functions (tools/workload/damo_workload.c:
workload_hot_loop, workload_warm_loop); a system-wide ``perf record`` must show them as
hotspots, on the snapshots' clock (CLOCK_REALTIME). The recording test waits until
perf says it records (``-v`` logs it) before it counts snapshots; ``fast_perf_start``
(conftest) keeps perf's start-up under TCG short, a sampling rate of 500 Hz its load.
"""
import io
import json
import os
import signal
import time
from contextlib import redirect_stdout

import numpy as np
import pytest

from tests.kernel.conftest import committed_snapshots, diagnostics, nr_kdamonds, wait_for

pytestmark = pytest.mark.kernel

WORKLOAD_FUNCTIONS = ("workload_hot_loop", "workload_warm_loop")
PERF_RECORDING = "perf is recording the CPU profile"


def analyze(*args):
    """damo-analyze in this (warmed-up) process: (exit status, stdout)."""
    from damo_pipe.analyze.cli import main
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main([str(a) for a in args])
    return rc, buf.getvalue()


def test_record_with_profile_and_footprints_then_report_holistic(workload, collect_bg,
                                                                   tmp_path, fast_perf_start):
    from damo_pipe.archive import read_archive_records
    from damo_pipe.archive.profile import read_profile
    from damo_pipe.archive.sidetables import read_side_table

    w = workload("--mib", "64", "--mode", "hwc", "--duty", "50")
    out = str(tmp_path / "app.h5")
    p = collect_bg("record", "-v", "-o", out, "--target_pid", w.pid, "--flush_interval", "1",
                   "--do_record", "access", "cpu_profile", "mem_footprint",
                   "--cpu_profile_freq", "500")
    try:
        wait_for(lambda: PERF_RECORDING in p.stderr, 240, "perf to start recording", alive=p)
        t_ready = time.time_ns()
        n0 = committed_snapshots(out)
        wait_for(lambda: committed_snapshots(out) >= n0 + 15, 180,
                 "15 snapshots while perf records", alive=p)
    except BaseException:
        print(diagnostics(p, out, w))
        raise
    p.send_signal(signal.SIGTERM)
    rc = p.wait(240)
    print("damo-collect stderr:", p.stderr[-3000:])
    assert rc == 0, p.stderr
    assert nr_kdamonds() == 0
    assert [f for f in os.listdir(tmp_path) if ".profile" in f] == []   # stored, then removed

    samples, attrs = read_profile(out)
    assert attrs["perf_clock"] == "realtime" and attrs["scope"] == "system"
    assert samples is not None and len(samples) > 100, attrs
    mine = samples.take(samples.pid == w.pid)
    names = {samples.symbols[i] for i in np.unique(mine.symbol_id)}
    assert "workload_hot_loop" in names, sorted(names)[:50]
    # one clock: the workload's samples fall inside the snapshots' span, after perf
    # said it records
    snaps = read_archive_records(out)[0].snapshots
    t0, t1 = int(snaps.start_ns[0]), int(snaps.end_ns[-1])
    assert t0 <= int(mine.time_ns[0]) and int(mine.time_ns[-1]) <= t1 + 2 * 10 ** 9
    assert int(mine.time_ns[0]) >= t_ready - 10 * 10 ** 9
    fp = read_side_table(out, "footprints")
    assert set(fp["pid"].tolist()) == {w.pid} and int(fp["rss_bytes"].max()) >= 64 << 20

    rc, text = analyze("report", "holistic", "--access_pattern", out)
    print(text)
    assert rc == 0
    head, _, hot = text.partition("# Hotspot functions\n")
    assert head.startswith("# Heatmap\n# target 0, address range ")
    assert "# x-axis: space" in head and "# y-axis: time" in head
    assert "# Memory Footprints Distribution" in head
    for metric in ("wss", "rss", "vsz", "sys_used"):
        assert "\n%10s " % metric in head
    assert "workload_hot_loop" in hot, hot


def test_monitor_count_2_prints_two_holistic_views_and_leaves_no_kdamond(workload_bin,
                                                                         collect_bg,
                                                                         fast_perf_start):
    p = collect_bg("monitor", "-v", "--count", "2", "--delay", "8", "--cpu_profile_freq", "500",
                   "--",
                   workload_bin, "--mib", "64", "--mode", "hwc", "--duty", "50")
    try:
        rc = p.wait(420)
    except BaseException:
        print(diagnostics(p))
        raise
    out = p.stdout
    print(out)
    print("damo-collect stderr:", p.stderr[-3000:])
    assert rc == 0, p.stderr
    views = out.split("# Heatmap\n")[1:]
    assert len(views) == 2, out
    for v in views:
        assert v.startswith("# target 0, address range ")
        assert "# Memory Footprints Distribution" in v
        # each view covers its own 8 seconds
        assert "(8 s)" in v.split("# y-axis: time", 1)[1].split("\n")[0]
    assert any("workload_hot_loop" in v for v in views), out
    assert nr_kdamonds() == 0
    state = json.loads(open(os.environ["DAMO_PIPE_STATE_FILE"]).read())
    assert state["kdamonds"] == []
    assert not [d for d in os.listdir("/tmp") if d.startswith("damo-collect-monitor-")]

"""``damo-collect record --tracer tracefs|perf`` against a real DAMON kernel (only inside
tools/damon-vm; skipped elsewhere by tests/kernel/conftest.py):

    tools/damon-vm --timeout 900 -- .venv/bin/python -m pytest tests/kernel/test_tracer_kernel.py

One recording holds both the sysfs tried-regions snapshots and the tracepoint stream of
the same kdamond watching the same workload (hot first 10 %, warm next 30 %, cold rest),
so the two must agree: same target, regions covering the mapping, hot hottest. tracefs
must be exactly as before afterwards (also after SIGKILL + ``damo-collect stop``).
"""
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tests.kernel.conftest import area_heat, hwc_areas, nr_kdamonds, wait_for

pytestmark = pytest.mark.kernel

TRACEFS = Path("/sys/kernel/tracing")
TRACEFS_FILES = ["tracing_on", "buffer_size_kb", "current_tracer", "set_event",
                 "events/damon/damon_aggregated/enable", "events/damon/damos_before_apply/enable"]
#: trace timestamps are seconds since boot; sysfs snapshot times are wall-clock ns
TRACE_CLOCK_LIMIT_NS = 10 ** 15


def _err(p):
    """stderr text of a collect_bg process (Popen or the conftest's Forked)."""
    e = p.stderr
    return e if isinstance(e, str) else e.read()


def tracefs_state():
    out = {rel: (TRACEFS / rel).read_text() for rel in TRACEFS_FILES if (TRACEFS / rel).exists()}
    out["instances"] = sorted(os.listdir(TRACEFS / "instances"))
    return out


def read(path):
    from damo_pipe.archive import read_archive_records
    return read_archive_records(path)


def split_records(recs):
    """(sysfs records, trace records) by time base."""
    sysfs = [r for r in recs if r.nr_snapshots and r.snapshots.end_ns[0] >= TRACE_CLOCK_LIMIT_NS]
    trace = [r for r in recs if r.nr_snapshots and r.snapshots.end_ns[0] < TRACE_CLOCK_LIMIT_NS]
    return sysfs, trace


def covers(rec, lo, hi):
    return bool(((rec.regions.start < hi) & (rec.regions.end > lo)).any())


def hottest_in_hot(rec, lo, hi, hot_hi, skip_first=2):
    """Fraction of snapshots whose hottest region *inside the mapping* overlaps hot."""
    hits = n = 0
    for k in range(skip_first, rec.nr_snapshots):
        a, b = rec.region_bounds(k)
        s, e, nr = rec.regions.start[a:b], rec.regions.end[a:b], rec.regions.nr_accesses[a:b]
        inside = (s < hi) & (e > lo)
        if not inside.any() or nr[inside].max() == 0:
            continue
        i = int(np.argmax(np.where(inside, nr, -1)))
        n += 1
        hits += bool(s[i] < hot_hi and e[i] > lo)
    return hits / n if n else 0.0


def check_agree(recs, w):
    sysfs, trace = split_records(recs)
    assert len(sysfs) == 1 and len(trace) == 1, [(r.target_id, r.nr_snapshots) for r in recs]
    areas = hwc_areas(w.lo, w.hi)
    heats = {}
    for name, r in (("sysfs", sysfs[0]), ("trace", trace[0])):
        assert r.nr_snapshots >= 6, (name, r.nr_snapshots)
        assert covers(r, w.lo, w.hi), name
        h = area_heat([r], areas, skip_first=2)
        h["hottest_in_hot"] = hottest_in_hot(r, w.lo, w.hi, areas["hot"][1])
        heats[name] = h
        assert h["hot"] > h["warm"] and h["hot"] > h["cold"], (name, h)
        assert h["hottest_in_hot"] >= 0.6, (name, h)
    assert trace[0].target_id == 0
    # trace snapshots are one aggregation interval (100 ms) apart, give or take TCG
    gaps = np.diff(trace[0].snapshots.end_ns) / 1e6
    assert 50 < float(np.median(gaps)) < 400, float(np.median(gaps))
    assert trace[0].first_start_ns is not None
    return heats


def sysfs_snapshots(path):
    try:
        return sum(r.nr_snapshots for r in split_records(read(path))[0])
    except Exception:   # noqa: BLE001 - being created
        return 0


def trace_snapshots(path):
    try:
        return sum(r.nr_snapshots for r in split_records(read(path))[1])
    except Exception:   # noqa: BLE001 - being created
        return 0


@pytest.mark.parametrize("kind", ["tracefs", "perf"])
def test_record_with_tracer_agrees_with_sysfs_and_restores(kind, workload, collect_bg,
                                                          tmp_path, fast_perf_start):
    before = tracefs_state()
    w = workload("--mib", "100", "--mode", "hwc")
    out = str(tmp_path / (kind + ".h5"))
    args = ("record", "-v", "-o", out, "--target_pid", w.pid, "--tracer", kind,
            "--flush_interval", "2")
    p = collect_bg(*args)
    # perf record's start-up walks /lib/modules over 9p: 30-90 s under TCG before its
    # events are on (on hardware: well under a second). Wait for 8 sysfs snapshots, then
    # up to 240 s for 8 trace snapshots to show up live, then stop (stop drains
    # everything perf still holds; the checks below run on the drained archive)
    wait_for(lambda: sysfs_snapshots(out) >= 8, 120, "8 sysfs snapshots", alive=p)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 240 and trace_snapshots(out) < 8 and p.poll() is None:
        time.sleep(0.5)
    print(kind, "live trace snapshots before stop:", trace_snapshots(out),
          "after %.0f s" % (time.monotonic() - t0))
    assert p.poll() is None, _err(p)
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(150)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
    err = _err(p)
    print(kind, "damo-collect stderr:", err[-3000:])
    assert rc == 0, err
    assert nr_kdamonds() == 0
    heats = check_agree(read(out), w)
    print(kind, heats)
    assert tracefs_state() == before


def test_toplevel_mode_changes_and_restores_real_tracefs(workload, collect_bg, tmp_path):
    before = tracefs_state()
    w = workload("--mib", "64", "--mode", "hwc")
    out = str(tmp_path / "top.h5")
    p = collect_bg("record", "-o", out, "--target_pid", w.pid, "--tracer", "tracefs",
                   "--tracefs_mode", "toplevel", "--trace_buffer_kb", "2048",
                   "--flush_interval", "1")
    wait_for(lambda: trace_snapshots(out) >= 3, 200, "3 trace snapshots", alive=p)
    during = tracefs_state()
    assert during["events/damon/damon_aggregated/enable"].strip() == "1"
    assert during["tracing_on"].strip() == "1"
    assert 2048 <= int(during["buffer_size_kb"].split()[0]) < 2048 + 64   # page rounding
    assert "damon:damon_aggregated" in during["set_event"]
    p.send_signal(signal.SIGTERM)
    assert p.wait(120) == 0, _err(p)
    after = tracefs_state()
    # an unexpanded buffer ("7 (expanded: 1408)") comes back expanded, rounded to pages
    exp = lambda s: int(s.split("expanded: ")[-1].strip(" )\n"))   # noqa: E731
    assert abs(exp(after.pop("buffer_size_kb")) - exp(before.pop("buffer_size_kb"))) <= 8
    assert after == before


def test_sigkill_keeps_flushed_trace_and_stop_removes_instance(workload, collect_bg, collect,
                                                             tmp_path):
    before = tracefs_state()
    w = workload("--mib", "64", "--mode", "hwc")
    out = str(tmp_path / "kill.h5")
    p = collect_bg("record", "-o", out, "--target_pid", w.pid, "--tracer", "tracefs",
                   "--flush_interval", "1")
    seen = wait_for(lambda: trace_snapshots(out) >= 4 and trace_snapshots(out), 200,
                    "4 flushed trace snapshots", alive=p)
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    inst = TRACEFS / "instances" / ("damo-pipe-%d" % p.pid)
    assert inst.is_dir()
    assert (inst / "events/damon/damon_aggregated/enable").read_text().strip() == "1"
    _, trace = split_records(read(out))
    assert trace[0].nr_snapshots >= seen
    r = collect("stop")
    assert "removed stale tracing instance %s" % inst in r.stdout, r.stdout
    assert not inst.exists()
    assert nr_kdamonds() == 0
    assert tracefs_state() == before

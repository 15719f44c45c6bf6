"""Tracepoint streaming against a real DAMON kernel (runs only inside tools/damon-vm).

    tools/damon-vm -- .venv/bin/python -m pytest tests/kernel/test_tracer_kernel.py

One workload (100 MiB mapping: hot first 10 MiB, warm next 30 MiB, cold last 60 MiB)
monitored by one kdamond (vaddr + a ``stat`` scheme) is recorded three ways: sysfs
tried-regions snapshots, tracefs (``trace_pipe`` of a private instance) and perf. The
archives must agree: same target, regions covering the mapping, hot area hottest.
tracefs must be exactly as before afterwards.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

IN_VM = os.environ.get("DAMON_PIPE_IN_VM") == "1"
pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not IN_VM, reason="needs a real DAMON kernel: run inside tools/damon-vm"),
]

REPO = Path(__file__).resolve().parents[2]
ADMIN = Path("/sys/kernel/mm/damon/admin")
TRACEFS = "/sys/kernel/tracing"
MiB = 1 << 20

WORKLOAD = textwrap.dedent("""
    import mmap, sys, time
    MiB = 1 << 20
    m = mmap.mmap(-1, 100 * MiB)
    import ctypes
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    page = 4096
    for off in range(0, 100 * MiB, page):
        m[off] = 1
    print("ready %d %d" % (addr, addr + 100 * MiB), flush=True)
    hot = b"x" * (10 * MiB // page)
    warm = b"y" * (30 * MiB // page)
    r = 0
    while True:
        m[0:10 * MiB:page] = hot
        if r % 20 == 0:
            m[10 * MiB:40 * MiB:page] = warm
        r += 1
""")

TRACEFS_FILES = ["tracing_on", "buffer_size_kb", "current_tracer", "set_event",
                 "events/damon/damon_aggregated/enable", "events/damon/damos_before_apply/enable"]


def _w(path, value):
    Path(path).write_text(str(value))


def tracefs_state():
    out = {}
    for rel in TRACEFS_FILES:
        p = Path(TRACEFS) / rel
        if p.exists():
            out[rel] = p.read_text()
    out["instances"] = sorted(os.listdir(Path(TRACEFS) / "instances"))
    return out


@pytest.fixture(scope="module")
def workload():
    proc = subprocess.Popen([sys.executable, "-c", WORKLOAD], stdout=subprocess.PIPE)
    line = proc.stdout.readline().split()
    assert line and line[0] == b"ready"
    yield proc.pid, int(line[1]), int(line[2])
    proc.kill()
    proc.wait()


def sysfs_snapshot(k):
    """Regions (start, end, nr_accesses, age) of the stat scheme's tried regions."""
    _w(k / "state", "update_schemes_tried_regions")
    d = k / "contexts/0/schemes/0/tried_regions"
    rows = []
    for name in sorted((n for n in os.listdir(d) if n.isdigit()), key=int):
        r = d / name
        rows.append(tuple(int((r / f).read_text()) for f in ("start", "end", "nr_accesses", "age")))
    return rows


@pytest.fixture(scope="module")
def kdamond(workload):
    pid, lo, hi = workload
    if not (ADMIN / "kdamonds/nr_kdamonds").exists():
        pytest.skip("no DAMON sysfs in this kernel")
    assert (ADMIN / "kdamonds/nr_kdamonds").read_text().strip() == "0"
    _w(ADMIN / "kdamonds/nr_kdamonds", 1)
    k = ADMIN / "kdamonds/0"
    _w(k / "contexts/nr_contexts", 1)
    c = k / "contexts/0"
    _w(c / "operations", "vaddr")
    iv = c / "monitoring_attrs/intervals"
    _w(iv / "sample_us", 5000)
    _w(iv / "aggr_us", 100000)
    _w(iv / "update_us", 1000000)
    _w(c / "targets/nr_targets", 1)
    _w(c / "targets/0/pid_target", pid)
    _w(c / "schemes/nr_schemes", 1)
    _w(c / "schemes/0/action", "stat")
    ap = c / "schemes/0/access_pattern"   # match everything (defaults match nothing)
    _w(ap / "sz/max", (1 << 64) - 1)
    _w(ap / "nr_accesses/max", (1 << 32) - 1)
    _w(ap / "age/max", (1 << 32) - 1)
    _w(k / "state", "on")
    # handshake: wait until DAMON sees the hot area (no fixed sleep)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.3)
        snaps = [sysfs_snapshot(k)]
        h = area_heat(snaps, lo, hi)
        if h["hot"] > h["cold"]:
            break
    print("kdamond ready after %.1f s" % (time.monotonic() + 60 - deadline))
    yield k, workload
    _w(k / "state", "off")
    _w(ADMIN / "kdamonds/nr_kdamonds", 0)


def area_heat(snaps, lo, hi):
    """Size-weighted mean nr_accesses of the hot/warm/cold areas over snapshots
    (each a list of (start, end, nr_accesses, age))."""
    areas = {"hot": (lo, lo + 10 * MiB), "warm": (lo + 10 * MiB, lo + 40 * MiB),
             "cold": (lo + 40 * MiB, hi)}
    out = {}
    for name, (a, b) in areas.items():
        num = den = 0
        for rows in snaps:
            for s, e, nr, _ in rows:
                ov = min(e, b) - max(s, a)
                if ov > 0:
                    num += ov * nr
                    den += ov
        out[name] = num / den if den else float("nan")
    return out


def archive_snaps(path):
    from damo_pipe.archive import read_archive_records
    recs = read_archive_records(path)
    out = {}
    for r in recs:
        snaps = []
        for k in range(r.nr_snapshots):
            reg = r.snapshot_regions(k)
            snaps.append(list(zip(reg.start.tolist(), reg.end.tolist(), reg.nr_accesses.tolist(),
                                  reg.age.tolist())))
        out[r.target_id] = (r, snaps)
    return out


def record_for(open_fn, path, nr_snapshots, timeout=90, **kw):
    """Record until ``nr_snapshots`` arrived (TCG start-up of perf takes seconds)."""
    from damo_pipe.archive import ArchiveWriter
    from damo_pipe.model import Record
    t0 = time.monotonic()
    w = ArchiveWriter(path, swmr=True)
    keys = {0: w.add_record(Record(target_id=0))}
    h = open_fn(w, keys, flush_interval=5.0, **kw)   # an archive flush takes ~1 s under TCG
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and h.streamer.snapshots_out < nr_snapshots:
            h.poll()
            h.wait(0.1)
    finally:
        summary = h.stop()
        w.close()
    print("%s: %s in %.1f s" % (path.name, summary, time.monotonic() - t0))
    return summary


def covers(rows, lo, hi):
    return any(s < hi and e > lo for s, e, _, _ in rows)


def hottest_in_hot_area(snaps, lo):
    """Fraction of snapshots whose hottest region overlaps the hot area."""
    hits = n = 0
    for rows in snaps:
        if not rows:
            continue
        s, e, nr, _ = max(rows, key=lambda r: r[2])
        if nr == 0:
            continue
        n += 1
        hits += s < lo + 10 * MiB and e > lo
    return hits / n if n else 0.0


def check_consistent(snaps, lo, hi, what):
    assert len(snaps) >= 5, "%s: only %d snapshots" % (what, len(snaps))
    for rows in snaps:
        assert covers(rows, lo, hi), "%s: mapping not covered" % what
        assert all(s < e for s, e, _, _ in rows)
    late = snaps[len(snaps) // 2:]
    h = area_heat(late, lo, hi)
    h["hottest_in_hot"] = hottest_in_hot_area(late, lo)
    assert h["hot"] >= h["warm"] and h["hot"] > h["cold"], "%s: %r" % (what, h)
    assert h["hottest_in_hot"] >= 0.6, "%s: %r" % (what, h)
    return h


def test_sysfs_tracefs_perf_agree(kdamond, tmp_path):
    from damo_pipe.collect import tracer
    k, (pid, lo, hi) = kdamond
    before = tracefs_state()

    s1 = record_for(tracer.open_tracefs_tracer, tmp_path / "tracefs.h5", 12)
    assert tracefs_state() == before
    s2 = record_for(tracer.open_perf_tracer, tmp_path / "perf.h5", 12)
    assert tracefs_state() == before
    sysfs = []
    deadline = time.monotonic() + 90
    while len(sysfs) < 8 and time.monotonic() < deadline:
        rows = sysfs_snapshot(k)
        if covers(rows, lo, hi):     # tried_regions can be empty right after an update
            sysfs.append(rows)
        time.sleep(0.2)

    heats = {"sysfs": check_consistent(sysfs, lo, hi, "sysfs")}
    for name, summary in (("tracefs", s1), ("perf", s2)):
        got = archive_snaps(tmp_path / (name + ".h5"))
        assert list(got) == [0], "%s: targets %r" % (name, list(got))
        rec, snaps = got[0]
        assert summary["snapshots"] == rec.nr_snapshots
        heats[name] = check_consistent(snaps, lo, hi, name)
        ends = rec.snapshots.end_ns
        gaps = np.diff(ends) / 1e6
        # aggregation interval is 100 ms: snapshots are ~100 ms apart (TCG jitter allowed)
        assert 50 < float(np.median(gaps)) < 400, "%s: median gap %r ms" % (name, np.median(gaps))
        assert rec.first_start_ns is not None and rec.first_start_ns < ends[0]
    print("area heat:", heats)


def test_toplevel_mode_restores_real_tracefs(kdamond, tmp_path):
    from damo_pipe.collect import tracer
    before = tracefs_state()
    from damo_pipe.archive import ArchiveWriter
    from damo_pipe.model import Record
    w = ArchiveWriter(tmp_path / "top.h5", swmr=True)
    keys = {0: w.add_record(Record(target_id=0))}
    h = tracer.open_tracefs_tracer(w, keys, mode="toplevel", buffer_kb=2048,
                                   state_dir=str(tmp_path / "state"), flush_interval=5.0)
    try:
        assert Path(TRACEFS, "events/damon/damon_aggregated/enable").read_text().strip() == "1"
        assert Path(TRACEFS, "buffer_size_kb").read_text().split()[0] == "2048"
        assert "damon:damon_aggregated" in Path(TRACEFS, "set_event").read_text()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and h.streamer.snapshots_out < 3:
            h.poll()
            h.wait(0.1)
    finally:
        s = h.stop()
        w.close()
    assert s["snapshots"] >= 3
    after = tracefs_state()
    assert after.pop("buffer_size_kb").split("expanded: ")[-1].strip(" )\n") == \
        before.pop("buffer_size_kb").split("expanded: ")[-1].strip(" )\n")
    assert after == before
    assert os.listdir(tmp_path / "state") == []


CHILD = textwrap.dedent("""
    import sys, time
    from damo_pipe.archive import ArchiveWriter
    from damo_pipe.collect import tracer
    from damo_pipe.model import Record
    w = ArchiveWriter(sys.argv[1], swmr=True)
    keys = {0: w.add_record(Record(target_id=0))}
    h = tracer.open_tracefs_tracer(w, keys, flush_interval=1.0)
    last = -1
    while True:
        h.poll()
        if h.streamer.flushes != last:
            last = h.streamer.flushes
            print("flushed %d" % h.streamer.flushed_snapshots, flush=True)
        h.wait(0.05)
""")


def test_sigkill_leaves_flushed_data_and_stop_cleans_instance(kdamond, tmp_path):
    from damo_pipe.archive import read_archive_records
    from damo_pipe.collect import tracer
    before = tracefs_state()
    archive = tmp_path / "killed.h5"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(archive)], cwd=REPO,
                             stdout=subprocess.PIPE)
    flushed = 0
    deadline = time.monotonic() + 120
    while flushed < 3 and time.monotonic() < deadline:
        line = child.stdout.readline().split()
        if not line:
            break
        flushed = int(line[1])
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert flushed >= 3
    inst = Path(TRACEFS, "instances", "damo-pipe-%d" % child.pid)
    assert inst.is_dir()
    assert (inst / "events/damon/damon_aggregated/enable").read_text().strip() == "1"
    rec = read_archive_records(archive)[0]
    assert rec.nr_snapshots >= flushed
    msgs = tracer.cleanup_stale_tracing()
    assert "removed stale tracing instance %s" % inst in msgs
    assert not inst.exists()
    assert tracefs_state() == before

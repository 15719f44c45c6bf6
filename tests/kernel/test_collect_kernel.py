"""damo-collect against a real DAMON kernel (run inside tools/damon-vm; skipped elsewhere).

Orderings, not exact values: nr_accesses depend on emulation speed. Every wait is a
handshake or a poll with a deadline.
"""
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from tests.kernel.conftest import (ADMIN, MiB, area_heat, committed_snapshots, diagnostics,
                                   hwc_areas, nr_kdamonds, wait_for)

pytestmark = pytest.mark.kernel


def read(path):
    from damo_pipe.archive import read_archive_records
    return read_archive_records(path)


def heat_ordered(path, w, skip_first=2):
    recs = read(path)
    if not recs or recs[0].nr_snapshots <= skip_first + 2:
        return None
    h = area_heat(recs, hwc_areas(w.lo, w.hi), skip_first=skip_first)
    return h if h["hot"] > h["warm"] > h["cold"] else None


def test_record_vaddr_orders_hot_warm_cold_and_sigterm_cleans_up(workload, collect_bg, tmp_path):
    w = workload("--mib", "100", "--mode", "hwc")
    out = str(tmp_path / "hwc.h5")
    p = collect_bg("record", "-o", out, "--target_pid", w.pid, "--flush_interval", "0.5")
    # readable while recording; handshake: wait until the ordering shows up
    h = wait_for(lambda: committed_snapshots(out) >= 6 and heat_ordered(out, w), 120,
                 "hot > warm > cold in the archive while recording", alive=p)
    assert nr_kdamonds() == 1
    p.send_signal(signal.SIGTERM)
    assert p.wait(60) == 0, p.stderr
    assert nr_kdamonds() == 0
    assert json.loads(open(os.environ["DAMO_PIPE_STATE_FILE"]).read())["kdamonds"] == []
    recs = read(out)
    assert len(recs) == 1 and recs[0].pid == w.pid and recs[0].ops == "vaddr"
    r = recs[0]
    # regions ascend, do not overlap, and some lie inside the workload's mapping
    for k in range(r.nr_snapshots):
        lo, hi = r.region_bounds(k)
        s, e = r.regions.start[lo:hi], r.regions.end[lo:hi]
        assert np.all(s < e) and np.all(e[:-1] <= s[1:])
    inside = (r.regions.start >= w.lo) & (r.regions.end <= w.hi)
    assert inside.any()
    assert h["hot"] > h["warm"] > h["cold"]
    # end times increase; starts are one aggregation interval before
    assert np.all(np.diff(r.snapshots.end_ns) > 0)
    assert np.all(r.snapshots.end_ns - r.snapshots.start_ns == 100_000_000)


def test_record_command_stops_and_cleans_up_when_target_exits(workload_bin, collect, tmp_path):
    out = str(tmp_path / "cmd.h5")
    p = collect("record", "-o", out, "--", workload_bin, "--mib", "32", "--duration", "10",
                timeout=180)
    assert p.returncode == 0
    assert nr_kdamonds() == 0
    recs = read(out)
    assert recs and recs[0].nr_snapshots >= 3


def test_sigkill_keeps_every_flushed_snapshot_and_stop_cleans_up(workload, collect_bg, collect,
                                                               tmp_path):
    w = workload("--mib", "64")
    out = str(tmp_path / "kill.h5")
    p = collect_bg("record", "-o", out, "--target_pid", w.pid, "--flush_interval", "0.3")
    seen = wait_for(lambda: committed_snapshots(out) >= 8 and committed_snapshots(out), 120,
                    "8 flushed snapshots", alive=p)
    before = read(out)[0]
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    after = read(out)[0]
    assert after.nr_snapshots >= before.nr_snapshots >= seen
    n = before.nr_snapshots
    assert np.array_equal(after.snapshots.end_ns[:n], before.snapshots.end_ns[:n])
    m = int(before.snapshots.region_offset[n - 1] + before.snapshots.nr_regions[n - 1])
    assert np.array_equal(after.regions.start[:m], before.regions.start[:m])
    assert np.array_equal(after.regions.nr_accesses[:m], before.regions.nr_accesses[:m])
    # the killed recorder's kdamond is still there, and it is ours: stop removes it
    assert nr_kdamonds() == 1
    r = collect("stop")
    assert "stopped kdamond 0" in r.stdout
    assert nr_kdamonds() == 0


def _start_foreign_kdamond(pid):
    """A kdamond made by hand, as another tool would (not in our ownership file)."""
    def w(rel, v):
        (ADMIN / rel).write_text("%s\n" % v)
    w("kdamonds/nr_kdamonds", 1)
    w("kdamonds/0/contexts/nr_contexts", 1)
    w("kdamonds/0/contexts/0/operations", "vaddr")
    w("kdamonds/0/contexts/0/targets/nr_targets", 1)
    w("kdamonds/0/contexts/0/targets/0/pid_target", pid)
    w("kdamonds/0/state", "on")


def _stop_foreign_kdamond():
    (ADMIN / "kdamonds/0/state").write_text("off\n")
    (ADMIN / "kdamonds/nr_kdamonds").write_text("0\n")


def test_refuses_when_another_kdamond_runs(workload, collect, tmp_path):
    w = workload("--mib", "16")
    _start_foreign_kdamond(w.pid)
    try:
        kpid = (ADMIN / "kdamonds/0/pid").read_text().strip()
        for args in (["record", "-o", str(tmp_path / "x.h5"), "--target_pid", w.pid, "--timeout", "2"],
                     ["start", "--ops", "paddr"],
                     ["snapshot"]):
            r = collect(*args, check=False)
            assert r.returncode != 0, args
            assert "DAMON is in use" in r.stderr or "someone else" in r.stderr, r.stderr
            assert "thread pid %s" % kpid in r.stderr
        r = collect("stop")
        assert "nothing to stop" in r.stdout
        # the foreign kdamond is untouched
        assert (ADMIN / "kdamonds/0/state").read_text().strip() == "on"
        assert (ADMIN / "kdamonds/0/pid").read_text().strip() == kpid
        assert not os.path.exists(tmp_path / "x.h5")
    finally:
        _stop_foreign_kdamond()


def test_start_status_snapshot_ongoing_stop(workload, collect, tmp_path):
    w = workload("--mib", "64")
    collect("start", "--target_pid", w.pid)
    assert nr_kdamonds() == 1
    st = collect("status").stdout
    assert "started by damo-collect start" in st and str(w.pid) in st
    snap = collect("snapshot").stdout
    assert "total size" in snap
    raw = collect("snapshot", "--raw_form", "-o", tmp_path / "snaps.h5").stdout
    assert "nr_regions" in raw
    assert read(str(tmp_path / "snaps.h5"))[0].nr_snapshots == 1
    out = str(tmp_path / "ongoing.h5")
    collect("record", "ongoing", "-o", out, "--timeout", "5")
    assert read(out)[0].nr_snapshots >= 2
    assert nr_kdamonds() == 1 and (ADMIN / "kdamonds/0/state").read_text().strip() == "on"
    collect("stop")
    assert nr_kdamonds() == 0


def test_paddr_regions_lie_in_system_ram(workload, collect, tmp_path):
    from damo_pipe.collect.kdamond import system_ram_ranges
    workload("--mib", "64")
    ram = system_ram_ranges()
    out = str(tmp_path / "paddr.h5")
    collect("record", "--ops", "paddr", "-o", out, "--timeout", "4")
    assert nr_kdamonds() == 0
    r = read(out)[0]
    assert r.ops == "paddr" and r.nr_snapshots >= 3
    lo, hi = max(ram, key=lambda x: x[1] - x[0])
    assert int(r.regions.start.min()) >= lo and int(r.regions.end.max()) <= hi
    assert int(r.snapshots.total_bytes[-1]) > (hi - lo) // 2
    assert r.regions.nr_accesses.max() > 0


def _load_module(name):
    """modprobe NAME, else insmod it from the unpacked kernel package the VM booted."""
    import glob
    if subprocess.run(["modprobe", name], capture_output=True).returncode == 0:
        return True
    cache = os.environ.get("DAMON_VM_CACHE", "/var/cache/damo-pipe-vm")
    for ko in glob.glob(os.path.join(cache, "k/lib/modules", os.uname().release,
                                     "kernel/drivers/block/**/%s.ko*" % name), recursive=True):
        if subprocess.run(["insmod", ko], capture_output=True).returncode == 0:
            return True
    return False


@pytest.fixture
def zram_swap():
    if not os.path.exists("/sys/block/zram0") and not _load_module("zram"):
        pytest.skip("no zram module in the guest for swap")
    dev = "/dev/zram0"
    wait_for(lambda: os.path.exists("/sys/block/zram0/disksize"), 10, "zram0")
    with open("/sys/block/zram0/disksize", "w") as f:
        f.write("512M")
    subprocess.run(["mkswap", dev], check=True, capture_output=True)
    subprocess.run(["swapon", dev], check=True)
    yield
    subprocess.run(["swapoff", dev])


def test_damos_pageout_shrinks_cold_rss(workload, collect_bg, zram_swap, tmp_path):
    from damo_pipe.archive.sidetables import read_side_table
    w = workload("--mib", "80", "--mode", "pageout")
    rss0 = w.rss()
    assert rss0 > 60 * MiB
    out = str(tmp_path / "pageout.h5")
    p = collect_bg("record", "-o", out, "--target_pid", w.pid, "--damos_action", "pageout",
                   "--damos_access_rate", "0", "0", "--damos_sz_region", "4K", "max",
                   "--damos_age", "1s", "max", "--flush_interval", "0.5")
    history = []

    def paged_out():
        history.append((round(time.monotonic() - t0, 1), w.rss() // MiB))
        return history[-1][1] * MiB < rss0 * 0.6
    t0 = time.monotonic()
    try:
        wait_for(paged_out, 240, "RSS of the cold area to be paged out", interval=1, alive=p)
        print("pageout: RSS %d -> %d MiB after %.0f s"
              % (rss0 // MiB, history[-1][1], history[-1][0]))
        wait_for(lambda: committed_snapshots(out) >= 3, 60, "snapshots", alive=p)
    except pytest.fail.Exception as e:
        raise AssertionError("%s\nRSS MiB over time: %s\n%s"
                             % (e, history[::5], diagnostics(p, out, w))) from None
    p.send_signal(signal.SIGINT)
    assert p.wait(60) == 0, p.stderr
    print("pageout collector warnings:", [ln for ln in p.stderr.splitlines() if "skipped" in ln])
    assert nr_kdamonds() == 0
    stats = read_side_table(out, "damos_stats")
    pageout = stats["scheme_idx"] == 0
    applied = stats["sz_applied"][pageout]
    assert applied.max() > 0 and stats["nr_applied"][pageout].max() > 0, (stats, history)
    assert np.all(np.diff(applied.astype(np.int64)) >= 0)      # cumulative counters
    # the stat scheme (index 1) tried every region each time
    assert stats["sz_tried"][stats["scheme_idx"] == 1].max() > 0
    foot = read_side_table(out, "footprints")
    assert len(foot["rss_bytes"]) >= 1 and foot["rss_bytes"].min() < rss0


def test_autotune_missing_feature_is_a_clear_error(workload, collect):
    w = workload("--mib", "16")
    r = collect("record", "-o", "/tmp/never.h5", "--target_pid", w.pid,
                "--monitoring_intervals_autotune", "--timeout", "1", check=False)
    if (ADMIN / "kdamonds").exists() and r.returncode == 0:
        pytest.skip("this kernel has intervals auto-tuning")
    assert r.returncode != 0
    assert "auto-tuning" in r.stderr
    assert nr_kdamonds() == 0


def test_tried_regions_engines_agree_and_targets_split(workload, tmp_path):
    from damo_pipe.collect.kdamond import KdamondSession, MonitoringSpec, split_targets
    from damo_pipe.collect.ownership import OwnershipFile
    from damo_pipe.collect.sysfs import SysfsTree
    a, b = workload("--mib", "32"), workload("--mib", "32")
    s = KdamondSession.create(SysfsTree(), OwnershipFile(tmp_path / "own.json"),
                              MonitoringSpec(ops="vaddr", pids=[a.pid, b.pid]))
    try:
        s.update_tried_regions()
        (c1, total) = s.read_tried_regions(engine="cython")
        (c2, _) = s.read_tried_regions(engine="python")
        for x, y in zip(c1, c2):
            assert np.array_equal(x, y)
        start, end = c1[0], c1[1]
        assert total == int((end - start).sum())
        parts = split_targets(start, 2)
        assert len(parts) == 2
        for (lo, hi), wl in zip(parts, (a, b)):
            covered = ((start[lo:hi] <= wl.lo) & (end[lo:hi] > wl.lo)).any()
            assert covered, "target's regions cover its own mapping"
    finally:
        s.stop()
    assert nr_kdamonds() == 0


def test_record_two_targets_gives_two_records(workload, collect, tmp_path):
    a, b = workload("--mib", "32"), workload("--mib", "32")
    out = str(tmp_path / "two.h5")
    collect("record", "-o", out, "--target_pid", a.pid, "--target_pid", b.pid, "--timeout", "10")
    recs = read(out)
    assert [r.pid for r in recs] == [a.pid, b.pid]
    for r, wl in zip(recs, (a, b)):
        assert r.nr_snapshots >= 2
        assert ((r.regions.start <= wl.lo) & (r.regions.end > wl.lo)).any()


def test_record_with_tracefs_tracer_adds_trace_records(workload, collect, tmp_path):
    w = workload("--mib", "32")
    out = str(tmp_path / "trace.h5")
    collect("record", "-o", out, "--target_pid", w.pid, "--tracer", "tracefs", "--timeout", "10")
    assert nr_kdamonds() == 0
    recs = read(out)
    assert len(recs) == 2
    snap, trace = recs
    assert snap.scheme_idx is not None and trace.scheme_idx is None
    assert snap.nr_snapshots >= 2 and trace.nr_snapshots >= 2
    # both see the workload's mapping
    for r in (snap, trace):
        assert ((r.regions.start <= w.lo) & (r.regions.end > w.lo)).any()

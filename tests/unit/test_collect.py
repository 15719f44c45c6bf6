"""damo-collect against a fake DAMON sysfs tree answered by a simulated kernel.

Expected values come from the real 6.12 sysfs dumps in ../shared/fixtures/kernel (the
configuration a kdamond shows, tried regions), from the fake kernel's own simulation
(which is independent of the collector), or from plain-Python parsing of the dumps.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from damo_pipe.collect.cli import main
from damo_pipe.collect.kdamond import (KdamondSession, MonitoringSpec, split_targets,
                                       system_ram_ranges)
from damo_pipe.collect.ownership import OwnershipFile
from damo_pipe.collect.sysfs import SysfsTree, read_tried_regions
from damo_pipe.errors import (CollectError, DamonBusyError, DamonUnavailableError,
                              EngineError)
from tests.support.collect import cli, committed, fast_tmpdir, spawn_collector, wait_until
from tests.support.fake_kernel import FAKE_KDAMOND_PID_BASE, FakeKernel

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
KFIX = SHARED / "fixtures" / "kernel"


@pytest.fixture
def root():
    import shutil
    d = fast_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake(root, monkeypatch):
    monkeypatch.setenv("DAMO_PIPE_STATE_FILE", os.path.join(root, "owned.json"))
    k = FakeKernel(os.path.join(root, "admin"), nr_regions=40).start()
    yield k
    k.stop()
    assert not k.errors


@pytest.fixture
def tree(fake):
    return SysfsTree(fake.root)


@pytest.fixture
def owner(root):
    return OwnershipFile(os.path.join(root, "owned.json"))


@pytest.fixture(autouse=True)
def no_real_sysfs(monkeypatch):
    """Belt and braces: nothing here may reach the host's real DAMON sysfs."""
    monkeypatch.setenv("DAMO_PIPE_NO_REAL_SYSFS", "1")


def read_dump(name):
    p = KFIX / name
    if not p.exists():
        pytest.skip("%s not found" % p)
    out = {}
    for line in p.read_text().splitlines():
        path, _, value = line.partition(": ")
        out[path.replace("/sys/kernel/mm/damon/admin/", "")] = value.strip()
    return out


def sleeper():
    return subprocess.Popen(["sleep", "60"])


# ---------------------------------------------------------------------------------------
# configuration written like the real kernel shows it

def test_config_matches_real_kdamond_dump(tree, owner):
    dump = read_dump("sysfs-kdamond-vaddr.txt")
    p = sleeper()
    try:
        s = KdamondSession.create(tree, owner, MonitoringSpec(ops="vaddr", pids=[p.pid]))
        checked = 0
        for rel, value in dump.items():
            if ("/stats/" in rel or "tried_regions" in rel or rel.endswith("/pid")
                    or "effective_bytes" in rel or "pid_target" in rel or "/goals/" in rel):
                continue
            assert tree.read(rel) == value, rel
            checked += 1
        assert checked >= 30
        assert tree.read("kdamonds/0/contexts/0/targets/0/pid_target") == str(p.pid)
        s.stop()
    finally:
        p.kill()
        p.wait()
    assert tree.read("kdamonds/nr_kdamonds") == "0"
    assert owner.load() == []


def test_damos_options_reach_sysfs(fake, tree, owner):
    p = sleeper()
    try:
        rc = cli(fake, "start", "--target_pid", p.pid, "--monitoring_intervals", "10ms", "200ms", "2s",
                 "--monitoring_nr_regions_range", "20", "500",
                 "--damos_action", "pageout", "--damos_access_rate", "0", "0",
                 "--damos_sz_region", "4K", "max", "--damos_age", "60s", "max",
                 "--damos_quotas", "10", "128M", "1000", "1", "2", "3",
                 "--damos_wmarks", "free_mem_rate", "5s", "500", "400", "200")
        assert rc == 0
        c = "kdamonds/0/contexts/0"
        iv = c + "/monitoring_attrs/intervals/"
        assert [tree.read(iv + f) for f in ("sample_us", "aggr_us", "update_us")] == \
            ["10000", "200000", "2000000"]
        assert tree.read(c + "/monitoring_attrs/nr_regions/min") == "20"
        assert tree.read(c + "/schemes/nr_schemes") == "2"
        s0 = c + "/schemes/0/"
        expect = {"action": "pageout", "access_pattern/nr_accesses/min": "0",
                  "access_pattern/nr_accesses/max": "0", "access_pattern/sz/min": "4096",
                  "access_pattern/sz/max": str((1 << 64) - 1),
                  "access_pattern/age/min": "300",          # 60 s / 200 ms
                  "access_pattern/age/max": str((1 << 32) - 1),
                  "quotas/ms": "10", "quotas/bytes": str(128 << 20),
                  "quotas/reset_interval_ms": "1000", "quotas/weights/sz_permil": "1",
                  "quotas/weights/nr_accesses_permil": "2", "quotas/weights/age_permil": "3",
                  "watermarks/metric": "free_mem_rate", "watermarks/interval_us": "5000000",
                  "watermarks/high": "500", "watermarks/mid": "400", "watermarks/low": "200"}
        for rel, v in expect.items():
            assert tree.read(s0 + rel) == v, rel
        assert tree.read(c + "/schemes/1/action") == "stat"
        assert cli(fake, "stop") == 0
        assert tree.read("kdamonds/nr_kdamonds") == "0"
    finally:
        p.kill()
        p.wait()


def test_bad_options_are_usage_errors(fake, capsys):
    assert cli(fake, "record", "-o", "/dev/null") == 2           # nothing to monitor
    assert cli(fake, "start", "--ops", "fvaddr", "--target_pid", "1") == 2   # no regions
    assert cli(fake, "start", "--target_pid", "1", "--damos_age", "1s", "max") == 2
    assert cli(fake, "start", "--target_pid", "1", "--monitoring_intervals", "1s", "1ms", "1s") == 2
    assert "error" in capsys.readouterr().err
    assert fake.commands == []


# ---------------------------------------------------------------------------------------
# reading tried regions

def build_tree_from_dump(dump, base):
    for rel, value in dump.items():
        p = os.path.join(base, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(value + "\n")


@pytest.mark.parametrize("name", ["sysfs-kdamond-vaddr.txt", "sysfs-kdamond-paddr.txt"])
def test_tried_regions_reader_matches_dump(root, name, engine):
    dump = read_dump(name)
    build_tree_from_dump(dump, root)
    d = os.path.join(root, "kdamonds/0/contexts/0/schemes/0/tried_regions")
    pref = "kdamonds/0/contexts/0/schemes/0/tried_regions/"
    idx = sorted({int(k[len(pref):].split("/")[0]) for k in dump
                  if k.startswith(pref) and k[len(pref):].split("/")[0].isdigit()})
    expect = [tuple(int(dump["%s%d/%s" % (pref, i, f)]) for f in ("start", "end", "nr_accesses", "age"))
              for i in idx]
    start, end, nr, age, passed = read_tried_regions(d, len(idx), engine=engine)
    assert list(zip(start.tolist(), end.tolist(), nr.tolist(), age.tolist())) == expect
    assert int((end - start).sum()) == int(dump[pref + "total_bytes"])
    assert not passed.any()


def test_tried_regions_reader_errors_name_the_file(root, engine):
    d = os.path.join(root, "tr")
    for i, vals in enumerate([(0, 4096, 1, 2), (4096, "x12", 0, 0)]):
        os.makedirs(os.path.join(d, str(i)))
        for f, v in zip(("start", "end", "nr_accesses", "age"), vals):
            with open(os.path.join(d, str(i), f), "w") as fh:
                fh.write("%s\n" % v)
    with pytest.raises(CollectError, match="1/end"):
        read_tried_regions(d, 2, engine=engine)
    start, end, nr, age, _ = read_tried_regions(d, 1, engine=engine)
    assert (start[0], end[0], nr[0], age[0]) == (0, 4096, 1, 2)
    os.unlink(os.path.join(d, "1", "end"))
    with pytest.raises(CollectError, match="1/end"):
        read_tried_regions(d, 2, engine=engine)


def test_tried_regions_reader_engine_selection(root, monkeypatch):
    d = os.path.join(root, "tr")
    os.makedirs(os.path.join(d, "0"))
    for f, v in zip(("start", "end", "nr_accesses", "age"), (0, 4096, 3, 7)):
        with open(os.path.join(d, "0", f), "w") as fh:
            fh.write("%d\n" % v)
    with pytest.raises(EngineError, match="engine must be one of"):
        read_tried_regions(d, 1, engine="fortran")
    # the Cython reader not built: "auto" falls back to the twin, "cython" says so
    monkeypatch.setitem(sys.modules, "damo_pipe.collect._tried_regions", None)
    assert read_tried_regions(d, 1, engine="auto")[2].tolist() == [3]
    with pytest.raises(EngineError, match="not built"):
        read_tried_regions(d, 1, engine="cython")


def test_split_targets_at_address_drops():
    start = np.array([10, 20, 30, 5, 6, 1], np.uint64)
    assert split_targets(start, 1) == [(0, 6)]
    assert split_targets(start, 2) == [(0, 3), (3, 6)]
    assert split_targets(start, 3) == [(0, 3), (3, 5), (5, 6)]
    assert split_targets(np.zeros(0, np.uint64), 2) == [(0, 0)]


def test_system_ram_ranges(tmp_path):
    p = tmp_path / "iomem"
    p.write_text("00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n"
                 "00100000-7ffdffff : System RAM\n  01000000-01ffffff : Kernel code\n"
                 "fd000000-fdffffff : PCI Bus 0000:00\n")
    assert system_ram_ranges(str(p)) == [(0x1000, 0x9fc00), (0x100000, 0x7ffe0000)]
    p.write_text("00000000-00000000 : System RAM\n")
    with pytest.raises(DamonUnavailableError, match="root"):
        system_ram_ranges(str(p))


def test_statm_of_live_zombie_and_gone_processes(tmp_path):
    from damo_pipe.collect.footprints import PAGE_SIZE, read_statm

    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "statm").write_text("100 20 3 4 0 50 0\n")
    assert read_statm(7, str(tmp_path)) == {
        "vsz_bytes": 100 * PAGE_SIZE, "rss_bytes": 20 * PAGE_SIZE, "shared_bytes": 3 * PAGE_SIZE,
        "text_bytes": 4 * PAGE_SIZE, "lib_bytes": 0, "data_bytes": 50 * PAGE_SIZE,
        "dirty_bytes": 0}
    # a zombie not yet reaped (a target that just exited) has no memory left: no row
    p = subprocess.Popen(["true"])
    wait_until(lambda: open("/proc/%d/stat" % p.pid).read().rsplit(") ", 1)[1][0] == "Z")
    assert read_statm(p.pid) is None
    p.wait()
    assert read_statm(p.pid) is None


# ---------------------------------------------------------------------------------------
# ownership and refusal

def test_refuses_foreign_kdamond_and_touches_nothing(fake, tree, owner, capsys, tmp_path):
    # someone else's kdamond, made by hand
    tree.write_nr("kdamonds", 1)
    tree.write_nr("kdamonds/0/contexts", 1)
    tree.write("kdamonds/0/contexts/0/operations", "paddr")
    tree.write_state("kdamonds/0", "on")
    fake.sync()
    before = list(fake.commands)
    with pytest.raises(DamonBusyError, match="not created by damo-collect"):
        KdamondSession.create(tree, owner, MonitoringSpec(ops="paddr", regions=[[(0, 1 << 30)]]))
    with pytest.raises(DamonBusyError, match="thread pid %d" % FAKE_KDAMOND_PID_BASE):
        KdamondSession.attach(tree, owner)
    assert cli(fake, "snapshot") == 1
    assert cli(fake, "record", "--ops", "paddr", "--regions", "0-1G", "-o", tmp_path / "x.h5") == 1
    assert cli(fake, "stop") == 0
    out = capsys.readouterr()
    assert "DAMON is in use" in out.err and "nothing to stop" in out.out
    assert not (tmp_path / "x.h5").exists()
    fake.sync()
    assert fake.commands == before
    assert tree.read("kdamonds/0/state") == "on"
    tree.write_state("kdamonds/0", "off")


def test_replaced_kdamond_is_not_stopped(fake, tree, owner):
    s = KdamondSession.create(tree, owner, MonitoringSpec(ops="paddr", regions=[[(0, 1 << 30)]]))
    # someone restarted it behind our back: a new thread pid
    tree.write("kdamonds/0/pid", 777)
    with pytest.raises(DamonBusyError, match="no longer ours"):
        s.stop()
    assert tree.read("kdamonds/0/state") == "on"
    with pytest.raises(DamonBusyError):
        KdamondSession.attach(tree, owner)
    tree.write_state("kdamonds/0", "off")


def test_missing_feature_is_clear_and_leaves_nothing(fake, tree, owner):
    with pytest.raises(DamonUnavailableError, match="auto-tuning"):
        KdamondSession.create(tree, owner, MonitoringSpec(ops="paddr", regions=[[(0, 1 << 30)]],
                                                          autotune=(400, 3, 5000, 10000000)))
    assert tree.read("kdamonds/nr_kdamonds") == "0"
    assert owner.load() == []


def test_autotune_written_when_the_kernel_has_it(root, monkeypatch):
    k = FakeKernel(os.path.join(root, "admin"), nr_regions=10, intervals_goal=True).start()
    try:
        t = SysfsTree(k.root)
        s = KdamondSession.create(t, OwnershipFile(os.path.join(root, "o.json")),
                                  MonitoringSpec(ops="paddr", regions=[[(0, 1 << 30)]],
                                                 autotune=(400, 3, 5000, 10000000)))
        g = "kdamonds/0/contexts/0/monitoring_attrs/intervals/intervals_goal/"
        assert [t.read(g + f) for f in ("access_bp", "aggrs", "min_sample_us", "max_sample_us")] == \
            ["400", "3", "5000", "10000000"]
        s.stop()
    finally:
        k.stop()


def test_not_a_damon_tree(root):
    with pytest.raises(DamonUnavailableError, match="not a DAMON sysfs tree"):
        SysfsTree(root).check_available()
    assert main(["status", "--sysfs_root", root]) == 1


# ---------------------------------------------------------------------------------------
# recording

def _heat(rec, fake_areas):
    out = []
    for lo, hi in fake_areas:
        sel = (rec.regions.start >= lo) & (rec.regions.end <= hi)
        out.append(rec.regions.nr_accesses[sel].mean())
    return out


def test_record_paddr_in_process(fake, tree, tmp_path, engine):
    from damo_pipe.archive import read_archive_records
    from damo_pipe.archive.sidetables import read_side_table

    out = tmp_path / "p.h5"
    rc = cli(fake, "record", "--ops", "paddr", "--regions", "1M-1025M", "-o", out, "--timeout", "1",
             "--engine", engine, "--damos_action", "pageout", "--damos_access_rate", "0", "0")
    assert rc == 0
    recs = read_archive_records(out)
    assert len(recs) == 1
    r = recs[0]
    assert r.ops == "paddr" and r.scheme_idx == 1 and r.intervals.aggr_us == 100000
    assert r.nr_snapshots >= 3
    assert set(r.snapshots.nr_regions.tolist()) == {40}
    assert int(r.regions.start.min()) == 1 << 20 and int(r.regions.end.max()) == 1025 << 20
    assert np.all(r.snapshots.total_bytes == 1024 << 20)
    # the fake kernel's pattern: first 10% at every sample, next 30% at a third, rest 0
    first = r.snapshot_regions(0)
    assert first.nr_accesses[:4].tolist() == [20] * 4
    assert first.nr_accesses[4:16].tolist() == [6] * 12
    assert not first.nr_accesses[16:].any()
    assert r.snapshots.has_damos_stats.all()
    stats = read_side_table(out, "damos_stats")
    assert set(stats["scheme_idx"].tolist()) == {0, 1}
    assert stats["sz_applied"][stats["scheme_idx"] == 0].max() > 0
    assert read_side_table(out, "meminfo")["MemTotal"][0] > 0
    assert tree.read("kdamonds/nr_kdamonds") == "0"
    fake.sync()
    assert fake.commands[0] == (0, "on") and fake.commands[-1] == (0, "off")
    # the archive ends with the final counters: one last stats update right before "off"
    assert fake.commands[-2] == (0, "update_schemes_stats")
    assert stats["time_ns"][-1] == stats["time_ns"].max()


def test_record_command_until_target_exit(fake, tree, tmp_path):
    from damo_pipe.archive import read_archive_records
    from damo_pipe.archive.sidetables import read_side_table

    out = tmp_path / "c.h5"
    t0 = time.monotonic()
    rc = cli(fake, "record", "-o", out, "--timeout", "30", "--", "sleep", "1.5")
    assert rc == 0 and time.monotonic() - t0 < 20
    r = read_archive_records(out)[0]
    assert r.ops == "vaddr" and r.nr_snapshots >= 2 and r.pid is not None
    foot = read_side_table(out, "footprints")
    assert (foot["pid"] == r.pid).all() and foot["rss_bytes"].min() > 0
    assert tree.read("kdamonds/nr_kdamonds") == "0"


def test_record_two_targets_split_into_records(fake, tmp_path):
    from damo_pipe.archive import read_archive_records

    a, b = sleeper(), sleeper()
    try:
        out = tmp_path / "two.h5"
        assert cli(fake, "record", "-o", out, "--target_pid", a.pid, "--target_pid", b.pid,
                   "--timeout", "0.5") == 0
        recs = read_archive_records(out)
        assert [r.pid for r in recs] == [a.pid, b.pid]
        assert [r.target_id for r in recs] == [0, 1]
        for r in recs:
            assert r.snapshots.nr_regions[0] == 40
            assert r.regions.start[0] == 0x400000
    finally:
        for p in (a, b):
            p.kill()
            p.wait()


def test_snapshot_interval_and_rotation(fake, tmp_path):
    from damo_pipe.archive import read_archive_records

    p = sleeper()
    try:
        out = tmp_path / "rot.h5"
        assert cli(fake, "record", "-o", out, "--target_pid", p.pid, "--timeout", "1.3",
                   "--snapshot_interval", "200ms", "--output_flush_sec", "0.5") == 0
    finally:
        p.kill()
        p.wait()
    files = [out] + [tmp_path / ("rot.%d.h5" % i) for i in range(1, 10)
                     if (tmp_path / ("rot.%d.h5" % i)).exists()]
    assert len(files) >= 2 and (tmp_path / "rot.1.h5").exists()
    counts = [read_archive_records(f)[0].nr_snapshots for f in files]
    assert 2 <= sum(counts) <= 8 and counts[0] >= 1
    ends = np.concatenate([read_archive_records(f)[0].snapshots.end_ns for f in files])
    assert np.all(np.diff(ends) > 0)
    assert (ends[-1] - ends[0]) / (len(ends) - 1) >= 150_000_000   # due every 200 ms


def test_start_snapshot_ongoing_stop(fake, tree, tmp_path, capsys):
    from damo_pipe.archive import read_archive_records

    p = sleeper()
    try:
        assert cli(fake, "start", "--target_pid", p.pid) == 0
        assert cli(fake, "status") == 0
        assert cli(fake, "snapshot") == 0
        out = capsys.readouterr().out
        assert "started by damo-collect start" in out
        assert "total size" in out
        assert cli(fake, "snapshot", "--raw_form", "--dont_merge_regions", "-o", tmp_path / "s.h5") == 0
        assert "nr_regions: 40" in capsys.readouterr().out
        assert cli(fake, "snapshot", "--quiet", "-o", tmp_path / "s.h5") == 0
        assert read_archive_records(tmp_path / "s.h5")[0].nr_snapshots == 2
        assert cli(fake, "record", "ongoing", "-o", tmp_path / "o.h5", "--timeout", "0.5") == 0
        assert read_archive_records(tmp_path / "o.h5")[0].nr_snapshots >= 2
        assert tree.read("kdamonds/0/state") == "on"     # ongoing leaves it running
        assert cli(fake, "stop") == 0
        assert tree.read("kdamonds/nr_kdamonds") == "0"
        assert cli(fake, "snapshot") == 1
    finally:
        p.kill()
        p.wait()


# ---------------------------------------------------------------------------------------
# signals, crashes (the collector in a subprocess, the fake kernel in this process)

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_cleans_up(fake, tree, tmp_path, sig):
    from damo_pipe.archive import read_archive_records

    p = sleeper()
    out = tmp_path / "sig.h5"
    try:
        c = spawn_collector(fake, "record", "-o", out, "--target_pid", p.pid,
                            "--flush_interval", "0.2")
        wait_until(lambda: committed(out) >= 3)
        c.send_signal(sig)
        assert c.wait(30) == 0, c.stderr.read()
    finally:
        p.kill()
        p.wait()
    assert tree.read("kdamonds/nr_kdamonds") == "0"
    assert json.load(open(os.environ["DAMO_PIPE_STATE_FILE"]))["kdamonds"] == []
    assert read_archive_records(out)[0].nr_snapshots >= 3


def test_sigkill_keeps_flushed_snapshots(fake, tree, tmp_path):
    from damo_pipe.archive import read_archive_records

    p = sleeper()
    out = tmp_path / "kill.h5"
    try:
        c = spawn_collector(fake, "record", "-o", out, "--target_pid", p.pid,
                            "--flush_interval", "0.1")
        wait_until(lambda: committed(out) >= 5)
        before = read_archive_records(out)[0]
        c.kill()
        c.wait()
        after = read_archive_records(out)[0]
        n = before.nr_snapshots
        assert after.nr_snapshots >= n
        assert np.array_equal(after.snapshots.end_ns[:n], before.snapshots.end_ns[:n])
        assert np.array_equal(after.regions.nr_accesses[:before.nr_regions], before.regions.nr_accesses)
        # the orphaned kdamond is ours and still on (the simulated kernel may still be
        # answering the killed collector's last command): stop turns it off
        wait_until(lambda: tree.read("kdamonds/0/state") == "on")
        assert cli(fake, "stop") == 0
        assert tree.read("kdamonds/nr_kdamonds") == "0"
    finally:
        p.kill()
        p.wait()


def test_snapshot_merges_equal_adjacent_regions():
    from damo_pipe.collect.snapshots import merge_regions
    from damo_pipe.model import Record, RecordBuilder, RegionColumns

    b = RecordBuilder(Record(target_id=0))
    rows = [(0, 10, 5, 1), (10, 20, 5, 1), (20, 30, 5, 2), (40, 50, 5, 2), (50, 60, 0, 0)]
    s, e, n, a = (np.array(c) for c in zip(*rows))
    b.add_snapshot(0, 100, RegionColumns(s, e, n, a), total_bytes=50)
    m = merge_regions(b.build())
    got = list(zip(m.regions.start.tolist(), m.regions.end.tolist(), m.regions.nr_accesses.tolist(),
                   m.regions.age.tolist()))
    assert got == [(0, 20, 5, 1), (20, 30, 5, 2), (40, 50, 5, 2), (50, 60, 0, 0)]
    assert int(m.snapshots.total_bytes[0]) == 50


def test_missing_pid_is_a_usage_error(fake, capsys):
    assert cli(fake, "record", "-o", "/dev/null", "--target_pid", "999999999") == 2
    assert "no process with pid 999999999" in capsys.readouterr().err
    assert fake.commands == []


def test_snapshot_retries_when_tried_regions_change_under_it(fake, tree, owner):
    from damo_pipe.collect.snapshots import take_snapshot

    s = KdamondSession.create(tree, owner, MonitoringSpec(ops="paddr", regions=[[(0, 1 << 30)]]))
    real = s.read_tried_regions
    calls = []

    def flaky(*a, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise CollectError("cannot read 11/start")
        return real(*a, **kw)

    s.read_tried_regions = flaky
    snap = take_snapshot(s)
    assert len(calls) == 2 and len(snap.per_target[0]) == 40
    assert [c for c in fake.commands if c[1] == "update_schemes_tried_regions"].__len__() == 2
    s.stop()


def test_empty_tried_regions_are_retried_then_skipped(fake, tree, owner, tmp_path):
    from damo_pipe.archive import read_archive_records
    from damo_pipe.collect.recorder import ArchiveRecorder

    s = KdamondSession.create(tree, owner, MonitoringSpec(ops="paddr", regions=[[(0, 1 << 30)]]))
    real = s.read_tried_regions
    empty = [3]

    def sometimes_empty(*a, **kw):
        cols, total = real(*a, **kw)
        if empty[0] > 0:
            empty[0] -= 1
            return tuple(c[:0] for c in cols), 0
        return cols, total

    s.read_tried_regions = sometimes_empty
    rec = ArchiveRecorder(s, tmp_path / "e.h5")
    rec.step()          # 3 empty answers in a row: nothing appended
    rec.step()          # regions again
    rec.close()
    s.stop()
    r = read_archive_records(tmp_path / "e.h5")[0]
    assert r.nr_snapshots == 1 and r.snapshots.nr_regions[0] == 40


def test_unreadable_tried_regions_skip_a_snapshot_not_the_recording(fake, tree, owner, tmp_path):
    """A kdamond busy applying a scheme can rebuild tried_regions under the reader several
    times in a row: that snapshot is lost, the recording goes on; a kernel that never
    answers ends it with the error."""
    from damo_pipe.archive import read_archive_records
    from damo_pipe.collect import recorder as recorder_mod
    from damo_pipe.collect.recorder import ArchiveRecorder

    s = KdamondSession.create(tree, owner, MonitoringSpec(ops="paddr", regions=[[(0, 1 << 30)]]))
    real = s.read_tried_regions
    failures = [3]

    def vanishing(*a, **kw):
        if failures[0] > 0:
            failures[0] -= 1
            raise CollectError("reading tried regions failed: cannot read 12/start")
        return real(*a, **kw)

    s.read_tried_regions = vanishing
    rec = ArchiveRecorder(s, tmp_path / "v.h5")
    assert rec.step() is None               # 3 failed reads: this snapshot is skipped
    assert rec.step() is not None
    assert rec.nr_failed == 1 and rec.failed_in_a_row == 0
    failures[0] = 10 ** 6
    for _ in range(recorder_mod.MAX_FAILED_SNAPSHOTS_IN_A_ROW - 1):
        assert rec.step() is None
    with pytest.raises(CollectError, match="12/start"):
        rec.step()
    rec.close()
    s.stop()
    r = read_archive_records(tmp_path / "v.h5")[0]
    assert r.nr_snapshots == 1 and r.snapshots.nr_regions[0] == 40

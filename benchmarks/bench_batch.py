"""Benchmarks of ``damo-analyze batch``.

* ``test_batch_wall_time``: 100 archives of 100k regions each, 1 and 2 workers of a
  LocalCluster, in-process. Opt-in (minutes of work):
  ``DAMO_PIPE_BENCH_BATCH=1 .venv/bin/pytest benchmarks/bench_batch.py``.
  ``DAMO_PIPE_BENCH_BATCH_FILES`` / ``..._REGIONS`` change the size (defaults 100 / 100000).
  The archives are generated once per session (HDF5, the project's archive writer) from a
  numpy generator: 200 snapshots x 500 regions per archive, a hot band moving over time.
* ``test_fleet``: the fleet case (issue 16, target 6): 1,000 archives of 10k regions
  (20 snapshots x 500 regions) through the whole command ``damo-analyze batch DIR --out
  OUT --scheduler ADDR`` against a real ``dask scheduler`` and ``dask worker --nworkers N
  --nthreads 1`` processes on 127.0.0.1, N = 1 then 2. Opt-in:
  ``DAMO_PIPE_BENCH_FLEET=1 .venv/bin/pytest benchmarks/bench_batch.py -k fleet -s``
  (``DAMO_PIPE_BENCH_FLEET_FILES`` / ``..._REGIONS`` change the size; ``-k 'fleet and 1'``
  runs one half). The archives are generated once and kept in
  ``$DAMO_PIPE_BENCH_CACHE/fleet-v1`` (default /var/tmp/damo-bench; 1,000 x ~0.1 MiB).
  ``DAMO_PIPE_BENCH_FLEET_TASK_FILES=1`` runs the command with ``--task_files 1`` (one
  task per file) to compare with the default grouping.
  Each half waits (up to ``DAMO_PIPE_BENCH_LOAD_WAIT`` seconds, default 600) for the
  1-minute load average to fall below ``DAMO_PIPE_BENCH_MAX_LOAD`` (default 0.5) before it
  starts, and records the load. Measured: the command's wall time (interpreter start
  included), per-archive cost (wall / files, and the task durations each task reports in
  ``summary.json``), the client's phases (``-v`` log line of ``run_batch``), and the
  scheduler's own overhead: the same number of trivial tasks on the same cluster.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from damo_pipe.model import Intervals, Record, RegionColumns, SnapshotColumns
from tests.support.dask_cluster import free_port, wait_port

ENABLED = os.environ.get("DAMO_PIPE_BENCH_BATCH") == "1"
NR_FILES = int(os.environ.get("DAMO_PIPE_BENCH_BATCH_FILES", "100"))
NR_REGIONS = int(os.environ.get("DAMO_PIPE_BENCH_BATCH_REGIONS", "100000"))
REGIONS_PER_SNAPSHOT = 500

FLEET = os.environ.get("DAMO_PIPE_BENCH_FLEET") == "1"
FLEET_FILES = int(os.environ.get("DAMO_PIPE_BENCH_FLEET_FILES", "1000"))
FLEET_REGIONS = int(os.environ.get("DAMO_PIPE_BENCH_FLEET_REGIONS", "10000"))
CACHE = Path(os.environ.get("DAMO_PIPE_BENCH_CACHE", "/var/tmp/damo-bench")) / "fleet-v1"
MAX_LOAD = float(os.environ.get("DAMO_PIPE_BENCH_MAX_LOAD", "0.5"))
LOAD_WAIT = float(os.environ.get("DAMO_PIPE_BENCH_LOAD_WAIT", "600"))
BIN = Path(sys.executable).parent
#: DAMO_PIPE_BENCH_FLEET_TASK_FILES=N: the fleet command with --task_files N (1: one task
#: per file, as before inputs were grouped)
TASK_FILES_ARGS = (["--task_files", os.environ["DAMO_PIPE_BENCH_FLEET_TASK_FILES"]]
                   if os.environ.get("DAMO_PIPE_BENCH_FLEET_TASK_FILES") else [])


def make_record(seed, nr_regions=NR_REGIONS, per_snapshot=REGIONS_PER_SNAPSHOT):
    """One target: snapshots of ``per_snapshot`` regions (100 ms each) tiling 2 GiB."""
    rng = np.random.default_rng(seed)
    nr_snap = max(1, nr_regions // per_snapshot)
    n = nr_snap * per_snapshot
    base = np.uint64(0x7f0000000000)
    span = 2 << 30
    # per snapshot: sorted random cut points -> contiguous regions
    cuts = np.sort(rng.integers(1, span // 4096, size=(nr_snap, per_snapshot - 1)), axis=1) * 4096
    cuts = np.maximum.accumulate(cuts, axis=1)
    starts = np.concatenate([np.zeros((nr_snap, 1), np.int64), cuts], axis=1)
    ends = np.concatenate([cuts, np.full((nr_snap, 1), span, np.int64)], axis=1)
    ends = np.maximum(ends, starts + 4096)
    mid = (starts + ends) // 2
    hot_lo = (np.arange(nr_snap) * (span // nr_snap // 2))[:, None]
    hot = (mid >= hot_lo) & (mid < hot_lo + span // 8)
    cold = (rng.random(hot.shape) < 0.15) * rng.integers(1, 3, size=hot.shape)
    acc = np.where(hot, rng.integers(10, 20, size=hot.shape), cold)
    regions = RegionColumns(start=starts.ravel().astype(np.uint64) + base,
                            end=ends.ravel().astype(np.uint64) + base,
                            nr_accesses=acc.ravel(), age=rng.integers(0, 10, size=n))
    t = 10**9 + np.arange(nr_snap + 1, dtype=np.int64) * 100_000_000
    snaps = SnapshotColumns(start_ns=t[:-1], end_ns=t[1:],
                            region_offset=np.arange(nr_snap, dtype=np.int64) * per_snapshot,
                            nr_regions=np.full(nr_snap, per_snapshot, np.int64),
                            total_bytes=(ends - starts).sum(axis=1).astype(np.uint64))
    rec = Record(target_id=0, kdamond_idx=0, context_idx=0, snapshots=snaps, regions=regions,
                 intervals=Intervals(5000, 100000, 1000000))
    rec.check()
    return rec


@pytest.fixture(scope="session")
def archives(tmp_path_factory):
    from damo_pipe.archive import write_records
    d = tmp_path_factory.mktemp("batch-bench-in")
    t0 = time.perf_counter()
    for i in range(NR_FILES):
        write_records([make_record(i)], d / ("run%03d.h5" % i))
    print("\ngenerated %d archives of %d regions in %.1f s (%.1f MiB)"
          % (NR_FILES, NR_REGIONS, time.perf_counter() - t0,
             sum(p.stat().st_size for p in d.iterdir()) / 2**20))
    return d


@pytest.mark.skipif(not ENABLED, reason="opt-in: set DAMO_PIPE_BENCH_BATCH=1")
@pytest.mark.parametrize("workers", [1, 2])
def test_batch_wall_time(benchmark, archives, tmp_path, workers):
    from damo_pipe.analyze.batch import run_batch

    def run():
        out = tmp_path / ("out-%d" % len(list(tmp_path.iterdir())))
        return run_batch([archives], out, workers=workers)

    res = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    assert not res.failures, res.failures[:3]
    per_file = sorted(r["seconds"] for r in res.results)
    cpu = sum(r["cpu_seconds"] for r in res.results)
    load = os.getloadavg()[0]
    benchmark.extra_info.update(files=NR_FILES, regions_per_file=NR_REGIONS, workers=workers,
                                wall_s=res.seconds, task_median_s=per_file[len(per_file) // 2],
                                task_max_s=per_file[-1], task_cpu_sum_s=cpu, loadavg_1min=load)
    print("\nworkers=%d: %d files in %.1f s wall (task wall median %.2f s, max %.2f s; "
          "task CPU sum %.1f s = %.2f s/file; load average %.1f)"
          % (workers, NR_FILES, res.seconds, per_file[len(per_file) // 2], per_file[-1],
             cpu, cpu / NR_FILES, load))


# --------------------------------------------------------------------------- fleet

def trivial(x):
    return x


@pytest.fixture(scope="session")
def fleet_archives():
    """FLEET_FILES archives of FLEET_REGIONS regions, generated once into CACHE."""
    from damo_pipe.archive import write_records
    d = CACHE / ("%dx%d" % (FLEET_FILES, FLEET_REGIONS))
    done = d / ".complete"
    if not done.exists():
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        t0 = time.perf_counter()
        for i in range(FLEET_FILES):
            write_records([make_record(i, nr_regions=FLEET_REGIONS)], d / ("run%04d.h5" % i))
        done.write_text("%d archives of %d regions\n" % (FLEET_FILES, FLEET_REGIONS))
        print("\ngenerated %d archives of %d regions in %.1f s (%.1f MiB) into %s"
              % (FLEET_FILES, FLEET_REGIONS, time.perf_counter() - t0,
                 sum(p.stat().st_size for p in d.iterdir()) / 2**20, d))
    return d


def _wait_quiet():
    """Wait for the 1-minute load average to fall below MAX_LOAD; return it."""
    deadline = time.monotonic() + LOAD_WAIT
    load = os.getloadavg()[0]
    while load >= MAX_LOAD and time.monotonic() < deadline:
        time.sleep(10)
        load = os.getloadavg()[0]
    if load >= MAX_LOAD:
        pytest.skip("load average %.2f >= %.2f after %.0f s" % (load, MAX_LOAD, LOAD_WAIT))
    return load


class _Cluster:
    """A real ``dask scheduler`` + ``dask worker --nworkers N --nthreads 1`` on 127.0.0.1."""

    def __init__(self, workers, logdir):
        self.procs = []
        port = free_port()
        self.addr = "tcp://127.0.0.1:%d" % port
        try:
            sched = self._start(["scheduler", "--host", "127.0.0.1", "--port", str(port),
                                 "--dashboard-address", ":0", "--no-show"],
                                logdir / "scheduler.log")
            wait_port(port, sched, time.monotonic() + 60)
            self._start(["worker", self.addr, "--nworkers", str(workers), "--nthreads", "1",
                         "--host", "127.0.0.1", "--dashboard-address", ":0"],
                        logdir / "worker.log")
            from distributed import Client
            with Client(self.addr, timeout="30s") as c:
                c.wait_for_workers(workers, timeout=120)
        except BaseException:
            self.close()
            raise

    def _start(self, args, log):
        f = open(log, "w")
        p = subprocess.Popen([str(BIN / "dask")] + args, stdout=f, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs.append((p, f))
        return p

    def cpu(self):
        """CPU seconds (user + system) so far of the scheduler and of the worker side (the
        ``dask worker`` process and its worker processes)."""
        import psutil

        def tree(pid):
            try:
                procs = [psutil.Process(pid)]
                procs += procs[0].children(recursive=True)
            except psutil.NoSuchProcess:
                return 0.0
            total = 0.0
            for p in procs:
                try:
                    t = p.cpu_times()
                    total += t.user + t.system
                except psutil.NoSuchProcess:
                    pass
            return total
        return tree(self.procs[0][0].pid), tree(self.procs[1][0].pid)

    def close(self):
        for p, f in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p, f in reversed(self.procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
            f.close()
        self.procs = []


@pytest.mark.skipif(not FLEET, reason="opt-in: set DAMO_PIPE_BENCH_FLEET=1")
@pytest.mark.skipif(not (BIN / "dask").exists(), reason="no dask command next to python")
@pytest.mark.parametrize("workers", [1, 2])
def test_fleet(benchmark, fleet_archives, tmp_path, workers):
    from distributed import Client, as_completed

    cluster = _Cluster(workers, tmp_path)
    try:
        # warm the workers (imports: numpy, h5py, matplotlib) outside the timed run, as a
        # long-lived cluster would be; the first-task import cost is reported separately
        warm = tmp_path / "warm"
        t0 = time.perf_counter()
        subprocess.run([str(BIN / "damo-analyze"), "batch"]
                       + [str(fleet_archives / ("run%04d.h5" % i)) for i in range(2 * workers)]
                       + ["--out", str(warm), "--scheduler", cluster.addr, "--no_progress"],
                       check=True, capture_output=True)
        warm_s = time.perf_counter() - t0
        load0 = _wait_quiet()
        out = tmp_path / "out"
        cmd = [str(BIN / "damo-analyze"), "-v", "batch", str(fleet_archives), "--out", str(out),
               "--scheduler", cluster.addr, "--no_progress"] + TASK_FILES_ARGS
        state = {}

        def run():
            import resource
            c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            s0, w0 = cluster.cpu()
            t = time.perf_counter()
            state["proc"] = subprocess.run(cmd, capture_output=True, text=True)
            state["wall"] = time.perf_counter() - t
            s1, w1 = cluster.cpu()
            c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            state["cpu"] = {"client": c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime,
                            "scheduler": s1 - s0, "worker_processes": w1 - w0}

        benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
        load1 = os.getloadavg()[0]
        proc, wall = state["proc"], state["wall"]
        assert proc.returncode == 0, proc.stderr[-2000:]
        m = re.search(r"inputs on \d+ worker\(s\): (.*), total ([0-9.]+) s", proc.stderr)
        phases = dict((k, float(v)) for k, v in
                      re.findall(r"(\w+) ([0-9.]+) s", m.group(1))) if m else {}
        run_batch_s = float(m.group(2)) if m else float("nan")
        tasks = []
        for d in out.iterdir():
            if d.is_dir():
                tasks.append(json.loads((d / "summary.json").read_text())["analysis"])
        assert len(tasks) == FLEET_FILES
        secs = sorted(t["seconds"] for t in tasks)
        cpu = sum(t["cpu_seconds"] for t in tasks)
        task_sum = sum(secs)
        # the scheduler's own per-task cost: as many trivial tasks on the same cluster
        with Client(cluster.addr, timeout="30s") as c:
            tt = []
            for _ in range(3):
                t = time.perf_counter()
                futs = c.map(trivial, range(FLEET_FILES), pure=False)
                for f in as_completed(futs):
                    f.result()
                    f.release()
                tt.append(time.perf_counter() - t)
                del futs
        trivial_s = min(tt)
    finally:
        cluster.close()
    info = dict(files=FLEET_FILES, regions_per_file=FLEET_REGIONS, workers=workers,
                wall_s=wall, run_batch_s=run_batch_s, phases=phases,
                per_archive_wall_s=wall / FLEET_FILES,
                task_median_s=secs[len(secs) // 2], task_max_s=secs[-1],
                task_wall_sum_s=task_sum, task_cpu_sum_s=cpu,
                overhead_s=wall - task_sum / workers, cpu_s=state["cpu"],
                trivial_tasks_s=trivial_s, warm_first_batch_s=warm_s,
                loadavg_before=load0, loadavg_after=load1)
    benchmark.extra_info.update(info)
    print("\nfleet workers=%d: %d x %d regions in %.1f s wall (command; run_batch %.1f s: %s)\n"
          "  per archive %.1f ms wall; task median %.1f ms, max %.1f ms, sum %.1f s "
          "(CPU %.1f s); not in tasks: %.1f s\n"
          "  CPU of the command (client) %.1f s, the scheduler %.1f s, the worker processes "
          "%.1f s (tasks: %.1f s)\n"
          "  %d trivial tasks: %.2f s (%.2f ms each); warm-up command (2 files a "
          "worker, cold workers) %.1f s; load %.2f before, %.2f after"
          % (workers, FLEET_FILES, FLEET_REGIONS, wall, run_batch_s,
             ", ".join("%s %.2f s" % kv for kv in phases.items()),
             1000 * wall / FLEET_FILES, 1000 * secs[len(secs) // 2], 1000 * secs[-1], task_sum,
             cpu, wall - task_sum / workers, state["cpu"]["client"], state["cpu"]["scheduler"],
             state["cpu"]["worker_processes"], cpu, FLEET_FILES, trivial_s,
             1000 * trivial_s / FLEET_FILES, warm_s, load0, load1))

"""Benchmark of ``damo-analyze batch``: 100 archives of 100k regions each, 1 and 2 workers.

Opt-in (minutes of work): ``DAMO_PIPE_BENCH_BATCH=1 .venv/bin/pytest benchmarks/bench_batch.py``.
``DAMO_PIPE_BENCH_BATCH_FILES`` / ``..._REGIONS`` change the size (defaults 100 / 100000).
The archives are generated once per session (HDF5, the project's archive writer) from a
numpy generator: 200 snapshots x 500 regions per archive, a hot band moving over time.
"""
import os
import time

import numpy as np
import pytest

from damo_pipe.model import Intervals, Record, RegionColumns, SnapshotColumns

ENABLED = os.environ.get("DAMO_PIPE_BENCH_BATCH") == "1"
NR_FILES = int(os.environ.get("DAMO_PIPE_BENCH_BATCH_FILES", "100"))
NR_REGIONS = int(os.environ.get("DAMO_PIPE_BENCH_BATCH_REGIONS", "100000"))
REGIONS_PER_SNAPSHOT = 500

pytestmark = pytest.mark.skipif(not ENABLED, reason="opt-in: set DAMO_PIPE_BENCH_BATCH=1")


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

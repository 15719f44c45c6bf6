"""Collector overhead: CPU time per snapshot and archive growth (fake sysfs tree).

pytest-benchmark:   .venv/bin/pytest benchmarks/bench_collect.py
stand-alone table:  .venv/bin/python benchmarks/bench_collect.py [--regions 100 1000 10000]

Two measurements per region count N:
* ``read``: reading N tried regions (4 files each) from a static tree, Cython vs Python;
* ``step``: the collector's whole per-snapshot work (write the state command, wait for
  it, read the regions, build the records, append; DAMOS stats and footprints as due;
  flush every second) measured as CPU time of the collector's thread, with the simulated
  kernel running in another thread (its CPU time is not counted).
Archive growth = file growth per snapshot (random access frequencies: a worst case for
compression) x snapshots per hour at the default 100 ms aggregation interval.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _fast_tmp():
    return tempfile.mkdtemp(prefix="bench-collect-",
                            dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)


def make_static_tree(n):
    d = _fast_tmp()
    for i in range(n):
        rd = os.path.join(d, str(i))
        os.mkdir(rd)
        for f, v in (("start", i * 8192), ("end", i * 8192 + 8192), ("nr_accesses", i % 21),
                     ("age", i % 7)):
            with open(os.path.join(rd, f), "w") as fh:
                fh.write("%d\n" % v)
    return d


@pytest.mark.parametrize("engine", ["cython", "python"])
@pytest.mark.parametrize("n", [100, 1000, 10000])
def test_read_tried_regions(benchmark, n, engine):
    from damo_pipe.collect.sysfs import read_tried_regions
    d = make_static_tree(n)
    try:
        cols = benchmark(read_tried_regions, d, n, False, engine)
        assert len(cols[0]) == n and int(cols[1][-1]) == n * 8192
    finally:
        shutil.rmtree(d)


def _load_fake_kernel():
    """tests/support/fake_kernel.py, loaded by path (benchmarks/ is not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("fake_kernel", REPO / "tests/support/fake_kernel.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def measure_steps(n, seconds=3.0, engine="auto"):
    """(cpu seconds per snapshot, wall per snapshot, bytes per snapshot) for N regions."""
    FakeKernel = _load_fake_kernel().FakeKernel
    from damo_pipe.collect.kdamond import KdamondSession, MonitoringSpec
    from damo_pipe.collect.ownership import OwnershipFile
    from damo_pipe.collect.recorder import ArchiveRecorder
    from damo_pipe.collect.sysfs import SysfsTree

    import numpy as np
    rng = np.random.default_rng(1)

    def noisy(target_idx, start, end, tick, max_nr):
        # random frequencies: a worst case for compression (real data repeats more)
        return rng.integers(0, max_nr + 1, len(start))

    d = _fast_tmp()
    k = FakeKernel(os.path.join(d, "admin"), nr_regions=n, check_pids=False,
                   access_fn=noisy).start()
    try:
        spec = MonitoringSpec(ops="paddr", regions=[[(1 << 20, (1 << 20) + n * (1 << 20))]],
                              max_nr_regions=max(1000, n))
        s = KdamondSession.create(SysfsTree(k.root), OwnershipFile(os.path.join(d, "o.json")), spec)
        out = os.path.join(d, "bench.h5")
        rec = ArchiveRecorder(s, out, flush_interval=1.0, engine=engine)
        rec.step()   # warm-up
        rec.flush()
        size0 = os.path.getsize(out)
        cpu = wall = 0.0
        steps = 0
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end or steps < 3:
            c0, w0 = time.thread_time(), time.perf_counter()
            rec.step()
            cpu += time.thread_time() - c0
            wall += time.perf_counter() - w0
            steps += 1
        rec.flush()
        size = os.path.getsize(out)
        rec.close()
        s.stop()
        return cpu / steps, wall / steps, (size - size0) / steps, steps
    finally:
        k.stop()
        shutil.rmtree(d, ignore_errors=True)


def archive_bytes_per_snapshot(n, k=None, compression=None):
    """File bytes per snapshot of K snapshots x N regions written like the recorder does
    (ArchiveWriter appends, flushed every 10 snapshots): region layout that drifts a
    little, random nr_accesses 0..20 and ages (worse for compression than real data)."""
    import numpy as np
    from damo_pipe.archive import ArchiveWriter
    from damo_pipe.model import Record, RecordBuilder, RegionColumns

    k = k or max(50, 400000 // n)
    rng = np.random.default_rng(2)
    d = _fast_tmp()
    try:
        out = os.path.join(d, "g.h5")
        from damo_pipe.analyze.heatmap import GuideBuilder   # as the recorder's writer
        w = ArchiveWriter(out, swmr=True, compression=compression, summariser=GuideBuilder)
        idx = w.add_record(Record(target_id=0))
        base = np.arange(n, dtype=np.uint64) * np.uint64(1 << 20) + np.uint64(1 << 30)
        w.flush()
        size0 = os.path.getsize(out)
        for j in range(k):
            b = RecordBuilder(Record(target_id=0))
            jitter = rng.integers(0, 16, n).astype(np.uint64) * np.uint64(4096)
            start = base + jitter
            end = np.append(start[1:], base[-1] + np.uint64(1 << 20))
            b.add_snapshot(j * 100_000_000, (j + 1) * 100_000_000,
                           RegionColumns(start, end, rng.integers(0, 21, n), rng.integers(0, 50, n)))
            w.append(idx, b.build())
            if j % 10 == 9:
                w.flush()
        w.close()
        return (os.path.getsize(out) - size0) / k
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("n", [100, 1000])
def test_snapshot_step_cpu(n):
    cpu, wall, per_snap, steps = measure_steps(n, seconds=1.0)
    assert cpu > 0 and per_snap > 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regions", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args(argv)
    from damo_pipe.collect.sysfs import read_tried_regions
    print("| regions | read (Cython) | read (Python) | collector CPU / snapshot | "
          "archive bytes / snapshot | archive growth / hour (100 ms aggr) |")
    print("|---|---|---|---|---|---|")
    for n in args.regions:
        d = make_static_tree(n)
        times = {}
        for engine in ("cython", "python"):
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                read_tried_regions(d, n, False, engine)
                best = min(best, time.perf_counter() - t0)
            times[engine] = best
        shutil.rmtree(d)
        cpu, wall, _, steps = measure_steps(n, args.seconds)
        per_snap = archive_bytes_per_snapshot(n)
        print("| %d | %.2f ms | %.2f ms | %.2f ms | %.0f B | %.1f MiB |"
              % (n, times["cython"] * 1e3, times["python"] * 1e3, cpu * 1e3, per_snap,
                 per_snap * 36000 / 2 ** 20))
    return 0


if __name__ == "__main__":
    sys.exit(main())

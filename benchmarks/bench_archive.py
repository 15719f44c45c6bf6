"""Archive write and read throughput (regions/s) at 1M regions for each compression.

Run: .venv/bin/python -m pytest benchmarks/bench_archive.py --benchmark-only \
         --benchmark-columns=min,mean
Figures: docs/performance.md. Besides the wall-clock timings of pytest-benchmark,
``extra_info`` holds the best CPU time of the process (user + system, Blosc threads
included) over the rounds, which is what matters on a loaded machine.

* write: ``ArchiveWriter`` (one record, appended at once, closed: this includes the
  guide summary written at close time);
* read: every column of every region (``iter_chunks``), and the four columns the
  heatmap reads (``columns=("start", "end", "nr_accesses", "age")``).
"""
import os
import time

import pytest

from benchmarks.gen import make_record
from damo_pipe.archive import ArchiveReader, ArchiveWriter, layout

NR_SNAPSHOTS, PER_SNAPSHOT = 1000, 1000   # 1M regions
HEATMAP_COLUMNS = ("start", "end", "nr_accesses", "age")


@pytest.fixture(scope="module")
def record():
    return make_record(NR_SNAPSHOTS, PER_SNAPSHOT, seed=7)


def _write(record, path, compression):
    from damo_pipe.analyze.heatmap import GuideBuilder   # the guide summary, as convert stores it
    with ArchiveWriter(path, compression=compression, summariser=GuideBuilder) as w:
        w.append(w.add_record(record.meta()), record)


def _best_cpu(fn, rounds=5):
    best = float("inf")
    for _ in range(rounds):
        c = time.process_time()
        fn()
        best = min(best, time.process_time() - c)
    return best


@pytest.mark.parametrize("compression", layout.COMPRESSIONS)
def test_archive_write(benchmark, record, tmp_path, compression):
    path = tmp_path / "w.h5"
    benchmark.pedantic(_write, args=(record, path, compression), rounds=5, iterations=1)
    cpu = _best_cpu(lambda: _write(record, path, compression))
    benchmark.extra_info["regions_per_s"] = record.nr_regions / benchmark.stats.stats.min
    benchmark.extra_info["cpu_seconds"] = cpu
    benchmark.extra_info["regions_per_cpu_s"] = record.nr_regions / cpu
    benchmark.extra_info["bytes_per_region"] = os.path.getsize(path) / record.nr_regions


@pytest.mark.parametrize("columns", [None, HEATMAP_COLUMNS], ids=["all", "heatmap"])
@pytest.mark.parametrize("compression", layout.COMPRESSIONS)
def test_archive_read(benchmark, record, tmp_path, compression, columns):
    path = tmp_path / "r.h5"
    _write(record, path, compression)

    def read_all():
        with ArchiveReader(path) as r:
            return sum(c.nr_regions for c in r.iter_chunks(0, columns=columns))

    assert benchmark.pedantic(read_all, rounds=5, iterations=1) == record.nr_regions
    cpu = _best_cpu(read_all)
    benchmark.extra_info["regions_per_s"] = record.nr_regions / benchmark.stats.stats.min
    benchmark.extra_info["cpu_seconds"] = cpu
    benchmark.extra_info["regions_per_cpu_s"] = record.nr_regions / cpu

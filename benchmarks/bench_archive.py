"""Archive write and read throughput (regions/s) at 1M regions for each compression.

Run: .venv/bin/python -m pytest benchmarks/bench_archive.py --benchmark-columns=min,mean
Figures: docs/performance.md, "Archive".
"""
import os

import pytest

from benchmarks.gen import make_record
from damo_pipe.archive import ArchiveReader, ArchiveWriter, layout

NR_SNAPSHOTS, PER_SNAPSHOT = 1000, 1000   # 1M regions


@pytest.fixture(scope="module")
def record():
    return make_record(NR_SNAPSHOTS, PER_SNAPSHOT, seed=7)


def _write(record, path, compression):
    with ArchiveWriter(path, compression=compression) as w:
        w.append(w.add_record(record.meta()), record)


@pytest.mark.parametrize("compression", layout.COMPRESSIONS)
def test_archive_write(benchmark, record, tmp_path, compression):
    path = tmp_path / "w.h5"
    benchmark.pedantic(_write, args=(record, path, compression), rounds=5, iterations=1)
    benchmark.extra_info["regions_per_s"] = record.nr_regions / benchmark.stats.stats.min
    benchmark.extra_info["bytes_per_region"] = os.path.getsize(path) / record.nr_regions


@pytest.mark.parametrize("compression", layout.COMPRESSIONS)
def test_archive_read(benchmark, record, tmp_path, compression):
    path = tmp_path / "r.h5"
    _write(record, path, compression)

    def read_all():
        with ArchiveReader(path) as r:
            return sum(c.nr_regions for c in r.iter_chunks(0))

    assert benchmark.pedantic(read_all, rounds=5, iterations=1) == record.nr_regions
    benchmark.extra_info["regions_per_s"] = record.nr_regions / benchmark.stats.stats.min

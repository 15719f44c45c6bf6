"""Benchmarks of the holistic view's hotspots (pytest-benchmark).

    .venv/bin/pytest benchmarks/bench_holistic.py --benchmark-only

A synthetic 1-hour recording's CPU profile: 14.4 M samples (perf's default 4 kHz on
one busy CPU for 3600 s), 3,000 functions in 30 binaries with a Zipf-like popularity,
stored in an archive as ``damo-collect`` stores it (``ArchiveWriter.set_profile``).

* hotspots of a 1-minute window straight from the archive (open, time index, the
  window's rows, count): the issue's target is under 100 ms;
* the same window with the pure-Python twin (the reference), for the speed-up;
* hotspots per window over the whole hour (12 windows, what the picture draws), from
  the sample table in memory.

Figures are recorded in docs/performance.md.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

HOUR_S = 3600
RATE_HZ = 4000
NR_SYMBOLS = 3000
NR_DSOS = 30
T0 = 1_750_000_000 * 10**9


def make_profile(seconds=HOUR_S, rate_hz=RATE_HZ, seed=1):
    """ProfileSamples of a synthetic recording (deterministic)."""
    from damo_pipe.formats.perf_samples import ProfileSamples
    rng = np.random.default_rng(seed)
    n = seconds * rate_hz
    t = T0 + np.sort(rng.integers(0, seconds * 10**9, n))
    sym = (rng.zipf(1.3, n) - 1) % NR_SYMBOLS
    return ProfileSamples(t, np.full(n, 4242), rng.integers(4242, 4250, n), sym, sym % NR_DSOS,
                          ["function_%04d" % i for i in range(NR_SYMBOLS)],
                          ["/usr/lib/libbench%02d.so" % i for i in range(NR_DSOS)])


@pytest.fixture(scope="module")
def hour(tmp_path_factory):
    from damo_pipe.archive import ArchiveWriter
    from damo_pipe.model import Record
    samples = make_profile()
    path = tmp_path_factory.mktemp("bench-holistic") / "hour.h5"
    with ArchiveWriter(path) as w:
        w.add_record(Record(target_id=0))
        w.set_profile(None, samples, {"perf_clock": "realtime"})
    return path, samples


MINUTE = (T0 + 1800 * 10**9, T0 + 1860 * 10**9)


def test_window_hotspots_from_archive(benchmark, hour):
    from damo_pipe.analyze.hotspots import window_hotspots
    path, samples = hour
    spots = benchmark(window_hotspots, path, *MINUTE, 10)
    assert spots[0].symbol == "function_0000" and sum(h.samples for h in spots) > 100_000
    benchmark.extra_info.update(nr_samples=len(samples), archive_bytes=os.path.getsize(path),
                                window_samples=len(samples.window(*MINUTE)))
    assert benchmark.stats.stats.median < 0.1, "hotspots of a 1-minute window took >= 100 ms"


def test_window_hotspots_python_twin(benchmark, hour):
    from damo_pipe.analyze.hotspots import hotspots
    _, samples = hour
    win = samples.window(*MINUTE)
    got = benchmark.pedantic(hotspots, args=(win,), kwargs={"top": 10, "engine": "python"},
                             rounds=3, iterations=1)
    assert got == hotspots(win, top=10)


def test_hotspots_over_the_hour(benchmark, hour):
    from damo_pipe.analyze.hotspots import hotspots_over_time
    _, samples = hour
    edges = np.linspace(T0, T0 + HOUR_S * 10**9, 13).astype(np.int64)
    names, counts, totals = benchmark.pedantic(hotspots_over_time, args=(samples, edges, 8),
                                               rounds=3, iterations=1)
    assert int(totals.sum()) == len(samples) and len(names) == 8

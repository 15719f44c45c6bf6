"""Benchmark of ``report access`` on a 1M-region record: Cython kernels vs pure-Python twins.

Run (from the repository root): ``.venv/bin/python -m pytest benchmarks/bench_access.py --benchmark-columns=min,mean,rounds``
(``DAMO_PIPE_BENCH_ACCESS_REGIONS`` changes the size; default 1,000,000 regions in one
snapshot). The record comes from ``benchmarks.gen.make_record`` (contiguous 4 KiB-aligned
regions, nr_accesses 0..20, ages 0..499 aggregation intervals). Every benchmark also
checks that both engines print the same text.
"""
import os

import pytest

from damo_pipe.analyze.access import AccessOptions, render_report

NR_REGIONS = int(os.environ.get("DAMO_PIPE_BENCH_ACCESS_REGIONS", "1000000"))

#: (benchmark id, AccessOptions fields); region listings are switched off where noted so
#: that the aggregation, not 1M lines of text, is measured
CASES = [
    ("temperature-percentiles", dict(style="temperature-percentiles")),
    ("recency-percentiles", dict(style="recency-percentiles")),
    ("temperature-sz-hist", dict(style="temperature-sz-hist")),
    ("recency-sz-hist-log", dict(style="recency-sz-hist", hist_logscale=True)),
    ("heatmap-only", dict(format_ops=[["set", "region", ""]])),
    ("detailed-full", dict()),
]


@pytest.fixture(scope="module")
def record():
    from benchmarks.gen import make_record
    return make_record(nr_snapshots=1, regions_per_snapshot=NR_REGIONS, seed=7)


@pytest.fixture(scope="module")
def python_outputs():
    return {}


@pytest.mark.parametrize("engine", ["cython", "python"])
@pytest.mark.parametrize("case,fields", CASES, ids=[c[0] for c in CASES])
def test_access_report(benchmark, record, python_outputs, case, fields, engine):
    if engine == "cython":
        pytest.importorskip("damo_pipe.analyze._access_kernels")
    opts = AccessOptions(engine=engine, **fields)
    rounds = 3 if engine == "cython" else 1
    text = benchmark.pedantic(render_report, args=([record], opts), rounds=rounds, iterations=1)
    key = case
    if key in python_outputs:
        assert text == python_outputs[key]
    else:
        python_outputs[key] = text

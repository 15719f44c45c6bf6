"""Benchmarks of the report kernels (pytest-benchmark).

    .venv/bin/pytest benchmarks/bench_reports.py --benchmark-only
    DAMO_PIPE_BENCH_10M=1 .venv/bin/pytest benchmarks/bench_reports.py --benchmark-only -k 10m

* heatmap (``--output raw``, 500x500, guides + hottest range + pixels + text) streamed
  from an HDF5 archive at 1M regions, and at 10M regions when DAMO_PIPE_BENCH_10M=1
  (peak RSS, wall and CPU seconds of a child process after its imports, and of the whole
  ``damo-analyze`` command, stored in ``extra_info``);
* the same algorithm in pure Python (damo's operation order, our reference twin) on
  100k regions, for the speed-up per region;
* wss (default options) and adjust (1 s windows) on 100 snapshots x 10,000 regions, and
  the pure-Python quadratic merge on a smaller input.

Figures are recorded in docs/performance.md.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

try:
    from benchmarks.gen import make_record
except ImportError:  # run as a rootdir-less test module: benchmarks/ is on sys.path
    from gen import make_record

BIG = os.environ.get("DAMO_PIPE_BENCH_10M") == "1"


def _archive(tmp_path_factory, nsnap, per, name):
    from damo_pipe.archive import write_records
    path = tmp_path_factory.mktemp("bench") / name
    from damo_pipe.analyze.heatmap import GuideBuilder   # stored guide, as convert writes it
    write_records([make_record(nsnap, per, 1)], path, summariser=GuideBuilder)
    return path


@pytest.fixture(scope="module")
def archive_1m(tmp_path_factory):
    return _archive(tmp_path_factory, 1000, 1000, "1m.h5")


@pytest.fixture(scope="module")
def archive_10m(tmp_path_factory):
    if not BIG:
        pytest.skip("set DAMO_PIPE_BENCH_10M=1 for the 10M-region benchmarks")
    return _archive(tmp_path_factory, 10000, 1000, "10m.h5")


def _heatmap_raw(path, engine="cython"):
    from damo_pipe.analyze import heatmap as hm
    from damo_pipe.analyze._chunks import RecordSource
    with RecordSource.open([path]) as src:
        grids = hm.compute_heatmaps(src, resol=(500, 500), engine=engine)
    return sum(len(hm.format_raw(g)) for g in grids)


_CHILD = textwrap.dedent("""
    import sys, time
    from damo_pipe.analyze import heatmap as hm
    from damo_pipe.analyze._chunks import RecordSource
    t = time.perf_counter()
    c = time.process_time()
    with RecordSource.open([sys.argv[1]]) as src:
        grids = hm.compute_heatmaps(src, resol=(500, 500))
    n = sum(len(hm.format_raw(g)) for g in grids)
    # VmHWM (not ru_maxrss, which Linux carries over from the forking parent)
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
    print(time.perf_counter() - t, int(hwm) // 1024, time.process_time() - c)
""")


def _child_rss(path):
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1]), float(out[2])


#: what the ``damo-analyze`` console script runs (cli.console_main: main(), then the
#: fast exit), plus a report of the peak RSS (VmHWM) before leaving. (The child's
#: ru_maxrss from wait4 would be useless: Linux keeps a forked child's high-water mark
#: across exec, so it shows the size of this pytest process.)
_CLI_CHILD = textwrap.dedent("""
    import sys
    from damo_pipe._cli_common import exit_fast
    from damo_pipe.analyze.cli import main
    sys.argv = ["damo-analyze"] + sys.argv[1:]
    rc = main()
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
    sys.stderr.write("%d\\n" % (int(hwm) // 1024))
    sys.exit(exit_fast(rc))
""")


@pytest.fixture(scope="module", autouse=True)
def compiled_bytecode():
    """Measure the command as installed: byte code compiled (pip does that; an editable
    checkout under PYTHONDONTWRITEBYTECODE would recompile changed modules each run)."""
    import compileall
    import damo_pipe
    compileall.compile_dir(os.path.dirname(damo_pipe.__file__), quiet=1)


def _cli(path):
    """The whole command (``damo-analyze report heatmap --output raw``, interpreter start
    and imports included, text written to /dev/null): wall seconds, CPU seconds (user +
    system of the child) and peak RSS (VmHWM)."""
    import time
    with open(os.devnull, "w") as null:
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", _CLI_CHILD, "report", "heatmap", "--input",
                                 str(path), "--output", "raw"], stdout=null, stderr=subprocess.PIPE,
                                text=True)
        err = proc.stderr.read()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, err
    return wall, ru.ru_utime + ru.ru_stime, int(err.split()[-1])


#: damo 3.4.3's ``report heatmap --output raw`` on the 10M-region record (issue 4)
DAMO_10M_SECONDS = 235.0
CLI_RUNS = 15


def _extra(benchmark, path, regions):
    """Child-process figures: the report after imports once, and the whole command
    CLI_RUNS times (median and best wall; the machine is shared, the median is the
    figure to quote)."""
    import statistics
    secs, rss, cpu = _child_rss(path)
    runs = [_cli(path) for _ in range(CLI_RUNS)]
    walls = sorted(r[0] for r in runs)
    cli_wall = statistics.median(walls)
    cli_cpu = statistics.median(r[1] for r in runs)
    cli_rss = max(r[2] for r in runs)
    info = dict(peak_rss_mib=rss, child_seconds=secs, child_cpu_seconds=cpu,
                cli_seconds=cli_wall, cli_best_seconds=walls[0], cli_worst_seconds=walls[-1],
                cli_cpu_seconds=cli_cpu, cli_peak_rss_mib=cli_rss, regions=regions)
    if regions == 10_000_000:
        info["speedup_vs_damo_median"] = round(DAMO_10M_SECONDS / cli_wall)
    benchmark.extra_info.update(info)
    return max(rss, cli_rss)


def test_heatmap_archive_1m(benchmark, archive_1m):
    n = benchmark.pedantic(_heatmap_raw, args=(archive_1m,), rounds=3, iterations=1)
    assert n > 0
    _extra(benchmark, archive_1m, 1_000_000)


def test_heatmap_archive_10m(benchmark, archive_10m):
    n = benchmark.pedantic(_heatmap_raw, args=(archive_10m,), rounds=3, iterations=1)
    assert n > 0
    assert _extra(benchmark, archive_10m, 10_000_000) <= 300


def test_heatmap_pure_python_100k(benchmark):
    from damo_pipe.analyze import heatmap as hm
    rec = make_record(100, 1000, 1)
    benchmark.pedantic(hm.compute_heatmaps, args=([rec],),
                       kwargs=dict(resol=(500, 500), engine="python"), rounds=1, iterations=1)
    benchmark.extra_info.update(regions=100_000)


def test_heatmap_cython_100k(benchmark):
    from damo_pipe.analyze import heatmap as hm
    rec = make_record(100, 1000, 1)
    benchmark(hm.compute_heatmaps, [rec], resol=(500, 500))
    benchmark.extra_info.update(regions=100_000)


@pytest.fixture(scope="module")
def rec_100x10k():
    return make_record(100, 10000, 2)


def test_wss_100x10k(benchmark, rec_100x10k):
    from damo_pipe.analyze import wss
    out = benchmark(wss.compute_wss, [rec_100x10k])
    assert len(out[0].wss_bytes) == 80


def test_wss_worktime_1s_100x10k(benchmark, rec_100x10k):
    from damo_pipe.analyze import wss
    out = benchmark.pedantic(wss.compute_wss, args=([rec_100x10k],),
                             kwargs=dict(work_time_us=1_000_000), rounds=3, iterations=1)
    assert 0 < len(out[0].wss_bytes) < 10


def test_adjust_1s_100x10k(benchmark, rec_100x10k):
    from damo_pipe.analyze.adjust import adjust_records
    out = benchmark.pedantic(adjust_records, args=([rec_100x10k], 1_000_000, 20),
                             rounds=3, iterations=1)
    assert 0 < out[0].nr_snapshots < 10


@pytest.mark.parametrize("per", [1000, 2000])
def test_adjust_pure_python_quadratic(benchmark, per):
    """damo's merge rule in pure Python (reference twin; a linear scan per region)."""
    from damo_pipe.analyze.adjust import adjust_records
    rec = make_record(20, per, 3)
    benchmark.pedantic(adjust_records, args=([rec], 1_000_000, 0),
                       kwargs=dict(engine="python"), rounds=1, iterations=1)
    benchmark.extra_info.update(regions_per_snapshot=per)


@pytest.mark.parametrize("nsnap", [50, 100, 200])
def test_adjust_cython_linear(benchmark, nsnap):
    """The bisection merge: time grows linearly with the number of regions."""
    from damo_pipe.analyze.adjust import adjust_records
    rec = make_record(nsnap, 10000, 3)
    benchmark.pedantic(adjust_records, args=([rec], 1_000_000, 0), rounds=3, iterations=1)
    benchmark.extra_info.update(regions=nsnap * 10000)

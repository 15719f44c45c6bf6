"""Whole-command conversion at scale and 100M-region records (issue 16, targets 3 and 4).

    .venv/bin/pytest benchmarks/bench_scale.py --benchmark-only              # nothing big: skipped
    DAMO_PIPE_BENCH_SCALE=1 .venv/bin/pytest benchmarks/bench_scale.py --benchmark-only -k 10m
    DAMO_PIPE_BENCH_SCALE=1 .venv/bin/pytest benchmarks/bench_scale.py --benchmark-only -k 100m

Every case runs one whole ``damo-analyze`` command in a fresh process (interpreter
start and imports included, as a user runs it), rounds taken as the minimum (the
machine is shared), and records the peak RSS of the command
(``getrusage(RUSAGE_CHILDREN)`` of a helper process that runs only that command).

Target 3, 10M regions (10,000 snapshots x 1,000 regions) converted to ``.h5``:
legacy binary v2 >= 20M regions/s, perf script text >= 3M regions/s, json_compressed
>= 70 % of the speed of merely inflating the file (``zlib`` in this process, 256 KiB
pieces, 4 MiB of output per step: the fastest plain inflate here; measured right before
each conversion round, so that both see the same load; the ratio is the best floor over
the best conversion), each <= 300 MiB peak RSS.

Target 4, 100M regions (100,000 snapshots x 1,000 regions): ``report heatmap --output
raw`` and ``report wss`` on an archive, ``convert`` of a legacy binary file of 100M
regions to ``.h5``; each <= 300 MiB peak RSS, heatmap <= 5 s. The same two reports on
100M regions in the page-granularity shape (4 snapshots x 25M regions, ``-k page``):
<= 300 MiB (huge snapshots are read in pieces).

Inputs are generated once (benchmarks/gen.py, bounded memory) and cached under
$DAMO_PIPE_BENCH_CACHE (default /var/tmp/damo-bench): ~4.5 GB. Rates are asserted on
wall-clock time only with DAMO_PIPE_BENCH_STRICT=1 (a quiet machine); the RSS limits
always. Figures: docs/performance.md, "Conversion at scale and 100M-region records".
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from benchmarks import gen

RUN = os.environ.get("DAMO_PIPE_BENCH_SCALE") == "1"
STRICT = os.environ.get("DAMO_PIPE_BENCH_STRICT") == "1"
CACHE = Path(os.environ.get("DAMO_PIPE_BENCH_CACHE", "/var/tmp/damo-bench")) / "scale-v1"
need_scale = pytest.mark.skipif(not RUN, reason="set DAMO_PIPE_BENCH_SCALE=1 (10M/100M regions, "
                                "~4.5 GB of cached inputs)")

REGIONS = 1000
N10M = 10_000_000
N100M = 100_000_000
RSS_LIMIT_MIB = 300
TARGETS = {"record": 20e6, "perf_script": 3e6}
JSON_RATIO = 0.70
HEATMAP_100M_S = 5.0
ROUNDS = int(os.environ.get("DAMO_PIPE_BENCH_ROUNDS", "3"))

INPUTS = {
    "record": "b10m.data",
    "perf_script": "t10m.txt",
    "json_compressed": "j10m.jsonc",
    "record_100m": "b100m.data",
    "archive_100m": "a100m.h5",
    "archive_page_100m": "p4x25m.h5",
}
#: the page-granularity shape: 4 snapshots x 25M 4 KiB regions (100 GB monitored)
PAGE_SNAPSHOTS, PAGE_REGIONS = 4, 25_000_000


def make_input(name):
    """The cached input ``name`` (INPUTS), generated when missing."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / INPUTS[name]
    if path.exists():
        return path
    part = path.with_name(path.name + ".part")
    nsnap = (N100M if name.endswith("_100m") else N10M) // REGIONS
    if name == "archive_page_100m":
        gen.write_page_archive(part, PAGE_SNAPSHOTS, PAGE_REGIONS)
    elif name.startswith("record"):
        gen.write_binary_big(part, nsnap, REGIONS)
    elif name == "perf_script":
        gen.write_trace_text_big(part, nsnap, REGIONS)
    elif name == "json_compressed":
        from damo_pipe.formats import write_records
        write_records([list(gen.iter_slices(nsnap, REGIONS))], part, "json_compressed")
    else:
        gen.write_archive_big(part, nsnap, REGIONS)
    os.replace(part, path)
    return path


PEAK_SCRIPT = r"""
import resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
dt = time.perf_counter() - t
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, dt)
"""


def run_measured(argv):
    """Run ``argv`` in a fresh process: (wall s, peak RSS MiB). The wall clock is taken
    around the command alone, inside a helper whose only child it is."""
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT] + [str(a) for a in argv],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "0", "command failed: %s" % " ".join(map(str, argv))
    return float(out[2]), int(out[1]) / 1024


def damo_analyze():
    return str(Path(sys.executable).with_name("damo-analyze"))


def measure(benchmark, argv, nr_regions, rounds=ROUNDS, before=None):
    """Rounds of one whole command; the minimum wall and the maximum peak RSS recorded.
    ``before()`` runs before each round, untimed."""
    walls, rsss = [], []

    def once():
        w, r = run_measured(argv)
        walls.append(w)
        rsss.append(r)
    benchmark.pedantic(once, setup=before, rounds=rounds, iterations=1, warmup_rounds=0)
    best, rss = min(walls), max(rsss)
    benchmark.extra_info.update(wall_min_s=best, walls_s=walls, peak_rss_mib=rss,
                                regions_per_s=nr_regions / best,
                                load_avg=os.getloadavg()[0])
    return best, rss


def inflate_seconds(path, rounds=3):
    """The floor of json_compressed: inflating the file alone (256 KiB pieces)."""
    best = None
    for _ in range(rounds):
        t = time.perf_counter()
        d = zlib.decompressobj()
        with open(path, "rb") as f:
            while True:
                piece = f.read(1 << 18)
                if not piece:
                    break
                while piece:   # bounded output per step (4 MiB): the fastest plain inflate here
                    # kept until the next step, as a consumer would: a result freed at
                    # once makes every step fault in fresh pages (5.0 s instead of 3.2 s)
                    out = d.decompress(piece, 4 << 20)  # noqa: F841
                    piece = d.unconsumed_tail
        d.flush()
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return best


# ---------------------------------------------------------------- target 3: 10M regions

@need_scale
@pytest.mark.parametrize("fmt", ["record", "perf_script", "json_compressed"])
def test_convert_10m(benchmark, fmt, tmp_path):
    src = make_input(fmt)
    out = tmp_path / "o.h5"
    floors = []

    def before_round():
        out.unlink(missing_ok=True)
        if fmt == "json_compressed":   # the floor right before each round: same load
            floors.append(inflate_seconds(src, rounds=1))
    best, rss = measure(benchmark, [damo_analyze(), "convert", src, out], N10M,
                        before=before_round)
    out.unlink(missing_ok=True)
    assert rss <= RSS_LIMIT_MIB, "%s: peak RSS %.0f MiB" % (fmt, rss)
    if fmt == "json_compressed":
        walls = benchmark.extra_info["walls_s"]
        floor = min(floors)
        ratio = floor / best
        benchmark.extra_info.update(inflate_only_s=floor, inflate_s=floors,
                                    speed_vs_inflate=ratio,
                                    speed_vs_inflate_per_round=[f / w for f, w in zip(floors, walls)])
        if STRICT:
            assert ratio >= JSON_RATIO, "json_compressed at %.0f%% of inflate" % (ratio * 100)
    elif STRICT:
        assert N10M / best >= TARGETS[fmt], "%s: %.2fM regions/s" % (fmt, N10M / best / 1e6)


@need_scale
def test_inflate_floor_10m(benchmark):
    """zlib inflate alone of the 10M-region json_compressed file (the 70 % floor)."""
    src = make_input("json_compressed")
    benchmark.pedantic(lambda: inflate_seconds(src, rounds=1), rounds=ROUNDS, iterations=1)


# ---------------------------------------------------------------- target 4: 100M regions

@need_scale
@pytest.mark.parametrize("report", ["heatmap", "wss"])
def test_report_100m(benchmark, report):
    src = make_input("archive_100m")
    argv = [damo_analyze(), "report", report, "--input", src]
    if report == "heatmap":
        argv += ["--output", "raw"]
    best, rss = measure(benchmark, argv, N100M)
    assert rss <= RSS_LIMIT_MIB, "%s: peak RSS %.0f MiB" % (report, rss)
    if report == "heatmap" and STRICT:
        assert best <= HEATMAP_100M_S, "heatmap of 100M regions: %.2f s" % best


@need_scale
@pytest.mark.parametrize("report", ["heatmap", "wss"])
def test_report_page_100m(benchmark, report):
    """The same reports on 100M regions as page-granularity snapshots (4 x 25M): each
    snapshot is read in pieces, so the peak RSS stays bounded whatever its size."""
    src = make_input("archive_page_100m")
    argv = [damo_analyze(), "report", report, "--input", src]
    argv += ["--output", "raw"] if report == "heatmap" else ["--exclude_samples", "0"]
    best, rss = measure(benchmark, argv, PAGE_SNAPSHOTS * PAGE_REGIONS)
    assert rss <= RSS_LIMIT_MIB, "%s of 4 x 25M regions: peak RSS %.0f MiB" % (report, rss)


@need_scale
def test_convert_100m(benchmark, tmp_path):
    src = make_input("record_100m")
    out = tmp_path / "o.h5"
    best, rss = measure(benchmark, [damo_analyze(), "convert", src, out], N100M,
                        rounds=min(ROUNDS, 2), before=lambda: out.unlink(missing_ok=True))
    out.unlink(missing_ok=True)
    assert rss <= RSS_LIMIT_MIB, "convert of 100M regions: peak RSS %.0f MiB" % rss

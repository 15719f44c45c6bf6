"""Tracer streaming throughput and CPU cost (docs/performance.md).

Synthetic ``trace_pipe`` text (kernel 6.12 line format, 1000 regions per snapshot, two
targets) is written by a separate feeder process into the FIFO ``trace_pipe`` of a fake
tracefs tree; this process runs the real tracer loop (``open_tracefs_tracer`` →
``poll()``/``wait()`` → TraceStreamParser → ArchiveWriter, flush every second) and we
measure wall time and *this process's* CPU time (the feeder is excluded).

    .venv/bin/pytest benchmarks/bench_tracer.py            # pytest-benchmark
    .venv/bin/python benchmarks/bench_tracer.py            # prints the table for the doc
"""
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from damo_pipe.archive import ArchiveWriter, read_archive_records
from damo_pipe.collect import tracing
from damo_pipe.collect.tracing import tracefs
from damo_pipe.model import Record

REGIONS_PER_SNAPSHOT = 1000
TARGETS = 2

FEEDER = r"""
import os, sys, time
path, data_path, rate, chunk = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
data = open(data_path, "rb").read()
line_len = data.index(b"\n") + 1
fd = os.open(path, os.O_WRONLY)
t0 = time.monotonic()
pos = 0
while pos < len(data):
    end = min(len(data), pos + chunk)
    nl = data.rfind(b"\n", pos, end)
    end = nl + 1 if nl >= pos else end
    os.write(fd, data[pos:end])
    pos = end
    if rate > 0:   # lines (= regions) per second
        due = t0 + (pos / line_len) / rate
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
os.close(fd)
"""


def synth_trace(nr_snapshots, regions=REGIONS_PER_SNAPSHOT, targets=TARGETS, t0=100.0):
    """trace_pipe text: ``targets`` targets x ``regions`` regions per 100 ms snapshot."""
    out = []
    size = 1 << 21
    for k in range(nr_snapshots):
        for t in range(targets):
            ts = "%.6f" % (t0 + 0.1 * k + 0.0001 * t)
            base = (0x7f0000000000 + t * (1 << 36))
            head = "       kdamond.0-207     [001] .....  %12s: damon_aggregated: target_id=%d nr_regions=%d " % (
                ts, t, regions)
            for i in range(regions):
                s = base + i * size
                out.append("%s%d-%d: %d %d\n" % (head, s, s + size, (i * 7 + k) % 21, (i + k) % 300))
    return "".join(out).encode()


class FakeTree:
    """Minimal fake tracefs (see tests/support/tracer_helpers.FakeTracefs)."""

    def __init__(self, root):
        self.root = Path(root)
        for d in (self.root, self.root / "instances"):
            d.mkdir(parents=True, exist_ok=True)
        self._populate(self.root)

    @staticmethod
    def _populate(d):
        d = Path(d)
        d.mkdir(parents=True, exist_ok=True)
        for name, text in (("tracing_on", "1"), ("buffer_size_kb", "1408"),
                           ("current_tracer", "nop"), ("set_event", "")):
            (d / name).write_text(text)
        e = d / "events" / "damon" / "damon_aggregated"
        e.mkdir(parents=True, exist_ok=True)
        (e / "enable").write_text("0")
        os.mkfifo(d / "trace_pipe")

    def install(self):
        import shutil

        def mk(path):
            os.mkdir(path)
            self._populate(path)
        tracefs._mkdir_instance = mk
        tracefs._rmdir_instance = shutil.rmtree


def _drive(tmp, text_path, targets, rate, chunk, **tracer_kw):
    """The real tracer loop on a fake tracefs: a separate feeder writes ``text_path``
    into its FIFO ``trace_pipe`` (``rate`` regions/s, 0 = unthrottled) while this
    process polls, parses and appends into a SWMR archive with guide summaries (as the
    recorder's writer). Returns (summary, wall s, this process's CPU s, handle, records)."""
    tree = FakeTree(tmp / "tracing")
    saved = (tracefs._mkdir_instance, tracefs._rmdir_instance)
    tree.install()
    try:
        from damo_pipe.analyze.heatmap import GuideBuilder
        w = ArchiveWriter(tmp / "a.h5", swmr=True, summariser=GuideBuilder)
        keys = {t: w.add_record(Record(target_id=t)) for t in range(targets)}
        h = tracing.open_tracefs_tracer(w, keys, tracefs_root=tree.root, **tracer_kw)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        feeder = subprocess.Popen([sys.executable, "-c", FEEDER,
                                   os.path.join(h.source.dir, "trace_pipe"),
                                   str(text_path), str(rate), str(chunk)])
        while feeder.poll() is None:
            h.poll()
            h.wait(0.1)
        summary = h.stop()
        wall = time.monotonic() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        w.close()
        recs = read_archive_records(tmp / "a.h5")
    finally:
        tracefs._mkdir_instance, tracefs._rmdir_instance = saved
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return summary, wall, cpu, h, recs


def run_once(nr_snapshots, rate, flush_interval=1.0, workdir=None, chunk=65536):
    """Returns dict(regions, wall_s, cpu_s, regions_per_s, cpu_fraction, snapshots)."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        (tmp / "trace.txt").write_bytes(synth_trace(nr_snapshots))
        summary, wall, cpu, h, recs = _drive(tmp, tmp / "trace.txt", TARGETS, rate, chunk,
                                             flush_interval=flush_interval)
    regions = summary["regions"]
    assert regions == nr_snapshots * TARGETS * REGIONS_PER_SNAPSHOT
    assert sum(r.nr_snapshots for r in recs) == nr_snapshots * TARGETS
    return {"regions": regions, "wall_s": wall, "cpu_s": cpu, "regions_per_s": regions / wall,
            "cpu_regions_per_s": regions / cpu if cpu else float("inf"),
            "cpu_fraction": cpu / wall, "bytes": summary["bytes"], "flushes": h.streamer.flushes}


def run_page(n, chunk=1 << 20, workdir=None):
    """One n-region snapshot at page granularity (benchmarks/bench_ingest.py's text)
    through the FIFO and the live tracer loop (SWMR archive, guide summaries, flush every
    second); wall and this process's CPU, peak RSS growth is not separated here (see
    bench_ingest.py for the tracer alone)."""
    try:
        from benchmarks.bench_ingest import ensure_text
    except ImportError:  # run from inside benchmarks/
        from bench_ingest import ensure_text
    text = ensure_text(n)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        summary, wall, cpu, h, recs = _drive(Path(tmp), text, 1, 0, chunk)
    assert summary["regions"] == n
    assert [r.nr_regions for r in recs] == [n] and recs[0].nr_snapshots == 1
    return {"regions": n, "wall_s": wall, "cpu_s": cpu, "regions_per_s": n / wall,
            "cpu_regions_per_s": n / cpu if cpu else float("inf"),
            "cpu_fraction": cpu / wall, "bytes": summary["bytes"],
            "flushes": h.streamer.flushes}


@pytest.mark.benchmark(group="tracer")
def test_bench_tracer_max_throughput(benchmark):
    """Feeder unthrottled: 500 snapshots x 2 targets x 1000 regions = 1M regions."""
    res = benchmark.pedantic(run_once, args=(500, 0), rounds=1, iterations=1)
    benchmark.extra_info.update(res)
    assert res["regions_per_s"] >= 100_000


@pytest.mark.benchmark(group="tracer")
def test_bench_tracer_cpu_at_10k_regions_per_s(benchmark):
    """Feeder throttled to 10k regions/s for 6 s; tracer CPU must stay <= 5 % of a core."""
    res = benchmark.pedantic(run_once, args=(30, 10_000), rounds=1, iterations=1)
    benchmark.extra_info.update(res)
    assert res["cpu_fraction"] <= 0.05


def main():
    print("| case | regions | wall s | CPU s | regions/s (wall) | regions/s per CPU s | CPU % of a core | flushes |")
    print("|---|---|---|---|---|---|---|---|")
    for name, args, kw in (
            ("unthrottled, flush 1 s", (500, 0), {}),
            ("unthrottled, flush 1 s (2M regions)", (1000, 0), {}),
            ("10k regions/s, flush 1 s", (30, 10_000), {}),
            ("10k regions/s, flush 5 s", (30, 10_000), {"flush_interval": 5.0}),
            ("1k regions/s, flush 1 s", (3, 1_000), {}),
            ("page granularity: one 3M-region snapshot, unthrottled", None, {"n": 3_000_000})):
        r = run_once(*args, **kw) if args is not None else run_page(**kw)
        print("| %s | %d | %.2f | %.3f | %.0f | %.0f | %.1f | %d |" % (
            name, r["regions"], r["wall_s"], r["cpu_s"], r["regions_per_s"],
            r["cpu_regions_per_s"], 100 * r["cpu_fraction"], r["flushes"]), flush=True)


if __name__ == "__main__":
    main()

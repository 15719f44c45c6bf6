"""Day-long archives: whole commands on a 1-minute window (pytest-benchmark).

    .venv/bin/pytest benchmarks/bench_long.py --benchmark-only

A synthetic 24-hour recording at a 1 s aggregation interval: 86,400 snapshots x 1,000
regions (86.4 M regions), written once per session with the archive writer (lz4, as
``damo-collect`` writes it, with the heatmap guide summary). Each benchmark runs one
whole ``damo-analyze`` command in a fresh interpreter (start-up and imports included,
as a user runs it) on a 1-minute window in the middle of the day: ``report heatmap``,
``report wss``, ``report access`` and ``info``. The issue's target is < 100 ms per
command, reading only the window's chunks (the snapshot time index, docs/format.md).
The interpreter start alone (``python -c pass``, and ``damo-analyze --help``) is
measured beside them. ``test_window_command_served`` runs the same command lines with a
resident ``damo-analyze serve`` (docs/serve.md) on a private socket: the console script
still starts a fresh interpreter, which hands the command to the server's forked child.

Figures are recorded in docs/performance.md.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

HOURS = 24
SNAPSHOTS_PER_HOUR = 3600
REGIONS = 1000
AGGR_NS = 1_000_000_000
#: the window: one minute, from 12:00:00 into the recording
WINDOW_S = (12 * 3600, 12 * 3600 + 60)


def _hour_chunk(h, t0_ns):
    """The snapshots of hour ``h`` (benchmarks/gen.make_record, re-timed to 1 s)."""
    from benchmarks.gen import make_record
    from damo_pipe.model import SnapshotColumns
    rec = make_record(SNAPSHOTS_PER_HOUR, REGIONS, seed=h, with_intervals=False)
    k = np.arange(SNAPSHOTS_PER_HOUR, dtype=np.int64) + h * SNAPSHOTS_PER_HOUR
    end_ns = t0_ns + (k + 1) * AGGR_NS
    S = rec.snapshots
    rec.snapshots = SnapshotColumns(start_ns=end_ns - AGGR_NS, end_ns=end_ns,
                                    region_offset=S.region_offset, nr_regions=S.nr_regions,
                                    total_bytes=S.total_bytes)
    return rec


def build_day_archive(path):
    """Write the 24-hour archive to ``path`` (a few minutes; bounded memory)."""
    from benchmarks.gen import BASE_NS
    from damo_pipe.analyze.heatmap import GuideBuilder
    from damo_pipe.archive import ArchiveWriter
    from damo_pipe.model import Intervals, IntervalsGoal, Record
    meta = Record(target_id=0, kdamond_idx=0, context_idx=0,
                  intervals=Intervals(50000, 1000000, 10000000, IntervalsGoal(0.0, 0, 0, 0)))
    tmp = str(path) + ".part"
    with ArchiveWriter(tmp, compression="lz4", summariser=GuideBuilder,
                       provenance={"source_format": "benchmark"}) as w:
        w.add_record(meta)
        for h in range(HOURS):
            w.append(0, _hour_chunk(h, BASE_NS))
            w.flush()
    os.replace(tmp, path)


@pytest.fixture(scope="session")
def day_archive(tmp_path_factory):
    """The archive, built once (kept in $DAMO_PIPE_BENCH_CACHE when that is set)."""
    cache = os.environ.get("DAMO_PIPE_BENCH_CACHE")
    d = cache or str(tmp_path_factory.mktemp("bench-long"))
    path = os.path.join(d, "day-86400x1000.h5")
    if not os.path.exists(path):
        build_day_archive(path)
    _fresh_bytecode()
    return path


def _fresh_bytecode():
    """Compile damo_pipe's modules now: with PYTHONDONTWRITEBYTECODE set (as on CI), a
    module edited since the last compile would be recompiled by every command measured
    (~5-20 ms each), as no user's installed copy is."""
    import compileall

    import damo_pipe
    compileall.compile_dir(os.path.dirname(damo_pipe.__file__), quiet=1)


def _command(*argv):
    """The console script as a user runs it (``python -m`` only when it is not installed
    beside the interpreter: runpy adds a few ms)."""
    script = os.path.join(os.path.dirname(sys.executable), "damo-analyze")
    if os.path.exists(script):
        return [sys.executable, script, *argv]
    return [sys.executable, "-m", "damo_pipe.analyze.cli", *argv]


def _run(cmd, server=None):
    env = dict(os.environ, DAMO_PIPE_SERVER=str(server) if server else "off")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)


@pytest.fixture(scope="module")
def resident_server(tmp_path_factory, day_archive):
    """A ``damo-analyze serve --detach`` on a private socket, stopped at the end."""
    d = tmp_path_factory.mktemp("serve") / "run"
    d.mkdir(mode=0o700)
    sock = d / "analyze.sock"
    env = dict(os.environ, DAMO_PIPE_SERVER="off")
    subprocess.run(_command("serve", "--socket", str(sock), "--detach"), check=True, env=env,
                   stdout=subprocess.DEVNULL)
    yield sock
    subprocess.run(_command("serve", "--socket", str(sock), "--stop"), env=env,
                   stdout=subprocess.DEVNULL)


WINDOW = ["%ds" % WINDOW_S[0], "%ds" % WINDOW_S[1]]
COMMANDS = {
    "heatmap": ["report", "heatmap", "--time_range", *WINDOW, "--output", "raw"],
    "wss": ["report", "wss", "--time_range", *WINDOW],
    # damo's access filter takes absolute ns (the generator's clock starts at BASE_NS)
    "access": ["report", "access", "--snapshot_time",
               str(1_000_000_000_000 + WINDOW_S[0] * 10**9),
               str(1_000_000_000_000 + WINDOW_S[1] * 10**9)],
    "info": ["info"],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_window_command(benchmark, day_archive, name):
    argv = list(COMMANDS[name])
    argv += [day_archive] if name == "info" else ["--input", day_archive]
    cmd = _command(*argv)
    _run(cmd)                     # warm the page cache, check it works
    benchmark.pedantic(_run, args=(cmd,), rounds=7, iterations=1)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_window_command_served(benchmark, day_archive, resident_server, name):
    argv = list(COMMANDS[name])
    argv += [day_archive] if name == "info" else ["--input", day_archive]
    cmd = _command(*argv)
    from damo_pipe.analyze import resident
    _run(cmd, resident_server)
    _pid, before = resident.request(str(resident_server), resident.PING)
    benchmark.pedantic(_run, args=(cmd, resident_server), rounds=11, iterations=1)
    _pid, after = resident.request(str(resident_server), resident.PING)
    assert after - before == 11, "some commands ran without the server"


def test_interpreter_start(benchmark):
    benchmark.pedantic(_run, args=([sys.executable, "-c", "pass"],), rounds=7, iterations=1)


def test_cli_help_start(benchmark):
    benchmark.pedantic(_run, args=(_command("--help"),), rounds=7, iterations=1)


def test_import_floor(benchmark):
    """The floor of any archive reader: the interpreter importing numpy and h5py (with
    OPENBLAS_NUM_THREADS=1, as the console scripts set it), nothing else."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, "-c", "import os, numpy, h5py; os._exit(0)"]
    benchmark.pedantic(subprocess.run, args=(cmd,), kwargs={"check": True, "env": env},
                       rounds=7, iterations=1)

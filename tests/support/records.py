"""Shared test inputs: damo JSON record files, a recorded archive, CPU-profile samples."""
from __future__ import annotations

import json

import numpy as np

from damo_pipe.archive import ArchiveWriter
from damo_pipe.formats.perf_samples import ProfileSamples
from damo_pipe.model import Intervals, Record
from tests.support.archive_proc import chunk_for

MiB4 = 4 * 2**20
#: a wall-clock time, as damo-collect stamps snapshots (recorded_archive's first snapshot)
WALL_T0 = 1_750_000_000 * 10**9


def make_damo_json(path, nr_snapshots=30, nr_regions=20, seed=0, nr_targets=1, hot=(0.3, 0.5)):
    """A damo-format JSON record file written from plain dicts (independent of the
    package's writers): regions tile 4 MiB slots; those in the ``hot`` fraction of the
    space get nr_accesses 12..20, the others 0..2. Returns the dicts."""
    import random
    rnd = random.Random(seed)
    recs = []
    for t in range(nr_targets):
        base = 0x7f0000000000 + t * 0x10000000000
        snaps = []
        for s in range(nr_snapshots):
            regions = []
            for i in range(nr_regions):
                frac = i / nr_regions
                acc = rnd.randint(12, 20) if hot[0] <= frac < hot[1] else rnd.choice([0, 0, 1, 2])
                regions.append({"start": base + i * MiB4, "end": base + (i + 1) * MiB4,
                                "nr_accesses": {"samples": acc, "percent": None},
                                "age": {"aggr_intervals": rnd.randint(0, 3), "usec": None},
                                "sz_filter_passed": 0})
            snaps.append({"start_time": 1_000_000_000 + s * 100_000_000,
                          "end_time": 1_000_000_000 + (s + 1) * 100_000_000,
                          "regions": regions, "total_bytes": nr_regions * MiB4})
        recs.append({"kdamond_idx": 0, "context_idx": 0, "scheme_idx": None, "target_id": t,
                     "intervals": {"sample_us": 5000, "aggr_us": 100000, "ops_update_us": 1000000},
                     "scheme_filters": [], "snapshots": snaps})
    with open(path, "w") as f:
        json.dump(recs, f)
    return recs


def expected_wss(rec_dict, exclude=20):
    """Sorted per-snapshot WSS of one record dict, computed from the raw dicts."""
    vals = []
    for s in rec_dict["snapshots"][exclude:]:
        vals.append(sum(r["end"] - r["start"] for r in s["regions"] if r["nr_accesses"]["samples"] >= 1))
    return sorted(vals)


def _shifted_chunk(meta, k0, k1):
    c = chunk_for(meta, 0, k0, k1)
    c.snapshots.start_ns += WALL_T0
    c.snapshots.end_ns += WALL_T0
    return c


def recorded_archive(path, nsnap=100, with_footprints=True, with_profile=True):
    """An archive as damo-collect writes one: snapshots, footprints and profile samples
    on one (wall) clock. Phases: 'phase_a' hot in the first half, 'phase_b' after."""
    T0 = WALL_T0
    meta = Record(target_id=0, pid=42, intervals=Intervals(5000, 100000, 1000000))
    with ArchiveWriter(path) as w:
        w.add_record(meta)
        w.append(0, _shifted_chunk(meta, 0, nsnap))
        if with_footprints:
            tf = w.add_side_table("footprints", {"time_ns": np.int64, "pid": np.int64,
                                                 "vsz_bytes": np.uint64, "rss_bytes": np.uint64})
            tm = w.add_side_table("meminfo", {"time_ns": np.int64, "MemTotal": np.uint64,
                                              "MemFree": np.uint64})
            for k in range(0, nsnap, 5):
                t = T0 + k * 100_000_000
                tf.append(time_ns=t, pid=42, vsz_bytes=(300 << 20) + k * 4096,
                          rss_bytes=(10 << 20) + k * (1 << 20))
                tm.append(time_ns=t, MemTotal=8 << 30, MemFree=(4 << 30) - k * (1 << 20))
        if with_profile:
            rows = []
            span = nsnap * 100_000_000
            for i in range(2000):
                t = T0 + i * span // 2000
                hot = "phase_a" if t < T0 + span // 2 else "phase_b"
                rows.append((t, 42, 42, hot if i % 4 else "helper", "/usr/bin/app"))
            w.set_profile(None, ProfileSamples.from_rows(rows), {"perf_clock": "realtime"})
    return str(path)


def profile_samples(n=5000, seed=3, t0=1_000_000_000_000):
    """N random CPU-profile samples (50 symbols in 5 DSOs) over 10 s from T0."""
    rng = np.random.default_rng(seed)
    t = t0 + np.sort(rng.integers(0, 10 * 10**9, n))
    sym = rng.integers(0, 50, n)
    return ProfileSamples(t, rng.integers(1, 4, n), rng.integers(1, 8, n), sym, sym % 5,
                          ["fn%d" % i for i in range(50)], ["/lib/d%d.so" % i for i in range(5)])

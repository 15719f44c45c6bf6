"""Light views of the records ``report access`` renders: per-snapshot slices of the region
columns plus damo's derived values (SEMANTICS-ACCESS.md §1 step 2, §9.1)."""
from __future__ import annotations

import math

import numpy as np

from damo_pipe.analyze.intervals import snapshot_aggr_us

#: integers below this are exact in a float64
I53 = 1 << 53


class SnapshotView:
    """One snapshot of a record with damo's derived per-region values (§1 step 2, §9.1)."""

    def __init__(self, rec: "RecordView", k: int):
        record = rec.record
        self.rec = rec
        self.k = k
        self.start = record.snapshot_start(k)
        self.end = int(record.snapshots.end_ns[k])
        self.total_bytes = int(record.snapshots.total_bytes[k])
        si = float(record.snapshots.sample_interval_us[k])
        self.sample_interval_us = None if math.isnan(si) else si
        self.damos_stats = record.snapshots.damos_stats_of(k)
        lo, hi = record.region_bounds(k)
        regs = record.regions
        self.lo, self.hi = lo, hi
        self.n = hi - lo
        self.starts = regs.start[lo:hi]
        self.ends = regs.end[lo:hi]
        self.samples = regs.nr_accesses[lo:hi]
        self.ages = regs.age[lo:hi]
        self.passed = regs.sz_filter_passed[lo:hi]
        self.percents = rec.percent_all[lo:hi] if rec.percent_all is not None else None
        self.usecs = rec.usec_all[lo:hi] if rec.usec_all is not None else None
        self._cache = {}

    # -- per-snapshot intervals (§9.1)
    @property
    def aggr(self):
        if "aggr" not in self._cache:
            self._cache["aggr"] = snapshot_aggr_us(self.rec.record.intervals, self.start,
                                                   self.end, self.sample_interval_us)
        return self._cache["aggr"]

    def sizes(self):
        if "sizes" not in self._cache:
            self._cache["sizes"] = (self.ends - self.starts).astype(np.int64)
        return self._cache["sizes"]

    def py(self, name):
        key = "py_" + name
        if key not in self._cache:
            arr = self.sizes() if name == "sizes" else getattr(self, name)
            self._cache[key] = arr.tolist()
        return self._cache[key]

    def probe_hits(self, i):
        return self.rec.record.regions.probe_hits_of(self.lo + i)


class RecordView:
    """A record with its derived percent/usec columns and one SnapshotView per snapshot."""

    def __init__(self, record):
        self.record = record
        self.percent_all = None
        self.usec_all = None
        iv = record.intervals
        if iv is not None:
            self.percent_all, self.usec_all = derive_percent_usec(record)
        self.snapshots = [SnapshotView(self, k) for k in range(record.nr_snapshots)]
        self._bounds = None

    def bounds(self):
        """Record-wide magnitude bounds (max end, max size, Σ size, max |percent|,
        max |usec|) deciding once whether the int64/int128 kernels are exact; None for a
        metric that is not an int64 column."""
        if self._bounds is None:
            regs = self.record.regions
            n = len(regs)
            b = {"smax": 0, "szmax": 0, "size_sum": 0, "pmax": 0, "umax": 0}
            if n:
                sizes = regs.end - regs.start
                b["smax"] = int(regs.end.max())
                b["szmax"] = int(sizes.max())
                b["size_sum"] = (int(sizes.sum(dtype=np.uint64)) if b["szmax"] * n < (1 << 64)
                                 else 1 << 64)
            for key, arr in (("pmax", self.percent_all), ("umax", self.usec_all)):
                if not (isinstance(arr, np.ndarray) and arr.dtype == np.int64):
                    b[key] = None
                elif n:
                    b[key] = max(int(arr.max()), -int(arr.min()))
            self._bounds = b
        return self._bounds


def derive_percent_usec(record):
    """§1 step 2: ``percent = int(samples*100.0/(aggr/sample))``, ``usec = aggr_intervals*aggr``.

    Values already present in the region columns (``nr_accesses_percent`` /
    ``age_usec`` when a reader kept them) are used as damo does (the fill only replaces
    nulls). Returns numpy arrays (int64, or float64/object when the interval is not an int).
    """
    iv = record.intervals
    regs = record.regions
    ratio = iv.aggr_us / iv.sample_us
    samples = regs.nr_accesses
    percent = np.trunc((samples.astype(np.float64) * 100.0) / ratio).astype(np.int64)
    file_pct = getattr(regs, "nr_accesses_percent", None)
    if file_pct is not None:
        known = ~np.isnan(file_pct)
        if known.any():
            percent = np.where(known, file_pct, percent)
            if np.all(percent == np.trunc(percent)):
                percent = percent.astype(np.int64)
    aggr = iv.aggr_us
    age = regs.age
    if isinstance(aggr, int) and not isinstance(aggr, bool):
        big = np.abs(age).max() if len(age) else np.int64(0)
        if int(big) * abs(aggr) < (1 << 62):
            usec = age * np.int64(aggr)
        else:
            usec = np.array([int(a) * aggr for a in age.tolist()], dtype=object)
    else:
        usec = age.astype(np.float64) * float(aggr)
    file_usec = getattr(regs, "age_usec", None)
    if file_usec is not None:
        known = ~np.isnan(np.asarray(file_usec, np.float64))
        if known.any():
            fu = np.asarray(file_usec, np.float64)
            merged = np.where(known, fu, usec.astype(np.float64))
            if np.all(merged == np.trunc(merged)) and np.abs(merged).max() < I53:
                usec = merged.astype(np.int64)
            else:
                usec = merged
    return percent, usec

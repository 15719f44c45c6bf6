"""``report access``: damo 3.4.3's template renderer (SEMANTICS-ACCESS.md §2–§11).

The records (already loaded and filtered) are wrapped in light views whose per-region
metrics are numpy columns; aggregations go through ``_access_kernels`` (Cython) or the
pure-Python twins of ``access_kernels_py``. Rendering follows damo's keyword tables
exactly: a keyword is only evaluated when it occurs in the text being expanded.

Library code: no printing, no exiting. ``render_report`` returns the text; the command
module decides how to print it (damo's pager newline rule, AQ1).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from damo_pipe.analyze import access_kernels_py as _pyk
from damo_pipe.analyze.damo_format import (format_bp, format_hz, format_nr, format_percent,
                                           format_sz, format_time_ns, format_time_us)
from damo_pipe.errors import ReportError

AREAS = ("record_head", "snapshot_head", "region", "snapshot_tail", "record_tail")

STYLES = ("detailed", "simple-boxes", "cold", "hot", "recency-percentiles",
          "idle-time-percentiles", "temperature-percentiles", "recency-sz-hist",
          "cold-memory-tail", "temperature-sz-hist")

#: operations-layer filter types (§5, *O*)
OPS_FILTER_TYPES = ("anon", "active", "memcg", "young", "hugepage_size", "unmapped")

DEFAULT_MIN_CHARS = [("<index>", 3), ("<start address>", 12), ("<end address>", 11),
                     ("<size>", 11), ("<access rate>", 5), ("<access hz>", 6),
                     ("<age>", 13), ("<filters passed type>", 10)]

#: §11 colour tables: (bg, fg) per level 0..9
COLORSETS = {
    "gray": ([232] * 10, [237, 239, 241, 243, 245, 247, 249, 251, 253, 255]),
    "flame": ([232, 1, 1, 2, 3, 3, 20, 21, 26, 27],
              [239, 235, 237, 239, 243, 245, 247, 249, 251, 255]),
    "emotion": ([232, 234, 20, 21, 26, 2, 3, 1, 1, 1],
                [239, 235, 237, 239, 243, 245, 247, 249, 251, 255]),
}

DEFAULT_PERCENTILES = [0, 1, 25, 50, 75, 99, 100]

_I53 = 1 << 53


class AccessCrash(ReportError):
    """Raised where damo 3.4.3 dies with a Python exception (a deliberate, documented stop)."""


@dataclasses.dataclass
class AccessOptions:
    style: str = "detailed"
    format_overrides: dict = dataclasses.field(default_factory=dict)   # area -> template
    format_ops: list = dataclasses.field(default_factory=list)         # [action, area, text]
    format_object: Optional[dict] = None
    total_sz_only: bool = False
    raw: bool = False
    sort_by: list = dataclasses.field(default_factory=lambda: ["address"])
    sort_dsc: list = dataclasses.field(default_factory=list)
    region_box: bool = False
    box_values: list = dataclasses.field(default_factory=lambda: ["age", "access_rate", "size"])
    box_scales: list = dataclasses.field(default_factory=lambda: ["log", "linear", "log"])
    box_length: tuple = (1, 30)
    box_height: tuple = (1, 5)
    box_colorset: str = "gray"
    box_align: str = "left"
    percentiles_range: Optional[list] = None
    hist_ranges: Optional[list] = None
    hist_logscale: bool = False
    hist_cumulate: bool = False
    temperature_weights: list = dataclasses.field(default_factory=lambda: [0, 100, 100])
    heatmap_width: int = 80
    heatmap_static: bool = False
    heatmap_colorset: str = "gray"
    min_chars_for: list = dataclasses.field(default_factory=list)
    engine: str = "auto"    # "auto"/"cython" or "python"


def _kernels(engine):
    if engine == "python":
        return None
    try:
        from damo_pipe.analyze import _access_kernels
    except ImportError:
        if engine == "cython":
            from damo_pipe.errors import UsageError
            raise UsageError("the Cython kernels (damo_pipe.analyze._access_kernels) are not "
                             "built; reinstall the package or use the python engine")
        return None
    return _access_kernels


# ---------------------------------------------------------------------------------------
# views

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
            self._cache["aggr"] = snapshot_aggr_us(self.rec.record, self.start, self.end,
                                                   self.sample_interval_us)
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
            if np.all(merged == np.trunc(merged)) and np.abs(merged).max() < _I53:
                usec = merged.astype(np.int64)
            else:
                usec = merged
    return percent, usec


def snapshot_aggr_us(record, start, end, sample_interval_us):
    """§9.1 aggregation interval A of a snapshot (int or float, as damo computes it)."""
    iv = record.intervals
    if iv.goal is None or iv.goal.aggrs == 0:
        return iv.aggr_us
    ratio = iv.aggr_us / iv.sample_us
    if sample_interval_us is not None:
        si = sample_interval_us
        if si == int(si):
            si = int(si)
        return si * ratio
    d = (end - start) / 1000
    if abs(d - iv.aggr_us) / iv.aggr_us < 0.1:
        return iv.aggr_us
    return d


# ---------------------------------------------------------------------------------------
# metrics (kernels or pure-Python twins)

def _exact_sum(arr):
    """Σ of a non-negative integer column as a Python int (uint64 sum when it cannot wrap)."""
    a = np.asarray(arr)
    if len(a) == 0:
        return 0
    if a.dtype.kind in "iu" and int(a.min()) >= 0 and int(a.max()) * len(a) < (1 << 64):
        return int(a.sum(dtype=np.uint64))
    return sum(_as_pylist(arr))


def _as_pylist(a):
    return a.tolist() if hasattr(a, "tolist") else list(a)


class Metrics:
    """Per-snapshot metric computation with the chosen engine."""

    def __init__(self, opts: AccessOptions):
        self.opts = opts
        self.k = _kernels(opts.engine)

    def _int64_ok(self, *arrays):
        return all(isinstance(a, np.ndarray) and a.dtype == np.int64 for a in arrays)

    def temperatures(self, snap: SnapshotView, weights):
        """Temperatures (§9.1) as an int64/float64 array or a list of Python numbers."""
        key = ("temp", tuple(weights))
        if key in snap._cache:
            return snap._cache[key]
        sizes = snap.sizes()
        res = None
        if self.k is not None and self._int64_ok(snap.percents, snap.usecs) \
                and all(isinstance(w, int) for w in weights):
            rec = getattr(snap, "rec", None)
            if rec is not None:
                b = rec.bounds()
            else:
                b = {"szmax": int(np.abs(sizes).max(initial=0)),
                     "pmax": int(np.abs(snap.percents).max(initial=0)),
                     "umax": int(np.abs(snap.usecs).max(initial=0))}
            bound = (b["szmax"] * abs(weights[0]) + b["pmax"] * abs(weights[1])
                     + b["umax"] * abs(weights[2]))
            if bound < (1 << 62):
                res = np.empty(snap.n, np.int64)
                self.k.temperatures_i64(sizes, snap.percents, snap.usecs,
                                        weights[0], weights[1], weights[2], res)
        if res is None:
            res = _pyk.temperatures(sizes, snap.percents, snap.usecs, weights)
        snap._cache[key] = res
        return res

    def idle_times(self, snap: SnapshotView):
        if "idle" in snap._cache:
            return snap._cache["idle"]
        A = snap.aggr
        res = None
        if self.k is not None and self._int64_ok(snap.percents, snap.usecs):
            if isinstance(A, int) and int(np.abs(snap.usecs).max(initial=0)) + abs(A) < (1 << 62):
                res = np.empty(snap.n, np.int64)
                self.k.idle_times_i64(snap.percents, snap.usecs, A, res)
            elif isinstance(A, float) and int(np.abs(snap.usecs).max(initial=0)) < _I53:
                res = np.empty(snap.n, np.float64)
                self.k.idle_times_f64(snap.percents, snap.usecs, A, res)
        if res is None:
            res = _pyk.idle_times(snap.percents, snap.usecs, A)
        snap._cache["idle"] = res
        return res

    def weighted_sum(self, weights, samples):
        if self.k is not None:
            w = np.ascontiguousarray(weights, np.uint64)
            s = np.ascontiguousarray(samples, np.int64)
            if len(s) == 0 or (int(s.min()) >= 0):
                hi, lo = self.k.weighted_sum_u128(w, s)
                return (hi << 64) | lo
        return _pyk.weighted_sum(weights, samples)

    def percentile_walk(self, values, weights, targets):
        if self.k is not None and isinstance(values, np.ndarray) and values.dtype in (np.int64, np.float64):
            w = np.ascontiguousarray(weights, np.uint64)
            wmax = int(w.max()) if len(w) else 0
            total = int(w.sum(dtype=np.uint64)) if wmax * len(w) < (1 << 64) else 1 << 64
            vmax = float(np.abs(values).max()) if len(values) else 0.0
            if total and total < _I53 and wmax * 100 < _I53 and vmax < _I53:
                order = np.argsort(values, kind="stable").astype(np.int64)
                t = np.ascontiguousarray(targets, np.float64)
                out_t = np.empty(len(targets) + 1, np.int64)
                out_i = np.empty(len(targets) + 1, np.int64)
                n = self.k.percentile_walk(order, w, total, t, out_t, out_i)
                if n == 0:
                    raise ValueError("max() arg is an empty sequence")
                return [(targets[out_t[j]], values[out_i[j]].item()) for j in range(n)]
        return _pyk.percentile_walk(values, weights, targets)

    def histogram_rows(self, values, weights, ranges):
        if self.k is not None and isinstance(values, np.ndarray) and values.dtype in (np.int64, np.float64):
            w = np.ascontiguousarray(weights, np.uint64)
            vmax = float(np.abs(values).max()) if len(values) else 0.0
            wmax = int(w.max()) if len(w) else 0
            total = int(w.sum(dtype=np.uint64)) if wmax * len(w) < (1 << 64) else 1 << 64
            bounds_ok = all(abs(float(x)) < _I53 for r in ranges for x in r)
            if vmax < _I53 and total < (1 << 63) and bounds_ok:
                sv = np.ascontiguousarray(values, np.float64)
                sw = w
                starts = np.array([float(r[0]) for r in ranges], np.float64)
                ends = np.array([float(r[1]) for r in ranges], np.float64)
                out = np.zeros(len(ranges), np.uint64)
                self.k.histogram_rows(sv, sw, starts, ends, out)
                return [int(x) for x in out]
        return _pyk.histogram_rows(values, weights, ranges)

    def heatmap_pixels(self, starts, ends, percents, usecs, weights, width, static,
                       bounds=None):
        """§9.5 pixels; ``bounds``: RecordView.bounds() of the record the regions are from."""
        k = self.k
        if (k is not None and isinstance(percents, np.ndarray) and percents.dtype == np.int64
                and isinstance(usecs, np.ndarray) and usecs.dtype == np.int64
                and all(isinstance(w, int) for w in weights) and len(starts)):
            st = np.ascontiguousarray(starts, np.uint64)
            en = np.ascontiguousarray(ends, np.uint64)
            if bounds is None:
                sz = en - st
                bounds = {"smax": int(en.max()), "pmax": int(np.abs(percents).max()),
                          "umax": int(np.abs(usecs).max()), "szmax": int(sz.max()),
                          "size_sum": int(sz.sum(dtype=np.uint64))
                          if int(sz.max()) * len(sz) < (1 << 64) else 1 << 64}
            smax = bounds["smax"]
            pbound = bounds["pmax"] * abs(weights[1])
            ubound = bounds["umax"] * abs(weights[2])
            szbound = bounds["szmax"] * abs(weights[0])
            tbound = szbound + pbound + ubound
            # exact int128 arithmetic inside the kernel: inputs < 2^53, |t| < 2^62 and the
            # heat sum |Σ t*size| <= max|t| * Σ size < 2^125
            total_size = bounds["size_sum"]
            if (smax < _I53 and tbound < (1 << 62) and pbound < _I53 and ubound < _I53
                    and tbound * max(total_size, 1) < (1 << 125)):
                cap = 4 * width + 16
                while True:
                    ps = np.empty(cap, np.float64)
                    pe = np.empty(cap, np.float64)
                    pt = np.empty(cap, np.float64)
                    pv = np.empty(cap, np.uint8)
                    res = k.heatmap_pixels(st, en, percents, usecs, weights[0], weights[1],
                                           weights[2], width, 1 if static else 0, ps, pe, pt, pv)
                    n, u = res
                    if n == -2:
                        raise ArithmeticError("heatmap gap jump does not advance "
                                              "(damo loops forever)")
                    if n >= 0:
                        break
                    cap *= 4
                pixels = []
                first_start = int(st[0])
                for j in range(n):
                    a = ps[j]
                    if j == 0:
                        a = first_start
                    pixels.append((a, pe[j], None if pv[j] else pt[j]))
                return pixels, u
        return _pyk.snapshot_heatmap_pixels(starts, ends, percents, usecs, weights, width, static)


# ---------------------------------------------------------------------------------------
# helpers

def _repeat(text, n):
    import itertools
    return itertools.repeat(text, n)


def colored(text, colorset, level):
    bg, fg = COLORSETS[colorset]
    return "\x1b[48;5;%dm\x1b[38;5;%dm%s\x1b[0m" % (bg[level], fg[level], text)


def color_samples(colorset):
    bg, fg = COLORSETS[colorset]
    return "".join("\x1b[48;5;%dm\x1b[38;5;%dm%d" % (bg[i], fg[i], i) for i in range(10)) + "\x1b[0m"


def _has_ops_filter(records):
    return any(f.get("filter_type") in OPS_FILTER_TYPES for r in records for f in r.scheme_filters)


def _filter_bool(f, key, alt=None):
    v = f.get(key)
    if v is None and alt is not None:
        v = f.get(alt)
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "y", "yes")
    return bool(v)


def filters_passed_type(record):
    """§9.7 text of a record's operations-layer filters (never raw)."""
    words = []
    for f in record.scheme_filters:
        ftype = f.get("filter_type")
        if ftype not in OPS_FILTER_TYPES:
            continue
        w = ["allow" if _filter_bool(f, "allow", "filter_pass") else "reject"]
        if not _filter_bool(f, "matching"):
            w.append("none")
        w.append(ftype)
        if ftype == "memcg":
            w.append(str(f.get("memcg_path")))
        elif ftype == "hugepage_size":
            from damo_pipe.formats.numbers import text_to_bytes
            hs = f.get("hugepage_size") or [None, None]
            w.append("[%s, %s]" % tuple(format_sz(text_to_bytes(x), False) for x in hs[:2]))
        words.append(" ".join(w))
    if not words:
        return "n/a"
    return ", ".join(words)


# ---------------------------------------------------------------------------------------
# templates (§3–§5)

def _snapshot_time_line():
    return "snapshot time: [<start time>, <end time>] (<duration>)"


def _min_chars(opts, keyword):
    for kw, n in DEFAULT_MIN_CHARS + list(opts.min_chars_for):
        if kw == keyword:
            return int(n)
    return None


def _percentile_head(records, opts, metric):
    multi = any(r.nr_snapshots > 1 for r in records)
    lines = []
    if multi:
        lines.append(_snapshot_time_line())
    if _has_ops_filter(records):
        lines += ["# damos filters (df): <filters passed type>",
                  "# df-passed %s percentiles" % metric,
                  "<df-passed %s percentiles>" % metric, ""]
    lines += ["# total %s percentiles" % metric, "<%s percentiles>" % metric]
    return "\n".join(lines)


def _hist_head(records, opts, metric):
    legend = "<temperature>" if metric == "temperature" else "<idle time (us)>"
    lines = []
    if _has_ops_filter(records):
        lines += ["# damos filters (df): <filters passed type>",
                  "%s <df-passed size>" % legend,
                  "<%s-df-passed-sz histogram>" % metric, ""]
    lines += ["%s <total size>" % legend, "<%s-sz histogram>" % metric]
    return "\n".join(lines)


def build_templates(records, opts: AccessOptions):
    """Final five templates (§3), plus the effective box/sort settings."""
    t = {a: None for a in AREAS}
    for a in AREAS:
        if opts.format_overrides.get(a) is not None:
            t[a] = opts.format_overrides[a]
    if opts.format_object is not None:
        # a whole format object (hidden one-word --format): area names, with or without
        # a ``format_`` prefix
        for a in AREAS:
            for key in (a, "format_" + a):
                if opts.format_object.get(key) is not None:
                    t[a] = opts.format_object[key]
    for op in opts.format_ops:
        if op[0] == "set":
            t[op[1]] = op[2]
    style = opts.style
    eff = {"sort_by": list(opts.sort_by), "sort_dsc": list(opts.sort_dsc),
           "box_height": tuple(opts.box_height), "box_length": tuple(opts.box_length),
           "box_align": opts.box_align, "box_colorset": opts.box_colorset}
    boxes_style = dict(box_height=(1, 1), box_length=(1, 40), box_align="right",
                       box_colorset="emotion")
    if style == "simple-boxes":
        t["snapshot_head"] = _snapshot_time_line()
        t["region"] = "<box> size <size> access <access hz> age <age>"
        eff.update(boxes_style)
    elif style in ("cold", "hot"):
        t["region"] = "<box> <size> access <access hz> <age>"
        eff.update(boxes_style)
        eff["sort_by"] = ["temperature"]
        if style == "hot":
            eff["sort_dsc"] = ["temperature"]
    elif style in ("recency-percentiles", "idle-time-percentiles"):
        t["snapshot_head"] = _percentile_head(records, opts, "recency")
        t["region"] = ""
    elif style == "temperature-percentiles":
        t["snapshot_head"] = _percentile_head(records, opts, "temperature")
        t["region"] = ""
    elif style in ("recency-sz-hist", "cold-memory-tail"):
        t["snapshot_head"] = _hist_head(records, opts, "recency")
        t["region"] = ""
    elif style == "temperature-sz-hist":
        t["snapshot_head"] = _hist_head(records, opts, "temperature")
        t["region"] = ""
    if opts.total_sz_only:
        t["snapshot_head"] = ""
        t["region"] = ""
        t["snapshot_tail"] = "<total bytes>"

    F = any(len(r.scheme_filters) > 0 for r in records)
    M = any(r.nr_snapshots > 1 for r in records)
    P = False
    if records and records[0].nr_snapshots:
        lo, hi = records[0].region_bounds(0)
        po = records[0].regions.probe_offset
        if po is not None and hi > lo:
            P = bool(np.any(po[lo + 1:hi + 1] - po[lo:hi] > 0))

    if t["record_head"] is None:
        if len(records) > 1:
            t["record_head"] = ("kdamond <kdamond index> / context <context index> / "
                                "scheme <scheme index> / target id <target id> / "
                                "recorded for <duration> from <abs start time>")
        else:
            t["record_head"] = ""
    if t["record_tail"] is None:
        lines = ["record DAMON intervals: <intervals>"]
        if any(r.intervals is not None and r.intervals.goal is not None
               and r.intervals.goal.aggrs != 0 for r in records):
            lines.append("# <intervals goal>")
        if any(r.data_source == "damon_stat" for r in records):
            lines.append("# data source: <data source>")
        t["record_tail"] = "\n".join(lines)
    if t["snapshot_head"] is None:
        lines = []
        if M:
            lines.append(_snapshot_time_line())
        lines.append("heatmap: <heatmap>")
        lines.append("intervals: <snapshot intervals>")
        if F:
            lines.append("# damos filters (df): <filters passed type>")
            lines.append("df-pass: <filters passed heatmap>")
        if P and t["region"] is None:
            iw = _min_chars(opts, "<index>")
            aw = _min_chars(opts, "<start address>")
            sw = _min_chars(opts, "<size>")
            hw = _min_chars(opts, "<access hz>")
            gw = _min_chars(opts, "<age>")
            lines.append("#" + " " * iw + "addr" + " " * (aw - 4 + 1) + "size" + " " * (sw - 4 + 2)
                         + " " * (hw + 1) + "age" + " " * (gw - 3 + 1) + "probe_hits")
            lines.append("#" + " " * (iw + 1 + aw + 1 + sw + 1) + "access_hz")
        t["snapshot_head"] = "\n".join(lines)
    if t["snapshot_tail"] is None:
        if F:
            t["snapshot_tail"] = "\n".join([
                "memory bw estimate: <estimated memory bandwidth>  "
                "df-passed: <filters passed estimated memory bandwidth>",
                "total size: <total bytes>  df-passed <filters passed bytes>",
                "scheme stats", "<damos stats>"])
        else:
            t["snapshot_tail"] = ("memory bw estimate: <estimated memory bandwidth>\n"
                                  "total size: <total bytes>")
    if P:
        base = "<index> <start address> <size>  <access hz> <age> <probe hits> "
    else:
        base = "<index> addr <start address> size <size> access <access hz> age <age>"
    if opts.region_box:
        hmax = eff["box_height"][1]
        t["region"] = "<box>" + base if hmax > 1 else "<box>\n" + base
        if "<region box description>" not in t["snapshot_tail"]:
            t["snapshot_tail"] = t["record_tail"] + "\n<region box description>"
    elif t["region"] is None:
        t["region"] = base + (" df-passed <filters passed bytes>" if F else "")
    for op in opts.format_ops:
        if op[0] == "append":
            t[op[1]] = t[op[1]] + op[2]
    return t, eff


# ---------------------------------------------------------------------------------------
# the renderer

class Renderer:
    def __init__(self, records, opts: AccessOptions):
        self.records = records
        self.opts = opts
        self.raw = opts.raw
        self.metrics = Metrics(opts)
        self.templates, self.eff = build_templates(records, opts)
        self.views = [RecordView(r) for r in records]
        self._box_minmax = None

    # -- public
    def render(self):
        t = self.templates
        total_sz_only = (t["snapshot_head"] == "" and t["region"] == ""
                         and t["snapshot_tail"] == "<total bytes>")
        out = []
        for rv in self.views:
            out.append(self.expand_record(t["record_head"], rv))
            nsnap = len(rv.snapshots)
            for k, sv in enumerate(rv.snapshots):
                out.append(self.expand_snapshot(t["snapshot_head"], sv))
                if t["region"] != "":
                    out.extend(self.region_lines(t["region"], sv))
                out.append(self.expand_snapshot(t["snapshot_tail"], sv))
                if k < nsnap - 1 and not total_sz_only:
                    out.append("")
            out.append(self.expand_record(t["record_tail"], rv))
        return "\n".join(x for x in out if x is not None)

    # -- expansion machinery (§2.1)
    def _width(self, kw):
        cache = self.__dict__.setdefault("_width_cache", {})
        if kw not in cache:
            cache[kw] = _min_chars(self.opts, kw)
        return cache[kw]

    def _compile_region(self, template):
        cache = self.__dict__.setdefault("_compiled", {})
        if template not in cache:
            cache[template] = self._compile_region_uncached(template)
        return cache[template]

    def _compile_region_uncached(self, template):
        """Split a region template into literal text and keyword slots when expanding it
        slot by slot gives the same text as damo's sequential replacement: no backslash
        and no '<'/'>' outside the known keywords (region renderings contain none, so no
        keyword can appear in inserted text). None if that does not hold."""
        if "\\" in template:
            return None
        parts = [template]
        for kw, fn in self.REGION_TABLE:
            new = []
            for part in parts:
                if isinstance(part, str) and kw in part:
                    pieces = part.split(kw)
                    for j, piece in enumerate(pieces):
                        if j:
                            new.append((fn, self._width(kw)))
                        new.append(piece)
                else:
                    new.append(part)
            parts = new
        if any(isinstance(p, str) and ("<" in p or ">" in p) for p in parts):
            return None
        return [p for p in parts if not (isinstance(p, str) and p == "")]

    def region_lines(self, template, sv):
        order = self.sorted_regions(sv)
        parts = self._compile_region(template)
        if parts is None:
            return [self.expand_region(template, sv, ri, i) for i, ri in enumerate(order)]
        columns = []
        for p in parts:
            if isinstance(p, str):
                columns.append(p)
                continue
            fn, width = p
            col, padded = self._region_column(fn, sv, order, width or 0)
            if width is not None and not padded:
                col = [x.ljust(width) for x in col]
            columns.append(col)
        if not columns:
            return [""] * len(order)
        lists = [c if not isinstance(c, str) else None for c in columns]
        if all(c is None for c in lists):
            return ["".join(columns)] * len(order)
        # join column-wise (literal parts repeat on every line)
        iters = [c if not isinstance(c, str) else _repeat(c, len(order)) for c in columns]
        return ["".join(t) for t in zip(*iters)]

    #: region keywords rendered with format_sz, and the snapshot column they read
    _SZ_COLUMNS = {"kw_start_addr": "starts", "kw_end_addr": "ends", "kw_size": "sizes",
                   "kw_region_passed": "passed"}

    def _region_column(self, fn, sv, order, width=0):
        """Renderings of one region keyword for all regions in ``order``; returns
        (texts, already padded to ``width``). Value-only keywords format each distinct
        value once; addresses/sizes and the index use the Cython text kernels."""
        raw = self.raw
        name = fn.__name__
        k = self.metrics.k
        if name == "kw_index":
            if k is not None and not raw:
                return k.format_nr_range(len(order), width), True
            return [format_nr(i, raw) for i in range(len(order))], False
        if k is not None and not raw and name in self._SZ_COLUMNS:
            arr = (sv.sizes() if name == "kw_size" else getattr(sv, self._SZ_COLUMNS[name]))
            if len(arr) == 0 or int(arr.max()) < (1 << 63):
                return k.format_sz_column(np.ascontiguousarray(arr, np.uint64),
                                          np.asarray(order, np.int64), width), True
        values = None
        f = None
        if name in self._SZ_COLUMNS:
            values, f = (sv.sizes() if name == "kw_size"
                         else getattr(sv, self._SZ_COLUMNS[name])), format_sz
        elif name == "kw_access_rate":
            values, f = sv.percents, format_percent
        elif name == "kw_age":
            values, f = sv.usecs, format_time_us
        elif name == "kw_access_hz":
            A = sv.aggr
            values = sv.samples

            def f(s, raw):
                return format_hz(s / (A / 1000000), raw)
            name = (name, type(A), A)
        elif name == "kw_temperature":
            values, f = self.metrics.temperatures(sv, self.opts.temperature_weights), format_nr
        if values is None:
            return [fn(self, sv, ri, idx) for idx, ri in enumerate(order)], False
        if isinstance(values, np.ndarray) and values.dtype in (np.int64, np.uint64, np.float64) \
                and len(values):
            uniq, inv = np.unique(values, return_inverse=True)
            memo = self.__dict__.setdefault("_text_memo", {}).setdefault(
                (name, values.dtype.kind), {})
            texts = []
            for u in uniq.tolist():
                t = memo.get(u)
                if t is None:
                    t = memo[u] = f(u, raw)
                texts.append(t)
            texts = np.array(texts, dtype=object)
            return texts[inv.reshape(-1)[np.asarray(order, np.int64)]].tolist(), False
        values = _as_pylist(values)
        memo = {}
        out = []
        for ri in order:
            v = values[ri]
            key = (type(v), v)
            r = memo.get(key)
            if r is None:
                r = memo[key] = f(v, raw)
            out.append(r)
        return out, False

    def _expand(self, template, table, ctx):
        if template == "":
            return None
        text = template
        for kw, fn in table:
            if kw in text:
                rendered = fn(*ctx)
                width = self._width(kw)
                if width is not None:
                    rendered = rendered.ljust(width)
                text = text.replace(kw, rendered)
        return text.replace("\\n", "\n")

    def expand_record(self, template, rv):
        return self._expand(template, self.RECORD_TABLE, (self, rv))

    def expand_snapshot(self, template, sv):
        return self._expand(template, self.SNAPSHOT_TABLE, (self, sv))

    def expand_region(self, template, sv, i, index):
        return self._expand(template, self.REGION_TABLE, (self, sv, i, index))

    # -- sorting (§10.1)
    def sorted_regions(self, sv):
        """Region indices in display order (§10.1): one stable sort per key, the last key
        primary; descending sorts keep ties in their previous order (``reverse=True``).
        Returns a list of ints."""
        if self.opts.engine == "python":
            return self._sorted_regions_py(sv)
        idx = np.arange(sv.n, dtype=np.int64)
        dsc = self.eff["sort_dsc"]
        for key in self.eff["sort_by"]:
            vals = self._sort_values(sv, key)
            if not (isinstance(vals, np.ndarray) and vals.dtype in (np.int64, np.uint64, np.float64)):
                return self._sorted_regions_py(sv)
            cur = vals[idx]
            if key in dsc or "all" in dsc:
                if len(cur) > 1 and not np.all(cur[1:] <= cur[:-1]):
                    perm = (len(cur) - 1 - np.argsort(cur[::-1], kind="stable"))[::-1]
                    idx = idx[perm]
            elif len(cur) > 1 and not np.all(cur[1:] >= cur[:-1]):
                idx = idx[np.argsort(cur, kind="stable")]
        return idx.tolist()

    def _sort_values(self, sv, key):
        if key == "address":
            return sv.starts
        if key == "access_rate":
            return sv.percents
        if key == "age":
            return sv.usecs
        if key == "size":
            return sv.sizes()
        if key == "temperature":
            return self.metrics.temperatures(sv, self.opts.temperature_weights)
        raise ReportError("unsupported --sort_regions_by key %r" % key)

    def _sorted_regions_py(self, sv):
        """Reference: damo's successive ``sorted(..., reverse=...)`` calls."""
        idx = list(range(sv.n))
        dsc = self.eff["sort_dsc"]
        for key in self.eff["sort_by"]:
            vals = _as_pylist(self._sort_values(sv, key))
            rev = key in dsc or "all" in dsc
            idx = sorted(idx, key=lambda i: vals[i], reverse=rev)
        return idx

    # ---------------------------------------------------------------- record keywords
    def _rec_first_start(self, rv):
        if not rv.snapshots:
            raise AccessCrash("IndexError: list index out of range (record with no snapshot)")
        return rv.snapshots[0].start

    def kw_kdamond(self, rv):
        v = rv.record.kdamond_idx
        return str(0 if v is None else v)

    def kw_context(self, rv):
        v = rv.record.context_idx
        return str(0 if v is None else v)

    def kw_scheme(self, rv):
        return str(rv.record.scheme_idx)

    def kw_target(self, rv):
        return str(rv.record.target_id)

    def kw_rec_abs_start(self, rv):
        return format_time_ns(self._rec_first_start(rv), self.raw)

    def kw_rec_duration(self, rv):
        start = self._rec_first_start(rv)
        return format_time_ns(rv.snapshots[-1].end - start, self.raw)

    def kw_intervals(self, rv):
        iv = rv.record.intervals
        if iv is None:
            raise AccessCrash("AttributeError: record has no intervals")
        return "sample %s, aggr %s" % (format_time_us(iv.sample_us, self.raw),
                                       format_time_us(iv.aggr_us, self.raw))

    def kw_intervals_goal(self, rv):
        iv = rv.record.intervals
        if iv is None:
            raise AccessCrash("AttributeError: record has no intervals")
        g = iv.goal
        if g is None:
            from damo_pipe.model import IntervalsGoal
            g = IntervalsGoal()
        return "target %s accesses per %s aggrs, [%s, %s] sampling interval" % (
            format_bp(g.access_bp, self.raw), format_nr(g.aggrs, self.raw),
            format_time_us(g.min_sample_us, self.raw), format_time_us(g.max_sample_us, self.raw))

    def kw_data_source(self, rv):
        return str(rv.record.data_source)

    def kw_format_strings(self, rv):
        t = self.templates
        return "\n".join('%s: "%s"' % (name, t[a]) for name, a in (
            ("record head", "record_head"), ("snapshot head", "snapshot_head"),
            ("region", "region"), ("snapshot tail", "snapshot_tail"),
            ("record tail", "record_tail")))

    RECORD_TABLE = [
        ("<kdamond index>", kw_kdamond),
        ("<context index>", kw_context),
        ("<scheme index>", kw_scheme),
        ("<target id>", kw_target),
        ("<abs start time>", kw_rec_abs_start),
        ("<duration>", kw_rec_duration),
        ("<intervals>", kw_intervals),
        ("<intervals goal>", kw_intervals_goal),
        ("<data source>", kw_data_source),
        ("<format strings>", kw_format_strings),
    ]

    # ---------------------------------------------------------------- snapshot keywords
    def kw_total_bytes(self, sv):
        return format_sz(sv.total_bytes, self.raw)

    def kw_snap_duration(self, sv):
        return format_time_ns(sv.end - sv.start, self.raw)

    def kw_start_time(self, sv):
        return format_time_ns(sv.start - sv.rec.snapshots[0].start, self.raw)

    def kw_end_time(self, sv):
        return format_time_ns(sv.end - sv.rec.snapshots[0].start, self.raw)

    def kw_abs_start(self, sv):
        return format_time_ns(sv.start, self.raw)

    def kw_abs_end(self, sv):
        return format_time_ns(sv.end, self.raw)

    def kw_nr_regions(self, sv):
        return format_nr(sv.n, self.raw)

    def kw_box_colors(self, sv):
        return color_samples(self.eff["box_colorset"])

    def kw_box_description(self, sv):
        return self.box_description()

    def _temp_hist(self, sv, df):
        w = list(self.opts.temperature_weights)
        vals = self.metrics.temperatures(sv, [0, w[1], w[2]])
        return self.histogram(sv, vals, sv.passed if df else sv.sizes(), "temperature")

    def _recency_hist(self, sv, df):
        vals = self.metrics.idle_times(sv)
        return self.histogram(sv, vals, sv.passed if df else sv.sizes(), "recency")

    def kw_temp_hist(self, sv):
        return self._temp_hist(sv, False)

    def kw_temp_df_hist(self, sv):
        return self._temp_hist(sv, True)

    def kw_rec_hist(self, sv):
        return self._recency_hist(sv, False)

    def kw_rec_df_hist(self, sv):
        return self._recency_hist(sv, True)

    def kw_rec_pct(self, sv):
        return self.percentiles(sv, "recency", False)

    def kw_rec_df_pct(self, sv):
        return self.percentiles(sv, "recency", True)

    def kw_temp_pct(self, sv):
        return self.percentiles(sv, "temperature", False)

    def kw_temp_df_pct(self, sv):
        return self.percentiles(sv, "temperature", True)

    def kw_heatmap(self, sv):
        return self.snapshot_heatmap(sv, False)

    def kw_df_heatmap(self, sv):
        return self.snapshot_heatmap(sv, True)

    def kw_filters_passed_type(self, sv):
        return filters_passed_type(sv.rec.record)

    def kw_filters_passed_bytes(self, sv):
        return format_sz(_exact_sum(sv.passed), self.raw)

    def kw_pos_samples_ratio(self, sv):
        iv = sv.rec.record.intervals
        m = iv.aggr_us / iv.sample_us
        total = sum(sv.py("samples"))
        if sv.n == 0:
            raise AccessCrash("ZeroDivisionError: float division by zero "
                              "(<positive access samples ratio> of a snapshot without regions)")
        return format_percent(total * 100 / (m * sv.n), self.raw)

    def _bw(self, sv, weights):
        B = self.metrics.weighted_sum(weights, sv.samples)
        value = B / (sv.aggr / 1000000)
        if self.raw:
            return "%d per second" % value
        return format_sz(value, False) + " per second"

    def kw_mem_bw(self, sv):
        return self._bw(sv, sv.sizes())

    def kw_df_mem_bw(self, sv):
        return self._bw(sv, sv.passed)

    def kw_tuning_status(self, sv):
        iv = sv.rec.record.intervals
        m = iv.aggr_us / iv.sample_us
        sizes = sv.py("sizes")
        X = sum(m * s for s in sizes)
        O = sum(s * c for s, c in zip(sizes, sv.py("samples")))
        return "%s (%s / %s) %s %s" % (
            format_percent(O * 100 / max(X, 1), self.raw), format_sz(O, self.raw),
            format_sz(X, self.raw), format_time_us(iv.sample_us, self.raw),
            format_time_us(iv.aggr_us, self.raw))

    def kw_damos_stats(self, sv):
        st = sv.damos_stats
        if st is None:
            return "none"
        r = self.raw
        return "\n".join([
            "tried %s times (%s)" % (format_nr(st["nr_tried"], r), format_sz(st["sz_tried"], r)),
            "applied %s times (%s)" % (format_nr(st["nr_applied"], r), format_sz(st["sz_applied"], r)),
            "%s passed filters" % format_sz(st["sz_ops_filter_passed"], r),
            "quota exceeded %s times" % format_nr(st["qt_exceeds"], r),
            format_sz(st["sz_ops_filter_passed"], r),
            "tried %s snapshots (max %s)" % (format_nr(st["nr_snapshots"], r),
                                             format_nr(st["max_nr_snapshots"], r)),
        ])

    def kw_snapshot_intervals(self, sv):
        iv = sv.rec.record.intervals
        A = sv.aggr
        ratio = iv.aggr_us / iv.sample_us
        return "sample %s aggr %s (max access hz %s)" % (
            format_time_us(A / ratio, self.raw), format_time_us(A, self.raw),
            format_hz(ratio / (A / 1000000), self.raw, suffix=False))

    SNAPSHOT_TABLE = [
        ("<total bytes>", kw_total_bytes),
        ("<duration>", kw_snap_duration),
        ("<start time>", kw_start_time),
        ("<end time>", kw_end_time),
        ("<abs start time>", kw_abs_start),
        ("<abs end time>", kw_abs_end),
        ("<number of regions>", kw_nr_regions),
        ("<region box colors>", kw_box_colors),
        ("<region box description>", kw_box_description),
        ("<temperature-sz histogram>", kw_temp_hist),
        ("<temperature-df-passed-sz histogram>", kw_temp_df_hist),
        ("<recency-sz histogram>", kw_rec_hist),
        ("<recency-df-passed-sz histogram>", kw_rec_df_hist),
        ("<recency percentiles>", kw_rec_pct),
        ("<df-passed recency percentiles>", kw_rec_df_pct),
        ("<temperature percentiles>", kw_temp_pct),
        ("<df-passed temperature percentiles>", kw_temp_df_pct),
        ("<heatmap>", kw_heatmap),
        ("<filters passed heatmap>", kw_df_heatmap),
        ("<filters passed type>", kw_filters_passed_type),
        ("<filters passed bytes>", kw_filters_passed_bytes),
        ("<positive access samples ratio>", kw_pos_samples_ratio),
        ("<estimated memory bandwidth>", kw_mem_bw),
        ("<filters passed estimated memory bandwidth>", kw_df_mem_bw),
        ("<intervals tuning status>", kw_tuning_status),
        ("<damos stats>", kw_damos_stats),
        ("<snapshot intervals>", kw_snapshot_intervals),
    ]

    # ---------------------------------------------------------------- region keywords
    def kw_index(self, sv, i, index):
        return format_nr(index, self.raw)

    def kw_start_addr(self, sv, i, index):
        return format_sz(sv.py("starts")[i], self.raw)

    def kw_end_addr(self, sv, i, index):
        return format_sz(sv.py("ends")[i], self.raw)

    def kw_size(self, sv, i, index):
        return format_sz(sv.py("sizes")[i], self.raw)

    def kw_access_rate(self, sv, i, index):
        return format_percent(_as_pylist(sv.percents)[i] if not isinstance(sv.percents, np.ndarray)
                              else sv.py("percents")[i], self.raw)

    def kw_access_hz(self, sv, i, index):
        return format_hz(sv.py("samples")[i] / (sv.aggr / 1000000), self.raw)

    def kw_age(self, sv, i, index):
        us = sv.py("usecs")[i] if isinstance(sv.usecs, np.ndarray) else sv.usecs[i]
        return format_time_us(us, self.raw)

    def kw_temperature(self, sv, i, index):
        temps = self.metrics.temperatures(sv, self.opts.temperature_weights)
        v = temps[i]
        if isinstance(v, np.generic):
            v = v.item()
        return format_nr(v, self.raw)

    def kw_probe_hits(self, sv, i, index):
        return " ".join("%d" % h for h in sv.probe_hits(i))

    def kw_region_passed(self, sv, i, index):
        return format_sz(sv.py("passed")[i], self.raw)

    def kw_box(self, sv, i, index):
        return self.box(sv, i)

    REGION_TABLE = [
        ("<index>", kw_index),
        ("<start address>", kw_start_addr),
        ("<end address>", kw_end_addr),
        ("<size>", kw_size),
        ("<access rate>", kw_access_rate),
        ("<access hz>", kw_access_hz),
        ("<age>", kw_age),
        ("<temperature>", kw_temperature),
        ("<probe hits>", kw_probe_hits),
        ("<filters passed bytes>", kw_region_passed),
        ("<box>", kw_box),
    ]

    # ---------------------------------------------------------------- percentiles (§9.3)
    def _targets(self):
        pr = self.opts.percentiles_range
        if pr is None:
            return list(DEFAULT_PERCENTILES)
        if len(pr) <= 3:
            return list(range(*pr))
        return sorted(pr)

    def percentiles(self, sv, metric, df):
        if sv.n == 0:
            return "no region in snapshot"
        if metric == "recency":
            values = self.metrics.idle_times(sv)
        else:
            w = self.opts.temperature_weights
            values = self.metrics.temperatures(sv, [0, w[1], w[2]])
        weights = sv.passed if df else sv.sizes()
        total = _exact_sum(weights)
        if total == 0:
            raise AccessCrash("ZeroDivisionError: division by zero (percentiles of a "
                              "snapshot whose %s weight is 0)" % ("df-passed" if df else "total"))
        targets = [t for t in self._targets()]
        try:
            pairs = self.metrics.percentile_walk(values, weights, targets)
        except ValueError:
            raise AccessCrash("ValueError: max() arg is an empty sequence (no percentile to show)")
        raw = self.raw
        if metric == "recency":
            label = "<idle time (us)>" if raw else "<idle time>"
            fmt = format_time_us
        else:
            w = self.opts.temperature_weights
            label = "<temperature (weights: [%s])>" % ", ".join(str(x) for x in w)
            fmt = format_nr
        header = "<%spercentile> %s" % ("df-passed " if df else "", label)
        ptexts = ["%d" % p for p, _ in pairs]
        vtexts = [fmt(v, raw) for _, v in pairs]
        lo = pairs[0][1]
        hi = pairs[-1][1]
        step = (hi - lo) / 20 if hi != lo else 1
        pw = max(len(x) for x in ptexts)
        vw = max(len(x) for x in vtexts)
        lines = [header]
        for (p, v), pt, vt in zip(pairs, ptexts, vtexts):
            n = int((v - lo) / step)
            lines.append(pt.rjust(pw) + "  " + vt.rjust(vw) + "  |" + "*" * n + " " * (20 - n) + "|")
        return "\n".join(lines)

    # ---------------------------------------------------------------- histograms (§9.4)
    def histogram(self, sv, values, weights, metric):
        if sv.n == 0:
            return "no region in snapshot"
        raw = self.raw
        if metric == "temperature":
            f = format_nr
        else:
            f = format_time_us
        ranges = self.hist_ranges(values, metric)
        ys = self.metrics.histogram_rows(values, weights, ranges)
        xs = ["[%s, %s)" % (f(s, raw), f(e, raw)) for s, e in ranges]
        yt = [format_sz(y, raw) for y in ys]
        ymin = min(ys)
        ymax = max(ys)
        step = max(int((ymax - ymin) / 20), 1)
        xw = max(len(x) for x in xs)
        yw = max(len(y) for y in yt)
        lines = []
        for x, y, ytext in zip(xs, ys, yt):
            n = min(math.ceil((y - ymin) / step), 20)
            lines.append(x.ljust(xw) + " " + ytext.ljust(yw) + " |" + "*" * n + " " * (20 - n) + "|")
        return "\n".join(lines)

    def hist_ranges(self, values, metric):
        o = self.opts
        if o.hist_ranges is not None:
            from damo_pipe.formats.numbers import text_to_nr, text_to_us
            conv = text_to_nr if metric == "temperature" else text_to_us
            vals = [conv(x) for x in o.hist_ranges]
            if len(vals) % 2:
                raise AccessCrash("IndexError: list index out of range (odd number of "
                                  "--hist_ranges values)")
            return [(vals[i], vals[i + 1]) for i in range(0, len(vals), 2)]
        if isinstance(values, np.ndarray):
            lo = values.min().item()
            hi = values.max().item()
        else:
            lo = min(values)
            hi = max(values)
        ranges = []
        if o.hist_logscale:
            w0 = max(int((hi - lo) / 1024), 1)
            ranges.append((lo, lo + w0))
            while ranges[-1][1] < hi:
                s, e = ranges[-1]
                if o.hist_cumulate:
                    ranges.append((lo, e + 2 * (e - lo)))
                else:
                    ranges.append((e, e + 2 * (e - s)))
            return ranges
        w = max(math.ceil((hi + 1 - lo) / 10), 1)
        for i in range(10):
            start = lo if o.hist_cumulate else lo + w * i
            ranges.append((start, lo + w * (i + 1)))
        return ranges

    # ---------------------------------------------------------------- heatmap (§9.5)
    def snapshot_heatmap(self, sv, df):
        if df:
            sel = np.nonzero(sv.passed != 0)[0]
            starts, ends = sv.starts[sel], sv.ends[sel]
            percents = sv.percents[sel] if isinstance(sv.percents, np.ndarray) \
                else [sv.percents[i] for i in sel]
            usecs = sv.usecs[sel] if isinstance(sv.usecs, np.ndarray) else [sv.usecs[i] for i in sel]
        else:
            starts, ends, percents, usecs = sv.starts, sv.ends, sv.percents, sv.usecs
        if len(starts) == 0:
            return "n/a (no region)"
        width = self.opts.heatmap_width
        if width <= 0:
            raise AccessCrash("ZeroDivisionError: --snapshot_heatmap_width must be positive")
        if self.opts.heatmap_static:
            span = int(ends[-1]) - int(starts[0])
        else:
            span = int((np.asarray(ends, np.uint64) - np.asarray(starts, np.uint64)).sum(
                dtype=np.uint64)) if len(starts) < (1 << 20) else sum(
                int(e) - int(s) for s, e in zip(starts, ends))
        u = span / width
        if u <= 0 or u < math.ulp(float(ends[-1])):
            # damo divides by zero or never leaves the first column here
            raise AccessCrash("snapshot heatmap column size %r is below the address "
                              "resolution (damo 3.4.3 crashes or never terminates)" % u)
        try:
            pixels, u = self.metrics.heatmap_pixels(starts, ends, percents, usecs,
                                                    list(self.opts.temperature_weights), width,
                                                    self.opts.heatmap_static,
                                                    bounds=sv.rec.bounds())
        except ArithmeticError as e:
            raise AccessCrash(str(e))
        temps = [p[2] for p in pixels if p[2] is not None]
        tmin = min(temps) if temps else None
        tmax = max(temps) if temps else None
        if tmin is None:
            raise AccessCrash("TypeError: snapshot heatmap without any non-void pixel")
        k = (tmax - tmin) / 9
        if k == 0:
            k = tmax / 9
            if k == 0:
                k = 1
        cs = self.opts.heatmap_colorset
        digits = [colored("%d" % lv, cs, lv) for lv in range(10)]
        parts = []
        for s, e, temp in pixels:
            if temp is not None:
                level = int((temp - tmin) / k)
                parts.append(digits[level] if 0 <= level <= 9 else colored("%d" % level, cs, level))
            else:
                n = (e - s) / u
                if not self.opts.heatmap_static and n > 4:
                    parts.append("[...]")
                else:
                    parts.append("." * int(n))
        return "".join(parts) + "\n# min/max temperatures: %s, %s, column size: %s" % (
            format_nr(tmin, self.raw), format_nr(tmax, self.raw), format_sz(u, self.raw))

    # ---------------------------------------------------------------- boxes (§10.2/10.3)
    def box_value(self, sv, i, name):
        if name == "size":
            return sv.py("sizes")[i]
        if name == "access_rate":
            return sv.py("percents")[i] if isinstance(sv.percents, np.ndarray) else sv.percents[i]
        if name == "age":
            return sv.py("usecs")[i] if isinstance(sv.usecs, np.ndarray) else sv.usecs[i]
        raise AccessCrash("UnboundLocalError: region box value %r is not supported" % name)

    def box_minmax(self):
        if self._box_minmax is None:
            mm = {}
            for name in set(self.opts.box_values):
                if name not in ("size", "access_rate", "age"):
                    continue
                lo = hi = None
                for rv in self.views:
                    for sv in rv.snapshots:
                        if sv.n == 0:
                            continue
                        if name == "size":
                            arr = sv.sizes()
                        elif name == "access_rate":
                            arr = sv.percents
                        else:
                            arr = sv.usecs
                        a = np.asarray(arr)
                        mn = a.min().item() if a.dtype != object else min(a.tolist())
                        mx = a.max().item() if a.dtype != object else max(a.tolist())
                        lo = mn if lo is None or mn < lo else lo
                        hi = mx if hi is None or mx > hi else hi
                mm[name] = (lo, hi)
            self._box_minmax = mm
        return self._box_minmax

    @staticmethod
    def _scale(v, mn, mx, lo, hi, log):
        if log:
            v, mn, mx = [math.log(x, 2) if x > 0 else 0 for x in (v, mn, mx)]
        f = (hi - lo) / (mx - mn) if mx - mn > 0 else 1
        return (v - mn) * f + lo

    def box(self, sv, i):
        o = self.opts
        names = o.box_values
        for name in names:
            if name not in ("size", "access_rate", "age"):
                raise AccessCrash("UnboundLocalError: region box value %r is not supported" % name)
        mm = self.box_minmax()
        scales = [s == "log" for s in o.box_scales]
        lmin, lmax = self.eff["box_length"]
        hmin, hmax = self.eff["box_height"]
        lv = self.box_value(sv, i, names[0])
        cv = self.box_value(sv, i, names[1])
        hv = self.box_value(sv, i, names[2])
        length = int(self._scale(lv, *mm[names[0]], lmin, lmax, scales[0]))
        level = int(self._scale(cv, *mm[names[1]], 0, 9, scales[1]))
        height = int(self._scale(hv, *mm[names[2]], hmin, hmax, scales[2]))
        row = "|" + colored(str(level) * length, self.eff["box_colorset"], level) + "|"
        if self.eff["box_align"] == "right":
            row = " " * (lmax - length) + row
        return "\n".join([row] * height) + ("\n" if hmax > 1 else "")

    def box_description(self):
        o = self.opts
        mm = self.box_minmax()
        lmin, lmax = self.eff["box_length"]
        hmin, hmax = self.eff["box_height"]

        def rng(name):
            if name not in mm:
                raise AccessCrash("UnboundLocalError: region box value %r is not supported" % name)
            mn, mx = mm[name]
            if name == "size":
                return "[%s, %s]" % (format_sz(mn, self.raw), format_sz(mx, self.raw))
            if name == "access_rate":
                return "[%s, %s]" % (format_percent(mn, self.raw), format_percent(mx, self.raw))
            return "[%s, %s] " % (format_time_us(mn, self.raw), format_time_us(mx, self.raw))

        def scale(s):
            return "logscale" if s == "log" else "linearscale"
        n = o.box_values
        s = o.box_scales
        return "\n".join([
            "# length: %s (represents %s with [%d, %d] columns in %s)" % (
                n[0], rng(n[0]), lmin, lmax, scale(s[0])),
            "# color: %s (represents %s with [0, 9] number and color (%s) in %s)" % (
                n[1], rng(n[1]), color_samples(self.eff["box_colorset"]), scale(s[1])),
            "# height: %s (represents %s with [%d, %d] rows in %s)" % (
                n[2], rng(n[2]), hmin, hmax, scale(s[2])),
        ])


def render_report(records, opts: AccessOptions) -> str:
    """The text damo prints for ``report access`` (without the final print newline).

    Raises AccessCrash where damo 3.4.3 dies with a Python exception."""
    try:
        return Renderer(records, opts).render()
    except ZeroDivisionError as e:     # e.g. a zero sampling interval in the record
        raise AccessCrash("ZeroDivisionError: %s" % e)


# ---------------------------------------------------------------------------------------
# --raw_form (SEMANTICS.md §7)

def render_raw_form(records, raw=False) -> str:
    lines = []
    for r in records:
        if r.nr_snapshots == 0:
            continue
        base = r.snapshot_start(0)
        lines.append("base_time_absolute: %s" % format_time_ns(base, raw))
        lines.append("data source: %s" % r.data_source)
        lines.append("")
        starts = r.regions.start.tolist()
        ends = r.regions.end.tolist()
        samples = r.regions.nr_accesses.tolist()
        ages = r.regions.age.tolist()
        for k in range(r.nr_snapshots):
            s_start = r.snapshot_start(k)
            s_end = int(r.snapshots.end_ns[k])
            lo, hi = r.region_bounds(k)
            lines.append("monitoring_start:    %16s" % format_time_ns(s_start - base, raw))
            lines.append("monitoring_end:      %16s" % format_time_ns(s_end - base, raw))
            lines.append("monitoring_duration: %16s" % format_time_ns(s_end - s_start, raw))
            lines.append("target_id: %s" % r.target_id)
            lines.append("nr_regions: %s" % (hi - lo))
            lines.append("# start_addr     end_addr        length  nr_accesses   age")
            for i in range(lo, hi):
                lines.append("%012x-%012x (%12s) %11d %5d" % (
                    starts[i], ends[i], format_sz(ends[i] - starts[i], raw), samples[i], ages[i]))
            lines.append("")
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# --json (§12)

def render_json(records) -> str:
    """damo's ``json.dumps(indent=4)`` of the filtered records (percent/usec filled in)."""
    from damo_pipe.formats.writers import json_text
    views = {}

    def region_values(ri, rec):
        if rec.intervals is None or not len(rec.regions):
            return None, None
        if ri not in views:
            pct, usec = derive_percent_usec(rec)
            views[ri] = (pct, usec.tolist() if hasattr(usec, "tolist") else list(usec))
        return views[ri]
    return json_text(records, region_values=region_values)

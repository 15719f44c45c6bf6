"""The numbers behind ``report access``: temperatures, idle times, bandwidth sums,
percentile walks, histogram rows and snapshot-heatmap pixels (SEMANTICS-ACCESS.md §9).

Each goes through the ``_access_kernels`` Cython module when the values fit its exact
integer/float ranges, and through the pure-Python twin of ``access_kernels_py`` otherwise
(or always, with the python engine).
"""
from __future__ import annotations

import numpy as np

from damo_pipe._engine import select_engine
from damo_pipe.analyze import access_kernels_py as _pyk
from damo_pipe.analyze.access.options import AccessOptions
from damo_pipe.analyze.access.views import I53, SnapshotView

#: the compiled twin of access_kernels_py
KERNELS = "damo_pipe.analyze._access_kernels"


def exact_sum(arr):
    """Σ of a non-negative integer column as a Python int (uint64 sum when it cannot wrap)."""
    a = np.asarray(arr)
    if len(a) == 0:
        return 0
    if a.dtype.kind in "iu" and int(a.min()) >= 0 and int(a.max()) * len(a) < (1 << 64):
        return int(a.sum(dtype=np.uint64))
    return sum(as_pylist(arr))


def as_pylist(a):
    """A column (numpy array or sequence) as a list of Python numbers."""
    return a.tolist() if hasattr(a, "tolist") else list(a)


class Metrics:
    """Per-snapshot metric computation with the chosen engine."""

    def __init__(self, opts: AccessOptions):
        self.opts = opts
        self.k = select_engine(opts.engine, KERNELS)

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
            elif isinstance(A, float) and int(np.abs(snap.usecs).max(initial=0)) < I53:
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
            if total and total < I53 and wmax * 100 < I53 and vmax < I53:
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
            bounds_ok = all(abs(float(x)) < I53 for r in ranges for x in r)
            if vmax < I53 and total < (1 << 63) and bounds_ok:
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
            if (smax < I53 and tbound < (1 << 62) and pbound < I53 and ubound < I53
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

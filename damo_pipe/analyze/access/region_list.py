"""The region listing of ``report access`` (the ``detailed`` style's body and every other
style's ``region`` template): region keywords, damo's region order (SEMANTICS-ACCESS.md
§10.1) and the column-wise rendering that formats each distinct value once.
"""
from __future__ import annotations

import numpy as np

from damo_pipe.analyze import access_kernels_py as _pyk
from damo_pipe.analyze.access.metrics import as_pylist
from damo_pipe.numfmt import format_hz, format_nr, format_percent, format_sz, format_time_us
from damo_pipe.errors import ReportError


# ---------------------------------------------------------------- region keywords
def kw_index(r, sv, i, index):
    return format_nr(index, r.raw)


def kw_start_addr(r, sv, i, index):
    return format_sz(sv.py("starts")[i], r.raw)


def kw_end_addr(r, sv, i, index):
    return format_sz(sv.py("ends")[i], r.raw)


def kw_size(r, sv, i, index):
    return format_sz(sv.py("sizes")[i], r.raw)


def kw_access_rate(r, sv, i, index):
    return format_percent(as_pylist(sv.percents)[i] if not isinstance(sv.percents, np.ndarray)
                          else sv.py("percents")[i], r.raw)


def kw_access_hz(r, sv, i, index):
    return format_hz(sv.py("samples")[i] / (sv.aggr / 1000000), r.raw)


def kw_age(r, sv, i, index):
    us = sv.py("usecs")[i] if isinstance(sv.usecs, np.ndarray) else sv.usecs[i]
    return format_time_us(us, r.raw)


def kw_temperature(r, sv, i, index):
    temps = r.metrics.temperatures(sv, r.opts.temperature_weights)
    v = temps[i]
    if isinstance(v, np.generic):
        v = v.item()
    return format_nr(v, r.raw)


def kw_probe_hits(r, sv, i, index):
    return " ".join("%d" % h for h in sv.probe_hits(i))


def kw_region_passed(r, sv, i, index):
    return format_sz(sv.py("passed")[i], r.raw)


def kw_box(r, sv, i, index):
    return r.boxes.box(sv, i)


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


#: a memo of padded texts (RegionLister._text_memo) starts over beyond this many values
_MEMO_MAX = 1 << 16


def _memo_column(values):
    """Whether a value column takes the memoised path: a non-empty int64/uint64/float64
    array (its ``tolist()`` values are exact Python ints/floats)."""
    return isinstance(values, np.ndarray) and values.dtype in (np.int64, np.uint64, np.float64) \
        and len(values) > 0


#: region keywords rendered with format_sz, and the snapshot column they read
_SZ_COLUMNS = {"kw_start_addr": "starts", "kw_end_addr": "ends", "kw_size": "sizes",
               "kw_region_passed": "passed"}


class RegionLister:
    """Region lines for the Renderer ``r`` (its options, metrics and widths), with the
    compiled templates and formatted values cached across snapshots."""

    def __init__(self, r):
        self.r = r
        self._compiled = {}
        self._text_memo = {}
        self._index_cols = {}

    def _compile(self, template):
        if template not in self._compiled:
            self._compiled[template] = self._compile_uncached(template)
        return self._compiled[template]

    def _compile_uncached(self, template):
        """Split a region template into literal text and keyword slots when expanding it
        slot by slot gives the same text as damo's sequential replacement: no backslash
        and no '<'/'>' outside the known keywords (region renderings contain none, so no
        keyword can appear in inserted text). None if that does not hold."""
        if "\\" in template:
            return None
        parts = [template]
        for kw, fn in REGION_TABLE:
            new = []
            for part in parts:
                if isinstance(part, str) and kw in part:
                    pieces = part.split(kw)
                    for j, piece in enumerate(pieces):
                        if j:
                            new.append((fn, self.r.width(kw)))
                        new.append(piece)
                else:
                    new.append(part)
            parts = new
        if any(isinstance(p, str) and ("<" in p or ">" in p) for p in parts):
            return None
        return [p for p in parts if not (isinstance(p, str) and p == "")]

    def block(self, template, sv):
        """The region lines of snapshot ``sv`` (sorted), rendered from ``template`` and
        joined with ``"\\n"`` at once (the Cython kernel joins the columns straight into
        one str); None when the snapshot has no region line."""
        order, order_arr = self._order(sv)
        n = len(order_arr)
        if n == 0:
            return None
        parts = self._compile(template)
        if parts is None:
            lines = [x for x in self._expand_each(template, sv, order, order_arr)
                     if x is not None]
            return "\n".join(lines) if lines else None
        columns = self._columns(parts, sv, order, order_arr)
        k = self.r.metrics.k
        if k is not None:
            return k.join_rows(columns, n)
        return _pyk.join_rows(columns, n)

    def _order(self, sv):
        """(display order as a list of ints or None if not made yet, the same as an int64
        array); the list is made on demand by the column paths that need it."""
        if self.r.opts.engine == "python":
            order = self.sorted_regions_py(sv)
            return order, np.asarray(order, np.int64).reshape(-1)
        arr = self._sorted_array(sv)
        if arr is None:
            order = self.sorted_regions_py(sv)
            return order, np.asarray(order, np.int64).reshape(-1)
        return None, arr

    def _expand_each(self, template, sv, order, order_arr):
        """damo's expansion of ``template`` region by region (templates _compile refuses)."""
        r = self.r
        if order is None:
            order = order_arr.tolist()
        return [r.expand(template, REGION_TABLE, (r, sv, ri, i)) for i, ri in enumerate(order)]

    def _columns(self, parts, sv, order, order_arr):
        """The template's parts as columns: literal str parts as they are, keyword slots
        as lists of their renderings padded to the keyword's minimum width."""
        columns = []
        for p in parts:
            if isinstance(p, str):
                columns.append(p)
                continue
            fn, width = p
            col = self._column(fn, sv, order, order_arr, width or 0)
            columns.append(col)
        return columns

    def _column(self, fn, sv, order, order_arr, width=0):
        """Renderings of one region keyword for the regions in display order (``order``:
        a list of ints or None, ``order_arr``: the same as an int64 array), each padded to
        ``width``. Value-only keywords format each distinct value once, memoised across
        snapshots; addresses/sizes and the index use the Cython text kernels."""
        r = self.r
        raw = r.raw
        name = fn.__name__
        k = r.metrics.k
        n = len(order_arr)
        if name == "kw_index":
            if k is not None and not raw:
                # the same lines every snapshot: one column of the most regions yet per
                # width, whose first n lines are those of n regions
                col = self._index_cols.get(width)
                if col is None or len(col) < n:
                    col = self._index_cols[width] = k.format_nr_range(n, width)
                return col if len(col) == n else col[:n]
            return [format_nr(i, raw).ljust(width) for i in range(n)]
        if k is not None and not raw and name in _SZ_COLUMNS:
            arr = (sv.sizes() if name == "kw_size" else getattr(sv, _SZ_COLUMNS[name]))
            if len(arr) == 0 or int(arr.max()) < (1 << 63):
                return k.format_sz_column(np.ascontiguousarray(arr, np.uint64), order_arr, width)
        values = None
        f = None
        if name in _SZ_COLUMNS:
            values, f = (sv.sizes() if name == "kw_size"
                         else getattr(sv, _SZ_COLUMNS[name])), format_sz
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
            values, f = r.metrics.temperatures(sv, r.opts.temperature_weights), format_nr
        if order is None and (values is None or not _memo_column(values)):
            order = order_arr.tolist()
        if values is None:
            return [fn(r, sv, ri, idx).ljust(width) for idx, ri in enumerate(order)]
        if _memo_column(values):
            # one dict of padded texts per keyword (and aggregation interval), kept
            # across snapshots; a float column's -0.0 would share 0.0's key: no memo
            vals = values[order_arr].tolist()
            if values.dtype.kind == "f" and bool(np.any(np.signbit(values) & (values == 0))):
                return [f(v, raw).ljust(width) for v in vals]
            key = (name, values.dtype.kind, width)
            memo = self._text_memo.get(key)
            if memo is None or len(memo) > _MEMO_MAX:
                memo = self._text_memo[key] = {}
            out = list(map(memo.get, vals))
            if None in out:
                for j, t in enumerate(out):
                    if t is None:
                        v = vals[j]
                        t = memo.get(v)
                        if t is None:
                            t = memo[v] = f(v, raw).ljust(width)
                        out[j] = t
            return out
        values = as_pylist(values)
        memo = {}
        out = []
        for ri in order:
            v = values[ri]
            key = (type(v), v)
            text = memo.get(key)
            if text is None:
                text = memo[key] = f(v, raw).ljust(width)
            out.append(text)
        return out

    # -- sorting (§10.1)
    def sorted_regions(self, sv):
        """Region indices in display order (§10.1): one stable sort per key, the last key
        primary; descending sorts keep ties in their previous order (``reverse=True``).
        Returns a list of ints."""
        if self.r.opts.engine == "python":
            return self.sorted_regions_py(sv)
        arr = self._sorted_array(sv)
        return self.sorted_regions_py(sv) if arr is None else arr.tolist()

    def _sorted_array(self, sv):
        """sorted_regions as an int64 array with numpy's stable sorts; None when a key's
        values are not a numeric array (sorted_regions_py then)."""
        idx = np.arange(sv.n, dtype=np.int64)
        dsc = self.r.eff["sort_dsc"]
        for key in self.r.eff["sort_by"]:
            vals = self._sort_values(sv, key)
            if not (isinstance(vals, np.ndarray) and vals.dtype in (np.int64, np.uint64, np.float64)):
                return None
            cur = vals[idx]
            if key in dsc or "all" in dsc:
                if len(cur) > 1 and not np.all(cur[1:] <= cur[:-1]):
                    perm = (len(cur) - 1 - np.argsort(cur[::-1], kind="stable"))[::-1]
                    idx = idx[perm]
            elif len(cur) > 1 and not np.all(cur[1:] >= cur[:-1]):
                idx = idx[np.argsort(cur, kind="stable")]
        return idx

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
            return self.r.metrics.temperatures(sv, self.r.opts.temperature_weights)
        raise ReportError("unsupported --sort_regions_by key %r" % key)

    def sorted_regions_py(self, sv):
        """Reference: damo's successive ``sorted(..., reverse=...)`` calls."""
        idx = list(range(sv.n))
        dsc = self.r.eff["sort_dsc"]
        for key in self.r.eff["sort_by"]:
            vals = as_pylist(self._sort_values(sv, key))
            rev = key in dsc or "all" in dsc
            idx = sorted(idx, key=lambda i: vals[i], reverse=rev)
        return idx

"""The Python API for notebooks and scripts: ``damo_pipe.open(path)`` -> :class:`Recording`.

A Recording is any input the command line reads (a damo-pipe HDF5 archive or any
damon.data flavour, with damo's side files beside it) opened once, with an optional
selection (``time_range=``, ``address_range=``) that every method honours. Archives are
read lazily: only the snapshot tables at open time, then only the region rows of the
selected snapshots. Records come as :class:`damo_pipe.model.Record` (numpy columns);
``to_pandas``/``to_xarray`` and the side tables need the ``notebook`` extra (pandas,
xarray), imported on first use. Reports reuse the command line's code
(:func:`damo_pipe.analyze.heatmap.compute_heatmaps`, :mod:`damo_pipe.analyze.wss`).
docs/api.md is the user's guide.
"""
from __future__ import annotations

import datetime
import os

import numpy as np

from damo_pipe._extras import require
from damo_pipe.errors import UsageError

__all__ = ["open", "Recording"]

#: units of the region and snapshot values (attributes of to_xarray's variables)
UNITS = {
    "start": "bytes (address, inclusive)",
    "end": "bytes (address, exclusive)",
    "nr_accesses": "samples (positive access checks in the aggregation interval)",
    "age": "aggregation intervals (-1 = unknown)",
    "start_ns": "ns (recording clock)",
    "end_ns": "ns (recording clock)",
    "nr_regions": "count",
    "total_bytes": "bytes",
    "sample_us": "us",
    "aggr_us": "us",
    "ops_update_us": "us",
}


def open(path, *, input_type=None, time_range=None, address_range=None):  # noqa: A001
    """Open a recording (archive or damon.data of any flavour) as a :class:`Recording`.

    ``time_range=(start, end)``: keep the snapshots overlapping it; numbers are ns,
    strings take units (``"20s"``, ``"1.5m"``), timedeltas work too, all counted from
    the recording's start; datetimes (``numpy.datetime64``, ``datetime``) are absolute
    times; either end may be None (open). ``address_range=(start, end)``: keep the
    regions overlapping it (bytes; strings such as ``"4GiB"`` or ``"0x7f00..."``).
    Use as a context manager, or call ``close()``.
    """
    return Recording(path, input_type=input_type, time_range=time_range,
                     address_range=address_range)


# -- selections ---------------------------------------------------------------------
def _ns_of(value, origin):
    """Absolute ns of one end of a time range (None stays None)."""
    if value is None:
        return None
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[ns]").astype(np.int64))
    if isinstance(value, datetime.datetime):
        ns = getattr(value, "value", None)          # pandas.Timestamp
        if isinstance(ns, (int, np.integer)):
            return int(ns)
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        delta = value - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return _delta_ns(delta)
    if isinstance(value, np.timedelta64):
        return origin + int(value.astype("timedelta64[ns]").astype(np.int64))
    if isinstance(value, datetime.timedelta):
        return origin + _delta_ns(value)
    if isinstance(value, str):
        from damo_pipe.formats.numbers import text_to_ns
        try:
            return origin + int(text_to_ns(value))
        except ValueError as e:
            raise UsageError("wrong time %r (%s)" % (value, e)) from None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return origin + int(value)
    raise UsageError("wrong time %r: a number of ns, a string with a unit, a timedelta "
                     "or a datetime" % (value,))


def _delta_ns(delta):
    return (delta.days * 86400 + delta.seconds) * 10 ** 9 + delta.microseconds * 1000


def _pair(value, what):
    try:
        a, b = value
    except (TypeError, ValueError):
        raise UsageError("%s must be a (start, end) pair, not %r" % (what, value)) from None
    return a, b


def resolve_time_range(value, origin):
    """(start_ns, end_ns) absolute of an API ``time_range`` (ends may be None), or None."""
    if value is None:
        return None
    a, b = _pair(value, "time_range")
    t0, t1 = _ns_of(a, origin), _ns_of(b, origin)
    if t0 is not None and t1 is not None and t1 <= t0:
        raise UsageError("time_range end must be after its start")
    return t0, t1


def resolve_address_range(value):
    """(start, end) bytes of an API ``address_range``, or None."""
    if value is None:
        return None
    from damo_pipe.formats.numbers import text_to_bytes
    a, b = _pair(value, "address_range")
    out = []
    for v, default in ((a, 0), (b, (1 << 64) - 1)):
        if v is None:
            out.append(default)
        elif isinstance(v, str):
            try:
                out.append(int(v, 16) if v[:2].lower() == "0x" else int(text_to_bytes(v)))
            except ValueError as e:
                raise UsageError("wrong address %r (%s)" % (v, e)) from None
        else:
            out.append(int(v))
    if not 0 <= out[0] < out[1] <= (1 << 64) - 1:
        raise UsageError("wrong address_range %r: 0 <= start < end < 2**64" % (value,))
    return tuple(out)


def snapshot_range(snaps, time_range):
    """[lo, hi) of the snapshots overlapping ``time_range`` (ends may be None): those
    with ``end_ns >= start`` and ``start_ns < end``, as the archive reader selects."""
    n = len(snaps)
    if time_range is None:
        return 0, n
    t0, t1 = time_range
    lo = 0 if t0 is None else int(np.searchsorted(snaps.end_ns, t0, side="left"))
    hi = n if t1 is None else int(np.searchsorted(snaps.start_ns, t1, side="left"))
    return lo, max(lo, hi)


# -- the recording ------------------------------------------------------------------
class Recording:
    """An opened recording; see :func:`open` and docs/api.md.

    ``records``: the selected records (:class:`damo_pipe.model.Record`, loaded on first
    use); ``metas``: their metadata only; ``to_pandas()`` / ``to_xarray()``: the regions
    as tables; ``heatmap()`` / ``wss()``: the reports' numbers; ``footprints()``,
    ``meminfo()``, ``damos_stats()``, ``profile()``: the side tables as DataFrames;
    ``select()``: another selection of the same open file.
    """

    def __init__(self, path, *, input_type=None, time_range=None, address_range=None,
                 _parent=None):
        if _parent is None:
            from damo_pipe import sources
            from damo_pipe.analyze._chunks import RecordSource
            self.path = os.fspath(path)
            self.format = input_type or sources.detect_format(self.path)
            self._src = RecordSource.open([self.path], self.format)
            self._owner = True
        else:
            self.path, self.format, self._src = _parent.path, _parent.format, _parent._src
            self._owner = False
        self._records = None
        self.time_range = resolve_time_range(time_range, self.start_ns)
        self.address_range = resolve_address_range(address_range)

    # -- life cycle -----------------------------------------------------------------
    def close(self):
        """Close the file (selections made with :meth:`select` share it)."""
        if self._owner and self._src is not None:
            self._src.close()
        self._src = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        span = ""
        if self.nr_snapshots:
            t0, t1 = self.bounds_ns
            span = ", %.3f s from %s" % ((t1 - t0) / 1e9, np.datetime64(t0, "ns"))
        sel = ""
        if self.time_range is not None or self.address_range is not None:
            sel = ", selection time_range=%s address_range=%s" % (self.time_range,
                                                                  self.address_range)
        return "<damo_pipe.Recording %s (%s): %d record(s), %d snapshot(s)%s%s>" % (
            self.path, self.format, len(self.metas), self.nr_snapshots, span, sel)

    def _source(self):
        if self._src is None:
            raise UsageError("the recording is closed")
        return self._src

    # -- what it holds ----------------------------------------------------------------
    @property
    def metas(self):
        """Metadata of every record (Records without snapshots)."""
        return [m.meta() if m.nr_snapshots else m for m in self._source().metas]

    @property
    def start_ns(self):
        """Start of the recording: the earliest first-snapshot start of its records (ns;
        the origin of relative ``time_range`` values), or None without snapshots."""
        src = self._source()
        starts = [int(src.snapshot_table(i).start_ns[0]) for i in range(len(src))
                  if len(src.snapshot_table(i))]
        return min(starts) if starts else None

    @property
    def bounds_ns(self):
        """(first start, last end) of the selected snapshots in ns, or None."""
        src = self._source()
        t0 = t1 = None
        for i in range(len(src)):
            snaps = src.snapshot_table(i)
            lo, hi = snapshot_range(snaps, self.time_range)
            if hi > lo:
                a, b = int(snaps.start_ns[lo]), int(snaps.end_ns[hi - 1])
                t0 = a if t0 is None else min(t0, a)
                t1 = b if t1 is None else max(t1, b)
        return None if t0 is None else (t0, t1)

    @property
    def nr_snapshots(self):
        """Selected snapshots over all records."""
        src = self._source()
        return sum(max(0, hi - lo) for lo, hi in
                   (snapshot_range(src.snapshot_table(i), self.time_range)
                    for i in range(len(src))))

    def select(self, time_range=None, address_range=None):
        """Another selection of the same open recording (values as in :func:`open`;
        relative times count from the recording's start). It shares the file: closing
        this Recording closes it."""
        return Recording(None, time_range=time_range, address_range=address_range,
                         _parent=self)

    # -- records ------------------------------------------------------------------------
    def snapshot_indices(self, record):
        """[lo, hi) of record ``record``'s selected snapshots (indices in the record)."""
        return snapshot_range(self._source().snapshot_table(record), self.time_range)

    def iter_chunks(self, record, columns=None):
        """The selected snapshots of record ``record`` as consecutive Record chunks
        (bounded memory; an archive reads only their rows). ``columns``: region
        columns needed (a hint for archives)."""
        from damo_pipe.archive.reader import select_address_range
        src = self._source()
        lo, hi = self.snapshot_indices(record)
        for chunk in src.iter_chunk_range(record, lo, hi, columns=columns):
            if self.address_range is not None:
                chunk = select_address_range(chunk, *self.address_range)
            yield chunk

    def load(self, record):
        """Record ``record`` with the selection applied (a :class:`~damo_pipe.model.Record`)."""
        from damo_pipe.model import concat_records
        parts = [c for c in self.iter_chunks(record) if c.nr_snapshots]
        if not parts:
            return self._source().metas[record].meta()
        return concat_records(parts)

    @property
    def records(self):
        """Every record with the selection applied (loaded once, then kept)."""
        if self._records is None:
            self._records = [self.load(i) for i in range(len(self._source()))]
        return self._records

    def _one_record(self, record):
        n = len(self._source())
        if record is None:
            if n == 1:
                return 0
            raise UsageError("the recording has %d records (%s): choose one with record=INDEX"
                             % (n, ", ".join("%d: target %s" % (i, m.target_id)
                                             for i, m in enumerate(self._source().metas))))
        if not -n <= record < n:
            raise UsageError("no record %d (the recording has %d)" % (record, n))
        return record % n

    # -- tables -------------------------------------------------------------------------
    def to_pandas(self):
        """One row per selected region: ``record``, ``target_id``, ``snapshot`` (index
        in its record), the snapshot's ``start_ns``/``end_ns``, ``start``, ``end``,
        ``nr_accesses``, ``age``, and the intervals that apply to the row (``sample_us``,
        ``aggr_us``: the snapshot's, auto-tuned ones when recorded; ``ops_update_us``;
        NaN when the record has none). Region columns are not copied for a single
        record read whole."""
        pd = require("pandas", "Recording.to_pandas")
        parts = [_region_table(i, self.load(i) if self._records is None else self._records[i],
                               self.snapshot_indices(i)[0])
                 for i in range(len(self._source()))]
        if not parts:
            parts = [_region_table(0, None, 0)]
        cols = parts[0] if len(parts) == 1 else {
            k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return pd.DataFrame(cols, copy=False)

    def to_xarray(self, record=None):
        """Record ``record`` (default: the only one) as an xarray Dataset: dimensions
        ``snapshot`` x ``region`` (region ``j`` of snapshot ``k``; ``valid`` is False on
        the padding of snapshots with fewer regions, where ``start == end == 0``,
        ``nr_accesses == 0`` and ``age == -1``), a ``time`` coordinate (the snapshots'
        end, datetime64[ns]), per-snapshot ``start_ns``, ``end_ns``, ``nr_regions``,
        ``total_bytes``, ``sample_us``, ``aggr_us``; units in each variable's attrs.
        When every snapshot has as many regions, the region variables are views of the
        record's columns (no copy)."""
        xr = require("xarray", "Recording.to_xarray")
        i = self._one_record(record)
        rec = self.records[i] if self._records is not None else self.load(i)
        lo = self.snapshot_indices(i)[0]
        s, r = rec.snapshots, rec.regions
        n = rec.nr_snapshots
        width = int(s.nr_regions.max()) if n else 0
        grid = {}
        if n and bool(np.all(s.nr_regions == width)):
            for name in ("start", "end", "nr_accesses", "age"):
                grid[name] = getattr(r, name).reshape(n, width)
            valid = np.ones((n, width), bool)
        else:
            rows = np.repeat(np.arange(n), s.nr_regions)
            cols = np.arange(len(r)) - np.repeat(s.region_offset, s.nr_regions)
            valid = np.zeros((n, width), bool)
            valid[rows, cols] = True
            for name, fill in (("start", 0), ("end", 0), ("nr_accesses", 0), ("age", -1)):
                col = getattr(r, name)
                out = np.full((n, width), fill, col.dtype)
                out[rows, cols] = col
                grid[name] = out
        sample_us, aggr_us = _snapshot_intervals(rec)
        dims2 = ("snapshot", "region")
        data = {name: (dims2, v, {"units": UNITS[name]}) for name, v in grid.items()}
        data["valid"] = (dims2, valid, {"meaning": "region j exists in snapshot k"})
        for name, v in (("start_ns", s.start_ns), ("end_ns", s.end_ns),
                        ("nr_regions", s.nr_regions), ("total_bytes", s.total_bytes),
                        ("sample_us", sample_us), ("aggr_us", aggr_us)):
            data[name] = (("snapshot",), v, {"units": UNITS[name]})
        coords = {
            "snapshot": ("snapshot", np.arange(lo, lo + n),
                         {"meaning": "snapshot index in the record"}),
            "time": ("snapshot", s.end_ns.view("datetime64[ns]"),
                     {"meaning": "end of the snapshot (end_ns read as ns since the Unix "
                                 "epoch; trace inputs count from boot)"}),
        }
        return xr.Dataset(data, coords=coords, attrs=_record_attrs(self, i, rec))

    # -- reports ------------------------------------------------------------------------
    def heatmap(self, resol=(500, 500), *, time_range=None, address_range=None,
                draw_range="hottest", df_passed=False, kdamond_idx=None, context_idx=None,
                scheme_idx=None, tid=None, xarray=True, engine="auto"):
        """The access heatmap as ``damo-analyze report heatmap`` computes it
        (:func:`~damo_pipe.analyze.heatmap.compute_heatmaps`): ``resol`` = (time,
        address) pixels; ranges as in :func:`open` (default: the selection, else damo's
        guided ranges); ``draw_range="all"`` gives every contiguous address range.
        Returns an xarray DataArray (dims ``time`` x ``address``, NaN = no data; attrs
        ``units``) or, with ``xarray=False``, the :class:`HeatmapGrid` (numpy ``heat``);
        a list of them with ``draw_range="all"``."""
        from damo_pipe.analyze.heatmap import compute_heatmaps
        xr = require("xarray", "Recording.heatmap") if xarray else None
        tr = resolve_time_range(time_range, self.start_ns) if time_range is not None \
            else self.time_range
        ar = resolve_address_range(address_range) if address_range is not None \
            else self.address_range
        t_words = a_words = None
        if tr is not None:
            bounds = self._full_bounds()
            t_words = (bounds[0] if tr[0] is None else tr[0],
                       bounds[1] + 1 if tr[1] is None else tr[1])
        if ar is not None:
            a_words = [ar]
        grids = compute_heatmaps(self._source(), resol=tuple(resol), time_range=t_words,
                                 address_ranges=a_words, draw_range=draw_range,
                                 df_passed=df_passed, kdamond_idx=kdamond_idx,
                                 context_idx=context_idx, scheme_idx=scheme_idx, tid=tid,
                                 engine=engine)
        out = grids if xr is None else [_heatmap_array(xr, g) for g in grids]
        return out if draw_range == "all" else out[0]

    def _full_bounds(self):
        src = self._source()
        tables = [src.snapshot_table(i) for i in range(len(src))]
        tables = [t for t in tables if len(t)]
        if not tables:
            raise UsageError("the recording has no snapshot")
        return (min(int(t.start_ns[0]) for t in tables), max(int(t.end_ns[-1]) for t in tables))

    def wss(self, record=None, *, acc_thres=1, sz_thres=1, work_time_us=1,
            exclude_samples=0, xarray=True, engine="auto"):
        """Working set size over time of record ``record`` (default: the only one), as
        ``report wss`` computes it (:func:`damo_pipe.analyze.wss.record_wss_streaming`:
        windows of at least ``work_time_us``, bytes of the regions with at least
        ``acc_thres`` accesses and ``sz_thres`` bytes), on the selection. Unlike ``report
        wss`` no snapshot is skipped by default (``exclude_samples=20`` gives its
        numbers). Returns an xarray DataArray over ``time`` (window ends, datetime64;
        coordinate ``end_ns``), or with ``xarray=False`` the (end_ns, wss_bytes) numpy
        arrays."""
        from damo_pipe.analyze.wss import record_wss_streaming
        xr = require("xarray", "Recording.wss") if xarray else None
        i = self._one_record(record)
        times, values = record_wss_streaming(
            self.iter_chunks(i, columns=("nr_accesses",)), acc_thres, sz_thres, work_time_us,
            exclude_samples, engine)
        if xr is None:
            return times, values
        return xr.DataArray(values, dims=("time",), name="wss",
                            coords={"time": times.view("datetime64[ns]"),
                                    "end_ns": ("time", times)},
                            attrs={"units": "bytes", "target_id": _attr(self._source().metas[i].target_id),
                                   "acc_thres": acc_thres, "sz_thres": sz_thres,
                                   "work_time_us": work_time_us,
                                   "exclude_samples": exclude_samples})

    # -- side tables --------------------------------------------------------------------
    def _is_archive(self):
        from damo_pipe import sources
        return self.format == sources.ARCHIVE_FORMAT

    def _frame(self, columns, what, order=None):
        pd = require("pandas", "Recording." + what)
        if columns is None:
            return pd.DataFrame({c: np.zeros(0, np.int64) for c in (order or ["time_ns"])})
        if self.time_range is not None and "time_ns" in columns:
            t = columns["time_ns"]
            keep = np.ones(len(t), bool)
            t0, t1 = self.time_range
            if t0 is not None:
                keep &= t >= t0
            if t1 is not None:
                keep &= t < t1
            if not keep.all():
                columns = {k: v[keep] for k, v in columns.items()}
        return pd.DataFrame(columns, copy=False)

    def _side_table(self, name):
        from damo_pipe.archive.sidetables import read_side_table
        return read_side_table(self.path, name)

    def _damo_footprints(self):
        from damo_pipe import sources
        from damo_pipe.formats.footprints import read_mem_footprint
        found = sources.side_files(self.path)
        return read_mem_footprint(found["mem_footprint"]) if "mem_footprint" in found else None

    def footprints(self):
        """Memory footprints of the monitored processes: one row per pid and time
        (``time_ns``, ``pid``, statm columns in bytes: ``vsz_bytes``, ``rss_bytes``,
        ...), from the archive's ``footprints`` table or damo's ``.mem_footprint``
        beside a damon.data; empty when there is none. Rows within the selection's
        time range."""
        from damo_pipe.formats.footprints import STATM_FIELDS
        order = ["time_ns", "pid"] + list(STATM_FIELDS.values())
        if self._is_archive():
            cols = self._side_table("footprints")
        else:
            fp = self._damo_footprints()
            cols = None if fp is None else {
                "time_ns": fp.time_ns[fp.proc_snapshot], "pid": fp.pid, **fp.proc}
        return self._frame(cols, "footprints", order)

    def meminfo(self):
        """System memory (/proc/meminfo values in bytes: ``MemTotal``, ``MemFree``, ...)
        over time (``time_ns``), from the archive's ``meminfo`` table or damo's
        ``.mem_footprint``; empty when there is none."""
        from damo_pipe.formats.footprints import MEMINFO_FIELDS
        order = ["time_ns"] + list(MEMINFO_FIELDS.values())
        if self._is_archive():
            cols = self._side_table("meminfo")
        else:
            fp = self._damo_footprints()
            cols = None if fp is None else {
                "time_ns": fp.time_ns[fp.has_sys], **{k: v[fp.has_sys] for k, v in fp.sys.items()}}
        return self._frame(cols, "meminfo", order)

    def damos_stats(self):
        """DAMOS scheme stats over time: the archive's ``damos_stats`` table (``time_ns``,
        ``scheme_idx``, ``nr_tried``, ``sz_tried``, ...) when it has one, else the stats
        stored with the snapshots (damo's json: one row per snapshot that has them, with
        ``record``, ``target_id`` and the snapshot's ``end_ns`` as ``time_ns``)."""
        from damo_pipe.model import DAMOS_STAT_FIELDS
        order = ["time_ns", "scheme_idx"] + list(DAMOS_STAT_FIELDS)
        cols = self._side_table("damos_stats") if self._is_archive() else None
        if cols is None:
            cols = _snapshot_damos_stats(self._source())
        return self._frame(cols, "damos_stats", order)

    def profile(self, perf_path="perf"):
        """CPU-profile samples (``time_ns``, ``pid``, ``tid``, ``symbol``, ``dso`` as
        categoricals): the sample table an archive stores (only the selected time window
        is read), or damo's ``.profile`` beside a damon.data read with ``perf``
        (``perf_path``). The DataFrame's ``attrs`` hold the profile's attributes (clock,
        offset); empty when there is no profile."""
        pd = require("pandas", "Recording.profile")
        samples, attrs = self._profile_samples(perf_path)
        if samples is None:
            df = pd.DataFrame({"time_ns": np.zeros(0, np.int64), "pid": np.zeros(0, np.int32),
                               "tid": np.zeros(0, np.int32),
                               "symbol": pd.Categorical([]), "dso": pd.Categorical([])})
        else:
            df = self._frame({"time_ns": samples.time_ns, "pid": samples.pid,
                              "tid": samples.tid, "symbol_id": samples.symbol_id,
                              "dso_id": samples.dso_id}, "profile")
            df["symbol"] = pd.Categorical.from_codes(df.pop("symbol_id"),
                                                     categories=_unique_names(samples.symbols))
            df["dso"] = pd.Categorical.from_codes(df.pop("dso_id"),
                                                  categories=_unique_names(samples.dsos))
        df.attrs.update(attrs)
        return df

    def _profile_samples(self, perf_path):
        if self._is_archive():
            from damo_pipe.archive.profile import read_profile, read_profile_window
            if self.time_range is None:
                return read_profile(self.path)
            return read_profile_window(self.path, *self.time_range)
        from damo_pipe import sources
        found = sources.side_files(self.path)
        if "profile" not in found:
            return None, {}
        from damo_pipe.formats.perf_samples import read_perf_samples
        return read_perf_samples(found["profile"], perf=perf_path), {
            "perf_clock": "perf", "time_offset_ns": 0, "source": found["profile"]}


# -- helpers --------------------------------------------------------------------------
def _attr(v):
    """A value xarray can keep as an attribute (None -> "")."""
    return "" if v is None else v


def _unique_names(names):
    """Category names for pandas (which refuses duplicates): repeated names get a suffix."""
    seen, out = {}, []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if not k else "%s#%d" % (n, k))
    return out


def _snapshot_intervals(rec):
    """(sample_us, aggr_us) float64 per snapshot: the auto-tuned values when recorded,
    else the record's intervals; NaN when the record has none."""
    from damo_pipe.analyze.intervals import aggr_us_array
    n = rec.nr_snapshots
    iv = rec.intervals
    if iv is None:
        return np.full(n, np.nan), np.full(n, np.nan)
    sample = rec.snapshots.sample_interval_us.astype(np.float64)
    sample = np.where(np.isnan(sample), float(iv.sample_us), sample)
    return sample, aggr_us_array(iv, rec)


def _region_table(idx, rec, first_snapshot):
    """The to_pandas columns of one record (numpy arrays)."""
    if rec is None or rec.nr_snapshots == 0:
        z = np.zeros(0, np.int64)
        return {"record": z, "target_id": z, "snapshot": z, "start_ns": z, "end_ns": z,
                "start": np.zeros(0, np.uint64), "end": np.zeros(0, np.uint64),
                "nr_accesses": z, "age": z, "sample_us": np.zeros(0), "aggr_us": np.zeros(0),
                "ops_update_us": np.zeros(0)}
    s, r = rec.snapshots, rec.regions
    n = len(r)
    counts = s.nr_regions
    sample_us, aggr_us = _snapshot_intervals(rec)
    iv = rec.intervals
    tid = rec.target_id
    return {
        "record": np.full(n, idx, np.int64),
        "target_id": np.full(n, -1 if tid is None else tid,
                             np.uint64 if tid is not None and tid > np.iinfo(np.int64).max
                             else np.int64),
        "snapshot": np.repeat(np.arange(first_snapshot, first_snapshot + len(s), dtype=np.int64),
                              counts),
        "start_ns": np.repeat(s.start_ns, counts),
        "end_ns": np.repeat(s.end_ns, counts),
        "start": r.start,
        "end": r.end,
        "nr_accesses": r.nr_accesses,
        "age": r.age,
        "sample_us": np.repeat(sample_us, counts),
        "aggr_us": np.repeat(aggr_us, counts),
        "ops_update_us": np.full(n, np.nan if iv is None else float(iv.ops_update_us)),
    }


def _record_attrs(recording, idx, rec):
    attrs = {"path": recording.path, "format": recording.format, "record": idx}
    for k in ("target_id", "kdamond_idx", "context_idx", "scheme_idx", "pid", "ops",
              "data_source"):
        attrs[k] = _attr(getattr(rec, k))
    iv = rec.intervals
    if iv is not None:
        attrs.update(intervals_sample_us=iv.sample_us, intervals_aggr_us=iv.aggr_us,
                     intervals_ops_update_us=iv.ops_update_us)
    return attrs


def _heatmap_array(xr, grid):
    t_ns = np.array(grid.pixel_times(), np.int64)      # exact: Python numbers
    addrs = np.array(grid.pixel_addrs(), np.uint64)
    return xr.DataArray(
        grid.heat, dims=("time", "address"), name="heat",
        coords={"time": t_ns.view("datetime64[ns]"), "time_ns": ("time", t_ns),
                "address": addrs},
        attrs={"units": "Hz (access frequency)" if grid.unit == "hz"
               else "samples per aggregation interval",
               "time_unit_ns": float(grid.time_unit), "addr_unit_bytes": int(grid.addr_unit),
               "target_id": _attr(grid.target_id), "kdamond_idx": _attr(grid.kdamond_idx),
               "context_idx": _attr(grid.context_idx), "scheme_idx": _attr(grid.scheme_idx)})


def _snapshot_damos_stats(src):
    """The DAMOS stats stored with the snapshots of every record (None when none)."""
    from damo_pipe.model import DAMOS_STAT_FIELDS
    parts = []
    for i, meta in enumerate(src.metas):
        s = src.snapshot_table(i)
        has = s.has_damos_stats
        if not len(s) or not has.any():
            continue
        n = int(has.sum())
        part = {"time_ns": s.end_ns[has],
                "scheme_idx": np.full(n, -1 if meta.scheme_idx is None else meta.scheme_idx,
                                      np.int64),
                "record": np.full(n, i, np.int64),
                "target_id": np.full(n, -1 if meta.target_id is None else meta.target_id)}
        for f in DAMOS_STAT_FIELDS:
            part[f] = getattr(s, "damos_" + f)[has]
        parts.append(part)
    if not parts:
        return None
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

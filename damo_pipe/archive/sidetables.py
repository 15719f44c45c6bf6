"""Extra time-series tables stored beside the records of an archive (group ``/collect``).

Tables: ``damos_stats`` (every DAMOS scheme's stats over time), ``footprints``
(/proc/PID/statm of the targets), ``meminfo`` (/proc/meminfo), ``damon_context``
(addr_unit and the tuned intervals the sysfs collector reads), and the ``trace_*``
tables of the DAMON trace events that are not regions (``damos_esz``,
``damos_stat_after_apply_interval``, ``damon_monitor_intervals_tune``,
``damon_region_aggregated``; :mod:`damo_pipe.formats.trace_events`, with their units and
kernel format string as attributes). Each table is a group of
equal-length 1-D extensible datasets (one per column) plus a ``committed`` row count
that is advanced only after the rows were flushed (the archive's two-step commit,
HDF5-CRASH-FACTS.md); readers trust ``min(committed, dataset lengths)``.

Made by :meth:`ArchiveWriter.add_side_table` before SWMR appending starts, filled with
:meth:`SideTable.append`, written and committed by :meth:`ArchiveWriter.flush` together
with the records. Read back with :func:`read_side_table`.
"""
from __future__ import annotations

import numpy as np

from damo_pipe.archive._guarded_file import open_h5_for_reading

GROUP = "collect"
COMMITTED = "committed"
CHUNK_ROWS = 4096


class SideTable:
    def __init__(self, h5file, name, columns, compression_kwargs=None, attrs=None):
        """columns: dict name -> numpy dtype (order kept)."""
        g = h5file.require_group(GROUP).create_group(name)
        self.group = g
        self.columns = dict(columns)
        for col, dtype in self.columns.items():
            g.create_dataset(col, shape=(0,), maxshape=(None,), dtype=dtype,
                             chunks=(CHUNK_ROWS,), **(compression_kwargs or {}))
        g.create_dataset(COMMITTED, data=np.zeros(1, np.int64))
        g.attrs["columns"] = ",".join(self.columns)
        for k, v in (attrs or {}).items():
            g.attrs[k] = v
        self._pending = {c: [] for c in self.columns}     # rows queued by append()
        self._chunks = {c: [] for c in self.columns}      # arrays queued by extend()
        self.rows_written = 0

    def append(self, **row):
        """Queue one row (every column given; missing ones are 0)."""
        for c in self.columns:
            self._pending[c].append(row.get(c, 0))

    def _rows_to_chunks(self):
        if self._pending and self._pending[next(iter(self.columns))]:
            for c, dtype in self.columns.items():
                self._chunks[c].append(np.asarray(self._pending[c], dtype=dtype))
                self._pending[c] = []

    def extend(self, **columns):
        """Queue many rows at once: column name -> sequence or numpy array (equal
        lengths; missing columns are 0)."""
        n = len(next(iter(columns.values()))) if columns else 0
        if not n:
            return
        self._rows_to_chunks()
        for c, dtype in self.columns.items():
            v = columns.get(c)
            self._chunks[c].append(np.zeros(n, dtype) if v is None else np.asarray(v, dtype))

    def write_pending(self):
        self._rows_to_chunks()
        first = next(iter(self.columns), None)
        n = sum(len(a) for a in self._chunks[first]) if first is not None else 0
        if not n:
            return
        r0 = self.rows_written
        for c, dtype in self.columns.items():
            d = self.group[c]
            d.resize((r0 + n,))
            parts = self._chunks[c]
            d[r0:r0 + n] = parts[0] if len(parts) == 1 else np.concatenate(parts)
            self._chunks[c] = []
        self.rows_written = r0 + n

    def commit(self):
        self.group[COMMITTED][0] = self.rows_written


def read_side_table(path_or_file, name):
    """dict column -> numpy array of the committed rows, or None when the table is absent."""
    import h5py

    from damo_pipe.archive._blosc_direct import register_blosc_filter
    register_blosc_filter()
    own = not isinstance(path_or_file, h5py.File)
    f = path_or_file
    if own:
        # as ArchiveReader opens: normally (the file may already be open so in this
        # process, and HDF5 refuses a second open with other flags), SWMR when a
        # writer has it
        f = open_h5_for_reading(path_or_file)
    try:
        if GROUP not in f or name not in f[GROUP]:
            return None
        g = f[GROUP][name]
        cols = [c for c in str(g.attrs.get("columns", "")).split(",") if c]
        for c in cols + [COMMITTED]:
            try:
                g[c].refresh()
            except (AttributeError, ValueError, OSError):
                pass
        n = int(min([int(g[COMMITTED][0])] + [g[c].shape[0] for c in cols]))
        return {c: g[c][:n] for c in cols}
    finally:
        if own:
            f.close()


def list_side_tables(path):
    """The side tables of an archive: ``[{"name", "nr_rows", "columns", "attrs"}]`` in
    name order (the CPU profile's sample table is ``profile``); rows are the committed
    ones. Attributes are plain Python values (``columns`` left out)."""
    import h5py

    from damo_pipe.archive._blosc_direct import register_blosc_filter
    register_blosc_filter()
    f = open_h5_for_reading(path)
    out = []
    try:
        if GROUP not in f:
            return out
        for name in sorted(f[GROUP]):
            g = f[GROUP][name]
            if not isinstance(g, h5py.Group) or "columns" not in g.attrs:
                continue
            cols = [c for c in str(g.attrs["columns"]).split(",") if c]
            present = [c for c in cols if c in g]
            rows = [int(g[COMMITTED][0])] if COMMITTED in g else []
            n = min(rows + [g[c].shape[0] for c in present]) if present else 0
            attrs = {}
            for k, v in g.attrs.items():
                if k == "columns":
                    continue
                v = v.item() if hasattr(v, "item") else v
                attrs[k] = v.decode() if isinstance(v, bytes) else v
            out.append({"name": name, "nr_rows": int(n), "columns": cols, "attrs": attrs})
    finally:
        f.close()
    return out


#: the tables damo's ``.mem_footprint`` becomes (columns: bytes, as damo-collect's)
FOOTPRINTS, MEMINFO = "footprints", "meminfo"


def add_footprint_tables(writer, fp, attrs=None):
    """Store MemFootprints (:mod:`damo_pipe.formats.footprints`) as the ``footprints``
    (one row per pid and time) and ``meminfo`` (one row per time with a system entry)
    tables of an open ArchiveWriter; ``attrs`` go to both tables."""
    times = fp.time_ns
    tf = writer.add_side_table(FOOTPRINTS, {"time_ns": np.int64, "pid": np.int64,
                                            **{c: np.uint64 for c in fp.proc}}, attrs)
    tf.extend(time_ns=times[fp.proc_snapshot], pid=fp.pid, **fp.proc)
    tm = writer.add_side_table(MEMINFO, {"time_ns": np.int64,
                                         **{c: np.uint64 for c in fp.sys}}, attrs)
    has = np.asarray(fp.has_sys, bool)
    tm.extend(time_ns=times[has], **{c: v[has] for c, v in fp.sys.items()})


def copy_collect_group(src_path, dst_file, skip=()):
    """Copy the ``/collect`` group of the archive at ``src_path`` (every side table, the
    CPU profile, the group's attributes) into the open h5py file ``dst_file``; members
    already in ``dst_file`` or named in ``skip`` are left out. Returns the names copied."""
    import h5py

    from damo_pipe.archive._blosc_direct import register_blosc_filter
    register_blosc_filter()
    copied = []
    src = open_h5_for_reading(src_path)
    with src:
        if GROUP not in src:
            return copied
        g = dst_file.require_group(GROUP)
        for k, v in src[GROUP].attrs.items():
            if k not in g.attrs:
                g.attrs[k] = v
        for name in src[GROUP]:
            if name in g or name in skip:
                continue
            src.copy(src[GROUP][name], g, name=name)
            copied.append(name)
    return copied


# -- the DAMON trace events that are not regions (formats.trace_events) ---------------

#: /collect attributes about trace lines of DAMON events damo-pipe does not know
UNKNOWN_COUNT_ATTR = "trace_unknown_events"
UNKNOWN_FIRST_ATTR = "trace_unknown_first"


def add_trace_event_tables(writer, names):
    """Create the side tables ``names`` (keys of ``formats.trace_events.SIDE_TABLES``) in
    the open ArchiveWriter ``writer``, with their units (``units_json``), kernel event and
    format string as attributes; returns {name: SideTable}."""
    from damo_pipe.formats.trace_events import SIDE_TABLES, table_attrs, table_columns
    return {n: writer.add_side_table(n, table_columns(n), table_attrs(n))
            for n in SIDE_TABLES if n in names}


def append_trace_event_rows(tables, rows):
    """Queue ``rows`` ({table: {column: array}}, what ``TraceStreamParser.take_side_rows``
    returns) into ``tables``; returns the number of rows that had no table (dropped)."""
    dropped = 0
    for name, cols in rows.items():
        t = tables.get(name)
        if t is None:
            dropped += len(next(iter(cols.values())))
            continue
        t.extend(**cols)
    return dropped


def write_trace_events(writer, rows, unknown=None):
    """The trace event side tables of a converted trace: one table per event that has
    rows; ``unknown``: (count, (line, text) or None) of the unknown DAMON event lines,
    stored as the ``/collect`` attributes ``trace_unknown_events`` and
    ``trace_unknown_first``."""
    if rows:
        append_trace_event_rows(add_trace_event_tables(writer, list(rows)), rows)
    if unknown and unknown[0]:
        count, first = unknown
        attrs = {UNKNOWN_COUNT_ATTR: int(count)}
        if first is not None:
            attrs[UNKNOWN_FIRST_ATTR] = "line %d: %s" % first
        writer.set_side_attrs(**attrs)

"""Extra time-series tables stored beside the records of an archive (group ``/collect``).

Tables: ``damos_stats`` (every DAMOS scheme's stats over time), ``footprints``
(/proc/PID/statm of the targets), ``meminfo`` (/proc/meminfo). Each table is a group of
equal-length 1-D extensible datasets (one per column) plus a ``committed`` row count
that is advanced only after the rows were flushed (the archive's two-step commit,
HDF5-CRASH-FACTS.md); readers trust ``min(committed, dataset lengths)``.

Made by :meth:`ArchiveWriter.add_side_table` before SWMR appending starts, filled with
:meth:`SideTable.append`, written and committed by :meth:`ArchiveWriter.flush` together
with the records. Read back with :func:`read_side_table`.
"""
from __future__ import annotations

import numpy as np

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
        self._pending = {c: [] for c in self.columns}
        self.rows_written = 0

    def append(self, **row):
        """Queue one row (every column given; missing ones are 0)."""
        for c in self.columns:
            self._pending[c].append(row.get(c, 0))

    def write_pending(self):
        n = len(next(iter(self._pending.values()))) if self._pending else 0
        if not n:
            return
        r0 = self.rows_written
        for c, dtype in self.columns.items():
            d = self.group[c]
            d.resize((r0 + n,))
            d[r0:r0 + n] = np.asarray(self._pending[c], dtype=dtype)
            self._pending[c] = []
        self.rows_written = r0 + n

    def commit(self):
        self.group[COMMITTED][0] = self.rows_written


def read_side_table(path_or_file, name):
    """dict column -> numpy array of the committed rows, or None when the table is absent."""
    import h5py

    from damo_pipe.archive._blosc_direct import register_blosc_filter
    register_blosc_filter()
    own = not isinstance(path_or_file, h5py.File)
    f = h5py.File(path_or_file, "r", swmr=True) if own else path_or_file
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

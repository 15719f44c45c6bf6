"""Uniform chunked access to the records of one or more inputs (used by the reports).

A :class:`RecordSource` lists the records of its inputs (metadata only) and yields each
record's snapshots in chunks, so a report keeps only one chunk in memory:

* damon.data files of any damo flavour are read whole (their format's reader) and sliced;
* HDF5 archives (formats read in place: ``open`` in the format table,
  :mod:`damo_pipe.sources`) are streamed through ``ArchiveReader.iter_chunks`` and never
  loaded whole.

Several inputs are concatenated in order (records are not merged), as damo does.
"""
from __future__ import annotations

import os

import numpy as np

from damo_pipe.errors import RecordFormatError
from damo_pipe.model import ChunkPiece

#: snapshots per chunk when streaming an archive or slicing an in-memory record
DEFAULT_SNAPSHOTS_PER_CHUNK = 4096
#: regions per chunk when streaming an archive (about 10 MiB of columns: fits the L3 cache,
#: and the reader's buffer sets stay small)
DEFAULT_REGIONS_PER_CHUNK = 1 << 18


def normalized_idx(v):
    """damo 3.4.3 turns a null kdamond/context index into 0 when it builds a record."""
    return 0 if v is None else v


class _MemoryEntry:
    def __init__(self, record):
        self.record = record
        self.meta = record

    def iter_chunks(self, per_chunk, time_range=None, columns=None, reuse_buffers=0):
        rec = self.record
        n = rec.nr_snapshots
        if n == 0:
            return
        if per_chunk is None or per_chunk >= n:
            yield rec
            return
        for lo in range(0, n, per_chunk):
            yield rec.slice_snapshots(lo, lo + per_chunk)


class _ArchiveEntry:
    def __init__(self, reader, idx, meta):
        self.reader = reader
        self.idx = idx
        self.meta = meta

    def stored_guide(self):
        sg = self.reader.stored_guide(self.idx)
        if sg is None:
            return None
        first = self.reader.first_start(self.idx)
        sg["first_start"] = first if first is not None else \
            int(self.reader.snapshot_rows(self.idx, 0, 1).start_ns[0])
        return sg

    def iter_chunks(self, per_chunk, time_range=None, columns=None, reuse_buffers=0):
        # bounded by regions (not snapshots) so that huge snapshots stay bounded too
        kwargs = {"snapshots_per_chunk": None, "regions_per_chunk": DEFAULT_REGIONS_PER_CHUNK}
        if per_chunk is not None and per_chunk < DEFAULT_SNAPSHOTS_PER_CHUNK:
            kwargs = {"snapshots_per_chunk": per_chunk}
        if time_range is not None:
            kwargs["time_range"] = time_range
        if columns is not None:
            kwargs["columns"] = columns
        if reuse_buffers:
            kwargs["reuse_buffers"] = reuse_buffers
        for chunk in self.reader.iter_chunks(self.idx, **kwargs):
            if chunk.nr_snapshots:
                yield chunk


class RecordSource:
    """The records of a list of inputs (paths or Records), readable chunk by chunk.

    Use as a context manager (archives stay open until ``close()``)::

        with RecordSource.open(["a.h5", "damon.data"]) as src:
            for i, meta in enumerate(src.metas):
                for chunk in src.iter_chunks(i):
                    ...
    """

    def __init__(self, entries, closers=()):
        self._entries = list(entries)
        self._closers = list(closers)
        self.snapshots_per_chunk = DEFAULT_SNAPSHOTS_PER_CHUNK
        #: the most regions of a piece of a huge snapshot (:meth:`iter_piece_range`)
        self.regions_per_piece = DEFAULT_REGIONS_PER_CHUNK

    # -- construction ---------------------------------------------------
    @classmethod
    def from_records(cls, records):
        return cls([_MemoryEntry(r) for r in records])

    @classmethod
    def open(cls, paths, input_type=None, lenient=False):
        """``lenient``: salvage damaged trace text (drop incomplete snapshots, counted
        and logged) instead of raising RecordFormatError."""
        from damo_pipe import sources
        entries, closers = [], []
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        try:
            for path in paths:
                path = os.fspath(path)
                if not os.path.exists(path):
                    raise RecordFormatError("no such file", path=path)
                handler = sources.handler(input_type or sources.detect_format(path), path)
                if handler.open is not None:
                    reader = handler.open(path)
                    closers.append(reader)
                    for idx, meta in enumerate(reader.records):
                        entries.append(_ArchiveEntry(reader, idx, meta))
                    continue
                for rec in handler.read(path, "auto", lenient=lenient):
                    entries.append(_MemoryEntry(rec))
        except BaseException:
            for c in closers:
                _close(c)
            raise
        return cls(entries, closers)

    @classmethod
    def of(cls, records_or_source):
        """Accept a RecordSource, a list of Records or a path list."""
        if isinstance(records_or_source, RecordSource):
            return records_or_source
        items = list(records_or_source)
        if items and not hasattr(items[0], "snapshots"):
            return cls.open(items)
        return cls.from_records(items)

    # -- access -----------------------------------------------------------
    @property
    def metas(self):
        return [e.meta for e in self._entries]

    def __len__(self):
        return len(self._entries)

    def iter_chunks(self, idx, time_range=None, snapshots_per_chunk=None, columns=None):
        """Chunks of record idx. ``columns``: region columns the caller needs (a hint:
        archives read only those, plus start and end; the others keep their defaults)."""
        per = snapshots_per_chunk or self.snapshots_per_chunk
        return self._entries[idx].iter_chunks(per, time_range, columns)

    def is_streamed(self, idx):
        """True when record idx is read from a file chunk by chunk (an archive)."""
        return not isinstance(self._entries[idx], _MemoryEntry)

    def stored_guide(self, idx):
        """The heatmap guide summary stored in an archive for record idx (dict with
        lowest_addr, highest_addr, gaps, heats, first_max_age, first_start), or None."""
        entry = self._entries[idx]
        if isinstance(entry, _MemoryEntry):
            return None
        return entry.stored_guide()

    def snapshot_table(self, idx):
        """The SnapshotColumns of record idx (no region is read)."""
        entry = self._entries[idx]
        if isinstance(entry, _MemoryEntry):
            return entry.record.snapshots
        return entry.reader.snapshot_table(entry.idx)

    def nr_snapshots(self, idx):
        """How many snapshots record idx holds (no snapshot row is read)."""
        entry = self._entries[idx]
        if isinstance(entry, _MemoryEntry):
            return entry.record.nr_snapshots
        return entry.reader.nr_snapshots(entry.idx)

    def snapshot_rows(self, idx, lo, hi):
        """SnapshotColumns of rows lo..hi-1 of record idx (archives read only those)."""
        entry = self._entries[idx]
        if isinstance(entry, _MemoryEntry):
            return entry.record.snapshots.take(lo, hi)
        return entry.reader.snapshot_rows(entry.idx, lo, hi)

    def snapshot_column(self, idx, name):
        """One whole snapshot column of record idx (archives read only that column)."""
        entry = self._entries[idx]
        if isinstance(entry, _MemoryEntry):
            return getattr(entry.record.snapshots, name)
        return entry.reader.snapshot_column(entry.idx, name)

    def snapshot_window(self, idx, time_range):
        """[lo, hi) of record idx's snapshots whose ``[start_ns, end_ns]`` meets
        ``time_range`` (all of them for None). Archives find it through their time
        index, reading a few rows."""
        entry = self._entries[idx]
        if time_range is None:
            return 0, self.nr_snapshots(idx)
        if isinstance(entry, _MemoryEntry):
            return entry.record.snapshots.window(time_range)
        return entry.reader.snapshot_range(entry.idx, time_range)

    def iter_chunk_range(self, idx, lo, hi, columns=None, reuse_buffers=0):
        """Chunks holding exactly snapshots ``lo:hi`` of record idx (archives read only those).

        ``columns``: see :meth:`iter_chunks`. ``reuse_buffers=n``: archives read into n
        sets of arrays used in turn, so a chunk's arrays are overwritten when the n-th
        next chunk is read (the caller must be done with it by then)."""
        entry = self._entries[idx]
        if hi <= lo:
            return
        if isinstance(entry, _MemoryEntry):
            rec = entry.record
            per = self.snapshots_per_chunk
            for a in range(lo, hi, per):
                yield rec.slice_snapshots(a, min(hi, a + per))
            return
        kwargs = {"snapshots_per_chunk": None, "regions_per_chunk": DEFAULT_REGIONS_PER_CHUNK}
        if self.snapshots_per_chunk < DEFAULT_SNAPSHOTS_PER_CHUNK:
            kwargs = {"snapshots_per_chunk": self.snapshots_per_chunk}
        if columns is not None:
            kwargs["columns"] = columns
        for chunk in entry.reader.iter_chunks(entry.idx, index_range=(lo, hi),
                                              reuse_buffers=reuse_buffers, **kwargs):
            if chunk.nr_snapshots:
                yield chunk

    def iter_piece_range(self, idx, lo, hi, columns=None, reuse_buffers=0):
        """Like :meth:`iter_chunk_range`, as :class:`ChunkPiece` items: an archive's
        snapshot of more than ``regions_per_piece`` regions comes in pieces (bounded
        memory whatever the snapshot size); records in memory come whole."""
        entry = self._entries[idx]
        if hi <= lo:
            return
        if isinstance(entry, _MemoryEntry):
            k = lo
            for chunk in self.iter_chunk_range(idx, lo, hi, columns=columns):
                yield ChunkPiece(chunk, k, False, False)
                k += chunk.nr_snapshots
            return
        per = self.snapshots_per_chunk if self.snapshots_per_chunk < DEFAULT_SNAPSHOTS_PER_CHUNK \
            else None
        for piece in entry.reader.iter_pieces(entry.idx, self.regions_per_piece, per,
                                              index_range=(lo, hi), columns=columns,
                                              reuse_buffers=reuse_buffers):
            if piece.chunk.nr_snapshots:
                yield piece

    def iter_pieces(self, idx, time_range=None, columns=None):
        """:meth:`iter_piece_range` over the snapshots meeting ``time_range`` (all for None)."""
        lo, hi = self.snapshot_window(idx, time_range)
        return self.iter_piece_range(idx, lo, hi, columns)

    def load(self, idx):
        """The whole record idx (concatenating its chunks)."""
        entry = self._entries[idx]
        if isinstance(entry, _MemoryEntry):
            return entry.record
        from damo_pipe.model import concat_records
        parts = list(entry.iter_chunks(None))
        if not parts:
            return entry.meta.meta() if hasattr(entry.meta, "meta") else entry.meta
        return concat_records(parts)

    def close(self):
        for c in self._closers:
            _close(c)
        self._closers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _close(obj):
    close = getattr(obj, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # pragma: no cover - best effort
            pass

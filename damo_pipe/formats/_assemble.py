"""Turn parsed snapshots of the end-time-only formats (trace text, legacy binary) into
record chunks, applying damo's post-processing (FORMATS.md §0):

* snapshot k>0 starts where snapshot k-1 of the same record ended;
* the first snapshot's start is deduced from the mean snapshot length
  (``first_end - (last_end - first_end) / (n - 1)``, a float) — known only at the
  end, so chunks carry a placeholder (``start = end``) for it and the stream reports
  the exact value afterwards (``first_starts``);
* a trailing *fake snapshot* (one region 0-0, nr_accesses -1, age -1) is dropped;
* ``total_bytes`` is the sum of region sizes.

Deviation (docs/compat.md): damo stops the deduction at the first record
with fewer than two snapshots (``break``); we deduce it for every record.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from damo_pipe.model import Record, RegionColumns, SnapshotColumns


@dataclasses.dataclass
class SnapBatch:
    """Consecutive parsed snapshots (any records), regions in snapshot order."""

    rec_idx: np.ndarray      # int64 per snapshot
    end_ns: np.ndarray       # int64 per snapshot
    nr_regions: np.ndarray   # int64 per snapshot
    start: np.ndarray        # uint64 per region
    end: np.ndarray          # uint64 per region
    nr_accesses: np.ndarray  # int64 per region
    age: np.ndarray          # int64 per region

    def __len__(self):
        return len(self.end_ns)


_PIECE_FIELDS = ("end_ns", "nr", "start", "end", "acc", "age")


class _Pending:
    __slots__ = ("pieces", "nregions", "first_end", "last_end", "count", "prev_end")

    def __init__(self):
        self.pieces = []         # dicts of _PIECE_FIELDS arrays (consecutive snapshots)
        self.nregions = 0
        self.first_end = None
        self.last_end = None
        self.count = 0           # snapshots seen (including a trailing fake one)
        self.prev_end = None     # end of the last emitted snapshot


def _cat(pieces, f):
    if len(pieces) == 1:
        return pieces[0][f]
    return np.concatenate([p[f] for p in pieces])


class ChunkAssembler:
    """Accumulates SnapBatches per record and emits Record chunks.

    ``metas`` is the (growing) list of metadata Records, indexed by rec_idx; it is
    read each time a chunk is emitted, so parsers may append to it as they go.
    """

    def __init__(self, metas, chunk_regions=1 << 20):
        self.metas = metas
        self.chunk_regions = chunk_regions
        self._pending = {}

    def _state(self, r):
        st = self._pending.get(r)
        if st is None:
            st = self._pending[r] = _Pending()
        return st

    def add(self, batch: SnapBatch):
        """Add a batch; return the list of (rec_idx, chunk) now ready."""
        out = []
        n = len(batch)
        if n == 0:
            return out
        rec = np.asarray(batch.rec_idx, np.int64)
        nr = np.asarray(batch.nr_regions, np.int64)
        end_ns = np.asarray(batch.end_ns, np.int64)
        r0 = int(rec[0])
        if int(rec[-1]) == r0 and bool((rec == r0).all()):
            groups = [(r0, None)]
        else:
            uniq, first = np.unique(rec, return_index=True)
            groups = [(int(uniq[i]), None) for i in np.argsort(first)]
            groups = [(r, rec == r) for r, _ in groups]
        for r, smask in groups:
            if smask is None:
                piece = {"end_ns": end_ns, "nr": nr, "start": batch.start, "end": batch.end,
                         "acc": batch.nr_accesses, "age": batch.age}
            else:
                rmask = np.repeat(smask, nr)
                piece = {"end_ns": end_ns[smask], "nr": nr[smask], "start": batch.start[rmask],
                         "end": batch.end[rmask], "acc": batch.nr_accesses[rmask],
                         "age": batch.age[rmask]}
            st = self._state(r)
            k = len(piece["end_ns"])
            if st.first_end is None:
                st.first_end = int(piece["end_ns"][0])
            st.last_end = int(piece["end_ns"][-1])
            st.count += k
            st.pieces.append(piece)
            st.nregions += len(piece["start"])
            if st.nregions >= self.chunk_regions:
                ch = self._flush(r, final=False)
                if ch is not None:
                    out.append((r, ch))
        return out

    def flush_before_stream(self, r):
        """Everything pending of record ``r`` as one chunk (None: nothing), before one
        of its snapshots is streamed (see :meth:`end_stream`): a held-back trailing
        one-region snapshot is then not the last one, so it is emitted as it is."""
        return self._flush(r, final=False, keep_fake=False)

    def end_stream(self, r, end_ns):
        """A snapshot of record ``r`` ending at ``end_ns`` was streamed past the
        assembler (its regions went out in pieces; formats.trace_text.SnapshotPiece):
        count it as emitted; return its start (the end of the snapshot before it)."""
        st = self._state(r)
        if st.first_end is None:
            st.first_end = int(end_ns)
        st.last_end = int(end_ns)
        st.count += 1
        start = int(end_ns) if st.prev_end is None else st.prev_end
        st.prev_end = int(end_ns)
        return start

    def _flush(self, r, final, keep_fake=True):
        st = self._pending.get(r)
        if st is None or not st.pieces:
            return None
        cols = {f: _cat(st.pieces, f) for f in _PIECE_FIELDS}
        st.pieces = []
        st.nregions = 0
        nsnap = len(cols["end_ns"])
        nr = cols["nr"]
        if nsnap and int(nr[-1]) == 1:
            lo = len(cols["start"]) - 1
            if (int(cols["start"][lo]) == 0 and int(cols["end"][lo]) == 0
                    and int(cols["acc"][lo]) == -1 and int(cols["age"][lo]) == -1):
                if not final and keep_fake:
                    st.pieces = [{f: cols[f][-1:] for f in _PIECE_FIELDS}]
                    st.nregions = 1
                    cols = {f: cols[f][:-1] for f in _PIECE_FIELDS}
                elif final and st.count >= 2:
                    cols = {f: cols[f][:-1] for f in _PIECE_FIELDS}
                nsnap = len(cols["end_ns"])
        if nsnap == 0:
            return None
        end_ns = cols["end_ns"]
        start_ns = np.empty(nsnap, np.int64)
        start_ns[0] = end_ns[0] if st.prev_end is None else st.prev_end
        start_ns[1:] = end_ns[:-1]
        st.prev_end = int(end_ns[-1])
        return build_chunk(self.metas[r], start_ns, end_ns, cols["nr"], cols["start"],
                           cols["end"], cols["acc"], cols["age"])

    def finish(self):
        """Emit everything left; return (list of (rec_idx, chunk), first_starts dict)."""
        out = []
        for r in sorted(self._pending):
            ch = self._flush(r, final=True)
            if ch is not None:
                out.append((r, ch))
        return out, self.first_starts()

    def first_starts(self):
        """{rec_idx: exact float start of the first snapshot} for records with >= 2 snapshots."""
        res = {}
        for r, st in self._pending.items():
            if st.count >= 2:
                span = float(st.last_end - st.first_end) / (st.count - 1)
                res[r] = st.first_end - span
        return res


def build_chunk(meta, start_ns, end_ns, nr, start, end, acc, age):
    """Record chunk from snapshot and region columns."""
    n = len(end_ns)
    nr = np.asarray(nr, np.int64)
    offs = np.zeros(n, np.int64)
    if n > 1:
        np.cumsum(nr[:-1], out=offs[1:])
    regions = RegionColumns(start, end, acc, age)
    total = np.zeros(n, np.uint64)
    nz = nr > 0
    if len(regions) and nz.any():
        sizes = regions.end - regions.start
        total[nz] = np.add.reduceat(sizes, offs[nz])
    snapcols = SnapshotColumns(start_ns=start_ns, end_ns=end_ns, region_offset=offs,
                               nr_regions=nr, total_bytes=total)
    return dataclasses.replace(meta, snapshots=snapcols, regions=regions, first_start_ns=None)


def apply_first_start(rec: Record, first_start):
    """Set the deduced float start of snapshot 0 (truncated int in start_ns[0])."""
    if first_start is None or rec.nr_snapshots == 0:
        return rec
    rec.snapshots.start_ns[0] = int(first_start)
    rec.first_start_ns = first_start
    return rec


def collect_records(metas, chunks_iter, first_starts):
    """Concatenate (rec_idx, chunk) pairs into full records (order = metas order)."""
    from damo_pipe.model import concat_records
    parts = {}
    for r, ch in chunks_iter:
        parts.setdefault(r, []).append(ch)
    records = []
    for r, meta in enumerate(metas):
        ps = parts.get(r)
        if not ps:
            rec = dataclasses.replace(meta, snapshots=SnapshotColumns(), regions=RegionColumns())
        else:
            rec = concat_records(ps) if len(ps) > 1 else ps[0]
            rec = dataclasses.replace(rec, snapshots=rec.snapshots.take(0, rec.nr_snapshots))
            apply_first_start(rec, first_starts.get(r))
        records.append(rec)
    return records


__all__ = ["SnapBatch", "ChunkAssembler", "build_chunk", "apply_first_start",
           "collect_records"]

"""Legacy binary record format v0/v1/v2 (FORMATS.md §2), damo <= 2.0.1.

Layout (little-endian, packed)::

    [char magic[16] = "damon_recfmt_ver", int32 version]      # absent in v0
    repeated until the end of the file:
        int64 sec, int64 nsec (0 <= nsec < 10**9), uint32 nr_targets,
        nr_targets x { target id (int32 if v1 else uint64), uint32 nr_regions,
                       nr_regions x { uint64 start, uint64 end, uint32 nr_accesses } }

Engines: ``python`` (struct, the reference) and ``cython``
(:func:`damo_pipe.formats._binary_kernels.binary_scan`), chosen by
:func:`damo_pipe._engine.select_engine`.  Both validate every length against the
remaining bytes *before* allocating, and raise :class:`RecordFormatError` naming the
byte offset of truncation (also 1 to 15 bytes after the last block: a cut block
header), of a nanoseconds field outside [0, 10**9) (damo and the kernel recorder wrote
normalised timespecs; a misaligned read after a lost or repeated region entry meets
one), of a region whose end is below its start (DAMON regions never are; misaligned
reads often are), and "snapshot is not sorted by time" when a target's end time goes
backwards.
A file without the version header (v0) and without any snapshot is no record.  Records are created per target id in first-seen order; no age,
no intervals.  The first snapshot's start is deduced like for traces (_assemble.py).
"""
from __future__ import annotations

import mmap
import struct

import numpy as np

from damo_pipe._engine import select_engine
from damo_pipe.errors import RecordFormatError
from damo_pipe.formats._assemble import ChunkAssembler, SnapBatch, collect_records
from damo_pipe.model import AGE_UNKNOWN, Record

MAGIC = b"damon_recfmt_ver"
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


def read_header(buf, path=None):
    """(version, offset of the first block)."""
    if len(buf) >= 16 and bytes(buf[:16]) == MAGIC:
        if len(buf) < 20:
            raise RecordFormatError("truncated format version", path=path, offset=16)
        return struct.unpack_from("<i", buf, 16)[0], 20
    return 0, 0


def py_binary_scan(buf, pos, version, max_regions, path=None):
    """Reference engine: parse whole blocks from ``pos`` until ``max_regions`` regions
    have been produced (at least one block) or the data ends.

    Returns (next_pos, tids, ends, nrs, block offsets (one per snapshot), start, end,
    nr_accesses arrays).
    """
    n = len(buf)
    tid_fmt, tid_sz = ("<i", 4) if version == 1 else ("<Q", 8)
    tids, ends, nrs, boffs = [], [], [], []
    starts, ends_a, accs = [], [], []
    total = 0
    while n - pos >= 16 and (total < max_regions or not tids):
        sec, nsec = struct.unpack_from("<qq", buf, pos)
        if not 0 <= nsec < 1000000000:
            raise RecordFormatError("bad snapshot time (nanoseconds field %d not in [0, "
                                    "10**9))" % nsec, path=path, offset=pos + 8)
        end_ns = sec * 1000000000 + nsec
        if not I64_MIN <= end_ns <= I64_MAX:
            raise RecordFormatError("snapshot time out of range", path=path, offset=pos)
        p = pos + 16
        if n - p < 4:
            raise RecordFormatError("truncated block header (nr_targets)", path=path, offset=p)
        (nr_targets,) = struct.unpack_from("<I", buf, p)
        p += 4
        for _ in range(nr_targets):
            if n - p < tid_sz + 4:
                raise RecordFormatError("truncated target header", path=path, offset=p)
            (tid,) = struct.unpack_from(tid_fmt, buf, p)
            p += tid_sz
            (nr,) = struct.unpack_from("<I", buf, p)
            p += 4
            if n - p < nr * 20:
                raise RecordFormatError(
                    "truncated region list (%d regions announced, %d bytes left)"
                    % (nr, n - p), path=path, offset=p)
            for i in range(nr):
                s, e, a = struct.unpack_from("<QQI", buf, p)
                if e < s:
                    raise RecordFormatError("region end %d below its start %d" % (e, s),
                                            path=path, offset=p)
                starts.append(s)
                ends_a.append(e)
                accs.append(a)
                p += 20
            tids.append(tid)
            ends.append(end_ns)
            nrs.append(nr)
            boffs.append(pos)
            total += nr
        pos = p
    return (pos, tids, ends, nrs, boffs, np.array(starts, np.uint64), np.array(ends_a, np.uint64),
            np.array(accs, np.int64))


KERNELS = "damo_pipe.formats._binary_kernels"


def _engine(engine):
    """The block scanner of ``engine``: the compiled kernel or :func:`py_binary_scan`."""
    kernels = select_engine(engine, KERNELS)
    return py_binary_scan if kernels is None else kernels.binary_scan


class BinaryStream:
    """Iterate (rec_idx, chunk) over a legacy binary file; ``records``/``first_starts``."""

    def __init__(self, path, *, chunk_regions=1 << 20, engine="auto", data=None):
        self.path = path
        self.chunk_regions = chunk_regions
        self.scan = _engine(engine)
        self.records = []
        self.first_starts = {}
        self._data = data

    def __iter__(self):
        if self._data is not None:
            yield from self._run(self._data)
            return
        with open(self.path, "rb") as f:
            try:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # empty file
                mm = b""
            try:
                yield from self._run(mm)
            finally:
                if isinstance(mm, mmap.mmap):
                    mm.close()

    def _run(self, buf):
        path = self.path
        version, pos = read_header(buf, path)
        asm = ChunkAssembler(self.records, self.chunk_regions)
        from damo_pipe.formats._mm import PageReleaser
        rel = PageReleaser(buf) if isinstance(buf, mmap.mmap) else None
        rec_of = {}
        last_end = {}
        step = max(1, min(self.chunk_regions, 1 << 20))
        while len(buf) - pos >= 16:
            pos, tids, ends, nrs, boffs, s, e, a = self.scan(buf, pos, version, step, path)
            nsnap = len(tids)
            rec = np.empty(nsnap, np.int64)
            for k in range(nsnap):
                tid = tids[k]
                r = rec_of.get(tid)
                if r is None:
                    r = rec_of[tid] = len(self.records)
                    self.records.append(Record(target_id=int(tid)))
                prev = last_end.get(r)
                if prev is not None and ends[k] < prev:
                    raise RecordFormatError("snapshot is not sorted by time", path=path,
                                            offset=int(boffs[k]))
                last_end[r] = ends[k]
                rec[k] = r
            batch = SnapBatch(rec_idx=rec, end_ns=np.asarray(ends, np.int64),
                              nr_regions=np.asarray(nrs, np.int64), start=s, end=e,
                              nr_accesses=a, age=np.full(len(s), AGE_UNKNOWN, np.int64))
            yield from asm.add(batch)
            if rel is not None:
                rel.release_upto(pos)
        if pos < len(buf):
            raise RecordFormatError("truncated block header (%d bytes after the last "
                                    "block)" % (len(buf) - pos), path=path, offset=pos)
        if version == 0 and not self.records:
            raise RecordFormatError("not a DAMON record: no snapshot (and no legacy "
                                    "binary header)", path=path, offset=0)
        rest, self.first_starts = asm.finish()
        yield from rest


def read_binary(path, engine="auto", data=None):
    st = BinaryStream(path, chunk_regions=1 << 62, engine=engine, data=data)
    chunks = list(st)
    return collect_records(st.records, chunks, st.first_starts)

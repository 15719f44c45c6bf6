"""Appending writer of the HDF5 archive (crash-safe, optionally SWMR).

Durability protocol (HDF5-CRASH-FACTS.md): every ``flush()`` first writes the new rows
and flushes the *file*, then advances the per-record ``committed`` counters and flushes
again. A reader trusts only ``min(committed, readable length)``, so a writer killed at
any moment leaves a file that opens and holds every snapshot flushed before the kill.

A full disk: before every batch HDF5 gets, the space it can need is reserved
(:mod:`damo_pipe._diskspace`); when it cannot be, :class:`DiskFullError` is raised
before HDF5 writes anything, so the file stays as it was after the last flush and
closes cleanly. HDF5 itself never meets the full disk (it does not survive that).
"""
import json
import os
import platform
import socket
import time
import warnings

import numpy as np

from damo_pipe import __version__
from damo_pipe._atomic import DISK_FULL_ERRNOS, atomic_output, output_error
from damo_pipe._diskspace import SpaceReservation, detach_hdf5_file
from damo_pipe.archive import layout
from damo_pipe.errors import ArchiveError, DiskFullError
from damo_pipe.model import DAMOS_STAT_FIELDS, Record, SnapshotColumns

def _set_opt(attrs, name, value):
    if value is not None:
        attrs[name] = value


def _int_attr(value):
    """Store ints of any sign up to 64 bits exactly."""
    value = int(value)
    return np.uint64(value) if value > np.iinfo(np.int64).max else np.int64(value)


def write_record_meta(group, meta: Record):
    a = group.attrs
    if meta.target_id is not None:
        a["target_id"] = _int_attr(meta.target_id)
    for name in ("kdamond_idx", "context_idx", "scheme_idx", "pid"):
        v = getattr(meta, name)
        if v is not None:
            a[name] = _int_attr(v)
    iv = meta.intervals
    if iv is not None:
        for name in ("sample_us", "aggr_us", "ops_update_us"):
            v = getattr(iv, name)
            a["intervals_" + name] = v
            a["intervals_" + name + "_is_int"] = isinstance(v, int)
        if iv.goal is not None:
            for name in ("access_bp", "aggrs", "min_sample_us", "max_sample_us"):
                v = getattr(iv.goal, name)
                a["intervals_goal_" + name] = v
                a["intervals_goal_" + name + "_is_int"] = isinstance(v, int)
    a["scheme_filters_json"] = json.dumps(meta.scheme_filters)
    a["data_source"] = meta.data_source
    _set_opt(a, "ops", meta.ops)


class ArchiveWriter:
    """Create an archive and append records' snapshots in batches.

    Add every record with :meth:`add_record` first (SWMR forbids creating datasets
    later), then :meth:`append` chunks and :meth:`flush` as often as durability needs.
    """

    def __init__(self, path, *, swmr=False, compression=None, provenance=None,
                 chunk_rows=None, compact_on_close=True, summariser=None,
                 discard_on_error=False):
        """``chunk_rows``: rows per region-column chunk; SWMR archives default to smaller
        chunks because every flush rewrites the last, partly filled chunk of each column
        and HDF5 does not reuse the space it leaves (docs/format.md, "Crash safety").

        ``summariser``: a factory called once per record (e.g.
        ``damo_pipe.analyze.heatmap.GuideBuilder``) whose objects are fed every chunk
        (``feed(chunk)``) and whose ``summary()`` is stored at close as the record's guide
        summary (docs/format.md, "Guide summary"); None stores none (readers then scan).
        The summary is optional: a summariser that fails is dropped with a warning and the
        archive is written without it.

        ``discard_on_error``: the file is a temporary one the caller deletes when writing
        fails (atomic_output); leaving the ``with`` block on an exception then drops its
        content and closes it without writing what is queued."""
        import h5py

        self.path = os.fspath(path)
        self.swmr = swmr
        self._chunk_rows = chunk_rows or (layout.SWMR_REGION_CHUNK_ROWS if swmr
                                          else layout.REGION_CHUNK_ROWS)
        self._compact_on_close = compact_on_close
        self._summariser = summariser
        self._compression = layout.compression_kwargs(compression)
        self._compression_name = compression or layout.DEFAULT_COMPRESSION
        self._discard_on_error = discard_on_error
        self._failed = False       # a write could not be made: close without writing more
        self._hdf5_failed = False  # HDF5 itself met the full disk (see _Hdf5Writes)
        self._space = None
        self._size_at_flush = 0    # file size at the last HDF5 flush (see _space_bound)
        try:
            self._file = h5py.File(self.path, "w", libver=("v110", "latest"))
        except OSError as e:
            if e.errno:     # the file system's answer (no directory, permission, full)
                raise output_error(e, self.path) from None
            raise ArchiveError("cannot create archive (%s)" % e, path=self.path)
        try:
            self._space = SpaceReservation(self.path)
            self._space.ensure(_META_BYTES)
            self._size_at_flush = os.path.getsize(self.path)
        except BaseException:
            self.abort()
            raise
        self._records = []
        self._tables = []   # SideTables, committed with the records
        self._tables_flushed = []   # their rows on disk at the last flush
        self._unflushed = set()     # records with rows written since the last flush
        self._pending = []  # per record: list of chunks not yet written
        self._swmr_started = False
        self._profile = None   # (perf.data path, samples, attrs) stored at close
        self._direct = None    # BloscChunkWriter of the region columns (_direct_writer)
        self._zeros = None     # read-only zero probe counts (_zero_counts)
        self._direct_ok = self._compression_name in ("lz4", "zstd")
        a = self._file.attrs
        a["format"] = layout.FORMAT_NAME
        a["format_version"] = layout.FORMAT_VERSION
        a["writer"] = "damo-pipe " + __version__
        a["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        a["compression"] = self._compression_name
        prov = {"hostname": socket.gethostname(), "kernel_release": platform.release()}
        prov.update(provenance or {})
        for k, v in prov.items():
            if v is not None:
                a[k] = str(v)
        self._file.create_group(layout.RECORDS_GROUP)

    # -- structure -------------------------------------------------------------
    def add_side_table(self, name, columns, attrs=None):
        """A time-series table ``/collect/<name>`` (docs/format.md) beside the records:
        ``columns`` maps column names to numpy dtypes. Rows queued with
        ``table.append(**row)`` become durable at the next :meth:`flush`, with the same
        two-step commit as the records. Like records, tables must be added before
        appending starts in SWMR mode."""
        from damo_pipe.archive.sidetables import SideTable
        self._check_structure_open("a side table")
        table = SideTable(self._file, name, columns, self._compression, attrs)
        self._tables.append(table)
        self._tables_flushed.append(0)
        return table

    def set_side_attrs(self, **attrs):
        """Attributes of the ``/collect`` group (JSON strings, numbers), before SWMR
        appending starts."""
        from damo_pipe.archive.sidetables import GROUP
        self._check_structure_open("attributes")
        g = self._file.require_group(GROUP)
        for k, v in attrs.items():
            g.attrs[k] = v

    def copy_side_data(self, src_path):
        """Copy every side table, the CPU profile and the ``/collect`` attributes of the
        archive at ``src_path`` into this one (archive -> archive conversion); before
        SWMR appending starts. Returns the names copied."""
        from damo_pipe.archive.sidetables import copy_collect_group
        self._check_structure_open("side data")
        self._reserve(_collect_storage_bytes(src_path))
        with self._hdf5_writes():
            names = copy_collect_group(src_path, self._file)
            self._hdf5_flush()
        return names

    def _check_structure_open(self, what):
        if self._swmr_started:
            raise ArchiveError("cannot add %s after appending started in SWMR mode" % what,
                               path=self.path)

    def add_record(self, meta: Record) -> int:
        if self._swmr_started:
            raise ArchiveError("cannot add a record after appending started in SWMR mode",
                               path=self.path)
        idx = len(self._records)
        self._reserve()   # room for the record's metadata
        g = self._file[layout.RECORDS_GROUP].create_group(layout.RECORD_NAME_FORMAT % idx)
        write_record_meta(g, meta)
        snaps = g.create_group("snapshots")
        regions = g.create_group("regions")
        regions.attrs["cf_role"] = "contiguous ragged array of regions"
        for name, (dtype, units) in layout.SNAPSHOT_COLUMNS.items():
            d = snaps.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype,
                                     chunks=(layout.SNAPSHOT_CHUNK_ROWS,), **self._compression)
            d.attrs["units"] = units
        snaps["nr_regions"].attrs["sample_dimension"] = "region"
        self._create_region_columns(regions, self._chunk_rows)
        regions.create_dataset(layout.PROBE_HITS, shape=(0,), maxshape=(None,), dtype=np.int64,
                               chunks=(4096,), **self._compression)
        g.create_dataset(layout.COMMITTED, data=np.zeros(3, np.int64))
        g.create_dataset(layout.FIRST_START, data=np.array(
            [np.nan if meta.first_start_ns is None else float(meta.first_start_ns)]))
        ti = g.create_dataset(layout.TIME_INDEX, shape=(0,), maxshape=(None,), dtype=np.int64,
                              chunks=(1024,))
        ti.attrs["stride"] = layout.TIME_INDEX_STRIDE
        self._create_guide_datasets(g)
        self._file[layout.RECORDS_GROUP].attrs["nr_records"] = idx + 1
        self._records.append({"group": g, "snapshots": 0, "regions": 0, "probe_hits": 0,
                              "last_end": None, "guide": self._new_summariser(idx),
                              "flushed": (0, 0, 0), "optional": 0, "datasets": {},
                              "chunk_rows": self._chunk_rows,
                              # the open snapshot (append_open): its first region row
                              # and the sum of its region sizes so far
                              "open_from": None, "open_bytes": 0})
        self._pending.append([])
        return idx

    def update_record_meta(self, record_idx, meta: Record):
        """Replace record ``record_idx``'s metadata with ``meta``'s (for inputs that state
        some of it only after the snapshots, e.g. damo JSON's ``data_source``)."""
        self._check_structure_open("record metadata")
        g = self._records[record_idx]["group"]
        for name in list(g.attrs):
            del g.attrs[name]
        write_record_meta(g, meta)

    @staticmethod
    def _create_guide_datasets(g):
        """The optional guide summary (filled by close(); covered = -1 until then)."""
        gg = g.create_group(layout.GUIDE_GROUP)
        gg.create_dataset(layout.GUIDE_COVERED, data=np.array([-1, 0], np.int64))
        gg.create_dataset(layout.GUIDE_BOUNDS, data=np.zeros(2, np.uint64))
        gg.create_dataset(layout.GUIDE_FIRST_MAX_AGE, data=np.zeros(1, np.int64))
        gg.create_dataset(layout.GUIDE_GAPS, shape=(0, 2), maxshape=(None, 2), dtype=np.uint64,
                          chunks=(256, 2))
        gg.create_dataset(layout.GUIDE_HEATS_HI, shape=(0,), maxshape=(None,), dtype=np.int64,
                          chunks=(256,))
        gg.create_dataset(layout.GUIDE_HEATS_LO, shape=(0,), maxshape=(None,), dtype=np.uint64,
                          chunks=(256,))

    def _new_summariser(self, record_idx):
        if self._summariser is None:
            return None
        try:
            return self._summariser()
        except Exception as e:
            self._summary_failed(record_idx, e)
            return None

    def _summary_failed(self, record_idx, exc):
        warnings.warn("%s: guide summary of record %d not stored (%s: %s); readers scan "
                      "the record instead" % (self.path, record_idx, type(exc).__name__, exc),
                      RuntimeWarning, stacklevel=2)

    def _feed_guide(self, record_idx, chunks):
        st = self._records[record_idx]
        builder = st["guide"]
        if builder is None:
            return
        try:
            for c in chunks:
                # bounded pieces keep the builder's temporaries small
                n, k = c.nr_snapshots, 0
                offs = c.snapshots.region_offset
                while k < n:
                    limit = offs[k] + _GUIDE_PIECE_REGIONS
                    end = k + max(1, int(np.searchsorted(offs[k:], limit, side="left")))
                    end = min(end, n)
                    builder.feed(c if (k == 0 and end == n) else c.slice_snapshots(k, end))
                    k = end
        except Exception as e:  # the summary is optional: readers scan instead
            self._summary_failed(record_idx, e)
            st["guide"] = None

    def _write_guides(self):
        """Store every record's guide summary (two steps: values, then ``covered``)."""
        done = []
        for idx, st in enumerate(self._records):
            builder = st["guide"]
            summary = None
            if builder is not None:
                try:
                    summary = builder.summary()
                except Exception as e:
                    self._summary_failed(idx, e)
            if summary is None or summary["nr_snapshots"] != st["snapshots"]:
                continue
            self._reserve(extra=32 * (len(summary["gaps"]) + len(summary["heats"] or ())))
            heats = summary["heats"]
            if heats is not None and (len(heats) != len(summary["gaps"]) + 1
                                      or any(not (-(1 << 127) <= h < (1 << 127)) for h in heats)):
                heats = None
            gg = st["group"][layout.GUIDE_GROUP]
            gg[layout.GUIDE_COVERED][:] = [-1, 0]
            gg[layout.GUIDE_BOUNDS][:] = [summary["lowest_addr"], summary["highest_addr"]]
            gg[layout.GUIDE_FIRST_MAX_AGE][0] = summary["first_max_age"]
            gaps = np.array(summary["gaps"], np.uint64).reshape(-1, 2)
            d = gg[layout.GUIDE_GAPS]
            d.resize((len(gaps), 2))
            if len(gaps):
                d[:] = gaps
            n = len(heats) if heats is not None else 0
            for name in (layout.GUIDE_HEATS_HI, layout.GUIDE_HEATS_LO):
                gg[name].resize((n,))
            if n:
                gg[layout.GUIDE_HEATS_HI][:] = np.array([h >> 64 for h in heats], np.int64)
                gg[layout.GUIDE_HEATS_LO][:] = np.array([h & ((1 << 64) - 1) for h in heats],
                                                        np.uint64)
            done.append((gg, [summary["nr_snapshots"], 1 if heats is not None else 0]))
        if not done:
            return
        self._file.flush()
        for gg, covered in done:
            gg[layout.GUIDE_COVERED][:] = covered
        self._file.flush()

    def set_first_start(self, record_idx, value_ns):
        """Store the exact deduced start of a record's first snapshot (trace/binary inputs)
        and its truncation as ``start_ns[0]`` (now, or when snapshot 0 is written)."""
        st = self._records[record_idx]
        st["group"][layout.FIRST_START][0] = np.nan if value_ns is None else float(value_ns)
        st["first_start"] = value_ns
        self._apply_first_start(st)

    @staticmethod
    def _apply_first_start(st):
        value = st.get("first_start")
        if value is not None and st["snapshots"]:
            st["group"]["snapshots"]["start_ns"][0] = int(value)

    # -- data ------------------------------------------------------------------
    def append(self, record_idx, chunk: Record):
        """Queue a chunk (consecutive snapshots of one record); written on flush()."""
        if chunk.nr_snapshots == 0:
            return
        if self._records[record_idx]["open_from"] is not None:
            raise ArchiveError("record %d: a chunk appended while a snapshot is open "
                               "(end_open or drop_open it first)" % record_idx,
                               path=self.path)
        chunk.check()
        self._pending[record_idx].append(chunk)
        if sum(c.nr_regions for c in self._pending[record_idx]) >= layout.REGION_CHUNK_ROWS * 4:
            self._write_pending(record_idx)

    def _direct_writer(self):
        """The writer of whole Blosc chunks compressed in threads (_blosc_direct); None
        when it cannot be used. A SWMR archive uses it only for the region columns of
        records widened by _widen_big_records (a live recording's small chunks are
        rewritten at every flush: HDF5's filter path)."""
        if self._direct is None and self._direct_ok:
            from damo_pipe._prefetch import usable_cpus
            from damo_pipe.archive._blosc_direct import BloscChunkWriter
            self._direct = BloscChunkWriter(workers=min(4, usable_cpus()))
        return self._direct

    def _close_direct(self):
        d, self._direct = self._direct, None
        self._direct_ok = False
        if d is not None:
            d.close()

    def _widen_big_records(self, st, nr_new_regions):
        """Before a SWMR archive's first write: give the region columns of records whose
        snapshots are big (page granularity: a snapshot of ``SWMR_WIDE_MIN_REGIONS`` or
        more, or rows streamed while it is open) the chunks of a closed archive. Small
        chunks keep a small live recording small (every flush rewrites the last, partly
        filled chunk of each column), but cost a 30M-region snapshot 7,300 chunk writes
        a column: 3x slower. ``st``/``nr_new_regions``: the rows about to be written."""
        wide = layout.REGION_CHUNK_ROWS
        for other, pending in zip(self._records, self._pending):
            if other["regions"] or other["chunk_rows"] >= wide:
                continue
            biggest = max([int(c.snapshots.nr_regions.max()) for c in pending
                           if c.nr_snapshots], default=0)
            if other is st:
                biggest = max(biggest, nr_new_regions, layout.SWMR_WIDE_MIN_REGIONS
                              if st["open_from"] is not None else 0)
            if biggest >= layout.SWMR_WIDE_MIN_REGIONS:
                # the columns are still empty, and SWMR mode (which forbids creating
                # objects) has not started: make them again with wide chunks
                regions = other["group"]["regions"]
                for name in layout.REGION_COLUMNS:
                    del regions[name]
                    other["datasets"].pop(("regions", name), None)
                self._create_region_columns(regions, wide)
                other["chunk_rows"] = wide

    def _create_region_columns(self, regions, chunk_rows):
        """The empty, extensible region columns of a record's ``regions`` group."""
        for name, (dtype, units) in layout.REGION_COLUMNS.items():
            d = regions.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype,
                                       chunks=(chunk_rows,), **self._compression)
            d.attrs["units"] = units

    def _start_swmr(self):
        if self.swmr and not self._swmr_started:
            self._file.swmr_mode = True
            self._swmr_started = True

    def _write_pending(self, record_idx):
        chunks = self._pending[record_idx]
        if not chunks:
            return
        optional = sum(1 for n in layout.OPTIONAL_REGION_COLUMNS
                       if any(getattr(c.regions, n) is not None for c in chunks))
        self._reserve(batch=(record_idx, sum(c.nr_snapshots for c in chunks),
                             sum(c.nr_regions for c in chunks),
                             sum(len(c.regions.probe_hits) for c in chunks
                                 if c.regions.probe_hits is not None), optional))
        self._unflushed.add(record_idx)
        with self._hdf5_writes():
            self._write_chunks(record_idx, chunks)
        st = self._records[record_idx]
        st["optional"] = max(st["optional"], optional)

    @staticmethod
    def _dataset(st, group, name):
        """A record's dataset, opened once (h5py lookups cost ~50 us each, per batch)."""
        d = st["datasets"].get((group, name))
        if d is None:
            g = st["group"] if group is None else st["group"][group]
            d = st["datasets"][(group, name)] = g[name]
        return d

    def _write_chunks(self, record_idx, chunks):
        self._pending[record_idx] = []
        st = self._records[record_idx]
        s0, r0 = st["snapshots"], st["regions"]
        self._write_regions(st, [c.regions for c in chunks])
        self._feed_guide(record_idx, chunks)
        base = r0
        offsets = []
        for c in chunks:
            offsets.append(c.snapshots.region_offset + base)
            base += c.nr_regions
        values = {name: np.concatenate(offsets) if name == "region_offset" else
                  np.concatenate([getattr(c.snapshots, name) for c in chunks])
                  for name in layout.SNAPSHOT_COLUMNS}
        self._write_snapshots(st, values, sum(c.nr_snapshots for c in chunks))

    def _write_regions(self, st, parts):
        """Write the region rows of RegionColumns ``parts`` after the record's rows."""
        nr_new_regions = sum(len(p) for p in parts)
        if self.swmr and not self._swmr_started:
            self._widen_big_records(st, nr_new_regions)
        self._start_swmr()
        g = st["group"]
        regions = g["regions"]
        r0 = st["regions"]
        # regions: whole chunks compressed by the direct writer's threads meanwhile
        direct = self._direct_writer()
        if direct is not None:
            direct.wait()   # the previous batch's chunks: at most one batch in flight
        for name in layout.REGION_COLUMNS:
            d = self._dataset(st, "regions", name)
            # a column goes through the direct writer from its row 0 or never
            direct_col = direct is not None and (
                direct.rows(d) == r0 if r0 else (
                    (not self.swmr or st["chunk_rows"] >= layout.REGION_CHUNK_ROWS)
                    and direct.usable(d)))
            d.resize((r0 + nr_new_regions,))
            if name == "probe_count":
                values = [self._zero_counts(len(p)) if p.probe_offset is None
                          else np.diff(p.probe_offset).astype(np.int32) for p in parts]
            else:
                values = [getattr(p, name) for p in parts]
            values = np.concatenate(values) if len(values) > 1 else values[0]
            if direct_col:
                direct.append(d, values)
            else:
                d[r0:r0 + nr_new_regions] = values
        # the chunks compress while the caller reads the next batch (appended chunks
        # stay untouched until flush: append's contract); stored by the next batch,
        # flush or close
        for name, (dtype, units) in layout.OPTIONAL_REGION_COLUMNS.items():
            # created by this writer when a part first states it (its datasets cache)
            d = st["datasets"].get(("regions", name))
            if d is None:
                if all(getattr(p, name) is None for p in parts):
                    continue
                if self._swmr_started and r0:
                    raise ArchiveError("column %r cannot be added to a SWMR archive after "
                                       "appending started" % name, path=self.path)
                d = regions.create_dataset(name, shape=(r0,), maxshape=(None,), dtype=dtype,
                                           chunks=(st["chunk_rows"],), fillvalue=np.nan,
                                           **self._compression)
                d.attrs["units"] = units
                st["datasets"][("regions", name)] = d
            d.resize((r0 + nr_new_regions,))
            d[r0:r0 + nr_new_regions] = np.concatenate(
                [np.full(len(p), np.nan) if getattr(p, name) is None
                 else getattr(p, name) for p in parts])
        hits = [p.probe_hits for p in parts if p.probe_hits is not None]
        if hits:
            hits = np.concatenate(hits)
            d = regions[layout.PROBE_HITS]
            p0 = st["probe_hits"]
            d.resize((p0 + len(hits),))
            d[p0:] = hits
            st["probe_hits"] = p0 + len(hits)
        st["regions"] = r0 + nr_new_regions

    def _zero_counts(self, n):
        """``n`` zero probe counts: a view of one zero array kept for the writer's life
        (never written to), not a fresh one per batch: a fresh calloc'ed array page-faults
        when the compressor reads it (~4 % of a page-granularity ingest's cycles)."""
        z = self._zeros
        if z is None or len(z) < n:
            z = self._zeros = np.zeros(max(n, 1 << 16), np.int32)
            z.flags.writeable = False
        return z[:n]

    def _write_snapshots(self, st, values, nr_new_snaps):
        """Write snapshot rows (``values``: column -> array) and the time index."""
        s0 = st["snapshots"]
        for name in layout.SNAPSHOT_COLUMNS:
            d = self._dataset(st, "snapshots", name)
            d.resize((s0 + nr_new_snaps,))
            d[s0:s0 + nr_new_snaps] = values[name]
        # coarse time index: end_ns of snapshots k*stride
        end_ns = values["end_ns"]
        stride = layout.TIME_INDEX_STRIDE
        first_k = -(-s0 // stride) * stride
        picks = np.arange(first_k, s0 + nr_new_snaps, stride)
        if len(picks):
            ti = self._dataset(st, None, layout.TIME_INDEX)
            n0 = ti.shape[0]
            ti.resize((n0 + len(picks),))
            ti[n0:] = end_ns[picks - s0]
        st["snapshots"] = s0 + nr_new_snaps
        if s0 == 0:
            self._apply_first_start(st)

    # -- a snapshot too big to hold (streamed in pieces) ------------------------
    def append_open(self, record_idx, regions):
        """Write the next region rows (RegionColumns) of the record's *open* snapshot:
        one too big to hold, streamed in pieces (formats.trace_text.SnapshotPiece).
        The rows go to the file at once (memory stays bounded whatever the snapshot's
        size); readers see none of them until :meth:`end_open` and a flush commit the
        snapshot, and :meth:`drop_open` takes them back. The record's queued chunks are
        written first; no chunk may be appended while its snapshot is open. A record
        with a streamed snapshot gets no guide summary (readers scan it)."""
        st = self._records[record_idx]
        if st["open_from"] is None:
            if self._failed:
                raise DiskFullError(self.path)
            self._write_pending(record_idx)
            st["open_from"] = st["regions"]
            st["open_bytes"] = 0
            st["guide"] = None
            direct = self._direct
            if direct is not None:
                with self._hdf5_writes():
                    direct.wait()
                for (group, name), d in st["datasets"].items():
                    if group == "regions" and name != layout.PROBE_HITS \
                            and direct.rows(d) is not None:
                        direct.mark(d)
        n = len(regions)
        if n == 0:
            return
        self._reserve(batch=(record_idx, 0, n, 0, 0))
        self._unflushed.add(record_idx)
        with self._hdf5_writes():
            self._write_regions(st, [regions])
        size = np.add.reduce(regions.end - regions.start, dtype=np.uint64)
        st["open_bytes"] = (st["open_bytes"] + int(size)) & U64_MASK

    def end_open(self, record_idx, start_ns, end_ns):
        """The open snapshot is complete: write its snapshot row (its regions: every row
        since the first :meth:`append_open`); committed by the next flush."""
        st = self._records[record_idx]
        lo = st["open_from"]
        if lo is None:
            raise ArchiveError("record %d has no open snapshot to end" % record_idx,
                               path=self.path)
        self._reserve(batch=(record_idx, 1, 0, 0, 0))
        row = SnapshotColumns(start_ns=[start_ns], end_ns=[end_ns], region_offset=[lo],
                              nr_regions=[st["regions"] - lo],
                              total_bytes=np.array([st["open_bytes"]], np.uint64))
        values = {name: getattr(row, name) for name in layout.SNAPSHOT_COLUMNS}
        self._unflushed.add(record_idx)
        with self._hdf5_writes():
            self._write_snapshots(st, values, 1)
        st["open_from"] = None

    def drop_open(self, record_idx):
        """Take back the open snapshot's rows (it was incomplete): the region columns go
        back to the record's complete snapshots (readers never saw the rows)."""
        st = self._records[record_idx]
        lo = st["open_from"]
        if lo is None:
            return
        st["open_from"] = None
        if st["regions"] == lo:
            return
        direct = self._direct
        regrown = False
        with self._hdf5_writes():
            if direct is not None:
                direct.wait()
            for (group, name), d in list(st["datasets"].items()):
                if group != "regions" or name == layout.PROBE_HITS:
                    continue
                if direct is not None and direct.rows(d) is not None:
                    direct.rewind(d, lo)
                    # shrinking into a chunk makes libhdf5 read that chunk back, which
                    # fails on a chunk stored raw until the file is closed (see
                    # BloscChunkWriter.mark): drop the chunk whole, grow back, and store
                    # it again from the direct writer's tail right below
                    boundary = lo - lo % d.chunks[0]
                    if boundary != lo:
                        d.resize((boundary,))
                        regrown = True
                d.resize((lo,))
            if regrown:
                direct.write_tails()
        st["regions"] = lo

    def append_piece(self, record_idx, piece):
        """Take a :class:`~damo_pipe.formats.trace_text.SnapshotPiece` (a streamed
        snapshot's rows, end or drop): :meth:`append_open`, :meth:`end_open` or
        :meth:`drop_open`."""
        if piece.kind == "rows":
            self.append_open(record_idx, piece.regions)
        elif piece.kind == "end":
            self.end_open(record_idx, piece.start_ns, piece.end_ns)
        elif piece.kind == "drop":
            self.drop_open(record_idx)
        else:
            raise ValueError("unknown snapshot piece %r" % (piece.kind,))

    def _committed_regions(self, st):
        """Region rows of the record's complete snapshots (an open one's are not)."""
        return st["regions"] if st["open_from"] is None else st["open_from"]

    def flush(self):
        """Make every appended snapshot durable (two-step commit). DiskFullError when
        the disk cannot hold them: the file then stays as after the previous flush."""
        if self._failed:
            raise DiskFullError(self.path)
        for i in range(len(self._records)):
            self._write_pending(i)
        self._reserve()
        with self._hdf5_writes():
            self._start_swmr()
            if self._direct is not None:
                self._direct.write_tails()
            for t in self._tables:
                t.write_pending()
            self._file.flush()
            for st in self._records:
                st["group"][layout.COMMITTED][:] = [st["snapshots"],
                                                    self._committed_regions(st),
                                                    st["probe_hits"]]
            for t in self._tables:
                t.commit()
            self._hdf5_flush()

    # -- disk space ------------------------------------------------------------
    def _reserve(self, extra=0, batch=None):
        """Reserve room for everything handed to HDF5 and not yet on disk, ``batch``
        (record index, snapshots, regions, probe hits, optional region columns) about
        to be, and ``extra`` bytes written at once: HDF5 must never meet a full disk.
        When the bound does not fit, the file is flushed (the bound then starts from
        its real size) and tried again; DiskFullError (and no more writing) when it
        still does not fit."""
        if self._space is None:
            return
        try:
            try:
                self._space.ensure(self._space_bound(extra, batch) - os.path.getsize(self.path))
            except DiskFullError:
                if not self._has_unflushed():
                    raise
                with self._hdf5_writes():
                    self._hdf5_flush()
                self._space.ensure(self._space_bound(extra, batch) - os.path.getsize(self.path))
        except DiskFullError:
            self._failed = True
            raise
        except OSError as e:
            self._failed = True
            raise ArchiveError("cannot reserve disk space (%s)" % (e.strerror or e),
                               path=self.path) from None

    def _space_bound(self, extra=0, batch=None):
        """Upper bound of the file size once every row handed to HDF5 (and ``batch``) is
        written: the size at the last flush plus, per column group, the chunks the
        rows since then touch (compressed: their raw size, a little more; plain: whole
        chunks, as HDF5 allocates them), plus metadata and ``extra``."""
        packed = bool(self._compression)
        end = self._size_at_flush + extra + _META_BYTES \
            + _META_PER_RECORD * (len(self._records) + len(self._tables))
        todo = self._unflushed if batch is None else self._unflushed | {batch[0]}
        for i in todo:     # records with no row since the last flush add nothing
            st = self._records[i]
            add = batch[1:] if batch is not None and batch[0] == i else (0, 0, 0, 0)
            f_snaps, f_regions, f_hits = st["flushed"]
            snaps = st["snapshots"] + add[0]
            end += _growth(f_snaps, snaps, layout.SNAPSHOT_CHUNK_ROWS, _SNAPSHOT_ROW_BYTES,
                           packed)
            end += _growth(f_regions, st["regions"] + add[1], st["chunk_rows"],
                           _REGION_ROW_BYTES + 8 * max(st["optional"], add[3]), packed)
            end += _growth(f_hits, st["probe_hits"] + add[2], 4096, 8, packed)
            stride = layout.TIME_INDEX_STRIDE
            end += _growth(-(-f_snaps // stride), -(-snaps // stride), 1024, 8, packed)
        for t, flushed in zip(self._tables, self._tables_flushed):
            pending = len(next(iter(t._pending.values()))) if t._pending else 0
            end += _growth(flushed, t.rows_written + pending, 4096, 8 * len(t.columns), packed)
        return end

    def _has_unflushed(self):
        return bool(self._unflushed) or \
            any(t.rows_written != f for t, f in zip(self._tables, self._tables_flushed))

    def _hdf5_flush(self):
        """Flush the HDF5 file and take its size as the new base of the space bound
        (whole chunks still compressing are stored first: the rows it marks as on disk
        are; a partly filled last chunk is counted by the bound anyway, see _growth)."""
        if self._direct is not None:
            self._direct.wait()
        self._file.flush()
        for i in self._unflushed:
            st = self._records[i]
            st["flushed"] = (st["snapshots"], st["regions"], st["probe_hits"])
        self._unflushed.clear()
        self._tables_flushed = [t.rows_written for t in self._tables]
        self._size_at_flush = os.path.getsize(self.path)

    def _hdf5_writes(self):
        """Context of HDF5 writes: a write error that is a full disk after all (a file
        system without fallocate, filled by someone else meanwhile) becomes
        DiskFullError, and the writer stops writing."""
        return _Hdf5Writes(self)

    def set_profile(self, perf_data_path, samples, attrs=None):
        """Store a CPU profile (perf.data bytes and/or its ProfileSamples) when the
        writer closes: in the file itself (not SWMR), in the compaction copy (SWMR), or
        with :func:`damo_pipe.archive.profile.attach_profile` after closing (SWMR
        without compaction). Each way is as crash-safe as the archive itself."""
        if perf_data_path is None and samples is None:
            raise ValueError("a profile needs the perf.data, the samples, or both")
        self._profile = (perf_data_path, samples, attrs)

    def _profile_writer(self):
        from damo_pipe.archive.profile import write_profile_group
        pd, samples, attrs = self._profile
        return lambda h5file: write_profile_group(h5file, pd, samples, attrs, self._compression)

    def close(self):
        """Flush, store the guide summaries (and a profile given to :meth:`set_profile`)
        and close; a SWMR archive (and a small one, see :meth:`_compacts`) is then
        compacted (see :func:`compact`) unless ``compact_on_close`` was False. After a
        DiskFullError the file is closed as it was after the last flush (:meth:`abort`)."""
        if self._file is None:
            return
        if self._failed:
            self.abort()
            return
        profile = self._profile
        try:
            for i, st in enumerate(self._records):
                if st["open_from"] is not None:
                    warnings.warn("%s: record %d: its open snapshot (%d regions so far) "
                                  "dropped at close: it never ended" % (
                                      self.path, i, st["regions"] - st["open_from"]),
                                  RuntimeWarning, stacklevel=2)
                    self.drop_open(i)
            self.flush()
            with self._hdf5_writes():
                self._write_guides()
            if profile is not None and not self._swmr_started:
                self._reserve(extra=_profile_bytes(*profile[:2]))
                with self._hdf5_writes():
                    self._profile_writer()(self._file)
                profile = None
        except BaseException:
            self.abort()
            raise
        self._close_direct()
        try:
            self._file.close()
        finally:
            self._file = None
            self._space.release()
        if self._compacts():
            try:
                compact(self.path, finish=None if profile is None else self._profile_writer(),
                        extra_bytes=0 if profile is None else _profile_bytes(*profile[:2]))
            except DiskFullError:
                if profile is not None:
                    raise
                if self.swmr:   # a small non-SWMR file's compaction is only a nicety
                    warnings.warn("%s: not compacted (no space left on device for the "
                                  "copy); the archive is complete as it is" % self.path,
                                  RuntimeWarning, stacklevel=2)
        elif profile is not None:
            from damo_pipe.archive.profile import attach_profile
            attach_profile(self.path, *profile[:2], attrs=profile[2])

    def _compacts(self):
        """Whether close() compacts: SWMR archives (unless ``compact_on_close`` was
        False), and others whose region columns fit in one chunk (a small file's chunks
        are mostly padding; the copy's are the size of the rows)."""
        return self._compact_on_close and (
            self.swmr or all(st["regions"] <= self._chunk_rows for st in self._records))

    def abort(self):
        """Close without writing anything still queued (after an error): readers see
        what the last :meth:`flush` committed. A file the caller deletes
        (``discard_on_error``), or one HDF5 failed to write, is first detached from the
        disk (:func:`~damo_pipe._diskspace.detach_hdf5_file`): HDF5's last writes go
        nowhere and cannot fail again. Never raises."""
        f, self._file = self._file, None
        self._failed = True
        self._close_direct()
        if f is not None:
            if self._discard_on_error or self._hdf5_failed:
                if not detach_hdf5_file(f) and self._discard_on_error \
                        and self._space is not None:
                    self._space.discard()
            try:
                f.close()
            except Exception:   # noqa: BLE001 - an error is already on its way
                pass
        if self._space is not None:
            self._space.release()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and (self._failed or self._discard_on_error):
            self.abort()
        else:
            self.close()

    @property
    def failed(self):
        """True once a write could not be made (a full disk): :meth:`close` then closes
        the file as it was after the last flush, and :meth:`flush` raises again."""
        return self._failed

    @property
    def nr_records(self):
        return len(self._records)


#: regions per piece fed to the guide builder
_GUIDE_PIECE_REGIONS = 1 << 20

#: disk space bounds (see ArchiveWriter._space_bound): compressed chunks are at most this
#: much larger than their raw bytes (Blosc, gzip headers), plus a chunk header; metadata
#: (object headers, chunk indexes, free-space aggregators) grows by far less than
#: _META_BYTES between two flushes, and by _META_PER_RECORD per record or side table
_EXPANSION = 1.05
_CHUNK_OVERHEAD = 512
_META_BYTES = 1 << 20
_META_PER_RECORD = 64 << 10
U64_MASK = (1 << 64) - 1
_REGION_ROW_BYTES = sum(np.dtype(t).itemsize for t, _ in layout.REGION_COLUMNS.values())
_SNAPSHOT_ROW_BYTES = sum(np.dtype(t).itemsize for t, _ in layout.SNAPSHOT_COLUMNS.values())


def _growth(rows_flushed, rows, chunk_rows, row_bytes, packed):
    """Bytes a column group can add to the file when it grows from ``rows_flushed`` rows
    on disk to ``rows``: compressed chunks are written anew (the partly filled one
    again), plain ones are allocated whole, once."""
    if rows <= rows_flushed:
        return 0
    last = -(-rows // chunk_rows)
    if not packed:
        return (last - (-(-rows_flushed // chunk_rows))) * chunk_rows * row_bytes
    first = rows_flushed // chunk_rows
    return int((rows - first * chunk_rows) * row_bytes * _EXPANSION) \
        + (last - first) * _CHUNK_OVERHEAD


def _profile_bytes(perf_data_path, samples):
    from damo_pipe.archive.profile import profile_nbytes
    return profile_nbytes(perf_data_path, samples)


def _collect_storage_bytes(src_path):
    """Bytes stored under an archive's ``/collect`` group (what copying it writes)."""
    import h5py
    total = [0]

    def visit(_name, obj):
        if isinstance(obj, h5py.Dataset):
            total[0] += obj.id.get_storage_size()
    try:
        with h5py.File(src_path, "r", swmr=True, locking=False) as f:
            if "collect" in f:
                f["collect"].visititems(visit)
    except OSError:
        return 0
    return total[0]


def _exit_without_hdf5_teardown():
    """HDF5 met a full disk (a file system where the space could not be reserved, filled
    by someone else meanwhile): it does not recover from that, and shutting the library
    down at exit may crash the process. The process then ends at exit with status 1
    (the error has been reported by then), before HDF5's teardown and the exit
    handlers registered earlier; stdout and stderr are flushed first."""
    import atexit
    import sys

    def leave():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        os._exit(1)
    atexit.register(leave)


class _Hdf5Writes:
    """See ArchiveWriter._hdf5_writes."""

    def __init__(self, writer):
        self.writer = writer

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or not isinstance(exc, (OSError, RuntimeError)):
            return False
        if getattr(exc, "errno", None) in DISK_FULL_ERRNOS or "errno = 28" in str(exc) \
                or "errno = 122" in str(exc):
            self.writer._failed = self.writer._hdf5_failed = True
            _exit_without_hdf5_teardown()
            raise DiskFullError(self.writer.path) from None
        return False


def write_records(records, path, *, source_format=None, source_path=None, compression=None,
                  provenance=None, summariser=None):
    """Write whole records to a new archive atomically (temporary file, then rename).
    ``summariser``: see :class:`ArchiveWriter`."""
    prov = dict(provenance or {})
    prov.setdefault("source_format", source_format)
    prov.setdefault("source_path", None if source_path is None else os.path.abspath(source_path))
    with atomic_output(path) as tmp, ArchiveWriter(tmp, compression=compression,
                                                   provenance=prov, summariser=summariser,
                                                   discard_on_error=True) as w:
        for rec in records:
            idx = w.add_record(rec)
            w.append(idx, rec)
            if rec.first_start_ns is not None:
                w.set_first_start(idx, rec.first_start_ns)


def compact(path, finish=None, extra_bytes=0):
    """Rewrite a closed archive into a fresh file (atomically) to drop the space that
    repeated SWMR flushes left behind, every dataset at its final size
    (:mod:`damo_pipe.archive._compact`). Names, dtypes, filters and attributes are kept.
    ``finish(h5file)`` may add to the fresh file (``extra_bytes`` at most) before it
    replaces the old one. DiskFullError (the archive left as it was) when the disk
    cannot hold the copy."""
    import h5py
    import hdf5plugin  # noqa: F401  (filters needed to copy compressed chunks)

    from damo_pipe.archive._compact import copy_compacted
    path = os.fspath(path)
    with atomic_output(path, mode=os.stat(path).st_mode & 0o7777) as tmp:
        space = SpaceReservation(tmp)
        try:
            with h5py.File(path, "r") as src, \
                    h5py.File(tmp, "w", libver=("v110", "latest")) as dst:
                # the copy is at most as large as the original: reserve that before
                # HDF5 writes (a full disk must stop us here, not inside HDF5)
                try:
                    space.ensure(os.path.getsize(path) + extra_bytes + _META_BYTES)
                except DiskFullError:
                    if not detach_hdf5_file(dst):   # closing must not meet the full disk
                        space.discard()
                    raise
                copy_compacted(src, dst)
                if finish is not None:
                    finish(dst)
        finally:
            space.release()

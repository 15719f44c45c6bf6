"""Lazy, chunked reader of the HDF5 archive.

Only the snapshot table of a record is read eagerly (it is small next to the region
columns); region rows are read on demand, one contiguous slice per chunk of snapshots.
A reader can follow a file that a SWMR writer is appending to (:meth:`refresh`).

Damage is an error, never a different record: the snapshot table is checked when it is
read (:func:`check_snapshot_index`: region counts not negative, offsets contiguous from
0, every snapshot's regions inside the region columns), and a chunk that cannot be read
or decompressed is an :class:`ArchiveError` naming the file, the dataset and the chunk.
"""
import os

import numpy as np

from damo_pipe.archive import layout
from damo_pipe.archive._guarded_file import GuardedFile, open_for_write_by_a_writer
from damo_pipe.errors import ArchiveError
from damo_pipe.model import (SNAPSHOT_DTYPES, ChunkPiece, Intervals, IntervalsGoal, Record,
                             RegionColumns, SnapshotColumns)


#: what h5py raises on damaged metadata or data (a bad checksum is a RuntimeError,
#: a missing object a KeyError, an undecodable attribute a TypeError/ValueError)
H5_DAMAGE_ERRORS = (KeyError, OSError, ValueError, RuntimeError, TypeError)


def _num(attrs, name):
    v = attrs[name]
    if attrs.get(name + "_is_int", False):
        return int(v)
    return float(v)


def _json_list(text):
    """A JSON attribute holding a list ([] when absent); json is imported only then."""
    if not text or text == "[]":
        return []
    import json
    return json.loads(text)


def _text(attrs, name, where, default=None):
    """A text attribute; ValueError when its bytes are not UTF-8 (a damaged file: h5py
    hands them over as surrogate escapes, which no writer could store again)."""
    if name not in attrs:
        return default
    v = str(attrs[name])
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("attribute %r of %s is not UTF-8 text" % (name, where)) from None
    return v


def _interval(attrs, name, where):
    """A monitoring interval: finite and not negative (ValueError otherwise)."""
    v = _num(attrs, name)
    if not (v >= 0 and v != float("inf")):
        raise ValueError("attribute %r of %s is %r" % (name, where, v))
    return v


def read_record_meta(group) -> Record:
    a = group.attrs
    where = group.name
    intervals = None
    if "intervals_sample_us" in a:
        goal = None
        if "intervals_goal_aggrs" in a:
            goal = IntervalsGoal(*(_interval(a, "intervals_goal_" + n, where)
                                   for n in ("access_bp", "aggrs", "min_sample_us", "max_sample_us")))
        intervals = Intervals(_interval(a, "intervals_sample_us", where),
                              _interval(a, "intervals_aggr_us", where),
                              _interval(a, "intervals_ops_update_us", where), goal)

    def opt(name):
        return int(a[name]) if name in a else None

    return Record(
        target_id=opt("target_id"),
        kdamond_idx=opt("kdamond_idx"), context_idx=opt("context_idx"),
        scheme_idx=opt("scheme_idx"), pid=opt("pid"),
        intervals=intervals,
        scheme_filters=_json_list(_text(a, "scheme_filters_json", where)),
        data_source=_text(a, "data_source", where, "unknown"),
        ops=_text(a, "ops", where),
    )


def _reason(exc):
    """The short cause in an h5py error message ("filter returned failure during read")."""
    text = " ".join(str(exc).split())
    if "(" in text and text.endswith(")"):
        text = text[text.index("(") + 1:-1]
    return text[:200] or type(exc).__name__


def read_error(path, dataset, lo, hi, exc):
    """ArchiveError for a failed read of rows [lo, hi) of ``dataset``: names the file,
    the dataset and the first chunk that cannot be read (found by reading them one by
    one; errors only)."""
    where = "rows %d-%d" % (lo, hi - 1)
    try:
        csize = dataset.chunks[0] if dataset.chunks else None
        n = dataset.shape[0]
        if csize:
            for c in range(lo // csize, (max(lo, hi - 1)) // csize + 1):
                a, b = c * csize, min(n, (c + 1) * csize)
                try:
                    dataset[a:b]
                except Exception:   # noqa: BLE001 - this is the chunk we look for
                    where = "chunk %d (rows %d-%d)" % (c, a, b - 1)
                    break
    except Exception:   # noqa: BLE001 - the rows are named then
        pass
    return ArchiveError("dataset %s, %s: damaged, cannot be read (%s)"
                        % (dataset.name, where, _reason(exc)), path=path)


def _read_rows(path, dataset, lo, hi):
    try:
        return dataset[lo:hi]
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise read_error(path, dataset, lo, hi, e) from None


def check_snapshot_index(path, group_name, offsets, counts, nr_region_rows, swmr=False):
    """Check a record's snapshot table against its region columns (O(nr_snapshots),
    vectorised): ``counts`` (nr_regions) not negative, ``offsets`` (region_offset)
    starting at 0 and contiguous, and every snapshot's regions inside the
    ``nr_region_rows`` readable region rows. Returns how many snapshots are readable:
    all, or for a file a SWMR writer may still be appending to, those whose regions are
    durable. ArchiveError naming the dataset and row otherwise."""
    n = len(offsets)
    if n == 0:
        return 0

    def bad(column, row, text):
        return ArchiveError("dataset %s/snapshots/%s, row %d: %s (the snapshot table "
                            "does not match the region columns)"
                            % (group_name, column, row, text), path=path)
    neg = np.flatnonzero(counts < 0)
    if len(neg):
        k = int(neg[0])
        raise bad("nr_regions", k, "negative region count %d" % int(counts[k]))
    if offsets[0] != 0:
        raise bad("region_offset", 0, "first offset %d, not 0" % int(offsets[0]))
    with np.errstate(over="ignore"):
        ends = offsets + counts
    gap = np.flatnonzero(offsets[1:] != ends[:-1])
    if len(gap):
        k = int(gap[0])
        raise bad("nr_regions", k, "%d regions from offset %d, but region_offset row %d is %d "
                  "(not contiguous)" % (int(counts[k]), int(offsets[k]), k + 1,
                                        int(offsets[k + 1])))
    if ends[-1] < offsets[-1]:      # wrapped around: a count near 2**63
        raise bad("nr_regions", n - 1, "region count %d out of range" % int(counts[-1]))
    if ends[-1] <= nr_region_rows:
        return n
    ok = int(np.searchsorted(ends, nr_region_rows, side="right"))
    if swmr:
        return ok
    raise bad("nr_regions", ok, "regions %d-%d, beyond the %d rows of the region columns"
              % (int(offsets[ok]), int(ends[ok]) - 1, nr_region_rows))


#: records with at least this many snapshots (and a time index) keep their snapshot
#: table on disk: windows are found through the time index and only their rows are read
#: (a day-long archive: 86,400 rows x 15 columns). Smaller ones are read whole at open.
LAZY_TABLE_MIN_SNAPSHOTS = 1 << 12


class _RecordHandle:
    """State of one record group: committed sizes and its snapshot table.

    The table is read whole at open (and checked: :func:`check_snapshot_index`), except
    for a large record of a closed file with a time index: then only its first and last
    rows are checked at open, :meth:`rows` reads and checks the rows a window needs,
    :meth:`window` finds a time window's rows through the time index, and the whole
    table is read (and checked) only when :attr:`snapshots` is asked for."""

    def __init__(self, group, swmr=False, path=None):
        self.group = group
        self.swmr = swmr
        self.path = path
        self.meta = read_record_meta(group)
        self.refresh()

    def _bad(self, column, row, text):
        return ArchiveError("dataset %s/snapshots/%s, row %d: %s (the snapshot table "
                            "does not match the region columns)"
                            % (self.group.name, column, row, text), path=self.path)

    def refresh(self):
        g = self.group
        if self.swmr:
            datasets = [g[layout.COMMITTED]] + [g["snapshots"][n] for n in layout.SNAPSHOT_COLUMNS] + \
                [g["regions"][n] for n in layout.REGION_COLUMNS] + [g["regions"][layout.PROBE_HITS],
                                                                   g[layout.FIRST_START], g[layout.TIME_INDEX]]
            for d in datasets:
                try:
                    d.refresh()
                except (AttributeError, ValueError, OSError):
                    pass
        committed = _read_rows(self.path, g[layout.COMMITTED], 0, 3)
        if len(committed) < 3 or (committed < 0).any():
            raise ArchiveError("dataset %s: damaged (%r)" % (g[layout.COMMITTED].name,
                                                             committed.tolist()), path=self.path)
        self._committed = committed
        snaps = g["snapshots"]
        self._snapshot_ds = {n: snaps[n] for n in layout.SNAPSHOT_COLUMNS}
        nr_snaps = int(min([committed[0]] + [d.shape[0] for d in self._snapshot_ds.values()]))
        self._nr_region_rows = int(min([committed[1]] + [g["regions"][n].shape[0]
                                                         for n in layout.REGION_COLUMNS]))
        self._table = None
        self._time_index = None
        if not self._open_lazily(nr_snaps):
            self._load_table(nr_snaps)
        self.nr_probe_hits = int(min(committed[2], g["regions"][layout.PROBE_HITS].shape[0]))
        #: (region row, its first probe hit row) where the last read ended
        self.probe_cursor = (0, 0)
        fs = float(g[layout.FIRST_START][0])
        if not np.isnan(fs) and not -2.0 ** 63 <= fs < 2.0 ** 63:
            raise ArchiveError("dataset %s: first snapshot start %r ns is outside the 64-bit "
                               "time range (damaged)" % (g[layout.FIRST_START].name, fs),
                               path=self.path)
        self.first_start_ns = None if np.isnan(fs) else fs
        # dataset objects looked up once (h5py name lookups are slow)
        self.region_ds = {n: g["regions"][n] for n in layout.REGION_COLUMNS}
        self.region_ds[layout.PROBE_HITS] = g["regions"][layout.PROBE_HITS]

    def _check_committed(self, nr_snaps, nr_regions):
        committed = self._committed
        if not self.swmr and (nr_snaps, nr_regions) != (committed[0], committed[1]):
            # A closed file's committed counts are those of its snapshot table (the
            # writer stores both at each flush); a SWMR reader may see them apart.
            raise ArchiveError("dataset %s: %d snapshots and %d regions committed, but the "
                               "snapshot table holds %d snapshots of %d regions (the index "
                               "does not match the columns)"
                               % (self.group[layout.COMMITTED].name, int(committed[0]),
                                  int(committed[1]), nr_snaps, nr_regions),
                               path=self.path)

    def _load_table(self, nr_snaps):
        """Read and check the whole snapshot table."""
        cols = {n: _read_rows(self.path, d, 0, nr_snaps) for n, d in self._snapshot_ds.items()}
        # A damaged index is an error; a SWMR writer's snapshots are trusted only when
        # all their regions are durable too.
        ok = check_snapshot_index(self.path, self.group.name, cols["region_offset"],
                                  cols["nr_regions"], self._nr_region_rows, self.swmr)
        if ok < nr_snaps:
            cols = {n: v[:ok] for n, v in cols.items()}
            nr_snaps = ok
        nr_regions = int(cols["region_offset"][-1] + cols["nr_regions"][-1]) if nr_snaps else 0
        self._check_committed(nr_snaps, nr_regions)
        self._table = SnapshotColumns(**cols)
        self.nr_snapshots = nr_snaps
        self.nr_regions = nr_regions

    def _open_lazily(self, nr_snaps):
        """Check a large closed record's first and last snapshot rows and its time
        index; False when the table is to be read whole instead."""
        ti_ds = self.group.get(layout.TIME_INDEX)
        if self.swmr or nr_snaps < LAZY_TABLE_MIN_SNAPSHOTS or ti_ds is None:
            return False
        stride = int(ti_ds.attrs.get("stride", 0))
        if stride <= 0 or ti_ds.shape[0] != -(-nr_snaps // stride):
            return False
        ti = _read_rows(self.path, ti_ds, 0, ti_ds.shape[0])
        if len(ti) > 1 and bool(np.any(ti[1:] < ti[:-1])):
            return False          # not in time order: searched in the whole table
        self.nr_snapshots = nr_snaps
        offsets, counts = self._snapshot_ds["region_offset"], self._snapshot_ds["nr_regions"]
        first = int(_read_rows(self.path, offsets, 0, 1)[0])
        if first != 0:
            raise self._bad("region_offset", 0, "first offset %d, not 0" % first)
        last = self.rows(nr_snaps - 1, nr_snaps, names=("region_offset", "nr_regions"))
        self.nr_regions = int(last.region_offset[0] + last.nr_regions[0])
        self._check_committed(nr_snaps, self.nr_regions)
        self._time_index = (ti, stride)
        return True

    @property
    def snapshots(self) -> SnapshotColumns:
        """The whole snapshot table (read and checked at the first use)."""
        if self._table is None:
            self._load_table(self.nr_snapshots)
        return self._table

    def column(self, name):
        """One whole snapshot column (no other column is read when the table is lazy)."""
        if self._table is not None:
            return getattr(self._table, name)
        return np.ascontiguousarray(_read_rows(self.path, self._snapshot_ds[name], 0,
                                               self.nr_snapshots),
                                    SNAPSHOT_DTYPES[name])

    def rows(self, lo, hi, names=None) -> SnapshotColumns:
        """Snapshot rows [lo, hi), checked as the whole table is (counts not negative,
        offsets contiguous and inside the region columns). ``names``: read only these
        columns (region_offset, nr_regions and end_ns always; the others left at their
        defaults)."""
        if self._table is not None:
            return self._table.take(lo, hi)
        wanted = self._snapshot_ds if names is None else \
            {n: d for n, d in self._snapshot_ds.items()
             if n in names or n in ("region_offset", "nr_regions", "end_ns")}
        cols = {n: _read_rows(self.path, d, lo, hi) for n, d in wanted.items()}
        offsets, counts = cols["region_offset"], cols["nr_regions"]
        if len(offsets):
            neg = np.flatnonzero(counts < 0)
            if len(neg):
                k = int(neg[0])
                raise self._bad("nr_regions", lo + k, "negative region count %d" % int(counts[k]))
            if offsets[0] < 0:
                raise self._bad("region_offset", lo, "negative offset %d" % int(offsets[0]))
            with np.errstate(over="ignore"):
                ends = offsets + counts
            gap = np.flatnonzero(offsets[1:] != ends[:-1])
            if len(gap):
                k = int(gap[0])
                raise self._bad("nr_regions", lo + k,
                                "%d regions from offset %d, but region_offset row %d is %d "
                                "(not contiguous)" % (int(counts[k]), int(offsets[k]),
                                                      lo + k + 1, int(offsets[k + 1])))
            if ends[-1] < offsets[-1] or ends[-1] > self._nr_region_rows:
                raise self._bad("nr_regions", hi - 1,
                                "regions %d-%d, beyond the %d rows of the region columns"
                                % (int(offsets[-1]), int(ends[-1]) - 1, self._nr_region_rows))
        return SnapshotColumns(**cols)

    def window(self, t0, t1):
        """[lo, hi) of the snapshots whose [start_ns, end_ns] meets [t0, t1): the first
        whose end is >= t0 up to the first whose start is >= t1 (a search of the sorted
        table; a lazy table is searched through its time index, reading a few rows)."""
        n = self.nr_snapshots
        if self._time_index is None:
            return self.snapshots.window((t0, t1))
        ti, stride = self._time_index

        def first_at_least(name, t, a):
            # the first row >= a whose column value is >= t, reading a stride at a time
            while a < n:
                b = min(n, a + stride)
                v = _read_rows(self.path, self._snapshot_ds[name], a, b)
                k = int(np.searchsorted(v, t, side="left"))
                if k < len(v):
                    return a + k
                a = b
            return n

        def block_start(t):
            # rows before it end before t (ti[k] = end_ns of row k * stride)
            return max(0, (int(np.searchsorted(ti, t, side="left")) - 1) * stride)

        lo = first_at_least("end_ns", t0, block_start(t0))
        # a snapshot starts no later than it ends: rows ending before t1 start before it
        hi = first_at_least("start_ns", t1, max(lo, block_start(t1)))
        return lo, max(lo, hi)

    def stored_guide(self):
        """The heatmap guide summary the writer stored (optional ``guide/`` group), or None
        when absent or not covering exactly the readable snapshots."""
        g = self.group.get(layout.GUIDE_GROUP)
        if g is None:
            return None
        try:
            try:
                g[layout.GUIDE_COVERED].refresh()
            except (AttributeError, ValueError, OSError):
                pass
            covered, heats_ok = (int(x) for x in g[layout.GUIDE_COVERED][:2])
            if covered != self.nr_snapshots or covered <= 0:
                return None
            bounds = g[layout.GUIDE_BOUNDS][:]
            gaps = g[layout.GUIDE_GAPS][:]
            heats = None
            if heats_ok:
                hh = g[layout.GUIDE_HEATS_HI][:]
                hl = g[layout.GUIDE_HEATS_LO][:]
                heats = [int(a) * (1 << 64) + int(b) for a, b in zip(hh, hl)]
                if len(heats) != len(gaps) + 1:
                    return None
            return {"lowest_addr": int(bounds[0]), "highest_addr": int(bounds[1]),
                    "first_max_age": int(g[layout.GUIDE_FIRST_MAX_AGE][0]),
                    "gaps": [[int(a), int(b)] for a, b in gaps.reshape(-1, 2)],
                    "heats": heats}
        except (KeyError, ValueError, OSError, TypeError):
            return None


class ArchiveReader:
    """Open an archive for reading (works while a SWMR writer appends)."""

    #: decompress Blosc columns ourselves, in parallel (False: always h5py's read_direct)
    direct_chunks = True

    def __init__(self, path):
        import h5py

        from damo_pipe.archive._blosc_direct import register_blosc_filter
        register_blosc_filter()   # the archive's lz4/zstd (Blosc) compressions
        self._blosc = None
        self._file = None
        self._raw = None
        self.path = os.fspath(path)
        try:
            with open(self.path, "rb") as f:
                magic = f.read(8)
        except FileNotFoundError:
            raise ArchiveError("no such file", path=self.path) from None
        except OSError as e:
            raise ArchiveError("cannot open (%s)" % (e.strerror or e), path=self.path)
        if magic != b"\x89HDF\r\n\x1a\n":
            raise ArchiveError("not an HDF5 file (bad signature)", path=self.path, offset=0)
        # Open normally first: that checks the stored end-of-file against the real size
        # (a SWMR open skips the check and a truncated file would then stall reads).
        # A file a SWMR writer has open (or left open when killed) refuses a normal
        # open; only then open in SWMR mode.
        # A closed file is read through GuardedFile: libhdf5 would loop forever on a
        # damaged global heap (see _guarded_file).
        # A file a writer holds open is opened by its path (see
        # open_for_write_by_a_writer).
        try:
            if open_for_write_by_a_writer(self.path):
                self._file = h5py.File(self.path, "r", locking=False)
            else:
                self._raw = GuardedFile(self.path)
                self._file = h5py.File(self._raw, "r", locking=False)
        except OSError as e:
            if self._raw is not None:
                self._raw.close()
                self._raw = None
            # Only a file some writer holds open (the superblock's write flag set) is
            # retried in SWMR mode: a SWMR open of damaged metadata retries its reads
            # for minutes before failing.
            if "already open for write" not in str(e):
                raise ArchiveError("truncated or damaged HDF5 file (%s)" % e,
                                   path=self.path) from None
            try:
                self._file = h5py.File(self.path, "r", swmr=True, locking=False)
            except OSError as e2:
                raise ArchiveError("cannot open as HDF5, truncated or damaged (%s)" % e2,
                                   path=self.path)
        self.swmr = self._file.swmr_mode
        try:
            attrs = self._file.attrs
            if attrs.get("format") != layout.FORMAT_NAME:
                raise ArchiveError("not a damo-pipe archive (root attribute 'format' is %r)"
                                   % (attrs.get("format"),), path=self.path)
            version = int(attrs.get("format_version", -1))
            if version != layout.FORMAT_VERSION:
                raise ArchiveError("unsupported archive format_version %d (this damo-pipe reads %d)"
                                   % (version, layout.FORMAT_VERSION), path=self.path)
            group = self._file[layout.RECORDS_GROUP]
            self._handles = [_RecordHandle(group[name], self.swmr, self.path)
                             for name in sorted(group)]
        except ArchiveError:
            self.close()
            raise
        except H5_DAMAGE_ERRORS as e:
            self.close()
            raise ArchiveError("damaged archive (%s)" % e, path=self.path) from None

    # -- metadata ----------------------------------------------------------------
    @property
    def attrs(self):
        """The root attributes (recording host, command line ...); ArchiveError when
        damaged metadata cannot be read."""
        try:
            return {k: (v.item() if hasattr(v, "item") else v)
                    for k, v in self._file.attrs.items()}
        except H5_DAMAGE_ERRORS as e:
            raise ArchiveError("damaged archive: root attributes (%s)" % e,
                               path=self.path) from None

    @property
    def records(self):
        """Metadata-only records (no snapshots loaded)."""
        return [h.meta for h in self._handles]

    def __len__(self):
        return len(self._handles)

    def nr_snapshots(self, idx):
        return self._handles[idx].nr_snapshots

    def nr_regions(self, idx):
        return self._handles[idx].nr_regions

    def snapshot_table(self, idx) -> SnapshotColumns:
        """The whole snapshot table of record idx (a large one is read at the first use)."""
        return self._handles[idx].snapshots

    def snapshot_rows(self, idx, lo, hi) -> SnapshotColumns:
        """Snapshot rows lo..hi-1 of record idx (only those are read)."""
        return self._handles[idx].rows(lo, hi)

    def snapshot_column(self, idx, name):
        """One whole snapshot column of record idx (only that column is read)."""
        return self._handles[idx].column(name)

    def first_start(self, idx):
        """The exact deduced start of record idx's first snapshot (float ns; inputs that
        state only end times), or None."""
        return self._handles[idx].first_start_ns

    def stored_guide(self, idx):
        """Heatmap guide summary of record idx written at close time (``guide/`` group,
        docs/format.md), or None when the file has none or it does not cover exactly the
        readable snapshots. A dict: lowest_addr, highest_addr, gaps ([[start, end], ...]),
        heats (per contiguous region, or None), first_max_age."""
        return self._handles[idx].stored_guide()

    def refresh(self):
        """See snapshots a SWMR writer committed since opening (or the last refresh)."""
        for h in self._handles:
            h.refresh()

    # -- data --------------------------------------------------------------------
    def snapshot_range(self, idx, time_range=None):
        """[lo, hi) snapshot indices overlapping ``time_range`` = (start_ns, end_ns)."""
        h = self._handles[idx]
        if time_range is None:
            return 0, h.nr_snapshots
        return h.window(*time_range)

    def _read(self, idx, lo, hi, address_range=None, columns=None, buffers=None, snaps=None):
        """Snapshots lo..hi-1 of record idx with their regions (``snaps``: their
        snapshot rows when the caller already has them)."""
        h = self._handles[idx]
        g = h.region_ds
        if hi <= lo:
            return Record(**{**h.meta.__dict__,
                             "first_start_ns": h.first_start_ns if lo == 0 else None})
        if snaps is None:
            snaps = h.rows(lo, hi)
        r_lo = int(snaps.region_offset[0])
        r_hi = int(snaps.region_offset[-1] + snaps.nr_regions[-1])
        if columns is None:
            names = list(layout.REGION_COLUMNS)
        else:
            names = [n for n in layout.REGION_COLUMNS if n in columns or n in ("start", "end")]
        cols = {}
        jobs = []
        for n in names:
            d = g[n]
            if buffers is None:
                out = np.empty(r_hi - r_lo, d.dtype)
            else:
                buf = buffers.get(n)
                if buf is None or len(buf) < r_hi - r_lo or buf.dtype != d.dtype:
                    buf = buffers[n] = np.empty(r_hi - r_lo, d.dtype)
                out = buf[:r_hi - r_lo]
            if r_hi > r_lo:
                jobs.append((d, r_lo, r_hi, out))
            cols[n] = out
        direct = self._direct_reader()
        if not (direct is not None and direct.read_many(jobs)):
            for d, lo, hi, out in jobs:
                try:
                    d.read_direct(out, np.s_[lo:hi])
                except (OSError, ValueError, RuntimeError) as e:
                    raise read_error(self.path, d, lo, hi, e) from None
        probe_count = cols.pop("probe_count", None)
        po = ph = None
        if h.nr_probe_hits and probe_count is not None:
            # the first probe hit row of region row r_lo: counted on from where the last
            # read ended (chunks and pieces are read in order), from row 0 otherwise
            r0, p_lo = h.probe_cursor if h.probe_cursor[0] <= r_lo else (0, 0)
            if r_lo > r0:
                p_lo += int(_read_rows(self.path, g["probe_count"], r0, r_lo).sum())
            po = np.zeros(len(probe_count) + 1, np.int64)
            np.cumsum(probe_count, out=po[1:])
            ph = _read_rows(self.path, g[layout.PROBE_HITS], p_lo, p_lo + int(po[-1]))
            h.probe_cursor = (r_hi, p_lo + int(po[-1]))
        optional = {}
        if columns is None:
            for n in layout.OPTIONAL_REGION_COLUMNS:
                if n in h.group["regions"]:
                    optional[n] = _read_rows(self.path, h.group["regions"][n], r_lo, r_hi)
        regions = RegionColumns(cols["start"], cols["end"], cols.get("nr_accesses"),
                                cols.get("age"), cols.get("sz_filter_passed"), po, ph, **optional)
        snaps.region_offset = snaps.region_offset - r_lo
        rec = Record(**{**h.meta.__dict__, "snapshots": snaps, "regions": regions,
                        "first_start_ns": h.first_start_ns if lo == 0 else None})
        if address_range is not None:
            rec = select_address_range(rec, *address_range)
        return rec

    def _direct_reader(self):
        """Parallel Blosc chunk decompression (archive/_blosc_direct.py), or None for
        files a SWMR writer may still change (a cached boundary chunk could go stale)."""
        if self.swmr or not self.direct_chunks:
            return None
        if self._blosc is None:
            from damo_pipe._prefetch import usable_cpus
            from damo_pipe.archive._blosc_direct import BloscColumns
            self._blosc = BloscColumns(workers=min(2, usable_cpus()))
        return self._blosc

    def load(self, idx, time_range=None, address_range=None) -> Record:
        """One record (optionally only snapshots overlapping a time range and regions
        overlapping an address range)."""
        lo, hi = self.snapshot_range(idx, time_range)
        return self._read(idx, lo, hi, address_range)

    def iter_chunks(self, idx, snapshots_per_chunk=None, regions_per_chunk=1 << 20,
                    time_range=None, address_range=None, columns=None, reuse_buffers=0,
                    index_range=None):
        """Yield the record as consecutive Record chunks of bounded size.

        ``columns``: names of the region columns to read (``start`` and ``end`` are always
        read); the others are left at their defaults (zeros, age -1, no probe hits).
        ``None`` reads every column.

        ``reuse_buffers=n`` (n > 0) reads the region columns into n sets of arrays used
        in turn instead of new arrays (fewer page faults): a chunk's arrays are then
        overwritten when the n-th next chunk is read, so the caller must be done with a
        chunk by then.

        ``index_range=(lo, hi)``: exactly snapshots lo..hi-1 (instead of a time range)."""
        lo, hi, snaps = self._chunk_range(idx, index_range, time_range)
        buffers = _BufferRing(reuse_buffers)
        k = lo
        while k < hi:
            if snapshots_per_chunk:
                end = min(hi, k + snapshots_per_chunk)
            else:
                limit = snaps.region_offset[k - lo] + regions_per_chunk
                ends = snaps.region_offset[k - lo:] + snaps.nr_regions[k - lo:]
                end = k + max(1, int(np.searchsorted(ends, limit, side="right")))
            yield self._read(idx, k, end, address_range, columns, buffers.next(),
                             snaps.take(k - lo, end - lo))
            k = end

    def _chunk_range(self, idx, index_range, time_range):
        """(lo, hi, their snapshot rows) of record idx: snapshots lo..hi-1 from
        ``index_range`` or the snapshots meeting ``time_range``."""
        if index_range is not None:
            lo, hi = max(0, index_range[0]), min(self.nr_snapshots(idx), index_range[1])
        else:
            lo, hi = self.snapshot_range(idx, time_range)
        h = self._handles[idx]
        if hi - lo > LAZY_TABLE_MIN_SNAPSHOTS:
            h.snapshots          # a long range: the whole table once, not window by window
        return lo, hi, h.rows(lo, hi)

    def iter_pieces(self, idx, regions_per_chunk=1 << 20, snapshots_per_chunk=None,
                    index_range=None, time_range=None, columns=None, reuse_buffers=0):
        """Like :meth:`iter_chunks`, but a snapshot of more than ``regions_per_chunk``
        regions comes as several one-snapshot chunks of at most that many regions (its
        pieces, in address order), so that no chunk outgrows the bound whatever the
        snapshot size (page-granularity records). Yields :class:`ChunkPiece`; a chunk of
        whole snapshots has ``continues`` and ``goes_on`` False. Only consumers that
        carry a snapshot's state across its pieces can use this."""
        lo, hi, snaps = self._chunk_range(idx, index_range, time_range)
        buffers = _BufferRing(reuse_buffers)
        limit = max(1, int(regions_per_chunk))
        k = lo
        while k < hi:
            j = k - lo
            n = int(snaps.nr_regions[j])
            if n > limit:
                base = int(snaps.region_offset[j])
                for a in range(0, n, limit):
                    b = min(n, a + limit)
                    piece = snaps.take(j, j + 1)
                    piece.region_offset = np.array([base + a], np.int64)
                    piece.nr_regions = np.array([b - a], piece.nr_regions.dtype)
                    yield ChunkPiece(self._read(idx, k, k + 1, None, columns, buffers.next(), piece),
                                     k, a > 0, b < n)
                k += 1
                continue
            ends = snaps.region_offset[j:] + snaps.nr_regions[j:]
            end = k + max(1, int(np.searchsorted(ends, snaps.region_offset[j] + limit,
                                                 side="right")))
            if snapshots_per_chunk:
                end = min(end, k + snapshots_per_chunk)
            end = min(end, hi)
            yield ChunkPiece(self._read(idx, k, end, None, columns, buffers.next(),
                                        snaps.take(j, end - lo)), k, False, False)
            k = end

    def close(self):
        if self._blosc is not None:
            self._blosc.close()
            self._blosc = None
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _BufferRing:
    """``n`` sets of column arrays handed out in turn (``reuse_buffers``), or None
    each time when n is 0 (fresh arrays)."""

    def __init__(self, n):
        self._sets = [{} for _ in range(n)]
        self._next = 0

    def next(self):
        if not self._sets:
            return None
        out = self._sets[self._next % len(self._sets)]
        self._next += 1
        return out


def select_address_range(rec: Record, start, end) -> Record:
    """Keep only regions overlapping [start, end) (not clipped); snapshots are kept."""

    keep = (rec.regions.end > np.uint64(start)) & (rec.regions.start < np.uint64(end))
    counts = np.add.reduceat(keep.astype(np.int64), rec.snapshots.region_offset) \
        if len(rec.regions) else np.zeros(rec.nr_snapshots, np.int64)
    counts = np.where(rec.snapshots.nr_regions == 0, 0, counts)
    idx = np.nonzero(keep)[0]
    optional = {n: None if getattr(rec.regions, n) is None else getattr(rec.regions, n)[idx]
                for n in layout.OPTIONAL_REGION_COLUMNS}
    regions = RegionColumns(rec.regions.start[idx], rec.regions.end[idx], rec.regions.nr_accesses[idx],
                            rec.regions.age[idx], rec.regions.sz_filter_passed[idx], **optional)
    snaps = rec.snapshots.take(0, rec.nr_snapshots)
    snaps.nr_regions = counts
    snaps.region_offset = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) \
        if len(counts) else counts
    return Record(**{**rec.__dict__, "snapshots": snaps, "regions": regions})


def read_archive_records(path):
    """Every record of an archive, fully loaded."""
    with ArchiveReader(path) as r:
        return [r.load(i) for i in range(len(r))]

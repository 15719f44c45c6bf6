"""The CPU profile stored in an archive: the perf.data bytes and its sample table.

Group ``/collect/profile`` (docs/format.md, "CPU profile"):

* ``perf_data`` (uint8, compressed): the perf.data file byte for byte, so that ``perf
  report`` can run on it again (:func:`extract_perf_data`); attributes ``size`` and
  ``sha256`` (checked on extraction).
* the sample table, a side table (``columns``, ``committed``; readable with
  :func:`damo_pipe.archive.sidetables.read_side_table`) of ``time_ns`` (int64, the
  archive's clock: perf's time + ``time_offset_ns``), ``pid``, ``tid``, ``symbol_id``,
  ``dso_id`` (int32), sorted by time; ``symbols`` and ``dsos`` (UTF-8 strings) are the
  names the ids index; ``time_index`` holds the time of every ``stride``-th sample so
  that a time window is found without reading the whole time column.
* attributes: ``nr_samples``, ``time_offset_ns``, ``perf_clock`` and whatever the
  writer passed (``attrs``).

Either part may be missing: a perf.data that perf could not parse where it was stored
keeps its bytes (and ``samples_error``); a synthetic table may come without bytes.

Writing is crash-safe: :func:`attach_profile` writes a new file beside the archive and
renames it over the archive (a SIGKILL at any moment leaves the old archive or the new
one, both complete); :meth:`ArchiveWriter.set_profile` stores the profile when the
writer closes (in the compaction copy of a SWMR archive).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np

from damo_pipe._atomic import atomic_output
from damo_pipe._diskspace import SpaceReservation, detach_hdf5_file
from damo_pipe.archive import layout
from damo_pipe.archive._guarded_file import open_h5_for_reading
from damo_pipe.archive.sidetables import COMMITTED, GROUP
from damo_pipe.errors import ArchiveError, DiskFullError, RecordFormatError
from damo_pipe.formats.perf_samples import ProfileSamples

__all__ = ["PROFILE_GROUP", "attach_profile", "write_profile_group", "read_profile",
           "read_profile_window", "profile_attrs", "has_profile", "extract_perf_data"]

#: the group under /collect
PROFILE_GROUP = "profile"
PERF_DATA = "perf_data"
SYMBOLS = "symbols"
DSOS = "dsos"
TIME_INDEX = "time_index"
#: sample rows per time-index entry
TIME_INDEX_STRIDE = 4096
#: rows per chunk of the sample columns
SAMPLE_CHUNK_ROWS = 1 << 16
#: bytes per chunk of the perf.data dataset, and per piece read or written
PERF_DATA_CHUNK = 1 << 20
_COPY_PIECE = 64 << 20


# -- writing ------------------------------------------------------------------------
def _attr_value(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return np.int64(v)
    if isinstance(v, (float, np.floating, str)):
        return v
    return json.dumps(v)


def write_profile_group(h5file, perf_data_path=None, samples=None, attrs=None,
                        compression_kwargs=None):
    """Create ``/collect/profile`` in an open, writable h5py file (replacing nothing:
    the group must not exist). ``samples`` are in perf's clock, as read from the
    perf.data; ``attrs["time_offset_ns"]`` (default 0) is added to their times to put
    them on the archive's clock. Returns the group."""
    if perf_data_path is None and samples is None:
        raise ValueError("a profile needs the perf.data, the samples, or both")
    comp = compression_kwargs or {}
    g = h5file.require_group(GROUP).create_group(PROFILE_GROUP)
    a = dict(attrs or {})
    a.setdefault("time_offset_ns", 0)
    a.setdefault("perf_clock", "perf")
    if perf_data_path is not None:
        _write_perf_data(g, os.fspath(perf_data_path), comp)
        a.setdefault("perf_data_name", os.path.basename(os.fspath(perf_data_path)))
    if samples is not None:
        samples = samples.sorted_by_time().check()
        if int(a["time_offset_ns"]):
            samples = samples.shifted(int(a["time_offset_ns"]))
        n = len(samples)
        for col in ProfileSamples.COLUMNS:
            g.create_dataset(col, data=getattr(samples, col), maxshape=(None,),
                             chunks=(min(SAMPLE_CHUNK_ROWS, max(n, 1)),), **comp)
        g.create_dataset(COMMITTED, data=np.array([n], np.int64))
        import h5py
        strt = h5py.string_dtype("utf-8")
        g.create_dataset(SYMBOLS, data=np.array(samples.symbols, dtype=object), dtype=strt)
        g.create_dataset(DSOS, data=np.array(samples.dsos, dtype=object), dtype=strt)
        ti = g.create_dataset(TIME_INDEX, data=samples.time_ns[::TIME_INDEX_STRIDE])
        ti.attrs["stride"] = TIME_INDEX_STRIDE
        g.attrs["columns"] = ",".join(ProfileSamples.COLUMNS)
        a["nr_samples"] = n
    for k, v in a.items():
        g.attrs[k] = _attr_value(v)
    return g


def _write_perf_data(g, path, comp):
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")
    except OSError as e:
        raise RecordFormatError("cannot read the CPU profile (%s)" % (e.strerror or e),
                                path=path) from None
    d = g.create_dataset(PERF_DATA, shape=(size,), dtype=np.uint8,
                         chunks=(min(PERF_DATA_CHUNK, max(size, 1)),), **comp)
    digest = hashlib.sha256()
    with f:
        pos = 0
        while pos < size:
            piece = f.read(min(_COPY_PIECE, size - pos))
            if not piece:
                raise RecordFormatError("the CPU profile shrank while it was read", path=path)
            digest.update(piece)
            d[pos:pos + len(piece)] = np.frombuffer(piece, np.uint8)
            pos += len(piece)
    d.attrs["size"] = np.int64(size)
    d.attrs["sha256"] = digest.hexdigest()


def profile_nbytes(perf_data_path, samples):
    """At most the bytes a profile adds to an archive (the perf.data, the sample
    columns, the names): what to reserve before writing it."""
    n = 0
    if perf_data_path is not None:
        try:
            n += os.path.getsize(perf_data_path)
        except OSError:
            pass
    if samples is not None:
        n += sum(getattr(samples, c).nbytes for c in ProfileSamples.COLUMNS)
        n += sum(16 + len(x) for x in list(samples.symbols) + list(samples.dsos))
    return int(n * 1.05) + (64 << 10)


def _compression_of(h5file):
    name = h5file.attrs.get("compression", layout.DEFAULT_COMPRESSION)
    if isinstance(name, bytes):
        name = name.decode()
    try:
        return layout.compression_kwargs(str(name))
    except ValueError:
        return layout.compression_kwargs(None)


def attach_profile(archive_path, perf_data_path, samples, *, attrs=None):
    """Store a CPU profile (``perf_data_path``: the perf.data to keep byte for byte, or
    None; ``samples``: its ProfileSamples in perf's clock, or None; ``attrs``: stored as
    the group's attributes, ``time_offset_ns`` and ``perf_clock`` among them, see
    :func:`write_profile_group`) in an existing, closed archive,
    replacing any profile it had. Crash-safe: the archive is rewritten into a temporary
    file beside it that atomically replaces it (a kill leaves the old archive intact and
    at worst a ``.NAME.*.tmp`` file)."""
    import h5py

    from damo_pipe.archive._blosc_direct import register_blosc_filter
    register_blosc_filter()
    path = os.fspath(archive_path)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError as e:
        raise ArchiveError("cannot open (%s)" % (e.strerror or e), path=path) from None
    with _open(path) as src:
        has_old = GROUP in src and PROFILE_GROUP in src[GROUP]
    with atomic_output(path, mode=mode) as tmp:
        if has_old:
            _copy_without_profile(path, tmp)
        else:
            shutil.copyfile(path, tmp)
        # room for the profile before HDF5 writes it (HDF5 must never meet a full disk:
        # damo_pipe._diskspace); DiskFullError names the archive
        space = SpaceReservation(tmp, report_path=path)
        try:
            space.ensure(profile_nbytes(perf_data_path, samples) + (1 << 20))
            with h5py.File(tmp, "r+", libver=("v110", "latest")) as dst:
                write_profile_group(dst, perf_data_path, samples, attrs, _compression_of(dst))
        except OSError as e:
            raise ArchiveError("cannot add the CPU profile (%s)" % e, path=path) from None
        finally:
            space.release()
    return path


def _copy_without_profile(path, tmp):
    import h5py
    import hdf5plugin  # noqa: F401  (filters needed to copy compressed chunks)
    space = SpaceReservation(tmp, report_path=path)
    try:
        with h5py.File(path, "r") as src, h5py.File(tmp, "w", libver=("v110", "latest")) as dst:
            try:
                space.ensure(os.path.getsize(path) + (1 << 20))   # the copy is no larger
            except DiskFullError:
                detach_hdf5_file(dst)     # closing it must not meet the full disk either
                raise
            _copy_groups(src, dst)
    finally:
        space.release()


def _copy_groups(src, dst):
    for k, v in src.attrs.items():
        dst.attrs[k] = v
    for name in src:
        if name != GROUP:
            src.copy(src[name], dst, name=name)
            continue
        g = dst.create_group(GROUP)
        for k, v in src[GROUP].attrs.items():
            g.attrs[k] = v
        for sub in src[GROUP]:
            if sub != PROFILE_GROUP:
                src.copy(src[GROUP][sub], g, name=sub)


# -- reading ------------------------------------------------------------------------
class _open:
    """An archive opened read-only (normally, or in SWMR mode when a writer has it)."""

    def __init__(self, path):
        import h5py

        from damo_pipe.archive._blosc_direct import register_blosc_filter
        register_blosc_filter()
        self.path = os.fspath(path)
        try:
            self.f = open_h5_for_reading(self.path)
        except OSError as e:
            raise ArchiveError("cannot open as HDF5 (%s)" % e, path=self.path) from None

    def __enter__(self):
        return self.f

    def __exit__(self, *exc):
        self.f.close()


def _group(f):
    if GROUP in f and PROFILE_GROUP in f[GROUP]:
        return f[GROUP][PROFILE_GROUP]
    return None


def _attrs(g):
    out = {}
    for k, v in g.attrs.items():
        if k == "columns":
            continue
        out[k] = v.item() if hasattr(v, "item") else (v.decode() if isinstance(v, bytes) else v)
    return out


def _names(g, name):
    return [str(s) for s in g[name].asstr()[:]]


def _nr_rows(g):
    cols = ProfileSamples.COLUMNS
    return int(min([int(g[COMMITTED][0])] + [g[c].shape[0] for c in cols]))


def _has_samples(g):
    return g is not None and COMMITTED in g and all(c in g for c in ProfileSamples.COLUMNS)


def profile_attrs(archive_path):
    """The profile group's attributes, or None when the archive holds no profile."""
    with _open(archive_path) as f:
        g = _group(f)
        return None if g is None else _attrs(g)


def has_profile(archive_path):
    """True when the archive holds a CPU profile (perf.data, samples or both)."""
    return profile_attrs(archive_path) is not None


def read_profile(archive_path):
    """``(ProfileSamples or None, attrs)``: the stored sample table (times in the
    archive's clock) and the group's attributes; ``(None, {})`` without a profile."""
    with _open(archive_path) as f:
        g = _group(f)
        if g is None:
            return None, {}
        if not _has_samples(g):
            return None, _attrs(g)
        n = _nr_rows(g)
        cols = [g[c][:n] for c in ProfileSamples.COLUMNS]
        return ProfileSamples(*cols, _names(g, SYMBOLS), _names(g, DSOS)), _attrs(g)


def read_profile_window(archive_path, start_ns=None, end_ns=None, columns=None):
    """``(ProfileSamples, attrs)`` of the samples with ``start_ns <= time_ns < end_ns``,
    read through the time index (only the rows of the window and one index are read).
    ``columns``: the sample columns wanted besides ``time_ns`` (default all; the others
    come back as zeros). ``(None, attrs)`` when the archive has no sample table."""
    wanted = set(ProfileSamples.COLUMNS if columns is None else columns) | {"time_ns"}
    with _open(archive_path) as f:
        g = _group(f)
        if not _has_samples(g):
            return None, ({} if g is None else _attrs(g))
        n = _nr_rows(g)
        lo, hi = _row_range(g, n, start_ns, end_ns)
        t = g["time_ns"][lo:hi]
        a = 0 if start_ns is None else int(np.searchsorted(t, start_ns, "left"))
        b = len(t) if end_ns is None else int(np.searchsorted(t, end_ns, "left"))
        b = max(a, b)
        cols = []
        for c in ProfileSamples.COLUMNS:
            if c == "time_ns":
                cols.append(t[a:b])
            elif c in wanted:
                cols.append(g[c][lo + a:lo + b])
            else:
                cols.append(np.zeros(b - a, ProfileSamples.DTYPES[c]))
        return ProfileSamples(*cols, _names(g, SYMBOLS), _names(g, DSOS)), _attrs(g)


def _row_range(g, n, start_ns, end_ns):
    """Rows [lo, hi) that surely hold every sample of the window (from the index)."""
    if TIME_INDEX not in g:
        return 0, n
    ti = g[TIME_INDEX][:]
    stride = int(g[TIME_INDEX].attrs.get("stride", TIME_INDEX_STRIDE))
    lo, hi = 0, n
    if start_ns is not None and len(ti):
        k = int(np.searchsorted(ti, start_ns, "left"))  # ti[k-1] < start: rows before are out
        lo = max(0, (k - 1) * stride)
    if end_ns is not None and len(ti):
        k = int(np.searchsorted(ti, end_ns, "left"))    # ti[k] >= end: rows from k*stride out
        hi = min(n, k * stride) if k < len(ti) else n
    return min(lo, n), max(min(lo, n), hi)


def extract_perf_data(archive_path, dest_path):
    """Write the stored perf.data to ``dest_path`` (atomically); the path, or None when
    the archive holds no perf.data. ArchiveError when the bytes do not match their
    stored checksum."""
    with _open(archive_path) as f:
        g = _group(f)
        if g is None or PERF_DATA not in g:
            return None
        d = g[PERF_DATA]
        size = d.shape[0]
        digest = hashlib.sha256()
        dest = os.fspath(dest_path)
        with atomic_output(dest) as tmp:
            with open(tmp, "wb") as out:
                for pos in range(0, size, _COPY_PIECE):
                    piece = d[pos:min(size, pos + _COPY_PIECE)].tobytes()
                    digest.update(piece)
                    out.write(piece)
            want = d.attrs.get("sha256")
            if want is not None and digest.hexdigest() != str(want):
                raise ArchiveError("the stored perf.data is damaged (checksum mismatch)",
                                   path=os.fspath(archive_path))
        return dest

"""The format table: every input format's reader, chunk streamer and writer.

damo's flavours live in :mod:`damo_pipe.formats` (which knows nothing of the archive),
the HDF5 archive in :mod:`damo_pipe.archive`; this module sits above both and holds
the one table that maps a format name to its :class:`~damo_pipe.formats.FormatHandler`
(``FORMATS``: damo's entries plus the archive's).  Everything that takes "any record
file" dispatches through it: the reports' RecordSource, info, batch/html, the
conversion library.

``read_records``, ``iter_record_chunks`` and ``write_records`` are the same functions
as in :mod:`damo_pipe.formats`, for every format including ``hdf5``.
"""
import os

from damo_pipe import formats
from damo_pipe.errors import DamoPipeError, RecordFormatError
from damo_pipe.formats import (ARCHIVE_FORMAT, INPUT_TYPES, FormatHandler, RecordChunkStream,
                               detect_format)

__all__ = ["FORMATS", "INPUT_TYPES", "OUTPUT_FORMATS", "ARCHIVE_FORMAT", "RecordChunkStream",
           "detect_format", "handler", "read_records", "iter_record_chunks", "write_records",
           "SIDE_FILES", "side_file_path", "side_files", "is_side_file"]

#: damo's side files of a record file ``X``: kind -> suffix (``damo record`` writes
#: ``X.mem_footprint``, the memory footprints, and ``X.profile``, the CPU profile
#: (perf.data)); an archive holds them as ``/collect`` tables (docs/format.md)
SIDE_FILES = {"mem_footprint": ".mem_footprint", "profile": ".profile"}


def side_file_path(record_path, kind):
    """Where damo keeps side file ``kind`` of ``record_path``."""
    return os.fspath(record_path) + SIDE_FILES[kind]


def side_files(record_path):
    """{kind: path} of the side files that exist beside a damo record file."""
    out = {}
    for kind in SIDE_FILES:
        p = side_file_path(record_path, kind)
        if os.path.isfile(p):
            out[kind] = p
    return out


def is_side_file(path, record_paths):
    """True when ``path`` is a side file of one of ``record_paths`` (a set of paths)."""
    path = os.fspath(path)
    return any(path.endswith(sfx) and path[:-len(sfx)] in record_paths
               for sfx in SIDE_FILES.values())


class _ArchiveStream:
    """(record_idx, chunk) of an archive, record after record; ``records`` and
    ``first_starts`` like the damo formats' streams."""

    def __init__(self, path, chunk_regions):
        self.path = path
        self.chunk_regions = chunk_regions
        self.records = []
        self.first_starts = {}

    def __iter__(self):
        with _open_archive(self.path) as reader:
            self.records = list(reader.records)
            for i in range(len(self.records)):
                for ch in reader.iter_chunks(i, regions_per_chunk=self.chunk_regions):
                    if ch.first_start_ns is not None:
                        self.first_starts[i] = ch.first_start_ns
                    yield i, ch


def _open_archive(path):
    """An ArchiveReader of ``path`` (OSError -> RecordFormatError)."""
    from damo_pipe.archive import ArchiveReader
    try:
        return ArchiveReader(path)
    except DamoPipeError:
        raise
    except OSError as e:
        raise RecordFormatError("cannot open archive (%s)" % e, path=path)


def _read_archive(path, engine, lenient=False):
    from damo_pipe.archive import read_archive_records
    return read_archive_records(path)


def _write_archive(records, path, **options):
    """``options``: those of :func:`damo_pipe.archive.write_records` (compression,
    source_format, summariser ...)."""
    from damo_pipe.archive import write_records as _w
    _w(records, path, **options)


#: every format: name -> FormatHandler (``open`` is set for formats read in place)
FORMATS = {
    **formats.FORMATS,
    ARCHIVE_FORMAT: FormatHandler(ARCHIVE_FORMAT, _read_archive,
                                  lambda path, n, engine, lenient=False: _ArchiveStream(path, n),
                                  _write_archive, _open_archive),
}
#: formats records can be written in
OUTPUT_FORMATS = tuple(name for name, h in FORMATS.items() if h.write is not None)


def handler(fmt, path=None):
    """The FormatHandler of ``fmt`` (RecordFormatError for an unknown name)."""
    return formats.lookup(fmt, path, FORMATS)


def read_records(path, input_type=None, engine="auto", lenient=False):
    """Every record of ``path``, any format (detected unless ``input_type`` is given);
    ``lenient``: salvage damaged trace text (:class:`~damo_pipe.formats.FormatHandler`)."""
    return formats.read_records(path, input_type, engine, table=FORMATS, lenient=lenient)


def iter_record_chunks(path, input_type=None, chunk_regions=1 << 20, engine="auto",
                       lenient=False, open_regions=0):
    """A :class:`~damo_pipe.formats.RecordChunkStream` over ``path``, any format
    (``open_regions``: see there)."""
    return RecordChunkStream(path, input_type, chunk_regions, engine, table=FORMATS,
                             lenient=lenient, open_regions=open_regions)


def write_records(records, path, fmt, **options):
    """Write records in ``fmt`` (see OUTPUT_FORMATS); ``options`` are the format's
    writer's (damo formats: region_values, mode; hdf5: compression, summariser ...)."""
    h = FORMATS.get(fmt)
    if h is None or h.write is None:
        raise ValueError("unknown output format %r (one of %s)"
                         % (fmt, ", ".join(OUTPUT_FORMATS)))
    h.write(records, os.fspath(path), **options)

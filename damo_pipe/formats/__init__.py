"""Readers and writers of every damon.data flavour of damo (json, trace text, binary).

``read_records(path)`` detects the format from the content (never from the file name or
the ``file`` command) and returns a list of :class:`damo_pipe.model.Record`.
``iter_record_chunks(path)`` streams the same data as (record index, chunk) pairs with
bounded memory.  ``write_records(records, path, fmt)`` writes damo's formats
byte-identically to damo 3.4.3.

Formats (``input_type`` names): ``json``, ``json_compressed``, ``perf_script`` (any
trace text: perf script, trace-cmd report, trace_pipe), ``perf_data`` (through
``perf script``), ``record`` (legacy binary v0/v1/v2).  ``hdf5`` (the damo-pipe archive)
is detected here but read and written one layer up: :mod:`damo_pipe.sources` holds the
one format table (``FORMATS`` below plus the archive), and callers that take any input
use it.  This package imports nothing from ``damo_pipe.archive``.

Engines: ``engine="python"`` is the pure-Python reference of every reader;
``"cython"`` the compiled one; ``"auto"`` picks cython when built
(:mod:`damo_pipe._engine`).
"""
import os

from damo_pipe._engine import ENGINES, check_engine
from damo_pipe.errors import EngineError, RecordFormatError

__all__ = ["FormatHandler", "FORMATS", "INPUT_TYPES", "OUTPUT_FORMATS", "ENGINES",
           "RecordChunkStream", "detect_format", "detect_format_bytes", "lookup",
           "read_records", "iter_record_chunks", "write_records"]

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
BINARY_MAGIC = b"damon_recfmt_ver"
PERF_MAGIC = b"PERFILE2"
TRACE_CMD_MAGIC = b"\x17\x08\x44tracing"


class FormatHandler:
    """What the code does with one format: an entry of the format table.

    ``read(path, engine, lenient=False) -> [Record]``; ``stream(path, chunk_regions,
    engine, lenient=False)`` -> an iterable of ``(record_idx, chunk)`` whose ``records``
    and ``first_starts`` attributes stay current while it runs (see
    :class:`RecordChunkStream`); ``lenient``: salvage what can be salvaged from damaged
    input (trace text drops incomplete snapshots, counted and logged) instead of raising
    RecordFormatError; formats that have nothing to salvage ignore it;
    ``write(records, path, **options)``, or None for formats only read; ``open(path)``
    -> a random-access reader (context manager, ``records``, ``iter_chunks``) for
    formats read in place (the archive), else None. ``open_pieces``: ``stream`` also
    takes ``open_regions=N`` and then hands out a snapshot of more than N regions in
    :class:`~damo_pipe.formats.trace_text.SnapshotPiece` items (trace text, whose
    page-granularity snapshots can be larger than memory should hold).
    """

    __slots__ = ("name", "read", "stream", "write", "open", "open_pieces")

    def __init__(self, name, read, stream, write=None, open=None, open_pieces=False):
        self.name = name
        self.read = read
        self.stream = stream
        self.write = write
        self.open = open
        self.open_pieces = open_pieces

    def __repr__(self):
        return "FormatHandler(%r)" % self.name


# ------------------------------------------------------------------ damo's formats

def _json_engine(engine):
    """The streaming engine module (json_fast) for ``engine``, or None for the reference
    code (damo_json); EngineError for an unknown engine, or "cython" when not built."""
    check_engine(engine)
    if engine == "python":
        return None
    from damo_pipe.formats import json_fast
    if json_fast.available():
        return json_fast
    if engine == "cython":
        raise EngineError("the Cython engine (JSON region scanner) is not built; reinstall "
                          "the package or use the python engine")
    return None


class _JsonStream:
    """(record_idx, chunk) of a json / json_compressed file.  The cython engine streams
    (bounded memory); the python reference engine parses the whole document, then
    slices it."""

    def __init__(self, path, fmt, chunk_regions, engine):
        self.path = path
        self.fmt = fmt
        self.chunk_regions = chunk_regions
        self.engine = engine
        self.records = []
        self.first_starts = {}

    def __iter__(self):
        fast = _json_engine(self.engine)
        if fast is not None:
            yield from fast.iter_chunks(self.path, self.fmt, self.chunk_regions, self.records)
            return
        from damo_pipe.formats import damo_json
        recs = damo_json.read_file(self.path, self.fmt)
        self.records.extend(r.meta() for r in recs)
        for i, r in enumerate(recs):
            yield from ((i, c) for c in damo_json.slice_record(r, self.chunk_regions))


def _json_handler(fmt):
    def read(path, engine, lenient=False):
        fast = _json_engine(engine)
        if fast is not None:
            return fast.read(path, fmt)
        from damo_pipe.formats import damo_json
        return damo_json.read_file(path, fmt)

    def stream(path, chunk_regions, engine, lenient=False):
        return _JsonStream(path, fmt, chunk_regions, engine)

    return FormatHandler(fmt, read, stream, _damo_writer(fmt))


def _damo_writer(fmt):
    def write(records, path, *, region_values=None, mode=None):
        from damo_pipe.formats.writers import write_records as _w
        _w(records, path, fmt, region_values=region_values, mode=mode)
    return write


class _TraceStream:
    """Chunks of trace text (a file, or ``perf script`` of a perf.data); ``records`` and
    ``first_starts`` are the parser's."""

    def __init__(self, path, chunk_regions, engine, perf_data, lenient=False,
                 open_regions=0):
        self.path = path
        self.open_regions = open_regions
        self.chunk_regions = chunk_regions
        self.engine = engine
        self.perf_data = perf_data
        self.lenient = lenient
        self._parser = None

    @property
    def records(self):
        return [] if self._parser is None else self._parser.records

    @property
    def first_starts(self):
        return {} if self._parser is None else self._parser.first_starts

    def trace_events(self):
        """(side rows, unknown DAMON event lines) of the trace events that are not
        regions (:meth:`TraceStreamParser.take_side_rows`, ``unknown_events``)."""
        if self._parser is None:
            return {}, (0, None)
        return self._parser.take_side_rows(), self._parser.unknown_events()

    def __iter__(self):
        from damo_pipe.formats import trace_text
        path, n, engine = self.path, self.chunk_regions, self.engine
        f = None
        if self.perf_data:
            gen = trace_text.iter_perf_data_chunks(path, chunk_regions=n, engine=engine,
                                                   lenient=self.lenient,
                                                   open_regions=self.open_regions)
        else:
            f = open(path, "rb")
            gen = trace_text.iter_trace_chunks(f, path=path, chunk_regions=n, engine=engine,
                                               lenient=self.lenient,
                                               open_regions=self.open_regions)
        try:
            _, self._parser = next(gen)
            yield from gen
        finally:
            gen.close()
            if f is not None:
                f.close()


def _read_trace_text(path, engine, lenient=False):
    from damo_pipe.formats.trace_text import read_trace_text
    return read_trace_text(path, engine=engine, lenient=lenient)


def _read_perf_data(path, engine, lenient=False):
    from damo_pipe.formats.trace_text import read_perf_data
    return read_perf_data(path, engine=engine, lenient=lenient)


def _read_binary(path, engine, lenient=False):
    from damo_pipe.formats.binary import read_binary
    return read_binary(path, engine=engine)


def _stream_binary(path, chunk_regions, engine, lenient=False):
    from damo_pipe.formats.binary import BinaryStream
    return BinaryStream(path, chunk_regions=chunk_regions, engine=engine)


#: damo's formats: name -> FormatHandler (damo_pipe.sources.FORMATS adds the archive)
FORMATS = {
    "json": _json_handler("json"),
    "json_compressed": _json_handler("json_compressed"),
    "perf_script": FormatHandler(
        "perf_script", _read_trace_text,
        lambda path, n, engine, lenient=False, open_regions=0: _TraceStream(
            path, n, engine, False, lenient, open_regions),
        _damo_writer("perf_script"), open_pieces=True),
    "perf_data": FormatHandler(
        "perf_data", _read_perf_data,
        lambda path, n, engine, lenient=False, open_regions=0: _TraceStream(
            path, n, engine, True, lenient, open_regions), open_pieces=True),
    "record": FormatHandler("record", _read_binary, _stream_binary),
}

#: the archive's format name (detected here, handled by damo_pipe.sources)
ARCHIVE_FORMAT = "hdf5"
#: names accepted by ``--input_type`` / ``input_type=``
INPUT_TYPES = tuple(FORMATS) + (ARCHIVE_FORMAT,)
#: names accepted by ``write_records(fmt=...)``
OUTPUT_FORMATS = tuple(name for name, h in FORMATS.items() if h.write is not None)


# ------------------------------------------------------------------ detection

def _looks_zlib(head):
    return (len(head) >= 2 and head[0] & 0x0F == 8 and head[0] >> 4 <= 7
            and ((head[0] << 8) | head[1]) % 31 == 0 and not head[1] & 0x20)


def detect_format_bytes(head, path=None):
    """Format name judged from the first bytes of a file (see docs/formats.md)."""
    if not head:
        raise RecordFormatError("empty file", path=path, offset=0)
    if head.startswith(HDF5_MAGIC):
        return ARCHIVE_FORMAT
    if head.startswith(BINARY_MAGIC):
        return "record"
    if head.startswith(PERF_MAGIC):
        return "perf_data"
    if head.startswith(TRACE_CMD_MAGIC):
        raise RecordFormatError("trace-cmd .dat files are not read; convert with "
                                "`trace-cmd report -i FILE > FILE.txt` first", path=path,
                                offset=0)
    if _looks_zlib(head):
        return "json_compressed"
    stripped = head.lstrip(b" \t\r\n")
    if stripped.startswith(b"\xef\xbb\xbf"):
        stripped = stripped[3:].lstrip()
    if stripped[:1] in (b"[", b"{"):
        return "json"
    if b"\0" in head:
        # no magic, binary content: the legacy record format v0 (no header)
        return "record"
    return "perf_script"


def detect_format(path):
    """Name of the format of ``path`` judged from its first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except FileNotFoundError:
        raise RecordFormatError("no such file", path=path) from None
    except OSError as e:
        raise RecordFormatError("cannot read (%s)" % (e.strerror or e), path=path)
    return detect_format_bytes(head, path)


def lookup(fmt, path=None, table=None):
    """The FormatHandler of ``fmt`` in ``table`` (default: damo's formats, FORMATS)."""
    handler = (FORMATS if table is None else table).get(fmt)
    if handler is not None:
        return handler
    if fmt in INPUT_TYPES:
        raise RecordFormatError("%s files are read through damo_pipe.sources, not "
                                "damo_pipe.formats" % fmt, path=path)
    raise RecordFormatError("unknown input type %r (one of %s)"
                            % (fmt, ", ".join(INPUT_TYPES)), path=path)


# ------------------------------------------------------------------ reading

def read_records(path, input_type=None, engine="auto", *, table=None, lenient=False):
    """Read every record of ``path`` (format detected unless ``input_type`` is given).

    ``table``: the format table to dispatch with (damo_pipe.sources passes its own);
    ``lenient``: see :class:`FormatHandler`."""
    check_engine(engine)
    path = os.fspath(path)
    fmt = input_type or detect_format(path)
    return lookup(fmt, path, table).read(path, engine, lenient=lenient)


class RecordChunkStream:
    """Iterable of ``(record_idx, chunk)`` from any input, with bounded memory.

    ``chunk`` is a :class:`~damo_pipe.model.Record` with consecutive snapshots of record
    ``record_idx`` (region offsets relative to the chunk); the first chunk of a record
    may arrive after chunks of later records (multi-target traces).  After the
    iteration: ``records`` lists every record's metadata in file order (also records
    that have no snapshot), and ``first_starts`` maps record_idx to the exact deduced
    float start of its first snapshot (end-time-only formats: the chunk carries a
    placeholder ``start_ns[0] = end_ns[0]`` until then).  During the iteration both
    hold what is known so far.

    ``open_regions`` > 0: formats that can (trace text) hand out a snapshot of more
    regions than that as :class:`~damo_pipe.formats.trace_text.SnapshotPiece` items in
    place of chunks (its rows in pieces, then its end); the caller must take them
    (``ArchiveWriter.append_open``). Other formats ignore it.
    """

    def __init__(self, path, input_type=None, chunk_regions=1 << 20, engine="auto", *,
                 table=None, lenient=False, open_regions=0):
        check_engine(engine)
        self.path = os.fspath(path)
        self.format = input_type or detect_format(self.path)
        self._handler = lookup(self.format, self.path, table)
        self.chunk_regions = max(1, int(chunk_regions))
        self.engine = engine
        self.lenient = lenient
        self.open_regions = int(open_regions or 0)
        self._source = None

    @property
    def records(self):
        return [] if self._source is None else self._source.records

    @property
    def first_starts(self):
        return {} if self._source is None else self._source.first_starts

    def trace_events(self):
        """After the iteration, for trace inputs: (side rows, unknown DAMON event
        lines) of the DAMON events that are not regions; ({}, (0, None)) otherwise."""
        fn = getattr(self._source, "trace_events", None)
        return fn() if fn is not None else ({}, (0, None))

    def __iter__(self):
        kw = {"open_regions": self.open_regions} \
            if self.open_regions and self._handler.open_pieces else {}
        self._source = self._handler.stream(self.path, self.chunk_regions, self.engine,
                                            lenient=self.lenient, **kw)
        yield from self._source


def iter_record_chunks(path, input_type=None, chunk_regions=1 << 20, engine="auto", *,
                       table=None, lenient=False, open_regions=0):
    """A :class:`RecordChunkStream` over ``path`` (see there)."""
    return RecordChunkStream(path, input_type, chunk_regions, engine, table=table,
                             lenient=lenient, open_regions=open_regions)


# ------------------------------------------------------------------ writing

def write_records(records, path, fmt, *, region_values=None, mode=None):
    """Write records in damo's ``json``/``json_compressed``/``perf_script`` layout.

    Byte-identical to damo 3.4.3's writers (``convert_record_format``/``adjust``).
    ``records`` may also hold lists of consecutive chunks (one list per record) to
    stream huge records.  ``region_values(record_index, chunk) -> (percent, usec)``
    optionally supplies per-region ``nr_accesses.percent`` (int array) and ``age.usec``
    (list of numbers) for the JSON writers — damo's adjust output carries them when the
    record filter filled them (SEMANTICS.md §5 step 1).  ``mode``: permission bits.
    The file is written under a temporary name and renamed on success.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError("unknown output format %r (one of %s)" % (fmt, ", ".join(OUTPUT_FORMATS)))
    FORMATS[fmt].write(records, path, region_values=region_values, mode=mode)

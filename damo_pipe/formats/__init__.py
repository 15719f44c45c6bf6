"""Readers and writers of every damon.data flavour, plus the damo-pipe HDF5 archive.

``read_records(path)`` detects the format from the content (never from the file name or
the ``file`` command) and returns a list of :class:`damo_pipe.model.Record`.
``iter_record_chunks(path)`` streams the same data as (record index, chunk) pairs with
bounded memory.  ``write_records(records, path, fmt)`` writes damo's formats
byte-identically to damo 3.4.3.

Formats (``input_type`` names): ``json``, ``json_compressed``, ``perf_script`` (any
trace text: perf script, trace-cmd report, trace_pipe), ``perf_data`` (through
``perf script``), ``record`` (legacy binary v0/v1/v2), ``hdf5`` (damo-pipe archive).

Engines: ``engine="python"`` is the pure-Python reference of every reader;
``"cython"`` the compiled one (damo_pipe._fastparse); ``"auto"`` picks cython when built.
"""
import os

from damo_pipe.errors import RecordFormatError

#: names accepted by ``--input_type`` / ``input_type=``
INPUT_TYPES = ("json", "json_compressed", "perf_script", "perf_data", "record", "hdf5")
#: names accepted by ``write_records(fmt=...)``
OUTPUT_FORMATS = ("json", "json_compressed", "perf_script")
ENGINES = ("auto", "cython", "python")

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
BINARY_MAGIC = b"damon_recfmt_ver"
PERF_MAGIC = b"PERFILE2"
TRACE_CMD_MAGIC = b"\x17\x08\x44tracing"


def _looks_zlib(head):
    return (len(head) >= 2 and head[0] & 0x0F == 8 and head[0] >> 4 <= 7
            and ((head[0] << 8) | head[1]) % 31 == 0 and not head[1] & 0x20)


def detect_format_bytes(head, path=None):
    """Format name judged from the first bytes of a file (see docs/formats.md)."""
    if not head:
        raise RecordFormatError("empty file", path=path, offset=0)
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
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
    except OSError as e:
        raise RecordFormatError("cannot read (%s)" % (e.strerror or e), path=path)
    return detect_format_bytes(head, path)


def _check_engine(engine):
    if engine not in ENGINES:
        raise ValueError("engine must be one of %s, not %r" % (", ".join(ENGINES), engine))


def _check_type(input_type, path):
    if input_type not in INPUT_TYPES:
        raise RecordFormatError("unknown input type %r (one of %s)"
                                % (input_type, ", ".join(INPUT_TYPES)), path=path)


def read_records(path, input_type=None, engine="auto"):
    """Read every record of ``path`` (format detected unless ``input_type`` is given)."""
    _check_engine(engine)
    path = os.fspath(path)
    fmt = input_type or detect_format(path)
    _check_type(fmt, path)
    if fmt in ("json", "json_compressed"):
        from damo_pipe.formats import damo_json
        return damo_json.read(path, fmt, engine=engine)
    if fmt == "perf_script":
        from damo_pipe.formats.trace_text import read_trace_text
        return read_trace_text(path, engine=engine)
    if fmt == "perf_data":
        from damo_pipe.formats.trace_text import read_perf_data
        return read_perf_data(path, engine=engine)
    if fmt == "record":
        from damo_pipe.formats.binary import read_binary
        return read_binary(path, engine=engine)
    if fmt == "hdf5":
        from damo_pipe.archive import read_archive_records
        return read_archive_records(path)
    raise RecordFormatError("reading %s files is not implemented" % fmt, path=path)


class RecordChunkStream:
    """Iterable of ``(record_idx, chunk)`` from any input, with bounded memory.

    ``chunk`` is a :class:`~damo_pipe.model.Record` with consecutive snapshots of record
    ``record_idx`` (region offsets relative to the chunk); the first chunk of a record
    may arrive after chunks of later records (multi-target traces).  After the
    iteration: ``records`` lists every record's metadata in file order (also records
    that have no snapshot), and ``first_starts`` maps record_idx to the exact deduced
    float start of its first snapshot (end-time-only formats: the chunk carries a
    placeholder ``start_ns[0] = end_ns[0]`` until then).
    """

    def __init__(self, path, input_type=None, chunk_regions=1 << 20, engine="auto"):
        _check_engine(engine)
        self.path = os.fspath(path)
        self.format = input_type or detect_format(self.path)
        _check_type(self.format, self.path)
        self.chunk_regions = max(1, int(chunk_regions))
        self.engine = engine
        self.records = []
        self.first_starts = {}

    def __iter__(self):
        fmt, path, n, engine = self.format, self.path, self.chunk_regions, self.engine
        if fmt in ("json", "json_compressed"):
            from damo_pipe.formats import damo_json
            st = damo_json.JsonStream(path, fmt, chunk_regions=n, engine=engine)
            self.records = st.records
            yield from st
        elif fmt in ("perf_script", "perf_data"):
            from damo_pipe.formats import trace_text
            if fmt == "perf_script":
                f = open(path, "rb")
                gen = trace_text.iter_trace_chunks(f, path=path, chunk_regions=n, engine=engine)
            else:
                f = None
                gen = trace_text.iter_perf_data_chunks(path, chunk_regions=n, engine=engine)
            try:
                _, parser = next(gen)
                self.records = parser.records
                yield from gen
                self.first_starts = parser.first_starts
            finally:
                gen.close()
                if f is not None:
                    f.close()
        elif fmt == "record":
            from damo_pipe.formats.binary import BinaryStream
            st = BinaryStream(path, chunk_regions=n, engine=engine)
            self.records = st.records
            yield from st
            self.first_starts = st.first_starts
        elif fmt == "hdf5":
            from damo_pipe.archive import ArchiveReader
            reader = ArchiveReader(path)
            try:
                self.records = list(reader.records)
                for i in range(len(self.records)):
                    for ch in reader.iter_chunks(i, regions_per_chunk=n):
                        if ch.first_start_ns is not None:
                            self.first_starts[i] = ch.first_start_ns
                        yield i, ch
            finally:
                reader.close()
        else:
            raise RecordFormatError("reading %s files is not implemented" % fmt, path=path)


def iter_record_chunks(path, input_type=None, chunk_regions=1 << 20, engine="auto"):
    """A :class:`RecordChunkStream` over ``path`` (see there)."""
    return RecordChunkStream(path, input_type, chunk_regions, engine)


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
    from damo_pipe.formats.writers import write_records as _w
    if fmt not in OUTPUT_FORMATS:
        raise ValueError("unknown output format %r (one of %s)" % (fmt, ", ".join(OUTPUT_FORMATS)))
    _w(records, path, fmt, region_values=region_values, mode=mode)

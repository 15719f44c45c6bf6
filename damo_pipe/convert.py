"""Conversion between record formats: any damon.data flavour <-> HDF5 archive / damo formats.

The library behind ``damo-analyze convert``.  Large inputs are streamed: converting to
an archive keeps memory bounded whatever the input size, and damo-format outputs of
big (or perf.data) inputs go through a temporary archive.  Outputs are written under a
temporary name and renamed when complete.  Archives written here store the heatmap
guide summary (:class:`damo_pipe.analyze.heatmap.GuideBuilder`).

Side data (``side_files=True``, the default) goes along: damo's side files beside a
record file ``X`` (``X.mem_footprint``, ``X.profile``: :data:`damo_pipe.sources.SIDE_FILES`)
become the archive's ``footprints``/``meminfo`` tables and its CPU profile (the
perf.data bytes and their sample table, parsed with perf when it is installed); an
archive's ``/collect`` group (every side table, the profile, the recording's
attributes) and root provenance (recording host, command line) go into a new archive
whole; an archive converted to a damo format writes ``X.mem_footprint`` and
``X.profile`` back beside ``X``; damo files converted to damo formats take copies of
their side files along.
"""
import logging
import os
import shutil

from damo_pipe import formats, sources
from damo_pipe.errors import UsageError

log = logging.getLogger("damo_pipe.convert")

#: output file extension -> format
EXTENSIONS = {
    ".h5": "hdf5", ".hdf5": "hdf5",
    ".json": "json",
    ".jsonc": "json_compressed", ".json_compressed": "json_compressed", ".zlib": "json_compressed",
    ".perf": "perf_script", ".txt": "perf_script",
}
#: format -> extension of the files written into an output directory
DEFAULT_EXT = {"hdf5": ".h5", "json": ".json", "json_compressed": ".jsonc",
               "perf_script": ".perf"}
#: formats convert writes (the archive first: the default for directories)
OUTPUT_FORMATS = (sources.ARCHIVE_FORMAT,) + formats.OUTPUT_FORMATS
#: default regions per streamed chunk
CHUNK_REGIONS = 1 << 18
#: rows of open snapshots a trace input holds before it streams them in pieces
#: (formats.trace_text.SnapshotPiece): a page-granularity snapshot of tens of millions
#: of regions is converted with bounded memory
OPEN_REGIONS = 1 << 18
#: non-archive inputs larger than this go through a temporary archive when converted to
#: a damo format, so that memory stays bounded whatever the input size
STREAM_VIA_ARCHIVE_BYTES = 32 << 20


def output_format(path, forced=None):
    """The format to write ``path`` in: ``forced``, else judged from its extension
    (None when unknown)."""
    if forced:
        return forced
    return EXTENSIONS.get(os.path.splitext(path)[1].lower())


def convert_file(src, dst, fmt, *, input_type=None, compression=None,
                 chunk_regions=CHUNK_REGIONS, engine="auto", side_files=True, perf_path="perf",
                 progress=None, lenient=False):
    """Convert one file into ``fmt``; the output appears only when complete.
    Returns the number of records written. ``side_files``: carry the side data along
    (module docstring); ``perf_path``: the perf that parses a CPU profile going into an
    archive; ``progress``: an object whose ``update(n)`` is told of the regions
    converted (e.g. a tqdm bar); ``lenient``: salvage a damaged trace text input
    (drop its incomplete snapshots and damaged lines, logging one warning that counts
    them) instead of failing; other formats are read as usual."""
    if fmt == sources.ARCHIVE_FORMAT:
        return to_archive(src, dst, input_type=input_type, compression=compression,
                          chunk_regions=chunk_regions, engine=engine, side_files=side_files,
                          perf_path=perf_path, progress=progress, lenient=lenient)
    in_fmt = input_type or sources.detect_format(src)
    if sources.handler(in_fmt, src).open is not None:
        return archive_to_damo(src, dst, fmt, chunk_regions, side_files=side_files,
                               progress=progress)
    if in_fmt == "perf_data" or os.path.getsize(src) > STREAM_VIA_ARCHIVE_BYTES:
        from damo_pipe._atomic import scratch_file
        with scratch_file(dst) as tmp:   # a marked temporary: see _atomic
            to_archive(src, tmp, input_type=input_type, compression="none",
                       chunk_regions=chunk_regions, engine=engine, side_files=False,
                       progress=progress, lenient=lenient)
            n = archive_to_damo(tmp, dst, fmt, chunk_regions, side_files=False)
    else:
        records = sources.read_records(src, input_type=input_type, engine=engine,
                                       lenient=lenient)
        sources.write_records(records, dst, fmt)
        n = len(records)
        if progress is not None:
            progress.update(sum(r.nr_regions for r in records))
    if side_files:
        copy_side_files(src, dst)
    return n


def copy_side_files(src, dst):
    """Copy damo's side files of record file ``src`` beside ``dst`` (byte for byte,
    each atomically). Returns the paths written."""
    from damo_pipe._atomic import atomic_output
    out = []
    for kind, path in sources.side_files(src).items():
        target = sources.side_file_path(dst, kind)
        if os.path.exists(target) and os.path.samefile(path, target):
            continue
        with atomic_output(target) as tmp:
            shutil.copyfile(path, tmp)
        out.append(target)
    return out


def archive_to_damo(src, dst, fmt, chunk_regions=CHUNK_REGIONS, side_files=True, progress=None):
    """Stream an archive record by record, chunk by chunk, into a damo format; with
    ``side_files``, write its footprints and CPU profile beside ``dst`` as damo's
    side files (:func:`write_side_files`)."""
    from damo_pipe.formats.writers import ChunkedRecord
    with sources.handler(sources.ARCHIVE_FORMAT).open(src) as reader:
        metas = reader.records
        items = (ChunkedRecord(metas[i], _counted(
                     reader.iter_chunks(i, regions_per_chunk=chunk_regions), progress))
                 for i in range(len(reader)))
        formats.write_records(items, dst, fmt)
        n = len(reader)
    if side_files:
        write_side_files(src, dst)
    return n


def _counted(chunks, progress):
    """``chunks``, telling ``progress.update`` of their regions (unchanged without one)."""
    if progress is None:
        return chunks
    return (_tell(progress, c) for c in chunks)


def _tell(progress, chunk):
    progress.update(chunk.nr_regions)
    return chunk


def write_side_files(archive, dst):
    """damo's side files of an archive beside ``dst``: ``dst.mem_footprint`` (its
    ``footprints``/``meminfo`` tables, in damo's pages and KiB) and ``dst.profile`` (the
    stored perf.data, byte for byte), for what the archive holds. Returns the paths."""
    from damo_pipe.analyze.footprints import archive_footprints
    from damo_pipe.archive.profile import extract_perf_data
    from damo_pipe.formats.footprints import write_mem_footprint
    out = []
    fp = archive_footprints(archive)
    if fp is not None:
        path = sources.side_file_path(dst, "mem_footprint")
        write_mem_footprint(fp, path)
        out.append(path)
    path = extract_perf_data(archive, sources.side_file_path(dst, "profile"))
    if path is not None:
        out.append(path)
    return out


#: root attributes an archive's writer sets itself (the others are provenance)
_WRITER_ATTRS = ("format", "format_version", "writer", "created_utc", "compression")


def _provenance(src, in_fmt):
    """Root provenance of an archive made from ``src``: an archive's own (recording
    host, kernel, command line ...) plus ``converted_from``; else the input's format
    and path."""
    if in_fmt != sources.ARCHIVE_FORMAT:
        return {"source_format": in_fmt, "source_path": os.path.abspath(src)}
    with sources.handler(sources.ARCHIVE_FORMAT).open(src) as reader:
        prov = {k: v for k, v in reader.attrs.items() if k not in _WRITER_ATTRS}
    prov["converted_from"] = os.path.abspath(src)
    return prov


def _add_damo_side_files(w, src, perf_path):
    """damo's side files of ``src`` into the open ArchiveWriter ``w``."""
    from damo_pipe.archive.sidetables import add_footprint_tables
    from damo_pipe.formats.footprints import DAMO_PAGE_SIZE, read_mem_footprint
    found = sources.side_files(src)
    if "mem_footprint" in found:
        add_footprint_tables(w, read_mem_footprint(found["mem_footprint"]), attrs={
            "source": "damo .mem_footprint", "clock": "realtime",
            "page_size": DAMO_PAGE_SIZE})
    if "profile" in found:
        samples, attrs = profile_samples(found["profile"], perf_path)
        w.set_profile(found["profile"], samples, attrs)


def profile_samples(perf_data, perf_path="perf"):
    """(ProfileSamples or None, attrs) of a perf.data for the archive: without a
    working perf the bytes are kept alone and ``samples_error`` says why."""
    from damo_pipe.errors import DamoPipeError
    from damo_pipe.formats.perf_samples import read_perf_samples
    attrs = {"perf_clock": "perf", "time_offset_ns": 0, "source": "damo .profile"}
    try:
        return read_perf_samples(perf_data, perf=perf_path), attrs
    except DamoPipeError as e:
        log.warning("%s: CPU profile kept without its sample table (%s)", perf_data, e)
        attrs["samples_error"] = str(e)
        return None, attrs


def to_archive(src, dst, *, input_type=None, compression=None, chunk_regions=CHUNK_REGIONS,
               engine="auto", side_files=True, perf_path="perf", progress=None,
               lenient=False):
    """Stream any input into a new archive (with the heatmap guide summary and, with
    ``side_files``, the side data: module docstring). Returns the number of records
    written. ``progress.update(n)`` is told of the regions written; ``lenient``: see
    :func:`convert_file`."""
    from damo_pipe._atomic import atomic_output
    from damo_pipe.analyze.heatmap import GuideBuilder
    from damo_pipe.archive import ArchiveWriter
    from damo_pipe.formats.trace_text import SnapshotPiece
    stream = sources.iter_record_chunks(src, input_type=input_type, chunk_regions=chunk_regions,
                                        engine=engine, lenient=lenient,
                                        open_regions=OPEN_REGIONS)
    added = []   # metadata written per archive record
    with atomic_output(dst) as tmp:
        prov = _provenance(src, stream.format)
        with ArchiveWriter(tmp, compression=compression, provenance=prov,
                           summariser=GuideBuilder, discard_on_error=True) as w:
            for ri, chunk in stream:
                while len(added) <= ri:
                    meta = stream.records[len(added)]
                    w.add_record(meta)
                    added.append(meta)
                if isinstance(chunk, SnapshotPiece):    # a snapshot streamed in pieces
                    w.append_piece(ri, chunk)
                    if progress is not None and chunk.kind == "rows":
                        progress.update(chunk.nr_rows)
                    continue
                w.append(ri, chunk)
                if progress is not None:
                    progress.update(chunk.nr_regions)
            while len(added) < len(stream.records):
                meta = stream.records[len(added)]
                w.add_record(meta)
                added.append(meta)
            for ri, fs in stream.first_starts.items():
                w.set_first_start(ri, fs)
            # trace inputs: the DAMON events that are not regions (side tables)
            from damo_pipe.archive.sidetables import write_trace_events
            write_trace_events(w, *stream.trace_events())
            # metadata stated after the snapshots (json ``data_source``) is final only now
            for ri, meta in enumerate(stream.records[:len(added)]):
                if _meta_key(meta) != _meta_key(added[ri]):
                    w.update_record_meta(ri, meta)
            if side_files and stream.format == sources.ARCHIVE_FORMAT:
                w.copy_side_data(src)
            elif side_files:
                _add_damo_side_files(w, src, perf_path)
    return len(added)


def _meta_key(meta):
    return (meta.target_id, meta.kdamond_idx, meta.context_idx, meta.scheme_idx,
            repr(meta.intervals), repr(meta.scheme_filters), meta.data_source, meta.ops, meta.pid)


def expand_inputs(inputs, skip_side_files=False):
    """[(source path, relative output name)] for files and directories (walked in sorted
    order, hidden entries skipped); ``skip_side_files``: leave out damo's side files of
    the other inputs (they go along with their record file)."""
    out = []
    for p in inputs:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    full = os.path.join(root, name)
                    out.append((full, os.path.relpath(full, p)))
        else:
            out.append((p, os.path.basename(p)))
    if skip_side_files:
        records = {src for src, _ in out}
        out = [(src, rel) for src, rel in out if not sources.is_side_file(src, records)]
    return out


def convert_paths(inputs, output, fmt=None, *, progress=None, region_progress=None, **options):
    """Convert ``inputs`` (files or directories) to ``output``.

    One input file and an output that is not a directory: a file conversion, the format
    from ``fmt`` or the output's extension.  Otherwise every file converts into the
    ``output`` directory (created), same relative name with the format's extension,
    ``fmt`` defaulting to hdf5; ``progress(total)`` -> an object with ``update(n)`` and
    ``close()`` (e.g. tqdm) is then told of each file; a file conversion tells
    ``region_progress(total)`` (the same kind of factory; ``total``: the regions to
    convert, None when unknown before reading) of the regions converted.  ``options``:
    those of :func:`convert_file`.  UsageError for missing inputs or an unknown output format.
    """
    from damo_pipe.errors import RecordFormatError
    for p in inputs:
        if not os.path.exists(p):
            raise RecordFormatError("no such file", path=p)
    many = len(inputs) > 1 or any(os.path.isdir(p) for p in inputs) or os.path.isdir(output)
    if not many:
        fmt = output_format(output, fmt)
        if fmt is None:
            raise UsageError("cannot tell the output format from %r; use --format" % output)
        bar = None
        if region_progress is not None:
            bar = region_progress(nr_regions_known(inputs[0], options.get("input_type")))
        try:
            n = convert_file(inputs[0], output, fmt, progress=bar, **options)
        finally:
            if bar is not None:
                bar.close()
        log.info("%s -> %s (%s, %d records)", inputs[0], output, fmt, n)
        return
    fmt = fmt or sources.ARCHIVE_FORMAT
    jobs = expand_inputs(inputs, skip_side_files=options.get("side_files", True))
    if not jobs:
        raise RecordFormatError("no record files in %s" % ", ".join(inputs))
    if os.path.exists(output) and not os.path.isdir(output):
        raise UsageError("%s exists and is not a directory (several inputs convert into "
                         "a directory)" % output)
    os.makedirs(output, exist_ok=True)
    bar = progress(len(jobs)) if progress is not None else None
    try:
        for src, rel in jobs:
            stem = os.path.splitext(rel)[0] if os.path.splitext(rel)[1].lower() in EXTENSIONS else rel
            dst = os.path.join(output, stem + DEFAULT_EXT[fmt])
            os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
            n = convert_file(src, dst, fmt, **options)
            log.info("%s -> %s (%s, %d records)", src, dst, fmt, n)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def nr_regions_known(path, input_type=None):
    """The number of regions of ``path`` when known without reading them (an archive's
    snapshot tables), else None."""
    fmt = input_type or sources.detect_format(path)
    h = sources.handler(fmt, path)
    if h.open is None:
        return None
    with h.open(path) as reader:
        return sum(reader.nr_regions(i) for i in range(len(reader)))


def convert_record_file(src, fmt, output=None, *, input_type=None, engine="auto"):
    """damo's ``convert_record_format``: read ``src`` whole (any format) and write it in
    the damo format ``fmt`` to ``output``, or in place of ``src`` (keeping its permission
    bits) when ``output`` is None.  Byte-identical to damo 3.4.3."""
    from damo_pipe.errors import RecordFormatError
    if not os.path.exists(src):
        raise RecordFormatError("no such file", path=src)
    records = sources.read_records(src, input_type=input_type, engine=engine)
    mode = None
    if output is None:
        try:
            mode = os.stat(src).st_mode & 0o7777
        except OSError:
            mode = None
    formats.write_records(records, src if output is None else output, fmt, mode=mode)

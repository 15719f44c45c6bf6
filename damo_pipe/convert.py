"""Conversion between record formats: any damon.data flavour <-> HDF5 archive / damo formats.

The library behind ``damo-analyze convert``.  Large inputs are streamed: converting to
an archive keeps memory bounded whatever the input size, and damo-format outputs of
big (or perf.data) inputs go through a temporary archive.  Outputs are written under a
temporary name and renamed when complete.  Archives written here store the heatmap
guide summary (:class:`damo_pipe.analyze.heatmap.GuideBuilder`).
"""
import logging
import os

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
                 chunk_regions=CHUNK_REGIONS, engine="auto"):
    """Convert one file into ``fmt``; the output appears only when complete.
    Returns the number of records written."""
    if fmt == sources.ARCHIVE_FORMAT:
        return to_archive(src, dst, input_type=input_type, compression=compression,
                          chunk_regions=chunk_regions, engine=engine)
    in_fmt = input_type or sources.detect_format(src)
    if sources.handler(in_fmt, src).open is not None:
        return archive_to_damo(src, dst, fmt, chunk_regions)
    if in_fmt == "perf_data" or os.path.getsize(src) > STREAM_VIA_ARCHIVE_BYTES:
        tmp = _tmp_name(dst)
        try:
            to_archive(src, tmp, input_type=input_type, compression="none",
                       chunk_regions=chunk_regions, engine=engine)
            return archive_to_damo(tmp, dst, fmt, chunk_regions)
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    records = sources.read_records(src, input_type=input_type, engine=engine)
    sources.write_records(records, dst, fmt)
    return len(records)


def archive_to_damo(src, dst, fmt, chunk_regions=CHUNK_REGIONS):
    """Stream an archive record by record, chunk by chunk, into a damo format."""
    from damo_pipe.formats.writers import ChunkedRecord
    with sources.handler(sources.ARCHIVE_FORMAT).open(src) as reader:
        metas = reader.records
        items = (ChunkedRecord(metas[i], reader.iter_chunks(i, regions_per_chunk=chunk_regions))
                 for i in range(len(reader)))
        formats.write_records(items, dst, fmt)
        return len(reader)


def to_archive(src, dst, *, input_type=None, compression=None, chunk_regions=CHUNK_REGIONS,
               engine="auto"):
    """Stream any input into a new archive (with the heatmap guide summary).
    Returns the number of records written."""
    from damo_pipe._atomic import atomic_output
    from damo_pipe.analyze.heatmap import GuideBuilder
    from damo_pipe.archive import ArchiveWriter
    stream = sources.iter_record_chunks(src, input_type=input_type, chunk_regions=chunk_regions,
                                        engine=engine)
    added = []   # metadata written per archive record
    with atomic_output(dst) as tmp:
        prov = {"source_format": stream.format, "source_path": os.path.abspath(src)}
        with ArchiveWriter(tmp, compression=compression, provenance=prov,
                           summariser=GuideBuilder) as w:
            for ri, chunk in stream:
                while len(added) <= ri:
                    meta = stream.records[len(added)]
                    w.add_record(meta)
                    added.append(meta)
                w.append(ri, chunk)
            while len(added) < len(stream.records):
                meta = stream.records[len(added)]
                w.add_record(meta)
                added.append(meta)
            for ri, fs in stream.first_starts.items():
                w.set_first_start(ri, fs)
            # metadata stated after the snapshots (json ``data_source``) is final only now
            for ri, meta in enumerate(stream.records[:len(added)]):
                if _meta_key(meta) != _meta_key(added[ri]):
                    w.update_record_meta(ri, meta)
    return len(added)


def _meta_key(meta):
    return (meta.target_id, meta.kdamond_idx, meta.context_idx, meta.scheme_idx,
            repr(meta.intervals), repr(meta.scheme_filters), meta.data_source, meta.ops, meta.pid)


def _tmp_name(path):
    import tempfile
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    os.close(fd)
    return tmp


def expand_inputs(inputs):
    """[(source path, relative output name)] for files and directories (walked in sorted
    order, hidden entries skipped)."""
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
    return out


def convert_paths(inputs, output, fmt=None, *, progress=None, **options):
    """Convert ``inputs`` (files or directories) to ``output``.

    One input file and an output that is not a directory: a file conversion, the format
    from ``fmt`` or the output's extension.  Otherwise every file converts into the
    ``output`` directory (created), same relative name with the format's extension,
    ``fmt`` defaulting to hdf5; ``progress(total)`` -> an object with ``update(n)`` and
    ``close()`` (e.g. tqdm) is then told of each file.  ``options``: those of
    :func:`convert_file`.  UsageError for missing inputs or an unknown output format.
    """
    for p in inputs:
        if not os.path.exists(p):
            raise UsageError("input not found: %s" % p)
    many = len(inputs) > 1 or any(os.path.isdir(p) for p in inputs) or os.path.isdir(output)
    if not many:
        fmt = output_format(output, fmt)
        if fmt is None:
            raise UsageError("cannot tell the output format from %r; use --format" % output)
        n = convert_file(inputs[0], output, fmt, **options)
        log.info("%s -> %s (%s, %d records)", inputs[0], output, fmt, n)
        return
    fmt = fmt or sources.ARCHIVE_FORMAT
    jobs = expand_inputs(inputs)
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

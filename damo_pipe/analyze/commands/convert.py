"""``damo-analyze convert``: any damon.data flavour <-> HDF5 archive / damo formats."""
import logging
import os
import sys


HELP = "convert record files between formats (HDF5 archive, json, json_compressed, perf_script)"

DESCRIPTION = """\
Convert DAMON record files.  Inputs may be any damon.data flavour (json,
json_compressed, perf script / trace-cmd / trace_pipe text, perf.data, legacy binary
record v0/v1/v2) or a damo-pipe HDF5 archive; the input format is detected from the
content (--input_type forces it).  The output format comes from the OUTPUT extension
(.h5/.hdf5 archive, .json, .jsonc/.json_compressed/.zlib, .perf/.txt perf_script) or
--format.  Several inputs, or a directory, convert into the OUTPUT directory, one file
each (same relative name, the format's extension).  Large inputs are streamed:
converting to an archive keeps memory bounded whatever the input size.  Outputs are
written under a temporary name and renamed when complete.

examples:
  damo-analyze convert damon.data record.h5
  damo-analyze convert record.h5 damon.json
  damo-analyze convert --format json_compressed record.h5 damon.data
  damo-analyze convert run1/damon.data run2/perf.data archives/
  damo-analyze convert --input_type perf_script capture.log capture.h5
"""

log = logging.getLogger("damo_pipe.convert")

EXTENSIONS = {
    ".h5": "hdf5", ".hdf5": "hdf5",
    ".json": "json",
    ".jsonc": "json_compressed", ".json_compressed": "json_compressed", ".zlib": "json_compressed",
    ".perf": "perf_script", ".txt": "perf_script",
}
DEFAULT_EXT = {"hdf5": ".h5", "json": ".json", "json_compressed": ".jsonc",
               "perf_script": ".perf"}
OUTPUT_FORMATS = ("hdf5", "json", "json_compressed", "perf_script")


def prepare_parser(parser):
    parser.add_argument("paths", nargs="+", metavar="INPUT... OUTPUT",
                        help="input files or directories, then the output file or directory")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default=None,
                        help="output format (default: from the OUTPUT extension; hdf5 for "
                             "directories)")
    parser.add_argument("--input_type", default=None,
                        choices=["json", "json_compressed", "perf_script", "perf_data",
                                 "record", "hdf5"],
                        help="force the input format instead of detecting it")
    parser.add_argument("--compression", default=None, choices=["gzip", "lz4", "zstd", "none"],
                        help="HDF5 archive compression (default: the archive's default)")
    parser.add_argument("--chunk_regions", type=int, default=1 << 18, metavar="N",
                        help="regions per streamed chunk (memory/speed trade-off)")
    parser.add_argument("--engine", choices=["auto", "cython", "python"], default="auto",
                        help="parser engine (default auto = cython when built)")


def _format_of(path, forced):
    if forced:
        return forced
    ext = os.path.splitext(path)[1].lower()
    return EXTENSIONS.get(ext)


def _tmp_name(path):
    d = os.path.dirname(os.path.abspath(path))
    import tempfile
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    os.close(fd)
    return tmp


#: non-archive inputs larger than this go through a temporary archive when converted to
#: a damo format, so that memory stays bounded whatever the input size
STREAM_VIA_ARCHIVE_BYTES = 32 << 20


def convert_file(src, dst, fmt, *, input_type=None, compression=None,
                 chunk_regions=1 << 18, engine="auto"):
    """Convert one file; the output appears only when complete."""
    from damo_pipe.formats import detect_format, read_records, write_records
    if fmt == "hdf5":
        return _to_archive(src, dst, input_type, compression, chunk_regions, engine)
    in_fmt = input_type or detect_format(src)
    if in_fmt == "hdf5":
        return _archive_to_damo(src, dst, fmt, chunk_regions)
    if in_fmt == "perf_data" or os.path.getsize(src) > STREAM_VIA_ARCHIVE_BYTES:
        tmp = _tmp_name(dst)
        try:
            _to_archive(src, tmp, input_type, "none", chunk_regions, engine)
            return _archive_to_damo(tmp, dst, fmt, chunk_regions)
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    records = read_records(src, input_type=input_type, engine=engine)
    write_records(records, dst, fmt)
    return len(records)


def _archive_to_damo(src, dst, fmt, chunk_regions=1 << 18):
    """Stream an archive record by record, chunk by chunk, into a damo format."""
    from damo_pipe.archive import ArchiveReader
    from damo_pipe.formats import write_records
    from damo_pipe.formats.writers import ChunkedRecord
    with ArchiveReader(src) as reader:
        metas = reader.records
        items = (ChunkedRecord(metas[i], reader.iter_chunks(i, regions_per_chunk=chunk_regions))
                 for i in range(len(reader)))
        write_records(items, dst, fmt)
        return len(reader)


def _to_archive(src, dst, input_type, compression, chunk_regions, engine):
    from damo_pipe.archive import ArchiveWriter
    from damo_pipe.formats import iter_record_chunks
    stream = iter_record_chunks(src, input_type=input_type, chunk_regions=chunk_regions,
                                engine=engine)
    added = []   # metadata written per archive record
    from damo_pipe._atomic import atomic_output
    with atomic_output(dst) as tmp:
        prov = {"source_format": stream.format, "source_path": os.path.abspath(src)}
        with ArchiveWriter(tmp, compression=compression, provenance=prov) as w:
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
        _patch_archive(tmp, stream, added)
    return len(added)


def _patch_archive(path, stream, added):
    """Fix what is known only at the end of the input: the truncated deduced first start
    in ``start_ns[0]`` and metadata written after the snapshots (json ``data_source``)."""
    fixes_start = {ri: fs for ri, fs in stream.first_starts.items() if fs is not None}
    fixes_meta = [ri for ri, meta in enumerate(stream.records)
                  if ri < len(added) and _meta_key(meta) != _meta_key(added[ri])]
    if not fixes_start and not fixes_meta:
        return
    import h5py
    from damo_pipe.archive import layout
    from damo_pipe.archive._blosc_direct import register_blosc_filter
    from damo_pipe.archive.writer import write_record_meta
    register_blosc_filter()
    with h5py.File(path, "r+") as f:
        g = f[layout.RECORDS_GROUP]
        for ri, fs in fixes_start.items():
            d = g[layout.RECORD_NAME_FORMAT % ri]["snapshots"]["start_ns"]
            if d.shape[0]:
                d[0] = int(fs)
        for ri in fixes_meta:
            write_record_meta(g[layout.RECORD_NAME_FORMAT % ri], stream.records[ri])


def _meta_key(meta):
    return (meta.target_id, meta.kdamond_idx, meta.context_idx, meta.scheme_idx,
            repr(meta.intervals), repr(meta.scheme_filters), meta.data_source, meta.ops, meta.pid)


def _expand_inputs(inputs):
    """[(source path, relative output stem)] for files and directories."""
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


def run(args) -> int:
    from damo_pipe.errors import UsageError
    if len(args.paths) < 2:
        raise UsageError("convert needs at least one INPUT and an OUTPUT")
    inputs, output = args.paths[:-1], args.paths[-1]
    for p in inputs:
        if not os.path.exists(p):
            raise UsageError("input not found: %s" % p)
    many = len(inputs) > 1 or any(os.path.isdir(p) for p in inputs) or os.path.isdir(output)
    verbose = getattr(args, "verbose", 0)
    kw = dict(input_type=args.input_type, compression=args.compression,
              chunk_regions=args.chunk_regions, engine=args.engine)
    if not many:
        fmt = _format_of(output, args.format)
        if fmt is None:
            raise UsageError("cannot tell the output format from %r; use --format" % output)
        n = convert_file(inputs[0], output, fmt, **kw)
        log.info("%s -> %s (%s, %d records)", inputs[0], output, fmt, n)
        return 0
    fmt = args.format or "hdf5"
    jobs = _expand_inputs(inputs)
    if os.path.exists(output) and not os.path.isdir(output):
        raise UsageError("%s exists and is not a directory (several inputs convert into "
                         "a directory)" % output)
    os.makedirs(output, exist_ok=True)
    show = sys.stderr.isatty() or verbose > 0
    bar = None
    if show:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), unit="file", file=sys.stderr, desc="convert")
    try:
        for src, rel in jobs:
            stem = os.path.splitext(rel)[0] if os.path.splitext(rel)[1].lower() in EXTENSIONS else rel
            dst = os.path.join(output, stem + DEFAULT_EXT[fmt])
            os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
            n = convert_file(src, dst, fmt, **kw)
            log.info("%s -> %s (%s, %d records)", src, dst, fmt, n)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return 0

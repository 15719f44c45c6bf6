"""Readers and writers of every damon.data flavour, plus the damo-pipe HDF5 archive.

``read_records(path)`` detects the format from the content (never from the file name or
the ``file`` command) and returns a list of :class:`damo_pipe.model.Record`.
"""
import os

from damo_pipe.errors import RecordFormatError

#: names accepted by ``--input_type`` / ``input_type=``
INPUT_TYPES = ("json", "json_compressed", "perf_script", "perf_data", "record", "hdf5")

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
BINARY_MAGIC = b"damon_recfmt_ver"
PERF_MAGIC = b"PERFILE2"


def detect_format(path):
    """Name of the format of ``path`` judged from its first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise RecordFormatError("cannot read (%s)" % (e.strerror or e), path=path)
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if head.startswith(BINARY_MAGIC):
        return "record"
    if head.startswith(PERF_MAGIC):
        return "perf_data"
    if len(head) >= 2 and head[0] == 0x78 and ((head[0] << 8) | head[1]) % 31 == 0:
        return "json_compressed"
    stripped = head.lstrip()
    if stripped[:1] in (b"[", b"{"):
        return "json"
    if not head:
        raise RecordFormatError("empty file", path=path, offset=0)
    return "perf_script"


def read_records(path, input_type=None):
    """Read every record of ``path`` (format detected unless ``input_type`` is given)."""
    path = os.fspath(path)
    fmt = input_type or detect_format(path)
    if fmt == "json":
        from damo_pipe.formats.damo_json import read_json
        return read_json(path)
    if fmt == "json_compressed":
        from damo_pipe.formats.damo_json import read_json_compressed
        return read_json_compressed(path)
    if fmt == "hdf5":
        from damo_pipe.archive import read_archive_records
        return read_archive_records(path)
    raise RecordFormatError("reading %s files is not implemented yet" % fmt, path=path)

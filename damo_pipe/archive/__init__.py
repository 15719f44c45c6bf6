"""The damo-pipe HDF5 archive, format version 1 (docs/format.md).

The writer is imported on first use: commands that only read archives start faster.
"""
from damo_pipe.archive.layout import DEFAULT_COMPRESSION, FORMAT_NAME, FORMAT_VERSION
from damo_pipe.archive.reader import ArchiveReader, read_archive_records

__all__ = ["ArchiveReader", "ArchiveWriter", "read_archive_records", "write_records",
           "FORMAT_NAME", "FORMAT_VERSION", "DEFAULT_COMPRESSION"]


def __getattr__(name):
    if name in ("ArchiveWriter", "write_records"):
        from damo_pipe.archive import writer
        return getattr(writer, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))

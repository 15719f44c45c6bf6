"""The damo-pipe HDF5 archive, format version 1 (docs/format.md)."""
from damo_pipe.archive.layout import DEFAULT_COMPRESSION, FORMAT_NAME, FORMAT_VERSION
from damo_pipe.archive.reader import ArchiveReader, read_archive_records
from damo_pipe.archive.writer import ArchiveWriter, write_records

__all__ = ["ArchiveReader", "ArchiveWriter", "read_archive_records", "write_records",
           "FORMAT_NAME", "FORMAT_VERSION", "DEFAULT_COMPRESSION"]

"""The damo-pipe HDF5 archive, format version 1 (docs/format.md).

The writer is imported on first use: commands that only read archives start faster.
"""
from damo_pipe.archive.layout import DEFAULT_COMPRESSION, FORMAT_NAME, FORMAT_VERSION
from damo_pipe.archive.reader import ArchiveReader, read_archive_records

__all__ = ["ArchiveReader", "ArchiveWriter", "read_archive_records", "write_records",
           "FORMAT_NAME", "FORMAT_VERSION", "DEFAULT_COMPRESSION"]


def preload():
    """Import and set up now what the first archive read of a process would: h5py and
    the Blosc filter. For a resident server (``damo-analyze serve``) whose forked
    commands then start warm; opens no file and starts no thread."""
    import h5py  # noqa: F401
    from damo_pipe.archive import _blosc_direct
    _blosc_direct.register_blosc_filter()
    try:
        _blosc_direct._blosc_library()      # dlopen now: the children find it loaded
    except OSError:
        pass


def __getattr__(name):
    if name in ("ArchiveWriter", "write_records"):
        from damo_pipe.archive import writer
        return getattr(writer, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))

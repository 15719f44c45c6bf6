"""An archive file as HDF5 reads it, with the global heap checked on its way in.

libhdf5 (2.0.0 at least) parses a global heap collection (``GCOL``: where variable-length
strings live) in a loop that never ends when an object header in it is damaged (a free
object of size 0, or a size that wraps the cursor back).  A damaged archive would then
hang ``info`` forever instead of failing.  Opening through h5py's file-object driver
lets every block HDF5 reads pass through :class:`GuardedFile`, which walks each
collection it sees exactly as libhdf5 will (H5HG__cache_heap_deserialize) and fails
the read, naming the byte offset, before libhdf5 can loop.  The cost is one Python
call per read (about 10 % on plain column reads; the archive reader's chunk-direct
reads are larger and pay less).
"""
from __future__ import annotations

import io
import os
import struct

SIGNATURE = b"GCOL"
#: signature, version, 3 reserved bytes, collection size (8-byte lengths)
HEADER_SIZE = 4 + 1 + 3 + 8
#: heap object index (2), reference count (2), reserved (4), object size (8)
OBJECT_HEADER_SIZE = 16


def _align8(n):
    return (n + 7) & ~7


def check_global_heap(block, file_offset):
    """None when the collection at the start of ``block`` (the bytes libhdf5 read) parses
    to an end, else why not (with the byte offset in the file)."""
    if len(block) < HEADER_SIZE:
        return None                      # libhdf5 reads the rest before parsing
    size, = struct.unpack_from("<Q", block, 8)
    if size < HEADER_SIZE:
        return ("global heap collection at byte %d: size %d is smaller than its header"
                % (file_offset, size))
    if size > len(block):
        return None                      # the first read of a bigger collection
    p = HEADER_SIZE
    while p < size:
        if p + OBJECT_HEADER_SIZE > size:
            return None                  # the tail is free space
        idx, = struct.unpack_from("<H", block, p)
        obj_size, = struct.unpack_from("<Q", block, p + 8)
        need = OBJECT_HEADER_SIZE + _align8(obj_size) if idx > 0 else obj_size
        if need <= 0 or need > size - p:
            if need <= 0:
                return ("global heap collection at byte %d: object at byte %d has size 0 "
                        "(damaged)" % (file_offset, file_offset + p))
            return ("global heap collection at byte %d: object at byte %d of %d bytes runs "
                    "past the collection's %d bytes (damaged)"
                    % (file_offset, file_offset + p, obj_size, size))
        p += need
    return None


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: superblock (version >= 2) file consistency flags: opened for writing, for SWMR writing
WRITE_ACCESS_FLAGS = 0x01 | 0x04


def open_for_write_by_a_writer(path):
    """True when the file's superblock (at byte 0, version 2 or later) says a writer
    holds it open (or was killed holding it): such a file must be opened by its path,
    where libhdf5 checks the flag and a SWMR open can follow the writer; through the
    file-object driver it would open as if closed and never see new data."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return (len(head) == 12 and head[:8] == HDF5_SIGNATURE and head[8] >= 2
            and bool(head[11] & WRITE_ACCESS_FLAGS))


class GuardedFile(io.FileIO):
    """A read-only file for ``h5py.File(fileobj)`` whose reads of global heap
    collections are checked (see the module's docstring); a damaged one fails the
    read with OSError, which h5py reports as an error of the read in progress."""

    def __init__(self, path):
        super().__init__(path, "rb")

    def readinto(self, buffer):
        start = self.tell()
        n = super().readinto(buffer)
        if n and n >= HEADER_SIZE and bytes(memoryview(buffer)[:4]) == SIGNATURE:
            block = memoryview(buffer)[:n]
            size, = struct.unpack_from("<Q", block, 8)
            if size > n:
                # libhdf5 reads a collection's first 4 KiB, then only the rest (its
                # metadata accumulator keeps the first part): check it whole now
                block = self._whole_collection(start, size)
            why = check_global_heap(block, start)
            if why is not None:
                raise OSError(why)
        return n

    def _whole_collection(self, start, size):
        file_size = os.fstat(self.fileno()).st_size
        if size > file_size - start:
            raise OSError("global heap collection at byte %d: size %d runs past the end "
                          "of the file (%d bytes; damaged)" % (start, size, file_size))
        return os.pread(self.fileno(), size, start)


def open_h5_for_reading(path):
    """``h5py.File`` of the archive at ``path`` for reading: a closed file through
    :class:`GuardedFile`; a file a writer holds open (its superblock says so, in this
    process or a SWMR writer's) by its path, normally or else in SWMR mode.

    OSError from h5py when it cannot be opened at all."""
    import weakref

    import h5py
    if open_for_write_by_a_writer(path):
        try:
            return h5py.File(path, "r", locking=False)
        except OSError:
            return h5py.File(path, "r", swmr=True, locking=False)
    raw = GuardedFile(path)
    try:
        f = h5py.File(raw, "r", locking=False)
    except OSError as e:
        raw.close()
        if "already open for write" not in str(e):
            raise
    else:
        weakref.finalize(f, raw.close)
        return f
    try:
        return h5py.File(path, "r", locking=False)
    except OSError:
        return h5py.File(path, "r", swmr=True, locking=False)

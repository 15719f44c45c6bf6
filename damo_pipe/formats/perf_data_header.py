"""A check of a perf.data file's header before ``perf script`` reads it.

perf trusts the section table of its header: a damaged file whose sections point past
its end can make ``perf script`` spin forever instead of failing.  This reads the
fixed header (tools/perf/Documentation/perf.data-file-format.txt) and the feature
section table after the data, and refuses a file whose sections do not lie inside it,
naming the byte offset of the field.  Pipe-mode files (a 16-byte header, sections
inline) have no table to check.
"""
from __future__ import annotations

import os
import struct

from damo_pipe.errors import RecordFormatError

MAGIC = b"PERFILE2"
#: magic, size, attr_size, then the attrs, data and event_types sections
#: (offset, size each) and the 256-bit feature bitmap
HEADER_SIZE = 8 + 8 + 8 + 3 * 16 + 32
PIPE_HEADER_SIZE = 16
_SECTIONS = ("attrs", "data", "event_types")


def check_perf_data_header(path):
    """RecordFormatError (file and byte offset) unless the header of perf.data ``path``
    is whole and its sections (and feature sections) lie inside the file."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(HEADER_SIZE)
            if len(head) < PIPE_HEADER_SIZE:
                raise RecordFormatError("perf.data header cut short (%d bytes)" % len(head),
                                        path=path, offset=len(head))
            if head[:8] == MAGIC:
                order = "<"
            elif head[:8] == MAGIC[::-1]:
                order = ">"
            else:
                raise RecordFormatError("not a perf.data file (magic %r)" % head[:8],
                                        path=path, offset=0)
            header_size, = struct.unpack_from(order + "Q", head, 8)
            if header_size == PIPE_HEADER_SIZE:
                return
            if header_size != HEADER_SIZE or len(head) < HEADER_SIZE:
                raise RecordFormatError("perf.data header size %d (expected %d, %d bytes "
                                        "present)" % (header_size, HEADER_SIZE, len(head)),
                                        path=path, offset=8)
            sections = struct.unpack_from(order + "6Q", head, 24)
            for i, name in enumerate(_SECTIONS):
                _check_section(path, size, name, sections[2 * i], sections[2 * i + 1],
                               24 + 16 * i)
            data_end = sections[2] + sections[3]
            bitmap = int.from_bytes(head[72:104], "little" if order == "<" else "big")
            nr_features = bin(bitmap).count("1")
            table = data_end
            if table + 16 * nr_features > size:
                raise RecordFormatError(
                    "perf.data feature table of %d sections at byte %d runs past the end "
                    "of the file (%d bytes): truncated or damaged" % (nr_features, table, size),
                    path=path, offset=table)
            f.seek(table)
            raw = f.read(16 * nr_features)
    except OSError as e:
        raise RecordFormatError("cannot read (%s)" % (e.strerror or e), path=path) from None
    for k in range(nr_features):
        off, sz = struct.unpack_from(order + "QQ", raw, 16 * k)
        _check_section(path, size, "feature %d" % k, off, sz, table + 16 * k)


def _check_section(path, file_size, name, offset, size, field_offset):
    if offset > file_size or size > file_size - offset:
        raise RecordFormatError(
            "perf.data %s section (bytes %d + %d) lies outside the file (%d bytes): "
            "truncated or damaged" % (name, offset, size, file_size),
            path=path, offset=field_offset)

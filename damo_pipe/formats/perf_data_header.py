"""A check of a perf.data file's header before ``perf script`` reads it.

perf trusts the section table of its header: a damaged file whose sections point past
its end can make ``perf script`` spin forever instead of failing.  This reads the
fixed header (tools/perf/Documentation/perf.data-file-format.txt) and the feature
section table after the data, and refuses a file whose sections do not lie inside it,
naming the byte offset of the field, and walks the tracepoint format files (the
HEADER_TRACING_DATA feature) as perf will: perf loops forever on some damaged ones.
Pipe-mode files (a 16-byte header, sections
inline) have no table to check.
"""
from __future__ import annotations

import os
import re
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
    features = [i for i in range(256) if bitmap >> i & 1]
    for k, feature in enumerate(features):
        off, sz = struct.unpack_from(order + "QQ", raw, 16 * k)
        _check_section(path, size, "feature %d" % k, off, sz, table + 16 * k)
        if feature == HEADER_TRACING_DATA:
            with open(path, "rb") as f:
                f.seek(off)
                check_tracing_data(f.read(sz), off, path)


#: the feature bit of the tracepoint format files (perf's header.h)
HEADER_TRACING_DATA = 1
TRACING_MAGIC = b"\x17\x08\x44tracing"
_NOT_FORMAT_TEXT = re.compile(rb"[^\t\n\x20-\x7e]")


class _Cursor:
    """Bounds-checked reads over one section; errors name the file's byte offset."""

    def __init__(self, data, base, path):
        self.data, self.base, self.path, self.pos = data, base, path, 0
        self.order = "<"

    def fail(self, what):
        raise RecordFormatError("perf.data tracing data: %s (truncated or damaged)" % what,
                                path=self.path, offset=self.base + self.pos)

    def take(self, n, what):
        if n > len(self.data) - self.pos:
            self.fail("%s of %d bytes runs past the section's end" % (what, n))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def uint(self, n, what):
        return int.from_bytes(self.take(n, what), "little" if self.order == "<" else "big")

    def block(self, size_bytes, what, text=False):
        """A block after its size field (``size_bytes`` wide); a size past the section's
        end is named at the size field."""
        at = self.pos
        n = self.uint(size_bytes, what + " size")
        if n > len(self.data) - self.pos:
            self.pos = at
            self.fail("%s of %d bytes runs past the section's end" % (what, n))
        if text:
            self.text(n, what)
        else:
            self.pos += n

    def text(self, n, what):
        """A format file: printable ASCII, tabs and newlines only (the kernel writes
        nothing else; libtraceevent can spin for minutes on a damaged one)."""
        start = self.pos
        body = self.take(n, what)
        bad = _NOT_FORMAT_TEXT.search(body)
        if bad is not None:
            self.pos = start + bad.start()
            self.fail("byte 0x%02x in the text of %s" % (body[bad.start()], what))
        at = _unclosed_quote(body)
        if at is not None:
            self.pos = start + at
            self.fail("a quote not closed on its line in the text of %s" % what)

    def string(self, what, limit=4096):
        end = self.data.find(b"\0", self.pos, self.pos + limit)
        if end < 0:
            self.fail("%s is not a terminated string" % what)
        return self.take(end + 1 - self.pos, what)[:-1]


def _unclosed_quote(text):
    """Offset of a string or character literal of ``text`` that its line does not
    close, else None.  libtraceevent tokenizes a format across lines: one stray quote
    makes it gather the rest of the file into one token, quadratically (minutes)."""
    line_start = 0
    for line in text.split(b"\n"):
        quote = None
        i = 0
        while i < len(line):
            c = line[i]
            if quote is None:
                if c in b"\"'":
                    quote, opened = c, i
            elif c == 0x5C:          # backslash: the next character is escaped
                i += 1
            elif c == quote:
                quote = None
            i += 1
        if quote is not None:
            return line_start + opened
        line_start += len(line) + 1
    return None


def check_tracing_data(data, base, path):
    """RecordFormatError unless the HEADER_TRACING_DATA section ``data`` (at file offset
    ``base``) walks to its end the way perf reads it (util/trace-event-read.c): every
    size and count inside the section.  perf itself loops forever on some damaged
    ones."""
    c = _Cursor(data, base, path)
    if c.take(len(TRACING_MAGIC), "magic") != TRACING_MAGIC:
        c.pos = 0
        c.fail("bad magic")
    version = c.string("version", 16)
    big_endian = c.uint(1, "endianness")
    if big_endian > 1:
        c.pos -= 1
        c.fail("endianness byte %d" % big_endian)
    c.order = ">" if big_endian else "<"
    c.uint(1, "long size")
    c.uint(4, "page size")
    for name in (b"header_page", b"header_event"):
        if c.take(len(name) + 1, "name") != name + b"\0":
            c.pos -= len(name) + 1
            c.fail("%s expected" % name.decode())
        c.block(8, name.decode(), text=True)
    for _ in range(c.uint(4, "number of ftrace formats")):
        c.block(8, "an ftrace format", text=True)
    for _ in range(c.uint(4, "number of event systems")):
        c.string("system name")
        for _ in range(c.uint(4, "number of event formats")):
            c.block(8, "an event format", text=True)
    c.block(4, "kallsyms")
    c.block(4, "printk formats")
    try:
        v = float(version.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        c.fail("version %r" % version)
    if v >= 0.6:
        c.block(8, "saved cmdlines")


def _check_section(path, file_size, name, offset, size, field_offset):
    if offset > file_size or size > file_size - offset:
        raise RecordFormatError(
            "perf.data %s section (bytes %d + %d) lies outside the file (%d bytes): "
            "truncated or damaged" % (name, offset, size, file_size),
            path=path, offset=field_offset)

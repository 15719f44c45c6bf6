"""Streaming fast engine for damo's ``json`` / ``json_compressed`` record files.

The file is never held whole: ``json_compressed`` is inflated incrementally
(``zlib.decompressobj``, fixed-size input chunks, bounded output per step) in a helper
thread (zlib releases the GIL) while this thread scans; the scanner keeps a sliding
window of the text.  The document structure (records, snapshots, their small values)
is walked here; the hot part — each snapshot's ``regions`` array — is parsed by
:func:`damo_pipe.formats._json_kernels.json_regions_scan` (no Python object per
region).  A region the fast path does not handle (unit strings such as ``"1.500 KiB"``,
non-empty ``probe_hits``, escapes, floats, unknown keys...) is decoded on its own with ``json``
and converted by the reference code (damo_json.py), so memory stays bounded and the
result equals the reference engine's.  Malformed input raises RecordFormatError with
the byte offset in the (decompressed) text.
"""
from __future__ import annotations

import dataclasses
import json
import re
import zlib

import numpy as np

from damo_pipe._engine import select_engine
from damo_pipe._prefetch import prefetched
from damo_pipe.errors import RecordFormatError
from damo_pipe.formats import damo_json
from damo_pipe.formats.numbers import text_to_bytes, text_to_us
from damo_pipe.model import DAMOS_STAT_FIELDS, RegionColumns, SnapshotColumns

IN_CHUNK = 1 << 18          # compressed bytes per inflate step
OUT_MAX = 4 << 20           # max inflated bytes per step
MAX_VALUE = 64 << 20        # largest non-region JSON value accepted (bytes)
REGION_CAP = 1 << 16        # scratch rows per scanner call

_WS = b" \t\r\n"
_WS_RE = re.compile(rb"[ \t\r\n]*")
# a JSON integer not followed by a fraction/exponent (then the json module decides)
_INT_RE = re.compile(rb"-?(?:0|[1-9][0-9]*)(?![0-9.eE])")
_CTRL_RE = re.compile(rb"[\x00-\x1f]")
_DECODER = json.JSONDecoder()


KERNELS = "damo_pipe.formats._json_kernels"


def available():
    """True when the compiled region scanner this engine needs is built."""
    return select_engine("auto", KERNELS) is not None


# ---------------------------------------------------------------- byte sources

def _file_chunks(path, size=OUT_MAX):
    with open(path, "rb") as f:
        while True:
            data = f.read(size)
            if not data:
                return
            yield data


def _inflate_chunks(path):
    d = zlib.decompressobj()
    at = 0                                  # compressed offset of ``buf``
    with open(path, "rb") as f:
        while not d.eof:
            raw = f.read(IN_CHUNK)
            if not raw:
                break
            buf = raw
            while buf and not d.eof:
                before = d.copy()
                try:
                    out = d.decompress(buf, OUT_MAX)
                except zlib.error as e:
                    raise damo_json.zlib_error(e, before, buf, at, path) from None
                if out:
                    yield out
                at += len(buf) - len(d.unconsumed_tail)
                buf = d.unconsumed_tail
        if d.eof and (d.unused_data or f.read(1)):
            raise damo_json.trailing_data_error(path, at - len(d.unused_data))
    if not d.eof:
        try:
            out = d.flush()
        except zlib.error as e:
            raise RecordFormatError("corrupt zlib stream (%s)" % e, path=path, offset=at)
        if out:
            yield out
        raise RecordFormatError("truncated zlib stream (incomplete or truncated stream)",
                                path=path, offset=at)


def _threaded(gen, depth=4):
    """Run a chunk generator in a helper thread (bounded queue); re-raise its errors."""
    return prefetched(gen, depth)


# ---------------------------------------------------------------- window

class _Window:
    """A sliding byte window over a chunk iterator."""

    def __init__(self, chunks, path):
        self.chunks = iter(chunks)
        self.path = path
        self.data = b""
        self.pos = 0
        self.base = 0          # absolute offset of data[0]
        self.eof = False

    def more(self):
        """Append the next chunk (dropping consumed bytes); False at the end."""
        if self.eof:
            return False
        try:
            chunk = next(self.chunks)
        except StopIteration:
            self.eof = True
            return False
        if self.pos:
            self.base += self.pos
            # one copy (a slice and then a concatenation would be two)
            self.data = b"".join((memoryview(self.data)[self.pos:], chunk))
            self.pos = 0
        else:
            self.data = self.data + chunk
        return True

    def err(self, msg, at=None):
        # the offset in the (decompressed) text; line numbers would need a newline count
        # over everything inflated, which costs as much as the scan itself
        at = self.pos if at is None else at
        return RecordFormatError(msg, path=self.path, offset=self.base + at)

    def peek(self):
        """Next non-whitespace byte (as int) or None at the end; pos moves onto it."""
        while True:
            d = self.data
            p = _WS_RE.match(d, self.pos).end()
            self.pos = p
            if p < len(d):
                return d[p]
            if not self.more():
                return None

    def expect(self, ch):
        c = self.peek()
        if c != ord(ch):
            raise self.err("invalid JSON: expected %r" % ch if c is not None
                           else "invalid JSON: unexpected end of data (expected %r)" % ch)
        self.pos += 1

    def value(self):
        """Decode one JSON value at pos (must fit in MAX_VALUE bytes)."""
        c = self.peek()
        d, p = self.data, self.pos
        # fast paths for the small values of damo's layout
        if c == 0x22:
            q = d.find(b'"', p + 1)
            if q > 0:
                raw = d[p + 1:q]
                if b"\\" not in raw and raw.isascii() and not _CTRL_RE.search(raw):
                    self.pos = q + 1
                    return raw.decode("ascii")
        elif c == 0x6E and d[p:p + 4] == b"null":
            self.pos = p + 4
            return None
        elif c is not None and (0x30 <= c <= 0x39 or c == 0x2D):
            m = _INT_RE.match(d, p)
            if m is not None and m.end() < len(d):
                self.pos = m.end()
                return int(m.group())
        dec = _DECODER
        span = 256
        while True:
            d, p = self.data, self.pos
            avail = len(d) - p
            piece = d[p:p + span]
            text = piece.decode("utf-8", "surrogateescape")
            complete_window = span >= avail and self.eof
            try:
                obj, end = dec.raw_decode(text)
            except RecursionError:
                raise damo_json.nesting_error(piece, self.path, self.base + p) from None
            except json.JSONDecodeError as e:
                if not complete_window and span < MAX_VALUE:
                    if span < avail:
                        span *= 4
                    elif not self.more():
                        span *= 4
                    continue
                if span >= MAX_VALUE:
                    raise self.err("JSON value larger than %d bytes" % MAX_VALUE)
                raise self.err("invalid JSON: %s" % e.msg,
                               at=p + len(text[:e.pos].encode("utf-8", "surrogateescape")))
            if end == len(text) and not complete_window:
                # the value may continue (a number cut at the window end)
                if span < avail:
                    span *= 4
                    continue
                if self.more():
                    continue
            if any(0xDC80 <= ord(ch) <= 0xDCFF for ch in text[:end]):
                raise self.err("not UTF-8 JSON")
            self.pos = p + len(text[:end].encode("utf-8", "surrogateescape"))
            return obj

    def closes(self, close, where):
        """After a member: True if ``close`` (b"]" or b"}") ends the container, False
        after a ``,``; anything else is an error naming ``where``."""
        c = self.peek()
        self.pos += 1
        if c == 0x2C:
            return False
        if c == close[0]:
            return True
        raise self.err("invalid JSON: expected ',' or '%s' %s" % (close.decode(), where),
                       at=self.pos - 1)

    def key(self):
        c = self.peek()
        if c != 0x22:
            raise self.err("invalid JSON: expected a key string")
        k = self.value()
        self.expect(":")
        return k


# ---------------------------------------------------------------- parser

class _Acc:
    """Consecutive snapshots of one record, regions written in place by the scanner
    (growing arrays; a chunk takes them over without copying)."""

    def __init__(self, meta, cap=None):
        self.meta = meta
        self.u = self.pc = None   # stated age.usec / nr_accesses.percent, NaN = null
        self.cap0 = cap or REGION_CAP
        self._alloc(self.cap0)
        self.count = 0
        self.start_ns, self.end_ns, self.nr, self.tb = [], [], [], []
        self.siv, self.stats = [], []
        self.hits = {}

    def _alloc(self, cap):
        self.cap = cap
        self.u = None if self.u is None else np.full(cap, np.nan)
        self.pc = None if self.pc is None else np.full(cap, np.nan)
        self.s = np.empty(cap, np.uint64)
        self.e = np.empty(cap, np.uint64)
        self.a = np.empty(cap, np.int64)
        self.g = np.empty(cap, np.int64)
        self.p = np.empty(cap, np.uint64)

    def grow(self, need=1):
        if self.count + need <= self.cap:
            return
        n = self.count
        old = (self.s, self.e, self.a, self.g, self.p, self.u, self.pc)
        self._alloc(max(self.cap * 2, n + need))
        for dst, src in zip((self.s, self.e, self.a, self.g, self.p, self.u, self.pc), old):
            if dst is not None:
                dst[:n] = src[:n]

    def add_rows(self, regs: RegionColumns):
        k = len(regs)
        self.grow(k)
        n = self.count
        self.s[n:n + k] = regs.start
        self.e[n:n + k] = regs.end
        self.a[n:n + k] = regs.nr_accesses
        self.g[n:n + k] = regs.age
        self.p[n:n + k] = regs.sz_filter_passed
        if regs.age_usec is not None:
            if self.u is None:
                self.u = np.full(self.cap, np.nan)
            self.u[n:n + k] = regs.age_usec
        if regs.nr_accesses_percent is not None:
            if self.pc is None:
                self.pc = np.full(self.cap, np.nan)
            self.pc[n:n + k] = regs.nr_accesses_percent
        if regs.probe_offset is not None:
            for i in range(k):
                h = regs.probe_hits_of(i)
                if h:
                    self.hits[n + i] = h
        self.count = n + k

    @property
    def nr_snapshots(self):
        return len(self.end_ns)

    def chunk(self, meta):
        """Record of the accumulated snapshots (the arrays are handed over)."""
        n = self.count
        ns = len(self.end_ns)
        nr = np.array(self.nr, np.int64)
        offs = np.zeros(ns, np.int64)
        if ns > 1:
            np.cumsum(nr[:-1], out=offs[1:])
        po = ph = None
        if self.hits:
            counts = np.zeros(n, np.int64)
            flat = []
            for row in sorted(self.hits):
                counts[row] = len(self.hits[row])
                flat.extend(self.hits[row])
            po = np.zeros(n + 1, np.int64)
            np.cumsum(counts, out=po[1:])
            ph = np.array(flat, np.int64)
        regions = RegionColumns(self.s[:n], self.e[:n], self.a[:n], self.g[:n], self.p[:n], po, ph,
                                age_usec=None if self.u is None else self.u[:n],
                                nr_accesses_percent=None if self.pc is None else self.pc[:n])
        tb = np.zeros(ns, np.uint64)
        missing = np.array([t is None for t in self.tb], bool)
        if (~missing).any():
            tb[~missing] = np.array([t for t in self.tb if t is not None], np.uint64)
        if missing.any() and n:
            sizes = regions.end - regions.start
            sel = missing & (nr > 0)
            if sel.any():
                sums = np.add.reduceat(sizes, offs[nr > 0])
                tb_nz = np.zeros(ns, np.uint64)
                tb_nz[nr > 0] = sums
                tb[sel] = tb_nz[sel]
        cols = dict(start_ns=np.array(self.start_ns, np.int64), end_ns=np.array(self.end_ns, np.int64),
                    region_offset=offs, nr_regions=nr, total_bytes=tb,
                    sample_interval_us=np.array([np.nan if v is None else v for v in self.siv],
                                                np.float64),
                    has_damos_stats=np.array([st is not None for st in self.stats], bool))
        for f in DAMOS_STAT_FIELDS:
            cols["damos_" + f] = np.array([0 if st is None else st[f] for st in self.stats],
                                          np.uint64)
        rec = dataclasses.replace(meta, snapshots=SnapshotColumns(**cols), regions=regions,
                                  first_start_ns=None)
        # start afresh; the chunk owns the old arrays
        self.u = self.pc = None
        self._alloc(self.cap0)
        self.count = 0
        self.start_ns, self.end_ns, self.nr, self.tb = [], [], [], []
        self.siv, self.stats = [], []
        self.hits = {}
        return rec


def _parse_regions(w: _Window, acc: _Acc, where):
    from damo_pipe.formats._json_kernels import JsonScan, json_regions_scan
    w.expect("[")
    mode = 1
    while True:
        st, pos, cnt, mode = json_regions_scan(w.data, w.pos, acc.count, acc.s, acc.e,
                                               acc.a, acc.g, acc.p, mode)
        w.pos = pos
        acc.count = cnt
        if st == JsonScan.J_DONE:
            return
        if st == JsonScan.J_FULL:
            acc.grow(acc.cap)
            continue
        if st == JsonScan.J_MORE:
            if not w.more():
                raise w.err("invalid JSON: unexpected end of data in regions of %s" % where)
            continue
        # unusual region (or malformed): reference path for this one value
        c = w.peek()
        if c != 0x7B:
            raise w.err("invalid JSON: expected a region object in %s" % where)
        at = w.base + w.pos
        obj = w.value()
        try:
            acc.add_rows(damo_json.regions_from_dicts([obj], where))
        except RecordFormatError as e:
            raise e.located(path=w.path, offset=at)
        mode = 2


def _parse_snapshot(w, acc, where):
    w.peek()
    at = w.base + w.pos          # errors of the snapshot's values name its start
    w.expect("{")
    vals = {}
    have_regions = False
    lo = acc.count
    if w.peek() == 0x7D:
        w.pos += 1
    else:
        while True:
            k = w.key()
            if k == "regions":
                acc.count = lo  # a repeated key replaces the earlier list
                acc.hits = {r: h for r, h in acc.hits.items() if r < lo}
                for col in (acc.u, acc.pc):
                    if col is not None:
                        col[lo:] = np.nan
                if w.peek() == 0x5B:
                    _parse_regions(w, acc, where)
                    have_regions = True
                else:
                    vals[k] = w.value()
                    have_regions = False
            else:
                vals[k] = w.value()
            if w.closes(b"}", "in " + where):
                break
    try:
        if not have_regions:
            acc.count = lo
            for col in (acc.u, acc.pc):
                if col is not None:
                    col[lo:] = np.nan
            acc.add_rows(damo_json.regions_from_dicts(vals["regions"], where))
        tb = vals.get("total_bytes")
        start_ns = damo_json.int_ns(vals["start_time"])
        end_ns = damo_json.int_ns(vals["end_time"])
        tb = None if tb is None else damo_json.checked_u64(text_to_bytes(tb), "total_bytes")
        siv = (None if vals.get("sample_interval_us") is None
               else float(text_to_us(vals["sample_interval_us"])))
        stats = damo_json.damos_stats_from_dict(vals.get("damos_stats"))
    except RecordFormatError as e:
        raise e.located(path=w.path, offset=at)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise RecordFormatError("%s: bad or missing field (%s: %s)" % (where, type(e).__name__, e),
                                path=w.path, offset=at)
    acc.start_ns.append(start_ns)
    acc.end_ns.append(end_ns)
    acc.nr.append(acc.count - lo)
    acc.tb.append(tb)
    acc.siv.append(siv)
    acc.stats.append(stats)


def _meta_from(d, where, path, offset=None):
    try:
        return damo_json.record_meta_from_dict(d)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise RecordFormatError("%s: bad or missing field (%s: %s)" % (where, type(e).__name__, e),
                                path=path, offset=offset)


def iter_chunks(path, fmt, chunk_regions=1 << 20, records=None):
    """Yield (rec_idx, chunk); ``records`` (a list) receives each record's metadata.

    A record's metadata is final once its object ends: keys written after
    ``snapshots`` (damo writes ``data_source`` there) are not yet known in the chunks
    yielded before; ``records[i]`` holds the final metadata after the iteration.
    """
    if records is None:
        records = []
    src = _inflate_chunks(path) if fmt == "json_compressed" else _file_chunks(path)
    chunks = _threaded(src)
    w = _Window(chunks, path)
    try:
        c = w.peek()
        if c is None:
            raise w.err("invalid JSON: no value")
        if c != 0x5B:
            at = w.base + w.pos
            if c == 0x7B:
                raise RecordFormatError("top-level JSON value is not a list of records",
                                        path=path, offset=at)
            w.value()  # raises for garbage
            raise RecordFormatError("top-level JSON value is not a list of records",
                                    path=path, offset=at)
        w.pos += 1
        ri = 0
        if w.peek() == 0x5D:
            w.pos += 1
        else:
            while True:
                where = "record %d" % ri
                c = w.peek()
                at = w.base + w.pos     # errors of the record's own fields name its start
                if c != 0x7B:
                    obj = w.value()
                    _meta_from(obj, where, path, at)  # raises like the reference
                    raise RecordFormatError("%s: not an object" % where, path=path, offset=at)
                w.pos += 1
                d = {}
                records.append(None)
                acc = None
                have_snapshots = False
                if w.peek() == 0x7D:
                    w.pos += 1
                else:
                    while True:
                        k = w.key()
                        if k == "snapshots" and w.peek() == 0x5B:
                            have_snapshots = True
                            meta = _meta_from({**d, "target_id": d.get("target_id")},
                                              where, path, at)
                            records[ri] = meta
                            # np.empty: untouched capacity costs no memory; the slack
                            # holds the snapshot that crosses chunk_regions (no doubling
                            # and copying of the columns once per chunk)
                            acc = _Acc(meta, max(1, min(1 << 20, chunk_regions)) + REGION_CAP)
                            w.pos += 1
                            si = 0
                            if w.peek() == 0x5D:
                                w.pos += 1
                            else:
                                while True:
                                    _parse_snapshot(w, acc, "%s snapshot %d" % (where, si))
                                    si += 1
                                    if acc.count >= chunk_regions:
                                        yield ri, acc.chunk(meta)
                                    if w.closes(b"]", "in snapshots"):
                                        break
                        else:
                            d[k] = w.value()
                        if w.closes(b"}", "in " + where):
                            break
                if "target_id" not in d and not have_snapshots:
                    raise RecordFormatError("%s: bad or missing field (KeyError: 'target_id')"
                                            % where, path=path, offset=at)
                if not have_snapshots:
                    if "snapshots" in d:
                        # not a list: let the reference conversion raise / handle
                        try:
                            recs = damo_json.records_from_objects([d], path)
                        except RecordFormatError as e:
                            raise e.located(offset=at) from None
                        records[ri] = recs[0].meta()
                        if recs[0].nr_snapshots:
                            yield ri, recs[0]
                    else:
                        raise RecordFormatError("%s: bad or missing field (KeyError: 'snapshots')"
                                                % where, path=path, offset=at)
                else:
                    if "target_id" not in d:
                        raise RecordFormatError("%s: bad or missing field (KeyError: 'target_id')"
                                                % where, path=path, offset=at)
                    final_meta = _meta_from(d, where, path, at)
                    records[ri] = final_meta
                    if acc is not None and acc.nr_snapshots:
                        yield ri, acc.chunk(final_meta)
                ri += 1
                if w.closes(b"]", "between records"):
                    break
        if w.peek() is not None:
            raise w.err("invalid JSON: extra data after the records")
    except UnicodeDecodeError as e:
        raise RecordFormatError("not UTF-8 JSON (%s)" % e.reason, path=path,
                                offset=w.base + w.pos)
    finally:
        chunks.close()


def read(path, fmt):
    """Whole records via the streaming engine."""
    from damo_pipe.model import concat_records
    records = []
    parts = {}
    for ri, ch in iter_chunks(path, fmt, chunk_regions=1 << 62, records=records):
        parts.setdefault(ri, []).append(ch)
    out = []
    for ri, meta in enumerate(records):
        ps = parts.get(ri)
        if not ps:
            out.append(meta)
        else:
            rec = concat_records(ps) if len(ps) > 1 else ps[0]
            out.append(dataclasses.replace(rec, **{f.name: getattr(meta, f.name)
                                                   for f in dataclasses.fields(meta)
                                                   if f.name not in ("snapshots", "regions",
                                                                     "first_start_ns")}))
    return out

"""CPU-profile samples of a perf.data file as numpy columns (``perf script`` parsed).

A CPU profile (``perf record``, damo's ``<record>.profile``) is read once with

    perf script --force --ns -G -F pid,tid,time,ip,sym,dso -i PERF_DATA

whose sample lines look like ``  12748/12748 19573.228053088:  5081ca PyType_GenericAlloc
(/usr/bin/python3.11)``. :class:`ProfileSamples` keeps them as columns (time in ns of
the clock perf recorded with, pid, tid, symbol and DSO as indexes into string lists),
sorted by time, so that the hotspots of any time window need neither perf nor the
perf.data again (the archive stores the table: :mod:`damo_pipe.archive.profile`).

Symbols perf cannot name are ``[unknown]`` (as perf prints them); a sample without a DSO
has DSO ``[unknown]``.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from damo_pipe.errors import RecordFormatError

__all__ = ["ProfileSamples", "read_perf_samples", "parse_perf_script", "PERF_SCRIPT_ARGS",
           "UNKNOWN"]

UNKNOWN = "[unknown]"
#: the ``perf script`` arguments whose output :func:`parse_perf_script` reads
PERF_SCRIPT_ARGS = ("--force", "--ns", "-G", "-F", "pid,tid,time,ip,sym,dso")


@dataclasses.dataclass
class ProfileSamples:
    """Columnar CPU-profile samples, one row per sample, in time order.

    ``time_ns`` int64, ``pid``/``tid`` int32, ``symbol_id`` int32 (index into
    ``symbols``, a list of function names or ``[unknown]``), ``dso_id`` int32 (index into
    ``dsos``, the binaries' paths or ``[unknown]``)."""

    time_ns: np.ndarray
    pid: np.ndarray
    tid: np.ndarray
    symbol_id: np.ndarray
    dso_id: np.ndarray
    symbols: list
    dsos: list

    COLUMNS = ("time_ns", "pid", "tid", "symbol_id", "dso_id")
    DTYPES = {"time_ns": np.int64, "pid": np.int32, "tid": np.int32, "symbol_id": np.int32,
              "dso_id": np.int32}

    def __post_init__(self):
        for c in self.COLUMNS:
            setattr(self, c, np.asarray(getattr(self, c), self.DTYPES[c]))
        if not isinstance(self.symbols, list):   # lists are shared between windows
            self.symbols = [str(s) for s in self.symbols]
        if not isinstance(self.dsos, list):
            self.dsos = [str(s) for s in self.dsos]
        n = len(self.time_ns)
        if any(len(getattr(self, c)) != n for c in self.COLUMNS):
            raise ValueError("ProfileSamples columns differ in length")

    def __len__(self):
        return len(self.time_ns)

    @classmethod
    def empty(cls):
        return cls(*(np.zeros(0, cls.DTYPES[c]) for c in cls.COLUMNS), [], [])

    @classmethod
    def from_rows(cls, rows):
        """From ``(time_ns, pid, tid, symbol, dso)`` tuples (sorted by time here)."""
        b = _Builder()
        for t, pid, tid, sym, dso in rows:
            b.add(t, pid, tid, sym, dso)
        return b.build()

    def check(self):
        """ValueError unless the ids index the string lists and times are sorted."""
        for col, names in (("symbol_id", self.symbols), ("dso_id", self.dsos)):
            ids = getattr(self, col)
            if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= len(names)):
                raise ValueError("%s out of range of its %d names" % (col, len(names)))
        if len(self.time_ns) > 1 and bool(np.any(np.diff(self.time_ns) < 0)):
            raise ValueError("samples are not in time order")
        return self

    def take(self, index):
        """The rows at ``index`` (a slice, mask or index array); same string lists."""
        return ProfileSamples(*(getattr(self, c)[index] for c in self.COLUMNS),
                              self.symbols, self.dsos)

    def window(self, start_ns=None, end_ns=None):
        """The samples with ``start_ns <= time_ns < end_ns`` (None: open end)."""
        lo = 0 if start_ns is None else int(np.searchsorted(self.time_ns, start_ns, "left"))
        hi = len(self) if end_ns is None else int(np.searchsorted(self.time_ns, end_ns, "left"))
        return self.take(slice(lo, max(lo, hi)))

    def shifted(self, offset_ns):
        """The same samples with ``offset_ns`` added to every time (another clock)."""
        out = self.take(slice(None))
        out.time_ns = self.time_ns + np.int64(offset_ns)
        return out

    def sorted_by_time(self):
        if len(self) < 2 or not bool(np.any(np.diff(self.time_ns) < 0)):
            return self
        return self.take(np.argsort(self.time_ns, kind="stable"))

    def time_span(self):
        """(first, last) sample time, or None when empty."""
        return (int(self.time_ns[0]), int(self.time_ns[-1])) if len(self) else None


class _Builder:
    def __init__(self):
        self.cols = {c: [] for c in ProfileSamples.COLUMNS}
        self.sym_ids, self.dso_ids = {}, {}

    def add(self, t, pid, tid, sym, dso):
        c = self.cols
        c["time_ns"].append(t)
        c["pid"].append(pid)
        c["tid"].append(tid)
        sid = self.sym_ids.get(sym)
        if sid is None:
            sid = self.sym_ids[sym] = len(self.sym_ids)
        c["symbol_id"].append(sid)
        did = self.dso_ids.get(dso)
        if did is None:
            did = self.dso_ids[dso] = len(self.dso_ids)
        c["dso_id"].append(did)

    def build(self):
        s = ProfileSamples(*(self.cols[c] for c in ProfileSamples.COLUMNS),
                           list(self.sym_ids), list(self.dso_ids))
        return s.sorted_by_time()


def _split_dso(rest):
    """``SYMBOL (DSO)`` -> (symbol, dso): the DSO is the last balanced parenthesis
    group (paths may hold parentheses, e.g. ``(/tmp/a.out (deleted))``)."""
    rest = rest.rstrip()
    if not rest.endswith(")"):
        return rest.strip() or UNKNOWN, UNKNOWN
    depth = 0
    for i in range(len(rest) - 1, -1, -1):
        ch = rest[i]
        if ch == ")":
            depth += 1
        elif ch == "(":
            depth -= 1
            if depth == 0:
                if i == 0 or rest[i - 1] in " \t":
                    return rest[:i].strip() or UNKNOWN, rest[i + 1:-1] or UNKNOWN
                break
    return rest.strip() or UNKNOWN, UNKNOWN


def _time_ns(text):
    sec, _, frac = text.partition(".")
    frac = (frac + "000000000")[:9]
    return int(sec) * 1000000000 + int(frac)


def parse_perf_script(lines, path=None):
    """ProfileSamples of ``perf script`` output lines in :data:`PERF_SCRIPT_ARGS` form
    (str or bytes lines). ``path`` names the source in errors (RecordFormatError with
    the line number)."""
    b = _Builder()
    for lineno, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        s = line.strip()
        if not s:
            continue
        try:
            ids, rest = s.split(None, 1)
            pid, _, tid = ids.partition("/")
            tstr, colon, rest = rest.partition(":")
            if not colon:
                raise ValueError("no ':' after the time")
            parts = rest.split(None, 1)
            # ip is hex; perf leaves it out for some events: then everything is the symbol
            if parts and _is_hex(parts[0]):
                rest = parts[1] if len(parts) > 1 else ""
            sym, dso = _split_dso(rest)
            b.add(_time_ns(tstr.strip()), int(pid), int(tid or pid), sym, dso)
        except ValueError as e:
            raise RecordFormatError("not a perf script sample line (%s): %r" % (e, s[:120]),
                                    path=path, line=lineno) from None
    return b.build()


def _is_hex(word):
    try:
        int(word, 16)
    except ValueError:
        return False
    return True


def read_perf_samples(perf_data_path, *, perf="perf"):
    """ProfileSamples of a perf.data file, through ``perf script`` (``perf``: the command
    or path to run, as ``--perf_path``).

    RecordFormatError when the file is missing; ExternalToolError when perf is missing
    or ``perf script`` fails (its stderr in the message)."""
    from damo_pipe.perf_tool import perf_command, popen_perf
    path = os.fspath(perf_data_path)
    if not os.path.isfile(path):
        raise RecordFormatError("no such file (a CPU profile, perf.data)", path=path)
    from damo_pipe.formats.perf_data_header import check_perf_data_header
    check_perf_data_header(path)
    cmd = perf_command(perf, "script", list(PERF_SCRIPT_ARGS) + ["-i", path],
                       purpose="to read the CPU profile %s" % path)
    with popen_perf(cmd) as proc:
        samples = parse_perf_script(proc.stdout, path=path)
        proc.check()
    return samples

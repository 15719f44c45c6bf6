"""damo's ``.mem_footprint`` side file and the columnar memory-footprint series.

``damo record`` writes ``<record>.mem_footprint`` beside the access record: a JSON list of
``{"time": seconds, "footprints": [{"pid": N | null, "footprint": {...}}]}``. A process
entry holds ``/proc/PID/statm`` in pages (``size resident shared trs lrs drs dt``); the
system entry (``pid`` null) holds ``/proc/meminfo``'s ``total free available buffers
cached`` in KiB.

:class:`MemFootprints` holds such snapshots as numpy columns in **bytes**, with the
column names of damo-pipe's archive side tables (``vsz_bytes``, ``rss_bytes``, ...;
``MemTotal``, ``MemFree``, ...; docs/format.md), so that the reports treat a damo file
and an archive alike. damo converts pages with a fixed 4096 (``DAMO_PAGE_SIZE``) and
KiB with 1024; :func:`read_mem_footprint` does the same, so the byte values equal damo's.

Errors are :class:`RecordFormatError` naming the file and the line of the offending
snapshot (the top-level list is decoded element by element to know where each starts).
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np

from damo_pipe.errors import RecordFormatError

__all__ = ["MemFootprints", "read_mem_footprint", "parse_mem_footprint", "DAMO_PAGE_SIZE",
           "STATM_FIELDS", "MEMINFO_FIELDS", "format_mem_footprint", "write_mem_footprint"]

#: page size damo assumes when it turns statm pages into bytes
DAMO_PAGE_SIZE = 4096

#: damo's statm key -> column (bytes), in /proc/PID/statm order
STATM_FIELDS = {"size": "vsz_bytes", "resident": "rss_bytes", "shared": "shared_bytes",
                "trs": "text_bytes", "lrs": "lib_bytes", "drs": "data_bytes", "dt": "dirty_bytes"}
#: damo's meminfo key -> column (bytes)
MEMINFO_FIELDS = {"total": "MemTotal", "free": "MemFree", "available": "MemAvailable",
                  "buffers": "Buffers", "cached": "Cached"}

#: fields the reports compute with: they must be numbers (the others may be null)
_REQUIRED_NUMBERS = {"size", "resident", "total", "free"}
#: larger values cannot be real page or KiB counts (and would overflow 64-bit bytes)
_MAX_UNITS = 1 << 50


@dataclasses.dataclass
class MemFootprints:
    """Memory-footprint snapshots in time order of the source.

    ``time_ns``: int64 per snapshot. Process rows (one per pid and snapshot):
    ``proc_snapshot`` (index of the row's snapshot), ``pid`` and ``proc`` (column name ->
    uint64 bytes). System values: ``has_sys`` (bool per snapshot) and ``sys`` (column
    name -> uint64 bytes, 0 where ``has_sys`` is False).
    """

    time_ns: np.ndarray
    proc_snapshot: np.ndarray
    pid: np.ndarray
    proc: dict
    has_sys: np.ndarray
    sys: dict
    source: str = ""

    @property
    def nr_snapshots(self):
        return len(self.time_ns)

    def per_snapshot_sum(self, column):
        """Sum of a process column over the pids of each snapshot (Python ints)."""
        out = np.zeros(self.nr_snapshots, np.uint64)
        if len(self.pid):
            np.add.at(out, self.proc_snapshot, self.proc[column])
        return [int(x) for x in out.tolist()]

    def take(self, keep):
        """The snapshots where the boolean mask ``keep`` is True."""
        keep = np.asarray(keep, bool)
        new_idx = np.cumsum(keep) - 1
        rows = keep[self.proc_snapshot] if len(self.pid) else np.zeros(0, bool)
        return MemFootprints(
            time_ns=self.time_ns[keep], proc_snapshot=new_idx[self.proc_snapshot[rows]].astype(np.int64),
            pid=self.pid[rows], proc={k: v[rows] for k, v in self.proc.items()},
            has_sys=self.has_sys[keep], sys={k: v[keep] for k, v in self.sys.items()},
            source=self.source)

    @classmethod
    def from_columns(cls, time_ns, proc_snapshot, pid, proc, has_sys, sys, source=""):
        return cls(np.asarray(time_ns, np.int64), np.asarray(proc_snapshot, np.int64),
                   np.asarray(pid, np.int64), {k: np.asarray(v, np.uint64) for k, v in proc.items()},
                   np.asarray(has_sys, bool), {k: np.asarray(v, np.uint64) for k, v in sys.items()},
                   source)


def read_mem_footprint(path, page_size=DAMO_PAGE_SIZE):
    """MemFootprints of a damo ``.mem_footprint`` file (pages * ``page_size``, KiB * 1024)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise RecordFormatError("no such file", path=path) from None
    except OSError as e:
        raise RecordFormatError("cannot read (%s)" % (e.strerror or e), path=path) from None
    return parse_mem_footprint(data, path, page_size)


def _line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def _skip_ws(text, pos):
    n = len(text)
    while pos < n and text[pos] in " \t\r\n":
        pos += 1
    return pos


def parse_mem_footprint(data, path=None, page_size=DAMO_PAGE_SIZE):
    """Parse the bytes of a ``.mem_footprint`` file (``path`` only names it in errors)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordFormatError("not UTF-8 text", path=path, offset=e.start) from None
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos >= len(text) or text[pos] != "[":
        raise RecordFormatError("not a memory footprint file (expected a JSON list)",
                                path=path, line=_line_of(text, pos))
    pos += 1
    b = _Builder(page_size)
    first = True
    while True:
        pos = _skip_ws(text, pos)
        if pos < len(text) and text[pos] == "]":
            pos += 1
            break
        if not first:
            if pos >= len(text) or text[pos] != ",":
                raise RecordFormatError("expected ',' or ']' in the snapshot list",
                                        path=path, line=_line_of(text, pos))
            pos = _skip_ws(text, pos + 1)
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise RecordFormatError("invalid JSON (%s)" % e.msg, path=path, line=e.lineno) from None
        try:
            b.add_snapshot(obj)
        except (ValueError, TypeError) as e:
            raise RecordFormatError("snapshot %d: %s" % (b.nr_snapshots, e), path=path,
                                    line=_line_of(text, pos)) from None
        pos = end
        first = False
    if _skip_ws(text, pos) != len(text):
        raise RecordFormatError("unexpected data after the snapshot list", path=path,
                                line=_line_of(text, _skip_ws(text, pos)))
    return b.build(path)


def _number(v, key):
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("%r is not a number (%r)" % (key, v))
    return v


def _units(fp, key, required):
    if key not in fp:
        raise ValueError("footprint has no %r" % key)
    v = fp[key]
    if v is None and not required:
        return 0
    v = _number(v, key)
    if (isinstance(v, float) and not v.is_integer()) or not 0 <= v < _MAX_UNITS:
        raise ValueError("%r must be a whole number of pages/KiB (%r)" % (key, v))
    return int(v)


def _ns_of_seconds(t):
    """ns of damo's float seconds: the decimal value the file states (the float's
    shortest repr), rounded to ns, so that :func:`format_mem_footprint` writes the same
    float back (``t * 10^9`` in floats can be off by a few hundred ns)."""
    if isinstance(t, int):
        return t * 1_000_000_000
    from decimal import ROUND_HALF_EVEN, Decimal
    return int((Decimal(repr(t)) * 1_000_000_000).to_integral_value(ROUND_HALF_EVEN))


class _Builder:
    def __init__(self, page_size):
        self.page_size = page_size
        self.times = []
        self.has_sys = []
        self.sys = {c: [] for c in MEMINFO_FIELDS.values()}
        self.rows_snapshot, self.rows_pid = [], []
        self.proc = {c: [] for c in STATM_FIELDS.values()}

    @property
    def nr_snapshots(self):
        return len(self.times)

    def add_snapshot(self, obj):
        if not isinstance(obj, dict):
            raise ValueError("not an object")
        if "time" not in obj:
            raise ValueError("no 'time'")
        t = _number(obj["time"], "time")
        if t != t or t in (float("inf"), float("-inf")) or abs(t) >= 9.2e9:
            raise ValueError("'time' out of range (%r)" % t)
        fps = obj.get("footprints")
        if not isinstance(fps, list):
            raise ValueError("'footprints' is not a list")
        # damo keys its footprints by pid: a repeated pid (or system entry) replaces the
        # earlier one
        procs, sys_values = {}, None
        for entry in fps:
            if not isinstance(entry, dict) or "pid" not in entry or "footprint" not in entry:
                raise ValueError("a footprint entry lacks 'pid' or 'footprint'")
            pid, fp = entry["pid"], entry["footprint"]
            if not isinstance(fp, dict):
                raise ValueError("'footprint' is not an object")
            if pid is None:
                sys_values = [_units(fp, k, k in _REQUIRED_NUMBERS) * 1024 for k in MEMINFO_FIELDS]
                continue
            if isinstance(pid, bool) or not isinstance(pid, int) or not 0 <= pid < (1 << 63):
                raise ValueError("bad pid %r" % (pid,))
            procs[pid] = [_units(fp, k, k in _REQUIRED_NUMBERS) * self.page_size
                          for k in STATM_FIELDS]
        k = len(self.times)
        self.times.append(_ns_of_seconds(t))
        self.has_sys.append(sys_values is not None)
        for col, v in zip(MEMINFO_FIELDS.values(), sys_values or [0] * len(MEMINFO_FIELDS)):
            self.sys[col].append(v)
        for pid, vals in procs.items():
            self.rows_snapshot.append(k)
            self.rows_pid.append(pid)
            for col, v in zip(STATM_FIELDS.values(), vals):
                self.proc[col].append(v)

    def build(self, path):
        return MemFootprints.from_columns(self.times, self.rows_snapshot, self.rows_pid, self.proc,
                                          self.has_sys, self.sys, source=str(path or ""))


def _seconds(ns):
    """damo's float seconds of ``ns`` (correctly rounded: int / int)."""
    return ns / 1_000_000_000


def format_mem_footprint(fp, page_size=DAMO_PAGE_SIZE):
    """damo's ``.mem_footprint`` text of MemFootprints (``json.dump(..., indent=4)`` of
    the snapshots, processes first, then the system entry): bytes back to pages of
    ``page_size`` and to KiB, times to seconds, so that :func:`read_mem_footprint`
    gives the same columns back."""
    import json
    rows_of = [[] for _ in range(fp.nr_snapshots)]
    for r, k in enumerate(fp.proc_snapshot.tolist()):
        rows_of[k].append(r)
    proc = {k: fp.proc[c].tolist() if c in fp.proc else [0] * len(fp.pid)
            for k, c in STATM_FIELDS.items()}
    sysv = {k: fp.sys[c].tolist() if c in fp.sys else [0] * fp.nr_snapshots
            for k, c in MEMINFO_FIELDS.items()}
    pids = fp.pid.tolist()
    out = []
    for k, t in enumerate(fp.time_ns.tolist()):
        entries = [{"pid": pids[r], "footprint": {key: proc[key][r] // page_size for key in proc}}
                   for r in rows_of[k]]
        if fp.has_sys[k]:
            entries.append({"pid": None,
                            "footprint": {key: sysv[key][k] // 1024 for key in sysv}})
        out.append({"time": _seconds(int(t)), "footprints": entries})
    return json.dumps(out, indent=4)


def write_mem_footprint(fp, path, page_size=DAMO_PAGE_SIZE, mode=None):
    """Write :func:`format_mem_footprint` to ``path`` (atomically; ``mode``: the file's
    permission bits, default 0666 less the umask)."""
    from damo_pipe._atomic import atomic_output
    text = format_mem_footprint(fp, page_size)
    with atomic_output(path, mode=mode) as tmp:
        with open(tmp, "w") as f:
            f.write(text)

"""Helpers of the tracer tests: a fake tracefs tree, a stand-in incremental parser, an
independent whole-text reference, and a ``python -m`` entry point for the SIGKILL test.
"""
from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

from damo_pipe.model import Record, RecordBuilder, RegionColumns

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
KERNEL_FIXTURES = SHARED / "fixtures" / "kernel"
TRACE_PIPE_CAPTURE = KERNEL_FIXTURES / "trace_pipe-damon_aggregated.txt"
PERF_SCRIPT_CAPTURE = KERNEL_FIXTURES / "perf-script-damon_aggregated.txt"
PERF_DATA_CAPTURE = KERNEL_FIXTURES / "perf-damon_aggregated.data"


# ----------------------------------------------------------------------------- fake tracefs
class FakeTracefs:
    """A directory that looks like tracefs to damo_pipe.collect.tracer.

    Control files are plain files; ``trace_pipe`` is a FIFO; ``instances/NAME`` gets the
    same tree when created through :meth:`mkdir_instance` (installed as the tracer's
    mkdir hook by :meth:`install`).
    """

    CONTROL = {"tracing_on": "1\n", "buffer_size_kb": "7 (expanded: 1408)\n",
               "current_tracer": "nop\n", "set_event": ""}

    def __init__(self, root, events=("damon_aggregated", "damos_before_apply"), **control):
        self.root = Path(root)
        self.events = tuple(events)
        self.root.mkdir(parents=True, exist_ok=True)
        self._populate(self.root, {**self.CONTROL, **control})
        (self.root / "instances").mkdir(exist_ok=True)
        self.instances_made = []

    def _populate(self, d, control):
        d.mkdir(parents=True, exist_ok=True)
        for name, text in control.items():
            (d / name).write_text(text)
        (d / "events").mkdir(exist_ok=True)
        for ev in self.events:
            e = d / "events" / "damon" / ev
            e.mkdir(parents=True, exist_ok=True)
            (e / "enable").write_text("0\n")
        os.mkfifo(d / "trace_pipe")

    def mkdir_instance(self, path):
        os.mkdir(path)  # EEXIST like tracefs
        self._populate(Path(path), {"tracing_on": "1\n", "buffer_size_kb": "1408\n",
                                    "current_tracer": "nop\n", "set_event": ""})
        self.instances_made.append(str(path))

    @staticmethod
    def rmdir_instance(path):
        shutil.rmtree(path)

    def install(self, monkeypatch):
        from damo_pipe.collect.tracing import tracefs
        monkeypatch.setattr(tracefs, "_mkdir_instance", self.mkdir_instance)
        monkeypatch.setattr(tracefs, "_rmdir_instance", self.rmdir_instance)
        return self

    def snapshot_state(self, d=None):
        """{relative path: content} of every regular file (to compare before/after)."""
        d = Path(d or self.root)
        out = {}
        for p in sorted(d.rglob("*")):
            if p.is_file() and not p.is_fifo():
                out[str(p.relative_to(d))] = p.read_text().strip()
        return out

    def enable_state(self, d=None):
        d = Path(d or self.root)
        return {ev: (d / "events" / "damon" / ev / "enable").read_text().strip()
                for ev in self.events}


def feed_fifo(path, data, piece=4096, delay=0.0, seed=1, stop=None):
    """Write ``data`` into the FIFO ``path`` in random-sized pieces (blocking open)."""
    rng = np.random.default_rng(seed)
    fd = os.open(path, os.O_WRONLY)
    try:
        pos = 0
        while pos < len(data):
            if stop is not None and stop.is_set():
                break
            n = int(rng.integers(1, piece + 1))
            os.write(fd, data[pos:pos + n])
            pos += n
            if delay:
                time.sleep(delay)
    finally:
        os.close(fd)


def start_feeder(path, data, **kw):
    t = threading.Thread(target=feed_fifo, args=(path, data), kwargs=kw, daemon=True)
    t.start()
    return t


# ----------------------------------------------------------------------------- parsers
def split_line(line):
    """FORMATS.md §4 normalisation: (timestamp text, event, fields) or None."""
    tokens = line.split()
    if len(tokens) < 4:
        return None
    ts_idx = 2 if tokens[2].endswith(":") else 3
    if len(tokens) <= ts_idx + 1:
        return None
    event = tokens[ts_idx + 1][:-1]
    if event.startswith("damon:"):
        event = event[len("damon:"):]
    return tokens[ts_idx][:-1], event, tokens[ts_idx + 2:]


class StandInStreamParser:
    """Thin pure-Python stand-in for formats.trace_text.TraceStreamParser.

    Only damon_aggregated with age (the captures' event). ``feed`` returns
    [(target_id, Record chunk of the snapshots completed by this data)].
    """

    def __init__(self):
        self._tail = b""
        self._open = None     # [target, end_ns, nr_regions, rows]
        self._last_end = {}
        self._done = {}       # target -> RecordBuilder of completed snapshots

    def _line(self, line):
        parts = split_line(line)
        if parts is None or parts[1] != "damon_aggregated" or len(parts[2]) != 5:
            return
        ts, _, f = parts
        target = int(f[0].split("=")[1])
        nr = int(f[1].split("=")[1])
        s, e = f[2][:-1].split("-")
        end_ns = int(float(ts) * 1e9)
        if self._open is None:
            self._open = [target, end_ns, nr, []]
        self._open[3].append((int(s), int(e), int(f[3]), int(f[4])))
        if len(self._open[3]) == self._open[2]:
            target, end_ns, _, rows = self._open
            self._open = None
            start = self._last_end.get(target, end_ns)
            self._last_end[target] = end_ns
            b = self._done.get(target)
            if b is None:
                b = self._done[target] = RecordBuilder(Record(target_id=target))
            a = np.array(rows, dtype=np.uint64)
            b.add_snapshot(start, end_ns, RegionColumns(a[:, 0], a[:, 1], a[:, 2].astype(np.int64),
                                                        a[:, 3].astype(np.int64)))

    def _emit(self):
        out = [(t, b.build()) for t, b in self._done.items()]
        self._done = {}
        return out

    def feed(self, data):
        data = self._tail + bytes(data)
        cut = data.rfind(b"\n")
        if cut < 0:
            self._tail = data
            return []
        self._tail = data[cut + 1:]
        for line in data[:cut].decode().split("\n"):
            self._line(line)
        return self._emit()

    def finish(self):
        if self._tail:
            self._line(self._tail.decode())
            self._tail = b""
        return self._emit()


def real_parser_or_none():
    try:
        from damo_pipe.formats.trace_text import TraceStreamParser
    except ImportError:
        return None
    return TraceStreamParser


PARSERS = ["standin", "real"]


def make_parser(name):
    import pytest
    if name == "standin":
        return StandInStreamParser()
    cls = real_parser_or_none()
    if cls is None:
        pytest.skip("damo_pipe.formats.trace_text.TraceStreamParser not available yet")
    return cls()


def reference_snapshots(text):
    """Independent whole-text reading: {target: [(end_ns, [(start, end, nr, age), ...])]}.

    Lines of one snapshot are consecutive; a snapshot closes after nr_regions lines.
    """
    out = {}
    cur = None
    for line in text.splitlines():
        tok = line.split()
        if "damon_aggregated:" not in tok and "damon:damon_aggregated:" not in tok:
            continue
        i = tok.index("damon_aggregated:") if "damon_aggregated:" in tok else tok.index(
            "damon:damon_aggregated:")
        ts = tok[i - 1].rstrip(":")
        target = int(tok[i + 1][len("target_id="):])
        nr = int(tok[i + 2][len("nr_regions="):])
        lo, hi = tok[i + 3].rstrip(":").split("-")
        if cur is None:
            cur = (target, int(float(ts) * 1e9), nr, [])
            out.setdefault(target, []).append((cur[1], cur[3]))
        cur[3].append((int(lo), int(hi), int(tok[i + 4]), int(tok[i + 5])))
        if len(cur[3]) == nr:
            cur = None
    # an unfinished last snapshot is not a snapshot
    for target, snaps in out.items():
        if snaps and cur is not None and cur[0] == target and snaps[-1][1] is cur[3]:
            snaps.pop()
    return out


def assert_archive_matches_reference(path, reference, keys=None):
    """Archive content == reference snapshots (every value), first start deduced."""
    from damo_pipe.archive import read_archive_records
    recs = {r.target_id: r for r in read_archive_records(path)}
    assert sorted(recs) == sorted(reference)
    for target, snaps in reference.items():
        rec = recs[target]
        assert rec.nr_snapshots == len(snaps)
        ends = [e for e, _ in snaps]
        np.testing.assert_array_equal(rec.snapshots.end_ns, ends)
        np.testing.assert_array_equal(rec.snapshots.start_ns[1:], ends[:-1])
        if len(ends) >= 2:
            expect = ends[0] - float(ends[-1] - ends[0]) / (len(ends) - 1)
            assert rec.snapshot_start(0) == expect
        rows = [row for _, regs in snaps for row in regs]
        np.testing.assert_array_equal(rec.snapshots.nr_regions, [len(r) for _, r in snaps])
        got = np.stack([rec.regions.start, rec.regions.end, rec.regions.nr_accesses.astype(np.uint64),
                        rec.regions.age.astype(np.uint64)], axis=1)
        np.testing.assert_array_equal(got, np.array(rows, dtype=np.uint64).reshape(-1, 4))


def assert_archive_prefix_of_reference(path, reference, at_least):
    """A crashed archive: every record is an exact prefix of the reference; the total
    number of snapshots is at least ``at_least``."""
    from damo_pipe.archive import read_archive_records
    total = 0
    for rec in read_archive_records(path):
        snaps = reference[rec.target_id]
        n = rec.nr_snapshots
        assert n <= len(snaps)
        total += n
        np.testing.assert_array_equal(rec.snapshots.end_ns, [e for e, _ in snaps[:n]])
        rows = [row for _, regs in snaps[:n] for row in regs]
        got = np.stack([rec.regions.start, rec.regions.end, rec.regions.nr_accesses.astype(np.uint64),
                        rec.regions.age.astype(np.uint64)], axis=1)
        np.testing.assert_array_equal(got, np.array(rows, dtype=np.uint64).reshape(-1, 4))
    assert total >= at_least
    return total


# ----------------------------------------------------------------------------- subprocess
def _child_main(argv):
    """python -m tests.support.tracer_helpers FAKEROOT ARCHIVE CAPTURE PARSER

    Records from the fake tracefs at FAKEROOT (its trace_pipe fed slowly by a thread)
    into ARCHIVE, printing "flushed N" after every flush, until killed.
    """
    root, archive, capture, parser_name = argv
    from damo_pipe.archive import ArchiveWriter
    from damo_pipe.collect import tracing
    from damo_pipe.collect.tracing import tracefs

    fake = FakeTracefs.__new__(FakeTracefs)
    fake.root = Path(root)
    fake.events = ("damon_aggregated", "damos_before_apply")
    fake.instances_made = []
    tracefs._mkdir_instance = fake.mkdir_instance
    tracefs._rmdir_instance = fake.rmdir_instance
    parser = StandInStreamParser() if parser_name == "standin" else real_parser_or_none()()
    w = ArchiveWriter(archive, swmr=True)  # a killed non-SWMR HDF5 file stays "open for write"
    keys = {0: w.add_record(Record(target_id=0))}
    h = tracing.open_tracefs_tracer(w, keys, tracefs_root=root, parser=parser,
                                   flush_interval=0.02)
    data = Path(capture).read_bytes() * 1
    start_feeder(os.path.join(h.source.dir, "trace_pipe"), data, piece=300, delay=0.01)
    print("ready", flush=True)
    last = -1
    while True:
        h.poll()
        if h.streamer.flushes != last:
            last = h.streamer.flushes
            print("flushed %d" % h.streamer.flushed_snapshots, flush=True)
        time.sleep(0.005)


if __name__ == "__main__":
    _child_main(sys.argv[1:])

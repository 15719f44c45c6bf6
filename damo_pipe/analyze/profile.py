"""damo's ``report times`` and ``report profile``: when the record showed an access pattern,
and the CPU profile of those times.

:func:`access_intervals` applies damo's record filter (``--sz_region``, ``--access_rate``,
``--age``, ...) and joins the times of the snapshots that kept a region: a snapshot that
starts where the previous kept one ended extends its interval (across records too, as
damo does). ``report times`` prints them in seconds; ``report profile`` hands them to
``perf report --time`` (:mod:`damo_pipe.analyze.perf`).

:func:`profile_path` is the one place that decides where a recording's CPU profile is
(``--profile``, an archive's own perf.data, or damo's side file).
"""
from __future__ import annotations

import contextlib

import numpy as np

__all__ = ["access_intervals", "format_times", "times_json", "times_csv", "perf_time_args",
           "default_profile_path", "profile_path", "profile_offset_ns", "shift_intervals",
           "profile_samples", "load_profile_samples", "samples_in", "profile_json", "profile_csv",
           "ENGINES"]

ENGINES = ("cython", "python")

#: region columns the record filter reads
_FILTER_COLUMNS = ("start", "end", "nr_accesses", "age")


def _join_py(part, out):
    """Reference twin: damo's loop over the snapshots of one filtered chunk."""
    nr = part.snapshots.nr_regions
    for k in range(part.nr_snapshots):
        if int(nr[k]) == 0:
            continue
        start, end = part.snapshot_start(k), int(part.snapshots.end_ns[k])
        if out and out[-1][1] == start:
            out[-1][1] = end
        else:
            out.append([start, end])


def _join_np(part, out):
    """The same with numpy: runs of kept snapshots that touch, then one step per run."""
    idx = np.flatnonzero(part.snapshots.nr_regions > 0)
    if not len(idx):
        return
    starts = part.snapshots.start_ns[idx]
    ends = part.snapshots.end_ns[idx]
    breaks = np.flatnonzero(starts[1:] != ends[:-1]) + 1
    run_first = np.concatenate([[0], breaks])
    run_last = np.concatenate([breaks - 1, [len(idx) - 1]])
    for a, b in zip(run_first.tolist(), run_last.tolist()):
        start = part.snapshot_start(int(idx[a])) if a == 0 else int(starts[a])
        end = int(ends[b])
        if out and out[-1][1] == start:
            out[-1][1] = end
        else:
            out.append([start, end])


def access_intervals(records, record_filter=None, engine="cython"):
    """[[start_ns, end_ns], ...] of the snapshots left with regions by ``record_filter``.

    ``records``: a RecordSource, Records or paths. Times are ints, except a deduced
    first snapshot start (a float, as damo keeps it).
    """
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze.record_filter import ChunkFilter
    src = RecordSource.of(records)
    join = _join_py if engine == "python" else _join_np
    out = []
    for i in range(len(src)):
        cf = ChunkFilter(record_filter)
        for chunk in src.iter_chunks(i, columns=_FILTER_COLUMNS):
            join(cf(chunk), out)
    return out


def _seconds(t):
    """t / 10^9 as damo computes it (exact int division for ints)."""
    return (int(t) if not isinstance(t, float) else t) / 1000000000


def format_times(intervals):
    """damo's ``report times`` text: ``start-end`` in seconds, then ``# (seconds)``."""
    lines = []
    for start, end in intervals:
        lines.append("%f-%f" % (_seconds(start), _seconds(end)))
        lines.append("# (seconds)")
    return "\n".join(lines)


def interval_entries(intervals, origin_ns):
    """[{start_ns, end_ns, start_s, end_s}] (ns ints; seconds from ``origin_ns``)."""
    from damo_pipe.analyze.export import time_fields
    return [dict(time_fields("start", s, origin_ns), **time_fields("end", e, origin_ns))
            for s, e in intervals]


def times_json(intervals, *, inputs=None, origin_ns=None):
    """``report times --json`` (docs/json.md, ``damo-pipe/times``): the intervals."""
    from damo_pipe.analyze.export import document
    return document("times", {"intervals": interval_entries(intervals, origin_ns)},
                    inputs=inputs, time_origin_ns=origin_ns)


def times_csv(doc):
    """``report times --csv``: ``start_ns,end_ns,start_s,end_s`` rows."""
    from damo_pipe.analyze.export import csv_text
    header = ["start_ns", "end_ns", "start_s", "end_s"]
    return csv_text(header, [[iv[k] for k in header] for iv in doc["intervals"]])


def perf_time_args(intervals):
    """``--time START,END`` per interval, seconds as Python prints them (damo's '%s')."""
    args = []
    for start, end in intervals:
        args += ["--time", "%s,%s" % (_seconds(start), _seconds(end))]
    return args


def default_profile_path(access_pattern):
    """damo's default: ``<access pattern file>.profile``."""
    return "%s.profile" % access_pattern


def _archive_profile_attrs(access_pattern):
    """The archive's profile attributes, or None (not an archive, or no profile)."""
    import os

    from damo_pipe.errors import RecordFormatError
    from damo_pipe.formats import detect_format
    path = str(access_pattern)
    if not os.path.isfile(path):
        return None
    try:
        if detect_format(path) != "hdf5":
            return None
    except RecordFormatError:
        return None
    from damo_pipe.archive.profile import profile_attrs
    return profile_attrs(path)


@contextlib.contextmanager
def profile_path(access_pattern, given=None):
    """Path of the perf.data CPU profile that belongs to ``access_pattern``, for the
    duration of the ``with`` block.

    ``given`` (``--profile``, the second ``--inputs`` value) wins; then the perf.data an
    archive holds (extracted to a temporary file, removed on exit); otherwise damo's
    side file ``<access_pattern>.profile``.
    """
    if given is not None:
        yield str(given)
        return
    attrs = _archive_profile_attrs(access_pattern)
    if attrs is not None:
        import os
        import shutil
        import tempfile

        from damo_pipe.archive.profile import extract_perf_data
        d = tempfile.mkdtemp(prefix="damo-pipe-profile.")
        try:
            path = extract_perf_data(access_pattern, os.path.join(d, "perf.data"))
            if path is not None:
                yield path
                return
        finally:
            shutil.rmtree(d, ignore_errors=True)
    yield default_profile_path(access_pattern)


def profile_offset_ns(access_pattern, given=None):
    """What to subtract from the record's times to get perf's times in the profile
    :func:`profile_path` yields: an archive's ``time_offset_ns`` when its own profile is
    used, else 0 (damo's files share perf's clock)."""
    if given is not None:
        return 0
    attrs = _archive_profile_attrs(access_pattern)
    return int(attrs.get("time_offset_ns", 0)) if attrs else 0


def shift_intervals(intervals, offset_ns):
    """The intervals with ``offset_ns`` subtracted (no copy when 0)."""
    if not offset_ns:
        return intervals
    return [[s - offset_ns, e - offset_ns] for s, e in intervals]


def profile_samples(access_pattern, profile=None, perf_path="perf", notes=None,
                    missing="no hotspots"):
    """The CPU-profile samples of a recording on the record's clock, or None with a note
    (appended to ``notes``, ending in ``missing``) saying why: an archive's stored sample
    table (no perf needed), else the perf.data of :func:`profile_path` read with ``perf
    script`` (:func:`damo_pipe.formats.perf_samples.read_perf_samples`)."""
    return load_profile_samples(access_pattern, profile, perf_path, notes, missing)[0]


def load_profile_samples(access_pattern, profile=None, perf_path="perf", notes=None,
                         missing="no hotspots"):
    """:func:`profile_samples` and where they came from: ``(samples, "archive")``,
    ``(samples, "perf.data")`` or ``(None, None)``."""
    import os

    from damo_pipe.errors import DamoPipeError
    from damo_pipe.perf_tool import perf_available
    notes = [] if notes is None else notes
    if profile is None and _archive_profile_attrs(access_pattern) is not None:
        from damo_pipe.archive.profile import read_profile
        samples, attrs = read_profile(str(access_pattern))
        if samples is not None:
            return samples, "archive"
        if "samples_error" in attrs:
            notes.append("the archive's CPU profile has no sample table (%s)"
                         % attrs["samples_error"])
    with profile_path(access_pattern, profile) as path:
        if not os.path.isfile(path):
            notes.append("no CPU profile (%s): %s" % (path, missing))
            return None, None
        if not perf_available(perf_path):
            notes.append("perf is not installed: %s" % missing)
            return None, None
        from damo_pipe.formats.perf_samples import read_perf_samples
        try:
            samples = read_perf_samples(path, perf=perf_path)
        except DamoPipeError as e:
            notes.append("CPU profile not read: %s" % e)
            return None, None
    offset = profile_offset_ns(access_pattern, profile)
    return (samples.shifted(offset) if offset else samples), "perf.data"


def samples_in(samples, intervals):
    """The samples whose time lies in one of ``intervals``: ``start <= time <= end``, as
    ``perf report --time start,end`` keeps them."""
    import math

    import numpy as np
    if not intervals:
        return samples.take(slice(0, 0))
    t = samples.time_ns
    keep = np.zeros(len(t), bool)
    for start, end in intervals:
        a = int(np.searchsorted(t, math.ceil(start), "left"))
        b = int(np.searchsorted(t, math.floor(end), "right"))
        keep[a:max(a, b)] = True
    return samples.take(np.flatnonzero(keep))


def profile_json(intervals, spots, nr_samples, *, inputs=None, origin_ns=None, notes=(),
                 source=None):
    """``report profile --json`` (docs/json.md, ``damo-pipe/profile``): the intervals
    ``report times`` prints and the hotspot functions of the CPU-profile samples in them
    (None when no sample could be read: ``notes`` say why)."""
    from damo_pipe.analyze.export import document
    from damo_pipe.analyze.hotspots import hotspots_json
    return document("profile", {
        "intervals": interval_entries(intervals, origin_ns),
        "profile_source": source, "nr_samples": nr_samples,
        "hotspots": None if spots is None else hotspots_json(spots),
        "notes": list(notes)}, inputs=inputs, time_origin_ns=origin_ns,
        units={"samples": "CPU-profile samples (count)",
               "share": "samples / nr_samples (0..1)"})


def profile_csv(doc):
    """``report profile --csv``: ``symbol,dso,samples,share`` rows, most samples first."""
    from damo_pipe.analyze.export import csv_text
    return csv_text(["symbol", "dso", "samples", "share"],
                    [(h["symbol"], h["dso"], h["samples"], h["share"])
                     for h in doc["hotspots"] or []])

"""``--time_range`` / ``--address_range`` of ``report wss``, ``report nr_regions``,
``report html`` and ``batch``: which snapshots and which bytes a report looks at.

The words are ``report heatmap``'s (:mod:`damo_pipe.analyze.heatmap.ranges` parses
them; units as ``20s``, ``1.5 m``, ``4GiB``, ``min``/``max``):

* ``--time_range START END [BASE]``: times in ns or with units; without BASE they are
  on the recording's clock, BASE ``guided`` counts them from the recording's start (the
  earliest first-snapshot start), ``guided_end`` from its end (the latest snapshot end),
  any other BASE is a time added to both. A snapshot is selected when its interval
  ``[start_ns, end_ns]`` meets ``[START, END)`` (``end_ns >= START`` and ``start_ns <
  END``, the archive reader's and the Python API's rule); snapshots are kept whole.
* ``--address_range START END [guided]``: bytes (also hexadecimal: ``0x7f00...``,
  our extension of heatmap's syntax); ``guided`` counts them from the start
  of the address range ``report heatmap`` draws by default (the hottest contiguous
  region of the first record's guide). Regions overlapping ``[START, END)`` are kept
  and *clipped* to it: sizes (and so WSS) count only the bytes inside the range.

Counts of snapshots to skip at a record's start (``--exclude_samples``, nr_regions'
fixed 20) keep counting from the record's first snapshot: a time range that starts
after them skips nothing more.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from damo_pipe.errors import ReportError, UsageError

__all__ = ["Selection", "add_selection_arguments", "check_selection_words", "resolve_selection",
           "recording_span", "snapshot_range", "address_words_of", "clip_address_range", "iter_selected_chunks",
           "select_records", "apply_batch_selection", "selection_note"]

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_U64_MAX = (1 << 64) - 1

TIME_HELP = ("only snapshots meeting [START, END) (e.g. 20s 30s guided: from the "
             "recording's start); heatmap's syntax")
ADDRESS_HELP = ("only the bytes of [START, END) (regions clipped; e.g. 0 4GiB, or "
                "'S E guided' from heatmap's default range); heatmap's syntax")


@dataclasses.dataclass(frozen=True)
class Selection:
    """Resolved ranges: absolute ns ``[start, end)`` and bytes ``[start, end)`` (None: all)."""

    time_range: Optional[tuple] = None
    address_range: Optional[tuple] = None

    def __bool__(self):
        return self.time_range is not None or self.address_range is not None

    def as_json(self):
        return {"time_range_ns": None if self.time_range is None else list(self.time_range),
                "address_range": None if self.address_range is None else list(self.address_range)}


def add_selection_arguments(parser, time_help=TIME_HELP, address_help=ADDRESS_HELP):
    parser.add_argument("--time_range", metavar="<time>", nargs="+", help=time_help)
    parser.add_argument("--address_range", metavar="<address>", nargs="+", help=address_help)


def address_words_of(words):
    """``--address_range`` words with hexadecimal addresses (``0x7f00...``) turned into
    decimal ones, which heatmap's parser reads; other words unchanged."""
    if words is None:
        return None
    out = list(words)
    for k in range(min(2, len(out))):
        w = str(out[k])
        if w[:2].lower() == "0x":
            try:
                out[k] = str(int(w, 16))
            except ValueError:
                raise UsageError("wrong --address_range %s (%r is not a hexadecimal "
                                 "address)" % (" ".join(map(str, words)), w))
    return out


def check_selection_words(time_words, address_words):
    """UsageError for wrong words (count, numbers, an end not after its start), before
    any input is read."""
    from damo_pipe.formats.numbers import damo_text_to_ns, text_to_bytes
    if time_words is not None:
        if len(time_words) not in (2, 3):
            raise UsageError("--time_range takes <start> <end> [base]")
        try:
            start, end = damo_text_to_ns(time_words[0]), damo_text_to_ns(time_words[1])
            if len(time_words) > 2 and time_words[2] not in ("guided", "guided_end"):
                damo_text_to_ns(time_words[2])
        except ValueError as e:
            raise UsageError("wrong --time_range %s (%s)" % (" ".join(time_words), e))
        if not end > start:
            raise UsageError("--time_range %s: the end must be after the start"
                             % " ".join(time_words))
    if address_words is not None:
        if len(address_words) not in (2, 3):
            raise UsageError("--address_range takes <start> <end> [guided]")
        if len(address_words) == 3 and address_words[2] != "guided":
            raise UsageError("--address_range: the third word can only be 'guided'")
        words = address_words_of(address_words)
        try:
            start, end = text_to_bytes(words[0]), text_to_bytes(words[1])
        except ValueError as e:
            raise UsageError("wrong --address_range %s (%s)" % (" ".join(address_words), e))
        if not 0 <= start < end:
            raise UsageError("--address_range %s: 0 <= start < end" % " ".join(address_words))


class _Span:
    """What heatmap's time-range resolver calls a guide: the recording's start and end
    times, found only when a ``guided``/``guided_end`` base asks for them (a day-long
    archive's whole time columns are then read)."""

    def __init__(self, src):
        self._src = src
        self._span = None

    def _get(self):
        if self._span is None:
            self._span = recording_span(self._src) or (0, 0)
        return self._span

    @property
    def start_time(self):
        return self._get()[0]

    @property
    def end_time(self):
        return self._get()[1]


def recording_span(src):
    """(earliest first-snapshot start, latest snapshot end) of a RecordSource, or None."""
    starts, ends = [], []
    for i in range(len(src)):
        if src.nr_snapshots(i):
            starts.append(int(src.snapshot_rows(i, 0, 1).start_ns[0]))
            ends.append(int(src.snapshot_column(i, "end_ns").max()))
    if not starts:
        return None
    return min(starts), max(ends)


def _whole_ns(v):
    """An int of ns in int64's range (a fractional bound selects the same snapshots as
    its ceiling)."""
    if isinstance(v, float):
        v = math.ceil(v) if math.isfinite(v) else (_I64_MAX if v > 0 else _I64_MIN)
    return max(_I64_MIN, min(_I64_MAX, int(v)))


def _resolve_time(words, span):
    from damo_pipe.analyze.heatmap.ranges import resolve_time_range
    if words is None:
        return None
    start, end = resolve_time_range(words, span)
    if not end > start:
        raise UsageError("--time_range %s: the end must be after the start" % " ".join(words))
    return (_whole_ns(start), _whole_ns(end))


def _guided_address_start(src, engine):
    from damo_pipe.analyze.heatmap import compute_guides, guided_address_ranges
    guides = compute_guides(src, engine=engine, with_heats=True)
    if not guides:
        raise ReportError("no record: no guided address range")
    return int(guided_address_ranges(guides[0], "hottest")[0][0])


def _resolve_address(words, src, engine):
    from damo_pipe.analyze.heatmap.ranges import resolve_address_ranges
    if words is None:
        return None
    guided = [[_guided_address_start(src, engine), 0]] if len(words) > 2 else []
    start, end = resolve_address_ranges([address_words_of(words)], guided)[0]
    start, end = int(start), int(min(end, _U64_MAX))
    if not 0 <= start < end:
        raise UsageError("--address_range %s: 0 <= start < end" % " ".join(words))
    return (start, end)


def resolve_selection(src, time_words=None, address_words=None, engine="cython"):
    """The :class:`Selection` of the words for a RecordSource (or Records)."""
    from damo_pipe.analyze._chunks import RecordSource
    check_selection_words(time_words, address_words)
    if time_words is None and address_words is None:
        return Selection()
    src = RecordSource.of(src)
    return Selection(_resolve_time(time_words, _Span(src)), _resolve_address(address_words, src, engine))


def snapshot_range(snaps, time_range):
    """[lo, hi) of the snapshots whose ``[start_ns, end_ns]`` meets ``time_range``
    (:meth:`SnapshotColumns.window`)."""
    return snaps.window(time_range)


def clip_address_range(rec, address_range):
    """``rec`` with only its regions overlapping ``[start, end)``, clipped to it.

    Snapshots are kept (possibly empty); ``total_bytes`` becomes the clipped regions'
    total; ``sz_filter_passed`` shrinks with its region (proportionally); probe hits are
    dropped."""
    from damo_pipe.model import Record, RegionColumns
    if address_range is None:
        return rec
    a0, a1 = (np.uint64(v) for v in address_range)
    r = rec.regions
    keep = (r.end > a0) & (r.start < a1)
    idx = np.flatnonzero(keep)
    start = np.maximum(r.start[idx], a0)
    end = np.minimum(r.end[idx], a1)
    size = (r.end[idx] - r.start[idx]).astype(np.float64)
    passed = r.sz_filter_passed[idx]
    if len(idx):
        ratio = np.divide((end - start).astype(np.float64), size, out=np.ones(len(idx)),
                          where=size > 0)
        passed = np.floor(passed.astype(np.float64) * ratio).astype(np.uint64)
    optional = {}
    for name in ("age_usec", "nr_accesses_percent"):
        col = getattr(r, name)
        optional[name] = None if col is None else col[idx]
    regions = RegionColumns(start, end, r.nr_accesses[idx], r.age[idx], passed, **optional)
    snaps = rec.snapshots.take(0, rec.nr_snapshots)
    csum = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    first = snaps.region_offset
    counts = csum[first + snaps.nr_regions] - csum[first]
    snaps.nr_regions = counts
    snaps.region_offset = (np.cumsum(counts) - counts).astype(np.int64)
    sizes = np.concatenate([[0], np.cumsum((end - start).astype(np.uint64), dtype=np.uint64)])
    new_first = snaps.region_offset
    snaps.total_bytes = (sizes[new_first + counts] - sizes[new_first]).astype(np.uint64)
    return Record(**{**rec.__dict__, "snapshots": snaps, "regions": regions})


def iter_selected_chunks(src, idx, selection, columns=None):
    """The selected snapshots of record ``idx`` in chunks, regions clipped (archives
    read only the selected snapshots' rows)."""
    lo, hi = src.snapshot_window(idx, selection.time_range)
    for chunk in src.iter_chunk_range(idx, lo, hi, columns=columns):
        yield clip_address_range(chunk, selection.address_range)


def first_selected(src, idx, selection):
    """Index (in its record) of record ``idx``'s first selected snapshot."""
    return src.snapshot_window(idx, selection.time_range)[0]


def select_records(records, selection):
    """(selected Records, index of each one's first selected snapshot in its record)."""
    out, firsts = [], []
    for rec in records:
        lo, hi = snapshot_range(rec.snapshots, selection.time_range)
        part = rec if (lo, hi) == (0, rec.nr_snapshots) else rec.slice_snapshots(lo, hi)
        out.append(clip_address_range(part, selection.address_range))
        firsts.append(lo)
    return out, firsts


def apply_batch_selection(records, options):
    """``report html`` / ``batch``: ``(records, options, selection)`` for
    ``options.time_range`` and ``options.address_range`` (word lists; None: all): the
    selected records, and the options with ``exclude_samples`` reduced by the snapshots
    the time range already left out (those before the earliest first selected snapshot
    of the records); ``selection`` is falsy when nothing was asked."""
    time_words = getattr(options, "time_range", None)
    address_words = getattr(options, "address_range", None)
    if time_words is None and address_words is None:
        return records, options, Selection()
    sel = resolve_selection(records, time_words, address_words)
    chosen, firsts = select_records(records, sel)
    lo = min((f for f, r in zip(firsts, records) if r.nr_snapshots), default=0)
    return (chosen, dataclasses.replace(options,
                                        exclude_samples=max(0, options.exclude_samples - lo)),
            sel)


def selection_note(selection, records=()):
    """One line saying what a selection keeps (for pages; times from the start of
    ``records``, the records before the selection), or None without a selection."""
    if not selection:
        return None
    from damo_pipe.analyze._chunks import RecordSource
    span = recording_span(RecordSource.of(list(records))) if records else None
    parts = []
    if selection.time_range is not None:
        t0, t1 = selection.time_range
        if span is not None:
            parts.append("the snapshots meeting [%.3f s, %.3f s) from the recording's start"
                         % ((t0 - span[0]) / 1e9, (t1 - span[0]) / 1e9))
        else:
            parts.append("the snapshots meeting [%d, %d) ns" % (t0, t1))
    if selection.address_range is not None:
        parts.append("the bytes of [0x%x, 0x%x) (regions clipped)" % selection.address_range)
    return "selection: only " + " and ".join(parts)

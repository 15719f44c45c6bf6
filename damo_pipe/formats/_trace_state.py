"""Grouping of trace event lines into snapshots: the per-target state machine both
trace engines share (the Python twin calls :meth:`TraceState.add_line` per line; the
Cython kernel runs the same steps over its rows and keeps this object current).

A snapshot of a target is a run of consecutive lines of that target that all carry the
same ``nr_regions=N``, exactly N of them.  That is what the kernel and damo's writer
produce, and the only thing that tells snapshots apart, so every departure from it is
damage (a lost, added or garbled line, a truncated file):

* a line whose ``nr_regions`` differs from that of the open snapshot of its target
  while that snapshot still misses lines, or that has an age field when the
  snapshot's first line has none (or the reverse: a line cut short);
* a snapshot still open at the end of the input;
* a line with ``nr_regions=0`` (a line is a region);
* a snapshot that starts before the previous one of its target ended (unsorted).

Strict reading (the default) raises :class:`RecordFormatError` naming the line.
Lenient reading drops the incomplete snapshot, counts it (``dropped_snapshots``,
``dropped_lines``) and goes on; unparseable event lines are skipped and counted
(``damaged_lines``).  Lenient reading also ends a snapshot where a region starts below
the end of the previous region of the same snapshot: the kernel emits a target's
regions in address order, so this finds the boundary right after a lost line instead
of shifting every later snapshot by one line (files whose regions are not in address
order, such as damo adjust output, must be read strictly).
"""
from __future__ import annotations

from damo_pipe.errors import RecordFormatError
from damo_pipe.formats.trace_events import (KNOWN_SIDE_EVENTS, SideRows, classify,
                                            is_damon_event, parse_side_fields, timestamp_ns)

#: characters of the first unknown DAMON line kept for the warning
UNKNOWN_TEXT_MAX = 200


class TraceState:
    """Grouping state shared by both engines (per record: open snapshot, last end).

    Per record index: ``open_sid`` (snapshot id or -1), ``count`` (lines in the open
    snapshot), ``want`` (its nr_regions), ``open_line`` (its first line), ``addr_end``
    (end address of its last line), ``open_age`` (whether its first line has an age
    field), ``last_end`` (end time of the open or last kept
    snapshot, None before the first), ``closed_end`` (end time of the last complete
    snapshot, None before the first).
    """

    def __init__(self, lenient=False):
        self.lenient = bool(lenient)
        self.rec_of = {}          # target id -> record index
        self.targets = []         # record index -> target id
        self.open_sid = []
        self.count = []
        self.want = []
        self.open_line = []
        self.addr_end = []
        self.open_age = []
        self.last_end = []
        self.closed_end = []
        self.next_sid = 0
        self.line_no = 0          # lines consumed so far
        self.events = 0           # event lines grouped (kept or later dropped)
        #: ids of dropped snapshots whose rows are still to be filtered out (-1 marks
        #: rows of skipped lines in the compiled engine)
        self.dropped_sids = []
        self.dropped_snapshots = 0
        self.dropped_lines = 0
        self.damaged_lines = 0
        self.first_damage = None  # line of the first damage seen (lenient)
        #: strict reading: first line whose region starts below the end of the previous
        #: region of its snapshot (a hint in the error of an incomplete snapshot)
        self.first_disorder = None
        #: the compiled engine's typed copy of the per-record lists (kept between calls;
        #: every Python-side change of the lists drops it)
        self.kernel_group = None
        #: rows of the DAMON events that are not regions (formats.trace_events)
        self.side = SideRows()
        self.side_lines = 0           # side event lines parsed
        #: DAMON events of names we do not know: count, first line number and text
        self.unknown_lines = 0
        self.first_unknown = None     # (line, text)

    def new_record(self, tid):
        self.kernel_group = None
        idx = len(self.targets)
        self.rec_of[tid] = idx
        self.targets.append(tid)
        self.open_sid.append(-1)
        self.count.append(0)
        self.want.append(0)
        self.open_line.append(0)
        self.addr_end.append(0)
        self.open_age.append(False)
        self.last_end.append(None)
        self.closed_end.append(None)
        return idx

    def open_sids(self):
        return [s for s in self.open_sid if s >= 0]

    # -- damage -------------------------------------------------------------------
    def note_damage(self, line):
        if self.first_damage is None or line < self.first_damage:
            self.first_damage = line

    def damaged(self, line, n=1):
        """Count ``n`` skipped event lines (lenient reading)."""
        self.damaged_lines += n
        self.note_damage(line)

    def drop_open(self, r, line):
        """Drop the open snapshot of record ``r`` (lenient reading)."""
        self.kernel_group = None
        self.dropped_sids.append(self.open_sid[r])
        self.dropped_snapshots += 1
        self.dropped_lines += self.count[r]
        self.note_damage(line)
        self.open_sid[r] = -1
        self.last_end[r] = self.closed_end[r]

    def incomplete(self, r, path, line, nr=None, has_age=None):
        """The strict reading's error for the open snapshot of ``r`` (``nr``: the
        nr_regions of the line that cannot belong to it, ``has_age``: its age field
        when that is what does not fit; both None: the input ended)."""
        what = ("target %d's snapshot from line %d has %d of its %d regions"
                % (self.targets[r], self.open_line[r], self.count[r], self.want[r]))
        if has_age is not None:
            msg = ("incomplete snapshot: %s, then a line %s an age field, unlike them (a "
                   "line cut short or garbled)" % (what, "with" if has_age else "without"))
        elif nr is None:
            msg = "incomplete snapshot at the end of the trace: %s (truncated?)" % what
        else:
            msg = ("incomplete snapshot: %s, then a line with nr_regions=%d (a line was "
                   "lost, added or garbled)" % (what, nr))
        if self.first_disorder is not None:
            msg += ("; regions first leave address order at line %d, where a line may be "
                    "missing or repeated" % self.first_disorder)
        return RecordFormatError(msg, path=path, line=line)

    # -- grouping (the Python engine; _trace_kernels.trace_scan mirrors it) ---------
    def add_line(self, line, tid, end_ns, nr, start, end, has_age, path=None):
        """Group one parsed event line (``has_age``: it has an age field); (snapshot id,
        record index), or None when the line is skipped (lenient reading)."""
        self.kernel_group = None
        r = self.rec_of.get(tid)
        if r is None:
            r = self.new_record(tid)
        last = self.last_end[r]
        if last is not None and last > end_ns:
            if not self.lenient:
                raise RecordFormatError("trace is not time-sorted", path=path, line=line)
            if self.open_sid[r] >= 0:
                self.drop_open(r, line)
            last = self.last_end[r]
            if last is not None and last > end_ns:
                self.damaged(line)
                return None
        sid = self.open_sid[r]
        if sid >= 0:
            if nr != self.want[r]:
                if not self.lenient:
                    raise self.incomplete(r, path, line, nr)
                self.drop_open(r, line)
                sid = -1
            elif has_age != self.open_age[r]:
                if not self.lenient:
                    raise self.incomplete(r, path, line, nr, has_age)
                self.drop_open(r, line)
                sid = -1
            elif start < self.addr_end[r]:
                if self.lenient:
                    self.drop_open(r, line)
                    sid = -1
                elif self.first_disorder is None:
                    self.first_disorder = line
        if sid < 0:
            if nr == 0:
                if not self.lenient:
                    raise RecordFormatError("nr_regions=0 on a region line", path=path,
                                            line=line)
                self.damaged(line)
                return None
            sid = self.open_sid[r] = self.next_sid
            self.next_sid += 1
            self.count[r] = 0
            self.want[r] = nr
            self.open_line[r] = line
            self.open_age[r] = has_age
            self.last_end[r] = end_ns
        self.count[r] += 1
        self.addr_end[r] = end
        self.events += 1
        if self.count[r] == nr:
            self.open_sid[r] = -1
            self.closed_end[r] = self.last_end[r]
        return sid, r

    def end_of_input(self, path=None):
        """The input ended: an open snapshot is an error (strict) or dropped (lenient)."""
        opens = [r for r, s in enumerate(self.open_sid) if s >= 0]
        if not opens:
            return
        if not self.lenient:
            r = min(opens, key=lambda i: self.open_line[i])
            raise self.incomplete(r, path, self.line_no)
        for r in opens:
            self.drop_open(r, self.line_no)

    # -- the other DAMON events (both engines) -----------------------------------------
    def side_event(self, line, raw, ev, had_prefix, ts_tok, fields, path=None):
        """A line whose event is not a region event: a known DAMON event goes to
        ``side``, an unknown DAMON event is counted, anything else is ignored. A damaged
        known line raises RecordFormatError (strict) or is counted (lenient)."""
        if ev in KNOWN_SIDE_EVENTS:
            try:
                parse_side_fields(ev, fields, timestamp_ns(ts_tok, path, line), path, line,
                                  self.side)
            except RecordFormatError:
                if not self.lenient:
                    raise
                self.damaged(line)
                return
            self.side_lines += 1
        elif is_damon_event(ev, had_prefix):
            self.unknown_lines += 1
            if self.first_unknown is None:
                text = bytes(raw).decode("utf-8", "replace").strip()
                self.first_unknown = (line, text[:UNKNOWN_TEXT_MAX])

    def side_line(self, line, raw, path=None):
        """:meth:`side_event` of a whole line (the compiled engine hands these over)."""
        c = classify(bytes(raw))
        if c is None:
            return
        ev, had_prefix, ts_idx, toks = c
        self.side_event(line, raw, ev, had_prefix, toks[ts_idx][:-1], toks[ts_idx + 2:], path)

    def unknown_message(self):
        """One line about the unknown DAMON event lines, or None."""
        if not self.unknown_lines:
            return None
        line, text = self.first_unknown
        return ("%d line%s of DAMON trace events damo-pipe does not know %s not read "
                "(first at line %d: %s)" % (self.unknown_lines, "s" * (self.unknown_lines != 1),
                                           "were" if self.unknown_lines != 1 else "was",
                                           line, text))

    # -- summary --------------------------------------------------------------------
    @property
    def kept_lines(self):
        return self.events - self.dropped_lines

    def damage_message(self):
        """One line describing what lenient reading dropped, or None."""
        if not (self.dropped_snapshots or self.damaged_lines):
            return None
        parts = []
        if self.dropped_snapshots:
            parts.append("dropped %d incomplete snapshot%s (%d event line%s)"
                         % (self.dropped_snapshots, "s" * (self.dropped_snapshots != 1),
                            self.dropped_lines, "s" * (self.dropped_lines != 1)))
        if self.damaged_lines:
            parts.append("skipped %d damaged event line%s"
                         % (self.damaged_lines, "s" * (self.damaged_lines != 1)))
        return "%s; first damage at line %d" % (" and ".join(parts), self.first_damage)


__all__ = ["TraceState"]

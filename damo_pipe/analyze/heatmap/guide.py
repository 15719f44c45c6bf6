"""Heatmap guides (SEMANTICS.md §2.4): per record key, the time span, the address bounds,
the gaps every snapshot leaves unmapped and (for ``hottest``) the heat of each
contiguous region between them.

Streaming: every pass walks the records chunk by chunk through
:class:`damo_pipe.analyze._chunks.RecordSource`, carrying only the bounds and gaps.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from damo_pipe._engine import select_engine
from damo_pipe.analyze._chunks import RecordSource, normalized_idx
from damo_pipe.analyze.heatmap.one_pass_heats import OnePassHeats

#: the compiled twin of the guide scans
KERNELS = "damo_pipe.analyze._report_kernels"


def record_key(meta):
    """(kdamond_idx, context_idx, scheme_idx, target_id) as damo 3.4.3 sees them."""
    return (normalized_idx(meta.kdamond_idx), normalized_idx(meta.context_idx),
            meta.scheme_idx, meta.target_id)


@dataclasses.dataclass
class Guide:
    kdamond_idx: Optional[int]
    context_idx: Optional[int]
    scheme_idx: Optional[int]
    target_id: Optional[int]
    start_time: object = None          # int, or float for a deduced first start
    end_time: object = None
    lowest_addr: int = 0                # 0 = unset (damo's `if not lowest`)
    highest_addr: int = 0
    gaps: list = dataclasses.field(default_factory=list)    # [[start, end], ...]
    heats: Optional[list] = None        # per contiguous region, None = no access seen

    @property
    def key(self):
        return (self.kdamond_idx, self.context_idx, self.scheme_idx, self.target_id)

    def regions(self):
        """Contiguous regions: [lowest, g0.start], [g0.end, g1.start], ..., [gN.end, highest]."""
        out = []
        start = self.lowest_addr
        for g in self.gaps:
            out.append([start, g[0]])
            start = g[1]
        out.append([start, self.highest_addr])
        return out

    def total_space(self):
        return sum(e - s for s, e in self.regions())

    def hottest_index(self):
        regs = self.regions()
        heats = self.heats or [None] * len(regs)

        def density(i):
            s, e = regs[i]
            h = heats[i] or 0
            if e == s:
                return 0.0   # damo divides by zero here
            return h / (e - s)
        order = sorted(range(len(regs)), key=density, reverse=True)
        return order[0]

    def busiest_index(self):
        """The contiguous region with the most total access (heat, i.e. Σ size x
        samples): our pictures' default, where damo's ``hottest`` (heat per byte) can
        pick a tiny, noisy corner. Without any access seen: the largest region."""
        regs = self.regions()
        heats = [h or 0 for h in (self.heats or [None] * len(regs))]
        if not any(heats):
            return max(range(len(regs)), key=lambda i: regs[i][1] - regs[i][0])
        return max(range(len(regs)), key=lambda i: heats[i])

    def format(self, human=False):
        """damo's ``--guide`` text (``--guide_human``: times and sizes in human units, as
        damo's ``report record_info``: addresses with six decimals)."""
        if human:
            from damo_pipe.numfmt import format_sz, format_sz_accurate, format_time_ns
        else:
            format_sz = format_sz_accurate = format_time_ns = lambda v: "%d" % v
        lines = ["%s: %s" % (name, getattr(self, name))
                 for name in ("kdamond_idx", "context_idx", "scheme_idx", "target_id")
                 if getattr(self, name) is not None]
        lines.append("time: [%s, %s) (%s)" % (
            format_time_ns(self.start_time), format_time_ns(self.end_time),
            format_time_ns(self.end_time - self.start_time)))
        for idx, (s, e) in enumerate(self.regions()):
            lines.append("region\t%2d: [%s, %s) (%s)" % (
                idx, format_sz_accurate(s), format_sz_accurate(e), format_sz(e - s)))
        return "\n".join(lines)


def _first_max_age(chunk):
    lo, hi = chunk.region_bounds(0)
    return int(chunk.regions.age[lo:hi].max()) if hi > lo else 0


def _guide_start_time(meta, chunk, max_age=None):
    """damo: max(0, max age of the first snapshot) aggregation intervals before its
    start (``max_age``: that age when the first snapshot came in pieces)."""
    start = chunk.snapshot_start(0)
    if meta.intervals is not None:
        if max_age is None:
            max_age = _first_max_age(chunk)
        start = start - max(0, max_age) * (meta.intervals.aggr_us * 1000)
    return start


def _piece_gaps(st, en, carry):
    """The gaps a piece of a snapshot leaves (damo's loop in :func:`_snapshot_gaps`
    continued from ``carry``, the end of the piece before, 0 for the first piece) as an
    (n, 2) uint64 array, and the new carry. None when an address 0 needs damo's exact
    loop (``if not last_addr``)."""
    if len(st) == 0:
        return np.zeros((0, 2), np.uint64), carry
    if not (en.all() and st.all()):
        return None
    prev = np.empty(len(st), np.uint64)
    prev[0] = carry
    prev[1:] = en[:-1]
    m = prev != st
    if carry == 0:
        m[0] = False
    return np.stack([prev[m], st[m]], axis=1), int(en[-1])


def _piece_gaps_py(st, en, carry):
    """Reference twin of :func:`_piece_gaps` (any address)."""
    gaps = []
    last_addr = carry
    for s, e in zip(st.tolist(), en.tolist()):
        if not last_addr:
            last_addr = e
            continue
        if last_addr != s:
            gaps.append([last_addr, s])
        last_addr = e
    return np.array(gaps, np.uint64).reshape(-1, 2), last_addr


def _narrow_py(gaps, hs):
    """damo's narrowing of the guide's gaps by one snapshot's gaps ``hs`` (in order)."""
    narrowed = []
    for g in gaps:
        for h in hs:
            if g[1] >= h[0] and h[1] >= g[0]:
                g = [max(g[0], h[0]), min(g[1], h[1])]
        narrowed.append(g)
    return narrowed


def _narrow_cython(gaps, hs, K):
    """The same through the ``guide_scan`` kernel: a one-snapshot chunk of regions
    [h0.start, h0.start], [h0.end, h1.start], ..., [hN.end, hN.end] leaves exactly the
    gaps ``hs`` (gaps start above 0), so the kernel narrows ``gaps`` by them."""
    n = len(hs)
    rs = np.empty(n + 1, np.uint64)
    re = np.empty(n + 1, np.uint64)
    rs[0], re[0] = hs[0, 0], hs[0, 0]
    rs[1:] = hs[:, 1]
    re[:n] = hs[:, 0]
    re[n] = hs[n - 1, 1]
    g = np.array(gaps, np.uint64).reshape(-1, 2)
    K.guide_scan(rs, re, np.zeros(1, np.int64), np.array([n + 1], np.int64), g, len(g),
                 1, 1, 0)
    return [[int(a), int(b)] for a, b in g]


class _PieceScan:
    """The guide scan of a snapshot that comes in pieces (page-granularity records):
    the bounds fold and the snapshot's gaps, continued from piece to piece; the gaps
    either initialise the guide's (when it had none at the snapshot's start) or narrow
    them, piece by piece (damo narrows each guide gap by the snapshot's gaps in order,
    so narrowing by consecutive parts of them is the same)."""

    def __init__(self):
        self.carry = 0
        self.initialising = False

    def feed(self, guide, piece, K):
        """Scan ``piece``; True while the guide's gaps are still being initialised by
        its snapshot (they are then incomplete until its last piece)."""
        chunk = piece.chunk
        if not piece.continues:
            self.carry = 0
            self.initialising = not guide.gaps
        st, en = chunk.regions.start, chunk.regions.end
        fast = _piece_gaps(st, en, self.carry) if K is not None else None
        if fast is None:
            hs, self.carry = _piece_gaps_py(st, en, self.carry)
            for s, e in zip(st.tolist(), en.tolist()):
                if not guide.lowest_addr or s < guide.lowest_addr:
                    guide.lowest_addr = s
                if not guide.highest_addr or e > guide.highest_addr:
                    guide.highest_addr = e
        else:
            hs, self.carry = fast
            if len(st):
                lo, hi = int(st.min()), int(en.max())
                if not guide.lowest_addr or lo < guide.lowest_addr:
                    guide.lowest_addr = lo
                if not guide.highest_addr or hi > guide.highest_addr:
                    guide.highest_addr = hi
        if len(hs):
            if self.initialising:
                guide.gaps.extend([int(a), int(b)] for a, b in hs)
            elif K is None:
                guide.gaps = _narrow_py(guide.gaps, hs.tolist())
            else:
                guide.gaps = _narrow_cython(guide.gaps, hs, K)
        return self.initialising and piece.goes_on


def _scan_py(guide, chunk, first=0):
    """Reference twin of ``guide_scan``: bounds fold and gap narrowing, per snapshot."""
    st, en = chunk.regions.start, chunk.regions.end
    for k in range(first, chunk.nr_snapshots):
        lo, hi = chunk.region_bounds(k)
        for r in range(lo, hi):
            s, e = int(st[r]), int(en[r])
            if not guide.lowest_addr or s < guide.lowest_addr:
                guide.lowest_addr = s
            if not guide.highest_addr or e > guide.highest_addr:
                guide.highest_addr = e
        gaps = _snapshot_gaps(chunk, k)
        if not guide.gaps:
            guide.gaps = gaps
            continue
        narrowed = []
        for g in guide.gaps:
            for h in gaps:
                if g[1] >= h[0] and h[1] >= g[0]:
                    g = [max(g[0], h[0]), min(g[1], h[1])]
            narrowed.append(g)
        guide.gaps = narrowed


def _snapshot_gaps(chunk, k):
    """The gaps snapshot k leaves, [[start, end], ...] (damo's loop)."""
    lo, hi = chunk.region_bounds(k)
    gaps, _ = _piece_gaps_py(chunk.regions.start[lo:hi], chunk.regions.end[lo:hi], 0)
    return gaps.tolist()


def _scan_cython(guide, chunk, K):
    """``guide_scan`` kernel (module ``K``): the same fold as :func:`_scan_py`."""
    gaps = np.array(guide.gaps, np.uint64).reshape(-1, 2) if guide.gaps else np.zeros((0, 2), np.uint64)
    first = 0
    lowest, highest = guide.lowest_addr, guide.highest_addr
    snaps = chunk.snapshots
    while True:
        lowest, highest, init_at = K.guide_scan(
            chunk.regions.start, chunk.regions.end, snaps.region_offset, snaps.nr_regions,
            gaps, len(gaps), lowest, highest, first)
        if init_at < 0:
            break
        gaps = np.array(_snapshot_gaps(chunk, init_at), np.uint64).reshape(-1, 2)
        first = init_at + 1
    guide.lowest_addr, guide.highest_addr = int(lowest), int(highest)
    guide.gaps = [[int(a), int(b)] for a, b in gaps]


class GuideBuilder:
    """Guide summary of one record built chunk by chunk (Cython engine): bounds, gaps,
    one-pass heats and the first snapshot's max age. The archive writer stores
    :meth:`summary` (``guide/`` group, docs/format.md) so that readers skip the scan."""

    def __init__(self, with_heats=True):
        self.K = select_engine("cython", KERNELS)
        self.guide = Guide(None, None, None, None)
        self.heats = OnePassHeats(self.K) if with_heats else None
        self.nr_snapshots = 0
        self.first_max_age = None

    def feed(self, chunk):
        if chunk.nr_snapshots == 0:
            return
        if self.first_max_age is None:
            self.first_max_age = max(0, _first_max_age(chunk))
        _scan_cython(self.guide, chunk, self.K)
        if self.heats is not None:
            self.heats.feed(chunk, self.guide.gaps)
        self.nr_snapshots += chunk.nr_snapshots

    def summary(self):
        """dict(lowest_addr, highest_addr, gaps, heats (None = unknown), first_max_age,
        nr_snapshots), or None when nothing was fed."""
        if not self.nr_snapshots:
            return None
        g = self.guide
        heats = self.heats.heats(g) if self.heats is not None else None
        return {"lowest_addr": g.lowest_addr, "highest_addr": g.highest_addr,
                "gaps": [list(x) for x in g.gaps], "heats": heats,
                "first_max_age": self.first_max_age, "nr_snapshots": self.nr_snapshots}


def _guide_from_summary(key, meta, last_end, first_start, summary):
    """A Guide from a stored summary (same values as scanning the record)."""
    start = first_start
    if meta.intervals is not None:
        start = start - summary["first_max_age"] * (meta.intervals.aggr_us * 1000)
    g = Guide(*key, start_time=start, end_time=last_end)
    g.lowest_addr, g.highest_addr = summary["lowest_addr"], summary["highest_addr"]
    g.gaps = [list(x) for x in summary["gaps"]]
    g.heats = summary["heats"]
    return g


def compute_guides(records, engine="cython", with_heats=False):
    """damo's heatmap guides, sorted by total space (descending, stable).

    ``records``: list of Records or a RecordSource. ``with_heats`` also sums the heats
    of every contiguous region (needed for ``hottest``): the Cython engine gathers them
    during the same pass when it can (:class:`OnePassHeats`), otherwise a second pass
    computes them exactly as damo does. With the Cython engine, a key whose only
    non-empty record is in an archive carrying a guide summary written at close time
    (:class:`GuideBuilder`) takes its guide from there without reading any region.
    """
    K = select_engine(engine, KERNELS)
    src = RecordSource.of(records)
    metas = src.metas
    keys = [record_key(m) for m in metas]
    stored = {}
    if K is not None:
        n_snap = [src.nr_snapshots(i) for i in range(len(metas))]
        nonempty = {}
        for i, key in enumerate(keys):
            if n_snap[i]:
                nonempty.setdefault(key, []).append(i)
        for key, idxs in nonempty.items():
            if len(idxs) != 1:
                continue
            sg = src.stored_guide(idxs[0])
            if sg is not None and (not with_heats or sg["heats"] is not None):
                stored[key] = (idxs[0], sg)
    guides = {}
    one_pass = {}
    pieces = {}      # key -> _PieceScan of the snapshot that comes in pieces
    for i, meta in enumerate(metas):
        key = keys[i]
        if key in stored:
            if stored[key][0] == i:
                sg = stored[key][1]
                n = src.nr_snapshots(i)
                last_end = int(src.snapshot_rows(i, n - 1, n).end_ns[0])
                guides[key] = _guide_from_summary(key, meta, last_end, sg["first_start"], sg)
            continue
        first_age = None    # the first snapshot's max age while it comes in pieces
        for piece in src.iter_pieces(i, columns=_GUIDE_COLUMNS):
            chunk = piece.chunk
            g = guides.get(key)
            if g is None:
                g = Guide(*key, start_time=_guide_start_time(meta, chunk))
                guides[key] = g
                if with_heats and K is not None:
                    one_pass[key] = OnePassHeats(K)
                if piece.goes_on:
                    first_age = _first_max_age(chunk)
            elif piece.continues and first_age is not None:
                first_age = max(first_age, _first_max_age(chunk))
                g.start_time = _guide_start_time(meta, chunk, first_age)
            if not piece.goes_on:
                first_age = None
            g.end_time = int(chunk.snapshots.end_ns[-1])
            if piece.continues or piece.goes_on:
                scan = pieces.setdefault(key, _PieceScan())
                initialising = scan.feed(g, piece, K)
                if with_heats and K is not None:
                    # gaps still growing are no final gaps yet: the regions wait (stash)
                    one_pass[key].feed(chunk, [] if initialising else g.gaps)
            elif K is None:
                _scan_py(g, chunk)
            else:
                _scan_cython(g, chunk, K)
                if with_heats:
                    one_pass[key].feed(chunk, g.gaps)
    out = sorted(guides.values(), key=lambda g: g.total_space(), reverse=True)
    if with_heats:
        missing = []
        for g in out:
            if g.key in stored:
                continue
            acc = one_pass.get(g.key)
            h = acc.heats(g) if acc is not None else None
            if h is None:
                missing.append(g)
            else:
                g.heats = h
        if missing:
            _add_guide_heats(src, missing, K)
    return out


#: region columns the guide scan needs
_GUIDE_COLUMNS = ("start", "end", "nr_accesses", "age")


def _add_guide_heats(src, guides, K):
    """damo's exact second pass: Σ size * samples of the regions touching each contiguous
    region (``guide_heats`` kernel of module ``K``, or Python numbers when K is None)."""
    by_key = {g.key: g for g in guides}
    state = {}
    for g in guides:
        regs = g.regions()
        cs = np.array([r[0] for r in regs], np.uint64)
        ce = np.array([r[1] for r in regs], np.uint64)
        c_sorted = bool(np.all(cs[1:] >= cs[:-1]) and np.all(ce[1:] >= ce[:-1]))
        state[g.key] = [regs, cs, ce, c_sorted, np.zeros(len(regs), np.int64),
                        np.zeros(len(regs), np.uint64), np.zeros(len(regs), np.uint8),
                        [None] * len(regs)]
    for i, meta in enumerate(src.metas):
        key = record_key(meta)
        if key not in by_key:
            continue
        regs, cs, ce, c_sorted, hi, lo, touched, py_heats = state[key]
        for piece in src.iter_pieces(i, columns=("start", "end", "nr_accesses")):
            chunk = piece.chunk      # a sum over regions: pieces of a snapshot add up
            if K is None:
                st, en, sm = chunk.regions.start, chunk.regions.end, chunk.regions.nr_accesses
                for r in range(chunk.nr_regions):
                    samples = int(sm[r])
                    if samples == 0:
                        continue
                    s, e = int(st[r]), int(en[r])
                    for c, (a, b) in enumerate(regs):
                        if not (e < a or b < s):
                            py_heats[c] = (py_heats[c] or 0) + (e - s) * samples
            else:
                K.guide_heats(chunk.regions.start, chunk.regions.end, chunk.regions.nr_accesses,
                              cs, ce, c_sorted, hi, lo, touched)
    for g in guides:
        regs, cs, ce, c_sorted, hi, lo, touched, py_heats = state[g.key]
        if K is None:
            g.heats = py_heats
        else:
            g.heats = [(int(hi[c]) * (1 << 64) + int(lo[c])) if touched[c] else None
                       for c in range(len(regs))]


def format_guides(guides, human=False):
    """``--guide`` text of all guides (``--guide_human``: human units)."""
    return "\n".join(g.format(human) for g in guides)

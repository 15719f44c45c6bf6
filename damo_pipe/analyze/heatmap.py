"""``damo report heatmap``: guides, pixel grids and their text renderings (SEMANTICS.md §2).

Streaming: every pass (guide scan, hottest-range heats, pixel accumulation) walks the
records chunk by chunk through :class:`damo_pipe.analyze._chunks.RecordSource`, carrying
only the little state damo's algorithm needs across chunks (the previous snapshot's end
for the clamp, the guide's bounds and gaps), so memory does not grow with the record.

Two engines compute the same numbers: ``"cython"`` (nogil kernels in
``_report_kernels.pyx``) and ``"python"`` (the reference twin below, written with
Python numbers exactly as damo 3.4.3 computes them).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from damo_pipe._prefetch import prefetched, usable_cpus as _cpus
from damo_pipe.analyze._chunks import RecordSource, normalized_idx
from damo_pipe.errors import ReportError, UsageError

ENGINES = ("cython", "python")

#: largest integer magnitude for which the Cython kernel's double arithmetic is exact
_EXACT = 2 ** 53


# ---------------------------------------------------------------------------
# helpers shared by the engines
# ---------------------------------------------------------------------------
def record_key(meta):
    """(kdamond_idx, context_idx, scheme_idx, target_id) as damo 3.4.3 sees them."""
    return (normalized_idx(meta.kdamond_idx), normalized_idx(meta.context_idx),
            meta.scheme_idx, meta.target_id)


def _num(x):
    """Python int for integral intervals values, float otherwise (damo keeps file types)."""
    if isinstance(x, float) and x.is_integer() and not isinstance(x, bool):
        return x
    return x


def snapshot_aggr_us(meta, chunk, k):
    """damo's per-snapshot aggregation interval in µs (SEMANTICS.md §2.3)."""
    iv = meta.intervals
    goal = iv.goal
    if goal is None or goal.aggrs == 0:
        return iv.aggr_us
    ratio = iv.aggr_us / iv.sample_us
    siu = chunk.snapshots.sample_interval_us[k]
    if not math.isnan(siu):
        siu = float(siu)
        if siu.is_integer():
            siu = int(siu)
        return siu * ratio
    d = (int(chunk.snapshots.end_ns[k]) - chunk.snapshot_start(k)) / 1000
    if abs(d - iv.aggr_us) / iv.aggr_us < 0.1:
        return iv.aggr_us
    return d


def _aggr_us_array(meta, chunk):
    n = chunk.nr_snapshots
    iv = meta.intervals
    goal = iv.goal
    if goal is None or goal.aggrs == 0:
        return np.full(n, float(iv.aggr_us))
    return np.array([float(snapshot_aggr_us(meta, chunk, k)) for k in range(n)], np.float64)


def check_intervals_consistency(metas):
    """'hz' when all records have intervals, 'samples' when none has; error if mixed."""
    have = [m.intervals is not None for m in metas]
    if any(have) and not all(have):
        raise ReportError("Some records have intervals while some not.  Cannot proceed.")
    return "hz" if (have and all(have)) else "samples"


# ---------------------------------------------------------------------------
# guides (§2.4)
# ---------------------------------------------------------------------------
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

    def format(self, human=False):
        """damo's ``--guide`` text (``--guide_human``: times and sizes in human units)."""
        if human:
            from damo_pipe.analyze.damo_format import format_sz, format_time_ns
        else:
            format_sz = format_time_ns = lambda v: "%d" % v
        lines = ["%s: %s" % (name, getattr(self, name))
                 for name in ("kdamond_idx", "context_idx", "scheme_idx", "target_id")
                 if getattr(self, name) is not None]
        lines.append("time: [%s, %s) (%s)" % (
            format_time_ns(self.start_time), format_time_ns(self.end_time),
            format_time_ns(self.end_time - self.start_time)))
        for idx, (s, e) in enumerate(self.regions()):
            lines.append("region\t%2d: [%s, %s) (%s)" % (
                idx, format_sz(s), format_sz(e), format_sz(e - s)))
        return "\n".join(lines)


def _guide_start_time(meta, chunk):
    start = chunk.snapshot_start(0)
    if meta.intervals is not None:
        lo, hi = chunk.region_bounds(0)
        max_age = int(chunk.regions.age[lo:hi].max()) if hi > lo else 0
        # damo: max(0, max age) aggregation intervals before the first start
        start = start - max(0, max_age) * (meta.intervals.aggr_us * 1000)
    return start


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
    lo, hi = chunk.region_bounds(k)
    st, en = chunk.regions.start, chunk.regions.end
    gaps = []
    last_addr = None
    for r in range(lo, hi):
        s, e = int(st[r]), int(en[r])
        if not last_addr:
            last_addr = e
            continue
        if last_addr != s:
            gaps.append([last_addr, s])
        last_addr = e
    return gaps


def _scan_cython(guide, chunk):
    from damo_pipe.analyze import _report_kernels as K
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


class _OnePassHeats:
    """Heats of the final contiguous regions, gathered during the guide scan.

    heats(C) = Σ w over regions touching C (closed) with w = size * samples, samples != 0
             = F(C.end) - G(C.start),  F(x) = Σ_{start <= x} w,  G(x) = Σ_{end < x} w
    (start <= end). Gaps are only narrowed once initialised, so every final query point
    lies in an initial gap [a, b] (or is lowest/highest): per gap we keep Σ w below a
    (kernel ``heats_scan``, 128-bit) and the (boundary, w) pairs inside [a, b]. Regions
    seen before the gaps exist are stashed (bounded). ``ok`` turns False when an
    assumption fails (address 0, start > end, too many gaps, dropped stash); the caller
    then runs damo's exact second pass.
    """

    MAX_GAPS = 64
    MAX_STASH = 1 << 18

    def __init__(self):
        self.ok = True
        self.g0 = None
        self.stash = []
        self.stash_n = 0
        self.stash_dropped = False
        self.total = 0
        self.max_start = 0
        self.in_s = self.in_e = None

    def _scan(self, st, en, sm, count_total=True):
        from damo_pipe.analyze import _report_kernels as K
        idx = np.empty(len(st), np.int64)
        t_hi, t_lo, mx, n_in, bad = K.heats_scan(st, en, sm, self.ga, self.gb, self.bs_hi, self.bs_lo,
                                                 self.be_hi, self.be_lo, idx)
        if bad:
            self.ok = False
            return
        if count_total:
            self.total += int(t_hi) * (1 << 64) + int(t_lo)
            self.max_start = max(self.max_start, int(mx))
        if n_in and self.g0:
            idx = idx[:n_in]
            s_i, e_i, sm_i = st[idx], en[idx], sm[idx]
            size = e_i - s_i
            nz = sm_i != 0
            if not nz.any():
                return
            s_i, e_i, size, sm_i = s_i[nz], e_i[nz], size[nz], sm_i[nz]
            # int64 products and sums must stay exact
            if int(size.max()) * int(np.abs(sm_i).max()) * len(size) >= (1 << 62):
                self.ok = False
                return
            w_i = size.astype(np.int64) * sm_i
            for g, (ga, gb) in enumerate(self.g0):
                a, b = np.uint64(ga), np.uint64(gb)
                m = (s_i >= a) & (s_i <= b)
                if m.any():
                    self.in_s[g].append((s_i[m], w_i[m]))
                m = (e_i >= a) & (e_i <= b)
                if m.any():
                    self.in_e[g].append((e_i[m], w_i[m]))

    def _set_gaps(self, gaps):
        self.g0 = [(int(a), int(b)) for a, b in gaps]
        G = len(self.g0)
        self.ga = np.array([a for a, _ in self.g0], np.uint64)
        self.gb = np.array([b for _, b in self.g0], np.uint64)
        self.bs_hi = np.zeros(G, np.int64)
        self.bs_lo = np.zeros(G, np.uint64)
        self.be_hi = np.zeros(G, np.int64)
        self.be_lo = np.zeros(G, np.uint64)
        self.in_s = [[] for _ in range(G)]
        self.in_e = [[] for _ in range(G)]

    def feed(self, chunk, gaps):
        if not self.ok:
            return
        r = chunk.regions
        if self.g0 is None and gaps:
            if len(gaps) > self.MAX_GAPS or self.stash_dropped:
                self.ok = False
                return
            self._set_gaps(gaps)
            stash, self.stash = self.stash, []
            for st, en, sm in stash:
                self._scan(st, en, sm, count_total=False)
        if self.g0 is None:
            self._set_gaps([])
            self._scan(r.start, r.end, r.nr_accesses)
            self.g0 = None
            if self.ok and not self.stash_dropped:
                nz = r.nr_accesses != 0
                self.stash.append((r.start[nz], r.end[nz], r.nr_accesses[nz]))
                self.stash_n += int(nz.sum())
                if self.stash_n > self.MAX_STASH:
                    self.stash, self.stash_dropped = [], True
            return
        self._scan(r.start, r.end, r.nr_accesses)

    def _gap_of(self, x):
        for i, (a, b) in enumerate(self.g0):
            if a <= x <= b:
                return i
        return None

    def _F(self, x, guide):
        if x == guide.highest_addr and self.max_start <= x:
            return self.total
        i = self._gap_of(x)
        if i is None:
            raise LookupError
        v = int(self.bs_hi[i]) * (1 << 64) + int(self.bs_lo[i])
        return v + sum(int(w[b <= np.uint64(x)].sum()) for b, w in self.in_s[i])

    def _G(self, x, guide):
        if x == guide.lowest_addr:
            return 0             # no address 0: lowest is the smallest start <= every end
        i = self._gap_of(x)
        if i is None:
            raise LookupError
        v = int(self.be_hi[i]) * (1 << 64) + int(self.be_lo[i])
        return v + sum(int(w[b < np.uint64(x)].sum()) for b, w in self.in_e[i])

    def heats(self, guide):
        """Heats per contiguous region, or None when the exact pass is needed."""
        if not self.ok:
            return None
        regs = guide.regions()
        if self.g0 is None:
            if len(regs) != 1:
                return None
            self.g0 = []
        try:
            return [self._F(e, guide) - self._G(s, guide) for s, e in regs]
        except LookupError:
            return None


class GuideBuilder:
    """Guide summary of one record built chunk by chunk (Cython engine): bounds, gaps,
    one-pass heats and the first snapshot's max age. The archive writer stores
    :meth:`summary` (``guide/`` group, docs/format.md) so that readers skip the scan."""

    def __init__(self, with_heats=True):
        self.guide = Guide(None, None, None, None)
        self.heats = _OnePassHeats() if with_heats else None
        self.nr_snapshots = 0
        self.first_max_age = None

    def feed(self, chunk):
        if chunk.nr_snapshots == 0:
            return
        if self.first_max_age is None:
            lo, hi = chunk.region_bounds(0)
            self.first_max_age = max(0, int(chunk.regions.age[lo:hi].max())) if hi > lo else 0
        _scan_cython(self.guide, chunk)
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


def _guide_from_summary(key, meta, snaps, first_start, summary):
    """A Guide from a stored summary (same values as scanning the record)."""
    start = first_start
    if meta.intervals is not None:
        start = start - summary["first_max_age"] * (meta.intervals.aggr_us * 1000)
    g = Guide(*key, start_time=start, end_time=int(snaps.end_ns[len(snaps) - 1]))
    g.lowest_addr, g.highest_addr = summary["lowest_addr"], summary["highest_addr"]
    g.gaps = [list(x) for x in summary["gaps"]]
    g.heats = summary["heats"]
    return g


def compute_guides(records, engine="cython", with_heats=False):
    """damo's heatmap guides, sorted by total space (descending, stable).

    ``records``: list of Records or a RecordSource. ``with_heats`` also sums the heats
    of every contiguous region (needed for ``hottest``): the Cython engine gathers them
    during the same pass when it can (:class:`_OnePassHeats`), otherwise a second pass
    computes them exactly as damo does. With the Cython engine, a key whose only
    non-empty record is in an archive carrying a guide summary written at close time
    (:class:`GuideBuilder`) takes its guide from there without reading any region.
    """
    src = RecordSource.of(records)
    metas = src.metas
    keys = [record_key(m) for m in metas]
    stored = {}
    if engine != "python":
        n_snap = [len(src.snapshot_table(i)) for i in range(len(metas))]
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
    for i, meta in enumerate(metas):
        key = keys[i]
        if key in stored:
            if stored[key][0] == i:
                sg = stored[key][1]
                guides[key] = _guide_from_summary(key, meta, src.snapshot_table(i),
                                                  sg["first_start"], sg)
            continue
        for chunk in src.iter_chunks(i, columns=_GUIDE_COLUMNS):
            g = guides.get(key)
            if g is None:
                g = Guide(*key, start_time=_guide_start_time(meta, chunk))
                guides[key] = g
                if with_heats and engine != "python":
                    one_pass[key] = _OnePassHeats()
            g.end_time = int(chunk.snapshots.end_ns[-1])
            if engine == "python":
                _scan_py(g, chunk)
            else:
                _scan_cython(g, chunk)
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
            _add_guide_heats(src, missing, engine)
    return out


#: region columns the guide scan needs
_GUIDE_COLUMNS = ("start", "end", "nr_accesses", "age")


def _add_guide_heats(src, guides, engine):
    from damo_pipe.analyze import _report_kernels as K
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
        for chunk in src.iter_chunks(i, columns=("start", "end", "nr_accesses")):
            if engine == "python":
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
        if engine == "python":
            g.heats = py_heats
        else:
            g.heats = [(int(hi[c]) * (1 << 64) + int(lo[c])) if touched[c] else None
                       for c in range(len(regs))]


def format_guides(guides, human=False):
    return "\n".join(g.format(human) for g in guides)


# ---------------------------------------------------------------------------
# range arguments (§2.1)
# ---------------------------------------------------------------------------
_NS_UNITS = {"ns": 1, "us": 1000, "ms": 1000 ** 2, "s": 1000 ** 3,
             "m": 60 * 1000 ** 3, "h": 3600 * 1000 ** 3, "d": 24 * 3600 * 1000 ** 3}


def damo_text_to_ns(txt):
    """damo 3.4.3's text_to_ns (``"20s"`` -> int 20000000000; ``"1.5s"`` -> float)."""
    from damo_pipe.formats.numbers import text_to_nr, U64_MAX
    if not isinstance(txt, str):
        return txt
    if txt == "min":
        return 0
    if txt == "max":
        return U64_MAX
    try:
        return text_to_nr(txt)
    except ValueError:
        pass
    fields = txt.split()
    if len(fields) > 1:
        total = 0
        for i in range(0, len(fields), 2):
            total += damo_text_to_ns("".join(fields[i:i + 2]))
        return total
    if txt[-2:] not in _NS_UNITS and txt[-1:] not in _NS_UNITS:
        return float(txt)
    unit = txt[-2:]
    if unit in ("ns", "us", "ms"):
        number = text_to_nr(txt[:-2])
    else:
        unit = txt[-1]
        number = text_to_nr(txt[:-1])
    return number * _NS_UNITS[unit]


def resolve_time_range(words, guide):
    """``--time_range S E [base]`` -> [start, end] as damo computes them."""
    if words is None:
        return [guide.start_time, guide.end_time]
    try:
        start, end = damo_text_to_ns(words[0]), damo_text_to_ns(words[1])
        if len(words) > 2:
            base = words[2]
            if base == "guided":
                off = guide.start_time
            elif base == "guided_end":
                off = guide.end_time
            else:
                off = damo_text_to_ns(base)
            start, end = start + off, end + off
    except (ValueError, IndexError) as e:
        raise UsageError("wrong --time_range %s (%s)" % (" ".join(map(str, words)), e))
    return [start, end]


def guided_address_ranges(guide, draw_range):
    regs = guide.regions()
    if draw_range == "all":
        return regs
    return [regs[guide.hottest_index()]]


def resolve_address_ranges(ranges, guided):
    """``--address_range S E [guided]`` (repeatable) -> list of [start, end]."""
    from damo_pipe.formats.numbers import text_to_bytes
    if not ranges:
        return [list(r) for r in guided]
    out = []
    for idx, words in enumerate(ranges):
        try:
            start, end = text_to_bytes(words[0]), text_to_bytes(words[1])
        except (ValueError, IndexError) as e:
            raise UsageError("wrong --address_range %s (%s)" % (" ".join(map(str, words)), e))
        if len(words) > 2 and words[2] == "guided":
            if idx >= len(guided):
                raise UsageError("no guided address range for --address_range #%d" % idx)
            start += guided[idx][0]
            end += guided[idx][0]
        out.append([start, end])
    return out


# ---------------------------------------------------------------------------
# pixel grid (§2.2, §2.3)
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class HeatmapGrid:
    """One heatmap: T x A pixel heats (NaN = untouched) and the damo axis values."""

    heat: np.ndarray
    t_start: object            # int, or float (deduced first start / guided ranges)
    time_unit: object
    a_start: int
    addr_unit: int
    unit: str = "samples"      # 'hz' or 'samples'
    target_id: Optional[int] = None
    kdamond_idx: Optional[int] = None
    context_idx: Optional[int] = None
    scheme_idx: Optional[int] = None
    t_end: object = None       # requested time range end (for labels)
    a_end: Optional[int] = None

    @property
    def shape(self):
        return self.heat.shape

    def pixel_times(self):
        return [int(self.t_start + i * self.time_unit) for i in range(self.heat.shape[0])]

    def pixel_addrs(self):
        return [int(self.a_start + j * self.addr_unit) for j in range(self.heat.shape[1])]


def _new_grid(t_range, a_range, resol):
    T, A = int(resol[0]), int(resol[1])
    if T <= 0 or A <= 0:
        raise UsageError("--resol values must be positive")
    t_start, t_end = t_range
    a_start, a_end = a_range
    time_unit = (t_end - t_start) // T
    addr_unit = (a_end - a_start) // A
    if time_unit <= 0 or addr_unit <= 0:
        raise ReportError("time or address range [%s, %s) x [%s, %s) is smaller than the resolution"
                          " %dx%d" % (t_start, t_end, a_start, a_end, T, A))
    return T, A, t_start, time_unit, a_start, addr_unit


def _accumulate_py(heat, pts, grid_params, meta, chunk, last_end, df_passed):
    """Reference twin of ``heatmap_accumulate`` (damo's code with Python numbers)."""
    T, A, t_start, tu, a_start, au = grid_params
    a_map_end = a_start + A * au
    iv = meta.intervals
    aggr_ns = iv.aggr_us * 1000 if iv is not None else None
    st_col, en_col = chunk.regions.start, chunk.regions.end
    sm_col, age_col, pf_col = chunk.regions.nr_accesses, chunk.regions.age, chunk.regions.sz_filter_passed
    ptimes = [int(t_start + i * tu) for i in range(T)]
    paddrs = [int(a_start + j * au) for j in range(A)]
    for k in range(chunk.nr_snapshots):
        s_start = chunk.snapshot_start(k)
        s_end = int(chunk.snapshots.end_ns[k])
        aggr_us = snapshot_aggr_us(meta, chunk, k) if iv is not None else None
        lo, hi = chunk.region_bounds(k)
        for r in range(lo, hi):
            r_start, r_end = int(st_col[r]), int(en_col[r])
            if r_end < a_start or a_map_end < r_start:
                continue
            if iv is not None:
                age = max(0, int(age_col[r]))   # unknown age (-1): no back-extension
                st = s_start - age * aggr_ns
            else:
                st = s_start
            if last_end is not None and st < last_end:
                st = last_end
            obs = st
            samples = int(sm_col[r])
            if iv is not None:
                v = samples / (aggr_us / 1000000)
            else:
                v = samples
            if df_passed:
                v = v * int(pf_col[r]) / (r_end - r_start)
            i0 = int((st - t_start) / tu)
            i1 = int((s_end - t_start) / tu)
            j0 = int((r_start - a_start) / au)
            j1 = int((r_end - a_start) / au)
            for i in range(max(i0, 0), min(i1, T - 1) + 1):
                ptime = ptimes[i]
                dt = min(s_end, ptime + tu) - max(obs, ptime)
                row = heat[i]
                for j in range(max(j0, 0), min(j1, A - 1) + 1):
                    paddr = paddrs[j]
                    da = min(r_end, paddr + au) - max(r_start, paddr)
                    h = v * dt * da
                    cur = row[j]
                    if cur is None:
                        cur = 0
                    row[j] = float(h + cur * pts) / pts
        last_end = s_end
    return last_end


def _times_exact(*values):
    for v in values:
        if isinstance(v, float):
            if not math.isfinite(v) or abs(v) >= _EXACT:
                return False
        elif abs(int(v)) >= _EXACT:
            return False
    return True


class _CythonAccumulator:
    #: chunks smaller than this run in one thread (thread hand-off would cost more)
    PARALLEL_MIN_REGIONS = 1 << 16

    def __init__(self, grid_params, df_passed, parallel=None):
        self.parallel = (_cpus() > 1) if parallel is None else parallel
        self._executor = None
        T, A, t_start, tu, a_start, au = grid_params
        self.T, self.A = T, A
        self.t_start, self.tu, self.a_start, self.au = t_start, tu, a_start, au
        self.heat = np.full((T, A), np.nan)
        ptimes = [int(t_start + i * tu) for i in range(T)]
        self.ptime = np.array(ptimes, np.float64)
        self.ptime_next = np.array([p + tu for p in ptimes], np.float64)
        self.paddr = np.array([a_start + j * au for j in range(A)], np.uint64)
        self.pts = float(tu * au)
        self.a_map_end = a_start + A * au
        self.df_passed = df_passed

    def add(self, meta, chunk, last_end):
        from damo_pipe.analyze import _report_kernels as K
        iv = meta.intervals
        snaps = chunk.snapshots
        starts = snaps.start_ns.astype(np.float64)
        start_float = np.zeros(len(starts), np.uint8)
        s0 = chunk.snapshot_start(0)
        if isinstance(s0, float):
            starts[0] = s0
            start_float[0] = 1
        if iv is not None:
            aggr_us = _aggr_us_array(meta, chunk)
            aggr_ns = iv.aggr_us * 1000
        else:
            aggr_us = np.zeros(0)
            aggr_ns = 0
        ends = snaps.end_ns.astype(np.float64)
        args = (self.heat, self.ptime, self.ptime_next, self.paddr,
                starts, ends, start_float,
                snaps.region_offset, snaps.nr_regions,
                chunk.regions.start, chunk.regions.end, chunk.regions.nr_accesses,
                chunk.regions.age, chunk.regions.sz_filter_passed, aggr_us,
                iv is not None, float(aggr_ns), isinstance(aggr_ns, float),
                float(self.t_start), float(self.tu), isinstance(self.tu, float),
                self.a_start, self.au, self.a_map_end, self.pts, self.df_passed,
                last_end is not None, float(last_end) if last_end is not None else 0.0)
        split = self._band_split(ends, chunk.nr_regions)
        if split is None:
            has_last, last = K.heatmap_accumulate(*args)
        else:
            # two disjoint row bands, one in the helper thread: same pixels, same order
            upper = self._pool().submit(K.heatmap_accumulate, *args, split, self.T)
            has_last, last = K.heatmap_accumulate(*args, 0, split)
            upper.result()
        return int(last) if has_last else None

    def _band_split(self, ends, nr_regions):
        """Row splitting this chunk's rows in two halves of its snapshots, or None when
        one thread is enough (small chunk, one CPU, or the chunk covers one row)."""
        if nr_regions < self.PARALLEL_MIN_REGIONS or not self.parallel or len(ends) < 2:
            return None
        mid = float(ends[len(ends) // 2])
        row = int((mid - float(self.t_start)) / float(self.tu))
        return row if 0 < row < self.T else None

    def _pool(self):
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="heatmap-band")
        return self._executor

    def close(self):
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None


def _cython_usable(grid_params, chunk, meta):
    T, A, t_start, tu, a_start, au = grid_params
    if not _times_exact(t_start, tu, t_start + (T + 1) * tu):
        return False
    if a_start + (A + 1) * au >= 2 ** 63:
        return False
    snaps = chunk.snapshots
    if chunk.nr_snapshots and (int(snaps.end_ns.max()) >= _EXACT or int(snaps.start_ns.min()) <= -_EXACT):
        return False
    if meta.intervals is not None:
        aggr_ns = meta.intervals.aggr_us * 1000
        if chunk.nr_regions and abs(int(chunk.regions.age.max()) * aggr_ns) >= _EXACT:
            return False
    if chunk.nr_regions and int(chunk.regions.end.max()) >= 2 ** 63:
        return False
    return True


def _checked(chunks, grid_params, meta):
    """(chunk, whether the Cython kernel computes it exactly) for each chunk."""
    try:
        for chunk in chunks:
            yield chunk, _cython_usable(grid_params, chunk, meta)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _needed_snapshots(snaps, t_start, tu, map_end):
    """[lo, hi) of the snapshots that can touch the map (time-ordered records only).

    A snapshot ending at or before ``t_start - tu`` maps to rows < 0; once the previous
    snapshot ends at or after the map end, the clamp keeps every later one out.
    The end of snapshot lo-1 is passed as damo's ``last`` and the record's final end
    is carried to the next record, so the result equals a full scan.
    """
    n = len(snaps)
    ends = snaps.end_ns
    if n < 2 or not bool(np.all(np.diff(ends) >= 0)):
        return 0, n
    # one row of margin on both sides against float rounding of the row index
    lo = int(np.searchsorted(ends, t_start - 2 * tu, side="right"))
    lo = max(0, min(lo, n))
    hi = int(np.searchsorted(ends, map_end + tu, side="right")) + 1
    return lo, max(lo, min(hi, n))


#: archive chunks read ahead of the pixel kernel
_PREFETCH_DEPTH = 2


def accumulate_heatmap(src, indices, t_range, a_range, resol, df_passed=False,
                       engine="cython", unit="samples", key=None):
    """Build one HeatmapGrid from the records ``indices`` of ``src`` (in order)."""
    params = _new_grid(t_range, a_range, resol)
    T, A, t_start, tu, a_start, au = params
    pts = tu * au
    map_end = t_start + T * tu
    heat_py = None
    acc = None
    columns = ("start", "end", "nr_accesses", "age") + (("sz_filter_passed",) if df_passed else ())
    if engine == "cython":
        # two row bands in two threads pay off when a core is free: records in memory,
        # or more than two CPUs (on two, streaming an archive keeps the second core busy
        # decompressing, and the split only adds CPU: measured 0.41 -> 0.44 s, same wall)
        streamed = any(src.is_streamed(i) for i in indices)
        acc = _CythonAccumulator(params, df_passed, parallel=_cpus() > (2 if streamed else 1))
    last_end = None
    kernel_owner = acc   # holds the band thread; closed even when we switch engines
    try:
        for i in indices:
            meta = src.metas[i]
            snaps = src.snapshot_table(i)
            n = len(snaps)
            if n == 0:
                continue
            lo, hi = _needed_snapshots(snaps, t_start, tu, map_end)
            if lo > 0:
                last_end = int(snaps.end_ns[lo - 1])
            if src.is_streamed(i):
                # read + decompress the next chunks (and check their value ranges) while
                # the kernel works on this one; the chunk in use, the _PREFETCH_DEPTH queued
                # and the one being read each need their own buffer set
                chunks = prefetched(_checked(src.iter_chunk_range(
                    i, lo, hi, columns=columns, reuse_buffers=_PREFETCH_DEPTH + 2), params, meta),
                    depth=_PREFETCH_DEPTH)
            else:
                chunks = _checked(src.iter_chunk_range(i, lo, hi, columns=columns), params, meta)
            try:
                for chunk, usable in chunks:
                    if acc is not None and not usable:
                        # values beyond exact double range: continue with the exact reference engine
                        heat_py = [[None if math.isnan(x) else x for x in row] for row in acc.heat.tolist()]
                        acc = None
                    if acc is not None:
                        last_end = acc.add(meta, chunk, last_end)
                    else:
                        if heat_py is None:
                            heat_py = [[None] * A for _ in range(T)]
                        last_end = _accumulate_py(heat_py, pts, params, meta, chunk, last_end, df_passed)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            # damo's `last` is the record's final snapshot even when the tail was not read
            last_end = int(snaps.end_ns[n - 1])
    finally:
        if kernel_owner is not None:
            kernel_owner.close()
    if acc is not None:
        heat = acc.heat
    else:
        heat = np.array([[math.nan if x is None else x for x in row] for row in heat_py],
                        np.float64).reshape(T, A)
    kd = ctx = sc = tid = None
    if key is not None:
        kd, ctx, sc, tid = key
    return HeatmapGrid(heat=heat, t_start=t_start, time_unit=tu, a_start=a_start, addr_unit=au,
                       unit=unit, target_id=tid, kdamond_idx=kd, context_idx=ctx, scheme_idx=sc,
                       t_end=t_range[1], a_end=a_range[1])


def plan_heatmaps(src, kdamond_idx=None, context_idx=None, scheme_idx=None, tid=None,
                  time_range=None, address_ranges=None, draw_range="hottest",
                  engine="cython", given=None):
    """Resolve ids and ranges as damo does (§2.1 step 4).

    ``time_range``/``address_ranges`` are damo's word lists (``["20s", "30s", "guided"]``).
    ``given``: names of the id options given on the command line (default: those not None).
    Returns (key, [t_start, t_end], [[a_start, a_end], ...], guide or None).
    """
    args = {"kdamond_idx": kdamond_idx, "context_idx": context_idx,
            "scheme_idx": scheme_idx, "tid": tid}
    if given is None:
        given = {k for k, v in args.items() if v is not None}
    all_given = (len(given) == 4 and time_range is not None and address_ranges)
    needs_guide = not all_given
    if time_range is not None and len(time_range) > 2 and time_range[2] in ("guided", "guided_end"):
        needs_guide = True
    if address_ranges and any(len(r) > 2 and r[2] == "guided" for r in address_ranges):
        needs_guide = True
    guide = None
    if needs_guide:
        guides = compute_guides(src, engine=engine,
                                with_heats=(draw_range != "all" and (
                                    not address_ranges
                                    or any(len(r) > 2 and r[2] == "guided" for r in address_ranges))))
        if not guides:
            raise ReportError("no record to draw a heatmap from")
        g0 = guides[0]
        for name, gv in (("kdamond_idx", g0.kdamond_idx), ("context_idx", g0.context_idx),
                         ("scheme_idx", g0.scheme_idx), ("tid", g0.target_id)):
            if name not in given:
                args[name] = gv
        want = (args["kdamond_idx"], args["context_idx"], args["scheme_idx"], args["tid"])
        for g in guides:
            if g.key == want:
                guide = g
                break
        if guide is None:
            raise ReportError("no proper guide")
    key = (args["kdamond_idx"], args["context_idx"], args["scheme_idx"], args["tid"])
    t_range = resolve_time_range(time_range, guide)
    guided = guided_address_ranges(guide, draw_range) if guide is not None else []
    a_ranges = resolve_address_ranges(address_ranges, guided)
    return key, t_range, a_ranges, guide


def compute_heatmaps(records, resol=(500, 500), time_range=None, address_ranges=None,
                     draw_range="hottest", abs_time=False, abs_addr=False, df_passed=False,
                     kdamond_idx=None, context_idx=None, scheme_idx=None, tid=None,
                     engine="cython"):
    """Heatmaps of ``records`` (list of Records, paths or a RecordSource) as damo draws them.

    Ranges are damo's word lists or plain numbers (``time_range=(start_ns, end_ns)``,
    ``address_ranges=[(start, end), ...]``). ``abs_time``/``abs_addr`` only matter for
    renderings. Returns a list of :class:`HeatmapGrid` (one per address range).
    """
    del abs_time, abs_addr
    if engine not in ENGINES:
        raise UsageError("unknown engine %r" % engine)
    src = RecordSource.of(records)
    unit = check_intervals_consistency(src.metas)
    if time_range is not None:
        time_range = [str(x) if not isinstance(x, str) else x for x in time_range]
    if address_ranges is not None:
        address_ranges = [[str(x) if not isinstance(x, str) else x for x in r] for r in address_ranges]
    key, t_range, a_ranges, _ = plan_heatmaps(
        src, kdamond_idx, context_idx, scheme_idx, tid, time_range, address_ranges,
        draw_range, engine)
    indices = [i for i, m in enumerate(src.metas) if record_key(m) == key]
    return [accumulate_heatmap(src, indices, t_range, a, resol, df_passed, engine, unit, key)
            for a in a_ranges]


# ---------------------------------------------------------------------------
# renderings (§2.5, §2.5b)
# ---------------------------------------------------------------------------
def format_raw(grid, abs_time=False, abs_addr=False, engine="cython"):
    """``--output raw`` text of one map (lines joined by newlines, no trailing one)."""
    if engine != "python":
        return format_raw_bytes(grid, abs_time, abs_addr).decode("ascii")
    tcol, acol = _raw_labels(grid, abs_time, abs_addr)
    rows = []
    for i, row in enumerate(grid.heat.tolist()):
        prefix = tcol[i]
        heats = ["NaN" if h != h else repr(h) for h in row]
        rows.append("\n".join([prefix + a + h for a, h in zip(acol, heats)]))
    return "\n".join(rows)


def _raw_labels(grid, abs_time, abs_addr):
    t0, a0 = grid.t_start, grid.a_start
    tcol = ["%s\t" % ((t if abs_time else t - t0),) for t in grid.pixel_times()]
    acol = ["%s\t" % ((a if abs_addr else a - a0),) for a in grid.pixel_addrs()]
    return tcol, acol


def format_raw_bytes(grid, abs_time=False, abs_addr=False):
    """:func:`format_raw` as ASCII bytes (a bytearray), straight from the Cython
    formatter (the CLI writes them to stdout's buffer without a str round trip)."""
    from damo_pipe.analyze import _report_kernels as K
    tcol, acol = _raw_labels(grid, abs_time, abs_addr)
    heat = np.ascontiguousarray(grid.heat, np.float64).reshape(len(tcol), len(acol))
    return K.format_raw_text(heat, [t.encode("ascii") for t in tcol],
                             [a.encode("ascii") for a in acol])


COLORSETS = {
    "gray": ([232] * 10, [237, 239, 241, 243, 245, 247, 249, 251, 253, 255]),
    "flame": ([232, 1, 1, 2, 3, 3, 20, 21, 26, 27], [239, 235, 237, 239, 243, 245, 247, 249, 251, 255]),
    "emotion": ([232, 234, 20, 21, 26, 2, 3, 1, 1, 1], [239, 235, 237, 239, 243, 245, 247, 249, 251, 255]),
}


def _color_start(colorset, level):
    bg, fg = COLORSETS[colorset]
    return "\x1b[48;5;%dm\x1b[38;5;%dm" % (bg[level], fg[level])


def color_samples(colorset):
    return "".join("%s%d" % (_color_start(colorset, lv), lv) for lv in range(10)) + "\x1b[0m"


def format_ascii(grid, colorset="gray", skip_colorset_example=False):
    """The terminal heatmap (``--output stdout``) of one map, or '' when all pixels are None."""
    from damo_pipe.analyze.damo_format import format_sz, format_sz_accurate, format_time_ns
    heat = grid.heat
    valid = heat[~np.isnan(heat)]
    if valid.size == 0:
        return None
    hi = float(valid.max())
    lo = float(valid.min())
    unit = (hi + 1 - lo) / 9
    lines = []
    rows = heat.tolist()
    starts = [_color_start(colorset, lv) for lv in range(10)]
    blank = starts[4] + " "
    for row in rows:
        chars = []
        for h in row:
            if h != h:
                chars.append(blank)
                continue
            lv = min(9, int((h - lo) / unit))
            chars.append("%s%d" % (starts[lv], lv))
        lines.append("".join(chars) + "\x1b[0m")
    T, A = heat.shape
    t0, tu, a0, au = grid.t_start, grid.time_unit, grid.a_start, grid.addr_unit
    t1 = grid.t_end if grid.t_end is not None else t0 + T * tu
    a1 = grid.a_end if grid.a_end is not None else a0 + A * au
    if not skip_colorset_example:
        lines.append("# access_frequency: %s (%.3f-%.3f %s)" % (color_samples(colorset), lo, hi, grid.unit))
    lines.append("# x-axis: space [%s, %s) (%s)" % (format_sz_accurate(a0), format_sz_accurate(a1),
                                                    format_sz(a1 - a0)))
    lines.append("# y-axis: time [%s, %s) (%s)" % (format_time_ns(t0), format_time_ns(t1),
                                                   format_time_ns(t1 - t0)))
    lines.append("# resolution: %dx%d (%s and %s for each character)" % (
        A, T, format_sz(au), format_time_ns(tu)))
    return "\n".join(lines)

"""Kernels of `report access`: Cython versions against the pure-Python twins and against
values worked out by hand from SEMANTICS-ACCESS.md (§9.1–§9.5)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from damo_pipe.analyze import access_kernels_py as pyk
from damo_pipe.analyze.access import AccessOptions, Metrics


def metrics(engine):
    if engine == "cython":
        pytest.importorskip("damo_pipe.analyze._access_kernels")
    return Metrics(AccessOptions(engine=engine))


def test_unknown_engine_is_an_engine_error():
    from damo_pipe.errors import EngineError
    with pytest.raises(EngineError):
        Metrics(AccessOptions(engine="fortran"))


class _Snap:
    """Minimal stand-in for access.SnapshotView (what Metrics reads)."""

    def __init__(self, starts, ends, percents, usecs, aggr=100000):
        self.starts = np.array(starts, np.uint64)
        self.ends = np.array(ends, np.uint64)
        self.percents = np.array(percents, np.int64)
        self.usecs = np.array(usecs, np.int64)
        self.n = len(starts)
        self.aggr = aggr
        self._cache = {}

    def sizes(self):
        return (self.ends - self.starts).astype(np.int64)


# ------------------------------------------------------------------ temperatures / idle
def test_temperature_by_hand(engine):
    m = metrics(engine)
    s = _Snap([0, 4096, 10000], [4096, 8192, 20000], [10, 0, 50], [300000, 7000000, 0])
    t = [int(x) for x in m.temperatures(s, [0, 100, 100])]
    # accessed: percent*100 + usec*100 ; idle: -(usec*100)
    assert t == [10 * 100 + 300000 * 100, -(7000000 * 100), 50 * 100]
    t = [int(x) for x in m.temperatures(s, [1, 2, 3])]
    assert t == [4096 + 20 + 900000, -(4096 + 0 + 21000000), 10000 + 100]


def test_idle_time_by_hand(engine):
    m = metrics(engine)
    s = _Snap([0, 10], [10, 20], [5, 0], [400, 900], aggr=100)
    assert [x for x in m.idle_times(s)] == [0, 1000]
    got = m.idle_times(_Snap([0, 10], [10, 20], [5, 0], [400, 900], aggr=12.5))
    assert float(got[0]) == 0 and float(got[1]) == 912.5


def test_weighted_sum_exact_beyond_2_64(engine):
    m = metrics(engine)
    w = np.array([2 ** 63, 2 ** 63 + 5, 3], np.uint64)
    s = np.array([200, 7, 1], np.int64)
    assert m.weighted_sum(w, s) == (2 ** 63) * 200 + (2 ** 63 + 5) * 7 + 3


# ------------------------------------------------------------------ percentiles
def test_percentile_walk_by_hand(engine):
    m = metrics(engine)
    values = np.array([30, 10, 20, 40], np.int64)
    weights = np.array([25, 25, 25, 25], np.uint64)
    got = m.percentile_walk(values, weights, [0, 1, 25, 50, 75, 99, 100])
    assert got == [(0, 10), (1, 10), (25, 10), (50, 20), (75, 30), (99, 40), (100, 40)]


def test_percentile_walk_trailing_100(engine):
    """Float sums that end a hair below 100: the pending 100 takes the last region."""
    m = metrics(engine)
    n = 12
    acc = 0
    for _ in range(n):
        acc += 1 * 100 / n
    assert acc < 100          # the case the trailing rule exists for
    got = m.percentile_walk(np.arange(n, dtype=np.int64), np.ones(n, np.uint64), [50, 100])
    assert got == [(50, 5), (100, n - 1)]


def test_percentile_walk_zero_weight(engine):
    m = metrics(engine)
    with pytest.raises(ZeroDivisionError):
        m.percentile_walk(np.array([1, 2], np.int64), np.array([0, 0], np.uint64), [0, 50])


# ------------------------------------------------------------------ histograms
def test_histogram_rows_by_hand(engine):
    m = metrics(engine)
    values = np.array([0, 5, 5, 9, 10], np.int64)
    weights = np.array([1, 2, 4, 8, 16], np.uint64)
    rows = m.histogram_rows(values, weights, [(0, 5), (5, 10), (10, 11), (20, 30)])
    assert rows == [1, 14, 16, 0]


def test_histogram_float_bounds(engine):
    m = metrics(engine)
    values = np.array([0.0, 912.5, 1000.0], np.float64)
    weights = np.array([3, 5, 7], np.uint64)
    assert m.histogram_rows(values, weights, [(0, 912.5), (912.5, 1000.0), (0, 1e9)]) == [3, 5, 15]


def test_hist_ranges_spec_examples():
    from damo_pipe.analyze.access.histograms import hist_ranges
    # §9.4 example: temperature min -664,810,000,000, max 290,010,000
    rng = hist_ranges(AccessOptions(), [-664810000000, 290010000], "temperature")
    assert rng[0][1] - rng[0][0] == 66510001001
    assert rng[-1][1] == 290010010
    # AQ10: values 0 and 1023, log scale: ends 1, 3, 7, ..., 1023; 1023 falls out
    rng = hist_ranges(AccessOptions(hist_logscale=True), [0, 1023], "temperature")
    assert [e for _, e in rng] == [2 ** k - 1 for k in range(1, 11)]
    assert pyk.histogram_rows([0, 1023], [5, 7], rng) == [5] + [0] * 9


# ------------------------------------------------------------------ snapshot heatmap
@pytest.mark.parametrize("static", [False, True])
def test_heatmap_by_hand_two_regions(engine, static):
    m = metrics(engine)
    # two adjacent regions of 80 bytes each, width 4 -> u = 40 (non-static: span = 160)
    starts = np.array([0, 80], np.uint64)
    ends = np.array([80, 160], np.uint64)
    pct = np.array([10, 0], np.int64)
    usec = np.array([100, 200], np.int64)
    pixels, u = m.heatmap_pixels(starts, ends, pct, usec, [0, 100, 100], 4, static)
    assert u == 40.0
    temps = [p[2] for p in pixels]
    # pixel temperature = t (uniform regions); t = 10*100+100*100 = 11000 / -(200*100)
    assert temps[:4] == [11000.0, 11000.0, -20000.0, -20000.0]


def test_heatmap_gap_is_void(engine):
    m = metrics(engine)
    starts = np.array([0, 1000], np.uint64)
    ends = np.array([100, 1100], np.uint64)
    pct = np.array([1, 1], np.int64)
    usec = np.array([0, 0], np.int64)
    pixels, u = m.heatmap_pixels(starts, ends, pct, usec, [0, 100, 100], 10, False)
    assert u == 20.0
    voids = [p for p in pixels if p[2] is None]
    assert len(voids) == 1
    s, e, _ = voids[0]
    assert e == (1000 // 20.0) * 20.0


def test_heatmap_integer_heat_exact_beyond_2_53():
    """A pixel holding whole regions keeps an exact integer heat (Python int semantics)."""
    pytest.importorskip("damo_pipe.analyze._access_kernels")
    n = 40
    starts = [i * 2 ** 30 for i in range(n)]
    ends = [s + 2 ** 30 - 4096 * (i % 3) for i, s in enumerate(starts)]
    pct = [(i * 37) % 100 for i in range(n)]
    usec = [123456789 * (i + 1) for i in range(n)]
    weights = [7, 100, 100]
    ref_pixels, ref_u = pyk.snapshot_heatmap_pixels(starts, ends, pct, usec, weights, 3, True)
    m = metrics("cython")
    got_pixels, got_u = m.heatmap_pixels(np.array(starts, np.uint64), np.array(ends, np.uint64),
                                         np.array(pct, np.int64), np.array(usec, np.int64),
                                         weights, 3, True)
    assert got_u == ref_u
    assert [p[2] for p in got_pixels] == [p[2] for p in ref_pixels]


# ------------------------------------------------------------------ property tests
region_lists = st.lists(
    st.tuples(st.integers(1, 2 ** 36), st.integers(0, 2 ** 20), st.integers(0, 100),
              st.integers(0, 10 ** 7)),
    min_size=1, max_size=30)


def _layout(regs):
    starts, ends, pct, usec = [], [], [], []
    pos = 4096
    for size, gap, p, a in regs:
        pos += gap
        starts.append(pos)
        pos += size
        ends.append(pos)
        pct.append(p)
        usec.append(a)
    return starts, ends, pct, usec


@settings(max_examples=150, deadline=None)
@given(regs=region_lists, width=st.integers(1, 120), static=st.booleans(),
       ws=st.integers(0, 3), wa=st.integers(0, 200), wg=st.integers(0, 200))
def test_heatmap_cython_equals_python(regs, width, static, ws, wa, wg):
    pytest.importorskip("damo_pipe.analyze._access_kernels")
    starts, ends, pct, usec = _layout(regs)
    ref = pyk.snapshot_heatmap_pixels(starts, ends, pct, usec, [ws, wa, wg], width, static)
    got = metrics("cython").heatmap_pixels(
        np.array(starts, np.uint64), np.array(ends, np.uint64), np.array(pct, np.int64),
        np.array(usec, np.int64), [ws, wa, wg], width, static)
    assert got[1] == ref[1]
    assert len(got[0]) == len(ref[0])
    for (gs, ge, gt), (rs, re_, rt) in zip(got[0], ref[0]):
        assert float(gs) == float(rs) and float(ge) == float(re_)
        assert (gt is None) == (rt is None)
        if gt is not None:
            assert gt == rt or (math.isnan(gt) and math.isnan(rt))


@settings(max_examples=150, deadline=None)
@given(regs=region_lists, targets=st.lists(st.integers(0, 120), min_size=1, max_size=8),
       wa=st.integers(0, 200), wg=st.integers(0, 200))
def test_percentiles_and_histograms_cython_equal_python(regs, targets, wa, wg):
    pytest.importorskip("damo_pipe.analyze._access_kernels")
    targets = sorted(targets)
    starts, ends, pct, usec = _layout(regs)
    snap = _Snap(starts, ends, pct, usec)
    mc, mp = metrics("cython"), metrics("python")
    tc = mc.temperatures(snap, [0, wa, wg])
    snap._cache.clear()
    tp = mp.temperatures(snap, [0, wa, wg])
    assert [int(x) for x in tc] == list(tp)
    weights = snap.sizes().astype(np.uint64)
    try:
        ref = pyk.percentile_walk(list(tp), weights.tolist(), targets)
    except ValueError:
        with pytest.raises(ValueError):
            mc.percentile_walk(tc, weights, targets)
    else:
        got = mc.percentile_walk(tc, weights, targets)
        assert [(a, int(b)) for a, b in got] == ref
    lo, hi = min(tp), max(tp)
    w = max(math.ceil((hi + 1 - lo) / 10), 1)
    ranges = [(lo + w * i, lo + w * (i + 1)) for i in range(10)]
    assert mc.histogram_rows(tc, weights, ranges) == pyk.histogram_rows(tp, weights.tolist(), ranges)
    assert mc.weighted_sum(weights, np.array(pct, np.int64)) == sum(
        int(a) * b for a, b in zip(weights.tolist(), pct))


@settings(max_examples=60, deadline=None)
@given(regs=region_lists, width=st.integers(1, 90), static=st.booleans(),
       perm_seed=st.integers(0, 2 ** 32 - 1))
def test_heatmap_unsorted_regions_cython_equals_python(regs, width, static, perm_seed):
    """damo scans the regions in file order with continue/break; unsorted input too."""
    pytest.importorskip("damo_pipe.analyze._access_kernels")
    starts, ends, pct, usec = _layout(regs)
    perm = np.random.default_rng(perm_seed).permutation(len(starts))
    starts, ends, pct, usec = ([x[i] for i in perm] for x in (starts, ends, pct, usec))
    span = (ends[-1] - starts[0]) if static else sum(e - s for s, e in zip(starts, ends))
    if span <= 0 or span / width < math.ulp(float(ends[-1])):
        return      # the renderer refuses these before calling a kernel
    try:
        ref = pyk.snapshot_heatmap_pixels(starts, ends, pct, usec, [0, 100, 100], width, static)
    except ArithmeticError:
        with pytest.raises(ArithmeticError):
            metrics("cython").heatmap_pixels(
                np.array(starts, np.uint64), np.array(ends, np.uint64), np.array(pct, np.int64),
                np.array(usec, np.int64), [0, 100, 100], width, static)
        return
    got = metrics("cython").heatmap_pixels(
        np.array(starts, np.uint64), np.array(ends, np.uint64), np.array(pct, np.int64),
        np.array(usec, np.int64), [0, 100, 100], width, static)
    assert got[1] == ref[1]
    assert [(float(a), float(b), c) for a, b, c in got[0]] == \
        [(float(a), float(b), c) for a, b, c in ref[0]]


def test_text_columns_equal_numfmt():
    """Cython text columns equal numfmt.format_sz / format_nr value by value."""
    k = pytest.importorskip("damo_pipe.analyze._access_kernels")
    from damo_pipe.numfmt import format_nr, format_sz
    rng = np.random.default_rng(5)
    special = [0, 1, 1023, 1024, 1025, 1088, 2 ** 20, 2 ** 20 + 1, 2 ** 30 + 512,
               2 ** 40 - 1, 2 ** 40, 2 ** 40 + 1, 2 ** 47 + 12345, 2 ** 50 + 1, 2 ** 60,
               2 ** 60 + 2 ** 50, 2 ** 63 - 1, 1088 * 2 ** 30, 94351841558528]
    values = np.array(special + rng.integers(0, 2 ** 63 - 1, 3000, dtype=np.int64).tolist()
                      + (2 ** rng.uniform(0, 62, 3000)).astype(np.int64).tolist(), np.uint64)
    order = rng.permutation(len(values)).astype(np.int64)
    got = k.format_sz_column(values, order, 0)
    assert got == [format_sz(int(values[i])) for i in order]
    assert k.format_sz_column(values, order, 14) == [format_sz(int(values[i])).ljust(14)
                                                     for i in order]
    assert k.format_nr_range(12345, 0) == [format_nr(i) for i in range(12345)]
    assert k.format_nr_range(1100, 5)[999:1002] == ["999  ", "1,000", "1,001"]


def test_text_columns_round_half_even_and_pad():
    """Sizes whose '%.3f' in their unit ends in an exact 5: both neighbours of every unit
    (round half to even, as Python's '%.3f'); widths beyond the kernel's digit buffer."""
    k = pytest.importorskip("damo_pipe.analyze._access_kernels")
    from damo_pipe.numfmt import format_nr, format_sz
    values = []
    for shift in (10, 20, 30, 40, 50, 60):
        # m * 1000 / 2**shift ends in exactly half a thousandth: m*125 = 2**(shift-4) mod
        # 2**(shift-3); m a multiple of 2**(shift-4) stays exact as a double
        step = 2 ** (shift - 3)
        base = (2 ** (shift - 4) * pow(125, -1, step)) % step
        for j in range(2 ** 3 + 1, 2 ** 3 + 40):
            m = base + j * step
            if m < 2 ** 63:
                assert (m * 1000) % 2 ** shift == 2 ** (shift - 1)
                values += [m, m - 1, m + 1]
        values += [2 ** shift - 1, 2 ** shift, 2 ** shift + 1]
    values = np.array(values, np.uint64)
    order = np.arange(len(values), dtype=np.int64)[::-1].copy()
    want = [format_sz(int(values[i])) for i in order]
    assert k.format_sz_column(values, order, 0) == want
    assert k.format_sz_column(values, order, 90) == [t.ljust(90) for t in want]
    assert k.format_nr_range(1234, 70) == [format_nr(i).ljust(70) for i in range(1234)]
    with pytest.raises(IndexError):
        k.format_sz_column(values, np.array([len(values)], np.int64), 0)
    with pytest.raises(ValueError):
        k.format_sz_column(np.array([2 ** 63], np.uint64), np.array([0], np.int64), 0)


# ------------------------------------------------------------------ region block join
def join_kernel(engine):
    if engine == "cython":
        return pytest.importorskip("damo_pipe.analyze._access_kernels").join_rows
    return pyk.join_rows


def _rows_by_hand(columns, n):
    rows = ["".join(c if isinstance(c, str) else c[i] for c in columns) for i in range(n)]
    return "\n".join(rows)


def test_join_rows_by_hand(engine):
    join = join_kernel(engine)
    assert join([["0", "1", "22"], " | ", ["a", "bb", ""], "!"], 3) == "0 | a!\n1 | bb!\n22 | !"
    assert join([["x"]], 1) == "x"
    assert join(["lit"], 2) == "lit\nlit"
    assert join([], 3) == "\n\n"
    assert join([], 0) == "" and join([[], "a"], 0) == "" and join(["a"], 0) == ""
    assert join([[""], ""], 1) == ""
    assert join([["", ""]], 2) == "\n"
    assert join([["é", "a"], "·", ("b", "\U0001F600")], 2) == "é·b\na·\U0001F600"
    assert join((c for c in [["a", "b"], "-"]), 2) == "a-\nb-"


def test_join_rows_errors(engine):
    join = join_kernel(engine)
    with pytest.raises(ValueError):
        join([["a", "b"], ["c"]], 2)
    with pytest.raises(ValueError):
        join([["a"]], 0)
    with pytest.raises(ValueError):
        join([], -1)
    with pytest.raises(TypeError):
        join([["a", 5]], 2)
    with pytest.raises(TypeError):
        join([7], 1)


_cells = st.text(alphabet=st.sampled_from("aZ09 .,%|-\té€µ\U0001F600"), max_size=6)


@st.composite
def _block_columns(draw):
    n = draw(st.integers(0, 12))
    cols = draw(st.lists(st.one_of(_cells, st.lists(_cells, min_size=n, max_size=n)),
                         max_size=6))
    return cols, n


@settings(max_examples=300, deadline=None)
@given(case=_block_columns())
def test_join_rows_cython_equals_python(case):
    cols, n = case
    k = pytest.importorskip("damo_pipe.analyze._access_kernels")
    want = _rows_by_hand(cols, n)
    assert pyk.join_rows(cols, n) == want
    got = k.join_rows(cols, n)
    assert got == want and type(got) is str
    # a str subclass cell is joined as its text
    if n and any(isinstance(c, list) for c in cols):
        class S(str):
            pass
        j = next(i for i, c in enumerate(cols) if isinstance(c, list))
        cols2 = list(cols)
        cols2[j] = [S(x) for x in cols[j]]
        assert k.join_rows(cols2, n) == want

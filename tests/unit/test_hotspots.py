"""Hotspot functions of a time window (analyze/hotspots.py), both engines."""
from __future__ import annotations

import collections
import shutil

import numpy as np
import pytest

from damo_pipe.analyze import hotspots as H
from damo_pipe.errors import EngineError
from damo_pipe.formats.perf_samples import ProfileSamples
from tests.golden.conftest import FIXTURES

PROFILE = FIXTURES / "damo-holistic" / "inputs" / "holi" / "rec1.data.profile"


def _random(n=20000, seed=0, nsym=300, ndso=7):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 10**10, n))
    sym = (rng.zipf(1.5, n) - 1) % nsym
    dso = rng.integers(0, ndso, n)
    return ProfileSamples(t, np.ones(n), np.ones(n), sym, dso,
                          ["f%03d" % i for i in range(nsym)], ["d%d" % i for i in range(ndso)])


def _reference(samples, start, end, top):
    """Counted sample by sample from the rows, sorted by (-count, symbol, dso)."""
    c = collections.Counter()
    for t, s, d in zip(samples.time_ns.tolist(), samples.symbol_id.tolist(),
                       samples.dso_id.tolist()):
        if (start is None or t >= start) and (end is None or t < end):
            c[(samples.symbols[s], samples.dsos[d])] += 1
    total = sum(c.values())
    ranked = sorted(c.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))[:top]
    return [(s, d, n, n / total) for (s, d), n in ranked]


def test_known_counts(engine):
    s = ProfileSamples.from_rows([(1, 1, 1, "a", "x"), (2, 1, 1, "b", "x"), (3, 1, 1, "a", "x"),
                                  (4, 1, 1, "a", "y"), (5, 1, 1, "b", "x"), (6, 1, 1, "a", "x")])
    got = H.hotspots(s, top=None, engine=engine)
    assert [(h.symbol, h.dso, h.samples) for h in got] == [("a", "x", 3), ("b", "x", 2),
                                                           ("a", "y", 1)]
    assert got[0].share == 0.5
    got = H.hotspots(s, 2, 5, engine=engine)   # times 2, 3, 4: b/x, a/x, a/y tie at 1
    assert [(h.symbol, h.dso, h.samples) for h in got] == [("a", "x", 1), ("a", "y", 1),
                                                           ("b", "x", 1)]
    assert H.hotspots(s, 7, 9, engine=engine) == []


def test_random_against_reference(engine):
    s = _random()
    for start, end, top in [(None, None, 10), (2 * 10**9, 3 * 10**9, 5), (0, 10**10, None),
                            (5 * 10**9, 5 * 10**9 + 10**7, 3)]:
        got = [(h.symbol, h.dso, h.samples, h.share)
               for h in H.hotspots(s, start, end, top, engine=engine)]
        assert got == _reference(s, start, end, top)


def test_engines_agree_and_unknown_engine():
    s = _random(seed=5, nsym=5000, ndso=900)    # combined ids beyond bincount's range
    assert H.hotspots(s, top=None, engine="cython") == H.hotspots(s, top=None, engine="python")
    with pytest.raises(EngineError):
        H.hotspots(s, engine="fortran")


def test_window_hotspots_from_archive(tmp_path):
    from damo_pipe.archive import ArchiveWriter
    from damo_pipe.model import Record
    s = _random()
    p = tmp_path / "a.h5"
    with ArchiveWriter(p) as w:
        w.add_record(Record(target_id=0))
        w.set_profile(None, s)
    for a, b in [(None, None), (10**9, 2 * 10**9), (9 * 10**9, None)]:
        assert H.window_hotspots(p, a, b, top=7) == H.hotspots(s, a, b, top=7)
    with ArchiveWriter(tmp_path / "none.h5") as w:
        w.add_record(Record(target_id=0))
    assert H.window_hotspots(tmp_path / "none.h5", 0, 1) is None


def test_over_time(engine):
    s = _random()
    edges = np.linspace(10**9, 9 * 10**9, 9).astype(np.int64)
    names, counts, totals = H.hotspots_over_time(s, edges, top=4, engine=engine)
    overall = H.hotspots(s, int(edges[0]), int(edges[-1]), top=4)
    assert names == [(h.symbol, h.dso) for h in overall]
    assert counts.sum(axis=0).tolist() == [h.samples for h in overall]
    for w in range(len(edges) - 1):
        ref = {(a, b): n for a, b, n, _ in _reference(s, int(edges[w]), int(edges[w + 1]), None)}
        assert counts[w].tolist() == [ref.get(nm, 0) for nm in names]
        assert totals[w] == sum(ref.values())


@pytest.mark.skipif(shutil.which("perf") is None, reason="perf is not installed")
def test_fixture_profile_top_named_function():
    if not PROFILE.exists():
        pytest.skip("../shared fixtures not available")
    from damo_pipe.formats.perf_samples import read_perf_samples
    s = read_perf_samples(str(PROFILE))
    named = [h for h in H.hotspots(s, top=None) if h.symbol != "[unknown]"]
    # perf report --sort sym: _PyEval_EvalFrameDefault 206 + 33 samples, adler32_z 100
    assert (named[0].symbol, named[0].samples) == ("_PyEval_EvalFrameDefault", 239)
    assert (named[1].symbol, named[1].samples) == ("adler32_z", 100)
    text = H.format_hotspots(named[:2], "# hot")
    assert text.splitlines()[2].split() == ["8.84%", "239", "_PyEval_EvalFrameDefault",
                                           "(/usr/bin/python3.11)"]

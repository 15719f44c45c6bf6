"""Hotspot functions of a time window, from a CPU profile's sample table.

A hotspot is a (function, DSO) pair with the number of CPU-profile samples that hit it
in the window; its ``share`` is that number over all samples of the window. Samples
come from :class:`~damo_pipe.formats.perf_samples.ProfileSamples` (an archive's stored
table, :func:`damo_pipe.archive.profile.read_profile_window`, or a perf.data read with
``perf script``), so no perf run is needed for an archive.

Unlike ``perf report``, which lists every unresolved address on its own line, samples
whose function perf cannot name count as one ``[unknown]`` entry per DSO.

Two engines give the same lists: numpy (``cython``/``auto``: one ``bincount`` or
``unique`` over combined ids) and the pure-Python twin (``python``: a Counter).
Ties are ordered by function name, then DSO.
"""
from __future__ import annotations

import collections
import dataclasses

import numpy as np

from damo_pipe.errors import EngineError

__all__ = ["Hotspot", "hotspots", "count_pairs", "window_hotspots", "hotspots_over_time",
           "format_hotspots", "hotspots_json", "ENGINES"]

ENGINES = ("cython", "python")
#: combined-id spaces up to this size are counted with bincount, larger with unique
_BINCOUNT_MAX = 1 << 22


@dataclasses.dataclass(frozen=True)
class Hotspot:
    symbol: str
    dso: str
    samples: int
    share: float


def _engine(engine):
    if engine in ("auto", "cython", "numpy"):
        return "numpy"
    if engine == "python":
        return "python"
    raise EngineError("unknown engine %r (one of %s)" % (engine, ", ".join(ENGINES)))


def _pairs_np(samples):
    """{(symbol_id, dso_id): count} with numpy."""
    n_dso = max(len(samples.dsos), 1)
    key = samples.symbol_id.astype(np.int64) * n_dso + samples.dso_id
    if not len(key):
        return {}
    if int(key.max()) < _BINCOUNT_MAX:
        counts = np.bincount(key)
        keys = np.flatnonzero(counts)
        counts = counts[keys]
    else:
        keys, counts = np.unique(key, return_counts=True)
    return {(int(k) // n_dso, int(k) % n_dso): int(c)
            for k, c in zip(keys.tolist(), counts.tolist())}


def _pairs_py(samples):
    """Reference twin: one step per sample."""
    return dict(collections.Counter(zip(samples.symbol_id.tolist(), samples.dso_id.tolist())))


def count_pairs(samples, engine="cython"):
    """{(symbol_id, dso_id): number of samples}."""
    return (_pairs_py if _engine(engine) == "python" else _pairs_np)(samples)


def _ranked(samples, counts, top):
    total = sum(counts.values())
    items = sorted(counts.items(), key=lambda kv: (-kv[1], samples.symbols[kv[0][0]],
                                                   samples.dsos[kv[0][1]]))
    if top is not None:
        items = items[:top]
    return [Hotspot(samples.symbols[s], samples.dsos[d], c, c / total if total else 0.0)
            for (s, d), c in items]


def hotspots(samples, start_ns=None, end_ns=None, top=10, engine="cython"):
    """The ``top`` (None: all) hotspots of the samples with ``start_ns <= time <
    end_ns`` (None: open end), most samples first."""
    win = samples.window(start_ns, end_ns) if (start_ns, end_ns) != (None, None) else samples
    return _ranked(win, count_pairs(win, engine), top)


def window_hotspots(archive_path, start_ns=None, end_ns=None, top=10, engine="cython"):
    """Hotspots of a time window straight from an archive's sample table (only the
    window's rows are read). None when the archive has no sample table."""
    from damo_pipe.archive.profile import read_profile_window
    win, _ = read_profile_window(archive_path, start_ns, end_ns,
                                 columns=("symbol_id", "dso_id"))
    if win is None:
        return None
    return _ranked(win, count_pairs(win, engine), top)


def hotspots_over_time(samples, edges_ns, top=8, engine="cython"):
    """Samples per time window (``edges_ns``: n+1 increasing window bounds) of the
    ``top`` hotspots of all those windows together.

    Returns ``(names, counts, totals)``: ``names`` the top (symbol, dso) pairs, most
    samples first; ``counts`` an int64 array [n windows, top] of their samples per
    window; ``totals`` the samples per window (all functions)."""
    edges = np.asarray(edges_ns, np.int64)
    span = samples.window(int(edges[0]), int(edges[-1]))
    best = hotspots(span, top=top, engine=engine)
    names = [(h.symbol, h.dso) for h in best]
    bounds = np.searchsorted(span.time_ns, edges, "left")
    counts = np.zeros((len(edges) - 1, len(names)), np.int64)
    sym_idx = {s: i for i, s in enumerate(span.symbols)}
    dso_idx = {d: i for i, d in enumerate(span.dsos)}
    pairs = [(sym_idx[s], dso_idx[d]) for s, d in names]
    for w in range(len(edges) - 1):
        part = span.take(slice(int(bounds[w]), int(bounds[w + 1])))
        if not len(part):
            continue
        c = count_pairs(part, engine)
        counts[w] = [c.get(p, 0) for p in pairs]
    totals = np.diff(bounds).astype(np.int64)
    return names, counts, totals


def format_hotspots(spots, title=None):
    """Text lines: share, samples, function and DSO per hotspot."""
    lines = [title] if title else []
    lines.append("%8s %9s  %s" % ("share", "samples", "function (dso)"))
    for h in spots:
        lines.append("%7.2f%% %9d  %s (%s)" % (h.share * 100, h.samples, h.symbol, h.dso))
    return "\n".join(lines)


def hotspots_json(spots):
    return [dataclasses.asdict(h) for h in spots]

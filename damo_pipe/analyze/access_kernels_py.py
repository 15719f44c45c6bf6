"""Pure-Python reference twins of the ``report access`` kernels (``_access_kernels.pyx``).

Each function follows SEMANTICS-ACCESS.md literally with Python numbers (ints stay exact
and unbounded, int/int true division is correctly rounded), so it is both the fallback
for values outside the Cython kernels' safe ranges and the reference the kernels are
tested against. Inputs are sequences (lists or numpy arrays); values taken from numpy
arrays are converted to Python numbers first.
"""
from __future__ import annotations

import itertools


def _py(seq):
    tolist = getattr(seq, "tolist", None)
    return tolist() if tolist is not None else list(seq)


def temperatures(sizes, percents, usecs, weights):
    """§9.1: ``t = size*ws + percent*wa + usec*wg``; ``-1 * t`` unless percent > 0."""
    ws, wa, wg = weights
    out = []
    for sz, pc, us in zip(_py(sizes), _py(percents), _py(usecs)):
        t = sz * ws + pc * wa + us * wg
        out.append(t if pc > 0 else -1 * t)
    return out


def idle_times(percents, usecs, aggr):
    """§9.1: ``0`` if percent > 0 else ``usec + A``."""
    return [0 if pc > 0 else us + aggr for pc, us in zip(_py(percents), _py(usecs))]


def weighted_sum(weights, samples):
    """§9.2: ``Σ bytes × samples`` (exact int)."""
    return sum(w * s for w, s in zip(_py(weights), _py(samples)))


def percentile_walk(values, weights, targets):
    """§9.3 walk. Returns ``[(target, value), ...]``; raises ZeroDivisionError if Σ weight is 0
    and ValueError when nothing is emitted (damo's empty ``max()``)."""
    values = _py(values)
    weights = _py(weights)
    order = sorted(range(len(values)), key=lambda i: values[i])
    total = sum(weights)
    pending = list(targets)
    emitted = []
    acc = 0
    last = None
    for i in order:
        acc += weights[i] * 100 / total
        last = values[i]
        while pending and acc >= pending[0]:
            emitted.append((pending.pop(0), values[i]))
        if acc >= 100.0:
            break
    if 100 in pending and last is not None:
        emitted.append((100, last))
    if not emitted:
        raise ValueError("max() arg is an empty sequence")
    return emitted


def histogram_rows(values, weights, ranges):
    """§9.4 row values: for each ``[start, end)`` the Σ weight of values inside."""
    values = _py(values)
    weights = _py(weights)
    dist = {}
    for v, w in zip(values, weights):
        dist[v] = dist.get(v, 0) + w
    rows = []
    for start, end in ranges:
        y = 0
        for k, w in dist.items():
            if start <= k < end:
                y += w
        rows.append(y)
    return rows


def snapshot_heatmap_pixels(starts, ends, percents, usecs, weights, width, static):
    """§9.5 pixels of one snapshot: ``[(start, end, temp_or_None), ...]`` and ``u``.

    ``temp`` is None for a void pixel. Regions are taken in the given order.
    """
    starts = _py(starts)
    ends = _py(ends)
    percents = _py(percents)
    usecs = _py(usecs)
    ws, wa, wg = weights
    n = len(starts)
    if static:
        span = ends[-1] - starts[0]
    else:
        span = sum(e - s for s, e in zip(starts, ends))
    u = span / width
    pixels = []
    p = starts[0]
    last_end = ends[-1]
    while p < last_end:
        q = p + u
        heat = 0
        void = True
        for i in range(n):
            rs = starts[i]
            re_ = ends[i]
            if re_ <= p:
                continue
            if q <= rs:
                break
            void = False
            if p <= rs and re_ <= q:
                a, b = rs, re_
            elif rs <= p and q <= re_:
                a, b = p, q
            elif rs < p:
                a, b = p, re_
            else:
                a, b = rs, q
            sz = b - a
            pc = percents[i]
            t = sz * ws + pc * wa + usecs[i] * wg
            if not pc > 0:
                t = -1 * t
            heat += t * sz
        if void:
            nx = None
            for i in range(n):
                if starts[i] > q:
                    nx = starts[i]
                    break
            if nx is None:
                break
            newp = (nx // u) * u
            if not newp > p:
                raise ArithmeticError("heatmap gap jump does not advance (damo loops forever)")
            pixels.append((p, newp, None))
            p = newp
        else:
            pixels.append((p, q, heat / (q - p)))
            p = q
    return pixels, u


def join_rows(columns, n):
    """A column-wise text block as one str: the ``n`` rows joined with ``"\\n"``, row ``i``
    being every column's cell ``i`` in column order, where a column is either a str (a
    literal repeated on every row) or a sequence of ``n`` str. ``""`` when ``n`` is 0."""
    if n < 0:
        raise ValueError("negative row count")
    cols = []
    for c in columns:
        if isinstance(c, str):
            cols.append(itertools.repeat(c, n))
            continue
        if len(c) != n:
            raise ValueError("column length differs from the row count")
        cols.append(c)
    if not cols:
        return "\n" * (n - 1) if n else ""
    return "\n".join(["".join(row) for row in zip(*cols)])

"""The Ryu formatter behind ``report heatmap --output raw`` (_ryu.pxi) prints exactly
what Python's ``repr`` prints, for every kind of double."""
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

K = pytest.importorskip("damo_pipe.analyze._report_kernels")


def _edge_values():
    vals = [0.0, -0.0, math.inf, -math.inf, 5e-324, -5e-324, 2.2250738585072014e-308,
            2.2250738585072009e-308, 1.7976931348623157e308, 0.1, 0.2, 0.3, 1 / 3, 2 / 3,
            9007199254740992.0, 9007199254740993.0, 123456789012345678.0, 1e22, 1e23]
    for e in range(-325, 309):
        vals += [10.0 ** e if e > -324 else 5e-324, float("1e%d" % e)]
    for e in range(-1074, 1024):
        vals.append(math.ldexp(1.0, e))
    # around the fixed/exponent switch of repr ('r': -4 < decpt <= 16)
    for base in (1e16, 1e15, 9.999999999999999e15, 1e-4, 9.999999999999999e-05, 1e-5):
        x = base
        for _ in range(3):
            vals.append(x)
            x = math.nextafter(x, math.inf)
        x = base
        for _ in range(3):
            x = math.nextafter(x, 0.0)
            vals.append(x)
    vals += [float(i) for i in range(-1000, 1000)]
    vals += [i / 1000 for i in range(0, 5000)]
    return [v for v in vals if math.isfinite(v) or math.isinf(v)]


def test_edge_values_match_repr():
    vals = _edge_values()
    got = [K.float_repr(v).decode() for v in vals]
    assert got == [repr(v) for v in vals]


@pytest.mark.parametrize("kind", ["bits", "uniform", "integers", "millis", "heats"])
def test_many_random_values_match_repr(kind):
    rng = np.random.default_rng(1234)
    n = 300_000
    xs = {
        "bits": lambda: rng.integers(0, 2 ** 64, n, dtype=np.uint64).view(np.float64),
        "uniform": lambda: rng.random(n) * 1e6,
        "integers": lambda: rng.integers(-2 ** 60, 2 ** 60, n).astype(np.float64),
        "millis": lambda: rng.integers(0, 10 ** 7, n) / 1000.0,
        # what the heatmap prints: sums of sample x time x bytes over the pixel area
        "heats": lambda: rng.integers(0, 20, n) * 1.0e8 * rng.integers(1, 9e6, n) / 1.87e15,
    }[kind]()
    xs = np.ascontiguousarray(xs[np.isfinite(xs)])
    got = K.float_repr_many(xs).decode().split("\n")[:-1]
    want = [repr(x) for x in xs.tolist()]
    bad = [(g, w) for g, w in zip(got, want) if g != w]
    assert not bad, bad[:5]
    assert len(got) == len(want)


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False))
def test_hypothesis_floats_match_repr(x):
    assert K.float_repr(x).decode() == repr(x)


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 2 ** 64 - 1))
def test_hypothesis_bit_patterns_match_repr(bits):
    x = struct.unpack("<d", struct.pack("<Q", bits))[0]
    want = "nan" if math.isnan(x) else repr(x)
    assert K.float_repr(x).decode() == want

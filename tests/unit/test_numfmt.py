"""damo's number formatters (SEMANTICS.md §1, SEMANTICS-ACCESS.md §8.1)."""
import numpy as np
import pytest

from damo_pipe import numfmt as f


@pytest.mark.parametrize("b,want", [
    (0, "0 B"), (1024, "1024 B"), (1025, "1.001 KiB"), (3 << 20, "3.000 MiB"),
    (206409728, "196.848 MiB"), (2 ** 64 - 1, "max"), (np.uint64(4096), "4.000 KiB"),
    (1.5 * (1 << 40), "1.500 TiB")])
def test_format_sz(b, want):
    assert f.format_sz(b) == want


def test_format_sz_raw_and_accurate():
    assert f.format_sz(12345.9, True) == "12345"
    assert f.format_sz_accurate(140271510761472) == "127.576196 TiB"


@pytest.mark.parametrize("t,want", [
    (0, "0 ns"), (999, "999 ns"), (1000, "1 us"), (1500, "1.500 us"), (20_000_000, "20 ms"),
    (56_797_184_551, "56.797 s"), (60_000_000_000, "1 m"), (90_000_000_000, "1 m 30 s"),
    (539_809_434_100, "8 m 59.809 s"), (3_600_000_000_000, "1 h"),
    (3_690_000_000_000, "1 h 1 m 30 s"), (-1500, "-1.500 us")])
def test_format_time_ns(t, want):
    assert f.format_time_ns(t) == want


def test_format_nr_and_friends():
    assert f.format_nr(1234567) == "1,234,567"
    assert f.format_nr(-1234.9) == "-1,234"
    assert f.format_nr(-0.00003) == "-0"
    assert f.format_nr(1234567, True) == "1234567"
    assert f.format_time_us(1500) == "1.500 ms"
    assert f.format_hz(0) == "0 hz"
    assert f.format_hz(0.3333333) == "0.333 hz"
    assert f.format_hz(200) == "200 hz"
    assert f.format_hz(5.0, raw=True) == "5.000000"
    assert f.format_percent(29) == "28 %"         # damo's lossy round trip (AQ8)
    assert f.format_percent(50) == "50 %"
    assert f.format_percent(200 / 9) == "22.2222222 %"
    assert f.format_bp(400) == "4 %"

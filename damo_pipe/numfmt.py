"""damo 3.4.3's number/size/time formatters (SEMANTICS.md §1, SEMANTICS-ACCESS.md §8.1).

Every function takes the value and ``raw`` (damo's ``machine_friendly`` /
``--raw_number``) and returns exactly the text damo prints. Values may be Python
ints, floats or numpy scalars; numpy scalars are converted first so that ``%d``
and ``repr`` behave as on Python numbers.
"""
from __future__ import annotations

__all__ = [
    "ULONG_MAX", "format_sz", "format_sz_accurate", "format_time_ns", "format_time_us",
    "format_time_ns_min_unit", "format_nr", "format_hz", "format_percent", "format_bp",
    "py_num", "pct_str",
]

ULONG_MAX = 2 ** 64 - 1

NS_PER_US = 1000
NS_PER_MS = 1000 * 1000
NS_PER_SEC = 1000 * 1000 * 1000
NS_PER_MIN = 60 * NS_PER_SEC
NS_PER_HOUR = 60 * NS_PER_MIN

_SZ_UNITS = (
    (1 << 60, "EiB"),
    (1 << 50, "PiB"),
    (1 << 40, "TiB"),
    (1 << 30, "GiB"),
    (1 << 20, "MiB"),
    (1 << 10, "KiB"),
)


def py_num(v):
    """A numpy scalar as the equivalent Python int/float (other values unchanged)."""
    item = getattr(v, "item", None)
    if item is not None and not isinstance(v, (int, float)):
        return item()
    return v


def _sz(b, raw, fmt):
    b = py_num(b)
    if raw:
        return "%d" % b
    f = float(b)
    if f == float(ULONG_MAX):
        return "max"
    for threshold, unit in _SZ_UNITS:
        if f > threshold:
            return (fmt + " %s") % (f / threshold, unit)
    return "%d B" % f


def format_sz(b, raw=False):
    """``'%.3f <unit>'`` for sizes strictly above 1 KiB, ``'%d B'`` otherwise."""
    return _sz(b, raw, "%.3f")


def format_sz_accurate(b, raw=False):
    """Like :func:`format_sz` with six decimals."""
    return _sz(b, raw, "%f")


def format_time_ns(t, raw=False):
    """damo's human time text (``1 h 2 m 3.500 s``, ``20 ms``, ``1.500 us``, ``7 ns``)."""
    t = py_num(t)
    if raw:
        return "%d" % t
    sign = ""
    if t < 0:
        sign = "-"
        t = -t
    t = float(t)
    if t >= ULONG_MAX:
        return "max"
    if t >= NS_PER_HOUR:
        hours = int(t / NS_PER_HOUR)
        rem = t - hours * NS_PER_HOUR
        text = "%s%d h" % (sign, hours)
        if rem != 0:
            text += " " + format_time_ns(rem, False)
        return text
    if t >= NS_PER_MIN:
        if t % NS_PER_MIN == 0:
            return "%s%d m" % (sign, t / NS_PER_MIN)
        if t % NS_PER_SEC == 0:
            return "%s%d m %d s" % (sign, t / NS_PER_MIN, (t % NS_PER_MIN) / NS_PER_SEC)
        return "%s%d m %.3f s" % (sign, t / NS_PER_MIN, (t % NS_PER_MIN) / NS_PER_SEC)
    for unit_ns, unit in ((NS_PER_SEC, "s"), (NS_PER_MS, "ms"), (NS_PER_US, "us")):
        if t >= unit_ns:
            if t % unit_ns == 0:
                return "%s%d %s" % (sign, t / unit_ns, unit)
            return "%s%.3f %s" % (sign, t / unit_ns, unit)
    return "%s%d ns" % (sign, t)


#: damo has both names; they print the same for the values reports use.


def format_time_us(us, raw=False):
    """format_time_ns(us*1000); raw → ``'%d' % us``."""
    us = py_num(us)
    if raw:
        return "%d" % us
    return format_time_ns(us * 1000, False)


def format_nr(n, raw=False):
    """``'%d'`` with ``,`` thousands separators (raw: plain ``'%d'``)."""
    n = py_num(n)
    if raw:
        return "%d" % n
    sign = ""
    if n < 0:
        sign = "-"
        n = -n
    digits = "%d" % n
    groups = []
    while len(digits) > 3:
        groups.append(digits[-3:])
        digits = digits[:-3]
    groups.append(digits)
    return sign + ",".join(reversed(groups))


def format_hz(hz, raw=False, suffix=True):
    """``'%.3f hz'`` below 10 (non-zero), else format_nr + ``' hz'``; raw: ``'%f'``."""
    hz = py_num(hz)
    if raw:
        return "%f" % hz
    if hz < 10 and hz != 0:
        text = "%.3f" % hz
    else:
        text = format_nr(hz, False)
    return text + " hz" if suffix else text


def pct_str(r):
    """damo's percent text of a ratio ``r`` (1.0 = 100 %), without the ``' %'``."""
    w = int(r * 100)
    f = r * 100 % 1
    d = ("%.7f" % f).rstrip("0")[2:]
    if d == "":
        return format_nr(w, False)
    return format_nr(w, False) + "." + d


def format_percent(p, raw=False):
    """Percent with damo's lossy round trip (29 → ``28 %``)."""
    p = py_num(p)
    if raw:
        return "%f" % p
    return pct_str(float(p) / 100) + " %"


def format_bp(bp, raw=False):
    """Basis points (1/10000) as percent text (400 → ``4 %``)."""
    bp = py_num(bp)
    if raw:
        return "%f" % bp
    return pct_str(float(bp) / 10000) + " %"


_MIN_UNITS_NS = ((24 * 3600 * NS_PER_SEC, "d"), (3600 * NS_PER_SEC, "h"), (60 * NS_PER_SEC, "m"),
                 (NS_PER_SEC, "s"), (NS_PER_MS, "ms"), (NS_PER_US, "us"), (1, "ns"))


def format_time_ns_min_unit(t, raw=False):
    """damo's ``format_time_ns_min_unit(t, 1 ns, raw)``: every unit spelled out, exact
    (``1 us 24 ns``), as damo's json/text record writers print intervals."""
    t = py_num(t)
    if raw:
        return "%d" % t
    sign = ""
    if t < 0:
        sign, t = "-", -t
    if t >= ULONG_MAX:
        return sign + "max"
    for unit_ns, name in _MIN_UNITS_NS:
        if t < unit_ns:
            continue
        if unit_ns == 1:
            if t % 1:
                return "%s%.3f %s" % (sign, t, name)
            return "%s%d %s" % (sign, t, name)
        unit_nr = int(t / unit_ns)
        less = t - unit_nr * unit_ns
        text = "%s %s" % (format_nr(unit_nr), name)
        if less == 0:
            return sign + text
        return "%s%s %s" % (sign, text, format_time_ns_min_unit(less))
    return "0 ns"

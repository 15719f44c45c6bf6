"""damo's lenient number parsers (FORMATS.md §3) used for JSON values and CLI options.

Each returns exactly what damo 3.4.3 computes, int or float, so that later arithmetic
matches damo bit for bit.
"""

U64_MAX = 2 ** 64 - 1

_SIZE_UNITS = {
    "B": 1,
    "K": 1 << 10, "KB": 1 << 10, "KiB": 1 << 10,
    "M": 1 << 20, "MB": 1 << 20, "MiB": 1 << 20,
    "G": 1 << 30, "GB": 1 << 30, "GiB": 1 << 30,
    "T": 1 << 40, "TB": 1 << 40, "TiB": 1 << 40,
    "P": 1 << 50, "PB": 1 << 50, "PiB": 1 << 50,
    "E": 1 << 60, "EB": 1 << 60, "EiB": 1 << 60,
}

_TIME_UNITS_NS = {"ns": 1, "us": 1000, "ms": 1000 * 1000, "s": 1000 ** 3,
                  "m": 60 * 1000 ** 3, "h": 3600 * 1000 ** 3, "d": 24 * 3600 * 1000 ** 3}


def text_to_nr(value):
    """Count: JSON number as is; 'max' -> 2^64-1; else int() without commas, then float()."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    if text == "max":
        return U64_MAX
    text = text.replace(",", "")
    try:
        return int(text)
    except ValueError:
        return float(text)


def text_to_bytes(value):
    """Size in bytes: 'min', 'max', plain numbers, or '<n> <unit>' with binary units."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    if text == "min":
        return 0
    if text == "max":
        return U64_MAX
    try:
        return text_to_nr(text)
    except ValueError:
        pass
    for suffix in sorted(_SIZE_UNITS, key=len, reverse=True):
        if text.endswith(suffix):
            number = text[:-len(suffix)]
            try:
                n = text_to_nr(number)
            except ValueError:
                try:
                    n = float(number)
                except ValueError:
                    continue
            return min(U64_MAX, int(n * _SIZE_UNITS[suffix]))
    raise ValueError("cannot parse %r as a size" % text)


def text_to_ns(value):
    """Time in ns: 'min'/'max', a plain number, or a sum of '<n><unit>' / '<n> <unit>' pairs.

    The readers' lenient parser: text with units always gives a float, and every number
    needs a unit. :func:`damo_text_to_ns` is damo's own parser, which keeps ints.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    if text == "min":
        return 0
    if text == "max":
        return U64_MAX
    try:
        return text_to_nr(text)
    except ValueError:
        pass
    tokens = text.split()
    total = 0
    i = 0
    matched = False
    while i < len(tokens):
        tok = tokens[i]
        unit = None
        for u in sorted(_TIME_UNITS_NS, key=len, reverse=True):
            if tok.endswith(u) and tok[:-len(u)]:
                try:
                    float(tok[:-len(u)])
                except ValueError:
                    continue
                unit = u
                number = tok[:-len(u)]
                break
        if unit is None:
            if i + 1 < len(tokens) and tokens[i + 1] in _TIME_UNITS_NS:
                number, unit = tok, tokens[i + 1]
                i += 1
            else:
                raise ValueError("cannot parse %r as a time" % text)
        total += float(number) * _TIME_UNITS_NS[unit]
        matched = True
        i += 1
    if not matched:
        raise ValueError("cannot parse %r as a time" % text)
    return total


def text_to_us(value):
    """Time in µs: a plain number stays as is; text with units is :func:`text_to_ns` / 1000.

    ('min' gives 0.0 here, 0 in :func:`damo_text_to_us`.)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    try:
        return text_to_nr(value)
    except ValueError:
        return text_to_ns(value) / 1000



def damo_text_to_ns(txt):
    """damo 3.4.3's own ``text_to_ns``, result types included.

    Differs from the lenient :func:`text_to_ns` on purpose, for the options whose value
    reaches damo's arithmetic and output (heatmap ``--time_range``, the record filter's
    ``--snapshot_time``): an integral number with a unit stays an int (``"20s"`` ->
    20000000000, not 2e10), and fields are glued two by two (``"1 m 30 s"`` -> "1m" +
    "30s"), so a lone trailing number counts as ns (``"10 s 5"`` -> 10000000005).
    """
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
    if txt[-2:] not in _TIME_UNITS_NS and txt[-1:] not in _TIME_UNITS_NS:
        return float(txt)
    unit = txt[-2:]
    if unit in ("ns", "us", "ms"):
        number = text_to_nr(txt[:-2])
    else:
        unit = txt[-1]
        number = text_to_nr(txt[:-1])
    return number * _TIME_UNITS_NS[unit]


def damo_text_to_us(txt):
    """damo 3.4.3's own ``text_to_us``: 'min' -> 0, 'max', plain numbers as they are,
    else :func:`damo_text_to_ns` / 1000."""
    if txt == "min":
        return 0
    if txt == "max":
        return U64_MAX
    try:
        return text_to_nr(txt)
    except ValueError:
        return damo_text_to_ns(txt) / 1000

def text_to_percent(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        text = text[:-1].strip()
    return text_to_nr(text)

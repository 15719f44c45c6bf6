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
    """Time in ns: 'min'/'max', a plain number, or a sum of '<n><unit>' / '<n> <unit>' pairs."""
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
    """Time in µs: a plain number stays as is; text with units is converted from ns (float)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    try:
        return text_to_nr(value)
    except ValueError:
        return text_to_ns(value) / 1000


def text_to_percent(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        text = text[:-1].strip()
    return text_to_nr(text)

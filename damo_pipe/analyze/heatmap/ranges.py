"""Range arguments of ``report heatmap`` (SEMANTICS.md §2.1): ``--time_range`` and
``--address_range`` words, resolved against a guide as damo does."""
from __future__ import annotations

from damo_pipe.errors import UsageError
from damo_pipe.formats.numbers import damo_text_to_ns


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
    """The guide's contiguous regions to draw: all of them, the hottest one (damo: most
    access per byte) or the busiest one (most total access, our pictures' default)."""
    regs = guide.regions()
    if draw_range == "all":
        return regs
    if draw_range == "busiest":
        return [regs[guide.busiest_index()]]
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

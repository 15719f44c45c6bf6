"""damo's distribution text (analyze/dist.py), checked against hand-written lines."""
import pytest

from damo_pipe.analyze.dist import (format_dist, format_percentile_cells, percentile_index,
                                    percentile_value)
from damo_pipe.analyze.wss import format_wss_block
from damo_pipe.errors import ReportError

MiB = 1 << 20


def test_percentile_pick_is_damos():
    assert [percentile_index(10, p) for p in (0, 25, 50, 75, 99, 100)] == [0, 2, 5, 7, 9, 9]
    assert percentile_index(3, 50) == 1
    assert percentile_value([], 50) is None
    assert percentile_value([5, 6, 7, 8], 100) == 8
    with pytest.raises(ReportError):
        percentile_index(4, 150)


def test_block_with_bars():
    values = [1 * MiB, 2 * MiB, 3 * MiB, 4 * MiB]
    assert format_dist("rss", values, [0, 50, 100], nr_cols_bar=8).split("\n") == [
        "# <percentile> <rss>",
        "# avr:\t2.500 MiB",
        "  0    1024.000 KiB |**      |",      # damo's units switch above, not at, 1 MiB
        " 50       3.000 MiB |******  |",
        "100       4.000 MiB |********|",
    ]


def test_raw_all_and_no_bars():
    assert format_dist("vsz", [3, 10], [0], raw=True, pr_all=True) == \
        "# <percentile> <vsz>\n# avr:\t6\n0 3\n1 10"
    assert format_dist("vsz", [3, 10], [0, 100], raw=True, nr_cols_bar=0) == \
        "# <percentile> <vsz>\n# avr:\t6\n  0               3\n100              10"
    assert format_dist("x", [], [0]) == "# <percentile> <x>\n# no snapshot"
    # all zero: one column per 1 byte, so no star
    assert format_dist("x", [0, 0], [0], nr_cols_bar=3).endswith("|   |")


def test_wss_block_keeps_its_header():
    assert format_wss_block(7, [MiB], [50], nr_cols_bar=2) == (
        "# target_id\t7\n# <percentile> <wss>\n# avr:\t1024.000 KiB\n 50    1024.000 KiB |**|")


def test_holistic_cells():
    assert format_percentile_cells([3 * MiB], (0, 100)) == "%15s %15s " % ("3.000 MiB", "3.000 MiB")
    assert format_percentile_cells([], (0,)) == "%15s " % "-1 B"

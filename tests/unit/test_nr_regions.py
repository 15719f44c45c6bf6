"""report nr_regions (SEMANTICS.md §4)."""
import numpy as np

from damo_pipe.analyze import nr_regions as nr
from damo_pipe.analyze._chunks import RecordSource
from damo_pipe.model import Record, RecordBuilder, RegionColumns


def _rec(counts, tid=0):
    b = RecordBuilder(Record(target_id=tid))
    for k, n in enumerate(counts):
        s = np.arange(n, dtype=np.uint64) * 4096
        b.add_snapshot(k * 10, k * 10 + 10, RegionColumns(s, s + 4096))
    return b.build()


def test_skips_20_and_sorts():
    counts = list(range(100, 120)) + [5, 3, 9, 7]
    res = nr.compute_nr_regions([_rec(counts)])
    assert res[0][1].tolist() == [3, 5, 7, 9]
    res_t = nr.compute_nr_regions([_rec(counts)], sortby="time")
    assert res_t[0][1].tolist() == [5, 3, 9, 7]
    text = nr.format_nr_regions(res, [0, 50, 100])
    assert text.split("\n") == ["# <percentile> <# regions>", "# target_id\t0", "# avr:\t6",
                                "0\t3", "50\t7", "100\t9"]


def test_chunked_equals_whole():
    counts = [3, 1, 4, 1, 5, 9, 2, 6] * 5
    src = RecordSource.from_records([_rec(counts)])
    src.snapshots_per_chunk = 3
    assert nr.record_nr_regions(src.iter_chunks(0)).tolist() == counts[20:]
    assert nr.compute_nr_regions(src)[0][1].tolist() == sorted(counts[20:])


def test_short_record_gives_message_not_crash():
    text = nr.format_nr_regions(nr.compute_nr_regions([_rec([1] * 20)]), [0])
    assert "no snapshot" in text

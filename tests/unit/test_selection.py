"""analyze/selection.py (the --time_range/--address_range of wss, nr_regions, html,
batch) and analyze/export.py (the JSON/CSV helpers), on small records built here."""
import json

import numpy as np
import pytest

from damo_pipe.analyze import export as E
from damo_pipe.analyze import selection as S
from damo_pipe.errors import UsageError
from damo_pipe.model import Record, RecordBuilder, RegionColumns


def record():
    """Three snapshots [0,10) [10,20) [25,35) ns; regions [0,100) [100,300) [300,400)
    with sz_filter_passed 50, 200, 0 (the last snapshot has none)."""
    b = RecordBuilder(Record(target_id=1))
    for k, (s, e) in enumerate([(0, 10), (10, 20), (25, 35)]):
        if k == 2:
            b.add_snapshot(s, e, RegionColumns())
            continue
        b.add_snapshot(s, e, RegionColumns(np.array([0, 100, 300], np.uint64),
                                           np.array([100, 300, 400], np.uint64),
                                           np.array([1, 2, 3], np.int64),
                                           np.array([0, 0, 0], np.int64),
                                           np.array([50, 200, 0], np.uint64)))
    return b.build()


def test_snapshot_range_meets_the_closed_snapshot_interval():
    snaps = record().snapshots
    assert S.snapshot_range(snaps, None) == (0, 3)
    assert S.snapshot_range(snaps, (10, 11)) == (0, 2)     # snapshot 0 ends at 10: meets
    assert S.snapshot_range(snaps, (11, 25)) == (1, 2)     # 2 starts at 25: out
    assert S.snapshot_range(snaps, (21, 24)) == (2, 2)     # the gap: none
    assert S.snapshot_range(snaps, (0, 10 ** 12)) == (0, 3)


def test_clip_address_range():
    rec = record()
    out = S.clip_address_range(rec, (50, 350))
    out.check()
    assert out.snapshots.nr_regions.tolist() == [3, 3, 0]
    assert out.regions.start.tolist() == [50, 100, 300] * 2
    assert out.regions.end.tolist() == [100, 300, 350] * 2
    assert out.regions.sz_filter_passed.tolist() == [25, 200, 0] * 2
    assert out.snapshots.total_bytes.tolist() == [300, 300, 0]
    out = S.clip_address_range(rec, (100, 300))
    out.check()
    assert out.regions.start.tolist() == [100, 100] and out.regions.end.tolist() == [300, 300]
    assert out.snapshots.region_offset.tolist() == [0, 1, 2]
    assert S.clip_address_range(rec, None) is rec
    empty = S.clip_address_range(rec, (1000, 2000))
    assert empty.nr_regions == 0 and empty.snapshots.total_bytes.tolist() == [0, 0, 0]


def test_resolve_words():
    rec = record()
    sel = S.resolve_selection([rec], ["5", "15"], None)
    assert sel == S.Selection((5, 15), None)
    assert S.resolve_selection([rec], ["1", "2", "guided_end"], None).time_range == (36, 37)
    assert S.resolve_selection([rec], ["0.5", "2.2", "10"], None).time_range == (11, 13)
    sel = S.resolve_selection([rec], None, ["0x10", "0x20"])
    assert sel.address_range == (16, 32) and sel.time_range is None
    assert S.resolve_selection([rec], None, ["1K", "2K"]).address_range == (1024, 2048)
    assert not S.resolve_selection([rec], None, None)
    # 'guided' counts from the start of the range heatmap draws by default: the guide's
    # [100, 400) here (damo's guide takes address 0 for "unset", SEMANTICS.md Q3)
    assert S.resolve_selection([rec], None, ["10", "20", "guided"]).address_range == (110, 120)
    for t, a in ((["1"], None), (["2", "1"], None), (["1", "2", "x"], None),
                 (None, ["1"]), (None, ["2", "1"]), (None, ["0xz", "1"]),
                 (None, ["1", "2", "x"])):
        with pytest.raises(UsageError):
            S.check_selection_words(t, a)


def test_select_records_and_batch_options():
    from damo_pipe.analyze.images import BatchOptions
    rec = record()
    recs, opts, sel = S.apply_batch_selection([rec], BatchOptions(exclude_samples=3))
    assert recs == [rec] and not sel and opts.exclude_samples == 3
    o = BatchOptions(exclude_samples=3, time_range=["11", "40"], address_range=["0", "150"])
    recs, opts, sel = S.apply_batch_selection([rec], o)
    assert recs[0].snapshots.start_ns.tolist() == [10, 25]
    assert recs[0].regions.end.tolist() == [100, 150]
    assert opts.exclude_samples == 2            # snapshot 0 is already left out
    assert "[0x0, 0x96)" in S.selection_note(sel, [rec])
    assert "[11.000 s" not in S.selection_note(sel, [rec])
    assert "[0.000 s, 0.000 s)" in S.selection_note(sel, [rec])


def test_export_helpers():
    assert E.ns(1.5) == 2 and E.ns(None) is None and E.ns(np.int64(7)) == 7
    assert E.time_fields("t", 3_500_000_000, 1_000_000_000) == {"t_ns": 3_500_000_000,
                                                                 "t_s": 2.5}
    assert E.utc_of(5) is None
    assert E.utc_of(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    doc = E.document("x", {"v": [np.float64("nan"), np.int64(3), (1, 2)]}, time_origin_ns=9)
    text = E.dumps(doc)
    back = json.loads(text)
    assert back["schema"] == "damo-pipe/x" and back["version"] == E.VERSION
    assert back["v"] == [None, 3, [1, 2]] and back["time_origin_ns"] == 9
    assert "NaN" not in text and text.endswith("}\n")
    assert E.csv_text(["a", "b"], [[None, 0.1], ["x,y", 3]]) == 'a,b\n,0.1\n"x,y",3\n'
    assert E.percentile_rows([], [0, 50]) == []
    assert E.percentile_rows([1, 2, 3, 4], [0, 50, 100], "n") == [
        {"percentile": 0, "n": 1}, {"percentile": 50, "n": 3}, {"percentile": 100, "n": 4}]


def test_every_json_schema_is_documented():
    """Each report's document(...) call has its section in docs/json.md."""
    import pathlib
    import re
    root = pathlib.Path(__file__).resolve().parents[2]
    names = set()
    for p in (root / "damo_pipe").rglob("*.py"):
        names |= set(re.findall(r'document\(\s*"(\w+)"', p.read_text()))
    assert {"heatmap", "wss", "nr_regions", "footprints", "record_info", "times", "profile",
            "holistic", "info", "diff"} <= names
    doc = (root / "docs" / "json.md").read_text()
    for n in sorted(names):
        assert "## `damo-pipe/%s`" % n in doc, n


def test_api_address_range_takes_hexadecimal():
    """docs/api.md's promise: address strings such as '0x7f0000000000'."""
    from damo_pipe.api import resolve_address_range
    assert resolve_address_range(("0x7f0000000000", "0x7F0000001000")) == (
        0x7f0000000000, 0x7f0000001000)
    assert resolve_address_range(("4KiB", None)) == (4096, (1 << 64) - 1)
    with pytest.raises(UsageError):
        resolve_address_range(("0xzz", "0x10"))

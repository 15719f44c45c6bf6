"""report record_info: damo's guide text (human and raw) and our JSON, on a record whose
ranges are worked out by hand."""
import json

import numpy as np

from damo_pipe.analyze import record_info as R
from damo_pipe.analyze.cli import main
from damo_pipe.model import Intervals, Record, RecordBuilder, RegionColumns

GiB = 1 << 30


def record(tid=3):
    iv = Intervals(sample_us=5000, aggr_us=100000, ops_update_us=1000000)
    b = RecordBuilder(Record(target_id=tid, kdamond_idx=None, intervals=iv))
    # two snapshots; the gap [2 GiB, 3 GiB) is common to both, [5, 6) GiB only in the first
    # (damo only narrows gaps, so it stays)
    b.add_snapshot(10_000_000_000, 10_100_000_000, RegionColumns(
        np.array([GiB, 3 * GiB, 6 * GiB], np.uint64), np.array([2 * GiB, 5 * GiB, 7 * GiB], np.uint64),
        np.array([1, 0, 2], np.int64), np.array([4, 7, 0], np.int64)))
    b.add_snapshot(10_100_000_000, 10_200_000_000, RegionColumns(
        np.array([GiB, 3 * GiB], np.uint64), np.array([2 * GiB, 7 * GiB], np.uint64),
        np.array([1, 1], np.int64), np.array([5, 8], np.int64)))
    return b.build()


def test_text_human_and_raw(engine):
    guides = R.record_guides([record()], engine=engine)
    # start: the first snapshot's start minus its oldest age (7 aggregation intervals)
    start = 10_000_000_000 - 7 * 100_000_000
    assert R.format_record_info(guides).split("\n") == [
        "kdamond_idx: 0", "context_idx: 0", "target_id: 3",
        "time: [9.300 s, 10.200 s) (900 ms)",
        "region\t 0: [1024.000000 MiB, 2.000000 GiB) (1024.000 MiB)",
        "region\t 1: [3.000000 GiB, 5.000000 GiB) (2.000 GiB)",
        "region\t 2: [6.000000 GiB, 7.000000 GiB) (1024.000 MiB)",
    ]
    assert R.format_record_info(guides, raw=True).split("\n")[3:] == [
        "time: [%d, 10200000000) (%d)" % (start, 10_200_000_000 - start),
        "region\t 0: [%d, %d) (%d)" % (GiB, 2 * GiB, GiB),
        "region\t 1: [%d, %d) (%d)" % (3 * GiB, 5 * GiB, 2 * GiB),
        "region\t 2: [%d, %d) (%d)" % (6 * GiB, 7 * GiB, GiB),
    ]
    doc = R.record_info_json(guides, origin_ns=10_000_000_000)
    assert (doc["schema"], doc["version"]) == ("damo-pipe/record_info", 1)
    assert doc["records"] == [{
        "kdamond_idx": 0, "context_idx": 0, "scheme_idx": None, "target_id": 3,
        "start_time_ns": start, "start_time_s": -0.7,
        "end_time_ns": 10_200_000_000, "end_time_s": 0.2,
        "regions": [{"start": GiB, "end": 2 * GiB, "size": GiB},
                    {"start": 3 * GiB, "end": 5 * GiB, "size": 2 * GiB},
                    {"start": 6 * GiB, "end": 7 * GiB, "size": GiB}]}]


def test_cli(tmp_path, capsys):
    from damo_pipe.formats import write_records
    path = tmp_path / "damon.data"
    write_records([record(), record(tid=4)], str(path), "json_compressed")
    assert main(["report", "record_info", "--input", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("kdamond_idx: 0\n") == 2 and "target_id: 4\n" in out
    assert main(["report", "record_info", "--input", str(path), "--json"]) == 0
    assert [g["target_id"] for g in json.loads(capsys.readouterr().out)["records"]] == [3, 4]
    assert main(["report", "record_info", "--input", str(tmp_path / "none")]) == 1
    cap = capsys.readouterr()
    assert cap.out == "" and "no such file" in cap.err

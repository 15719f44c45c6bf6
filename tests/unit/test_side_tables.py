"""ArchiveWriter's side tables (/collect): committed with the records, readable back,
refused once SWMR appending started."""
import numpy as np
import pytest

from damo_pipe.archive import ArchiveWriter
from damo_pipe.archive.sidetables import read_side_table
from damo_pipe.errors import ArchiveError
from damo_pipe.model import Record


def test_rows_become_readable_at_flush(tmp_path):
    path = tmp_path / "a.h5"
    w = ArchiveWriter(path, swmr=False)
    w.add_record(Record(target_id=0))
    t = w.add_side_table("meminfo", {"time_ns": np.int64, "MemFree": np.uint64},
                         attrs={"unit": "kB"})
    w.set_side_attrs(spec_json='{"a": 1}')
    t.append(time_ns=1, MemFree=10)
    t.append(time_ns=2)
    w.flush()
    t.append(time_ns=3, MemFree=30)   # queued, not flushed: not committed yet
    got = read_side_table(w._file, "meminfo")
    assert list(got["time_ns"]) == [1, 2] and list(got["MemFree"]) == [10, 0]
    w.close()
    got = read_side_table(path, "meminfo")
    assert list(got["time_ns"]) == [1, 2, 3] and list(got["MemFree"]) == [10, 0, 30]
    assert read_side_table(path, "footprints") is None


def test_structure_is_closed_once_swmr_appending_started(tmp_path):
    w = ArchiveWriter(tmp_path / "a.h5", swmr=True)
    w.add_record(Record(target_id=0))
    w.add_side_table("t", {"x": np.int64})
    w.flush()
    with pytest.raises(ArchiveError, match="side table"):
        w.add_side_table("u", {"x": np.int64})
    with pytest.raises(ArchiveError, match="attributes"):
        w.set_side_attrs(a=1)
    w.close()

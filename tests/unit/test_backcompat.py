"""Every later damo-pipe reads the archive that format version 1 wrote (tests/data).

The file was written once by the 2026-12-04 code and is never regenerated; its content
is rebuilt in memory from the same seed by tests/data/make_archive_v1.py and compared
column by column, through the public reader, every damo output flavour, and the CLI.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.data import make_archive_v1 as v1

ARCHIVE = Path(__file__).resolve().parent.parent / "data" / "archive-v1.h5"


def test_header_is_version_1():
    import h5py
    with h5py.File(ARCHIVE, "r") as f:
        assert int(f.attrs["format_version"]) == 1


def test_records_read_back_exactly():
    from damo_pipe.archive import read_archive_records
    got = read_archive_records(ARCHIVE)
    want = v1.expected_records()
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g.target_id, g.pid, g.kdamond_idx, g.context_idx) == \
            (w.target_id, w.pid, w.kdamond_idx, w.context_idx)
        assert g.intervals.sample_us == w.intervals.sample_us
        assert g.intervals.aggr_us == w.intervals.aggr_us
        for name in ("start_ns", "end_ns", "nr_regions", "total_bytes"):
            np.testing.assert_array_equal(getattr(g.snapshots, name), getattr(w.snapshots, name))
        for name in ("start", "end", "nr_accesses", "age"):
            np.testing.assert_array_equal(getattr(g.regions, name), getattr(w.regions, name))


@pytest.mark.parametrize("table", ["footprints", "meminfo"])
def test_side_tables_read_back(table):
    from damo_pipe.archive.sidetables import read_side_table
    got = read_side_table(ARCHIVE, table)
    rows = v1.expected_side_rows()[table]
    assert set(got) >= set(rows[0])
    for col in rows[0]:
        np.testing.assert_array_equal(np.asarray(got[col]), [r[col] for r in rows])


def test_cli_reads_it(tmp_path):
    """info and a damo report run on it, and convert turns it into damo's json."""
    exe = Path(sys.executable).parent
    info = subprocess.run([exe / "damo-analyze", "info", str(ARCHIVE)], capture_output=True,
                          text=True)
    assert info.returncode == 0, info.stderr
    out = tmp_path / "v1.json"
    conv = subprocess.run([exe / "damo-analyze", "convert", str(ARCHIVE), str(out)],
                          capture_output=True, text=True)
    assert conv.returncode == 0, conv.stderr
    from damo_pipe.formats import read_records
    back = read_records(out)
    want = v1.expected_records()
    assert [r.nr_snapshots for r in back] == [r.nr_snapshots for r in want]
    for b, w in zip(back, want):
        np.testing.assert_array_equal(b.regions.nr_accesses, w.regions.nr_accesses)
        np.testing.assert_array_equal(b.regions.start, w.regions.start)

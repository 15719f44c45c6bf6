"""The CPU profile in an archive (archive/profile.py): perf.data bytes, sample table,
time windows through the index, the writer's set_profile, crash safety of attach."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from damo_pipe.archive import ArchiveReader, ArchiveWriter
from damo_pipe.archive import profile as AP
from damo_pipe.archive.sidetables import read_side_table
from damo_pipe.errors import ArchiveError
from damo_pipe.formats.perf_samples import ProfileSamples
from damo_pipe.model import Intervals, Record
from tests.support.archive_proc import chunk_for
from tests.support.records import profile_samples

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _archive(path, nsnap=20, swmr=False, compact=True, profile=None):
    meta = Record(target_id=0, intervals=Intervals(5000, 100000, 1000000))
    w = ArchiveWriter(path, swmr=swmr, compact_on_close=compact)
    w.add_record(meta)
    w.append(0, chunk_for(meta, 0, 0, nsnap))
    w.flush()
    if profile is not None:
        w.set_profile(*profile)
    w.close()
    return str(path)


def _perf_data(path, size=100_000, seed=1):
    data = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(data)
    return str(path), data


def _same(a, b):
    assert a.symbols == b.symbols and a.dsos == b.dsos
    for c in ProfileSamples.COLUMNS:
        assert np.array_equal(getattr(a, c), getattr(b, c)), c


def test_attach_read_extract(tmp_path):
    h5 = _archive(tmp_path / "a.h5")
    assert AP.read_profile(h5) == (None, {}) and not AP.has_profile(h5)
    assert AP.extract_perf_data(h5, tmp_path / "x") is None
    pd, data = _perf_data(tmp_path / "perf.data")
    s = profile_samples()
    AP.attach_profile(h5, pd, s, attrs={"perf_clock": "realtime", "note": {"a": 1}})
    got, attrs = AP.read_profile(h5)
    _same(got, s)
    assert attrs["nr_samples"] == len(s) and attrs["perf_clock"] == "realtime"
    assert attrs["note"] == '{"a": 1}' and attrs["perf_data_name"] == "perf.data"
    out = AP.extract_perf_data(h5, tmp_path / "back.data")
    assert open(out, "rb").read() == data
    # the records are untouched, and the sample table reads as a side table too
    with ArchiveReader(h5) as r:
        assert r.nr_snapshots(0) == 20
    assert np.array_equal(read_side_table(h5, "profile")["time_ns"], s.time_ns)


def test_attach_replaces_and_keeps_other_side_tables(tmp_path):
    h5 = tmp_path / "a.h5"
    meta = Record(target_id=0)
    with ArchiveWriter(h5) as w:
        w.add_record(meta)
        w.append(0, chunk_for(meta, 0, 0, 5))
        t = w.add_side_table("meminfo", {"time_ns": np.int64, "MemTotal": np.uint64})
        t.append(time_ns=5, MemTotal=7)
        w.set_side_attrs(spec_json="{}")
    AP.attach_profile(h5, None, profile_samples(100))
    AP.attach_profile(h5, None, profile_samples(10, seed=9))
    got, attrs = AP.read_profile(h5)
    _same(got, profile_samples(10, seed=9))
    assert AP.extract_perf_data(h5, tmp_path / "x") is None
    assert read_side_table(h5, "meminfo")["MemTotal"].tolist() == [7]
    import h5py
    with h5py.File(h5, "r") as f:
        assert f["collect"].attrs["spec_json"] == "{}"


def test_time_offset_shifts_the_table_only(tmp_path):
    h5 = _archive(tmp_path / "a.h5")
    pd, data = _perf_data(tmp_path / "perf.data")
    s = profile_samples()
    AP.attach_profile(h5, pd, s, attrs={"time_offset_ns": 1000})
    got, attrs = AP.read_profile(h5)
    assert np.array_equal(got.time_ns, s.time_ns + 1000) and attrs["time_offset_ns"] == 1000
    assert open(AP.extract_perf_data(h5, tmp_path / "b"), "rb").read() == data


@pytest.mark.parametrize("stride", [7, 4096])
def test_window_through_the_index(tmp_path, monkeypatch, stride):
    monkeypatch.setattr(AP, "TIME_INDEX_STRIDE", stride)
    h5 = _archive(tmp_path / "a.h5")
    s = profile_samples(13000)
    AP.attach_profile(h5, None, s)
    rng = np.random.default_rng(0)
    t = s.time_ns
    probes = [(None, None), (None, int(t[100])), (int(t[12900]), None), (int(t[0]), int(t[-1]) + 1),
              (int(t[0]) - 5, int(t[0])), (int(t[-1]) + 1, int(t[-1]) + 9)]
    probes += [tuple(sorted(int(x) for x in rng.integers(t[0] - 10, t[-1] + 10, 2)))
               for _ in range(40)]
    probes += [(int(t[k]), int(t[k + stride])) for k in (0, stride - 1, stride, 2 * stride + 1)]
    for a, b in probes:
        got, _ = AP.read_profile_window(h5, a, b)
        _same(got, s.window(a, b))
    got, _ = AP.read_profile_window(h5, int(t[10]), int(t[20]), columns=("symbol_id",))
    assert np.array_equal(got.symbol_id, s.symbol_id[10:20]) and not got.pid.any()


@pytest.mark.parametrize("swmr, compact", [(False, True), (True, True), (True, False)])
def test_writer_set_profile(tmp_path, swmr, compact):
    pd, data = _perf_data(tmp_path / "perf.data")
    s = profile_samples()
    h5 = _archive(tmp_path / "a.h5", swmr=swmr, compact=compact, profile=(pd, s, {"k": 2}))
    got, attrs = AP.read_profile(h5)
    _same(got, s)
    assert attrs["k"] == 2
    assert open(AP.extract_perf_data(h5, tmp_path / "b"), "rb").read() == data
    with ArchiveReader(h5) as r:
        assert r.nr_snapshots(0) == 20
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_profile_without_samples_and_damaged_bytes(tmp_path):
    pd, _ = _perf_data(tmp_path / "perf.data")
    h5 = _archive(tmp_path / "a.h5")
    AP.attach_profile(h5, pd, None, attrs={"samples_error": "perf not found"})
    got, attrs = AP.read_profile(h5)
    assert got is None and attrs["samples_error"] == "perf not found"
    assert AP.read_profile_window(h5, 0, 1)[0] is None
    import h5py
    with h5py.File(h5, "r+") as f:
        d = f["collect/profile/perf_data"]
        d[0] = d[0] ^ 0xFF
    with pytest.raises(ArchiveError, match="checksum"):
        AP.extract_perf_data(h5, tmp_path / "bad.data")
    assert not (tmp_path / "bad.data").exists()


def test_set_profile_needs_something(tmp_path):
    with ArchiveWriter(tmp_path / "a.h5") as w:
        with pytest.raises(ValueError):
            w.set_profile(None, None)


ATTACH = """
import sys
from damo_pipe.archive.profile import attach_profile
print("start", flush=True)
attach_profile(sys.argv[1], sys.argv[2], None, attrs={"round": int(sys.argv[3])})
print("done", flush=True)
"""


def test_attach_profile_survives_sigkill(tmp_path):
    """A SIGKILL at any moment of attach_profile leaves an archive that opens with every
    snapshot and either the old profile or the new one, complete."""
    h5 = _archive(tmp_path / "a.h5", nsnap=200)
    big, data = _perf_data(tmp_path / "big.data", size=24 << 20, seed=5)
    digest = hashlib.sha256(data).hexdigest()
    env = dict(os.environ, PYTHONPATH=ROOT)
    outcomes = set()
    for k, delay in enumerate([0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.2, 5.0]):
        p = subprocess.Popen([sys.executable, "-c", ATTACH, h5, big, str(k)], env=env,
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "start"
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
        with ArchiveReader(h5) as r:
            assert r.nr_snapshots(0) == 200
        attrs = AP.profile_attrs(h5)
        if attrs is None:
            outcomes.add("none")
            continue
        out = AP.extract_perf_data(h5, tmp_path / "x.data")
        assert hashlib.sha256(open(out, "rb").read()).hexdigest() == digest
        outcomes.add("old" if attrs["round"] < k else "new")
        for t in os.listdir(tmp_path):          # leftovers of a kill: only temporary files
            assert t.endswith(".tmp") or t in ("a.h5", "big.data", "x.data"), t
    assert "new" in outcomes      # the longest delay lets an attach finish

"""damo-analyze batch: input expansion, naming, and whole runs on dask LocalClusters."""
import json
import os

import pytest

from damo_pipe.analyze import batch
from damo_pipe.analyze.cli import main
from tests.support.plotting import PNG_MAGIC
from tests.support.records import expected_wss, make_damo_json


# --------------------------------------------------------------------------- naming

def test_unique_names_basename_when_unique():
    assert batch.unique_names(["/x/a.h5", "/y/b.json"]) == ["a.h5", "b.json"]


def test_unique_names_disambiguates_shared_basenames():
    names = batch.unique_names(["/r/run1/damon.data", "/r/run2/damon.data", "/q/other.h5"])
    assert names == ["run1__damon.data", "run2__damon.data", "other.h5"]
    deep = batch.unique_names(["/a/x/y/damon.data", "/b/x/y/damon.data"])
    assert len(set(deep)) == 2 and all(n.endswith("x__y__damon.data") for n in deep)


def test_unique_names_last_resort_suffix_and_reserved():
    names = batch.unique_names(["/a/b c", "/a/b_c", "/d/index.html"])
    assert len(set(names)) == 3
    assert "index.html" not in names
    assert all("/" not in n and " " not in n and not n.startswith(".") for n in names)


def test_expand_inputs(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for p in ("d/one.json", "d/sub/two.json", "d/.hidden", "three.h5", "four.json"):
        (tmp_path / p).write_text("[]")
    out = tmp_path / "d" / "out"
    out.mkdir()
    (out / "old.json").write_text("[]")
    items = batch.expand_inputs([tmp_path / "d", str(tmp_path / "*.h5"), tmp_path / "d/one.json",
                                 str(tmp_path / "nothing*.x"), tmp_path / "missing"],
                                exclude_dirs=[out])
    paths = [os.path.relpath(i.path, tmp_path) for i in items]
    assert paths == ["d/one.json", "d/sub/two.json", "three.h5", "nothing*.x", "missing"]
    assert [i.error is None for i in items] == [True, True, True, False, False]
    assert "no file matches" in items[3].error and "no such file" in items[4].error


# --------------------------------------------------------------------------- whole runs

@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "in"
    (d / "a").mkdir(parents=True)
    (d / "b").mkdir()
    dicts = {
        "a__damon.data": make_damo_json(d / "a" / "damon.data", 30, 12, seed=1),
        "b__damon.data": make_damo_json(d / "b" / "damon.data", 26, 10, seed=2, nr_targets=2),
    }
    # an HDF5 archive made by the project's archive writer from a third JSON file
    src = tmp_path / "src.json"
    dicts["third.h5"] = make_damo_json(src, 24, 8, seed=3)
    from damo_pipe.archive import write_records
    from damo_pipe.formats import read_records
    write_records(read_records(src), d / "third.h5")
    (d / "broken.json").write_text('[{"target_id": 0, "snapshots": [{"start_time": ')
    # a truncated copy of the archive (a crash while copying, a full disk...)
    (d / "truncated.h5").write_bytes((d / "third.h5").read_bytes()[:4096])
    return d, dicts


def check_run(out, dicts, rc, stderr):
    assert rc == 1                          # failures -> non-zero
    fail_lines = [ln for ln in stderr.splitlines() if "failed:" in ln]
    assert len(fail_lines) == 2             # one line per failure
    assert [ln for ln in fail_lines if "broken.json" in ln and "invalid JSON" in ln]
    assert [ln for ln in fail_lines if "truncated.h5" in ln and "truncated" in ln.split("h5", 1)[1]]
    index = (out / "index.html").read_text()
    assert "Failed inputs (2)" in index and "broken.json" in index and "invalid JSON" in index
    assert "truncated.h5" in index
    for name, recs in dicts.items():
        d = out / name
        for f in ("heatmap.png", "wss_dist.png", "wss_chron_change.png"):
            assert (d / f).read_bytes()[:8] == PNG_MAGIC, (name, f)
            assert 'src="%s/%s"' % (name, f) in index
        s = json.loads((d / "summary.json").read_text())
        assert s["nr_records"] == len(recs)
        assert s["nr_snapshots"] == sum(len(r["snapshots"]) for r in recs)
        for t, r in zip(s["targets"], recs):
            w = expected_wss(r)
            n = len(w)
            want = {str(p): w[min(int(p / 100.0 * n), n - 1)] for p in (0, 25, 50, 75, 100)}
            assert t["wss_percentiles"] == want
            assert t["start_ns"] == r["snapshots"][0]["start_time"]
            assert t["end_ns"] == r["snapshots"][-1]["end_time"]
    assert not (out / "broken.json" / "summary.json").exists()


def test_batch_local_cluster(inputs, tmp_path, capsys, plotting):
    """Two worker processes of a LocalCluster (the default mode)."""
    d, dicts = inputs
    out = tmp_path / "out"
    rc = main(["batch", str(d), "--out", str(out), "--workers", "2", "--resol", "50", "60"])
    cap = capsys.readouterr()
    check_run(out, dicts, rc, cap.err)
    assert "3 analysed, 2 failed" in cap.out
    pids = {json.loads((out / n / "summary.json").read_text())["analysis"]["pid"] for n in dicts}
    assert os.getpid() not in pids          # the work ran in the worker processes


def test_batch_all_good_exits_zero_and_glob(inputs, tmp_path, capsys, plotting):
    d, dicts = inputs
    out = tmp_path / "out2"
    # two thread workers in this process (their drawing is serialised by a dask Lock)
    argv = ["batch", str(d / "**" / "damon.data"), "--out", str(out), "--workers", "2",
            "--resol", "20", "20", "--no_progress", "--threads"]
    assert main(argv) == 0
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == ["a__damon.data", "b__damon.data"]
    for n in names:
        s = json.loads((out / n / "summary.json").read_text())
        assert set(s["images"]) == {"heatmap", "wss_dist", "wss_chron"}
        assert s["analysis"]["pid"] == os.getpid()
    assert "Failed inputs" not in (out / "index.html").read_text()


def test_batch_unreachable_scheduler(inputs, tmp_path, capsys):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d, _ = inputs
    from damo_pipe.errors import DamoPipeError
    with pytest.raises(DamoPipeError, match="cannot connect"):
        batch.run_batch([d], tmp_path / "o", scheduler="tcp://127.0.0.1:%d" % port,
                        connect_timeout="2s")


def test_batch_empty_and_short_records(tmp_path, capsys, plotting):
    d = tmp_path / "in"
    d.mkdir()
    (d / "empty.json").write_text("[]")
    make_damo_json(d / "short.json", 5, 4, seed=4)      # <= 20 snapshots: no WSS samples
    out = tmp_path / "out"
    argv = ["batch", str(d), "--out", str(out), "--workers", "1", "--resol", "10", "10",
            "--no_progress", "--threads"]
    assert main(argv) == 0
    empty = json.loads((out / "empty.json" / "summary.json").read_text())
    assert empty["nr_records"] == 0 and empty["images"] == {}
    assert empty["warnings"] == ["no snapshot: no picture"]
    short = json.loads((out / "short.json" / "summary.json").read_text())
    assert short["targets"][0]["wss_percentiles"] == {}
    # the WSS over time shows every snapshot; only the distribution skips the first 20
    assert set(short["images"]) == {"heatmap", "wss_chron"}
    assert any("no WSS distribution" in w for w in short["warnings"])
    index = (out / "index.html").read_text()
    assert "note: no snapshot: no picture" in index


def test_batch_exclude_samples_option(tmp_path, plotting):
    d = tmp_path / "in"
    d.mkdir()
    recs = make_damo_json(d / "r.json", 6, 5, seed=8)
    out = tmp_path / "out"
    argv = ["batch", str(d / "r.json"), "--out", str(out), "--workers", "1", "--resol", "10", "10",
            "--exclude_samples", "0", "--no_progress", "--threads"]
    assert main(argv) == 0
    s = json.loads((out / "r.json" / "summary.json").read_text())
    w = expected_wss(recs[0], exclude=0)
    assert s["targets"][0]["wss_percentiles"]["100"] == w[-1]
    assert s["targets"][0]["wss_percentiles"]["0"] == w[0]
    assert set(s["images"]) == {"heatmap", "wss_dist", "wss_chron"}


def test_task_machinery_failure_is_reported_not_raised(tmp_path, monkeypatch, plotting):
    """An exception escaping the task (a killed worker, a missing package on a remote
    worker) becomes a failed row; the other inputs are still analysed."""
    d = tmp_path / "in"
    d.mkdir()
    make_damo_json(d / "good.json", 3, 4, seed=1)
    make_damo_json(d / "boom.json", 3, 4, seed=2)
    real = batch.analyze_archive

    def flaky(path, name, out_root, options=None):
        if name == "boom.json":
            raise MemoryError("worker ran out of memory")
        return real(path, name, out_root, options)

    monkeypatch.setattr(batch, "analyze_archive", flaky)
    seen = []
    res = batch.run_batch([d], tmp_path / "out", workers=1, processes=False,
                          options=batch.BatchOptions(resol=(8, 8)), on_result=seen.append)
    assert [r["name"] for r in res.results] == ["boom.json", "good.json"]
    assert [r["ok"] for r in res.results] == [False, True]
    assert res.results[0]["error"] == "MemoryError: worker ran out of memory"
    assert sorted(r["name"] for r in seen) == ["boom.json", "good.json"]
    assert "MemoryError: worker ran out of memory" in (tmp_path / "out" / "index.html").read_text()


def test_batch_out_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    (tmp_path / "r.json").write_text("[]")
    assert main(["batch", str(tmp_path / "r.json"), "--out", str(tmp_path / "f")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_batch_no_input_at_all(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["batch", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no input files" in capsys.readouterr().err


@pytest.mark.parametrize("n", [0, 1, 2, 7, 100, 1000, 4097])
@pytest.mark.parametrize("workers", [1, 2, 3, 64])
def test_task_groups_cover_every_input_once_large_first(n, workers):
    groups = batch.task_groups([1000] * n, workers)
    covered = [k for lo, hi in groups for k in range(lo, hi)]
    assert covered == list(range(n))
    sizes = [hi - lo for lo, hi in groups]
    assert all(1 <= s <= batch.MAX_TASK_INPUTS for s in sizes)
    assert sizes == sorted(sizes, reverse=True)          # the small tasks come last
    if n:
        assert sizes[-1] == 1
    # fewer tasks than inputs once there is enough work per worker
    if n >= 8 * workers * batch.MAX_TASK_INPUTS:
        assert len(groups) < n / 4


def test_task_groups_keep_big_and_unknown_inputs_alone():
    big = batch.MAX_TASK_BYTES
    sizes = [10] * 40 + [big + 1] + [10] * 40 + [None] + [big // 2] * 3 + [10] * 40
    groups = batch.task_groups(sizes, 1)
    assert [k for lo, hi in groups for k in range(lo, hi)] == list(range(len(sizes)))
    for lo, hi in groups:
        part = sizes[lo:hi]
        if hi - lo > 1:
            assert None not in part and sum(part) <= big
    alone = {lo for lo, hi in groups if hi - lo == 1}
    assert {40, 81} <= alone


def test_a_failing_input_in_a_group_fails_alone(tmp_path, monkeypatch):
    """analyze_archives: an exception escaping one input's analysis fails that input, the
    others of its task are analysed."""
    calls = []

    def fake(path, name, out_root, options=None):
        calls.append(name)
        if name == "b":
            raise MemoryError("out of memory")
        return {"name": name, "path": path, "ok": True}

    monkeypatch.setattr(batch, "analyze_archive", fake)
    res = batch.analyze_archives([("pa", "a"), ("pb", "b"), ("pc", "c")], str(tmp_path))
    assert calls == ["a", "b", "c"]
    assert [(r["name"], r["ok"]) for r in res] == [("a", True), ("b", False), ("c", True)]
    assert res[1]["error"] == "MemoryError: out of memory" and res[1]["path"] == "pb"


def test_a_group_failed_by_the_task_machinery_is_retried_input_by_input(
        tmp_path, monkeypatch, plotting):
    """A task of several inputs that fails as a whole (a worker killed by one of them) is
    split: each input runs again alone, so only the culprit is reported failed."""
    d = tmp_path / "in"
    d.mkdir()
    for i in range(40):
        make_damo_json(d / ("f%02d.json" % i), 2, 3, seed=i)
    real = batch.analyze_archives
    log = tmp_path / "tasks.log"     # the task may run on a deserialised copy: a file

    def killer(jobs, out_root, options=None):
        with open(log, "a") as f:
            f.write("%d\n" % len(jobs))
        if any(name == "f07.json" for _, name in jobs):
            raise MemoryError("worker killed")
        return real(jobs, out_root, options)

    monkeypatch.setattr(batch, "analyze_archives", killer)
    res = batch.run_batch([d], tmp_path / "out", workers=1, processes=False,
                          options=batch.BatchOptions(resol=(8, 8)))
    task_sizes = [int(x) for x in log.read_text().split()]
    assert max(task_sizes) > 1                      # inputs were grouped
    assert task_sizes.count(1) >= 2                 # the failed group's inputs, alone
    failed = [r["name"] for r in res.results if not r["ok"]]
    assert failed == ["f07.json"]
    assert res.results[7]["error"] == "MemoryError: worker killed"
    assert sum(r["ok"] for r in res.results) == 39


def test_task_files_one_is_one_task_per_file(tmp_path, monkeypatch, plotting):
    d = tmp_path / "in"
    d.mkdir()
    for i in range(40):
        make_damo_json(d / ("f%02d.json" % i), 2, 3, seed=i)
    real = batch.analyze_archives
    log = tmp_path / "tasks.log"

    def counting(jobs, out_root, options=None):
        with open(log, "a") as f:
            f.write("%d\n" % len(jobs))
        return real(jobs, out_root, options)

    monkeypatch.setattr(batch, "analyze_archives", counting)
    res = batch.run_batch([d], tmp_path / "out", workers=1, processes=False,
                          options=batch.BatchOptions(resol=(8, 8)), task_files=1)
    assert [int(x) for x in log.read_text().split()] == [1] * 40
    assert all(r["ok"] for r in res.results)
    assert main(["batch", str(d), "--out", str(tmp_path / "o2"), "--task_files", "0"]) == 2

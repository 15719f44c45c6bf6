"""damo-analyze batch against a real ``dask scheduler`` + ``dask worker`` on 127.0.0.1."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from damo_pipe.analyze.cli import main
from tests.support.dask_cluster import free_port, wait_port
from tests.support.plotting import PNG_MAGIC, real_plot_modules
from tests.support.records import expected_wss, make_damo_json

DASK = Path(sys.executable).with_name("dask")


@pytest.fixture
def dask_cluster(tmp_path):
    if not DASK.exists():
        pytest.skip("dask command not found next to %s" % sys.executable)
    if not real_plot_modules():
        pytest.skip("damo_pipe.analyze.heatmap/plots not available")
    port = free_port()
    addr = "tcp://127.0.0.1:%d" % port
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    procs = []
    env = dict(os.environ)

    def start(args, log):
        f = open(logs / log, "w")
        p = subprocess.Popen([str(DASK)] + args, stdout=f, stderr=subprocess.STDOUT, env=env,
                             cwd=tmp_path, start_new_session=True)
        procs.append((p, f))
        return p

    try:
        sched = start(["scheduler", "--host", "127.0.0.1", "--port", str(port),
                       "--dashboard-address", ":0", "--no-show"], "scheduler.log")
        wait_port(port, sched, time.monotonic() + 60)
        worker_args = ["worker", addr, "--nworkers", "2", "--nthreads", "1",
                       "--host", "127.0.0.1", "--dashboard-address", ":0"]
        start(worker_args, "worker.log")
        from distributed import Client
        with Client(addr, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        yield addr
    finally:
        for p, f in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p, f in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
            f.close()


def test_batch_on_real_scheduler(dask_cluster, tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    dicts = {"r1.json": make_damo_json(d / "r1.json", 24, 10, seed=11),
             "r2.json": make_damo_json(d / "r2.json", 28, 6, seed=12, nr_targets=2)}
    (d / "zero.json").write_bytes(b"")          # empty file: unreadable
    out = tmp_path / "out"
    rc = main(["batch", str(d), "--out", str(out), "--scheduler", dask_cluster,
               "--resol", "30", "30"])
    cap = capsys.readouterr()
    assert rc == 1
    assert "on 2 worker(s)" in cap.out
    assert [ln for ln in cap.err.splitlines() if "failed:" in ln] == [
        ln for ln in cap.err.splitlines() if "zero.json" in ln and "failed:" in ln]
    assert len([ln for ln in cap.err.splitlines() if "failed:" in ln]) == 1
    index = (out / "index.html").read_text()
    assert "zero.json" in index and "empty file" in index
    pids = set()
    for name, recs in dicts.items():
        assert (out / name / "heatmap.png").read_bytes()[:8] == PNG_MAGIC
        s = json.loads((out / name / "summary.json").read_text())
        for t, r in zip(s["targets"], recs):
            w = expected_wss(r)
            assert t["wss_percentiles"]["50"] == w[min(int(0.5 * len(w)), len(w) - 1)]
        pids.add(s["analysis"]["pid"])
    # the tasks ran in the dask worker processes, not in this process
    assert os.getpid() not in pids

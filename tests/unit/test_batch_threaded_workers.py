"""damo-analyze batch --scheduler with multi-threaded dask workers: drawing is serialised.

pyplot is not thread-safe, so when the scheduler's workers run more than one thread the
batch takes the cluster-wide plot lock (and warns); with single-threaded workers it does
not. The tasks' options are observed on the worker side through ``analyze_archive``.
"""
import json
import logging

import pytest

from damo_pipe.analyze import batch
from tests.support.plotting import PNG_MAGIC
from tests.support.records import expected_wss, make_damo_json

distributed = pytest.importorskip("distributed")


@pytest.mark.parametrize("threads", [1, 2])
def test_threaded_workers_serialise_drawing(tmp_path, caplog, monkeypatch, threads):
    from damo_pipe.analyze import images
    seen = []
    real_guard = images._plot_guard

    def guard(options):                  # the workers are threads of this process
        seen.append(options.serialize_plots)
        return real_guard(options)

    monkeypatch.setattr(images, "_plot_guard", guard)
    d = tmp_path / "in"
    d.mkdir()
    recs = {"a.json": make_damo_json(d / "a.json", 24, 8, seed=3),
            "b.json": make_damo_json(d / "b.json", 26, 5, seed=4)}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=threads, processes=False,
                                  dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster:
        with caplog.at_level(logging.WARNING, logger="damo_pipe.analyze.batch"):
            res = batch.run_batch([d], tmp_path / "out", scheduler=cluster.scheduler_address,
                                  options=batch.BatchOptions(resol=(20, 20)))
    assert not res.failures, res.failures
    warned = [r for r in caplog.records if "serialised" in r.getMessage()]
    assert len(warned) == (1 if threads > 1 else 0)
    if threads > 1:
        assert "--nthreads 1" in warned[0].getMessage()
    assert res.nr_workers == 1
    assert seen and set(seen) == {threads > 1}
    assert set(res.timings) == {"inputs", "connect", "tasks", "index"}
    assert all(v >= 0 for v in res.timings.values())
    for name, dicts in recs.items():
        assert (tmp_path / "out" / name / "heatmap.png").read_bytes()[:8] == PNG_MAGIC
        s = json.loads((tmp_path / "out" / name / "summary.json").read_text())
        w = expected_wss(dicts[0])
        assert s["targets"][0]["wss_percentiles"]["50"] == w[min(int(0.5 * len(w)), len(w) - 1)]

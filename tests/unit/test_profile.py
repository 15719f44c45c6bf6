"""report times / report profile: access intervals (both engines against a direct
re-implementation of damo's loop), their text, perf's command line (a fake perf script
records it) and the errors of a missing or failing perf."""
from __future__ import annotations

import json
import os
import random
import stat

import numpy as np
import pytest

from damo_pipe.analyze import profile as P
from damo_pipe.analyze.cli import main
from damo_pipe.analyze.perf import find_perf, perf_report_output, run_perf_report
from damo_pipe.analyze.record_filter import RecordFilter
from damo_pipe.errors import ExternalToolError, RecordFormatError
from damo_pipe.model import Intervals, Record, RecordBuilder, RegionColumns
from tests.support.fake_perf import empty_perf_data


def rand_record(rng, nsnap, tid=0, t0=1_000_000_000, gaps=True, intervals=True):
    iv = Intervals(sample_us=5000, aggr_us=100000, ops_update_us=1000000) if intervals else None
    b = RecordBuilder(Record(target_id=tid, intervals=iv))
    t = t0
    for _ in range(nsnap):
        n = rng.randrange(0, 5)
        starts = sorted(rng.sample(range(0, 1000), n))
        regs = RegionColumns(np.array([s * 4096 for s in starts], np.uint64),
                             np.array([s * 4096 + rng.randrange(1, 4) * 4096 for s in starts], np.uint64),
                             np.array([rng.randrange(0, 21) for _ in starts], np.int64),
                             np.array([rng.randrange(0, 10) for _ in starts], np.int64))
        if gaps and rng.random() < 0.2:
            t += rng.randrange(1, 1000)
        dur = rng.randrange(90_000_000, 110_000_000)
        b.add_snapshot(t, t + dur, regs)
        t += dur
    return b.build()


def reference(records, min_pct, max_pct):
    """damo's report times loop with its access-rate test written out."""
    times = []
    for rec in records:
        for k in range(rec.nr_snapshots):
            lo, hi = rec.region_bounds(k)
            kept = 0
            for r in range(lo, hi):
                samples = int(rec.regions.nr_accesses[r])
                pct = int(samples * 100.0 / (rec.intervals.aggr_us / rec.intervals.sample_us))
                if min_pct <= pct <= max_pct:
                    kept += 1
            if not kept:
                continue
            start, end = rec.snapshot_start(k), int(rec.snapshots.end_ns[k])
            if times and times[-1][1] == start:
                times[-1][1] = end
            else:
                times.append([start, end])
    return times


@pytest.mark.parametrize("seed", range(6))
def test_intervals_match_damos_loop(engine, seed):
    rng = random.Random(seed)
    recs = [rand_record(rng, rng.randrange(1, 60), tid=t) for t in range(rng.randrange(1, 3))]
    lo = rng.choice([0, 20, 50])
    filt = RecordFilter(access_rate=(lo, 100))
    assert P.access_intervals(recs, filt, engine=engine) == reference(recs, lo, 100)


def test_intervals_join_across_chunks_and_records(engine):
    rng = random.Random(9)
    a = rand_record(rng, 50, gaps=False)
    end = int(a.snapshots.end_ns[-1])
    b = rand_record(rng, 30, tid=1, t0=end, gaps=False)
    from damo_pipe.analyze._chunks import RecordSource
    src = RecordSource.from_records([a, b])
    src.snapshots_per_chunk = 7
    want = reference([a, b], 0, 100)
    assert P.access_intervals(src, None, engine=engine) == want
    # b starts where a ended: with every snapshot kept, one interval would span both
    full = P.access_intervals([a, b], RecordFilter(access_rate=(0, 2 ** 64 - 1)), engine=engine)
    nonempty = [k for k in range(a.nr_snapshots) if a.snapshots.nr_regions[k]]
    assert full[0][0] == a.snapshot_start(nonempty[0])


def test_deduced_first_start_stays_a_float(engine):
    b = RecordBuilder(Record(target_id=0))
    one = RegionColumns(np.array([4096], np.uint64), np.array([8192], np.uint64))
    for k, n in enumerate([1, 1, 0, 1]):
        b.add_snapshot(100 * k + 100, 100 * k + 200, one if n else RegionColumns())
    rec = b.build()
    rec.first_start_ns = 99.5          # deduced by a trace reader
    rec.snapshots.start_ns[0] = 99
    got = P.access_intervals([rec], None, engine=engine)
    assert got == [[99.5, 300], [400, 500]] and isinstance(got[0][0], float)
    # a chunk boundary after the first snapshot keeps it
    from damo_pipe.analyze._chunks import RecordSource
    src = RecordSource.from_records([rec])
    src.snapshots_per_chunk = 1
    assert P.access_intervals(src, None, engine=engine) == got


def test_times_text_and_perf_arguments():
    iv = [[19573278169000, 19578185397000], [19578285468000.5, 19579086722000]]
    assert P.format_times(iv) == ("19573.278169-19578.185397\n# (seconds)\n"
                                  "19578.285468-19579.086722\n# (seconds)")
    assert P.perf_time_args(iv) == ["--time", "19573.278169,19578.185397",
                                    "--time", "19578.2854680005,19579.086722"]
    # ints are divided exactly (Python's int / int), as damo does
    assert P.perf_time_args([[2 ** 60 + 1, 2 ** 60 + 3]])[1] == "%s,%s" % (
        (2 ** 60 + 1) / 1000000000, (2 ** 60 + 3) / 1000000000)
    doc = P.times_json(iv, origin_ns=19573000000000)
    assert (doc["schema"], doc["version"]) == ("damo-pipe/times", 1)
    assert doc["intervals"][0] == {"start_ns": 19573278169000, "end_ns": 19578185397000,
                                   "start_s": 0.278169, "end_s": 5.185397}
    # a deduced fractional start is rounded to whole ns
    assert doc["intervals"][1]["start_ns"] == 19578285468000


def test_profile_path_decision():
    with P.profile_path("rec.data") as p:
        assert p == "rec.data.profile"
    with P.profile_path("rec.data", "perf.data") as p:
        assert p == "perf.data"


@pytest.fixture
def fake_perf(tmp_path):
    """A 'perf' that prints its arguments (and fails with exit 3 when asked to)."""
    log = tmp_path / "perf-args"
    script = tmp_path / "perf"
    script.write_text("#!/bin/sh\nprintf '%%s\\n' \"$@\" > %s\necho 'perf says hi'\n"
                      "case \"$*\" in *fail*) echo 'perf: broken' >&2; exit 3;; esac\n" % log)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), log


def test_perf_runs_with_damos_arguments(fake_perf, tmp_path, capfd):
    perf, log = fake_perf
    prof = tmp_path / "p.data"
    prof.write_bytes(empty_perf_data())
    assert find_perf(perf) == perf
    assert perf_report_output(perf, str(prof), ["--stdio"]) == "perf says hi\n"
    assert log.read_text().split("\n")[:4] == ["report", "-i", str(prof), "--stdio"]
    run_perf_report(perf, str(prof), ["--time", "1.5,2.5"])
    assert capfd.readouterr().out == "perf says hi\n"
    with pytest.raises(ExternalToolError, match=r"exit 3"):
        perf_report_output(perf, str(prof), ["fail"])


def test_perf_missing_or_profile_missing(tmp_path, fake_perf):
    with pytest.raises(ExternalToolError, match="perf not found"):
        find_perf(str(tmp_path / "no-perf"))
    with pytest.raises(RecordFormatError, match="no such file"):
        perf_report_output(fake_perf[0], str(tmp_path / "none.profile"))


def write_json_record(path, rec):
    from damo_pipe.formats import write_records
    write_records([rec], str(path), "json")


def test_cli_times_profile_and_errors(tmp_path, fake_perf, capfd):
    perf, log = fake_perf
    rng = random.Random(5)
    rec = rand_record(rng, 20)
    data = tmp_path / "damon.data"
    write_json_record(data, rec)
    from damo_pipe.formats import read_records
    rec = read_records(str(data))[0]
    want = reference([rec], 50, 100)
    assert main(["report", "times", "--inputs", str(data), "--access_rate", "50", "100"]) == 0
    assert capfd.readouterr().out == P.format_times(want) + "\n"
    assert main(["report", "times", "--inputs", str(data), "x", "--access-rate", "50", "100",
                 "--json"]) == 0
    assert [[d["start_ns"], d["end_ns"]]
            for d in json.loads(capfd.readouterr().out)["intervals"]] == want
    # profile: damo's command line, the default profile path beside the record
    (tmp_path / "damon.data.profile").write_bytes(empty_perf_data())
    assert main(["report", "profile", "--inputs", str(data), "--perf_path", perf,
                 "--access_rate", "50", "100"]) == 0
    assert capfd.readouterr().out == "perf says hi\n"
    assert log.read_text().split() == (["report", "-i", str(data) + ".profile"]
                                       + P.perf_time_args(want))
    # nothing matches: damo's message on stdout, exit 1
    assert main(["report", "profile", "--inputs", str(data), "--perf_path", perf,
                 "--access_rate", "101", "200"]) == 1
    assert capfd.readouterr().out == "No snapshot of the condition found\n"
    # perf missing / profile missing / too many inputs: one line on stderr
    for argv, code, what in [
            (["--inputs", str(data), "--perf_path", str(tmp_path / "none")], 1, "perf not found"),
            (["--inputs", str(data), str(tmp_path / "nope"), "--perf_path", perf], 1, "no such file"),
            (["--inputs", str(data), "a", "b"], 2, "--inputs takes"),
            (["--inputs", str(tmp_path / "missing.data")], 1, "no such file")]:
        assert main(["report", "profile"] + argv) == code
        cap = capfd.readouterr()
        assert cap.out == "" and len(cap.err.strip().splitlines()) == 1 and what in cap.err

"""--json / --csv of the reports and --time_range / --address_range of wss, nr_regions,
html and batch, checked against references computed here from the plain dicts of a damo
JSON record the test writes (independent of the package's readers and reports), and
against the reports' own text."""
from __future__ import annotations

import csv
import io
import json
import math
import random

import numpy as np
import pytest

from damo_pipe.analyze.cli import main

KiB, MiB = 1 << 10, 1 << 20
T0 = 5_000_000_000           # first snapshot start (ns)
SNAP_NS = 100_000_000        # snapshot duration
BASES = (0x7f0000000000, 0x7f0010000000)   # two areas with a gap between them


def make_dicts(nr_snapshots=60, seed=0, nr_targets=1):
    """damo-format record dicts: per snapshot, regions tiling two 32 MiB areas at random
    4 KiB-aligned boundaries; area 0's second quarter is hot (nr_accesses 10..20)."""
    rnd = random.Random(seed)
    recs = []
    for t in range(nr_targets):
        snaps = []
        for s in range(nr_snapshots):
            regions = []
            for base in BASES:
                cuts = sorted(rnd.sample(range(1, 8192), 9))
                bounds = [0] + cuts + [8192]
                for a, b in zip(bounds, bounds[1:]):
                    start, end = base + a * 4 * KiB, base + b * 4 * KiB
                    hot = base == BASES[0] and 8 * MiB <= start - base < 16 * MiB
                    acc = rnd.randint(10, 20) if hot else rnd.choice([0, 0, 0, 1, 3])
                    regions.append({"start": start, "end": end,
                                    "nr_accesses": {"samples": acc, "percent": None},
                                    "age": {"aggr_intervals": rnd.randint(0, 2), "usec": None},
                                    "sz_filter_passed": 0})
            snaps.append({"start_time": T0 + s * SNAP_NS, "end_time": T0 + (s + 1) * SNAP_NS,
                          "regions": regions,
                          "total_bytes": sum(r["end"] - r["start"] for r in regions)})
        recs.append({"kdamond_idx": 0, "context_idx": 0, "scheme_idx": None, "target_id": t,
                     "intervals": {"sample_us": 5000, "aggr_us": 100000,
                                   "ops_update_us": 1000000},
                     "scheme_filters": [], "snapshots": snaps})
    return recs


@pytest.fixture(scope="module")
def rec_files(tmp_path_factory):
    """(dicts, damon.data json path, archive path)."""
    d = tmp_path_factory.mktemp("machine")
    recs = make_dicts()
    data = d / "damon.data"
    data.write_text(json.dumps(recs))
    h5 = d / "rec.h5"
    assert main(["convert", str(data), str(h5)]) == 0
    return recs, str(data), str(h5)


# -- references -----------------------------------------------------------------------
def selected(snaps, t_range):
    if t_range is None:
        return list(enumerate(snaps))
    t0, t1 = t_range
    return [(k, s) for k, s in enumerate(snaps) if s["end_time"] >= t0 and s["start_time"] < t1]


def clipped(regions, a_range):
    if a_range is None:
        return [(r["start"], r["end"], r["nr_accesses"]["samples"]) for r in regions]
    a0, a1 = a_range
    return [(max(r["start"], a0), min(r["end"], a1), r["nr_accesses"]["samples"])
            for r in regions if r["end"] > a0 and r["start"] < a1]


def ref_wss(rec, exclude=20, t_range=None, a_range=None, acc=1, sz=1):
    """Per-snapshot WSS in time order, as defined in docs (selection, clip, skip)."""
    out = []
    for k, s in selected(rec["snapshots"], t_range):
        if k < exclude:
            continue
        out.append(sum(e - b for b, e, n in clipped(s["regions"], a_range)
                       if n >= acc and e - b >= sz))
    return out


def ref_counts(rec, skip=20, t_range=None, a_range=None):
    return [len(clipped(s["regions"], a_range)) for k, s in selected(rec["snapshots"], t_range)
            if k >= skip]


def pick(values, p):
    n = len(values)
    return values[min(int(p / 100.0 * n), n - 1)]


def run_cli(capsys, argv):
    assert main(argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def parse_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


# -- wss ------------------------------------------------------------------------------
@pytest.mark.parametrize("which", [1, 2])
def test_wss_json_csv_text_agree_with_reference(rec_files, capsys, which, engine):
    recs, *paths = rec_files
    path = paths[which - 1]
    want = sorted(ref_wss(recs[0]))
    doc = json.loads(run_cli(capsys, ["report", "wss", "--input", path, "--json",
                                      "--engine", engine]))
    assert (doc["schema"], doc["version"]) == ("damo-pipe/wss", 1)
    assert doc["time_origin_ns"] == T0
    t, = doc["targets"]
    assert t["target_id"] is None and t["nr_values"] == len(want) == 40
    assert t["percentiles"] == [{"percentile": p, "bytes": pick(want, p)}
                                for p in (0, 25, 50, 75, 100)]
    assert t["average_bytes"] == sum(want) / len(want)
    # the text's numbers (raw) are the same
    text = run_cli(capsys, ["report", "wss", "--input", path, "--raw_number",
                            "--engine", engine]).splitlines()
    assert text[2] == "# avr:\t%d" % (sum(want) / len(want))
    assert [int(line.split()[1]) for line in text[3:]] == [p["bytes"] for p in t["percentiles"]]
    rows = parse_csv(run_cli(capsys, ["report", "wss", "--input", path, "--csv",
                                      "--range", "0", "101", "10"]))
    assert [(r["target_id"], int(r["percentile"]), int(r["bytes"])) for r in rows] == [
        ("", p, pick(want, p)) for p in range(0, 101, 10)]


@pytest.mark.parametrize("which", [1, 2])
def test_wss_time_and_address_range(rec_files, capsys, which):
    recs, *paths = rec_files
    path = paths[which - 1]
    # 1.5 s .. 4 s from the start: snapshots 14..40 meet it (14 ends at 1.5 s exactly)
    t_range = (T0 + 1_500_000_000, T0 + 4_000_000_000)
    a_range = (BASES[0] + 6 * MiB, BASES[0] + 20 * MiB)
    for exclude in (20, 0):
        want = ref_wss(recs[0], exclude, t_range, a_range)
        assert len(want) == (40 - max(14, exclude))
        argv = ["report", "wss", "--input", path, "--time_range", "1.5s", "4s", "guided",
                "--address_range", str(a_range[0]), str(a_range[1]), "--sortby", "time",
                "--all_wss", "--exclude_samples", str(exclude)]
        doc = json.loads(run_cli(capsys, argv + ["--json"]))
        t, = doc["targets"]
        assert t["values_bytes"] == want
        assert doc["options"]["time_range_ns"] == list(t_range)
        assert doc["options"]["address_range"] == list(a_range)
        first = max(14, exclude)
        assert t["time_ns"] == [T0 + (k + 1) * SNAP_NS for k in range(first, 40)]
        assert t["time_s"] == [(k + 1) * SNAP_NS / 1e9 for k in range(first, 40)]
        text = run_cli(capsys, argv + ["--raw_number"]).splitlines()
        assert [int(line.split()[1]) for line in text[3:]] == want
        rows = parse_csv(run_cli(capsys, argv + ["--csv"]))
        assert [int(r["bytes"]) for r in rows] == want
        assert [int(r["time_ns"]) for r in rows] == t["time_ns"]
    # the clip: bytes outside the range never count (the whole hot quarter is inside)
    full = ref_wss(recs[0], 0, t_range, None)
    assert all(w <= f for w, f in zip(want, full)) and want != full


def test_wss_guided_address_range_and_absolute_time(rec_files, capsys):
    recs, data, _ = rec_files
    # 'guided' counts from heatmap's default range: the hottest area, BASES[0]
    argv = ["report", "wss", "--input", data, "--address_range", "8MiB", "16MiB", "guided",
            "--time_range", str(T0 + 3 * SNAP_NS), str(T0 + 30 * SNAP_NS), "--json",
            "--exclude_samples", "0", "--sortby", "time", "--all_wss"]
    doc = json.loads(run_cli(capsys, argv))
    want = ref_wss(recs[0], 0, (T0 + 3 * SNAP_NS, T0 + 30 * SNAP_NS),
                   (BASES[0] + 8 * MiB, BASES[0] + 16 * MiB))
    assert doc["targets"][0]["values_bytes"] == want and len(want) == 28
    assert doc["options"]["address_range"] == [BASES[0] + 8 * MiB, BASES[0] + 16 * MiB]
    assert doc["options"]["time_range_ns"] == [T0 + 3 * SNAP_NS, T0 + 30 * SNAP_NS]
    assert max(want) <= 8 * MiB


def test_selection_word_errors(rec_files, capsys):
    _, data, _ = rec_files
    for extra in (["--time_range", "4s"], ["--time_range", "4s", "2s", "guided"],
                  ["--time_range", "x", "2s"], ["--address_range", "1", "2", "hot"],
                  ["--address_range", "5", "5"], ["--address_range", "a", "b"]):
        for kind in ("wss", "nr_regions"):
            assert main(["report", kind, "--input", data] + extra) == 2, extra
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "range" in err


# -- nr_regions -------------------------------------------------------------------------
@pytest.mark.parametrize("which", [1, 2])
def test_nr_regions_json_csv_and_ranges(rec_files, capsys, which):
    recs, *paths = rec_files
    path = paths[which - 1]
    for t_words, t_range, a_range in (
            (None, None, None),
            (["0", "3s", "guided"], (T0, T0 + 3 * 10 ** 9), None),
            (["0.5s", "5s", "guided"], (T0 + 5 * 10 ** 8, T0 + 5 * 10 ** 9),
             (BASES[1] + MiB, BASES[1] + 9 * MiB))):
        argv = ["report", "nr_regions", "--input", path]
        if t_words:
            argv += ["--time_range"] + t_words
        if a_range:
            argv += ["--address_range", hex(a_range[0]), hex(a_range[1])]
        want = sorted(ref_counts(recs[0], 20, t_range, a_range))
        doc = json.loads(run_cli(capsys, argv + ["--json"]))
        assert doc["schema"] == "damo-pipe/nr_regions"
        t, = doc["targets"]
        assert t["nr_values"] == len(want) and t["average"] == sum(want) / len(want)
        assert [p["nr_regions"] for p in t["percentiles"]] == [pick(want, p)
                                                               for p in (0, 25, 50, 75, 100)]
        text = run_cli(capsys, argv).splitlines()
        assert text[2] == "# avr:\t%d" % (sum(want) / len(want))
        assert [int(x.split()[1]) for x in text[3:]] == [p["nr_regions"] for p in t["percentiles"]]
        rows = parse_csv(run_cli(capsys, argv + ["--csv"]))
        assert [int(r["nr_regions"]) for r in rows] == [p["nr_regions"] for p in t["percentiles"]]


# -- heatmap ------------------------------------------------------------------------------
@pytest.mark.parametrize("which", [1, 2])
def test_heatmap_json_and_csv_are_the_raw_numbers(rec_files, capsys, which):
    _, *paths = rec_files
    path = paths[which - 1]
    base = ["report", "heatmap", "--input", path, "--resol", "6", "9"]
    raw = [line.split("\t") for line in
           run_cli(capsys, base + ["--output", "raw", "--abs_time", "--abs_addr"]).splitlines()]
    doc = json.loads(run_cli(capsys, base + ["--json"]))
    assert (doc["schema"], doc["version"]) == ("damo-pipe/heatmap", 1)
    m, = doc["maps"]
    assert (m["nr_rows"], m["nr_columns"], m["heat_unit"]) == (6, 9, "hz")
    assert len(raw) == 54
    got = []
    for i, t in enumerate(m["row_time_ns"]):
        for j, a in enumerate(m["column_address"]):
            h = m["heat"][i][j]
            got.append([str(t), str(a), "NaN" if h is None else repr(h)])
    assert got == raw
    assert m["row_time_s"] == [(t - T0) / 1e9 for t in m["row_time_ns"]]
    assert m["time_end_ns"] - m["time_start_ns"] == 6 * m["time_unit_ns"]
    assert m["address_end"] - m["address_start"] == 9 * m["address_unit"]
    # the default map is the hottest area
    assert m["address_start"] == BASES[0]
    rows = parse_csv(run_cli(capsys, base + ["--csv"]))
    assert [[r["time_ns"], r["address"], r["heat"] or "NaN"] for r in rows] == raw
    assert {r["map"] for r in rows} == {"0"}
    # --draw_range all: one map per area
    doc = json.loads(run_cli(capsys, base + ["--json", "--draw_range", "all"]))
    assert [m["address_start"] for m in doc["maps"]] == list(BASES)


def test_heatmap_guide_json_is_record_info(rec_files, capsys):
    _, data, _ = rec_files
    a = json.loads(run_cli(capsys, ["report", "heatmap", "--input", data, "--guide", "--json"]))
    b = json.loads(run_cli(capsys, ["report", "record_info", "--input", data, "--json"]))
    assert a["schema"] == b["schema"] == "damo-pipe/record_info"
    assert a["records"] == b["records"]
    r, = a["records"]
    assert [(x["start"], x["end"]) for x in r["regions"]] == [(b_, b_ + 32 * MiB) for b_ in BASES]
    rows = parse_csv(run_cli(capsys, ["report", "record_info", "--input", data, "--csv"]))
    assert [(int(x["start"]), int(x["size"])) for x in rows] == [(b_, 32 * MiB) for b_ in BASES]
    assert parse_csv(run_cli(capsys, ["report", "heatmap", "--input", data, "--guide",
                                      "--csv"])) == rows
    assert {int(x["end_time_ns"]) for x in rows} == {T0 + 60 * SNAP_NS}


def test_heatmap_machine_output_with_image_is_an_error(rec_files, capsys, tmp_path):
    _, data, _ = rec_files
    assert main(["report", "heatmap", "--input", data, "--json", "--output",
                 str(tmp_path / "h.png")]) == 2
    assert "--json and --csv" in capsys.readouterr().err
    assert main(["report", "heatmap", "--input", data, "--json", "--csv"]) == 2


# -- times, record_info, footprints --------------------------------------------------------
def test_times_csv_json_text(rec_files, capsys):
    _, data, _ = rec_files
    base = ["report", "times", "--inputs", data, "--access_rate", "50", "100"]
    text = run_cli(capsys, base).splitlines()
    doc = json.loads(run_cli(capsys, base + ["--json"]))
    rows = parse_csv(run_cli(capsys, base + ["--csv"]))
    assert doc["schema"] == "damo-pipe/times" and doc["time_origin_ns"] == T0
    assert ["%f-%f" % (iv["start_ns"] / 1e9, iv["end_ns"] / 1e9)
            for iv in doc["intervals"]] == text[0::2]
    assert [{k: int(v) if k.endswith("ns") else float(v) for k, v in r.items()}
            for r in rows] == doc["intervals"]
    for iv in doc["intervals"]:
        assert iv["start_s"] == (iv["start_ns"] - T0) / 1e9


def test_footprints_csv(tmp_path, capsys):
    from tests.support.footprints_reference import SNAPS, reference
    p = tmp_path / "damon.data.mem_footprint"
    p.write_text(json.dumps(SNAPS))
    rows = parse_csv(run_cli(capsys, ["report", "footprints", "--input", str(p), "--csv"]))
    for metric in ("vsz", "rss", "sys_used"):
        vals = sorted(reference(SNAPS, metric))
        assert [(int(r["percentile"]), int(r["bytes"])) for r in rows if r["metric"] == metric] \
            == [(q, pick(vals, q)) for q in (0, 25, 50, 75, 100)]
    rows = parse_csv(run_cli(capsys, ["report", "footprints", "rss", "--input", str(p), "--csv",
                                      "--sortby", "time", "--all_footprint"]))
    assert [int(r["bytes"]) for r in rows] == reference(SNAPS, "rss")
    assert [float(r["time_s"]) for r in rows] == [0.0, 1.0, 2.0, 3.0]
    doc = json.loads(run_cli(capsys, ["report", "footprints", "rss", "--input", str(p), "--json",
                                      "--sortby", "time", "--all_footprint"]))
    assert doc["metrics"]["rss"]["values_bytes"] == reference(SNAPS, "rss")
    assert doc["first_ns"] == doc["time_origin_ns"] == 100_500_000_000
    assert doc["time_origin_utc"] is None       # 100 s after the epoch: not a wall clock


# -- profile and holistic -------------------------------------------------------------------
def attach_samples(h5, times, syms):
    from damo_pipe.archive.profile import attach_profile
    from damo_pipe.formats.perf_samples import ProfileSamples
    n = len(times)
    names = sorted(set(syms))
    s = ProfileSamples(np.array(times, np.int64), np.ones(n), np.ones(n),
                       [names.index(x) for x in syms], np.zeros(n),
                       names, ["/bin/app"])
    attach_profile(str(h5), None, s)


def test_profile_json_counts_the_samples_of_the_filtered_times(tmp_path, capsys):
    recs = make_dicts(40, seed=3)
    # snapshots 10..19 have every region at 100 %: the only times --access_rate 100 100
    # keeps (20 samples per aggregation); the others stay below
    for k, s in enumerate(recs[0]["snapshots"]):
        for r in s["regions"]:
            r["nr_accesses"]["samples"] = 20 if 10 <= k < 20 else min(
                r["nr_accesses"]["samples"], 19)
    data = tmp_path / "damon.data"
    data.write_text(json.dumps(recs))
    h5 = tmp_path / "r.h5"
    assert main(["convert", str(data), str(h5)]) == 0
    rnd = random.Random(1)
    times = sorted(rnd.randrange(T0, T0 + 40 * SNAP_NS) for _ in range(3000))
    syms = [rnd.choice(["hot_fn", "cold_fn", "other"]) for _ in times]
    attach_samples(h5, times, syms)
    lo, hi = T0 + 10 * SNAP_NS, T0 + 20 * SNAP_NS
    want = {}
    for t, s in zip(times, syms):
        if lo <= t <= hi:
            want[s] = want.get(s, 0) + 1
    total = sum(want.values())
    base = ["report", "profile", "--inputs", str(h5), "--access_rate", "100", "100"]
    doc = json.loads(run_cli(capsys, base + ["--json"]))
    assert doc["schema"] == "damo-pipe/profile" and doc["profile_source"] == "archive"
    assert [(iv["start_ns"], iv["end_ns"]) for iv in doc["intervals"]] == [(lo, hi)]
    assert doc["nr_samples"] == total
    assert {h["symbol"]: h["samples"] for h in doc["hotspots"]} == want
    assert [h["samples"] for h in doc["hotspots"]] == sorted(want.values(), reverse=True)
    for h in doc["hotspots"]:
        assert h["share"] == want[h["symbol"]] / total and h["dso"] == "/bin/app"
    rows = parse_csv(run_cli(capsys, base + ["--csv", "--top", "2"]))
    assert [(r["symbol"], int(r["samples"])) for r in rows] == [
        (h["symbol"], h["samples"]) for h in doc["hotspots"][:2]]
    # no snapshot of the condition: exit 1, still a document
    assert main(base[:4] + ["--access_rate", "100", "100", "--sz_region", "1T", "max",
                            "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["intervals"] == [] and doc["hotspots"] is None


def test_holistic_json(tmp_path, capsys):
    from tests.support.footprints_reference import SNAPS, reference
    recs = make_dicts(50, seed=5)
    data = tmp_path / "damon.data"
    data.write_text(json.dumps(recs))
    (tmp_path / "damon.data.mem_footprint").write_text(json.dumps(SNAPS))
    doc = json.loads(run_cli(capsys, ["report", "holistic", "--access_pattern", str(data),
                                      "--json", "--profile", str(tmp_path / "none")]))
    assert doc["schema"] == "damo-pipe/holistic"
    # <= 200 snapshots: every snapshot counts (damo's holistic rule)
    want = sorted(ref_wss(recs[0], exclude=0))
    assert [p["bytes"] for p in doc["wss"]["percentiles"]] == [pick(want, p)
                                                               for p in (0, 25, 50, 75, 100)]
    for metric in ("vsz", "rss", "sys_used"):
        vals = sorted(reference(SNAPS, metric))
        assert [p["bytes"] for p in doc["footprints"][metric]["percentiles"]] == [
            pick(vals, p) for p in (0, 25, 50, 75, 100)]
    assert doc["hotspots"] is None and any("no CPU profile" in n for n in doc["notes"])
    assert [r["target_id"] for r in doc["records"]] == [0]
    # the text report's rows show the same numbers
    from damo_pipe.numfmt import format_sz
    text = run_cli(capsys, ["report", "holistic", "--access_pattern", str(data),
                            "--perf_path", str(tmp_path / "no-perf")]).splitlines()
    for name, dist in [("wss", doc["wss"])] + list(doc["footprints"].items()):
        row = "%10s " % name + "".join("%15s " % format_sz(p["bytes"])
                                       for p in dist["percentiles"])
        assert row in text


# -- html and batch --------------------------------------------------------------------------
def test_html_time_and_address_range(rec_files, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from damo_pipe.analyze.html import write_record_report
    from damo_pipe.analyze.images import BatchOptions
    recs, data, h5 = rec_files
    t_range = (T0 + 2 * 10 ** 9, T0 + 5 * 10 ** 9)
    a_range = (BASES[0], BASES[0] + 16 * MiB)
    opts = BatchOptions(resol=(20, 20), time_range=["2s", "5s", "guided"],
                        address_range=[hex(a_range[0]), hex(a_range[1])])
    s = write_record_report(h5, str(tmp_path / "p.html"), options=opts)
    sel = selected(recs[0]["snapshots"], t_range)
    assert s["nr_snapshots"] == len(sel) == 31
    assert s["selection"] == {"time_range_ns": list(t_range), "address_range": list(a_range)}
    t, = s["targets"]
    # snapshots 19..49 are selected; the first 20 of the record are skipped for the WSS
    want = sorted(ref_wss(recs[0], 20, t_range, a_range))
    assert t["wss_nr_samples"] == len(want) == 30
    assert t["wss_percentiles"]["100"] == want[-1] and t["wss_percentiles"]["0"] == want[0]
    assert t["monitored_bytes"] == 16 * MiB
    assert s["start_ns"] == T0 + 19 * SNAP_NS
    page = (tmp_path / "p.html").read_text()
    assert "selection: only the snapshots meeting [2.000 s, 5.000 s)" in page
    assert "0x7f0001000000" in page
    # the command line
    out = tmp_path / "c.html"
    assert main(["report", "html", data, "-o", str(out), "--resol", "20", "20",
                 "--time_range", "2s", "5s", "guided"]) == 0
    assert "selection: only" in out.read_text()
    assert main(["report", "html", data, "-o", str(out), "--time_range", "5s", "2s"]) == 2


def test_batch_time_range(rec_files, tmp_path, capsys):
    pytest.importorskip("distributed")
    pytest.importorskip("matplotlib")
    recs, data, _ = rec_files
    out = tmp_path / "out"
    argv = ["batch", data, "--out", str(out), "--workers", "1", "--resol", "10", "10",
            "--no_progress", "--threads", "--time_range", "1s", "3s", "guided",
            "--address_range", "0", "16MiB", "guided", "--exclude_samples", "0"]
    assert main(argv) == 0, capsys.readouterr().err
    s = json.loads((out / "damon.data" / "summary.json").read_text())
    t_range = (T0 + 10 ** 9, T0 + 3 * 10 ** 9)
    a_range = (BASES[0], BASES[0] + 16 * MiB)
    want = sorted(ref_wss(recs[0], 0, t_range, a_range))
    assert s["nr_snapshots"] == len(selected(recs[0]["snapshots"], t_range)) == 21
    assert s["targets"][0]["wss_percentiles"]["50"] == pick(want, 50)
    assert s["selection"]["address_range"] == list(a_range)


# -- info --json ------------------------------------------------------------------------------
def test_info_json_gaps_side_tables_clock_profile(tmp_path, capsys):
    from tests.support.footprints_reference import SNAPS
    recs = make_dicts(12, seed=9)
    snaps = recs[0]["snapshots"]
    # a recorder that stopped twice: 0.5 s after snapshot 3, 0.04 s (jitter) after 6,
    # 1 s after 8
    shift = 0
    for k, s in enumerate(snaps):
        shift += {4: 500_000_000, 7: 40_000_000, 9: 1_000_000_000}.get(k, 0)
        s["start_time"] += shift
        s["end_time"] += shift
    data = tmp_path / "damon.data"
    data.write_text(json.dumps(recs))
    (tmp_path / "damon.data.mem_footprint").write_text(json.dumps(SNAPS))
    want = [(k + 1, s["end_time"], n["start_time"]) for k, (s, n) in enumerate(zip(snaps, snaps[1:]))
            if n["start_time"] - s["end_time"] > SNAP_NS / 2]
    assert [w[0] for w in want] == [4, 9]
    doc = json.loads(run_cli(capsys, ["info", "--json", str(data)]))
    assert (doc["schema"], doc["version"]) == ("damo-pipe/info", 1)
    assert doc["time_origin_ns"] == T0 and doc["time_origin_utc"] is None
    r, = doc["records"]
    assert [(g["before_snapshot"], g["start_ns"], g["end_ns"]) for g in r["gaps"]] == want
    assert r["gaps"][0]["start_s"] == (want[0][1] - T0) / 1e9
    assert r["gaps"][1]["duration_ns"] == 1_000_000_000
    assert r["start_s"] == 0.0 and r["end_s"] == (snaps[-1]["end_time"] - T0) / 1e9
    assert doc["clock"]["records"]["name"] == "boot"
    assert [f["kind"] for f in doc["side_files"]] == ["mem_footprint"]
    assert doc["side_tables"] == [] and doc["profile"] is None
    # the archive: footprint tables, a CPU profile's sample table
    h5 = tmp_path / "r.h5"
    assert main(["convert", str(data), str(h5)]) == 0
    attach_samples(h5, [T0 + k * 1000 for k in range(30)], ["a", "b", "c"] * 10)
    doc = json.loads(run_cli(capsys, ["info", "--json", str(h5)]))
    assert [(g["before_snapshot"], g["start_ns"], g["end_ns"])
            for g in doc["records"][0]["gaps"]] == want
    tables = {t["name"]: t for t in doc["side_tables"]}
    assert tables["profile"]["nr_rows"] == 30
    assert tables["profile"]["columns"][:1] == ["time_ns"]
    assert tables["meminfo"]["nr_rows"] == 3          # one snapshot has no system entry
    assert tables["footprints"]["nr_rows"] == 5       # per snapshot one row per pid
    assert "rss_bytes" in tables["footprints"]["columns"]
    assert doc["profile"]["nr_samples"] == 30 and doc["profile"]["sample_table"] is True
    assert doc["clock"]["side_data"]["meminfo"] == "realtime"
    assert doc["clock"]["side_data"]["profile"] == "perf"
    assert doc["side_files"] == []
    # the text stays what it was (no JSON-only field leaks into it)
    text = run_cli(capsys, ["info", str(h5)])
    assert text.startswith("file: %s\nformat: hdf5\n" % h5)

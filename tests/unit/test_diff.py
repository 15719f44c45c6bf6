"""damo-analyze diff: two recordings built here, every number against a reference
computed from the plain dicts (independent of the package's readers and reports)."""
import json
import random

import pytest

from damo_pipe.analyze.cli import main

MiB = 1 << 20
BASE = 0x7f0000000000
T0 = 1_000_000_000
DUR = 100_000_000


def make(nr_snapshots, hot_size, seed):
    """One target: regions [BASE, +8M) cold, [+8M, +8M+hot_size) hot (5..10 accesses),
    then warm 4 MiB (0 or 1 access), then cold up to +64M."""
    rnd = random.Random(seed)
    snaps = []
    for s in range(nr_snapshots):
        layout = [(0, 8 * MiB, 0), (8 * MiB, 8 * MiB + hot_size, rnd.randint(5, 10)),
                  (8 * MiB + hot_size, 12 * MiB + hot_size, rnd.choice([0, 1])),
                  (12 * MiB + hot_size, 64 * MiB, 0)]
        snaps.append({"start_time": T0 + s * DUR, "end_time": T0 + (s + 1) * DUR,
                      "total_bytes": 64 * MiB,
                      "regions": [{"start": BASE + a, "end": BASE + b,
                                   "nr_accesses": {"samples": n, "percent": None},
                                   "age": {"aggr_intervals": 0, "usec": None},
                                   "sz_filter_passed": 0} for a, b, n in layout]})
    return [{"kdamond_idx": 0, "context_idx": 0, "scheme_idx": None, "target_id": 0,
             "intervals": {"sample_us": 5000, "aggr_us": 100000, "ops_update_us": 1000000},
             "scheme_filters": [], "snapshots": snaps}]


def footprints(nr, rss_mib):
    return [{"time": 100.0 + k, "footprints": [
        {"pid": 7, "footprint": {"size": 4 * 256 * rss_mib, "resident": 256 * (rss_mib + k),
                                 "shared": 0, "trs": 0, "lrs": 0, "drs": 0, "dt": 0}},
        {"pid": None, "footprint": {"total": 1 << 20, "free": (1 << 19) + k, "available": None,
                                    "buffers": 0, "cached": 0}}]} for k in range(nr)]


def ref_wss(recs, exclude=20):
    return sorted(sum(r["end"] - r["start"] for r in s["regions"]
                      if r["nr_accesses"]["samples"] >= 1)
                  for s in recs[0]["snapshots"][exclude:])


def ref_hot_share(recs):
    """Share of the hot region in the record's total access (nr_accesses x time x size)."""
    def mass(pred):
        return sum(r["nr_accesses"]["samples"] * (s["end_time"] - s["start_time"])
                   * (r["end"] - r["start"]) for s in recs[0]["snapshots"] for r in s["regions"]
                   if pred(r))
    return mass(lambda r: r["start"] == BASE + 8 * MiB) / mass(lambda r: True)


def pick(values, p):
    return values[min(int(p / 100.0 * len(values)), len(values) - 1)]


@pytest.fixture
def pair(tmp_path):
    a, b = make(40, 8 * MiB, 1), make(50, 16 * MiB, 2)
    pa, pb = tmp_path / "a.data", tmp_path / "b.data"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    (tmp_path / "a.data.mem_footprint").write_text(json.dumps(footprints(10, 100)))
    (tmp_path / "b.data.mem_footprint").write_text(json.dumps(footprints(12, 150)))
    return a, b, str(pa), str(pb)


def test_diff_json(pair, capsys):
    a, b, pa, pb = pair
    assert main(["diff", pa, pb, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["schema"], doc["version"]) == ("damo-pipe/diff", 1)
    assert doc["inputs"] == [pa, pb]
    rec = doc["recording"]
    assert rec["nr_snapshots"] == {"a": 40, "b": 50, "delta": 10}
    assert rec["duration_ns"] == {"a": 40 * DUR, "b": 50 * DUR, "delta": 10 * DUR}
    assert rec["monitored_bytes"]["b"] == 64 * MiB
    # accessed: the hot region and the warm one (seen accessed at least once)
    assert rec["accessed_bytes"] == {"a": 12 * MiB, "b": 20 * MiB, "delta": 8 * MiB}
    wa, wb = ref_wss(a), ref_wss(b)
    for p in doc["wss"]["percentiles"]:
        q = p["percentile"]
        assert (p["a"], p["b"], p["delta"]) == (pick(wa, q), pick(wb, q),
                                                pick(wb, q) - pick(wa, q))
    assert doc["wss"]["average_bytes"]["a"] == sum(wa) / len(wa)
    assert doc["wss"]["nr_values"] == {"a": 20, "b": 30, "delta": 10}
    assert doc["nr_regions"]["percentiles"][0] == {"percentile": 0, "a": 4, "b": 4, "delta": 0}
    assert doc["nr_regions"]["nr_values"]["b"] == 30
    rss = doc["footprints"]["rss"]
    assert [p["a"] for p in rss["percentiles"]] == [pick([(100 + k) * MiB for k in range(10)], q)
                                                    for q in (0, 25, 50, 75, 100)]
    assert rss["percentiles"][-1]["b"] == (150 + 11) * MiB
    sys_used = doc["footprints"]["sys_used"]["percentiles"][0]
    assert sys_used["a"] == ((1 << 20) - (1 << 19)) * 1024 - 9 * 1024
    for name, recs, size in (("a", a, 8 * MiB), ("b", b, 16 * MiB)):
        top = doc["hot_ranges"][name][0]
        assert (top["rank"], top["start"], top["size"]) == (1, BASE + 8 * MiB, size)
        assert top["access_share"] == pytest.approx(ref_hot_share(recs), rel=1e-12)
        assert len(doc["hot_ranges"][name]) == 1       # the warm region is not hot
    assert doc["notes"] == []


def test_diff_text_matches_json(pair, capsys):
    a, b, pa, pb = pair
    assert main(["diff", pa, pb, "--raw_number", "--range", "0", "101", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["A: %s" % pa, "B: %s" % pb]
    k = lines.index("# working set size (report wss; first 20 snapshots of each record skipped)")
    wa, wb = ref_wss(a), ref_wss(b)
    for i, q in enumerate((0, 50, 100)):
        row = lines[k + 2 + i].split()
        assert row[0] == str(q)
        assert int(row[1]) == pick(wa, q) and int(row[2]) == pick(wb, q)
        d = pick(wb, q) - pick(wa, q)
        assert row[3] == ("+%d" % d if d > 0 else "-%d" % -d if d < 0 else "0")
    k = lines.index("# recording")
    assert lines[k + 2].split() == ["records", "1", "1", "0"]
    assert lines[k + 3].split() == ["snapshots", "40", "50", "+10"]
    assert "# memory footprint: rss" in lines
    k = lines.index("# hot address ranges (top 5 by share of the record's total access)")
    assert lines[k + 2].split() == ["1", "[0x%x," % (BASE + 8 * MiB), "0x%x)" % (BASE + 16 * MiB),
                                    "[0x%x," % (BASE + 8 * MiB), "0x%x)" % (BASE + 24 * MiB)]
    assert all(not x.endswith(" ") for x in lines)
    # aligned columns: the rows of a block are equally long (right-aligned values)
    k = lines.index("# nr_regions (first 20 snapshots of each record skipped)")
    assert len({len(x) for x in lines[k + 1:k + 7]}) == 1


def test_diff_without_footprints_and_archives(pair, tmp_path, capsys):
    a, b, pa, pb = pair
    h5 = tmp_path / "b.h5"
    assert main(["convert", pb, str(h5)]) == 0        # the side file becomes tables
    plain = tmp_path / "c.data"
    plain.write_text(json.dumps(a))                   # no .mem_footprint
    assert main(["diff", str(plain), str(h5), "--json", "--top", "3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["footprints"] is None
    assert len(doc["notes"]) == 1 and doc["notes"][0].startswith("A has no memory footprints")
    assert doc["wss"]["percentiles"][-1]["b"] == ref_wss(b)[-1]
    assert main(["diff", str(plain), str(h5)]) == 0
    out = capsys.readouterr().out
    assert "# memory footprint" not in out and "# note: A has no memory footprints" in out
    assert main(["diff", pa, str(tmp_path / "none")]) == 1
    assert "none" in capsys.readouterr().err
    assert main(["diff", pa, pb, "--top", "0"]) == 2


def test_diff_exclude_samples_and_range(pair, capsys):
    a, b, pa, pb = pair
    assert main(["diff", pa, pb, "--json", "--exclude_samples", "5", "--range", "10", "91",
                 "40"]) == 0
    doc = json.loads(capsys.readouterr().out)
    wa, wb = ref_wss(a, 5), ref_wss(b, 5)
    assert doc["wss"]["nr_values"] == {"a": 35, "b": 45, "delta": 10}
    assert [(p["percentile"], p["a"], p["b"]) for p in doc["wss"]["percentiles"]] == [
        (q, pick(wa, q), pick(wb, q)) for q in (10, 50, 90)]
    assert doc["options"]["exclude_samples"] == 5
    # nr_regions keeps damo's fixed skip of 20
    assert doc["nr_regions"]["nr_values"] == {"a": 20, "b": 30, "delta": 10}

"""Classes of damage the CLI fuzz run (tools/fuzz, docs/robustness.md) found, each
checked on a hand-made input: perf.data whose tracepoint formats are damaged (perf
itself spins for minutes on them), JSON ids out of the 64-bit range, JSON objects with
a repeated key (both engines read them as Python's json does: the last one wins)."""
import json
import struct

import pytest

from damo_pipe.analyze.cli import main
from damo_pipe.errors import RecordFormatError
from damo_pipe.formats import read_records
from damo_pipe.formats.perf_data_header import check_perf_data_header
from tests.fuzz.perf_data import perf_data, tracing_data

SAMPLES = [(1_000_000_000 + 100_000_000 * k, 0, 2, 4096 * i, 4096 * (i + 1), k, 3)
           for k in range(3) for i in range(2)]


def _tracing_data_offset(data):
    """File offset of the HEADER_TRACING_DATA section (the only feature written)."""
    data_off, data_size = struct.unpack_from("<QQ", data, 40)
    off, _ = struct.unpack_from("<QQ", data, data_off + data_size)
    return off


def test_the_generated_perf_data_passes(tmp_path):
    p = tmp_path / "perf.data"
    p.write_bytes(perf_data(SAMPLES))
    check_perf_data_header(p)


@pytest.mark.parametrize("where, byte", [("print fmt", 0x00), ("field:unsigned int age", 0xbb),
                                         ("header_event", None),
                                         ("u64 timestamp", ord('"')),      # printable, yet
                                         ("field:unsigned int age", ord("'"))])  # perf spins
def test_damaged_format_text_is_an_error_at_its_offset(tmp_path, where, byte):
    data = bytearray(perf_data(SAMPLES))
    td = _tracing_data_offset(data)
    if byte is None:            # the name before the header_event size
        at = data.index(b"header_event\0", td)
        data[at] = ord("H")
        want = at
    else:
        want = data.index(where.encode(), td) + 3
        data[want] = byte
    p = tmp_path / "perf.data"
    p.write_bytes(bytes(data))
    with pytest.raises(RecordFormatError) as e:
        check_perf_data_header(p)
    assert e.value.offset == want, str(e.value)


def test_a_size_past_the_section_is_an_error(tmp_path):
    data = bytearray(perf_data(SAMPLES))
    td = _tracing_data_offset(data)
    # kallsyms size: the u32 after the event format, which ends the section's text
    body = tracing_data()
    kallsyms_at = td + len(body) - 4 - 4 - 8 - len(b"207 kdamond.0\n")
    struct.pack_into("<I", data, kallsyms_at, 1 << 30)
    p = tmp_path / "perf.data"
    p.write_bytes(bytes(data))
    with pytest.raises(RecordFormatError) as e:
        check_perf_data_header(p)
    assert e.value.offset == kallsyms_at and "kallsyms" in str(e.value)


def test_cli_names_the_file_and_offset_of_damaged_perf_data(tmp_path, capsys):
    data = bytearray(perf_data(SAMPLES))
    at = data.index(b"print fmt", _tracing_data_offset(data)) + 5
    data[at] = 0
    p = tmp_path / "perf.data"
    p.write_bytes(bytes(data))
    assert main(["info", str(p)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["damo-analyze: error: %s, byte offset %d: perf.data tracing data: byte 0x00 "
                   "in the text of an event format (truncated or damaged)" % (p, at)]


def _record_json(**meta):
    rec = {"kdamond_idx": 0, "context_idx": 0, "scheme_idx": None, "target_id": 1,
           "intervals": None, "scheme_filters": [],
           "snapshots": [{"start_time": "1000", "end_time": "2000", "total_bytes": 4096,
                          "regions": [{"start": "0", "end": "4096",
                                       "nr_accesses": {"samples": 3, "percent": None},
                                       "age": {"usec": None, "aggr_intervals": 5},
                                       "probe_hits": [], "sz_filter_passed": 0}]}]}
    rec.update(meta)
    return rec


@pytest.mark.parametrize("field, value", [("target_id", 1e400), ("target_id", 1.5),
                                          ("context_idx", -(1 << 63) - 1),
                                          ("kdamond_idx", 1 << 64)])
def test_ids_outside_64_bits_are_errors(tmp_path, engine, field, value):
    p = tmp_path / "damon.json"
    text = json.dumps([_record_json(**{field: 0})]).replace(
        '"%s": 0' % field, '"%s": %s' % (field, "1e400" if value == 1e400 else repr(value)))
    p.write_text(text)
    with pytest.raises(RecordFormatError) as e:
        read_records(p, engine=engine)
    assert field in str(e.value) and "record 0" in str(e.value)


def test_a_repeated_key_reads_as_the_last_one_on_both_engines(tmp_path, engine):
    text = json.dumps([_record_json()], indent=4)
    # "age" twice in the region: the second, empty one wins (Python's json)
    text = text.replace('"probe_hits"', '"age": {},\n "probe_hits"', 1)
    p = tmp_path / "damon.json"
    p.write_text(text)
    assert json.loads(text)[0]["snapshots"][0]["regions"][0]["age"] == {}
    rec, = read_records(p, engine=engine)
    assert rec.regions.age.tolist() == [-1]          # unknown, as an age without a value
    assert rec.regions.nr_accesses.tolist() == [3]


def test_a_region_value_of_the_wrong_kind_is_an_error_on_both_engines(tmp_path, engine):
    rec = _record_json()
    rec["snapshots"][0]["regions"][0]["nr_accesses"] = [3]
    p = tmp_path / "damon.json"
    p.write_text(json.dumps([rec], indent=4))
    with pytest.raises(RecordFormatError) as e:
        read_records(p, engine=engine)
    assert "region 0" in str(e.value)


def test_an_archive_first_start_outside_64_bits_is_an_error(tmp_path, capsys):
    import h5py
    src = tmp_path / "damon.json"
    src.write_text(json.dumps([_record_json()]))
    arc = tmp_path / "a.h5"
    assert main(["convert", str(src), str(arc)]) == 0
    with h5py.File(arc, "r+") as f:
        f["records/000000/first_start_ns"][0] = 6e305
    assert main(["convert", str(arc), str(tmp_path / "back.json")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "first_start_ns" in err[0] and str(arc) in err[0], err
    assert not (tmp_path / "back.json").exists()

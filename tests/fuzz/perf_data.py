"""A minimal perf.data writer: DAMON tracepoint samples as ``perf record -e
damon:damon_aggregated`` stores them, for the fuzz harness (no perf record needed, and
no DAMON tracepoint is ever enabled on the host).

Layout (tools/perf/Documentation/perf.data-file-format.txt): the PERFILE2 header, one
``perf_file_attr`` (a tracepoint event, sample_type IP|TID|TIME|CPU|PERIOD|RAW), the
data section (a COMM record naming ``kdamond.0``, then one SAMPLE per region whose raw
data is the tracepoint's ring-buffer record), and one feature, HEADER_TRACING_DATA:
the event format files ``perf script`` needs to decode and print the raw records.
Formats are written here from the kernel's TRACE_EVENT definitions of
``damon_aggregated`` (and ``damos_before_apply``).
"""
from __future__ import annotations

import struct

#: tracepoint ids written in the attr and in the records' common_type
AGGREGATED_ID = 734
PID = 207

_HEADER_PAGE = (b"\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n"
                b"\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n"
                b"\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n"
                b"\tfield: char data;\toffset:16;\tsize:4080;\tsigned:1;\n")
_HEADER_EVENT = (b"# compressed entry header\n\ttype_len    :    5 bits\n"
                 b"\ttime_delta  :   27 bits\n\tarray       :   32 bits\n\n"
                 b"\tpadding     : type == 29\n\ttime_extend : type == 30\n"
                 b"\ttime_stamp : type == 31\n\tdata max type_len  == 28\n")
_COMMON = (b"\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
           b"\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
           b"\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
           b"\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n")


def _aggregated_format(event_id):
    return (b"name: damon_aggregated\nID: %d\nformat:\n" % event_id + _COMMON +
            b"\tfield:unsigned long target_id;\toffset:8;\tsize:8;\tsigned:0;\n"
            b"\tfield:unsigned int nr_regions;\toffset:16;\tsize:4;\tsigned:0;\n"
            b"\tfield:unsigned long start;\toffset:24;\tsize:8;\tsigned:0;\n"
            b"\tfield:unsigned long end;\toffset:32;\tsize:8;\tsigned:0;\n"
            b"\tfield:unsigned int nr_accesses;\toffset:40;\tsize:4;\tsigned:0;\n"
            b"\tfield:unsigned int age;\toffset:44;\tsize:4;\tsigned:0;\n\n"
            b'print fmt: "target_id=%lu nr_regions=%u %lu-%lu: %u %u", REC->target_id, '
            b"REC->nr_regions, REC->start, REC->end, REC->nr_accesses, REC->age\n")


def tracing_data(event_id=AGGREGATED_ID):
    """The HEADER_TRACING_DATA feature (perf's util/trace-event-info.c layout, v0.6)."""
    out = b"\x17\x08\x44tracing" + b"0.6\0" + bytes([0, 8]) + struct.pack("<I", 4096)
    out += b"header_page\0" + struct.pack("<Q", len(_HEADER_PAGE)) + _HEADER_PAGE
    out += b"header_event\0" + struct.pack("<Q", len(_HEADER_EVENT)) + _HEADER_EVENT
    out += struct.pack("<I", 0)                       # ftrace formats
    fmt = _aggregated_format(event_id)
    out += struct.pack("<I", 1) + b"damon\0" + struct.pack("<I", 1)
    out += struct.pack("<Q", len(fmt)) + fmt
    out += struct.pack("<I", 0)                       # kallsyms
    out += struct.pack("<I", 0)                       # ftrace printk
    cmdlines = b"%d kdamond.0\n" % PID
    out += struct.pack("<Q", len(cmdlines)) + cmdlines
    return out


def _attr(event_id):
    """struct perf_event_attr (PERF_ATTR_SIZE_VER7, 128 bytes) of the tracepoint."""
    sample_type = 1 | 2 | 4 | 128 | 256 | 1024        # IP TID TIME CPU PERIOD RAW
    flags = 1 << 1                                    # inherit
    a = struct.pack("<IIQQQQQ", 2, 128, event_id, 1, sample_type, 0, flags)
    return a + b"\0" * (128 - len(a))


def _record(rtype, body, misc=0):
    body += b"\0" * (-len(body) % 8)
    return struct.pack("<IHH", rtype, misc, 8 + len(body)) + body


def _sample(time_ns, cpu, raw):
    raw += b"\0" * (-(len(raw) + 4) % 8)              # u32 size + raw: 8-byte aligned
    body = struct.pack("<QIIQIIQ", 0xffffffff81000000, PID, PID, time_ns, cpu, 0, 1)
    return _record(9, body + struct.pack("<I", len(raw)) + raw, misc=1)


def aggregated_raw(target_id, nr_regions, start, end, nr_accesses, age,
                   event_id=AGGREGATED_ID):
    return struct.pack("<HBBiQI4xQQII", event_id, 0, 1, PID, target_id, nr_regions, start,
                       end, nr_accesses, age)


def perf_data(samples, event_id=AGGREGATED_ID):
    """perf.data bytes of ``samples``: (time_ns, target_id, nr_regions, start, end,
    nr_accesses, age) tuples, one per damon_aggregated event."""
    data = _record(3, struct.pack("<II", PID, PID) + b"kdamond.0\0")        # COMM
    for t, tid, nr, s, e, acc, age in samples:
        data += _sample(t, 0, aggregated_raw(tid, nr, s, e, acc, age, event_id))
    attr = _attr(event_id) + struct.pack("<QQ", 0, 0)                       # no ids
    header_size, attr_off = 104, 104
    data_off = attr_off + len(attr)
    feat_off = data_off + len(data)
    td = tracing_data(event_id)
    features = struct.pack("<QQ", feat_off + 16, len(td)) + td
    bitmap = bytearray(32)
    bitmap[0] = 1 << 1                                                      # TRACING_DATA
    header = (b"PERFILE2" + struct.pack("<QQ", header_size, len(attr)) +
              struct.pack("<QQ", attr_off, len(attr)) + struct.pack("<QQ", data_off, len(data)) +
              struct.pack("<QQ", 0, 0) + bytes(bitmap))
    return header + attr + data + features


def records_samples(records):
    """damon_aggregated samples of damo_pipe Records (every region of every snapshot,
    record after record; ages -1 are written as 0, the tracepoint has no unknown)."""
    out = []
    for r in records:
        S, R = r.snapshots, r.regions
        for k in range(r.nr_snapshots):
            lo, n = int(S.region_offset[k]), int(S.nr_regions[k])
            for i in range(lo, lo + n):
                out.append((int(S.end_ns[k]), int(r.target_id) & ((1 << 64) - 1), n,
                            int(R.start[i]), int(R.end[i]), int(R.nr_accesses[i]) & 0xFFFFFFFF,
                            max(0, int(R.age[i])) & 0xFFFFFFFF))
    out.sort(key=lambda x: x[0])
    return out

"""Deterministic snapshot generator and a writer process used by the archive crash tests.

Run as ``python archive_proc.py PATH MODE`` (MODE = swmr | kill | killbig): appends
snapshots in batches, flushes after each batch and prints ``committed <nr_snapshots>``
lines. killbig: record 0's snapshots have 70-90k regions (page-granularity sized: its
region columns get the wide chunks of ArchiveWriter._widen_big_records), record 1's stay
small.
"""
import sys
import time

import numpy as np


def snapshot_for(record_idx, k, big=False):
    """Regions of snapshot k of record record_idx: a pure function of its arguments."""
    from damo_pipe.model import RegionColumns

    rng = np.random.default_rng(record_idx * 1_000_003 + k)
    n = int(rng.integers(70_000, 90_000)) if big and record_idx == 0 else int(rng.integers(1, 40))
    sizes = rng.integers(1, 1 << 12, n).astype(np.uint64) * np.uint64(4096)
    ends = np.uint64(0x10000000 * (record_idx + 1)) + np.cumsum(sizes)
    return RegionColumns(ends - sizes, ends, rng.integers(0, 21, n), rng.integers(0, 1000, n),
                         rng.integers(0, 1 << 20, n).astype(np.uint64))


def times_for(k):
    return k * 100_000_000, (k + 1) * 100_000_000


def chunk_for(meta, record_idx, k0, k1, big=False):
    from damo_pipe.model import RecordBuilder

    b = RecordBuilder(meta)
    for k in range(k0, k1):
        s, e = times_for(k)
        b.add_snapshot(s, e, snapshot_for(record_idx, k, big))
    return b.build()


def main(path, mode):
    from damo_pipe.archive import ArchiveWriter
    from damo_pipe.model import Intervals, Record

    metas = [Record(target_id=i, intervals=Intervals(5000, 100000, 1000000)) for i in range(2)]
    w = ArchiveWriter(path, swmr=True, provenance={"source_format": "test"})
    for m in metas:
        w.add_record(m)
    k = 0
    big = mode == "killbig"
    batch = 2 if big else 7
    while True:
        for i, m in enumerate(metas):
            w.append(i, chunk_for(m, i, k, k + batch, big))
        k += batch
        w.flush()
        print("committed %d" % k, flush=True)
        if mode == "swmr" and k >= 70:
            w.close()
            return
        if mode == "swmr":  # lock-step: wait until the reader acknowledged this commit
            ack = path + ".ack"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    with open(ack) as f:
                        if f.read().strip() == str(k):
                            break
                except OSError:
                    pass
                time.sleep(0.01)
            else:
                raise SystemExit("reader did not acknowledge commit %d" % k)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

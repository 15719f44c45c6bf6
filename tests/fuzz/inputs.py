"""Inputs of the CLI fuzz harness (tools/fuzz): every damon.data flavour and the archive,
generated from the project's own generators (benchmarks/gen.py, the damo writers, the
archive writer, tests/fuzz/perf_data.py), then damaged.

``make_input(seed, index, workdir, cache)`` is deterministic: the same (seed, index)
gives the same bytes, flavour, damage and command, which is what a reproducer needs.
"""
from __future__ import annotations

import os
import random
import re
import struct
import zlib

#: flavour -> weight (perf.data costs two perf runs per input: kept rare)
FLAVOURS = {
    "json": 12, "json_compressed": 12, "perf_script": 10, "perf": 8, "trace-cmd": 8,
    "trace_pipe": 8, "binary_v0": 6, "binary_v1": 6, "binary_v2": 8, "hdf5": 12,
    "perf_data": 1,
}
#: damage -> weight
DAMAGES = {
    "none": 6, "truncate": 14, "flip": 14, "drop_line": 12, "dup_line": 10,
    "huge_count": 10, "garbage": 10, "empty": 2, "directory": 2, "deep_json": 2,
    "splice": 4,
}
#: command -> weight
COMMANDS = {"convert_json": 40, "info": 35, "wss": 9, "nr_regions": 9, "convert_h5": 2}


#: undamaged files per flavour
BASES = 40


def _pick(rng, table):
    names = list(table)
    return rng.choices(names, weights=[table[n] for n in names])[0]


class Input:
    """One generated input: ``path`` (file or directory), what it is, how it was damaged
    and the command line to run on it (``argv`` needs ``out_dir``)."""

    __slots__ = ("index", "flavour", "damage", "command", "path", "detail")

    def __init__(self, index, flavour, damage, command, path, detail=""):
        self.index = index
        self.flavour = flavour
        self.damage = damage
        self.command = command
        self.path = path
        self.detail = detail

    def argv(self, out_dir):
        p = self.path
        if self.command == "convert_json":
            return ["convert", p, os.path.join(out_dir, "out.json")]
        if self.command == "convert_h5":
            return ["convert", p, os.path.join(out_dir, "out.h5")]
        if self.command == "info":
            return ["info", p]
        if self.command == "wss":
            return ["report", "wss", "--input", p, "--exclude_samples", "0"]
        return ["report", "nr_regions", "--input", p]

    def describe(self):
        return "%s/%s/%s%s" % (self.flavour, self.damage, self.command,
                               " (%s)" % self.detail if self.detail else "")


# ---------------------------------------------------------------- base records

def base_records(rng):
    """1-3 small records (benchmarks/gen.make_record), distinct target ids."""
    from benchmarks.gen import make_record
    n = rng.choice([1, 1, 1, 2, 3])
    tids = rng.sample([0, 1, 2, 3, 42, 4242, 2**32 + 5], n)
    with_intervals = rng.random() < 0.7
    recs = []
    for t in tids:
        r = make_record(rng.randint(1, 6), rng.randint(1, 8), seed=rng.randrange(1 << 30),
                        with_intervals=with_intervals, target_id=t,
                        with_age=rng.random() < 0.8)
        recs.append(r)
    return recs


def _binary(recs, version):
    from benchmarks.gen import write_binary
    import tempfile
    with tempfile.NamedTemporaryFile() as f:
        write_binary(recs[:1] if version == 0 else recs, f.name, version=version)
        return open(f.name, "rb").read()


def flavour_bytes(flavour, recs, workdir):
    """The records in ``flavour`` (bytes; hdf5 through the archive writer)."""
    from benchmarks.gen import iter_trace_text
    from damo_pipe.formats import write_records
    if flavour in ("json", "json_compressed", "perf_script"):
        p = os.path.join(workdir, "base." + flavour)
        write_records(recs, p, flavour)
        data = open(p, "rb").read()
        os.unlink(p)
        return data
    if flavour in ("perf", "trace-cmd", "trace_pipe"):
        return b"".join(iter_trace_text(recs, flavour))
    if flavour.startswith("binary_v"):
        for r in recs:
            r.regions.age[:] = -1
            if flavour == "binary_v1":
                r.target_id %= 1 << 31             # v1 target ids are int32
        return _binary(recs, int(flavour[-1]))
    if flavour == "perf_data":
        from tests.fuzz.perf_data import perf_data, records_samples
        return perf_data(records_samples(recs))
    if flavour == "hdf5":
        from damo_pipe.archive import write_records as write_archive
        p = os.path.join(workdir, "base.h5")
        write_archive(recs, p, compression=random.Random(len(recs)).choice(["lz4", "none"]))
        data = open(p, "rb").read()
        os.unlink(p)
        return data
    raise ValueError(flavour)


# ---------------------------------------------------------------- damage

_NUM_RE = re.compile(rb"(?<![0-9A-Za-z_])-?[0-9]+")
HUGE = [b"18446744073709551615", b"18446744073709551616", b"9223372036854775807",
        b"9223372036854775808", b"99999999999999999999999999999", b"-1", b"0",
        b"4294967295", b"1e400", b"-9223372036854775809"]


def _lines(data):
    return data.splitlines(keepends=True)


def damage_bytes(rng, data, damage, flavour):
    """``data`` damaged; returns (bytes, detail)."""
    n = len(data)
    if damage == "none" or n == 0:
        return data, ""
    if damage == "truncate":
        how = rng.random()
        if how < 0.4:
            cut = rng.randrange(n)
        elif how < 0.7 and b"\n" in data:
            ends = [m.end() for m in re.finditer(rb"\n", data)]
            cut = rng.choice(ends[:-1] or ends)
        else:
            cut = max(0, n - rng.randint(1, 40))
        return data[:cut], "cut at %d of %d" % (cut, n)
    if damage == "flip":
        out = bytearray(data)
        where = []
        for _ in range(rng.choice([1, 1, 1, 2, 3, 8])):
            i = rng.randrange(n)
            out[i] ^= rng.randint(1, 255)
            where.append(i)
        return bytes(out), "flip at %s" % where
    if damage in ("drop_line", "dup_line"):
        if flavour.startswith("binary") or flavour in ("hdf5", "perf_data"):
            # binary: drop / repeat a run of 4..24 bytes at a 4-aligned offset
            size = rng.choice([4, 8, 12, 16, 20, 24])
            i = rng.randrange(0, max(1, n - size + 1), 4) if n > size else 0
            piece = data[i:i + size]
            out = data[:i] + data[i + size:] if damage == "drop_line" else \
                data[:i + size] + piece + data[i + size:]
            return out, "%d bytes at %d" % (size, i)
        if flavour == "json_compressed" and rng.random() < 0.7:
            try:
                text = zlib.decompress(data)
            except zlib.error:
                text = None
            if text is not None:
                out, det = damage_bytes(rng, text, damage, "json")
                return zlib.compress(out), "inside: " + det
        lines = _lines(data)
        i = rng.randrange(len(lines))
        out = lines[:i] + lines[i + 1:] if damage == "drop_line" else \
            lines[:i + 1] + lines[i:]
        return b"".join(out), "line %d" % (i + 1)
    if damage == "huge_count":
        if flavour.startswith("binary") or flavour == "perf_data":
            out = bytearray(data)
            i = rng.randrange(0, max(1, n - 3), 4)
            out[i:i + 4] = struct.pack("<I", rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 0x10000, 0]))
            return bytes(out[:n]), "u32 at %d" % i
        if flavour == "json_compressed":
            try:
                text = zlib.decompress(data)
            except zlib.error:
                return data, ""
            out, det = damage_bytes(rng, text, damage, "json")
            return zlib.compress(out), "inside: " + det
        nums = list(_NUM_RE.finditer(data))
        if not nums:
            return data, ""
        m = rng.choice(nums)
        v = rng.choice(HUGE)
        return data[:m.start()] + v + data[m.end():], "number at %d -> %s" % (m.start(), v.decode())
    if damage == "garbage":
        how = rng.random()
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        if how < 0.3:
            return data + junk, "appended %d bytes" % len(junk)
        if how < 0.6:
            i = rng.randrange(n)
            return data[:i] + junk + data[i:], "inserted %d bytes at %d" % (len(junk), i)
        if how < 0.8:
            text = bytes(rng.choice(b"abcdefghij klmnop=:-[]{}.0123456789\n")
                         for _ in range(rng.randint(1, 2000)))
            return text, "random text"
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000))), "random bytes"
    if damage == "deep_json":
        depth = rng.choice([100, 1000, 5000, 100000])
        i = rng.randrange(n)
        return data[:i] + b"[" * depth + data[i:], "%d '[' at %d" % (depth, i)
    if damage == "splice":
        # a piece of the file repeated elsewhere (a bad concatenation, a replayed write)
        a = rng.randrange(n)
        b = min(n, a + rng.randint(1, 256))
        i = rng.randrange(n)
        return data[:i] + data[a:b] + data[i:], "bytes %d-%d copied to %d" % (a, b, i)
    raise ValueError(damage)


def damage_archive_index(rng, path):
    """Damage an archive's snapshot table through h5py (what byte damage rarely reaches):
    a huge or negative nr_regions, a non-contiguous region_offset, a committed count
    beyond the data."""
    import h5py
    import hdf5plugin  # noqa: F401  (the lz4 filter)
    with h5py.File(path, "r+") as f:
        names = sorted(f["records"])
        if not names:
            return "no record"
        g = f["records"][rng.choice(names)]
        snaps = g["snapshots"]
        n = len(snaps["nr_regions"])
        if n == 0:
            return "no snapshot"
        k = rng.randrange(n)
        how = rng.choice(["nr_huge", "nr_negative", "offset", "committed", "end_order"])
        if how == "nr_huge":
            snaps["nr_regions"][k] = 1 << 40
        elif how == "nr_negative":
            snaps["nr_regions"][k] = -rng.randint(1, 5)
        elif how == "offset":
            snaps["region_offset"][k] = snaps["region_offset"][k] + rng.choice([-3, -1, 1, 7])
        elif how == "committed":
            c = g["committed"][...]
            c[rng.randrange(2)] += rng.choice([1, 1000, 1 << 40])
            g["committed"][...] = c
        else:
            snaps["end_ns"][k] = -1
        return "%s at snapshot %d" % (how, k)


# ---------------------------------------------------------------- one input

def make_input(seed, index, workdir, cache=None):
    """Input number ``index`` of run ``seed``, written under ``workdir``."""
    rng = random.Random("%s:%d" % (seed, index))
    flavour = _pick(rng, FLAVOURS)
    damage = _pick(rng, DAMAGES)
    command = _pick(rng, COMMANDS)
    if damage == "deep_json" and not flavour.startswith("json"):
        damage = "garbage"
    path = os.path.join(workdir, "in-%d" % index)
    if damage == "directory":
        os.mkdir(path)
        if rng.random() < 0.5:
            with open(os.path.join(path, "x.txt"), "wb") as f:
                f.write(b"")
        return Input(index, flavour, damage, command, path, "a directory")
    # the undamaged file: one of BASES per flavour (generated once per worker; the
    # damage makes the inputs different), a function of (seed, flavour, base) only
    key = (flavour, rng.randrange(BASES))
    data = None if cache is None else cache.get(key)
    if data is None:
        recs = base_records(random.Random("%s:%s:%d" % (seed, key[0], key[1])))
        data = flavour_bytes(flavour, recs, workdir)
        if cache is not None:
            cache[key] = data
    detail = ""
    if damage == "empty":
        data = b""
    elif flavour == "hdf5" and damage in ("drop_line", "dup_line", "huge_count") \
            and rng.random() < 0.5:
        with open(path, "wb") as f:
            f.write(data)
        detail = damage_archive_index(rng, path)
        return Input(index, flavour, damage, command, path, detail)
    elif flavour == "json_compressed" and damage == "deep_json":
        data, detail = damage_bytes(rng, zlib.decompress(data), damage, "json")
        data = zlib.compress(data)
    else:
        data, detail = damage_bytes(rng, data, damage, flavour)
    name = path + (".data" if rng.random() < 0.5 else "")
    with open(name, "wb") as f:
        f.write(data)
    return Input(index, flavour, damage, command, name, detail)


__all__ = ["FLAVOURS", "DAMAGES", "COMMANDS", "Input", "make_input", "base_records",
           "flavour_bytes", "damage_bytes", "damage_archive_index"]

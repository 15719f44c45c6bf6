"""Names, versions and storage choices of the HDF5 archive format (docs/format.md).

Everything a reader or writer needs to agree on lives here, so that the document,
the writer and the reader cannot drift apart.
"""
import numpy as np

from damo_pipe.model import DAMOS_STAT_FIELDS

FORMAT_NAME = "damo-pipe-archive"
FORMAT_VERSION = 1

RECORDS_GROUP = "records"
RECORD_NAME_FORMAT = "%06d"

#: region columns: name -> (dtype, units)
REGION_COLUMNS = {
    "start": (np.uint64, "bytes"),
    "end": (np.uint64, "bytes"),
    "nr_accesses": (np.int64, "samples"),
    "age": (np.int64, "aggregation intervals (-1 = unknown)"),
    "sz_filter_passed": (np.uint64, "bytes"),
    "probe_count": (np.int32, "count"),
}

#: snapshot columns: name -> (dtype, units)
SNAPSHOT_COLUMNS = {
    "start_ns": (np.int64, "ns"),
    "end_ns": (np.int64, "ns"),
    "region_offset": (np.int64, "row index into the region columns"),
    "nr_regions": (np.int64, "count"),
    "total_bytes": (np.uint64, "bytes"),
    "sample_interval_us": (np.float64, "us (NaN = not recorded)"),
    "has_damos_stats": (np.bool_, "flag"),
}
SNAPSHOT_COLUMNS.update({
    "damos_" + f: (np.uint64, "bytes" if f.startswith("sz_") else "count")
    for f in DAMOS_STAT_FIELDS
})

#: optional float64 region columns (NaN = null), created only when a source states them
#: (damo JSON ``age.usec`` / ``nr_accesses.percent``, e.g. DAMON_STAT records)
OPTIONAL_REGION_COLUMNS = {
    "age_usec": (np.float64, "us as stated by the source (NaN = derive from age)"),
    "nr_accesses_percent": (np.float64, "% as stated by the source (NaN = derive from nr_accesses)"),
}

PROBE_HITS = "probe_hits"          # ragged: probe_count per region, values here
COMMITTED = "committed"            # int64[3]: snapshots, regions, probe hits made durable
FIRST_START = "first_start_ns"     # float64[1]: deduced exact first start, NaN = none
TIME_INDEX = "time_index_end_ns"   # int64: end_ns of every TIME_INDEX_STRIDE-th snapshot
TIME_INDEX_STRIDE = 256

#: optional per-record group written at close time: the heatmap guide summary
#: (docs/format.md, "Guide summary"); readers that do not know it ignore it
GUIDE_GROUP = "guide"
GUIDE_COVERED = "covered"            # int64[2]: snapshots covered (-1 = none), heats valid (0/1)
GUIDE_BOUNDS = "bounds"              # uint64[2]: lowest start, highest end (0 = unset)
GUIDE_FIRST_MAX_AGE = "first_max_age"  # int64[1]: max(0, max age of snapshot 0's regions)
GUIDE_GAPS = "gaps"                  # uint64[n, 2]: damo's narrowed gaps
GUIDE_HEATS_HI = "heats_hi"          # int64[n + 1]: heats per contiguous region, high 64 bits
GUIDE_HEATS_LO = "heats_lo"          # uint64[n + 1]: low 64 bits (value = hi * 2**64 + lo)

REGION_CHUNK_ROWS = 1 << 16
#: SWMR (live recording) archives: smaller chunks, as each flush rewrites the last chunk
SWMR_REGION_CHUNK_ROWS = 1 << 12
#: a SWMR record whose first written snapshot has this many regions or more (page
#: granularity) gets REGION_CHUNK_ROWS-row region chunks instead (ArchiveWriter)
SWMR_WIDE_MIN_REGIONS = 1 << 16
SNAPSHOT_CHUNK_ROWS = 1 << 12

#: compression choices (name -> h5py dataset keyword arguments factory)
COMPRESSIONS = ("gzip", "lz4", "zstd", "none")
#: chosen by measurement, see docs/performance.md ("Archive compression")
DEFAULT_COMPRESSION = "lz4"


def compression_kwargs(name):
    """h5py.create_dataset keyword arguments for a compression choice."""
    if name is None:
        name = DEFAULT_COMPRESSION
    if name == "none":
        return {}
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    import hdf5plugin
    if name == "lz4":
        return dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))
    if name == "zstd":
        return dict(hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE))
    raise ValueError("unknown compression %r (choose from %s)" % (name, ", ".join(COMPRESSIONS)))

"""The compacted copy of a closed archive: every dataset at its final size.

A SWMR recording leaves behind what its flushes wrote more than once (HDF5 does not
reuse the space of a rewritten chunk) and datasets made to grow: unlimited shapes,
whose chunk index is an extensible array (about 400 bytes per dataset even when
empty), 4096-row region chunks and a few uncompressed chunks far larger than their
rows. The copy writes every dataset anew with a fixed shape (a fixed-array or, when
the rows fit in one chunk, a single-chunk index), region columns in the chunk size of
non-SWMR archives, one chunk no larger than the rows for small columns, and plain
(uncompressed) datasets contiguous. Names, dtypes, filters, fill values and attributes
are kept: readers see the same archive (docs/format.md, "Crash safety").
"""
from __future__ import annotations

import numpy as np

from damo_pipe.archive import layout

#: rows copied per read/write (bounded memory for any archive size)
_COPY_ROWS = 1 << 20


def copy_compacted(src, dst):
    """Copy the open h5py file (or group) ``src`` into ``dst``: attributes, groups and
    every dataset rewritten as described in the module docstring."""
    import h5py
    for k, v in src.attrs.items():
        dst.attrs[k] = v
    for name in src:
        link = src.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            dst[name] = link          # soft/external links: as they are (none today)
            continue
        obj = src[name]
        if isinstance(obj, h5py.Group):
            copy_compacted(obj, dst.create_group(name))
        elif isinstance(obj, h5py.Dataset):
            _copy_dataset(obj, dst, name)
        else:                                         # committed datatypes
            src.copy(obj, dst, name=name)


def _chunk_rows(ds, n):
    """Rows per chunk of the copy of a filtered dataset with ``n`` rows."""
    rows = ds.chunks[0]
    if ds.parent.name.endswith("/regions"):
        rows = max(rows, layout.REGION_CHUNK_ROWS)   # a recording reads like a conversion
    return max(1, min(n, rows))


def _copy_dataset(ds, parent, name):
    """``ds`` rewritten into ``parent[name]`` (see the module docstring); datasets this
    does not apply to (scalars, variable-length types, empty filtered ones) are copied
    by HDF5 as they are."""
    import h5py
    from h5py import h5d, h5s
    shape = ds.shape
    dcpl = ds.id.get_create_plist()
    filtered = dcpl.get_nfilters() > 0
    plain_type = ds.dtype.kind in "biuf" and ds.dtype.fields is None
    if (not shape or not plain_type or h5py.check_vlen_dtype(ds.dtype) is not None
            or (filtered and (shape[0] == 0 or ds.chunks is None))):
        ds.parent.copy(ds, parent, name=name)
        return
    new = dcpl.copy()
    if filtered:
        new.set_chunk((_chunk_rows(ds, shape[0]),) + tuple(ds.chunks[1:]))
    else:
        new.set_layout(h5d.CONTIGUOUS)
    space = h5s.create_simple(shape, shape)
    out = h5py.Dataset(h5d.create(parent.id, name.encode(), ds.id.get_type(), space, dcpl=new))
    n = shape[0]
    step = max(1, _COPY_ROWS // max(1, int(np.prod(shape[1:], dtype=np.int64))))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        out[lo:hi] = ds[lo:hi]
    for k, v in ds.attrs.items():
        out.attrs[k] = v

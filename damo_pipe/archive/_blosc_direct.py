"""Read Blosc-compressed region columns chunk by chunk, decompressing in parallel.

Why: h5py serializes every HDF5 call (one library lock), so the Blosc filter runs on one
core even when the caller reads from several threads, and a row range that does not
start on a dataset chunk boundary decompresses the shared boundary chunk twice. Here
HDF5 only hands over the stored (compressed) bytes of each chunk
(``DatasetID.read_direct_chunk``, cheap), and ``blosc_decompress_ctx`` from
hdf5plugin's own Blosc library runs in worker threads without the GIL, straight into
the caller's array; the last partly used chunk of each column is kept for the next
read. The bytes are the ones HDF5's filter would produce (same library, same stored
buffer); anything unexpected (another filter, a chunk missing, a size mismatch, the
library not loadable) makes :meth:`BloscColumns.read` return False and the caller
falls back to ``read_direct``.
"""
from __future__ import annotations

import ctypes
import os
import threading

import numpy as np

BLOSC_FILTER_ID = 32001
#: blosc's own threads per call: we parallelize across chunks instead
_INTERNAL_THREADS = 1


def _blosc_library():
    """hdf5plugin's Blosc filter library (ctypes), loaded without importing hdf5plugin
    (its import loads and registers a dozen filter libraries: ~30 ms per command).
    Raises OSError when it is not there."""
    import importlib.util
    spec = importlib.util.find_spec("hdf5plugin")
    if spec is None or not spec.submodule_search_locations:
        raise OSError("hdf5plugin not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "plugins", "libh5blosc.so")
    return ctypes.CDLL(path)


def register_blosc_filter():
    """Make HDF5's Blosc filter (id 32001: the archive's lz4/zstd compressions)
    available, as hdf5plugin does for it, or by importing hdf5plugin when that fails.
    Idempotent (HDF5's filter table is process-wide)."""
    import h5py
    if h5py.h5z.filter_avail(BLOSC_FILTER_ID):
        return
    try:
        lib = _blosc_library()
        init = getattr(lib, "init_filter", None)
        if init is not None:
            init.argtypes = [ctypes.c_char_p]
            init.restype = ctypes.c_int
            if init(h5py.h5z.__file__.encode()) < 0:
                raise OSError("init_filter failed")
        lib.H5PLget_plugin_info.restype = ctypes.c_void_p
        h5py.h5z.register_filter(lib.H5PLget_plugin_info())
    except Exception:   # noqa: BLE001 - any doubt: the full registration
        import hdf5plugin  # noqa: F401
    if not h5py.h5z.filter_avail(BLOSC_FILTER_ID):
        import hdf5plugin  # noqa: F401,F811


def _load_blosc():
    """``(blosc_decompress_ctx, blosc_cbuffer_sizes)`` from hdf5plugin, or None."""
    try:
        lib = _blosc_library()
        dec = lib.blosc_decompress_ctx
        dec.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        dec.restype = ctypes.c_int
        sizes = lib.blosc_cbuffer_sizes
        sizes.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                          ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)]
        sizes.restype = None
        return dec, sizes
    except (OSError, AttributeError):
        return None


def blosc_only(dataset) -> bool:
    """True for a 1-D chunked dataset whose only filter is Blosc."""
    try:
        if dataset.chunks is None or len(dataset.shape) != 1:
            return False
        dcpl = dataset.id.get_create_plist()
        return dcpl.get_nfilters() == 1 and dcpl.get_filter(0)[0] == BLOSC_FILTER_ID
    except Exception:   # noqa: BLE001 - any doubt: use the normal path
        return False


class _Failed(Exception):
    pass


class BloscColumns:
    """Direct chunk reads of Blosc region columns for one reader (see module docstring).

    ``read(dataset, lo, hi, out)`` fills ``out[:hi - lo]`` with rows [lo, hi); the
    datasets of one call to :meth:`read_many` are decompressed by ``workers`` threads.
    """

    #: fewer chunks than this are decompressed in the caller's thread: handing a few
    #: chunks to the pool (and starting it) costs more than it saves (a 1-minute
    #: window of a day-long archive: 12 chunks, 4 ms inline against 8 ms in the pool)
    POOL_MIN_CHUNKS = 16

    def __init__(self, workers=2):
        self.workers = max(1, workers)
        self._funcs = None     # the Blosc functions, loaded by the first usable()
        self._funcs_loaded = False
        self._pool = None
        self._ok = {}          # dataset id -> usable
        self._tail = {}        # dataset id -> (chunk index, decompressed chunk array)
        self._tail_spare = {}  # dataset id -> the other of its two tail buffers
        # per worker thread: the compressed bytes and a scratch chunk, reused (fresh
        # buffers for every chunk cost a page fault per 4 KiB, ~0.1 s per 10M regions)
        self._scratch = threading.local()

    def usable(self, dataset):
        key = dataset.id.id
        ok = self._ok.get(key)
        if ok is None:
            if not self._funcs_loaded:   # caller's thread, before any worker runs
                self._funcs = _load_blosc()
                self._funcs_loaded = True
            ok = self._ok[key] = blosc_only(dataset) and self._funcs is not None
        return ok

    def read_many(self, jobs):
        """``jobs``: list of (dataset, lo, hi, out). Returns False (nothing promised
        about ``out``) when the caller must read them the normal way."""
        if not all(self.usable(job[0]) for job in jobs):
            return False
        groups = []     # one task list per column: one hand-off per column, not per chunk
        try:
            for d, lo, hi, out in jobs:
                tasks = self._plan(d, lo, hi, out)
                if tasks:
                    groups.append(tasks)
        except _Failed:
            return False
        if not groups:
            return True
        try:
            if self.workers == 1 or len(groups) == 1 or \
                    sum(map(len, groups)) < self.POOL_MIN_CHUNKS:
                for tasks in groups:
                    self._run_all(tasks)
            else:
                if self._pool is None:
                    from concurrent.futures import ThreadPoolExecutor
                    self._pool = ThreadPoolExecutor(self.workers,
                                                    thread_name_prefix="blosc-read")
                for f in [self._pool.submit(self._run_all, t) for t in groups]:
                    f.result()
        except _Failed:
            self._tail.clear()
            return False
        return True

    def _plan(self, d, lo, hi, out):
        """(dataset, chunk index, destination view, offset in chunk) per needed chunk."""
        if hi <= lo:
            return []
        csize = d.chunks[0]
        key = d.id.id
        tasks = []
        for c in range(lo // csize, (hi - 1) // csize + 1):
            c_lo = c * csize
            a, b = max(lo, c_lo), min(hi, c_lo + csize)
            dest = out[a - lo:b - lo]
            tail = self._tail.get(key)
            if tail is not None and tail[0] == c:
                dest[:] = tail[1][a - c_lo:b - c_lo]
                continue
            whole = (a == c_lo and b == c_lo + csize)
            tasks.append((d, key, c, csize, dest, a - c_lo, whole, c == (hi - 1) // csize))
        return tasks

    def _run_all(self, tasks):
        for t in tasks:
            self._run(t)

    def _run(self, task):
        d, key, c, csize, dest, off, whole, last = task
        dec, sizes = self._funcs
        itemsize = dest.dtype.itemsize
        nbytes = csize * itemsize
        raw_buf = self._raw_buffer(nbytes)
        try:
            try:
                mask, raw = d.id.read_direct_chunk((c * csize,), out=raw_buf)
            except (TypeError, ValueError):   # stored bigger than the buffer; old h5py
                mask, raw = d.id.read_direct_chunk((c * csize,))
        except Exception as e:   # noqa: BLE001 - unallocated chunk, SWMR race, ...
            raise _Failed(str(e))
        if isinstance(raw, (bytes, bytearray)):
            raw_buf = np.frombuffer(raw, np.uint8)
        n_raw = len(raw)
        if whole:
            target = dest
        elif last:
            target = self._tail_buffer(key, csize, dest.dtype)
        else:
            target = self._chunk_scratch(csize, dest.dtype)
        if not target.flags.c_contiguous:
            raise _Failed("non-contiguous destination")
        if mask & 1:
            # the optional Blosc filter was skipped for this chunk: stored as is
            if n_raw != nbytes:
                raise _Failed("raw chunk size")
            target[:] = raw_buf[:nbytes].view(dest.dtype)
        else:
            n_out = ctypes.c_size_t()
            n_comp = ctypes.c_size_t()
            block = ctypes.c_size_t()
            if n_raw < 16:
                raise _Failed("short blosc header")
            src = raw_buf.ctypes.data
            sizes(src, ctypes.byref(n_out), ctypes.byref(n_comp), ctypes.byref(block))
            if n_out.value != nbytes or n_comp.value > n_raw:
                raise _Failed("blosc sizes")
            if dec(src, target.ctypes.data, nbytes, _INTERNAL_THREADS) != nbytes:
                raise _Failed("blosc_decompress_ctx")
        if not whole:
            dest[:] = target[off:off + len(dest)]
            if last:
                self._tail[key] = (c, target)

    def _raw_buffer(self, nbytes):
        s = self._scratch
        buf = getattr(s, "raw", None)
        if buf is None or len(buf) < nbytes + 4096:
            buf = s.raw = np.empty(nbytes + 4096, np.uint8)   # + Blosc's header overhead
        return buf

    def _chunk_scratch(self, csize, dtype):
        s = self._scratch
        buf = getattr(s, "chunk", None)
        if buf is None or len(buf) < csize * dtype.itemsize:
            buf = s.chunk = np.empty(csize * dtype.itemsize, np.uint8)
        return buf[:csize * dtype.itemsize].view(dtype)

    def _tail_buffer(self, key, csize, dtype):
        """The one of the column's two tail buffers not holding the current tail."""
        spare = self._tail_spare.get(key)
        current = self._tail.get(key)
        if spare is None or len(spare) != csize or spare.dtype != dtype:
            spare = np.empty(csize, dtype)
        self._tail_spare[key] = current[1] if current is not None else None
        return spare

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self._tail.clear()
        self._tail_spare.clear()


# ---------------------------------------------------------------- writing

#: Blosc compressor codes (the filter's 7th parameter) -> names for blosc_compress_ctx
_COMPNAMES = {0: b"blosclz", 1: b"lz4", 2: b"lz4hc", 3: b"snappy", 4: b"zlib", 5: b"zstd"}
#: whole chunks per compression job (a batch of 256k rows: 4 chunks of 64k rows)
_CHUNKS_PER_JOB = 2
#: Blosc's largest type size (larger ones are compressed as bytes, as the filter does)
_BLOSC_MAX_TYPESIZE = 255


def _load_blosc_compress():
    """``blosc_compress_ctx`` from hdf5plugin's Blosc library, or None."""
    try:
        f = _blosc_library().blosc_compress_ctx
    except (OSError, AttributeError):
        return None
    f.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p,
                  ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                  ctypes.c_int]
    f.restype = ctypes.c_int
    return f


def _filter_params(dataset):
    """(typesize, clevel, shuffle, compressor name) of a Blosc-only 1-D dataset, as the
    HDF5 filter uses them, or None."""
    if not blosc_only(dataset):
        return None
    try:
        cd = dataset.id.get_create_plist().get_filter(0)[2]
        typesize, chunk_bytes, clevel, shuffle = cd[2], cd[3], cd[4], cd[5]
        compname = _COMPNAMES.get(cd[6] if len(cd) > 6 else 0)
    except Exception:   # noqa: BLE001 - any doubt: the normal path
        return None
    if compname is None or chunk_bytes != dataset.chunks[0] * dataset.dtype.itemsize:
        return None
    if typesize > _BLOSC_MAX_TYPESIZE:
        typesize = 1
    return typesize, clevel, shuffle, compname


class _Column:
    __slots__ = ("dataset", "params", "csize", "rows", "tail", "tail_rows", "fill", "mark")

    def __init__(self, dataset, params):
        self.dataset = dataset
        self.params = params
        self.csize = dataset.chunks[0]
        self.rows = 0          # rows appended (on disk or in the tail)
        self.tail = None       # the last, partly filled chunk (not on disk since append)
        self.tail_rows = 0
        fill = dataset.fillvalue
        self.fill = 0 if fill is None else fill
        self.mark = None       # (rows, copy of the tail's rows then): see BloscChunkWriter.mark


class BloscChunkWriter:
    """Appends to new 1-D Blosc datasets chunk by chunk: whole chunks are compressed in
    ``workers`` threads (``blosc_compress_ctx`` of hdf5plugin's own library, without
    the GIL, with the filter's parameters: the stored bytes are the ones HDF5's Blosc
    filter makes of the chunk) and stored with ``write_direct_chunk``; the last, partly
    filled chunk of a column is kept in memory until :meth:`write_tails` (a flush)
    stores it padded with the fill value, as HDF5 stores a partial chunk.

    h5py serializes HDF5 calls, so HDF5's own filter compresses on one core; here only
    the cheap direct-chunk writes go through HDF5. A column must be appended from its
    row 0 through this writer only (:meth:`usable` on an empty dataset); its dataset is
    resized by the caller before :meth:`append`.
    """

    def __init__(self, workers=2):
        self.workers = max(1, workers)
        self._compress = None
        self._loaded = False
        self._cols = {}       # dataset name -> _Column (one writer per file)
        self._jobs = []       # (column, future or result: [(chunk index, mask, bytes)])
        self._pool = None
        self._scratch = threading.local()

    def usable(self, dataset):
        """Whether ``dataset`` (empty, Blosc only, 1-D) can be appended to here."""
        key = dataset.name
        if key in self._cols:
            return True
        if not self._loaded:
            self._compress = _load_blosc_compress()
            self._loaded = True
        if self._compress is None or dataset.shape[0] != 0:
            return False
        params = _filter_params(dataset)
        if params is None:
            return False
        self._cols[key] = _Column(dataset, params)
        return True

    def rows(self, dataset):
        col = self._cols.get(dataset.name)
        return None if col is None else col.rows

    def append(self, dataset, values):
        """Queue ``values`` (1-D, the dataset's dtype) after the column's rows; whole
        chunks go to the workers. ``values`` must stay unchanged until :meth:`wait`."""
        col = self._cols[dataset.name]
        values = np.ascontiguousarray(values, dtype=dataset.dtype)
        n, csize, pos = len(values), col.csize, 0
        whole = []      # (chunk index, rows): one job per call, not per chunk
        if col.tail_rows:
            k = min(csize - col.tail_rows, n)
            col.tail[col.tail_rows:col.tail_rows + k] = values[:k]
            col.tail_rows += k
            pos = k
            if col.tail_rows == csize:
                whole.append(((col.rows + k) // csize - 1, col.tail))
                col.tail, col.tail_rows = None, 0
        first = (col.rows + pos) // csize
        while n - pos >= csize:
            whole.append((first, values[pos:pos + csize]))
            first += 1
            pos += csize
        if whole:
            self._submit(col, whole)
        if pos < n:
            if col.tail is None:
                col.tail = np.empty(csize, dataset.dtype)
            col.tail[:n - pos] = values[pos:]
            col.tail_rows = n - pos
        col.rows += n

    def mark(self, dataset):
        """Remember the column's partly filled last chunk as it is now (a streamed
        snapshot starts here), so that :meth:`rewind` to this row needs no read back:
        libhdf5 forgets, until the file is closed, that a chunk written here was stored
        raw (filter mask 1), and its filter then fails on that chunk's bytes."""
        col = self._cols[dataset.name]
        col.mark = (col.rows, None if not col.tail_rows else col.tail[:col.tail_rows].copy())

    def rewind(self, dataset, rows):
        """Take the column back to its first ``rows`` rows (a streamed snapshot dropped):
        queued chunks are stored first; the chunk that holds row ``rows`` becomes the
        tail again (from :meth:`mark` when it marked that row, else read back when it is
        on disk). The caller resizes the dataset."""
        col = self._cols[dataset.name]
        if rows >= col.rows:
            return
        self.wait()
        csize = col.csize
        kept_start = col.rows - col.tail_rows     # first row of the tail
        lo = rows - rows % csize                  # first row of the chunk holding ``rows``
        if rows >= kept_start:
            col.tail_rows = rows - kept_start
        elif col.mark is not None and col.mark[0] == rows:
            tail = np.empty(csize, dataset.dtype)
            saved = col.mark[1]
            if saved is not None:
                tail[:len(saved)] = saved
            col.tail, col.tail_rows = tail, rows - lo
        else:
            tail = np.empty(csize, dataset.dtype)
            if rows > lo:
                tail[:rows - lo] = dataset[lo:rows]
            col.tail, col.tail_rows = tail, rows - lo
        col.rows = rows

    def _submit(self, col, chunks):
        """Compress ``chunks`` ((index, rows) of ``col``) in a worker, in pieces of a
        few chunks (the workers share a column's chunks; few hand-offs)."""
        if self.workers == 1:
            self._jobs.append((col, self._compress_chunks(col, chunks)))
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="blosc-write")
        for i in range(0, len(chunks), _CHUNKS_PER_JOB):
            self._jobs.append((col, self._pool.submit(self._compress_chunks, col,
                                                      chunks[i:i + _CHUNKS_PER_JOB])))

    def _compress_chunks(self, col, chunks):
        return [(index,) + self._compress_chunk(col, data) for index, data in chunks]

    def _compress_chunk(self, col, data):
        """(filter mask, stored bytes) of one whole chunk, as HDF5's filter stores it:
        compressed into at most the chunk's size, else stored as is (mask bit 0 set:
        the optional filter skipped)."""
        typesize, clevel, shuffle, compname = col.params
        nbytes = data.nbytes
        # into this thread's scratch buffer, then only the compressed bytes copied out
        # (a fresh chunk-sized buffer per chunk costs a page fault per 4 KiB)
        out = getattr(self._scratch, "out", None)
        if out is None or len(out) < nbytes:
            out = self._scratch.out = np.empty(nbytes, np.uint8)
        got = self._compress(clevel, shuffle, typesize, nbytes, data.ctypes.data,
                             out.ctypes.data, nbytes, compname, 0, 1)
        if got <= 0:
            return 1, data.view(np.uint8).tobytes()
        return 0, out[:got].tobytes()

    def wait(self):
        """Store every queued chunk (in order; HDF5 calls in this thread only)."""
        jobs, self._jobs = self._jobs, []
        for i, (col, job) in enumerate(jobs):
            try:
                write = col.dataset.id.write_direct_chunk
                csize = col.csize
                for index, mask, data in (job.result() if hasattr(job, "result") else job):
                    write((index * csize,), data, filter_mask=mask)
            except BaseException:
                for _, j in jobs[i + 1:]:
                    if hasattr(j, "cancel"):
                        j.cancel()
                raise

    def write_tails(self):
        """Store every column's partly filled last chunk (padded with its fill value);
        later appends keep filling it and store it again."""
        for col in self._cols.values():
            if col.tail_rows:
                col.tail[col.tail_rows:] = col.fill
                self._submit(col, [(col.rows // col.csize, col.tail.copy())])
        self.wait()

    def close(self):
        """Drop what is queued (after an error) and stop the workers."""
        for _, j in self._jobs:
            if hasattr(j, "cancel"):
                j.cancel()
        self._jobs = []
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self._cols.clear()

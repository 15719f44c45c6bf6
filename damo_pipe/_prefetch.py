"""Thread helpers: iterate a generator in a background thread, a bounded number of
items ahead; how many CPUs this process may use."""
import os
import queue
import threading


def usable_cpus():
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def prefetched(iterable, depth=1):
    """Iterate ``iterable`` in a background thread, up to ``depth`` items ahead.

    I/O and decompression of the next item (h5py and zlib release the GIL) then overlap
    with the nogil kernels working on the current one. Exceptions of the producer are
    raised in the consumer; closing the generator stops the producer.
    """
    q = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()
    it = iter(iterable)

    def put(item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in it:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as e:  # forwarded to the consumer
            put((done, e))

    t = threading.Thread(target=work, name="damo-pipe-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item, err = q.get()
            if item is done:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        t.join()
        close = getattr(it, "close", None)
        if close is not None:
            close()

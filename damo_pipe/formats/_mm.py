"""mmap helpers: drop already-parsed pages from the process's resident set."""
import mmap

_PAGE = mmap.PAGESIZE


class PageReleaser:
    """Calls madvise(MADV_DONTNEED) on the parsed prefix of a read-only mapping so that
    streaming a huge file does not grow the resident set (the pages stay in the page
    cache).  No-op where madvise is unavailable."""

    def __init__(self, mm, step=64 << 20):
        self.mm = mm
        self.done = 0
        self.step = step
        self.ok = hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED")

    def release_upto(self, pos):
        if not self.ok:
            return
        end = (pos // _PAGE) * _PAGE
        if end - self.done >= self.step:
            try:
                self.mm.madvise(mmap.MADV_DONTNEED, self.done, end - self.done)
            except (OSError, ValueError):
                self.ok = False
                return
            self.done = end

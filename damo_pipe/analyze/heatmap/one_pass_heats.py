"""Heats of the guide's contiguous regions gathered during the guide scan itself
(Cython engine), so that ``hottest`` needs no second pass over the record."""
from __future__ import annotations

import numpy as np


class OnePassHeats:
    """Heats of the final contiguous regions, gathered during the guide scan.

    heats(C) = Σ w over regions touching C (closed) with w = size * samples, samples != 0
             = F(C.end) - G(C.start),  F(x) = Σ_{start <= x} w,  G(x) = Σ_{end < x} w
    (start <= end). Gaps are only narrowed once initialised, so every final query point
    lies in an initial gap [a, b] (or is lowest/highest): per gap we keep Σ w below a
    (kernel ``heats_scan``, 128-bit) and the (boundary, w) pairs inside [a, b]. Regions
    seen before the gaps exist are stashed (bounded). ``ok`` turns False when an
    assumption fails (address 0, start > end, too many gaps, dropped stash); the caller
    then runs damo's exact second pass.
    """

    MAX_GAPS = 64
    MAX_STASH = 1 << 18

    def __init__(self, kernels):
        self.K = kernels          # the compiled module (heats_scan)
        self.ok = True
        self.g0 = None
        self.stash = []
        self.stash_n = 0
        self.stash_dropped = False
        self.total = 0
        self.max_start = 0
        self.in_s = self.in_e = None

    def _scan(self, st, en, sm, count_total=True):
        idx = np.empty(len(st), np.int64)
        t_hi, t_lo, mx, n_in, bad = self.K.heats_scan(st, en, sm, self.ga, self.gb, self.bs_hi,
                                                      self.bs_lo, self.be_hi, self.be_lo, idx)
        if bad:
            self.ok = False
            return
        if count_total:
            self.total += int(t_hi) * (1 << 64) + int(t_lo)
            self.max_start = max(self.max_start, int(mx))
        if n_in and self.g0:
            idx = idx[:n_in]
            s_i, e_i, sm_i = st[idx], en[idx], sm[idx]
            size = e_i - s_i
            nz = sm_i != 0
            if not nz.any():
                return
            s_i, e_i, size, sm_i = s_i[nz], e_i[nz], size[nz], sm_i[nz]
            # int64 products and sums must stay exact
            if int(size.max()) * int(np.abs(sm_i).max()) * len(size) >= (1 << 62):
                self.ok = False
                return
            w_i = size.astype(np.int64) * sm_i
            for g, (ga, gb) in enumerate(self.g0):
                a, b = np.uint64(ga), np.uint64(gb)
                m = (s_i >= a) & (s_i <= b)
                if m.any():
                    self.in_s[g].append((s_i[m], w_i[m]))
                m = (e_i >= a) & (e_i <= b)
                if m.any():
                    self.in_e[g].append((e_i[m], w_i[m]))

    def _set_gaps(self, gaps):
        self.g0 = [(int(a), int(b)) for a, b in gaps]
        G = len(self.g0)
        self.ga = np.array([a for a, _ in self.g0], np.uint64)
        self.gb = np.array([b for _, b in self.g0], np.uint64)
        self.bs_hi = np.zeros(G, np.int64)
        self.bs_lo = np.zeros(G, np.uint64)
        self.be_hi = np.zeros(G, np.int64)
        self.be_lo = np.zeros(G, np.uint64)
        self.in_s = [[] for _ in range(G)]
        self.in_e = [[] for _ in range(G)]

    def feed(self, chunk, gaps):
        if not self.ok:
            return
        r = chunk.regions
        if self.g0 is None and gaps:
            if len(gaps) > self.MAX_GAPS or self.stash_dropped:
                self.ok = False
                return
            self._set_gaps(gaps)
            stash, self.stash = self.stash, []
            for st, en, sm in stash:
                self._scan(st, en, sm, count_total=False)
        if self.g0 is None:
            self._set_gaps([])
            self._scan(r.start, r.end, r.nr_accesses)
            self.g0 = None
            if self.ok and not self.stash_dropped:
                nz = r.nr_accesses != 0
                self.stash.append((r.start[nz], r.end[nz], r.nr_accesses[nz]))
                self.stash_n += int(nz.sum())
                if self.stash_n > self.MAX_STASH:
                    self.stash, self.stash_dropped = [], True
            return
        self._scan(r.start, r.end, r.nr_accesses)

    def _gap_of(self, x):
        for i, (a, b) in enumerate(self.g0):
            if a <= x <= b:
                return i
        return None

    def _F(self, x, guide):
        if x == guide.highest_addr and self.max_start <= x:
            return self.total
        i = self._gap_of(x)
        if i is None:
            raise LookupError
        v = int(self.bs_hi[i]) * (1 << 64) + int(self.bs_lo[i])
        return v + sum(int(w[b <= np.uint64(x)].sum()) for b, w in self.in_s[i])

    def _G(self, x, guide):
        if x == guide.lowest_addr:
            return 0             # no address 0: lowest is the smallest start <= every end
        i = self._gap_of(x)
        if i is None:
            raise LookupError
        v = int(self.be_hi[i]) * (1 << 64) + int(self.be_lo[i])
        return v + sum(int(w[b < np.uint64(x)].sum()) for b, w in self.in_e[i])

    def heats(self, guide):
        """Heats per contiguous region, or None when the exact pass is needed."""
        if not self.ok:
            return None
        regs = guide.regions()
        if self.g0 is None:
            if len(regs) != 1:
                return None
            self.g0 = []
        try:
            return [self._F(e, guide) - self._G(s, guide) for s, e in regs]
        except LookupError:
            return None

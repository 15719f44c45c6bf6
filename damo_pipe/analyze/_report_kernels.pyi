"""Type stubs of _report_kernels.pyx (heatmap, guides, wss, adjust; Ryu float repr)."""
import numpy as np

def heatmap_accumulate(heat: np.ndarray, ptime: np.ndarray, ptime_next: np.ndarray,
                       paddr: np.ndarray, snap_start: np.ndarray, snap_end: np.ndarray,
                       snap_start_float: np.ndarray, region_offset: np.ndarray,
                       nr_regions: np.ndarray, rstart: np.ndarray, rend: np.ndarray,
                       samples: np.ndarray, age: np.ndarray, passed: np.ndarray,
                       snap_aggr_us: np.ndarray, has_intervals: bool, aggr_ns: float,
                       aggr_float: bool, t_start: float, time_unit: float, tu_float: bool,
                       a_start: int, addr_unit: int, a_map_end: int, pts: float,
                       df_passed: bool, has_last: bool, last_end: float,
                       row_lo: int = ..., row_hi: int = ...) -> tuple[bool, float]: ...

def format_raw_text(heat: np.ndarray, tcol: list[bytes], acol: list[bytes]) -> bytearray: ...

def guide_scan(rstart: np.ndarray, rend: np.ndarray, region_offset: np.ndarray,
               nr_regions: np.ndarray, gaps: np.ndarray, nr_gaps: int, lowest: int,
               highest: int, first_snapshot: int = ...) -> tuple[int, int, int]: ...

def guide_heats(rstart: np.ndarray, rend: np.ndarray, samples: np.ndarray,
                cstart: np.ndarray, cend: np.ndarray, c_sorted: bool,
                heat_hi: np.ndarray, heat_lo: np.ndarray, touched: np.ndarray) -> None: ...

class RegionMerger:
    def __init__(self) -> None: ...
    def add_snapshot(self, start: np.ndarray, end: np.ndarray, samples: np.ndarray,
                     age: np.ndarray, passed: np.ndarray, lo: int, hi: int) -> None: ...
    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                              np.ndarray]: ...
    def __len__(self) -> int: ...

def window_wss(region_offset: np.ndarray, nr_regions: np.ndarray, start: np.ndarray,
               end: np.ndarray, samples: np.ndarray, acc_thres: int, sz_thres: int,
               out: np.ndarray) -> None: ...

def heats_scan(start: np.ndarray, end: np.ndarray, samples: np.ndarray, ga: np.ndarray,
               gb: np.ndarray, below_s_hi: np.ndarray, below_s_lo: np.ndarray,
               below_e_hi: np.ndarray, below_e_lo: np.ndarray, in_gap_idx: np.ndarray
               ) -> tuple[int, int, int, int, bool]: ...

def float_repr(x: float) -> bytes: ...

def float_repr_many(xs: np.ndarray) -> bytes: ...

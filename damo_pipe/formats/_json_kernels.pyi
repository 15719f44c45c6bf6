"""Type stubs of _json_kernels.pyx (damo JSON region reader and writer)."""
import enum
from typing import Any

import numpy as np

class JsonScan(enum.IntEnum):
    J_DONE = 0
    J_MORE = 1
    J_UNUSUAL = 2
    J_FULL = 3

def json_regions_scan(buf: Any, pos: int, count: int, out_start: np.ndarray,
                      out_end: np.ndarray, out_acc: np.ndarray, out_age: np.ndarray,
                      out_passed: np.ndarray, mode: int) -> tuple[int, int, int, int]: ...

def json_regions_text(start: np.ndarray, end: np.ndarray, acc: np.ndarray, age: np.ndarray,
                      passed: np.ndarray, sz_texts: list[str | None] | None = ...) -> bytes: ...

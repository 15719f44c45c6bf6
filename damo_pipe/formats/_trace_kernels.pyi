"""Type stubs of _trace_kernels.pyx (trace text tokenizer and row grouping)."""
from typing import Any

import numpy as np

class _Rows:
    end_a: np.ndarray
    tid_a: np.ndarray
    nr_a: np.ndarray
    s_a: np.ndarray
    e_a: np.ndarray
    acc_a: np.ndarray
    age_a: np.ndarray
    lines_a: np.ndarray
    hasage_a: np.ndarray
    n: int
    nlines: int
    ndamaged: int
    first_damaged: int
    def __init__(self, cap: int, lenient: bool = ...) -> None: ...
    def run(self, data: Any, lo: int, hi: int) -> None: ...
    def error(self, data: Any, path: Any, line0: int) -> Exception | None: ...
    def side_lines(self) -> list[tuple[int, int, int]]: ...

class _Group:
    scratch: list[Any] | None
    def __init__(self, st: Any) -> None: ...
    def _alloc(self, cap: int, keep: int) -> None: ...
    def store(self, st: Any) -> None: ...

def set_parallel(on: bool) -> bool: ...

def _side_lines(st: Any, rr: _Rows, buf: Any, line0: int, path: Any,
                below: int | None) -> tuple[int, int]: ...

def trace_scan(data: Any, st: Any, final: bool, path: Any = ...
               ) -> tuple[int, dict[str, np.ndarray]]: ...

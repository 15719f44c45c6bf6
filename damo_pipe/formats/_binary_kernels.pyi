"""Type stubs of _binary_kernels.pyx (legacy binary record scanner)."""
from typing import Any

import numpy as np

def binary_scan(buf: Any, pos: int, version: int, max_regions: int, path: Any = ...
                ) -> tuple[int, list[int], list[int], list[int], list[int],
                           np.ndarray, np.ndarray, np.ndarray]: ...

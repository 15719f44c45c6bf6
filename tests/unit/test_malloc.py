"""damo_pipe._malloc: glibc's thresholds raised once, for the streaming conversions."""
import ctypes
import platform
import subprocess
import sys

import pytest

from damo_pipe import _malloc


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_thresholds_set_once():
    # a fresh interpreter: mallinfo2 shows the heap kept after a big block is freed
    code = r"""
import ctypes
from damo_pipe._malloc import retain_freed_memory
class MI(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MI
def mmapped_after_alloc():
    buf = ctypes.create_string_buffer(8 << 20)   # 8 MiB: above glibc's default threshold
    return libc.mallinfo2().hblkhd >= (8 << 20)
before = mmapped_after_alloc()
assert retain_freed_memory() and retain_freed_memory()
print(before, mmapped_after_alloc())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "False"]   # mmapped before, from the heap after


def test_not_glibc_is_a_no_op(monkeypatch):
    monkeypatch.setattr(_malloc.sys, "platform", "darwin")
    assert _malloc.retain_freed_memory() is False
    monkeypatch.setattr(_malloc.sys, "platform", "linux")

    def no_libc(_name):
        raise OSError("no libc")
    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert _malloc.retain_freed_memory() is False

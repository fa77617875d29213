"""Process tuning (`service.tuning`): large blocks keep mappings of their own after start-up tuning."""

from __future__ import annotations

import subprocess
import sys

# In a fresh interpreter: free a 4 MB block, then allocate a 1 MB one; print whether the 1 MB block
# got a mapping of its own (glibc's `mallinfo2().hblkhd`, bytes in such mappings, grows by it).
_PROBE = """
import ctypes, sys
from service.tuning import tune_allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    assert tune_allocator()
big = bytearray(4 << 20)
del big  # glibc's default: this raises the mapping threshold to 4 MB
before = libc.mallinfo2().hblkhd
block = bytearray(1 << 20)
print(libc.mallinfo2().hblkhd - before >= 1 << 20)
"""


def _own_mapping(mode: str) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    ).stdout.strip()
    return out == "True"


def test_after_tuning_a_large_block_gets_its_own_mapping_even_after_a_larger_one_was_freed() -> None:
    assert not _own_mapping("default")  # glibc's dynamic threshold: from the heap
    assert _own_mapping("tuned")  # fixed threshold: returned to the system when freed

import subprocess
import sys

import pytest

from asr.training.allocator import glibc

# in a fresh interpreter: mmapped blocks (mallinfo2.hblks) while an 8 MiB block is held, with or without the call
PROBE = """
import ctypes, sys
from asr.training.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
libc = ctypes.CDLL("libc.so.6")
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
before = libc.mallinfo2().hblks
block = libc.malloc(8 << 20)
print(applied, libc.mallinfo2().hblks - before)
libc.free(ctypes.c_void_p(block))
"""


def mmapped_blocks(mode: str) -> list[str]:
    probe = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return probe.stdout.split()


@pytest.mark.skipif(glibc() is None or not hasattr(glibc(), "mallinfo2"), reason="needs glibc 2.33+")
def test_keep_freed_memory_serves_large_blocks_from_the_heap():
    assert mmapped_blocks("default") == ["None", "1"]  # glibc's own threshold (128 KiB at start): mmap
    assert mmapped_blocks("keep") == ["True", "0"]


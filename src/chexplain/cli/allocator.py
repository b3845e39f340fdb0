"""Keep freed memory for reuse on Linux/glibc CPUs, for the ``chexplain`` program.

glibc's ``malloc`` hands the top of the heap back to the kernel whenever more than its trim
threshold (at most 64 MB) lies free there, so every large tensor that a forward, a backward or
a relevance pass allocates anew is faulted in again page by page. On a 2-core CPU that was a
fifth to a third of LRP's time on ResNet-50 at batch 2 (40,000 page faults per explanation) and
a tenth of forward + backward. :func:`retain_freed_memory` raises the trim threshold so that
the process keeps what it freed (its resident size stays at its peak) and fixes the mmap
threshold at glibc's own largest dynamic value (32 MB), which the first call would otherwise
disable. It is what ``MALLOC_TRIM_THRESHOLD_`` / ``MALLOC_MMAP_THRESHOLD_`` do, and what
PyTorch's CPU performance guide gets from jemalloc or tcmalloc.

The ``chexplain`` program calls it at start; the Python API never does (the process is the
caller's). Set ``CHEXPLAIN_MALLOC=default`` to keep glibc's behaviour; it is also left alone
where ``MALLOC_*`` variables or a preloaded allocator are set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: freed heap memory kept for reuse
TRIM_THRESHOLD = 1 << 30
#: glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems: blocks above it are mapped per call
MMAP_THRESHOLD = 32 << 20
_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def retain_freed_memory() -> bool:
    """Apply the two ``mallopt`` settings; True if applied (Linux with glibc, not opted out)."""
    if not sys.platform.startswith("linux") or os.environ.get("CHEXPLAIN_MALLOC", "") == "default":
        return False
    if any(k in os.environ for k in _ENV) or any(a in os.environ.get("LD_PRELOAD", "")
                                                 for a in ("jemalloc", "tcmalloc", "mimalloc")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


#: glibc's default trim threshold (128 KiB)
DEFAULT_TRIM_THRESHOLD = 128 << 10


def return_freed_memory() -> bool:
    """Give freed memory back to the system again (glibc's default trim threshold): for a
    long-running process that computes little, such as ``chexplain view``'s server, whose
    resident size should follow what it holds, not its peak. True if applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD))

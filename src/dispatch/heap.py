"""Keep freed memory in the process's heap, so that the arrays a tick allocates reuse pages already mapped.

A dispatch tick and a simulated tick allocate and free arrays of a few megabytes each (gathered rows, compacted
routes, candidate pairs). glibc's ``malloc`` serves a block above its mmap threshold with a fresh ``mmap`` and
returns it with ``munmap`` when freed, and gives the top of the heap back to the kernel once more than its trim
threshold is free. Either way the next tick touches new pages: one page fault, and a page the kernel zeroes, per
4 KB written. Measured (benchmarks/RESULTS.md, "Simulator, session 6"): gathering 58,000 evaluation rows of
eight 400,000 x 12 arrays, as the simulator does every tick on a full shard, took 26 ms into fresh arrays and
6 ms once the heap kept its pages.

``keep_heap`` raises both thresholds with ``mallopt`` (glibc only; elsewhere it does nothing). The process then
keeps up to ``trim_threshold`` bytes of free heap instead of returning them, which is its peak memory anyway: the
pages were in use a moment before. Blocks above ``mmap_threshold`` (glibc allows at most 32 MiB) still get their
own mappings, so large, long-lived arrays such as an order log are unaffected.
"""

from __future__ import annotations

import ctypes
import platform
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
MIB = 1 << 20

_applied: tuple[int, int, int] | None = None


def keep_heap(mmap_threshold: int = 32 * MIB, trim_threshold: int = 256 * MIB, top_pad: int = 64 * MIB) -> bool:
    """Set glibc's mmap threshold, trim threshold and top pad (bytes) for this process; True when applied, False
    where the C library is not glibc. Idempotent; a forked child inherits the setting."""
    global _applied
    if mmap_threshold < 0 or trim_threshold < 0 or top_pad < 0:
        raise ValueError("keep_heap: thresholds must be >= 0 bytes")
    if mmap_threshold > 32 * MIB:
        raise ValueError("keep_heap: glibc takes an mmap threshold of at most 32 MiB")
    key = (mmap_threshold, trim_threshold, top_pad)
    if _applied == key:
        return True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    settings = ((M_MMAP_THRESHOLD, mmap_threshold), (M_TRIM_THRESHOLD, trim_threshold), (M_TOP_PAD, top_pad))
    ok = all(libc.mallopt(param, value) == 1 for param, value in settings)
    if ok:
        _applied = key
    return ok

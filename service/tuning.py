"""Process-wide memory tuning for long runs: the garbage collector's thresholds and handing freed
memory back to the system. Entry points call `tune_gc()` once at start-up
(`service.entrypoints.process.tune_process`); the engine calls `release_free_memory()` during a run.
"""

from __future__ import annotations

import ctypes
import gc
from typing import Any

__all__ = ["GC_THRESHOLDS", "MMAP_THRESHOLD", "release_free_memory", "tune_allocator", "tune_gc"]

# The cyclic garbage collector, tuned for runs (docs/performance.md). A page parses into some 30,000
# container objects that live until the page is diffed, so with the default thresholds (700, 10, 10)
# they are promoted to the oldest generation and full collections over the whole heap come every
# other page: a third of a run's CPU. A first young collection after 50,000 net allocations lets a
# page die young; `gc.freeze()` takes what exists after start-up (modules, settings, clients) out of
# every collection. Cost: ~10 MB more peak RSS.
GC_THRESHOLDS = (50_000, 10, 10)

# glibc serves a block of at least this size from a mapping of its own, returned to the system when
# freed. Its default threshold is dynamic: the first freed 1 MB page body raises it to that size, and
# from then on every page body, packed record buffer and table comes from the main heap, where the
# long-lived blocks placed between them over a run (the duplicate tables, SQLite's page cache) keep
# the heap's high-water mark rising with the size of the client. A fixed threshold disables that.
# Measured with `bench/memory_probe.py` (first sync, same session, machine shared, together with the
# fixed set of lookup statements in `service/snapshot/store.py`): peak RSS 166.7 -> 162.5 MB at
# 100,000 and 198.6 -> 190.5 MB at 1,000,000 customers; worker CPU unchanged (11.9 / 11.4 s, 113 / 111 s).
MMAP_THRESHOLD = 256 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt parameters (malloc.h)

_gc_tuned = False
_allocator_tuned = False
_malloc_trim: Any = None


def tune_gc() -> None:
    """Freeze what exists now and raise the young generation's threshold (once per process)."""
    global _gc_tuned
    if not _gc_tuned:
        _gc_tuned = True
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)


def tune_allocator() -> bool:
    """glibc only (once per process): large blocks in mappings of their own (`MMAP_THRESHOLD`).
    False where that is not available."""
    global _allocator_tuned
    if _allocator_tuned:
        return True
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    _allocator_tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    return _allocator_tuned


def release_free_memory() -> None:
    """`malloc_trim(0)` on glibc (a no-op elsewhere). Pages of parsed customers are freed by the
    thousand, but the C allocator keeps most of what they leave behind (small long-lived objects pin
    its heap), so without this the RSS grows with the size of the client (docs/performance.md)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)

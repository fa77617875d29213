"""Process-wide memory tuning for long runs: the garbage collector's thresholds and handing freed
memory back to the system. Entry points call `tune_gc()` once at start-up
(`service.entrypoints.process.tune_process`); the engine calls `release_free_memory()` during a run.
"""

from __future__ import annotations

import ctypes
import gc
from typing import Any

__all__ = ["GC_THRESHOLDS", "release_free_memory", "tune_gc"]

# The cyclic garbage collector, tuned for runs (docs/performance.md). A page parses into some 30,000
# container objects that live until the page is diffed, so with the default thresholds (700, 10, 10)
# they are promoted to the oldest generation and full collections over the whole heap come every
# other page: a third of a run's CPU. A first young collection after 50,000 net allocations lets a
# page die young; `gc.freeze()` takes what exists after start-up (modules, settings, clients) out of
# every collection. Cost: ~10 MB more peak RSS.
GC_THRESHOLDS = (50_000, 10, 10)

_gc_tuned = False
_malloc_trim: Any = None


def tune_gc() -> None:
    """Freeze what exists now and raise the young generation's threshold (once per process)."""
    global _gc_tuned
    if not _gc_tuned:
        _gc_tuned = True
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)


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

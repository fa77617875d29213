"""The customerNos one read has seen, kept as 64-bit hashes in compact tables (`SeenKeys`).

A Python `set` of a million `int` hashes costs ~64 MB (a 32 MB hash table plus 32 MB of int
objects) and grows with the client. Here the hashes live unboxed and sorted in `array('q')`s:
4,096 shards chosen by the hash's low 12 bits, each a sorted array searched with `bisect` and
grown by `array.insert` (a shard holds ~250 hashes at a million keys, so an insert moves ~1 KB).
That is 8 bytes a key plus the arrays' own slack (~6 %) and 4,096 array headers (~0.3 MB):
~8.4 MB for a million, where the open-addressing tables this replaced took 11-16 MB (8 bytes a
slot at load 1/2 to 3/4) and were grown by copying a whole shard (docs/performance.md, 4.13).
Per key it is also cheaper: one `bisect` and one `insert`, both in C, where a linear probe ran
its loop in Python.

Two keys are reported as the same when their 64-bit hashes are equal: as likely as any 64-bit
collision (about 3e-8 for a million keys).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable

__all__ = ["SeenKeys"]

_SHARD_BITS = 12
_SHARDS = 1 << _SHARD_BITS
_SHARD_MASK = _SHARDS - 1


class SeenKeys:
    """A set of hashable keys that remembers only their 64-bit hashes: `add_new` says whether a key
    was already there."""

    __slots__ = ("_tables",)

    def __init__(self) -> None:
        self._tables = [array("q") for _ in range(_SHARDS)]

    def __len__(self) -> int:
        return sum(map(len, self._tables))

    @property
    def nbytes(self) -> int:
        """Bytes held by the tables (their hashes and the arrays' headers; not the slack)."""
        return sum(len(t) * t.itemsize + 64 for t in self._tables)

    def add_new(self, key: object) -> bool:
        """Add `key`; False when it (or a key of the same 64-bit hash) was added before."""
        return self.first_repeat((key,)) is None

    def first_repeat(self, keys: Iterable[object]) -> object | None:
        """Add every key of `keys`; the first one that was already there (not added again), or None.
        Keys after a repeat are not added."""
        tables = self._tables
        for key in keys:
            h = hash(key)
            table = tables[h & _SHARD_MASK]
            i = bisect_left(table, h)
            if i < len(table) and table[i] == h:
                return key
            table.insert(i, h)
        return None
